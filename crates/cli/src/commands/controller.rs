//! `tidegate controller`: the continuous controller, until SIGTERM or Ctrl-C.

use super::{
    fleet,
    rollout::{AuditApprovals, GitRevisions, quarantine_list},
};
use crate::{
    args::{ControllerArgs, Global},
    workspace::Workspace,
};
use anyhow::Context;
use futures::future::BoxFuture;
use std::{collections::BTreeSet, path::PathBuf, process::ExitCode, sync::Arc};
use tidegate_audit::{Actor, AuditSink, SqliteStore, Trigger};
use tidegate_cloud::CloudFactory;
use tidegate_cluster::FactsCache;
use tidegate_controller::leader::{LeaderConfig, Leadership};
use tidegate_controller::{
    AppError, Application, Controller, ControllerOptions, LoadFailure, Loaded,
};
use tidegate_fleet::{Approvals, ConfigMapJournal, Journal, JournalStore, Revisions};
use tidegate_source::LoadError;

/// The CLI's application layer, as the controller uses it.
struct CliApplication {
    repo: Option<String>,
    git_ref: Option<String>,
    factory: CloudFactory,
    /// Cluster facts for Helm apps: asked once, not at every fetch.
    facts: FactsCache,
    audit_path: PathBuf,
    audit: Arc<SqliteStore>,
    /// With leader election: journals go to the management cluster.
    journals: Option<ManagementCluster>,
}

/// Where replicas keep their Lease and their rollout journals.
#[derive(Clone)]
struct ManagementCluster {
    client: kube::Client,
    namespace: String,
    /// This replica, as the writer of the journals.
    replica: String,
}

impl Application for CliApplication {
    type Factory = CloudFactory;

    fn factory(&self) -> &CloudFactory {
        &self.factory
    }

    fn environment_names(&self) -> Result<Vec<String>, AppError> {
        let ws = Workspace::open_at(self.repo.as_deref(), self.git_ref.as_deref())?;
        Ok(ws.environment_names()?)
    }

    fn load_head<'a>(&'a self, env: &'a str) -> BoxFuture<'a, Result<Loaded, LoadFailure>> {
        Box::pin(async move {
            // Opening a remote repository fetches it.
            let loading = Workspace::open_at(self.repo.as_deref(), self.git_ref.as_deref())
                .map_err(|e| LoadFailure::Unavailable(e.into()))?
                .load_discovered(env, &self.factory, Some(&self.facts));
            let desired = loading.await.map_err(|e| match e {
                LoadError::Invalid(problems) => LoadFailure::Invalid(problems),
                LoadError::Source(e) => LoadFailure::Unavailable(e.into()),
            })?;
            let rendered = tidegate_render::render_environment(
                &desired.environment,
                &desired.env_file,
                &desired.commit.sha,
                &desired.apps,
            )
            .map_err(LoadFailure::Invalid)?;
            let health_checks = fleet::health_checks(&desired).map_err(LoadFailure::Invalid)?;
            Ok(Loaded {
                revision: desired.commit.sha.clone(),
                environment: desired.environment,
                rendered,
                health_checks,
            })
        })
    }

    fn revisions<'a>(&'a self, env: &'a str) -> Box<dyn Revisions + 'a> {
        Box::new(GitRevisions {
            repo: self.repo.clone(),
            env: env.to_string(),
            factory: &self.factory,
            facts: &self.facts,
        })
    }

    fn approvals(&self, env: &str, revision: &str) -> Box<dyn Approvals> {
        Box::new(AuditApprovals {
            path: self.audit_path.clone(),
            env: env.to_string(),
            revision: revision.to_string(),
        })
    }

    fn quarantined(&self, env: &str) -> Result<BTreeSet<String>, AppError> {
        Ok(quarantine_list(&self.audit_path, env)?)
    }

    fn audit(&self) -> Option<Arc<dyn AuditSink>> {
        Some(self.audit.clone())
    }

    fn journal(&self, env: &str) -> Arc<dyn JournalStore> {
        match &self.journals {
            Some(m) => Arc::new(ConfigMapJournal::new(
                m.client.clone(),
                MANAGEMENT,
                &m.namespace,
                env,
                &m.replica,
            )),
            None => Arc::new(Journal::new(&Journal::default_dir(), env)),
        }
    }
}

/// How the management cluster is named in messages.
const MANAGEMENT: &str = "management";
/// What a shutdown may take beyond the grace of the step in flight:
/// journal, audit, lock and lease release.
const SHUTDOWN_SLACK: std::time::Duration = std::time::Duration::from_secs(10);

/// `tidegate controller`: with `--leader-elect`, waits to lead, then
/// reconciles until SIGTERM (graceful: exit 0 within the shutdown grace plus
/// 10 s) or until it stops leading (exit 1 at once; the next leader resumes
/// the rollout from the journal in the management cluster).
pub async fn run(global: &Global, args: &ControllerArgs) -> anyhow::Result<ExitCode> {
    let (terminate, terminating) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = terminate.send(true);
    });
    let term = |mut t: tokio::sync::watch::Receiver<bool>| async move {
        // Err: the sender is gone, which only happens after a signal.
        let _ = t.wait_for(|s| *s).await;
    };
    let ha = &args.ha;
    let replica = {
        let me = tidegate_cluster::Holder::this_process("");
        format!("{}-{}", me.host, me.pid)
    };
    let mut leadership = None;
    let mut journals = None;
    let mut identity = format!(
        "tidegate-controller/{}",
        Actor::local_user(Trigger::ControllerPoll).identity
    );
    if ha.leader_elect {
        let client = management_client(args).await?;
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
        let elected = Leadership::start(client.clone(), MANAGEMENT, config).await?;
        tracing::info!(replica = %replica, lease = %format!("{}/{}", ha.leader_election_namespace, ha.leader_election_id), "waiting to lead");
        tokio::select! {
            _ = elected.leading() => {}
            () = term(terminating.clone()) => {
                elected.release().await;
                return Ok(ExitCode::SUCCESS);
            }
        }
        // Every replica locks and audits as the controller; the Holder's
        // host and pid tell them apart.
        identity = format!(
            "tidegate-controller ({}/{})",
            ha.leader_election_namespace, ha.leader_election_id
        );
        journals = Some(ManagementCluster {
            client,
            namespace: ha.leader_election_namespace.clone(),
            replica: replica.clone(),
        });
        leadership = Some(elected);
    }

    let audit_path = args.audit.path();
    let audit = SqliteStore::open(&audit_path)
        .with_context(|| format!("opening the audit trail {}", audit_path.display()))?;
    let app = CliApplication {
        repo: global.repo.clone(),
        git_ref: global.git_ref.clone(),
        factory: fleet::client_factory(global, &args.kubeconfig),
        facts: FactsCache::default(),
        audit_path,
        audit: Arc::new(audit),
        journals,
    };
    let options = ControllerOptions {
        environments: args.env.clone(),
        debounce: std::time::Duration::from_millis(args.debounce_ms),
        take_over_identity: leadership.as_ref().map(|_| identity.clone()),
        identity,
        stop_grace: ha.shutdown_grace.0,
        ..ControllerOptions::default()
    };
    let controller = Controller::new(app, options);
    let lost = async {
        match &leadership {
            Some(l) => {
                let _ = l.watch().wait_for(|s| !s.is_leading()).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let bound = ha.shutdown_grace.0 + SHUTDOWN_SLACK;
    let overdue = async {
        term(terminating.clone()).await;
        tokio::time::sleep(bound).await;
    };
    tokio::select! {
        r = controller.run(term(terminating.clone())) => r?,
        () = lost => {
            // Another replica may take the Lease soon: stop writing now.
            tracing::error!("no longer the leader: stopping at once; the next leader resumes from the journal");
            return Ok(ExitCode::from(1));
        }
        () = overdue => {
            tracing::error!(bound = ?bound, "shutdown took too long: stopping now; the rollout resumes from its journal");
            return Ok(ExitCode::from(1));
        }
    }
    if let Some(l) = leadership {
        l.release().await;
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// A client of the management cluster: the context `--leader-election-context`
/// of `--kubeconfig` (or $KUBECONFIG), else the in-cluster config, else the
/// current context.
async fn management_client(args: &ControllerArgs) -> anyhow::Result<kube::Client> {
    let context = args.ha.leader_election_context.clone();
    let config = match (&args.kubeconfig, &context) {
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
