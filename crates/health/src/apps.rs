//! `apps` workloads: Deployment, StatefulSet, DaemonSet, ReplicaSet.
//!
//! The rules follow `kubectl rollout status` and Argo CD's health checks.

use crate::field::{bool_at, condition, generation, int, int_or, str_at};
use crate::status::Health;
use serde_json::Value;

/// `Some(Progressing)` while the controller has not yet observed the latest
/// spec (`status.observedGeneration < metadata.generation`, or absent).
fn generation_not_observed(obj: &Value, what: &str) -> Option<Health> {
    let observed = int_or(obj, &["status", "observedGeneration"], 0);
    let wanted = generation(obj);
    if observed == 0 || observed < wanted {
        Some(Health::progressing(format!(
            "Waiting for rollout to finish: observed {what} generation {observed} is behind generation {wanted}"
        )))
    } else {
        None
    }
}

/// Deployment: see the crate documentation's table.
pub(crate) fn deployment(obj: &Value) -> Health {
    // Argo CD checks `paused` first: a paused rollout is not progressing.
    if bool_at(obj, &["spec", "paused"]) {
        return Health::suspended("Deployment is paused");
    }
    if let Some(h) = generation_not_observed(obj, "deployment") {
        return h;
    }
    if let Some(c) = condition(obj, "Progressing")
        && c.reason == "ProgressDeadlineExceeded"
    {
        return Health::degraded(format!("Progress deadline exceeded: {}", c.describe()));
    }
    rolling_replicas(obj).unwrap_or_else(|| {
        let wanted = int_or(obj, &["spec", "replicas"], 1);
        let available = int_or(obj, &["status", "availableReplicas"], 0);
        Health::healthy(format!(
            "Rollout complete: {available} of {wanted} replicas are available"
        ))
    })
}

/// Progressing while a Deployment-like rollout (a Deployment, an Argo
/// Rollout) has replicas to update, old replicas to terminate or updated
/// replicas not yet available; `None` when it is done.
pub(crate) fn rolling_replicas(obj: &Value) -> Option<Health> {
    let wanted = int_or(obj, &["spec", "replicas"], 1);
    let replicas = int_or(obj, &["status", "replicas"], 0);
    let updated = int_or(obj, &["status", "updatedReplicas"], 0);
    let available = int_or(obj, &["status", "availableReplicas"], 0);
    if updated < wanted {
        return Some(Health::progressing(format!(
            "Waiting for rollout to finish: {updated} of {wanted} new replicas have been updated"
        )));
    }
    if replicas > updated {
        return Some(Health::progressing(format!(
            "Waiting for rollout to finish: {} old replicas are pending termination",
            replicas.saturating_sub(updated)
        )));
    }
    (available < updated).then(|| {
        Health::progressing(format!(
            "Waiting for rollout to finish: {available} of {updated} updated replicas are available"
        ))
    })
}

/// StatefulSet: see the crate documentation's table.
pub(crate) fn stateful_set(obj: &Value) -> Health {
    if let Some(h) = generation_not_observed(obj, "statefulset") {
        return h;
    }
    let wanted = int_or(obj, &["spec", "replicas"], 1);
    let ready = int_or(obj, &["status", "readyReplicas"], 0);
    let updated = int_or(obj, &["status", "updatedReplicas"], 0);
    if ready < wanted {
        return Health::progressing(format!(
            "Waiting for {} pods to be ready: {ready} of {wanted} are ready",
            wanted.saturating_sub(ready)
        ));
    }
    let strategy = match str_at(obj, &["spec", "updateStrategy", "type"]) {
        "" => "RollingUpdate",
        other => other,
    };
    if strategy == "OnDelete" {
        return Health::healthy(format!(
            "{ready} of {wanted} pods are ready (OnDelete: pods take the new revision when deleted)"
        ));
    }
    let partition = int(
        obj,
        &["spec", "updateStrategy", "rollingUpdate", "partition"],
    )
    .unwrap_or(0);
    if partition > 0 {
        let target = wanted.saturating_sub(partition).max(0);
        if updated < target {
            return Health::progressing(format!(
                "Waiting for partitioned roll out to finish: {updated} of {target} new pods have been updated"
            ));
        }
        return Health::healthy(format!(
            "Partitioned roll out complete: {updated} new pods have been updated, pods below ordinal {partition} stay at the old revision"
        ));
    }
    let current_revision = str_at(obj, &["status", "currentRevision"]);
    let update_revision = str_at(obj, &["status", "updateRevision"]);
    if updated < wanted {
        return Health::progressing(format!(
            "Waiting for rolling update to finish: {updated} of {wanted} pods are at revision {update_revision}"
        ));
    }
    if current_revision != update_revision {
        return Health::progressing(format!(
            "Waiting for rolling update to complete: current revision {current_revision}, update revision {update_revision}"
        ));
    }
    Health::healthy(format!(
        "Rolling update complete: {wanted} pods at revision {current_revision}"
    ))
}

/// DaemonSet: see the crate documentation's table.
pub(crate) fn daemon_set(obj: &Value) -> Health {
    if let Some(h) = generation_not_observed(obj, "daemon set") {
        return h;
    }
    let desired = int_or(obj, &["status", "desiredNumberScheduled"], 0);
    let updated = int_or(obj, &["status", "updatedNumberScheduled"], 0);
    let available = int_or(obj, &["status", "numberAvailable"], 0);
    if str_at(obj, &["spec", "updateStrategy", "type"]) == "OnDelete" {
        return Health::healthy(format!(
            "{updated} of {desired} pods are at the new revision (OnDelete: pods take it when deleted)"
        ));
    }
    if updated < desired {
        return Health::progressing(format!(
            "Waiting for daemon set rollout to finish: {updated} of {desired} new pods have been updated"
        ));
    }
    if available < desired {
        return Health::progressing(format!(
            "Waiting for daemon set rollout to finish: {available} of {desired} updated pods are available"
        ));
    }
    Health::healthy(format!("{available} of {desired} pods are available"))
}

/// ReplicaSet: see the crate documentation's table.
pub(crate) fn replica_set(obj: &Value) -> Health {
    if let Some(h) = generation_not_observed(obj, "replica set") {
        return h;
    }
    if let Some(c) = condition(obj, "ReplicaFailure")
        && c.is_true()
    {
        return Health::degraded(c.describe());
    }
    let wanted = int_or(obj, &["spec", "replicas"], 1);
    let available = int_or(obj, &["status", "availableReplicas"], 0);
    if available < wanted {
        return Health::progressing(format!(
            "Waiting for rollout to finish: {available} of {wanted} replicas are available"
        ));
    }
    Health::healthy(format!("{available} of {wanted} replicas are available"))
}
