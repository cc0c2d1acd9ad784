//! What is worth telling people, derived from audit records: every
//! notification is an audit entry first, so each is sent once, in the
//! trail's order, and says no more than the trail does (no Secret value
//! ever enters the trail).

use std::fmt;
use tidegate_audit::{Action, Outcome, Phase, Record};
use tidegate_fleet::APPROVAL_REQUESTED;

/// The events a route can select (`events:` in the operator's file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// A fleet rollout began (`rollout-start` intent).
    RolloutStarted,
    /// A fleet rollout ended with every cluster Healthy (`rollout-end`, success).
    RolloutSucceeded,
    /// A fleet rollout failed, halted or was interrupted (`rollout-end`, any other outcome).
    RolloutFailed,
    /// A cluster was rolled back (`rollback`).
    Rollback,
    /// A revision was quarantined (`quarantine`).
    Quarantine,
    /// A blue-green switch of an app ended (`switch` summary).
    Switch,
    /// Drift was found and left (`drift-detected`, `selfHeal: false`).
    DriftDetected,
    /// Drift was undone (`drift-corrected`).
    DriftCorrected,
    /// A wave waits for `tidegate approve` (`approval-requested`).
    ApprovalNeeded,
}

impl EventKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [EventKind; 9] = [
        EventKind::RolloutStarted,
        EventKind::RolloutSucceeded,
        EventKind::RolloutFailed,
        EventKind::Rollback,
        EventKind::Quarantine,
        EventKind::Switch,
        EventKind::DriftDetected,
        EventKind::DriftCorrected,
        EventKind::ApprovalNeeded,
    ];

    /// The name in the operator's file, the payloads and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RolloutStarted => "rollout-started",
            EventKind::RolloutSucceeded => "rollout-succeeded",
            EventKind::RolloutFailed => "rollout-failed",
            EventKind::Rollback => "rollback",
            EventKind::Quarantine => "quarantine",
            EventKind::Switch => "switch",
            EventKind::DriftDetected => "drift-detected",
            EventKind::DriftCorrected => "drift-corrected",
            EventKind::ApprovalNeeded => "approval-needed",
        }
    }

    /// Parses a name of the operator's file.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The event an audit record is, if any. Intents of rollbacks and
    /// switches run from the CLI are skipped (their outcome is the event),
    /// as are a switch's per-cluster entries (the summary is the event).
    pub fn of(record: &Record) -> Option<EventKind> {
        let e = &record.entry;
        Some(match (&e.action, record.phase) {
            (Action::RolloutStart, Phase::Intent) => EventKind::RolloutStarted,
            (Action::RolloutEnd, Phase::Outcome) => match e.outcome {
                Some(Outcome::Success) => EventKind::RolloutSucceeded,
                _ => EventKind::RolloutFailed,
            },
            (Action::Rollback, Phase::Event | Phase::Outcome) => EventKind::Rollback,
            (Action::Quarantine, _) => EventKind::Quarantine,
            (Action::Switch, Phase::Event | Phase::Outcome) if e.cluster.is_none() => {
                EventKind::Switch
            }
            (Action::DriftDetected, _) => EventKind::DriftDetected,
            (Action::DriftCorrected, _) => EventKind::DriftCorrected,
            (Action::Other(name), _) if name == APPROVAL_REQUESTED => EventKind::ApprovalNeeded,
            _ => return None,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event to send: its kind and the audit record it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// What happened.
    pub kind: EventKind,
    /// The audit record (its `seq` keys deduplication).
    pub record: Record,
}

impl Notice {
    /// The notice of `record`, if it is an event at all.
    pub fn of(record: Record) -> Option<Notice> {
        EventKind::of(&record).map(|kind| Notice { kind, record })
    }

    /// The environment (every event has one; `-` otherwise).
    pub fn environment(&self) -> &str {
        self.record.entry.environment.as_deref().unwrap_or("-")
    }

    /// The commit the event is about (the rollout's target; for a
    /// rollback, the revision rolled back from).
    pub fn revision(&self) -> Option<&str> {
        let e = &self.record.entry;
        match self.kind {
            EventKind::Rollback => e.from.as_ref().or(e.to.as_ref()),
            _ => e.to.as_ref().or(e.from.as_ref()),
        }
        .map(|r| r.sha.as_str())
    }

    /// One line for people: `prod: rollout of 1a2b3c4d5e6f failed — rolled back after …`.
    pub fn summary(&self) -> String {
        let e = &self.record.entry;
        let env = self.environment();
        let rev = self.revision().map(short).unwrap_or("-");
        let place = match (&e.cluster, &e.app) {
            (Some(c), Some(a)) => format!(" in {c} (app {a})"),
            (Some(c), None) => format!(" in {c}"),
            (None, Some(a)) => format!(" (app {a})"),
            (None, None) => String::new(),
        };
        let what = match self.kind {
            EventKind::RolloutStarted => format!("rollout of {rev} started"),
            EventKind::RolloutSucceeded => format!("rollout of {rev} succeeded"),
            EventKind::RolloutFailed => format!("rollout of {rev} failed"),
            EventKind::Rollback => format!("rolled back from {rev}{place}"),
            EventKind::Quarantine => format!("revision {rev} quarantined"),
            EventKind::Switch => format!("blue-green switch{place}"),
            EventKind::DriftDetected => format!("drift detected{place}"),
            EventKind::DriftCorrected => format!("drift corrected{place}"),
            EventKind::ApprovalNeeded => format!("rollout of {rev} waits for approval"),
        };
        match &e.message {
            Some(m) if !m.is_empty() => format!("{env}: {what} — {m}"),
            _ => format!("{env}: {what}"),
        }
    }
}

/// The first 12 characters of a commit SHA.
pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tidegate_audit::{Actor, Entry, Revision, Trigger};

    /// A record as the store would return it.
    pub(crate) fn record(seq: u64, phase: Phase, entry: Entry) -> Record {
        Record {
            seq,
            time_ms: 1_764_633_600_000,
            phase,
            operation: None,
            entry,
            prev_hash: "0".repeat(64),
            hash: "ab".repeat(32),
        }
    }

    pub(crate) fn entry(action: Action) -> Entry {
        Entry::new(
            Actor::new("tidegate-controller/ci@host", Trigger::ControllerPoll),
            action,
        )
        .env("prod")
        .revisions(None, Some(Revision::sha("0123456789abcdef0123")))
    }

    #[test]
    fn audit_records_map_to_events_once_each() {
        let kinds = |phase, e: Entry| EventKind::of(&record(1, phase, e));
        assert_eq!(
            kinds(Phase::Intent, entry(Action::RolloutStart)),
            Some(EventKind::RolloutStarted)
        );
        assert_eq!(
            kinds(
                Phase::Outcome,
                entry(Action::RolloutEnd).outcome(Outcome::Success)
            ),
            Some(EventKind::RolloutSucceeded)
        );
        for outcome in [Outcome::Failure, Outcome::Aborted, Outcome::Partial] {
            assert_eq!(
                kinds(Phase::Outcome, entry(Action::RolloutEnd).outcome(outcome)),
                Some(EventKind::RolloutFailed)
            );
        }
        // A CLI rollback's intent is not an event; its outcome is.
        assert_eq!(kinds(Phase::Intent, entry(Action::Rollback)), None);
        assert_eq!(
            kinds(Phase::Event, entry(Action::Rollback).cluster("a")),
            Some(EventKind::Rollback)
        );
        // A switch: the summary, not each cluster's step.
        assert_eq!(
            kinds(Phase::Event, entry(Action::Switch)),
            Some(EventKind::Switch)
        );
        assert_eq!(
            kinds(Phase::Event, entry(Action::Switch).cluster("a")),
            None
        );
        assert_eq!(
            kinds(
                Phase::Event,
                entry(Action::Other("approval-requested".into()))
            ),
            Some(EventKind::ApprovalNeeded)
        );
        for quiet in [
            Action::WaveStart,
            Action::Apply,
            Action::Sync,
            Action::Approve,
        ] {
            assert_eq!(kinds(Phase::Event, entry(quiet)), None);
        }
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn the_summary_names_environment_revision_place_and_message() {
        let n = Notice::of(record(
            7,
            Phase::Event,
            entry(Action::Rollback)
                .cluster("eks-us-east-1")
                .revisions(
                    Some(Revision::sha("fedcba9876543210")),
                    Some(Revision::sha("0123456789abcdef")),
                )
                .message("back to the last healthy revision"),
        ))
        .expect("an event");
        assert_eq!(
            n.summary(),
            "prod: rolled back from fedcba987654 in eks-us-east-1 — back to the last healthy revision"
        );
    }
}
