//! `tidegate controller`: the continuous controller, until SIGTERM or Ctrl-C.

use super::fleet;
use crate::args::{ControllerArgs, Global};
use anyhow::Context;
use std::process::ExitCode;
use tidegate_audit::{Actor, Trigger};
use tidegate_controller::{
    ControllerOptions, Election, Ended, GitApplication, Observers, Sharding, leader::LeaderConfig,
    run_replica, run_sharded,
};
use tidegate_server::{Monitor, Secret, Server, webhook::WebhookSecrets};

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
    let replica = ha.replica_id.clone().unwrap_or_else(|| {
        let me = tidegate_cluster::Holder::this_process("");
        format!("{}-{}", me.host, me.pid)
    });
    let config = LeaderConfig {
        lease_duration: ha.lease_duration.0,
        renew_deadline: ha.renew_deadline.0,
        retry_period: ha.retry_period.0,
        ..LeaderConfig::new(
            &ha.leader_election_namespace,
            &ha.leader_election_id,
            &replica,
        )
    };
    let management = || {
        management_client(
            args.kubeconfig.as_deref(),
            args.ha.leader_election_context.clone(),
        )
    };
    let election = if ha.leader_elect {
        Some(Election {
            client: management().await?,
            config: config.clone(),
        })
    } else {
        None
    };
    let mut options = ControllerOptions {
        environments: args.env.clone(),
        debounce: std::time::Duration::from_millis(args.debounce_ms),
        identity: format!(
            "tidegate-controller/{}",
            Actor::local_user(Trigger::ControllerPoll).identity
        ),
        stop_grace: ha.shutdown_grace.0,
        ..ControllerOptions::default()
    };
    if let Some(address) = &args.server.listen {
        let (observers, trigger) = start_server(global, args, address).await?;
        options.observers = observers;
        options.trigger = Some(trigger);
    }
    if let Some(file) = &args.notifications {
        let config = match tidegate_notify::Config::load(file) {
            Ok(config) => config,
            Err(problems) => {
                for d in problems.iter() {
                    eprintln!("error: {d}");
                }
                return Ok(ExitCode::from(1));
            }
        };
        options.observers = start_notifications(config, &args.audit.path(), options.observers)?;
    }
    let ended = if ha.shard {
        let sharding = Sharding {
            client: management().await?,
            config,
            split_above: ha.shard_clusters_above,
        };
        run_sharded(app, options, sharding, stop_signal()).await?
    } else {
        run_replica(app, options, election, stop_signal()).await?
    };
    match ended {
        Ended::Stopped => {}
        Ended::NotLeading | Ended::Overdue => return Ok(ExitCode::from(1)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts the HTTP server (`--listen`): the observers and trigger to give
/// the controller. It serves until the process exits.
async fn start_server(
    global: &Global,
    controller: &ControllerArgs,
    address: &str,
) -> anyhow::Result<(Observers, tidegate_controller::Trigger)> {
    let args = &controller.server;
    let secrets = WebhookSecrets {
        github: secret(
            &args.github_webhook_secret_file,
            "TIDEGATE_WEBHOOK_GITHUB_SECRET",
        )?,
        gitlab: secret(
            &args.gitlab_webhook_secret_file,
            "TIDEGATE_WEBHOOK_GITLAB_SECRET",
        )?,
        bitbucket: secret(
            &args.bitbucket_webhook_secret_file,
            "TIDEGATE_WEBHOOK_BITBUCKET_SECRET",
        )?,
        bearer: secret(&args.webhook_token_file, "TIDEGATE_WEBHOOK_TOKEN")?,
    };
    // The configuration repository as webhooks name it: `--repo`, or the
    // local checkout's directory.
    let config_repo = match &global.repo {
        Some(repo) => Some(repo.clone()),
        None => tidegate_app::Workspace::open(None, None)
            .ok()
            .and_then(|w| w.workdir().map(|p| p.display().to_string())),
    };
    let config_ref = global.git_ref.clone().unwrap_or_else(|| "HEAD".into());
    let monitor = std::sync::Arc::new(Monitor::new(config_repo.map(|r| (r, config_ref))));
    // API commands tell the monitor what the controller's loops never do
    // themselves (a blue-green switch: tidegate_switches_total).
    let api = super::api::build(global, controller, Observers::new(monitor.clone())).await;
    let (trigger, _) = tidegate_controller::Trigger::new();
    let listener = tidegate_server::bind(address).await?;
    let bound = listener.local_addr()?;
    let endpoints: Vec<&str> = [
        ("github", secrets.github.is_some()),
        ("gitlab", secrets.gitlab.is_some()),
        ("bitbucket", secrets.bitbucket.is_some()),
        ("generic", secrets.bearer.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    // The fleet page: readers prove an API token (viewer is enough), as
    // the API's callers do, unless the operator opens it on purpose.
    let audit: std::sync::Arc<dyn tidegate_server::page::AuditReader> =
        std::sync::Arc::new(tidegate_server::page::AuditAt::new(controller.audit.path()));
    let page_access = if args.fleet_page_anonymous {
        tidegate_server::page::access::Access::Open
    } else {
        tidegate_server::page::access::Access::Tokens(api.authenticator.clone())
    };
    let server = Server::new(monitor.clone(), trigger.clone(), secrets)
        .with_api(api)
        .with_page(page_access, Some(audit));
    tracing::info!(address = %bound, webhooks = ?endpoints, "serving /healthz, /readyz, /metrics and webhooks");
    tokio::spawn(async move {
        if let Err(e) = server.serve(listener, std::future::pending()).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });
    Ok((Observers::new(monitor), trigger))
}

/// Starts the notifier (`--notifications`): it follows the audit trail
/// from its current end and reports deliveries to `downstream` (the
/// server's metrics); the observers returned also tell it who leads.
fn start_notifications(
    config: tidegate_notify::Config,
    audit: &std::path::Path,
    downstream: Observers,
) -> anyhow::Result<Observers> {
    let store = tidegate_audit::AuditStore::open_read_only(audit).with_context(|| {
        format!(
            "opening the audit trail {} for notifications",
            audit.display()
        )
    })?;
    let start = store.len()?;
    let http = tidegate_notify::Http::new(config.delivery.timeout)
        .context("building the notifications' HTTP client")?;
    let sinks: Vec<String> = config.sinks.keys().cloned().collect();
    let notifier = tidegate_notify::Notifier::new(config, downstream.clone());
    notifier.start(std::sync::Arc::new(http));
    tokio::spawn(notifier.clone().follow(std::sync::Arc::new(store), start));
    tracing::info!(?sinks, after_seq = start, "sending notifications");
    Ok(notifier.observer(downstream))
}

/// A webhook secret from `file`, else from the variable `var`, else none.
fn secret(file: &Option<std::path::PathBuf>, var: &str) -> anyhow::Result<Option<Secret>> {
    if let Some(file) = file {
        return Ok(Some(Secret::from_file(file)?));
    }
    match std::env::var(var) {
        Ok(text) => Ok(Some(Secret::non_empty(&text, var)?)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            anyhow::bail!("{var} is not valid UTF-8")
        }
    }
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
