//! What the controller needs of the application layer.

use futures::future::BoxFuture;
use std::{collections::BTreeSet, sync::Arc};
use tidegate_cluster::ClientFactory;
use tidegate_core::{Diagnostics, Environment};
use tidegate_fleet::{Approvals, Journal, JournalStore, Revisions};
use tidegate_health::HealthChecks;
use tidegate_render::Rendered;

/// An error of the application layer (reading Git, the audit trail...).
pub type AppError = Box<dyn std::error::Error + Send + Sync>;

/// An environment at one revision: what Git says, rendered per cluster.
#[derive(Debug)]
pub struct Loaded {
    /// The environment file (its `discover:` entries expanded).
    pub environment: Environment,
    /// Its objects per cluster.
    pub rendered: Rendered,
    /// The commit SHA they were rendered from.
    pub revision: String,
    /// The environment's custom health checks.
    pub health_checks: Arc<HealthChecks>,
}

/// Why an environment could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    /// The commit is invalid (file:line, fix): nothing to do until a newer commit.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// Git or a cloud could not be reached: retried with backoff.
    #[error(transparent)]
    Unavailable(AppError),
}

/// The application layer as the controller uses it: the same loading,
/// rendering, approvals, quarantines and audit trail as the CLI.
pub trait Application: Send + Sync {
    /// How clusters are reached.
    type Factory: ClientFactory;

    /// Makes clients.
    fn factory(&self) -> &Self::Factory;

    /// Every environment of the repository.
    fn environment_names(&self) -> Result<Vec<String>, AppError>;

    /// Fetches the environment's source and loads it at the head of the
    /// ref it follows, rendered for every cluster. Must not ask clusters
    /// anything it asked before (cache cluster facts): it runs every interval.
    fn load_head<'a>(&'a self, environment: &'a str) -> BoxFuture<'a, Result<Loaded, LoadFailure>>;

    /// Renders other revisions of the environment (rollback targets).
    fn revisions<'a>(&'a self, environment: &'a str) -> Box<dyn Revisions + 'a>;

    /// Approvals of the waves of `revision`.
    fn approvals(&self, environment: &str, revision: &str) -> Box<dyn Approvals>;

    /// Revisions quarantined for the environment now.
    fn quarantined(&self, environment: &str) -> Result<BTreeSet<String>, AppError>;

    /// The audit trail, if any.
    fn audit(&self) -> Option<Arc<dyn tidegate_audit::AuditSink>>;

    /// Where the rollout journal of `environment` is kept: a file on this
    /// machine by default; with leader election, a ConfigMap in the
    /// management cluster, so any replica resumes what another started.
    fn journal(&self, environment: &str) -> Arc<dyn JournalStore> {
        Arc::new(Journal::new(&Journal::default_dir(), environment))
    }
}
