//! Tidegate's own sync hooks (`tidegate.dev/hook: PreSync|PostSync|SyncFail`).
//!
//! A hook is a Job in an app's manifests. It is not part of the app's
//! objects: it is never diffed, pruned or recorded in the inventory, and it
//! runs once per revision under a name of its own ([`run_name`]):
//!
//! - `PreSync` Jobs run, and must succeed, before the app's other objects
//!   are applied in a cluster (a database migration);
//! - `PostSync` Jobs run once the objects are Healthy, and their success is
//!   part of the cluster's gate (a smoke test);
//! - `SyncFail` Jobs run when the cluster's sync or gate fails.
//!
//! The delete policies are Argo CD's: `BeforeHookCreation` (the default)
//! deletes a Job of the same run name before creating it again,
//! `HookSucceeded` and `HookFailed` delete the Job after it succeeded or
//! failed.

use serde_json::Value;
use std::fmt;

/// The annotation that makes an object a Tidegate sync hook.
pub const HOOK_ANNOTATION: &str = "tidegate.dev/hook";
/// The annotation naming the hook's delete policies (comma-separated).
pub const DELETE_POLICY_ANNOTATION: &str = "tidegate.dev/hook-delete-policy";
/// The label every hook Job carries (its phase), so readers of an
/// environment's objects can tell hooks apart.
pub const HOOK_LABEL: &str = "tidegate.dev/hook";
/// The longest hook name: the run name adds `-` and 8 characters of the
/// revision, and a Job's name must fit in a 63-character label value.
pub const MAX_HOOK_NAME: usize = 63 - 9;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum HookPhase {
    /// Before the app's objects are applied; must succeed.
    PreSync,
    /// After the objects are Healthy; part of the cluster's gate.
    PostSync,
    /// When the cluster's sync or gate failed.
    SyncFail,
}

impl HookPhase {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::PreSync => "PreSync",
            HookPhase::PostSync => "PostSync",
            HookPhase::SyncFail => "SyncFail",
        }
    }
}

impl fmt::Display for HookPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to delete, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DeletePolicy {
    /// Delete a Job of the same run name before creating it (re-run).
    pub before_creation: bool,
    /// Delete the Job once it succeeded.
    pub on_success: bool,
    /// Delete the Job once it failed.
    pub on_failure: bool,
}

/// A valid hook: its phase and delete policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HookSpec {
    /// When it runs.
    pub phase: HookPhase,
    /// What is deleted, when.
    pub delete: DeletePolicy,
}

/// Why an object's hook annotations are refused: the message and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookProblem {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

/// Reads an object's hook annotations: `Ok(None)` for an ordinary object,
/// `Ok(Some(spec))` for a valid hook, `Err` for a hook Tidegate cannot run
/// (not a `batch/v1` Job, unknown phase or policy, a name too long).
pub fn hook_of(manifest: &Value) -> Result<Option<HookSpec>, HookProblem> {
    let annotations = &manifest["metadata"]["annotations"];
    let Some(value) = annotations.get(HOOK_ANNOTATION) else {
        if annotations.get(DELETE_POLICY_ANNOTATION).is_some() {
            return Err(HookProblem {
                message: format!("{DELETE_POLICY_ANNOTATION} is set but {HOOK_ANNOTATION} is not"),
                help: format!(
                    "add {HOOK_ANNOTATION}: PreSync, PostSync or SyncFail, or remove the delete policy"
                ),
            });
        }
        return Ok(None);
    };
    let phase = match value.as_str().map(str::trim) {
        Some("PreSync") => HookPhase::PreSync,
        Some("PostSync") => HookPhase::PostSync,
        Some("SyncFail") => HookPhase::SyncFail,
        _ => {
            return Err(HookProblem {
                message: format!("unknown {HOOK_ANNOTATION} value {value}"),
                help: "use PreSync (before the apply), PostSync (after the objects are Healthy) or SyncFail (when the sync or gate fails)".into(),
            });
        }
    };
    let api_version = manifest["apiVersion"].as_str().unwrap_or_default();
    let kind = manifest["kind"].as_str().unwrap_or_default();
    if api_version != "batch/v1" || kind != "Job" {
        return Err(HookProblem {
            message: format!(
                "a {phase} hook must be a batch/v1 Job, but this is {api_version} {kind}"
            ),
            help: "run the hook's work in a Job, or remove the tidegate.dev/hook annotation to apply the object as an ordinary one".into(),
        });
    }
    if manifest["metadata"]["generateName"].is_string() {
        return Err(HookProblem {
            message: "a hook Job has a name, not generateName (Tidegate names each run after the revision)".into(),
            help: "set metadata.name".into(),
        });
    }
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
    if name.len() > MAX_HOOK_NAME {
        return Err(HookProblem {
            message: format!(
                "hook name {name:?} is {} characters; at most {MAX_HOOK_NAME} fit, as each run is named <name>-<revision>",
                name.len()
            ),
            help: "shorten metadata.name".into(),
        });
    }
    let mut delete = DeletePolicy::default();
    match annotations.get(DELETE_POLICY_ANNOTATION) {
        None => delete.before_creation = true,
        Some(policy) => {
            let Some(policy) = policy.as_str() else {
                return Err(bad_policy(policy));
            };
            for p in policy.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match p {
                    "BeforeHookCreation" => delete.before_creation = true,
                    "HookSucceeded" => delete.on_success = true,
                    "HookFailed" => delete.on_failure = true,
                    _ => return Err(bad_policy(&Value::String(p.to_string()))),
                }
            }
        }
    }
    Ok(Some(HookSpec { phase, delete }))
}

fn bad_policy(value: &Value) -> HookProblem {
    HookProblem {
        message: format!("unknown {DELETE_POLICY_ANNOTATION} {value}"),
        help: "use BeforeHookCreation, HookSucceeded and/or HookFailed, comma-separated".into(),
    }
}

/// The name of a hook's run at `revision`: `<name>-<first 8 characters>`,
/// so every revision runs its hooks once under a name of its own.
pub fn run_name(name: &str, revision: &str) -> String {
    let short: String = revision.chars().take(8).collect();
    format!("{name}-{short}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;
    use serde_json::json;

    fn job(annotations: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "annotations": annotations}})
    }

    #[test]
    fn phases_and_policies_are_read() {
        let spec = hook_of(&job(json!({"tidegate.dev/hook": "PreSync"})))
            .unwrap()
            .unwrap();
        assert_eq!(spec.phase, HookPhase::PreSync);
        assert!(spec.delete.before_creation && !spec.delete.on_success);
        let spec = hook_of(&job(json!({"tidegate.dev/hook": "PostSync",
            "tidegate.dev/hook-delete-policy": "HookSucceeded, HookFailed"})))
        .unwrap()
        .unwrap();
        assert_eq!(spec.phase, HookPhase::PostSync);
        assert!(!spec.delete.before_creation && spec.delete.on_success && spec.delete.on_failure);
        assert_eq!(hook_of(&job(json!({}))).unwrap(), None);
        assert_eq!(hook_of(&json!({"kind": "ConfigMap"})).unwrap(), None);
    }

    #[test]
    fn bad_hooks_are_refused_with_a_fix() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "annotations": {"tidegate.dev/hook": "PreSync"}}});
        let e = hook_of(&deployment).unwrap_err();
        assert!(
            e.message
                .contains("must be a batch/v1 Job, but this is apps/v1 Deployment"),
            "{e:?}"
        );
        let e = hook_of(&job(json!({"tidegate.dev/hook": "PreInstall"}))).unwrap_err();
        assert!(
            e.message
                .contains("unknown tidegate.dev/hook value \"PreInstall\""),
            "{e:?}"
        );
        let e = hook_of(&job(json!({"tidegate.dev/hook": "SyncFail",
            "tidegate.dev/hook-delete-policy": "Always"})))
        .unwrap_err();
        assert!(e.message.contains("\"Always\""), "{e:?}");
        let e = hook_of(&job(
            json!({"tidegate.dev/hook-delete-policy": "HookSucceeded"}),
        ))
        .unwrap_err();
        assert!(e.message.contains("is not"), "{e:?}");
        let long = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "m".repeat(55), "annotations": {"tidegate.dev/hook": "PreSync"}}});
        assert!(
            hook_of(&long)
                .unwrap_err()
                .message
                .contains("55 characters")
        );
    }

    #[test]
    fn runs_are_named_per_revision() {
        assert_eq!(run_name("migrate", "0123456789abcdef"), "migrate-01234567");
        assert_eq!(
            run_name("m".repeat(MAX_HOOK_NAME).as_str(), "0123456789").len(),
            63
        );
    }
}
