//! The in-cluster inventory: what Tidegate applied, per environment and app.
//!
//! One ConfigMap per environment/app in the `tidegate-system` namespace,
//! named `tidegate.<env>.<app>`, labelled `tidegate.dev/environment` and
//! `tidegate.dev/app`, holding the revision and the object references. It is
//! written after a successful apply; prune deletes what the old inventory has
//! and the new desired set has not.

use crate::verdicts::Verdicts;
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    discovery::ApiResource,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tidegate_cluster::{ClusterError, with_retries};
use tidegate_core::{ObjectKey, tracking::FIELD_MANAGER};

/// Namespace of the inventories.
pub const INVENTORY_NAMESPACE: &str = "tidegate-system";
/// The same label as on the objects; inventories lack the managed-by
/// label, so listing live objects never returns them.
const ENV_LABEL: &str = tidegate_core::tracking::ENVIRONMENT_LABEL;
const APP_LABEL: &str = "tidegate.dev/app";

/// A reference to an applied object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryRef {
    /// `apiVersion` it was applied with.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, for namespaced objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl InventoryRef {
    /// The object's key.
    pub fn key(&self) -> ObjectKey {
        let group = tidegate_core::object::split_api_version(&self.api_version).0;
        ObjectKey::new(group, &self.kind, self.namespace.as_deref(), &self.name)
    }
}

/// What was applied for one app of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// Environment.
    pub environment: String,
    /// App.
    pub app: String,
    /// Commit SHA applied.
    pub revision: String,
    /// Objects applied, sorted.
    pub objects: Vec<InventoryRef>,
    /// The last revision seen Healthy in this cluster (the rollback target).
    pub healthy_revision: Option<String>,
    /// Set while a sync is writing: the revision the cluster ran before
    /// (empty when none). `revision` is then the one being applied and
    /// `objects` holds the objects of both, so an interrupted or failed
    /// sync leaves an inventory that says "partly applied" rather than a
    /// revision the live objects do not match.
    pub applying_from: Option<String>,
    /// In-sync verdicts recorded by the sync that wrote it (data key
    /// `verdicts`; see [`crate::verdicts`]). Not part of what the inventory
    /// records about the revision: compare with [`Inventory::same_record`].
    pub verdicts: Verdicts,
}

/// The ConfigMaps of the inventory namespace.
fn inventory_api(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        INVENTORY_NAMESPACE,
        &tidegate_cluster::configmap_resource(),
    )
}

fn namespaces() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "Namespace".into(),
        plural: "namespaces".into(),
    }
}

impl Inventory {
    /// The ConfigMap name for an environment and app.
    pub fn name(environment: &str, app: &str) -> String {
        format!("tidegate.{environment}.{app}")
    }

    fn to_configmap(&self) -> Value {
        let mut cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": Self::name(&self.environment, &self.app),
                "namespace": INVENTORY_NAMESPACE,
                "labels": {ENV_LABEL: self.environment, APP_LABEL: self.app},
            },
            "data": {
                "revision": self.revision,
                "objects": serde_json::to_string(&self.objects).unwrap_or_else(|_| "[]".into()),
                "healthyRevision": self.healthy_revision.clone().unwrap_or_default(),
            }
        });
        if let Some(from) = &self.applying_from {
            cm["data"]["applyingFrom"] = Value::String(from.clone());
        }
        if let Some(verdicts) = self.verdicts.to_data() {
            cm["data"]["verdicts"] = Value::String(verdicts);
        }
        cm
    }

    /// The inventory written before the first write of a sync to
    /// `revision`: that revision, marked as being applied, with the objects
    /// of both (what a prune must consider if the sync stops part-way).
    pub fn applying(&self, previous: Option<&Inventory>) -> Inventory {
        let mut marker = self.clone();
        // Objects change under the marker: it vouches for none of them.
        marker.verdicts = Verdicts::default();
        if let Some(old) = previous {
            for r in &old.objects {
                if !marker.objects.contains(r) {
                    marker.objects.push(r.clone());
                }
            }
            marker.objects.sort();
        }
        marker.applying_from = Some(
            previous
                .map(|p| {
                    p.applying_from
                        .clone()
                        .unwrap_or_else(|| p.revision.clone())
                })
                .unwrap_or_default(),
        );
        marker
    }

    fn from_configmap(cm: &Value) -> Option<Inventory> {
        let labels = &cm["metadata"]["labels"];
        Some(Inventory {
            environment: labels[ENV_LABEL].as_str()?.to_string(),
            app: labels[APP_LABEL].as_str()?.to_string(),
            revision: cm["data"]["revision"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            objects: serde_json::from_str(cm["data"]["objects"].as_str().unwrap_or("[]")).ok()?,
            healthy_revision: cm["data"]["healthyRevision"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            applying_from: cm["data"]["applyingFrom"].as_str().map(str::to_string),
            verdicts: Verdicts::from_data(cm["data"]["verdicts"].as_str()),
        })
    }

    /// True when both record the same revision, objects and state (their
    /// verdicts aside).
    pub fn same_record(&self, other: &Inventory) -> bool {
        self.environment == other.environment
            && self.app == other.app
            && self.revision == other.revision
            && self.objects == other.objects
            && self.healthy_revision == other.healthy_revision
            && self.applying_from == other.applying_from
    }

    /// True while (or when) a sync did not finish writing this inventory's revision.
    pub fn incomplete(&self) -> bool {
        self.applying_from.is_some()
    }
}

fn api_error(cluster: &str, what: &str, source: kube::Error) -> ClusterError {
    ClusterError::Api {
        cluster: cluster.to_string(),
        what: what.to_string(),
        error: source,
    }
}

/// Every inventory of `environment` in the cluster (none when the namespace does not exist).
pub async fn read_all(
    client: &Client,
    cluster: &str,
    environment: &str,
) -> Result<Vec<Inventory>, ClusterError> {
    let api = inventory_api(client);
    let params = ListParams::default().labels(&format!("{ENV_LABEL}={environment}"));
    let list = with_retries("list inventories", || api.list(&params))
        .await
        .map_err(|e| api_error(cluster, "reading inventories", e))?;
    let mut out: Vec<Inventory> = list
        .items
        .into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .filter_map(|v| Inventory::from_configmap(&v))
        .collect();
    out.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(out)
}

/// Writes an inventory (creating the namespace when the write finds it
/// missing: one request when it exists, as it does after the first sync).
pub async fn write(
    client: &Client,
    cluster: &str,
    inventory: &Inventory,
) -> Result<(), ClusterError> {
    let params = PatchParams::apply(FIELD_MANAGER);
    let api = inventory_api(client);
    let name = Inventory::name(&inventory.environment, &inventory.app);
    let cm = inventory.to_configmap();
    let patch = Patch::Apply(&cm);
    match with_retries("write inventory", || api.patch(&name, &params, &patch)).await {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(api_error(cluster, "writing the inventory", e)),
    }
    let ns_api: Api<DynamicObject> = Api::all_with(client.clone(), &namespaces());
    let ns =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": INVENTORY_NAMESPACE}});
    let ns_patch = Patch::Apply(&ns);
    with_retries("create namespace", || {
        ns_api.patch(INVENTORY_NAMESPACE, &params, &ns_patch)
    })
    .await
    .map_err(|e| api_error(cluster, "creating the tidegate-system namespace", e))?;
    with_retries("write inventory", || api.patch(&name, &params, &patch))
        .await
        .map_err(|e| api_error(cluster, "writing the inventory", e))?;
    Ok(())
}

/// Deletes the inventory of an app that left the environment.
pub async fn delete(
    client: &Client,
    cluster: &str,
    environment: &str,
    app: &str,
) -> Result<(), ClusterError> {
    let api = inventory_api(client);
    let name = Inventory::name(environment, app);
    let params = DeleteParams::default();
    match with_retries("delete inventory", || api.delete(&name, &params)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(api_error(cluster, "deleting an inventory", e)),
    }
}

/// Records that `revision` is Healthy for an app (the revision a rollback returns to).
pub async fn mark_healthy(
    client: &Client,
    cluster: &str,
    environment: &str,
    app: &str,
    revision: &str,
) -> Result<(), ClusterError> {
    let api = inventory_api(client);
    let name = Inventory::name(environment, app);
    let patch = Patch::Merge(json!({"data": {"healthyRevision": revision}}));
    let params = PatchParams::default();
    match with_retries("mark healthy", || api.patch(&name, &params, &patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(api_error(cluster, "recording the healthy revision", e)),
    }
}
