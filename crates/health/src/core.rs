//! Core-group objects with a phase: PersistentVolumeClaim and Namespace.

use crate::field::{conditions, str_at};
use crate::status::Health;
use serde_json::Value;

/// PersistentVolumeClaim: see the crate documentation's table.
pub(crate) fn persistent_volume_claim(obj: &Value) -> Health {
    let volume = str_at(obj, &["spec", "volumeName"]);
    match str_at(obj, &["status", "phase"]) {
        "Bound" => Health::healthy(format!("Claim is bound to volume {volume}")),
        "Pending" => {
            let class = str_at(obj, &["spec", "storageClassName"]);
            Health::progressing(format!(
                "Waiting for the claim to be bound (storage class {class:?}; a WaitForFirstConsumer class binds when a pod uses the claim)"
            ))
        }
        "Lost" => Health::degraded(format!(
            "Claim lost its volume {volume}: the PersistentVolume no longer exists"
        )),
        "" => Health::unknown("Claim has no phase"),
        other => Health::unknown(format!("Claim phase is {other}")),
    }
}

/// Namespace: see the crate documentation's table.
pub(crate) fn namespace(obj: &Value) -> Health {
    match str_at(obj, &["status", "phase"]) {
        "Active" => Health::healthy("Namespace is active"),
        "Terminating" => {
            // NamespaceContentRemaining, NamespaceFinalizersRemaining,
            // NamespaceDeletion*Failure: the ones that are True say what blocks.
            let blocking: Vec<String> = conditions(obj)
                .filter(|c| c.is_true())
                .map(|c| c.message_or_reason())
                .collect();
            if blocking.is_empty() {
                Health::progressing("Namespace is terminating")
            } else {
                Health::progressing(format!("Namespace is terminating: {}", blocking.join("; ")))
            }
        }
        "" => Health::unknown("Namespace has no phase"),
        other => Health::unknown(format!("Namespace phase is {other}")),
    }
}
