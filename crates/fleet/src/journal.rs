//! The rollout journal: the state machine saved after every step, so an
//! interrupted rollout can be resumed — by the same CLI on the same machine
//! ([`Journal`], a file), or by another controller replica on another machine
//! ([`ConfigMapJournal`], a ConfigMap in a cluster every replica reaches).
//!
//! [`JournalStore`] is the seam the driver writes through; both stores hold
//! the same JSON record (`startedMs`, `operation`, `machine`).

mod configmap;
mod file;

pub use configmap::{ConfigMapJournal, JOURNAL_KEY, MAX_JOURNAL_BYTES};
pub use file::Journal;

use futures::future::BoxFuture;
use tidegate_rollout::machine::FleetRollout;

/// What a journal holds.
#[derive(Debug, Clone)]
pub struct Journaled {
    /// When the rollout started (Unix ms).
    pub started_ms: i64,
    /// The audit operation of the run that wrote it (the one a resume links to).
    pub operation: Option<u64>,
    /// The machine.
    pub machine: FleetRollout,
}

/// Why a journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal file could not be read or written.
    #[error("rollout journal {location}: {source}")]
    Io {
        /// Where the journal is.
        location: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The journal holds something that is not a journaled rollout.
    #[error(
        "rollout journal {location} cannot be read: {source}; it was not written by this version of tidegate, or was edited by hand: remove it to start a new rollout"
    )]
    Corrupt {
        /// Where the journal is.
        location: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The cluster holding the journal could not be read or written.
    #[error("rollout journal {location}: {source}")]
    Cluster {
        /// Where the journal is.
        location: String,
        /// The API error.
        #[source]
        source: tidegate_cluster::ClusterError,
    },
    /// Someone else wrote or removed the journal since this run last read or
    /// wrote it: another replica runs the rollout now. This run must stop.
    #[error(
        "rollout journal {location} was changed by {writer} since this run wrote it: another controller replica has taken the rollout over; this run stops"
    )]
    Conflict {
        /// Where the journal is.
        location: String,
        /// Who wrote it last (its `tidegate.dev/journal-writer`), or "someone"
        /// when it was removed.
        writer: String,
    },
    /// The machine is too large for the store.
    #[error(
        "rollout journal {location}: {bytes} bytes is more than the {limit} a ConfigMap can hold; split the environment into smaller ones"
    )]
    TooLarge {
        /// Where the journal is.
        location: String,
        /// Its size.
        bytes: usize,
        /// The store's limit.
        limit: usize,
    },
}

/// Where a rollout's journal is kept: load, save and remove the serialized
/// machine. Implementations make a save durable before it returns.
pub trait JournalStore: Send + Sync + std::fmt::Debug {
    /// Where the journal is, for messages (a path, or `cluster/namespace/name`).
    fn location(&self) -> String;

    /// The journaled rollout, if there is one.
    fn load(&self) -> BoxFuture<'_, Result<Option<Journaled>, JournalError>>;

    /// Writes the machine, the rollout's start time (Unix ms) and the audit
    /// operation of this run, replacing what was there.
    fn save<'a>(
        &'a self,
        started_ms: i64,
        operation: Option<u64>,
        machine: &'a FleetRollout,
    ) -> BoxFuture<'a, Result<(), JournalError>>;

    /// Removes the journal of a finished rollout (nothing to do when there is none).
    fn remove(&self) -> BoxFuture<'_, Result<(), JournalError>>;
}

/// The stored form of a journal.
pub(crate) fn encode(
    started_ms: i64,
    operation: Option<u64>,
    machine: &FleetRollout,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&serde_json::json!({
        "startedMs": started_ms,
        "operation": operation,
        "machine": machine,
    }))
}

/// Reads the stored form of a journal.
pub(crate) fn decode(bytes: &[u8]) -> Result<Journaled, serde_json::Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Record {
        #[serde(default)]
        started_ms: i64,
        #[serde(default)]
        operation: Option<u64>,
        machine: FleetRollout,
    }
    let record: Record = serde_json::from_slice(bytes)?;
    Ok(Journaled {
        started_ms: record.started_ms,
        operation: record.operation,
        machine: record.machine,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tidegate_health::HealthStatus;
    use tidegate_rollout::{
        machine::{ClusterStart, RolloutConfig},
        plan_fleet,
    };

    /// A two-cluster machine, one wave each, at revision `rev`.
    pub(crate) fn machine(rev: &str) -> FleetRollout {
        let plan = plan_fleet(
            [("a", Some(1)), ("b", Some(2))],
            &tidegate_core::environment::Rollout::default(),
        )
        .expect("plan");
        let start = ClusterStart {
            current_revision: Some("old".into()),
            last_good_revision: Some("old".into()),
            health: HealthStatus::Healthy,
            drifted: false,
            unknown_state: false,
        };
        FleetRollout::new(
            &plan,
            RolloutConfig::from_plan(&plan, rev),
            vec![("a".into(), start.clone()), ("b".into(), start)],
        )
        .expect("machine")
    }

    #[test]
    fn a_record_round_trips() {
        let m = machine("abc");
        let bytes = encode(42, Some(7), &m).expect("encode");
        let back = decode(&bytes).expect("decode");
        assert_eq!(back.started_ms, 42);
        assert_eq!(back.operation, Some(7));
        assert_eq!(
            serde_json::to_value(&back.machine).expect("json"),
            serde_json::to_value(&m).expect("json")
        );
    }

    #[test]
    fn a_record_without_a_machine_is_refused() {
        assert!(decode(br#"{"startedMs": 1}"#).is_err());
        assert!(decode(b"not json").is_err());
    }
}
