//! What a sync did, object by object.

use serde::Serialize;
use tidegate_cluster::RequestCounts;
use tidegate_core::ObjectKey;
use tidegate_diff::{DiffStatus, FieldChange};

/// Options of one sync.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Plan and report only; write nothing.
    pub dry_run: bool,
    /// Delete objects that left Git (also on when the environment's `sync.prune` is).
    pub prune: bool,
    /// Take ownership of fields other managers own (`force=true`).
    pub force_conflicts: bool,
    /// Allow an app that used to have objects to render none (and so prune them all).
    pub allow_empty: bool,
    /// Only these apps (all when empty).
    pub apps: Vec<String>,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Already in sync: nothing sent.
    Unchanged,
    /// Created.
    Created,
    /// Changed to match Git.
    Configured,
    /// Deleted because it left Git.
    Pruned,
    /// Left Git, but prune is off.
    PruneSkipped,
    /// Would be created (dry run).
    WouldCreate,
    /// Would be changed (dry run).
    WouldConfigure,
    /// Would be deleted (dry run).
    WouldPrune,
}

/// The result for one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    /// The app.
    pub app: String,
    /// The object.
    pub key: ObjectKey,
    /// What the plan found.
    pub status: DiffStatus,
    /// What was done.
    pub action: Action,
    /// The fields that differed, with their owners.
    pub changes: Vec<FieldChange>,
}

/// The result of a sync of one cluster. API boundary.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The cluster.
    pub cluster: String,
    /// The revision synced.
    pub revision: String,
    /// True when nothing was written on purpose.
    pub dry_run: bool,
    /// One entry per object, in apply order, then pruned objects.
    pub results: Vec<ObjectResult>,
    /// Requests sent to the API server during the sync.
    #[serde(skip)]
    pub requests: RequestCounts,
    /// The PreSync hooks that ran before the objects were applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::HookRun>,
}

impl SyncReport {
    /// Adds one object's result and reports it as progress.
    pub(crate) fn record(&mut self, result: ObjectResult, progress: &(dyn Fn(Progress) + Sync)) {
        progress(Progress::Object(result.clone()));
        self.results.push(result);
    }

    /// Number of results with this action.
    pub fn count(&self, action: Action) -> usize {
        self.results.iter().filter(|r| r.action == action).count()
    }
}

/// Progress of a sync, for progress bars and logs.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The plan is ready: this many objects, this many to change.
    Planned {
        /// Desired objects.
        total: usize,
        /// Objects to create, change or prune.
        changes: usize,
    },
    /// One object was handled.
    Object(ObjectResult),
    /// Waiting for health: this many of `total` are healthy.
    Waiting {
        /// Healthy objects.
        healthy: usize,
        /// Objects waited for.
        total: usize,
    },
}
