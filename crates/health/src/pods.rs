//! Fail fast: a Deployment's new pods that say the release can never work.
//!
//! A crash-looping release or an image that cannot be pulled keeps a
//! Deployment Progressing until its progress deadline, though its pods say
//! within seconds that it will never become available. [`fail_fast`] reads
//! that from the Deployment and the pods of its newest ReplicaSet
//! ([`new_pod_template_hash`] finds it); the caller decides how long a
//! verdict must last (a grace) before it fails the cluster.

use serde_json::Value;
use std::fmt;

/// Container waiting reasons that mean the release will not start.
pub const FATAL_WAITING_REASONS: [&str; 5] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

/// Why a Deployment's new pods will not become available.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FatalState {
    /// The pod, when a pod says so (`None` for `ProgressDeadlineExceeded`).
    pub pod: Option<String>,
    /// The container.
    pub container: Option<String>,
    /// The waiting reason, or `ProgressDeadlineExceeded`.
    pub reason: String,
    /// The kubelet's or controller's message (may be empty).
    pub message: String,
    /// The container's restart count.
    pub restarts: i64,
    /// When the pod (or Deployment) first reported it, as the API server
    /// wrote it: the `Ready=False` condition's transition time of the pod
    /// (the `Progressing` condition's for the Deployment), if any.
    pub reported_at: Option<String>,
}

impl fmt::Display for FatalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.pod, &self.container) {
            (Some(pod), Some(container)) => {
                write!(f, "pod {pod} container {container}: {}", self.reason)?;
                if self.restarts > 0 {
                    write!(f, " ({} restarts)", self.restarts)?;
                }
            }
            _ => write!(f, "Deployment: {}", self.reason)?,
        }
        if !self.message.is_empty() {
            let message = one_line(&self.message);
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

/// Messages quote container output and image names: keep one short line.
fn one_line(message: &str) -> String {
    let line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    line.trim().to_string()
}

/// The first fatal state of a Deployment (its `Progressing` condition) or of
/// its new pods, if any. `pods` are the pods of the newest ReplicaSet.
pub fn fail_fast(deployment: &Value, pods: &[Value]) -> Option<FatalState> {
    let deadline = deployment["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
    if let Some(c) = deadline {
        return Some(FatalState {
            pod: None,
            container: None,
            reason: "ProgressDeadlineExceeded".into(),
            message: c["message"].as_str().unwrap_or_default().to_string(),
            restarts: 0,
            reported_at: c["lastTransitionTime"].as_str().map(str::to_string),
        });
    }
    pods.iter().find_map(fatal_pod)
}

/// The first container of a pod (init containers first) waiting for a
/// fatal reason. A pod being deleted says nothing about the release.
pub fn fatal_pod(pod: &Value) -> Option<FatalState> {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return None;
    }
    let status = &pod["status"];
    let reported_at = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready" && c["status"] == "False")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .map(str::to_string);
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|field| status[field].as_array().into_iter().flatten())
        .find_map(|c| {
            let waiting = &c["state"]["waiting"];
            let reason = waiting["reason"].as_str()?;
            FATAL_WAITING_REASONS.contains(&reason).then(|| FatalState {
                pod: pod["metadata"]["name"].as_str().map(str::to_string),
                container: c["name"].as_str().map(str::to_string),
                reason: reason.to_string(),
                message: waiting["message"].as_str().unwrap_or_default().to_string(),
                restarts: c["restartCount"].as_i64().unwrap_or(0),
                reported_at: reported_at.clone(),
            })
        })
}

/// The `pod-template-hash` of a Deployment's newest ReplicaSet: the one it
/// owns whose `deployment.kubernetes.io/revision` is the Deployment's.
/// `None` while the controller has not created it yet.
pub fn new_pod_template_hash(deployment: &Value, replica_sets: &[Value]) -> Option<String> {
    const REVISION: &str = "deployment.kubernetes.io/revision";
    let revision = deployment["metadata"]["annotations"][REVISION].as_str()?;
    let uid = deployment["metadata"]["uid"].as_str()?;
    replica_sets
        .iter()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["uid"] == uid && o["controller"] == true)
        })
        .find(|rs| rs["metadata"]["annotations"][REVISION] == revision)
        .and_then(|rs| rs["metadata"]["labels"]["pod-template-hash"].as_str())
        .map(str::to_string)
}

/// How a Job ended, for hooks: its exit code and termination message are
/// read from its pods by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum JobOutcome {
    /// Not finished.
    Running,
    /// Condition `Complete=True`.
    Succeeded,
    /// Condition `Failed=True`.
    Failed,
}

/// A Job's outcome from its conditions (the interim `FailureTarget` and
/// `SuccessCriteriaMet` count as not finished, as in the Job's health).
pub fn job_outcome(job: &Value) -> JobOutcome {
    let conditions = job["status"]["conditions"].as_array();
    let is = |t: &str| {
        conditions
            .into_iter()
            .flatten()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    if is("Failed") {
        JobOutcome::Failed
    } else if is("Complete") {
        JobOutcome::Succeeded
    } else {
        JobOutcome::Running
    }
}

/// What a finished container said: its exit code and termination message
/// (the last one of the pod's containers that terminated).
pub fn termination(pod: &Value) -> Option<(i64, String)> {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let t = &c["state"]["terminated"];
            let code = t["exitCode"].as_i64()?;
            Some((code, t["message"].as_str().unwrap_or_default().to_string()))
        })
        .max_by_key(|(code, _)| *code)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_newest_replica_set_is_the_one_at_the_deployments_revision() {
        let d = json!({"metadata": {"uid": "d1", "annotations": {"deployment.kubernetes.io/revision": "3"}}});
        let rs = |rev: &str, hash: &str, owner: &str| {
            json!({"metadata": {
            "annotations": {"deployment.kubernetes.io/revision": rev},
            "labels": {"pod-template-hash": hash},
            "ownerReferences": [{"uid": owner, "controller": true}]}})
        };
        let sets = [
            rs("2", "old", "d1"),
            rs("3", "other", "d2"),
            rs("3", "new", "d1"),
        ];
        assert_eq!(new_pod_template_hash(&d, &sets).as_deref(), Some("new"));
        assert_eq!(new_pod_template_hash(&d, &sets[..2]), None);
    }

    #[test]
    fn job_outcomes_and_termination_messages() {
        let failed = json!({"status": {"conditions": [{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}});
        assert_eq!(job_outcome(&failed), JobOutcome::Failed);
        let target =
            json!({"status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}});
        assert_eq!(job_outcome(&target), JobOutcome::Running);
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(job_outcome(&done), JobOutcome::Succeeded);
        let pod = json!({"status": {"containerStatuses": [
            {"state": {"terminated": {"exitCode": 0}}},
            {"state": {"terminated": {"exitCode": 3, "message": "migration 42 failed"}}}]}});
        assert_eq!(termination(&pod), Some((3, "migration 42 failed".into())));
        assert_eq!(termination(&json!({})), None);
    }
}
