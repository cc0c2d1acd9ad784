//! Reading the new pods of a cluster's Deployments for the fail-fast gate.

use crate::{Engine, SyncError};
use kube::api::ListParams;
use serde_json::Value;
use std::collections::BTreeSet;
use tidegate_cluster::{ClusterError, dynamic_api, with_retries};
use tidegate_core::ObjectKey;
use tidegate_health::pods::{FatalState, fail_fast, new_pod_template_hash};

impl Engine {
    /// The first fatal state among `deployments` (keys of `apps`
    /// Deployments): `ProgressDeadlineExceeded`, or a pod of a Deployment's
    /// newest ReplicaSet whose container waits in CrashLoopBackOff,
    /// ImagePullBackOff, ErrImagePull, CreateContainerConfigError or
    /// InvalidImageName. One read of the Deployments (through the live
    /// state, as the plan reads them), then per namespace one LIST of
    /// ReplicaSets and one of Pods (by the Deployment's labels when it is
    /// the namespace's only one): a handful of requests however many
    /// Deployments there are.
    pub async fn fail_fast(
        &self,
        deployments: &[ObjectKey],
    ) -> Result<Option<FatalState>, SyncError> {
        let (Some(deployment), Some(replica_set), Some(pod)) = (
            self.resolver.resolve("apps/v1", "Deployment").await?,
            self.resolver.resolve("apps/v1", "ReplicaSet").await?,
            self.resolver.resolve("v1", "Pod").await?,
        ) else {
            return Ok(None);
        };
        let wanted: Vec<(ObjectKey, tidegate_cluster::Resolved)> = deployments
            .iter()
            .map(|k| (k.clone(), deployment.clone()))
            .collect();
        let live = self.read_live(&wanted, self.environment.as_deref()).await?;
        let namespaces: BTreeSet<Option<&str>> =
            deployments.iter().map(|k| k.namespace.as_deref()).collect();
        for namespace in namespaces {
            let here: Vec<(&ObjectKey, &Value)> = deployments
                .iter()
                .filter(|k| k.namespace.as_deref() == namespace)
                .filter_map(|k| Some((k, &**live.get(k)?)))
                .collect();
            let Some((first, only)) = here.first() else {
                continue;
            };
            // The only Deployment here: list by its labels, not the whole namespace.
            let selector = if here.len() == 1 {
                match_labels(only)
            } else {
                String::new()
            };
            let what = format!("reading the pods of {first}");
            let sets = self
                .list_in(&replica_set, namespace, &selector, &what)
                .await?;
            let mut pods: Option<Vec<Value>> = None;
            for (_, live) in &here {
                let Some(hash) = new_pod_template_hash(live, &sets) else {
                    if let Some(fatal) = fail_fast(live, &[]) {
                        return Ok(Some(fatal));
                    }
                    continue;
                };
                if pods.is_none() {
                    pods = Some(self.list_in(&pod, namespace, &selector, &what).await?);
                }
                let labels = selector_of(live);
                let new_pods: Vec<Value> = pods
                    .iter()
                    .flatten()
                    .filter(|p| {
                        let l = &p["metadata"]["labels"];
                        l["pod-template-hash"] == hash.as_str()
                            && labels.iter().all(|(k, v)| l[k.as_str()] == v.as_str())
                    })
                    .cloned()
                    .collect();
                if let Some(fatal) = fail_fast(live, &new_pods) {
                    return Ok(Some(fatal));
                }
            }
        }
        Ok(None)
    }

    /// The objects of a kind in `namespace` matching `labels` (all when empty).
    async fn list_in(
        &self,
        resolved: &tidegate_cluster::Resolved,
        namespace: Option<&str>,
        labels: &str,
        what: &str,
    ) -> Result<Vec<Value>, SyncError> {
        let api = dynamic_api(&self.client, resolved, namespace);
        let params = ListParams::default().labels(labels);
        with_retries("list for fail-fast", || api.list(&params))
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|o| serde_json::to_value(o).ok())
                    .collect()
            })
            .map_err(|error| {
                SyncError::Cluster(ClusterError::Api {
                    cluster: self.cluster.clone(),
                    what: what.to_string(),
                    error,
                })
            })
    }
}

/// `spec.selector.matchLabels` as (key, value) pairs.
fn selector_of(deployment: &Value) -> Vec<(String, String)> {
    deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `spec.selector.matchLabels` as a label selector (`a=b,c=d`).
fn match_labels(deployment: &Value) -> String {
    deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}
