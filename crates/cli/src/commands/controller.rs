//! `tidegate controller`: the continuous controller, until SIGTERM or Ctrl-C.

use super::fleet;
use crate::args::{ControllerArgs, Global};
use std::process::ExitCode;
use tidegate_audit::{Actor, Trigger};
use tidegate_controller::{Controller, ControllerOptions, GitApplication};

/// `tidegate controller`.
pub async fn run(global: &Global, args: &ControllerArgs) -> anyhow::Result<ExitCode> {
    let app = GitApplication::new(
        global.repo.clone(),
        global.git_ref.clone(),
        fleet::client_factory(global, &args.kubeconfig),
        args.audit.path(),
    )?;
    let options = ControllerOptions {
        environments: args.env.clone(),
        debounce: std::time::Duration::from_millis(args.debounce_ms),
        identity: format!(
            "tidegate-controller/{}",
            Actor::local_user(Trigger::ControllerPoll).identity
        ),
    };
    Controller::new(app, options).run(stop_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("stopping");
}
