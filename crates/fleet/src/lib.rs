//! Fleet rollouts against real clusters.
//!
//! [`Driver`] executes the pure state machine of `tidegate-rollout`
//! ([`FleetRollout`]): it connects one sync [`Engine`](tidegate_sync::Engine) per cluster, takes the
//! environment's lock (a Lease in every cluster, so a CLI run and the
//! controller never interleave), turns `Apply`/`Rollback` commands into syncs
//! of the target (or last good) revision, polls each cluster's health and
//! feeds it back, waits for approvals, journals the machine after every step
//! (so a killed run can be resumed), and forwards every transition to the
//! audit trail.
//!
//! Architecture invariant: all decisions (order, limits, gates, rollback)
//! are the state machine's; this crate only executes and observes.

mod driver;
pub mod interrupt;
mod journal;
pub mod lock;
pub mod switch;

pub use driver::{
    Approvals, ClusterCheck, ClusterLine, ClusterProblem, Driver, DriverOptions, Preflight,
    Revisions, RolloutError, RolloutReport,
};
pub use journal::{
    ConfigMapJournal, JOURNAL_KEY, Journal, JournalError, JournalStore, Journaled,
    MAX_JOURNAL_BYTES,
};
pub use tidegate_rollout::machine::{FleetRollout, Outcome};
