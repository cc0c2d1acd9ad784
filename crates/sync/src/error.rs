//! Errors of the sync engine.

use serde::Serialize;
use std::fmt;
use tidegate_cluster::ClusterError;
use tidegate_core::ObjectKey;

/// One object that cannot be synced, found while planning (nothing was written).
#[derive(Debug, Clone, Serialize)]
pub struct ObjectProblem {
    /// The app.
    pub app: String,
    /// The object.
    pub key: ObjectKey,
    /// Where it came from in Git (`file:line`), when known.
    pub source: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

impl fmt::Display for ObjectProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(source) = &self.source {
            write!(f, "{source}: ")?;
        }
        write!(f, "{}: {}\n  help: {}", self.key, self.message, self.help)
    }
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The cluster could not be reached or read.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The plan has problems; nothing was written to the cluster.
    #[error("cluster {cluster}: {} problem(s), nothing was changed:\n{}", problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The cluster.
        cluster: String,
        /// Every problem found.
        problems: Vec<ObjectProblem>,
    },
    /// A write failed part-way; the report says what was done before.
    #[error("cluster {cluster}: applying {key} failed: {message}")]
    Apply {
        /// The cluster.
        cluster: String,
        /// The object that failed.
        key: ObjectKey,
        /// The API server's answer.
        message: String,
        /// What was done before the failure.
        report: Box<crate::SyncReport>,
    },
    /// The audit trail could not record the sync; nothing was changed when
    /// this happens before the first write.
    #[error("audit trail: {0}")]
    Audit(#[from] tidegate_audit::AuditError),
    /// A PreSync hook did not succeed; none of its app's objects were applied.
    #[error("cluster {cluster}: {}; the app's objects were not applied", run.summary())]
    Hook {
        /// The cluster.
        cluster: String,
        /// The hook's run (outcome, exit code, last lines).
        run: Box<crate::HookRun>,
        /// Hooks that ran before it in this sync.
        report: Box<crate::SyncReport>,
    },
    /// A CRD did not become Established in time.
    #[error("cluster {cluster}: CustomResourceDefinition {name} not Established after {seconds}s")]
    CrdNotEstablished {
        /// The cluster.
        cluster: String,
        /// The CRD's name.
        name: String,
        /// How long we waited.
        seconds: u64,
    },
}

impl SyncError {
    /// The RBAC permission whose absence caused this error, when a read or
    /// write was refused with 403 (see [`tidegate_cluster::Forbidden`]).
    pub fn forbidden(&self) -> Option<tidegate_cluster::Forbidden> {
        match self {
            SyncError::Cluster(e) => tidegate_cluster::Forbidden::of_cluster(e),
            _ => None,
        }
    }
}
