//! The rollout's timeline: when each cluster's command was issued, answered,
//! and when it turned Healthy at the target.

use std::{fmt, time::Duration};
use tidegate_rollout::Event;

/// One step of a cluster in the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClusterStep {
    /// An apply of the target revision was issued.
    Apply,
    /// It succeeded.
    Applied,
    /// It failed.
    ApplyFailed,
    /// The cluster turned Healthy at the target revision.
    Healthy,
    /// It failed a gate outright (fail fast, a failed PostSync hook).
    GateFailed,
    /// A rollback (or the removal of a first deploy) was issued.
    Rollback,
    /// It succeeded.
    RolledBack,
    /// It failed.
    RollbackFailed,
}

impl ClusterStep {
    /// The step an answer to a command records; `None` for events that
    /// answer no command (health, approvals).
    pub fn of(event: &Event) -> Option<ClusterStep> {
        match event {
            Event::Applied { .. } => Some(ClusterStep::Applied),
            Event::ApplyFailed { .. } => Some(ClusterStep::ApplyFailed),
            Event::RolledBack { .. } => Some(ClusterStep::RolledBack),
            Event::RollbackFailed { .. } => Some(ClusterStep::RollbackFailed),
            Event::Health { .. }
            | Event::Approved { .. }
            | Event::Analyzed { .. }
            | Event::GateFailed { .. } => None,
        }
    }

    /// The kebab-case name (`apply`, `applied`, `apply-failed`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ClusterStep::Apply => "apply",
            ClusterStep::Applied => "applied",
            ClusterStep::ApplyFailed => "apply-failed",
            ClusterStep::Healthy => "healthy",
            ClusterStep::GateFailed => "gate-failed",
            ClusterStep::Rollback => "rollback",
            ClusterStep::RolledBack => "rolled-back",
            ClusterStep::RollbackFailed => "rollback-failed",
        }
    }
}

impl fmt::Display for ClusterStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry: the cluster, its step, and when (since the rollout started).
pub type TimelineEntry = (String, ClusterStep, Duration);
