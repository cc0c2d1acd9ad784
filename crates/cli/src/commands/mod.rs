//! One module per subcommand.

mod analysis;
pub(crate) mod api;
mod audit;
mod clusters;
mod controller;
mod diff;
mod fleet;
mod health;
mod render;
mod rollout;
mod scale_down;
mod status;
mod sync;
mod token;
mod validate;
mod windows;

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
        Command::Approve(args) => block_on(rollout::approve(&cli.global, args, style)),
        Command::Rollback(args) => block_on(rollout::rollback(&cli.global, args, style)),
        Command::Unquarantine(args) => block_on(rollout::unquarantine(&cli.global, args, style)),
        Command::History(args) => rollout::history(args),
        Command::Switch(args) => block_on(rollout::switch(&cli.global, args)),
        Command::Audit(args) => audit::run(args, style),
        Command::Clusters(args) => block_on(clusters::run(&cli.global, args, style)),
        Command::Health(args) => health::run(&cli.global, args, style),
        Command::Controller(args) => block_on(controller::run(&cli.global, args)),
        Command::Token(args) => block_on(token::run(args, style)),
    }
}

/// Runs a command of the API (server mode) on the current runtime: the
/// same functions as [`run`], for the commands the API accepts.
pub(crate) async fn run_api(cli: &Cli, style: &Style) -> anyhow::Result<ExitCode> {
    let global = &cli.global;
    match &cli.command {
        Command::Diff(args) => diff::run(global, args, style).await,
        Command::Sync(args) => sync::run(global, args, style).await,
        Command::Status(args) => status::run(global, args, style).await,
        Command::Plan(args) => rollout::plan(global, args, style).await,
        Command::Approve(args) => rollout::approve(global, args, style).await,
        Command::Rollback(args) => rollout::rollback(global, args, style).await,
        Command::Unquarantine(args) => rollout::unquarantine(global, args, style).await,
        Command::History(args) => rollout::history(args),
        Command::Switch(args) => rollout::switch(global, args).await,
        Command::Audit(args) => audit::run(args, style),
        _ => anyhow::bail!("not a command of the API ({})", api::API_COMMANDS),
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
