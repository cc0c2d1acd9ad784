//! One module per subcommand.

mod audit;
mod clusters;
mod controller;
mod diff;
mod fleet;
mod health;
mod render;
mod rollout;
mod status;
mod sync;
mod validate;

use crate::{
    args::{Cli, Command},
    output::Style,
};
use std::process::ExitCode;

/// Runs the chosen subcommand; `Ok` carries the exit code.
pub fn run(cli: &Cli, style: &Style) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Validate(args) => block_on(validate::run(&cli.global, args, style)),
        Command::Render(args) => block_on(render::run(&cli.global, args, style)),
        Command::Diff(args) => block_on(diff::run(&cli.global, args, style)),
        Command::Sync(args) => block_on(sync::run(&cli.global, args, style)),
        Command::Status(args) => block_on(status::run(&cli.global, args, style)),
        Command::Plan(args) => block_on(rollout::plan(&cli.global, args, style)),
        Command::Approve(args) => rollout::approve(&cli.global, args, style),
        Command::Rollback(args) => block_on(rollout::rollback(&cli.global, args, style)),
        Command::Unquarantine(args) => rollout::unquarantine(args),
        Command::History(args) => rollout::history(args),
        Command::Switch(args) => block_on(rollout::switch(&cli.global, args)),
        Command::Audit(args) => audit::run(args, style),
        Command::Clusters(args) => block_on(clusters::run(&cli.global, args, style)),
        Command::Health(args) => health::run(&cli.global, args, style),
        Command::Controller(args) => block_on(controller::run(&cli.global, args)),
    }
}

/// Runs an async command on a Tokio runtime (commands that reach clusters or
/// clouds).
fn block_on(
    future: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    tidegate_cluster::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}
