//! Per-member status lists: the per-cluster lists of multi-cluster
//! controllers — Karmada's `status.aggregatedStatus[]` (`applied`, `health`),
//! Open Cluster Management's `status.status[]` (`compliant`), items naming
//! their cluster (`clusterName`, `clustername`, `cluster`) — and lists named
//! `*Status` / `*Statuses` whose items carry a `status` / `state` / `phase`
//! (a GKE ManagedCertificate's `domainStatus[]`).

use crate::field::str_at;
use crate::reasons;
use crate::status::{Health, HealthStatus};
use serde_json::Value;

/// The worst member's health, if the status lists members.
pub(crate) fn read(status: &Value) -> Option<Health> {
    let Value::Object(map) = status else {
        return None;
    };
    let mut worst: Option<Health> = None;
    for (key, list) in map {
        let Some(items) = list.as_array() else {
            continue;
        };
        for item in items {
            let cluster = ["clusterName", "clustername", "cluster"]
                .iter()
                .map(|k| str_at(item, &[k]))
                .find(|c| !c.is_empty())
                .map(|c| format!("cluster {c}"));
            let lower = key.to_ascii_lowercase();
            let listed = (lower.ends_with("status") || lower.ends_with("statuses"))
                .then(|| {
                    ["name", "domain", "type", "key"]
                        .iter()
                        .map(|k| str_at(item, &[k]))
                        .find(|c| !c.is_empty())
                        .map(|c| format!("item {c}"))
                })
                .flatten();
            let Some(cluster) = cluster.or(listed) else {
                continue;
            };
            let h = if item.get("applied").and_then(Value::as_bool) == Some(false) {
                Some(Health::degraded(format!(
                    "status.{key}: not applied on {cluster}"
                )))
            } else {
                ["health", "compliant", "phase", "state", "status"]
                    .iter()
                    .find_map(|f| {
                        let value = str_at(item, &[f]);
                        // `Unknown`: the controller cannot judge this kind
                        // (Karmada without a health interpreter), no verdict.
                        reasons::phase(value)
                            .filter(|s| *s != HealthStatus::Unknown)
                            .map(|status| {
                                Health::new(
                                    status,
                                    format!("status.{key}: {f} is {value} on {cluster}"),
                                )
                            })
                    })
            };
            if let Some(h) = h
                && worst.as_ref().is_none_or(|w| h.status > w.status)
            {
                worst = Some(h);
            }
        }
    }
    worst
}
