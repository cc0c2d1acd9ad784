//! What the controller needs of the application layer, and its
//! implementation over `tidegate-app` ([`GitApplication`]).

use futures::future::BoxFuture;
use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};
use tidegate_app::{AppError, ClusterApprovals, GitRevisions, RenderMemo, RolloutRun, Workspace};
use tidegate_audit::{Actor, AuditSink, AuditStore};
use tidegate_cloud::CloudFactory;
use tidegate_cluster::{ClientFactory, FactsCache};
use tidegate_core::Environment;
use tidegate_fleet::{ClusterLine, ConfigMapJournal, Journal, JournalStore, RolloutReport};
use tidegate_health::HealthChecks;
use tidegate_render::Rendered;

/// An environment at one revision: what Git says, rendered per cluster.
#[derive(Debug)]
pub struct Loaded {
    /// The environment file (its `discover:` entries expanded).
    pub environment: Environment,
    /// Its objects per cluster (shared with later loads of the same
    /// inputs: an unchanged head is not rendered again).
    pub rendered: Arc<Rendered>,
    /// The commit SHA they were rendered from.
    pub revision: String,
    /// The environment's custom health checks.
    pub health_checks: Arc<HealthChecks>,
}

/// The application layer as the controller uses it: the same loading,
/// rendering, rollouts, quarantines and audit trail as the CLI.
pub trait Application: Send + Sync {
    /// How clusters are reached.
    type Factory: ClientFactory;

    /// Makes clients.
    fn factory(&self) -> &Self::Factory;

    /// Every environment of the repository.
    fn environment_names(&self) -> Result<Vec<String>, AppError>;

    /// Fetches the environment's source and loads it at the head of the
    /// ref it follows, rendered for every cluster. Asks clusters nothing it
    /// asked before (it runs every interval). Problems with the commit are
    /// [`AppError::Invalid`].
    fn load_head<'a>(&'a self, environment: &'a str) -> BoxFuture<'a, Result<Loaded, AppError>>;

    /// Loads the environment at `revision` (a commit SHA), rendered for
    /// every cluster: what the fleet runs, loaded again after a rollout
    /// that let its rendering go did not end at the new revision. Nothing
    /// is fetched and the head's rendering is not replaced.
    fn load_revision<'a>(
        &'a self,
        environment: &'a str,
        revision: &'a str,
    ) -> BoxFuture<'a, Result<Loaded, AppError>>;

    /// Revisions quarantined for the environment now (wherever they are kept).
    fn quarantined<'a>(
        &'a self,
        environment: &'a Environment,
    ) -> BoxFuture<'a, Result<BTreeSet<String>, AppError>>;

    /// Runs the fleet rollout of `loaded` (the path of `tidegate sync
    /// --env`) as `actor`, skipping `quarantined` as rollback targets. The
    /// future is `Send`: each environment's loop is a task of its own on the
    /// multi-threaded runtime.
    fn roll_out<'a>(
        &'a self,
        loaded: &'a Loaded,
        actor: Actor,
        quarantined: BTreeSet<String>,
        control: RollOutControl,
        progress: &'a (dyn Fn(&[ClusterLine]) + Sync),
    ) -> BoxFuture<'a, Result<RolloutReport, AppError>>;

    /// The audit trail, if any.
    fn audit(&self) -> Option<Arc<dyn AuditSink>>;

    /// Where the rollout journal of `environment` is kept: a file on this
    /// machine by default; with leader election, a ConfigMap in the
    /// management cluster, so any replica resumes what another started.
    fn journal(&self, environment: &str) -> Arc<dyn JournalStore> {
        Arc::new(Journal::new(&Journal::default_dir(), environment))
    }
}

/// How the controller runs one rollout, beyond what Git says: where it is
/// journaled, whether it resumes, and how it is stopped.
pub struct RollOutControl {
    /// Where the rollout is journaled ([`Application::journal`]).
    pub journal: Arc<dyn JournalStore>,
    /// Continue the journaled rollout instead of starting a new one.
    pub resume: bool,
    /// Turns true when the rollout must stop safely (SIGTERM, lost leadership).
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// How long steps in flight may take to finish after a stop.
    pub stop_grace: Duration,
    /// Locks held by this identity are taken over (a deposed replica's).
    pub take_over_identity: Option<String>,
    /// The loop's connected engines per cluster (their live state is its
    /// watch caches): the rollout shares them instead of connecting.
    pub engines: tidegate_fleet::ConnectedEngines,
}

/// Where leader-elected replicas keep their rollout journals.
#[derive(Clone)]
struct ManagementJournals {
    client: kube::Client,
    namespace: String,
    /// This replica, as the writer of the journals.
    replica: String,
}

/// How the management cluster is named in messages.
pub(crate) const MANAGEMENT: &str = "management";

/// The application layer of `tidegate-app`: a Git repository (local, or
/// remote and fetched at every load), clusters reached through a
/// [`CloudFactory`], the local audit trail, quarantines and approvals kept
/// in the clusters.
pub struct GitApplication {
    repo: Option<String>,
    git_ref: Option<String>,
    factory: CloudFactory,
    /// Cluster facts for Helm apps: asked once, not at every fetch.
    facts: FactsCache,
    /// The last head's rendering per environment, reused while unchanged.
    renderings: RenderMemo,
    audit_path: PathBuf,
    audit: Arc<AuditStore>,
    /// With leader election: journals go to the management cluster.
    journals: Option<ManagementJournals>,
}

impl GitApplication {
    /// The repository `repo` (default: the one containing the current
    /// directory) at `git_ref` (default: HEAD), clusters through `factory`,
    /// the audit trail at `audit_path`.
    pub fn new(
        repo: Option<String>,
        git_ref: Option<String>,
        factory: CloudFactory,
        audit_path: PathBuf,
    ) -> Result<GitApplication, AppError> {
        let audit = AuditStore::open(&audit_path).map_err(|source| AppError::AuditOpen {
            path: tidegate_audit::location::describe(&audit_path),
            source,
        })?;
        Ok(GitApplication {
            repo,
            git_ref,
            factory,
            facts: FactsCache::default(),
            renderings: RenderMemo::new(),
            audit_path,
            audit: Arc::new(audit),
            journals: None,
        })
    }

    /// Keeps the rollout journals as ConfigMaps in `namespace` of the
    /// management cluster (`client`), written as `replica`: with leader
    /// election, the next leader resumes what this replica started.
    pub fn with_management_journals(
        mut self,
        client: kube::Client,
        namespace: &str,
        replica: &str,
    ) -> GitApplication {
        self.journals = Some(ManagementJournals {
            client,
            namespace: namespace.to_string(),
            replica: replica.to_string(),
        });
        self
    }

    /// How many times a head was rendered (not reused) so far.
    pub fn renders(&self) -> usize {
        self.renderings.renders()
    }

    fn workspace(&self) -> Result<Workspace, AppError> {
        Workspace::open(self.repo.as_deref(), self.git_ref.as_deref())
    }
}

impl Application for GitApplication {
    type Factory = CloudFactory;

    fn factory(&self) -> &CloudFactory {
        &self.factory
    }

    fn environment_names(&self) -> Result<Vec<String>, AppError> {
        self.workspace()?.environment_names()
    }

    fn load_head<'a>(&'a self, env: &'a str) -> BoxFuture<'a, Result<Loaded, AppError>> {
        Box::pin(async move {
            // Opening a remote repository fetches it.
            let loading = self
                .workspace()?
                .load_discovered(env, &self.factory, Some(&self.facts));
            // An unchanged head (same commit, clusters, templated output)
            // shares the rendering of the last fetch instead of rendering again.
            let shared = self.renderings.load_rendered(loading).await?;
            let health_checks = shared.health_checks.map_err(AppError::Invalid)?;
            Ok(Loaded {
                revision: shared.commit.sha,
                environment: shared.environment,
                rendered: shared.rendered,
                health_checks,
            })
        })
    }

    fn load_revision<'a>(
        &'a self,
        env: &'a str,
        revision: &'a str,
    ) -> BoxFuture<'a, Result<Loaded, AppError>> {
        Box::pin(async move {
            let loading = self.workspace()?.at(revision)?.load_discovered(
                env,
                &self.factory,
                Some(&self.facts),
            );
            let rendering = tidegate_app::load_rendered(loading).await?;
            let health_checks = rendering.health_checks.map_err(AppError::Invalid)?;
            Ok(Loaded {
                revision: rendering.desired.commit.sha,
                environment: rendering.desired.environment,
                rendered: Arc::new(rendering.rendered),
                health_checks,
            })
        })
    }

    fn quarantined<'a>(
        &'a self,
        environment: &'a Environment,
    ) -> BoxFuture<'a, Result<BTreeSet<String>, AppError>> {
        Box::pin(async move {
            let (list, read) =
                tidegate_app::quarantined_everywhere(&self.factory, environment, &self.audit_path)
                    .await?;
            for (cluster, why) in &read.unreadable {
                tracing::warn!(%cluster, %why, "the quarantines kept in this cluster could not be read");
            }
            Ok(list)
        })
    }

    fn roll_out<'a>(
        &'a self,
        loaded: &'a Loaded,
        actor: Actor,
        quarantined: BTreeSet<String>,
        control: RollOutControl,
        progress: &'a (dyn Fn(&[ClusterLine]) + Sync),
    ) -> BoxFuture<'a, Result<RolloutReport, AppError>> {
        Box::pin(async move {
            let env = &loaded.environment.metadata.name;
            let revisions = GitRevisions::new(
                Arc::new(Mutex::new(self.workspace()?)),
                env,
                &self.factory,
                &self.facts,
            );
            let approvals = ClusterApprovals {
                factory: &self.factory,
                environment: &loaded.environment,
                audit: tidegate_app::AuditApprovals {
                    path: self.audit_path.clone(),
                    env: env.clone(),
                    revision: loaded.revision.clone(),
                },
            };
            let run = RolloutRun {
                factory: &self.factory,
                environment: &loaded.environment,
                rendered: &loaded.rendered,
                health_checks: loaded.health_checks.clone(),
                revision: &loaded.revision,
                revisions: &revisions,
                approvals: Some(&approvals),
                audit_path: &self.audit_path,
                actor,
                break_lock: false,
                resume: control.resume,
                prune: loaded.environment.spec.sync.prune,
                force_conflicts: false,
                quarantined,
                // The controller never overrides maintenance windows: a
                // rollout waits for them (an operator overrides from the CLI).
                ignore_windows: None,
                journal: Some(control.journal),
                stop: control.stop,
                stop_grace: Some(control.stop_grace),
                take_over_identity: control.take_over_identity,
                engines: control.engines,
            };
            Ok(run.run(progress).await?.report)
        })
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
