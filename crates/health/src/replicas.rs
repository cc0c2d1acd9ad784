//! Replica counts in the status of workload-like custom resources (OpenKruise
//! CloneSet / Advanced StatefulSet / Advanced DaemonSet, game server sets,
//! operators' clusters): read as the `apps` kinds are.
//!
//! - `spec.replicas` (else `status.replicas`) against `readyReplicas`,
//!   `availableReplicas`, `updatedReplicas`, `updatedReadyReplicas`,
//!   `updatedAvailableReplicas`;
//! - `desiredNumberScheduled` against `numberReady`, `numberAvailable`,
//!   `updatedNumberScheduled` (per node);
//! - `readyMembers` / `readyNodes` against `members` / `nodes`, in `status`
//!   or in each entry of a map below it (`racks.<rack>`);
//! - `"ready/wanted"` strings (`statusReplicas: "2/3"`, `tasksReady: "3/3"`)
//!   in `status` or one object below it.
//!
//! A count short → Progressing. With a partition (`spec.updateStrategy.partition`
//! or `.rollingUpdate.partition`) the update stops on purpose once all but
//! `partition` replicas are updated → Suspended until someone lowers it.
//! All counts met → Healthy (the weakest signal: conditions and phases win).

use crate::field::{get, int};
use crate::status::Health;
use serde_json::Value;

/// Counts of ready-like replicas (must reach the replicas wanted).
const READY_COUNTS: &[&str] = &["readyReplicas", "availableReplicas"];

/// Counts of updated replicas (reach `wanted − partition`).
const UPDATED_COUNTS: &[&str] = &[
    "updatedReplicas",
    "updatedReadyReplicas",
    "updatedAvailableReplicas",
];

/// The verdict of the replica counts, if the status has any.
pub(crate) fn read(obj: &Value, status: &Value) -> Option<Health> {
    if let Some(h) = per_node(obj, status) {
        return Some(h);
    }
    if let Some(h) = fractions(status) {
        return Some(h);
    }
    if let Some(h) = member_counts(status) {
        return Some(h);
    }
    let counted = READY_COUNTS
        .iter()
        .chain(UPDATED_COUNTS)
        .any(|f| status.get(f).is_some());
    if !counted {
        return None;
    }
    let wanted = int(obj, &["spec", "replicas"]).or_else(|| int(status, &["replicas"]))?;
    for field in READY_COUNTS {
        if let Some(have) = int(status, &[field])
            && have < wanted
        {
            return Some(Health::progressing(format!(
                "{have} of {wanted} replicas are {}",
                &field[..field.len() - 8]
            )));
        }
    }
    let partition = partition(obj);
    let target = wanted.saturating_sub(partition).max(0);
    for field in UPDATED_COUNTS {
        let Some(have) = int(status, &[field]) else {
            continue;
        };
        if have < target {
            return Some(Health::progressing(format!(
                "{have} of {target} replicas are at the new revision ({field})"
            )));
        }
    }
    if partition > 0 && UPDATED_COUNTS.iter().any(|f| status.get(f).is_some()) {
        return Some(held_at_partition(partition, target));
    }
    Some(Health::healthy(format!(
        "{wanted} of {wanted} replicas are ready"
    )))
}

/// `desiredNumberScheduled` / `numberReady` / `updatedNumberScheduled`.
fn per_node(obj: &Value, status: &Value) -> Option<Health> {
    let desired = int(status, &["desiredNumberScheduled"])?;
    for field in ["numberReady", "numberAvailable"] {
        let have = int(status, &[field]).unwrap_or(0);
        if have < desired && (field == "numberReady" || status.get(field).is_some()) {
            return Some(Health::progressing(format!(
                "{have} of {desired} pods are {}",
                if field == "numberReady" {
                    "ready"
                } else {
                    "available"
                }
            )));
        }
    }
    let partition = partition(obj);
    let target = desired.saturating_sub(partition).max(0);
    let updated = int(status, &["updatedNumberScheduled"]).unwrap_or(0);
    if updated < target {
        return Some(Health::progressing(format!(
            "{updated} of {target} pods are at the new revision"
        )));
    }
    if partition > 0 && updated < desired {
        return Some(held_at_partition(partition, target));
    }
    Some(Health::healthy(format!(
        "{desired} of {desired} pods are ready and updated"
    )))
}

/// `"ready/wanted"` strings in `status` or one object below it.
fn fractions(status: &Value) -> Option<Health> {
    let Value::Object(map) = status else {
        return None;
    };
    let mut found = None;
    let nested = map.iter().filter_map(|(k, v)| match v {
        Value::Object(inner) => Some(inner.iter().map(move |(ik, iv)| (format!("{k}.{ik}"), iv))),
        _ => None,
    });
    let top = map.iter().map(|(k, v)| (k.clone(), v));
    for (key, value) in top.chain(nested.flatten()) {
        let lower = key.to_ascii_lowercase();
        if !(lower.ends_with("replicas") || lower.ends_with("ready")) {
            continue;
        }
        let Some((have, wanted)) = value.as_str().and_then(fraction) else {
            continue;
        };
        if have < wanted {
            return Some(Health::progressing(format!(
                "status.{key} is {have}/{wanted}"
            )));
        }
        found.get_or_insert_with(|| Health::healthy(format!("status.{key} is {have}/{wanted}")));
    }
    found
}

/// `members` / `readyMembers` (or `nodes` / `readyNodes`) in `status` or in
/// the entries of a map below it (a Cassandra cluster's `racks.<rack>`).
fn member_counts(status: &Value) -> Option<Health> {
    let Value::Object(map) = status else {
        return None;
    };
    let top = std::iter::once(("".to_string(), status));
    let entries = map.iter().flat_map(|(k, v)| match v {
        Value::Object(inner) => inner
            .iter()
            .filter(|(_, e)| e.is_object())
            .map(|(name, e)| (format!("{k}.{name}"), e))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    });
    let mut found = None;
    for (at, entry) in top.chain(entries) {
        for (all, ready) in [("members", "readyMembers"), ("nodes", "readyNodes")] {
            let (Some(want), Some(have)) = (int(entry, &[all]), int(entry, &[ready])) else {
                continue;
            };
            let place = if at.is_empty() {
                String::new()
            } else {
                format!(" in {at}")
            };
            if have < want {
                return Some(Health::progressing(format!(
                    "{have} of {want} {all} are ready{place}"
                )));
            }
            found.get_or_insert_with(|| Health::healthy(format!("All {all} are ready")));
        }
    }
    found
}

/// `"2/3"` → (2, 3).
fn fraction(s: &str) -> Option<(i64, i64)> {
    let (a, b) = s.trim().split_once('/')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// `spec.updateStrategy.partition` or `.rollingUpdate.partition`, or 0.
fn partition(obj: &Value) -> i64 {
    [
        &["spec", "updateStrategy", "rollingUpdate", "partition"][..],
        &["spec", "updateStrategy", "partition"],
    ]
    .iter()
    .find_map(|p| get(obj, p).and_then(Value::as_i64))
    .unwrap_or(0)
}

fn held_at_partition(partition: i64, target: i64) -> Health {
    Health::suspended(format!(
        "Update held at partition {partition}: {target} replicas are at the new revision, the rest wait until the partition is lowered"
    ))
}
