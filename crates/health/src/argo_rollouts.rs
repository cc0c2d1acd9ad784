//! Argo Rollouts' `argoproj.io` Rollout: a Deployment with canary and
//! blue-green steps. Its status keeps the Deployment's replica counts and
//! adds pauses, aborts and which pod template the stable / active service
//! points at.

use crate::apps;
use crate::field::{array, bool_at, condition, get, int, int_or, str_at};
use crate::status::Health;
use serde_json::Value;

/// Rollout: see the crate documentation's table.
pub(crate) fn rollout(obj: &Value) -> Health {
    let status = match obj.get("status") {
        Some(Value::Object(map)) if !map.is_empty() => &obj["status"],
        _ => return Health::progressing("Waiting for the rollout controller to report a status"),
    };
    if let Some(c) = condition(obj, "InvalidSpec")
        && c.is_true()
    {
        return Health::degraded(format!("Invalid rollout spec: {}", c.message_or_reason()));
    }
    if bool_at(status, &["abort"]) {
        return Health::degraded(match str_at(status, &["message"]) {
            "" => "Rollout was aborted: the stable version serves all traffic".to_string(),
            m => format!("Rollout was aborted: {m}"),
        });
    }
    if let Some(c) = condition(obj, "Progressing")
        && matches!(c.reason, "ProgressDeadlineExceeded" | "RolloutAborted")
    {
        return Health::degraded(c.describe());
    }
    if str_at(status, &["phase"]) == "Degraded" {
        return Health::degraded(format!(
            "status.phase is Degraded: {}",
            str_at(status, &["message"])
        ));
    }
    // Before v1.0 `observedGeneration` was a hash of the spec: only a number
    // can be compared.
    let wanted = int_or(obj, &["metadata", "generation"], 0);
    if let Some(observed) = number(get(status, &["observedGeneration"]))
        && observed < wanted
    {
        return Health::progressing(format!(
            "Waiting for the rollout controller to observe generation {wanted} (observed {observed})"
        ));
    }
    // With `spec.workloadRef`, the referenced Deployment's generation is
    // copied into an annotation; the controller reports which it has seen.
    let workload = number(get(
        obj,
        &[
            "metadata",
            "annotations",
            "rollout.argoproj.io/workload-generation",
        ],
    ));
    if let (Some(wanted), Some(observed)) = (
        workload,
        number(get(status, &["workloadObservedGeneration"])),
    ) && observed < wanted
    {
        return Health::progressing(format!(
            "Waiting for the rollout controller to observe the referenced workload's generation {wanted} (observed {observed})"
        ));
    }
    if bool_at(obj, &["spec", "paused"])
        || bool_at(status, &["controllerPause"])
        || !array(status, &["pauseConditions"]).is_empty()
    {
        let why = array(status, &["pauseConditions"])
            .iter()
            .map(|p| str_at(p, &["reason"]))
            .filter(|r| !r.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        return Health::suspended(match why.as_str() {
            "" => "Rollout is paused".to_string(),
            why => format!("Rollout is paused ({why}): promote it to go on"),
        });
    }
    if let Some(h) = apps::rolling_replicas(obj) {
        return h;
    }
    let replicas = int_or(obj, &["spec", "replicas"], 1);
    let available = int_or(status, &["availableReplicas"], 0);
    let pod_hash = str_at(status, &["currentPodHash"]);
    let spec_strategy = get(obj, &["spec", "strategy"]);
    if spec_strategy.and_then(|s| s.get("blueGreen")).is_some() {
        let active = match str_at(status, &["blueGreen", "activeSelector"]) {
            "" => str_at(status, &["activeSelector"]),
            a => a,
        };
        if active != pod_hash {
            return Health::progressing(
                "Waiting for the active service to switch to the new version",
            );
        }
    } else {
        let stable = match str_at(status, &["stableRS"]) {
            "" => str_at(status, &["canary", "stableRS"]),
            s => s,
        };
        if !stable.is_empty() && stable != pod_hash {
            return Health::progressing(format!(
                "Waiting for the canary to finish its steps (at step {})",
                int(status, &["currentStepIndex"]).unwrap_or(0)
            ));
        }
    }
    Health::healthy(format!(
        "Rollout complete: {available} of {replicas} replicas are available"
    ))
}

/// A generation written as a number or as a numeric string.
fn number(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        v => v.as_i64(),
    }
}
