//! The `tidegate` command.

mod args;
mod commands;
mod output;
mod workspace;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    output::init_logging(&cli.global);
    let style = output::Style::new(cli.global.color);
    match commands::run(&cli, &style) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{} {error:#}", style.error("error:"));
            ExitCode::from(2)
        }
    }
}
