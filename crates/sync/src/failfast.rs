//! Reading the new pods of a cluster's Deployments for the fail-fast gate.

use crate::{Engine, SyncError};
use kube::api::ListParams;
use serde_json::Value;
use tidegate_cluster::{ClusterError, dynamic_api, with_retries};
use tidegate_core::ObjectKey;
use tidegate_health::pods::{FatalState, fail_fast, new_pod_template_hash};

impl Engine {
    /// The first fatal state among `deployments` (keys of `apps`
    /// Deployments): `ProgressDeadlineExceeded`, or a pod of a Deployment's
    /// newest ReplicaSet whose container waits in CrashLoopBackOff,
    /// ImagePullBackOff, ErrImagePull, CreateContainerConfigError or
    /// InvalidImageName. One GET and two LISTs per Deployment.
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
        for key in deployments {
            let Some(live) =
                tidegate_cluster::get_object(&self.client, &self.cluster, &deployment, key).await?
            else {
                continue;
            };
            let namespace = key.namespace.as_deref();
            let selector = match_labels(&live);
            let list = |resolved, labels: String| {
                let api = dynamic_api(&self.client, resolved, namespace);
                async move {
                    let params = ListParams::default().labels(&labels);
                    with_retries("list for fail-fast", || api.list(&params))
                        .await
                        .map(|l| {
                            l.items
                                .into_iter()
                                .filter_map(|o| serde_json::to_value(o).ok())
                                .collect::<Vec<Value>>()
                        })
                        .map_err(|error| {
                            SyncError::Cluster(ClusterError::Api {
                                cluster: self.cluster.clone(),
                                what: format!("reading the pods of {key}"),
                                error,
                            })
                        })
                }
            };
            let sets = list(&replica_set, selector.clone()).await?;
            let pods = match new_pod_template_hash(&live, &sets) {
                Some(hash) => {
                    let labels = if selector.is_empty() {
                        format!("pod-template-hash={hash}")
                    } else {
                        format!("{selector},pod-template-hash={hash}")
                    };
                    list(&pod, labels).await?
                }
                None => Vec::new(),
            };
            if let Some(fatal) = fail_fast(&live, &pods) {
                return Ok(Some(fatal));
            }
        }
        Ok(None)
    }
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
