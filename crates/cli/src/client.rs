//! Client side of server mode (`--server URL` / `TIDEGATE_SERVER`): sends
//! the command line to the controller's API (`POST /api/v1/run`) with the
//! API token, prints the output as it arrives and exits with the command's
//! exit code.

use crate::{
    args::{AuditCommand, Cli, Color, Command},
    output::Style,
};
use anyhow::{Context, bail};
use std::io::Write as _;
use std::process::ExitCode;
use tidegate_server::api::{Frame, RunRequest};

/// True when `command` runs through the server in server mode; the others
/// (validate, render, clusters, health, token, controller, audit verify,
/// report, export, keygen, migrate) always run locally.
pub fn goes_through_server(command: &Command) -> bool {
    match command {
        Command::Sync(_)
        | Command::Rollback(_)
        | Command::Approve(_)
        | Command::Unquarantine(_)
        | Command::Switch(_)
        | Command::Status(_)
        | Command::History(_)
        | Command::Plan(_)
        | Command::Diff(_) => true,
        Command::Audit(a) => matches!(a.command, AuditCommand::Log(_)),
        _ => false,
    }
}

/// Runs the command line of this process in the controller at `server`.
pub fn run(cli: &Cli, server: &str) -> anyhow::Result<ExitCode> {
    let token = token(cli)?;
    let request = RunRequest {
        args: forwarded(std::env::args().skip(1)),
        color: Style::new(cli.global.color).enabled(),
    };
    tidegate_cluster::install_crypto_provider();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(send(server, token.as_deref(), &request))
}

/// The API token: `--token-file`, else `$TIDEGATE_TOKEN`, else none (the
/// server then answers 401).
fn token(cli: &Cli) -> anyhow::Result<Option<String>> {
    if let Some(file) = &cli.global.token_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the API token file {}", file.display()))?;
        let text = text.trim();
        if text.is_empty() {
            bail!("the API token file {} is empty", file.display());
        }
        return Ok(Some(text.to_string()));
    }
    Ok(std::env::var("TIDEGATE_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// The command line without the client's own flags (`--server`,
/// `--token-file`, `--color`: the colour choice is sent resolved).
fn forwarded(args: impl Iterator<Item = String>) -> Vec<String> {
    const OWN: [&str; 3] = ["--server", "--token-file", "--color"];
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        if OWN.contains(&arg.as_str()) {
            skip_value = true;
            continue;
        }
        if OWN.iter().any(|f| arg.starts_with(&format!("{f}="))) {
            continue;
        }
        out.push(arg);
    }
    out
}

async fn send(server: &str, token: Option<&str>, request: &RunRequest) -> anyhow::Result<ExitCode> {
    let url = format!("{}/api/v1/run", server.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .build()
        .context("building the HTTP client")?;
    let mut call = client.post(&url).json(request);
    if let Some(token) = token {
        call = call.bearer_auth(token);
    }
    let mut response = call
        .send()
        .await
        .with_context(|| format!("cannot reach the Tidegate server {server}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let style = Style::new(Color::Auto);
        eprintln!(
            "{} the server refused the command ({status}): {}",
            style.error("error:"),
            body.trim_end()
        );
        if status == reqwest::StatusCode::UNAUTHORIZED && token.is_none() {
            eprintln!("  help: give an API token with --token-file FILE or TIDEGATE_TOKEN");
        }
        return Ok(ExitCode::from(2));
    }
    let mut pending = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .context("reading the command's output from the server")?
    {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            match serde_json::from_slice::<Frame>(&line)
                .context("the server sent a line that is not a frame")?
            {
                Frame::Stdout(text) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(text.as_bytes())?;
                    out.flush()?;
                }
                Frame::Stderr(text) => {
                    let mut err = std::io::stderr().lock();
                    err.write_all(text.as_bytes())?;
                    err.flush()?;
                }
                Frame::Exit(code) => return Ok(ExitCode::from(code)),
            }
        }
    }
    bail!("the server ended the command's output without an exit code (did the controller stop?)")
}

#[cfg(test)]
mod tests {
    use super::forwarded;

    #[test]
    fn the_clients_own_flags_are_not_forwarded() {
        let args = [
            "--server",
            "http://x",
            "--color=always",
            "sync",
            "--token-file",
            "/t",
            "--env",
            "prod",
            "--server=http://y",
        ]
        .map(String::from);
        assert_eq!(forwarded(args.into_iter()), ["sync", "--env", "prod"]);
    }
}
