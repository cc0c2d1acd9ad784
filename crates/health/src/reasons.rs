//! Words controllers use in condition reasons and phases, sorted into
//! "work in progress", "failed" and "done".
//!
//! Reasons are CamelCase (`ReconciliationFailed`, `Provisioning`), phases
//! are words or short sentences (`Running`, `Cluster in healthy state`). Both
//! are matched case-insensitively on word stems, failure first, so
//! `ProvisioningFailed` is a failure although it contains `Provisioning`.

use crate::status::HealthStatus;

/// Stems that say something failed or is stuck for good.
const FAILURE: &[&str] = &[
    "fail",
    "error",
    "invalid",
    "denied",
    "forbidden",
    "unauthori",
    "exceeded",
    "timeout",
    "timedout",
    "crash",
    "backoff",
    "rejected",
    "expired",
    "misconfigur",
    "unsupported",
    "abort",
    "conflict",
    "degraded",
    "unhealthy",
    "notfound",
    "missing",
    "broken",
    "unrecoverable",
    "lost",
    "retry",
    "noncompliant",
    "cancel",
    "already exists",
    "alreadyexists",
    "notallowed",
    "not allowed",
    "mismatch",
    "health_err",
    "health_warn",
];

/// Stems that say the controller is working on it.
const IN_PROGRESS: &[&str] = &[
    "progress",
    "pending",
    "reconcil",
    "creat",
    "provision",
    "initiali",
    "deploying",
    "updating",
    "upgrading",
    "scaling",
    "starting",
    "restarting",
    "restoring",
    "unavailable",
    "dependenc",
    "wait",
    "install",
    "issuing",
    "applying",
    "processing",
    "building",
    "migrating",
    "resuming",
    "syncing",
    "rolling",
    "deleting",
    "terminating",
    "scheduling",
    "allocating",
    "bootstrapping",
    "configuring",
    "preparing",
    "setting up",
    "settingup",
    "artifactoutdated",
];

/// Phases that mean done and working.
const HEALTHY_PHASES: &[&str] = &[
    "running",
    "succeeded",
    "success",
    "successful",
    "ready",
    "active",
    "bound",
    "available",
    "healthy",
    "complete",
    "completed",
    "deployed",
    "established",
    "provisioned",
    "online",
    "ok",
    "synced",
    "current",
    "done",
    "finished",
    "up",
    "green",
    "health_ok",
    "initialized",
    "installed",
    "created",
    "enabled",
    "reconciled",
    "valid",
    "accepted",
    "admitted",
    "compliant",
    "operational",
    "exists",
    "cluster in healthy state",
];

/// Phases that mean stopped on purpose.
const SUSPENDED_PHASES: &[&str] = &[
    "paused",
    "suspended",
    "stopped",
    "hibernated",
    "hibernating",
    "disabled",
    "halted",
];

/// True when a condition reason says the object was stopped on purpose
/// (`ReconcilePaused`, `Stopped`, `Hibernated`).
pub(crate) fn is_suspension(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    ["paused", "stopped", "suspended", "hibernat", "disabled"]
        .iter()
        .any(|w| lower.contains(w))
}

/// True when a message says something went wrong (`Error: checksum
/// mismatch`, `failed to pull`).
pub(crate) fn message_reports_failure(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["error", "fail"].iter().any(|w| lower.contains(w))
}

/// True when a reason says the pods, replicas or endpoints an object runs
/// are not ready yet (`StatefulSetNotReady`, `NotAllPodsReady`,
/// `NoEndpointsAvailable`, `DeploymentNotAvailable`): a workload coming up.
pub(crate) fn waits_for_workload(r: &str) -> bool {
    let lower = r.to_ascii_lowercase();
    let child = [
        "pod",
        "replica",
        "statefulset",
        "deployment",
        "daemonset",
        "endpoint",
    ]
    .iter()
    .any(|w| lower.contains(w));
    let not_yet = [
        "notready",
        "notavailable",
        "noendpoints",
        "notallpods",
        "unavailable",
    ]
    .iter()
    .any(|w| lower.contains(w));
    child && not_yet && reason(r) != Reading::Failed
}

/// True when a message reports work finished (`Application is created`,
/// `Installation successful.`): its in-progress words are history.
pub(crate) fn says_done(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "success",
        "succeeded",
        "created",
        "completed",
        "finished",
        "is ready",
        "are ready",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// How a condition reason reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A failure word: the controller gave up or needs a person.
    Failed,
    /// Work in progress.
    InProgress,
    /// Neither.
    Other,
}

/// Classifies a condition reason (`ReconciliationFailed`, `Provisioning`).
pub(crate) fn reason(reason: &str) -> Reading {
    let lower = reason.to_ascii_lowercase();
    if FAILURE.iter().any(|w| lower.contains(w)) {
        Reading::Failed
    } else if IN_PROGRESS.iter().any(|w| lower.contains(w)) {
        Reading::InProgress
    } else {
        Reading::Other
    }
}

/// The health a `status.phase` (or `state`) value stands for, if it is a
/// phase we know.
pub(crate) fn phase(phase: &str) -> Option<HealthStatus> {
    let lower = phase.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    if HEALTHY_PHASES.contains(&lower.as_str()) {
        return Some(HealthStatus::Healthy);
    }
    if SUSPENDED_PHASES.contains(&lower.as_str()) {
        return Some(HealthStatus::Suspended);
    }
    match lower.as_str() {
        "unknown" => return Some(HealthStatus::Unknown),
        // Elastic's and others' traffic lights.
        "red" => return Some(HealthStatus::Degraded),
        "yellow" => return Some(HealthStatus::Progressing),
        // Placed but not started yet (a KubeVirt VMI's pod is scheduled).
        "scheduled" => return Some(HealthStatus::Progressing),
        // Neither passed nor failed: a person decides (Argo Rollouts' analyses).
        "inconclusive" => return Some(HealthStatus::Unknown),
        // What the object stands for does not exist (Humio's components).
        "notfound" | "not found" => return Some(HealthStatus::Missing),
        _ => {}
    }
    match reason(&lower) {
        Reading::Failed => Some(HealthStatus::Degraded),
        Reading::InProgress => Some(HealthStatus::Progressing),
        // `StepPaused`, `ReconcileSuspended`.
        Reading::Other if is_suspension(&lower) => Some(HealthStatus::Suspended),
        // `ClusterRunning`, `CruiseControlTopicReady`: a healthy word at the
        // end, unless negated (`NotReady`, `Unavailable`).
        Reading::Other if healthy_ending(&lower) => Some(HealthStatus::Healthy),
        Reading::Other => None,
    }
}

/// A phase that ends with a healthy word and is not negated.
fn healthy_ending(lower: &str) -> bool {
    let negated = lower.contains("not")
        || lower.starts_with("un")
        || lower.starts_with("no")
        || ["unready", "unavailable", "unhealthy", "inactive"]
            .iter()
            .any(|n| lower.contains(n));
    !negated
        && [
            "running",
            "ready",
            "healthy",
            "succeeded",
            "available",
            "active",
        ]
        .iter()
        .any(|w| lower.ends_with(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_words_win_over_progress_words() {
        for r in [
            "ReconciliationFailed",
            "ProvisioningFailed",
            "InstallFailed",
            "UpgradeFailed",
            "CreateError",
            "ProgressDeadlineExceeded",
            "ImagePullBackOff",
            "InvalidSpec",
        ] {
            assert_eq!(reason(r), Reading::Failed, "{r}");
        }
    }

    #[test]
    fn progress_words_read_as_in_progress() {
        // Every reason of the documented list: tests/custom_resources.rs.
        for r in [
            "Provisioning",
            "ReconciliationInProgress",
            "WaitingForDependencies",
        ] {
            assert_eq!(reason(r), Reading::InProgress, "{r}");
        }
        assert_eq!(reason("Succeeded"), Reading::Other);
        assert_eq!(reason(""), Reading::Other);
    }

    #[test]
    fn phases_map_to_health() {
        assert_eq!(phase("Running"), Some(HealthStatus::Healthy));
        assert_eq!(phase("Succeeded"), Some(HealthStatus::Healthy));
        assert_eq!(phase("Pending"), Some(HealthStatus::Progressing));
        assert_eq!(phase("Provisioning"), Some(HealthStatus::Progressing));
        assert_eq!(phase("Failed"), Some(HealthStatus::Degraded));
        assert_eq!(phase("Error"), Some(HealthStatus::Degraded));
        assert_eq!(phase("Paused"), Some(HealthStatus::Suspended));
        assert_eq!(phase("Whatever"), None);
        assert_eq!(phase(""), None);
    }
}
