//! `tidegate controller`: the continuous controller, until SIGTERM or Ctrl-C.

use super::fleet;
use crate::args::{ControllerArgs, Global};
use anyhow::Context;
use std::process::ExitCode;
use tidegate_audit::{Actor, Trigger};
use tidegate_controller::{
    ControllerOptions, Election, Ended, GitApplication, leader::LeaderConfig, run_replica,
};

/// `tidegate controller`: with `--leader-elect`, waits to lead, then
/// reconciles until SIGTERM (graceful: exit 0 within the shutdown grace plus
/// 10 s) or until it stops leading (exit 1 at once; the next leader resumes
/// the rollout from the journal in the management cluster).
pub async fn run(global: &Global, args: &ControllerArgs) -> anyhow::Result<ExitCode> {
    let app = GitApplication::new(
        global.repo.clone(),
        global.git_ref.clone(),
        fleet::client_factory(global, &args.kubeconfig),
        args.audit.path(),
    )?;
    let ha = &args.ha;
    let election = if ha.leader_elect {
        let me = tidegate_cluster::Holder::this_process("");
        let replica = format!("{}-{}", me.host, me.pid);
        Some(Election {
            client: management_client(
                args.kubeconfig.as_deref(),
                args.ha.leader_election_context.clone(),
            )
            .await?,
            config: LeaderConfig {
                lease_duration: ha.lease_duration.0,
                renew_deadline: ha.renew_deadline.0,
                retry_period: ha.retry_period.0,
                ..LeaderConfig::new(
                    &ha.leader_election_namespace,
                    &ha.leader_election_id,
                    &replica,
                )
            },
        })
    } else {
        None
    };
    let options = ControllerOptions {
        environments: args.env.clone(),
        debounce: std::time::Duration::from_millis(args.debounce_ms),
        identity: format!(
            "tidegate-controller/{}",
            Actor::local_user(Trigger::ControllerPoll).identity
        ),
        stop_grace: ha.shutdown_grace.0,
        ..ControllerOptions::default()
    };
    match run_replica(app, options, election, stop_signal()).await? {
        Ended::Stopped => {}
        Ended::NotLeading | Ended::Overdue => return Ok(ExitCode::from(1)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A client of the management cluster: `context` (`--leader-election-context`,
/// `token --context`) of `kubeconfig` (or $KUBECONFIG), else the in-cluster
/// config, else the current context.
pub(crate) async fn management_client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
) -> anyhow::Result<kube::Client> {
    let config = match (kubeconfig, &context) {
        (Some(file), _) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(file)
                .with_context(|| format!("reading the kubeconfig {}", file.display()))?;
            let options = kube::config::KubeConfigOptions {
                context,
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        (None, Some(_)) => {
            let options = kube::config::KubeConfigOptions {
                context,
                ..Default::default()
            };
            kube::Config::from_kubeconfig(&options).await?
        }
        (None, None) => kube::Config::infer().await?,
    };
    kube::Client::try_from(config).context("building the management cluster's client")
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
