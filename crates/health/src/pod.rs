//! Pod health, following Argo CD: waiting reasons that mean "this will not
//! start by itself" make a long-running pod Degraded; finished pods are
//! Healthy or Degraded by phase.

use crate::field::{array, condition, get, str_at};
use crate::status::Health;
use serde_json::Value;

/// Whether a container waiting reason means the container cannot start on
/// its own: `CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`,
/// `CreateContainerConfigError`, `InvalidImageName`, ...
fn is_stuck_waiting_reason(reason: &str) -> bool {
    reason.starts_with("Err")
        || reason.ends_with("Error")
        || reason.ends_with("BackOff")
        || reason == "InvalidImageName"
}

/// Init containers first, then app containers, as the kubelet runs them.
fn container_statuses(obj: &Value) -> impl Iterator<Item = &Value> {
    array(obj, &["status", "initContainerStatuses"])
        .iter()
        .chain(array(obj, &["status", "containerStatuses"]))
}

/// `container "app": CrashLoopBackOff: back-off 5m0s restarting ...`.
fn describe_waiting(ctr: &Value) -> String {
    let name = str_at(ctr, &["name"]);
    let reason = str_at(ctr, &["state", "waiting", "reason"]);
    let message = str_at(ctr, &["state", "waiting", "message"]);
    if message.is_empty() {
        format!("container {name:?}: {reason}")
    } else {
        format!("container {name:?}: {reason}: {message}")
    }
}

/// Why a container of a failed pod failed, if it says.
fn termination_message(ctr: &Value) -> Option<String> {
    let terminated = get(ctr, &["state", "terminated"])?;
    let name = str_at(ctr, &["name"]);
    let message = str_at(terminated, &["message"]);
    let reason = str_at(terminated, &["reason"]);
    let exit_code = terminated
        .get("exitCode")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if !message.is_empty() {
        Some(format!("container {name:?}: {message}"))
    } else if exit_code != 0 || reason == "OOMKilled" {
        Some(format!(
            "container {name:?} terminated with {reason} (exit code {exit_code})"
        ))
    } else {
        None
    }
}

/// `status.message` (after `status.reason`, e.g. `Evicted: ...`), or
/// `fallback` when the kubelet left none.
fn pod_message(obj: &Value, fallback: impl FnOnce() -> String) -> String {
    let message = str_at(obj, &["status", "message"]).trim();
    let reason = str_at(obj, &["status", "reason"]);
    match (reason, message) {
        (_, "") => fallback(),
        ("", message) => message.to_string(),
        (reason, message) => format!("{reason}: {message}"),
    }
}

/// Pod: see the crate documentation's table.
pub(crate) fn pod(obj: &Value) -> Health {
    let restart_policy = match str_at(obj, &["spec", "restartPolicy"]) {
        "" => "Always",
        other => other,
    };
    // Only for pods that restart forever: a hook pod (Never / OnFailure)
    // waiting on an image must not fail a sync that may still succeed.
    if restart_policy == "Always" {
        let stuck: Vec<String> = container_statuses(obj)
            .filter(|c| is_stuck_waiting_reason(str_at(c, &["state", "waiting", "reason"])))
            .map(describe_waiting)
            .collect();
        if !stuck.is_empty() {
            return Health::degraded(stuck.join("; "));
        }
    }
    match str_at(obj, &["status", "phase"]) {
        "Pending" => Health::progressing(pod_message(obj, || pending_reason(obj))),
        "Succeeded" => Health::healthy(pod_message(obj, || "Pod completed successfully".into())),
        "Failed" => Health::degraded(pod_message(obj, || {
            container_statuses(obj)
                .find_map(termination_message)
                .unwrap_or_else(|| "Pod failed".into())
        })),
        "Running" if restart_policy == "Always" => running(obj),
        "Running" => Health::progressing(format!(
            "Pod is running (restartPolicy {restart_policy}): waiting for it to finish"
        )),
        "" => Health::unknown("Pod has no phase"),
        other => Health::unknown(pod_message(obj, || format!("Pod phase is {other}"))),
    }
}

/// A running pod that restarts forever: Healthy once Ready.
fn running(obj: &Value) -> Health {
    let containers = array(obj, &["status", "containerStatuses"]);
    let total = containers.len();
    let ready_count = containers
        .iter()
        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let ready_condition = condition(obj, "Ready");
    let ready = match ready_condition {
        Some(c) => c.is_true(),
        None => total > 0 && ready_count == total,
    };
    if ready {
        return Health::healthy(format!(
            "Pod is running: {ready_count}/{total} containers are ready"
        ));
    }
    // Not ready and a container has already died once: it crashed and came
    // back (or is coming back); a person should look.
    if let Some(ctr) = containers
        .iter()
        .find(|c| get(c, &["lastState", "terminated"]).is_some())
    {
        let name = str_at(ctr, &["name"]);
        let reason = str_at(ctr, &["lastState", "terminated", "reason"]);
        let restarts = ctr.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        return Health::degraded(format!(
            "Pod is not ready: container {name:?} restarted {restarts} times, last terminated with {reason}"
        ));
    }
    let detail = ready_condition
        .filter(|c| !c.message.is_empty())
        .map(|c| format!(" ({})", c.message))
        .unwrap_or_default();
    Health::progressing(format!(
        "Waiting for containers to be ready: {ready_count}/{total} ready{detail}"
    ))
}

/// Why a pending pod is pending: unschedulable, or which containers wait.
fn pending_reason(obj: &Value) -> String {
    if let Some(c) = condition(obj, "PodScheduled")
        && c.is_false()
    {
        return format!("Pod is not scheduled: {}", c.message_or_reason());
    }
    let waiting: Vec<String> = container_statuses(obj)
        .filter(|c| get(c, &["state", "waiting"]).is_some())
        .map(describe_waiting)
        .collect();
    if waiting.is_empty() {
        "Pod is pending".into()
    } else {
        format!("Pod is pending: {}", waiting.join("; "))
    }
}
