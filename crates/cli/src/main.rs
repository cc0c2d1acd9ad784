//! The `tidegate` command.

mod args;
mod client;
#[macro_use]
mod sink;
mod commands;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    output::init_logging(
        &cli.global,
        matches!(cli.command, args::Command::Controller(_)),
    );
    let style = output::Style::new(cli.global.color);
    let result = match &cli.global.server {
        Some(server) if client::goes_through_server(&cli.command) => client::run(&cli, server),
        _ => commands::run(&cli, &style),
    };
    match result {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{} {error:#}", style.error("error:"));
            ExitCode::from(2)
        }
    }
}

/// `tidegate render | head` closes stdout early; that is not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(BrokenPipe))
    })
}
