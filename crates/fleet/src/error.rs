//! The typed errors of a fleet rollout: why a rollout could not run or
//! stopped ([`RolloutError`]), why one command to one cluster failed
//! ([`CommandError`]), and how the environment lock was lost ([`LockLoss`]).

use crate::Preflight;
use std::time::Duration;
use tidegate_cluster::{Holder, LeaseError};
use tidegate_core::Diagnostics;
use tidegate_rollout::SetupError;
use tidegate_sync::SyncError;

/// Why a rollout could not run, or stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The environment's waves or limits are invalid.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// Someone else is rolling out this environment.
    #[error(transparent)]
    Locked(#[from] LeaseError),
    /// The pre-flight dry run on every cluster refused the revision before
    /// anything was written.
    #[error("{0}")]
    Refused(Preflight),
    /// A cluster could not be reached or read.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The environment's maintenance windows could not be compiled (the
    /// environment file reports the same problem at its line).
    #[error("maintenance windows: {0}")]
    Windows(String),
    /// The environment file is not in the branch's HEAD commit.
    #[error("the environment file {0} is not in HEAD")]
    NotInHead(String),
    /// The state machine refused the set-up or the journal.
    #[error("rollout state: {0}")]
    Machine(#[from] SetupError),
    /// The journal could not be read or written (or another replica took
    /// the rollout over).
    #[error(transparent)]
    Journal(#[from] crate::JournalError),
    /// `--resume` without a journal.
    #[error("nothing to resume: no journal at {0}")]
    NothingToResume(String),
    /// Stopped on request (shutdown, lost leadership) before the end; the
    /// journal holds where it stopped.
    #[error(
        "rollout interrupted on request; continue it from its journal ({journal}){}",
        if .in_flight.is_empty() { String::new() } else { format!("; stopped in flight: {}", .in_flight.join(", ")) }
    )]
    Interrupted {
        /// Where the journal is.
        journal: String,
        /// Clusters whose step did not finish within the grace period (redone on resume).
        in_flight: Vec<String>,
    },
    /// The audit trail could not record the rollout.
    #[error("audit trail: {0}")]
    Audit(#[from] tidegate_audit::AuditError),
    /// The environment's lock was lost in a cluster mid-rollout: no further
    /// command was issued, the commands in flight finished, and the journal
    /// was kept so the rollout can be resumed.
    #[error(
        "the lock of environment {environment} was lost in cluster {cluster}: {loss}. The rollout stopped: no cluster was changed after that{}; the journal is kept. Find out who holds it (`kubectl -n tidegate-system get lease tidegate-rollout-{environment} -o yaml` in cluster {cluster}); once they are done, continue with `tidegate sync --env {environment} --resume`",
        finished_note(finished)
    )]
    LockLost {
        /// The environment.
        environment: String,
        /// The cluster where the loss was noticed.
        cluster: String,
        /// How it was lost.
        loss: LockLoss,
        /// Commands that were in flight at the loss and were let finish.
        finished: Vec<String>,
    },
    /// A blue-green switch could not commit or push (or revert) its change.
    #[error("git: {0}")]
    Git(#[from] tidegate_source::SourceError),
    /// An environment revision could not be loaded or rendered.
    #[error("rendering revision {revision}: {error}")]
    Render {
        /// The revision.
        revision: String,
        /// Why (its text is part of this message, so not a `source`).
        error: crate::RevisionError,
    },
}

fn finished_note(finished: &[String]) -> String {
    if finished.is_empty() {
        String::new()
    } else {
        format!(
            " except by the commands already running, which were let finish ({})",
            finished.join(", ")
        )
    }
}

/// How the environment lock was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockLoss {
    /// Someone else holds the Lease now.
    TakenBy(Holder),
    /// The Lease could not be renewed for longer than it lasts, so someone
    /// else may hold it now.
    NotRenewed {
        /// How long renewal has failed.
        failing_for: Duration,
        /// The last renewal error.
        error: String,
    },
}

impl std::fmt::Display for LockLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockLoss::TakenBy(h) => write!(
                f,
                "it is held by {} (pid {} on {}) since {}",
                h.identity, h.pid, h.host, h.since
            ),
            LockLoss::NotRenewed { failing_for, error } => write!(
                f,
                "it could not be renewed for {}s, longer than it lasts ({error})",
                failing_for.as_secs()
            ),
        }
    }
}

/// Why one command (an apply, a rollback, a removal) to one cluster failed.
/// Its text becomes the machine's failure message and the audit trail's.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The cluster could not be reached when the rollout started.
    #[error("cluster {0} could not be reached at the start of the rollout")]
    Unreachable(String),
    /// The cluster is not part of the environment at that revision.
    #[error("cluster {cluster} is not in the environment at {revision}")]
    NotInEnvironment {
        /// The cluster.
        cluster: String,
        /// The revision.
        revision: String,
    },
    /// The revision has no rendering for the cluster.
    #[error("cluster {cluster} has no rendering at {revision}")]
    NotRendered {
        /// The cluster.
        cluster: String,
        /// The revision.
        revision: String,
    },
    /// An apply asked for a revision other than the one this run rendered.
    #[error("asked to apply {0}, a revision this run did not render")]
    OtherRevision(String),
    /// The rollback target could not be rendered.
    #[error("rendering the rollback revision {revision}: {error}")]
    Render {
        /// The revision.
        revision: String,
        /// Why (its text is part of this message, so not a `source`).
        error: crate::RevisionError,
    },
    /// The environment lock could not be taken in the cluster.
    #[error(transparent)]
    Lock(#[from] LeaseError),
    /// The environment lock was lost: nothing more is written.
    #[error("the environment lock was lost; nothing more is written")]
    LockLost,
    /// The sync failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
}
