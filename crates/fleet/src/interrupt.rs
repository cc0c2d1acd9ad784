//! Stopping a rollout on purpose (a controller's SIGTERM, a replica that lost
//! leadership) and closing the audit operations a crash left open.
//!
//! A stop lets the steps in flight finish for at most the grace period,
//! records what they did, journals the machine, closes every audit intent of
//! the run and returns [`RolloutError::Interrupted`](crate::RolloutError);
//! the driver then releases the locks. The next run (any replica, with
//! `resume`) continues from the journal and re-applies only what had not
//! finished.

use std::collections::BTreeSet;
use tidegate_audit::{
    Action as AuditAction, AuditError, Entry, OperationId, Outcome as AuditOutcome,
};
use tidegate_sync::Audit;
use tokio::sync::watch;
use tracing::info;

/// The detail that marks an outcome written for an operation that was
/// interrupted (by a stop or a crash) rather than finished.
pub const INTERRUPTED_DETAIL: &str = "interrupted";

/// Resolves once `stop` says stop (never without one).
pub(crate) async fn stopped(stop: Option<&watch::Receiver<bool>>) {
    match stop {
        Some(stop) => {
            let mut stop = stop.clone();
            // Err: the sender is gone; nobody can ask to stop any more.
            if stop.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Gives every open audit operation of `environment` an outcome — those of
/// the whole environment (no cluster) and those of the `clusters` this run
/// holds the lock of, except `keep` (the run's own): `aborted`, with `why`
/// and the detail `interrupted: true`. Returns the operations closed.
///
/// Only the holder of the environment's lock calls this, so no other run
/// can be writing those operations.
pub fn close_interrupted(
    audit: &Audit,
    environment: &str,
    clusters: &BTreeSet<String>,
    keep: Option<OperationId>,
    why: &str,
) -> Result<Vec<OperationId>, AuditError> {
    let mut closed = Vec::new();
    for intent in audit.sink.open_operations()? {
        let op = OperationId(intent.seq);
        let ours = intent.entry.environment.as_deref() == Some(environment)
            && intent
                .entry
                .cluster
                .as_ref()
                .is_none_or(|c| clusters.contains(c));
        if !ours || Some(op) == keep {
            continue;
        }
        let action = match &intent.entry.action {
            AuditAction::RolloutStart => AuditAction::RolloutEnd,
            other => other.clone(),
        };
        let mut outcome = Entry::new(audit.actor.clone(), action)
            .outcome(AuditOutcome::Aborted)
            .message(why);
        outcome
            .details
            .insert(INTERRUPTED_DETAIL.into(), "true".into());
        audit.sink.finish_operation(op, outcome)?;
        info!(operation = %op, action = %intent.entry.action, "closed an interrupted audit operation");
        closed.push(op);
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tidegate_audit::{Actor, AuditSink, MemorySink, Trigger};

    #[test]
    fn only_this_environments_open_operations_in_locked_clusters_are_closed() {
        let sink = Arc::new(MemorySink::new());
        let actor = Actor::new("controller", Trigger::ControllerPoll);
        let audit = Audit {
            sink: sink.clone(),
            actor: actor.clone(),
        };
        let begin = |env: &str, cluster: Option<&str>, action| {
            let mut e = Entry::new(actor.clone(), action).env(env);
            if let Some(c) = cluster {
                e = e.cluster(c);
            }
            sink.begin_operation(e).expect("intent")
        };
        let old_rollout = begin("prod", None, AuditAction::RolloutStart);
        let sync_a = begin("prod", Some("a"), AuditAction::Sync);
        let sync_unlocked = begin("prod", Some("z"), AuditAction::Sync);
        let other_env = begin("dev", None, AuditAction::RolloutStart);
        let current = begin("prod", None, AuditAction::RolloutStart);
        let locked: BTreeSet<String> = ["a".to_string()].into();
        let closed =
            close_interrupted(&audit, "prod", &locked, Some(current), "crashed").expect("closed");
        assert_eq!(closed, vec![old_rollout, sync_a]);
        let open: Vec<u64> = sink
            .open_operations()
            .expect("open")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(open, vec![sync_unlocked.0, other_env.0, current.0]);
        let end = sink
            .records()
            .into_iter()
            .find(|r| r.operation == Some(old_rollout.0) && r.entry.outcome.is_some())
            .expect("outcome");
        assert_eq!(end.entry.action, AuditAction::RolloutEnd);
        assert_eq!(end.entry.outcome, Some(AuditOutcome::Aborted));
        assert_eq!(end.entry.details[INTERRUPTED_DETAIL], "true");
    }
}
