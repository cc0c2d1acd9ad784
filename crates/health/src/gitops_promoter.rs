//! Argo's GitOps Promoter (`promoter.argoproj.io`): promotion strategies,
//! change transfer policies, commit statuses and the gates that write them.
//!
//! Every kind reports `Ready`; a `False` one is a failed reconcile (the
//! reasons name the child that failed, e.g. `PullRequestNotReady`). Beyond
//! `Ready`, the status says where each environment's promotion stands:
//! a gate's `environments[].phase` (`pending`, `success`, `failure`), or the
//! active and proposed dry commits of each branch. A `CommitStatus` only
//! records what an outside check reported, so its phase is data, not health.

use crate::context::Context;
use crate::field::{array, condition, int, str_at};
use crate::generic;
use crate::status::Health;
use serde_json::Value;

/// The API group.
pub(crate) const GROUP: &str = "promoter.argoproj.io";

/// Any kind of the group: see the crate documentation's table.
pub(crate) fn assess(kind: &str, obj: &Value, ctx: &Context) -> Health {
    let status = match obj.get("status") {
        Some(Value::Object(map)) if !map.is_empty() => &obj["status"],
        _ => return generic::standard(GROUP, obj, ctx),
    };
    if let (Some(wanted), Some(observed)) = (
        int(obj, &["metadata", "generation"]),
        int(status, &["observedGeneration"]),
    ) && observed < wanted
    {
        return Health::progressing(format!(
            "Waiting for the controller to observe generation {wanted} (observed {observed})"
        ));
    }
    let ready = condition(obj, "Ready");
    if let (Some(wanted), Some(observed)) = (
        int(obj, &["metadata", "generation"]),
        ready.and_then(|c| c.observed_generation),
    ) && observed < wanted
    {
        return Health::progressing(format!(
            "Waiting for the controller to observe generation {wanted} (Ready is for generation {observed})"
        ));
    }
    match ready {
        None => return Health::progressing("Waiting for a Ready condition"),
        Some(c) if c.is_false() => return Health::degraded(c.describe()),
        Some(c) if !c.is_true() => return Health::progressing(c.describe()),
        Some(_) => {}
    }
    match kind {
        "PromotionStrategy" => {
            let envs = array(status, &["environments"]);
            if status.get("environments").is_some() && envs.is_empty() {
                return Health::degraded("No environments to promote through");
            }
            if let Some(h) = envs.iter().find_map(|e| branch(e, str_at(e, &["branch"]))) {
                return h;
            }
            let mut proposed = envs.iter().map(|e| str_at(e, &["proposed", "dry", "sha"]));
            if let Some(first) = proposed.next()
                && proposed.any(|sha| sha != first)
            {
                return Health::progressing(
                    "Environments are proposed different dry commits: hydration is under way",
                );
            }
        }
        "ChangeTransferPolicy" => {
            if let Some(h) = branch(status, str_at(obj, &["spec", "activeBranch"])) {
                return h;
            }
        }
        "ArgoCDCommitStatus" => {
            if status.get("applicationsSelected").is_some()
                && array(status, &["applicationsSelected"]).is_empty()
            {
                return Health::degraded("No Argo CD Applications match the selector");
            }
        }
        _ => {
            if let Some(h) = gates(status) {
                return h;
            }
        }
    }
    Health::healthy("Ready=True")
}

/// One branch's `active` and `proposed` dry commits: both known and equal
/// when its promotion is done.
fn branch(env: &Value, name: &str) -> Option<Health> {
    let active = str_at(env, &["active", "dry", "sha"]);
    let proposed = str_at(env, &["proposed", "dry", "sha"]);
    if active.is_empty() || proposed.is_empty() {
        return Some(Health::progressing(format!(
            "Branch {name}: waiting for the hydrator to record the active and proposed dry commits"
        )));
    }
    (active != proposed).then(|| {
        Health::progressing(format!(
            "Branch {name}: promoting dry commit {proposed} (active {active})"
        ))
    })
}

/// A gate's `environments[].phase`: a failure anywhere is Degraded, a
/// pending one Progressing.
fn gates(status: &Value) -> Option<Health> {
    let envs = array(status, &["environments"]);
    let with = |phase: &str| {
        envs.iter()
            .filter(|e| str_at(e, &["phase"]) == phase)
            .map(|e| str_at(e, &["branch"]))
            .collect::<Vec<_>>()
    };
    let failed = with("failure");
    if !failed.is_empty() {
        return Some(Health::degraded(format!(
            "Gate failed for {}",
            failed.join(", ")
        )));
    }
    let pending = with("pending");
    (!pending.is_empty())
        .then(|| Health::progressing(format!("Gate pending for {}", pending.join(", "))))
}
