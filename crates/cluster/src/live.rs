//! Reading managed objects: one LIST per kind by label (optionally one
//! environment's, in one namespace), GETs only for the rest.

use crate::{ClusterError, Resolved, with_retries};
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams},
};
use serde_json::Value;
use std::collections::BTreeMap;
use tidegate_core::{ObjectKey, object::split_api_version, tracking::managed_selector};

/// Live objects by key.
pub type LiveObjects = BTreeMap<ObjectKey, Value>;

/// An `Api` for a kind, in a namespace or across all of them.
pub fn dynamic_api(
    client: &Client,
    resolved: &Resolved,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match (resolved.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resolved.resource),
        _ => Api::all_with(client.clone(), &resolved.resource),
    }
}

/// Every object of a kind that carries Tidegate's managed-by label — and,
/// with `environment`, that environment's label — in `namespace` (for a
/// namespaced kind) or across namespaces.
pub async fn list_managed(
    client: &Client,
    cluster: &str,
    resolved: &Resolved,
    environment: Option<&str>,
    namespace: Option<&str>,
) -> Result<LiveObjects, ClusterError> {
    let api = dynamic_api(client, resolved, namespace);
    let params = ListParams::default().labels(&managed_selector(environment));
    let list = with_retries("list", || api.list(&params))
        .await
        .map_err(|source| ClusterError::Api {
            cluster: cluster.to_string(),
            what: format!("listing {}", resolved.resource.plural),
            error: source,
        })?;
    let mut out = LiveObjects::new();
    for object in &list.items {
        let value = listed_value(object, resolved);
        if let Some(key) = key_of(&value, resolved) {
            out.insert(key, value);
        }
    }
    Ok(out)
}

/// An object of a LIST (or a watch cache) as a GET returns it: items of a
/// LIST carry no apiVersion/kind; the single GET does.
pub fn listed_value(object: &DynamicObject, resolved: &Resolved) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(obj) = value.as_object_mut() {
        obj.entry("apiVersion")
            .or_insert_with(|| Value::String(resolved.resource.api_version.clone()));
        obj.entry("kind")
            .or_insert_with(|| Value::String(resolved.resource.kind.clone()));
    }
    value
}

/// One object, or `None` when it does not exist.
pub async fn get_object(
    client: &Client,
    cluster: &str,
    resolved: &Resolved,
    key: &ObjectKey,
) -> Result<Option<Value>, ClusterError> {
    let api = dynamic_api(client, resolved, key.namespace.as_deref());
    with_retries("get", || api.get_opt(&key.name))
        .await
        .map(|o| o.map(to_value))
        .map_err(|source| ClusterError::Api {
            cluster: cluster.to_string(),
            what: format!("reading {key}"),
            error: source,
        })
}

fn to_value(object: DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// The key of a live object of the kind `resolved`.
pub fn key_of(value: &Value, resolved: &Resolved) -> Option<ObjectKey> {
    let api_version = value["apiVersion"]
        .as_str()
        .unwrap_or(&resolved.resource.api_version);
    let (group, _) = split_api_version(api_version);
    Some(ObjectKey::new(
        group,
        &resolved.resource.kind,
        value["metadata"]["namespace"]
            .as_str()
            .filter(|_| resolved.namespaced),
        value["metadata"]["name"].as_str()?,
    ))
}
