//! One module per subcommand.

mod audit;
mod render;
mod validate;

use crate::{
    args::{Cli, Command},
    output::Style,
};
use std::process::ExitCode;

/// Runs the chosen subcommand; `Ok` carries the exit code.
pub fn run(cli: &Cli, style: &Style) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Validate(args) => validate::run(&cli.global, args, style),
        Command::Render(args) => render::run(&cli.global, args, style),
        Command::Audit(args) => audit::run(args, style),
    }
}
