//! Fleet rollouts against real clusters.
//!
//! [`Driver`] executes the pure state machine of `tidegate-rollout`
//! ([`FleetRollout`]): it connects one sync [`Engine`](tidegate_sync::Engine) per cluster, takes the
//! environment's lock (a Lease in every cluster, so a CLI run and the
//! controller never interleave), turns `Apply`/`Rollback` commands into syncs
//! of the target (or last good) revision, reads the health of the clusters
//! in flight or baking (one read per kind) and feeds it back, waits for approvals, journals the machine after every step
//! (so a killed run can be resumed), and forwards every transition to the
//! audit trail.
//!
//! Architecture invariant: all decisions (order, limits, gates, rollback)
//! are the state machine's; this crate only executes and observes.

pub mod analysis;
mod driver;
mod error;
mod gates;
mod health;
pub mod interrupt;
mod journal;
pub mod lock;
mod renewal;
pub mod scale_down;
pub mod sim;
mod spans;
pub mod switch;
mod timeline;
mod windows;

pub use driver::{
    APPROVAL_REQUESTED, ApprovalError, Approvals, ClusterCheck, ClusterLine, ClusterProblem,
    ConnectedEngines, Driver, DriverOptions, Preflight, RevisionError, RevisionRendering,
    Revisions, RolloutReport,
};
pub use error::{CommandError, LockLoss, RolloutError};
pub use journal::{
    ConfigMapJournal, JOURNAL_KEY, Journal, JournalError, JournalStore, Journaled,
    MAX_JOURNAL_BYTES,
};
pub use tidegate_rollout::machine::{FleetRollout, Outcome};
pub use timeline::{ClusterStep, TimelineEntry};
