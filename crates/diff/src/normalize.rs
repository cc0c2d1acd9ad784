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
            for field in SERVER_METADATA {
                meta.remove(*field);
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

/// Fields of `metadata` that [`normalize`] drops.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
];

/// True when `normalize(a.clone()) == normalize(b.clone())`, without
/// copying or rebuilding either object: the comparison skips what
/// [`normalize`] drops.
pub fn normalized_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => map_eq(
            a,
            b,
            |k, _| k == "status",
            |k, x, y| match (k, x, y) {
                ("metadata", Value::Object(x), Value::Object(y)) => metadata_eq(x, y),
                _ => x == y,
            },
        ),
        _ => a == b,
    }
}

type Map = serde_json::Map<String, Value>;

/// The maps are equal once the entries `skip` names are left out, the
/// others compared with `eq` (entry order does not matter, as in `==`).
fn map_eq(
    a: &Map,
    b: &Map,
    skip: impl Fn(&str, &Value) -> bool,
    eq: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    let kept = |m: &Map| m.iter().filter(|(k, v)| !skip(k, v)).count();
    kept(a) == kept(b)
        && a.iter().filter(|(k, v)| !skip(k, v)).all(|(k, x)| {
            b.get(k)
                .is_some_and(|y| !skip(k, y) && eq(k.as_str(), x, y))
        })
}

fn metadata_eq(a: &Map, b: &Map) -> bool {
    let server_annotation = |k: &str, _: &Value| SERVER_ANNOTATIONS.contains(&k);
    // `labels`/`annotations` that are null or empty (annotations: once the
    // server's are removed) are dropped.
    let dropped = |k: &str, v: &Value| {
        SERVER_METADATA.contains(&k)
            || match (k, v) {
                ("labels" | "annotations", Value::Null) => true,
                ("labels", Value::Object(m)) => m.is_empty(),
                ("annotations", Value::Object(m)) => m.keys().all(|k| server_annotation(k, v)),
                _ => false,
            }
    };
    map_eq(a, b, dropped, |k, x, y| match (k, x, y) {
        ("annotations", Value::Object(x), Value::Object(y)) => {
            map_eq(x, y, server_annotation, |_, x, y| x == y)
        }
        _ => x == y,
    })
}
