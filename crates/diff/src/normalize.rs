//! Removing what is not drift: server bookkeeping and status.

use serde_json::Value;

/// Annotations the server or controllers set, never drift.
const SERVER_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
];

/// Drops `status`, `metadata.managedFields`, `resourceVersion`, `uid`,
/// `generation`, `creationTimestamp`, `selfLink` and server-set annotations;
/// empty `labels`/`annotations` maps are dropped (empty and absent are the same).
/// `apiVersion`, `kind` and `metadata` come first, so a GET and a dry-run
/// result print in the same order.
pub fn normalize(object: Value) -> Value {
    let mut object = match object {
        Value::Object(mut map) => {
            let mut ordered = serde_json::Map::with_capacity(map.len());
            for key in ["apiVersion", "kind", "metadata"] {
                if let Some(v) = map.remove(key) {
                    ordered.insert(key.to_string(), v);
                }
            }
            ordered.extend(map);
            Value::Object(ordered)
        }
        other => other,
    };
    if let Some(obj) = object.as_object_mut() {
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "managedFields",
                "resourceVersion",
                "uid",
                "generation",
                "creationTimestamp",
                "selfLink",
            ] {
                meta.remove(field);
            }
            if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                for a in SERVER_ANNOTATIONS {
                    annotations.remove(*a);
                }
            }
            for field in ["labels", "annotations"] {
                if meta
                    .get(field)
                    .is_some_and(|v| v.as_object().is_some_and(|m| m.is_empty()) || v.is_null())
                {
                    meta.remove(field);
                }
            }
        }
    }
    object
}
