//! Discovery cached per cluster: (apiVersion, kind) → resource and scope.
//!
//! Each group/version is asked for once; an unknown kind in a known
//! group/version re-asks (a CRD may just have been applied), and
//! [`Resolver::forget`] drops a group/version explicitly.

use crate::{ClusterError, with_retries};
use kube::{
    Client,
    core::GroupVersion,
    discovery::{ApiCapabilities, ApiResource, Scope, oneshot},
};
use std::{collections::HashMap, sync::Arc};
use tokio::sync::Mutex;

/// A kind the cluster serves.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether objects of this kind live in namespaces.
    pub namespaced: bool,
    /// Whether the kind has a `status` subresource (a controller reports
    /// its status); health reads a kind without one as configuration.
    pub status_subresource: bool,
}

type Resources = Arc<Vec<(ApiResource, ApiCapabilities)>>;

/// The discovery cache of one cluster.
pub struct Resolver {
    client: Client,
    cluster: String,
    cache: Mutex<HashMap<String, Option<Resources>>>,
}

impl Resolver {
    /// An empty cache for `cluster`.
    pub fn new(client: Client, cluster: &str) -> Self {
        Resolver {
            client,
            cluster: cluster.to_string(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves `apiVersion` + `kind`; `Ok(None)` when the cluster does not
    /// serve it (even after asking again).
    pub async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<Resolved>, ClusterError> {
        if let Some(found) = builtin(api_version, kind) {
            return Ok(Some(found));
        }
        if let Some(found) = self.lookup(api_version, kind, false).await? {
            return Ok(Some(found));
        }
        self.lookup(api_version, kind, true).await
    }

    /// Drops what is known of `apiVersion`, so the next resolve asks again.
    pub async fn forget(&self, api_version: &str) {
        self.cache.lock().await.remove(api_version);
    }

    async fn lookup(
        &self,
        api_version: &str,
        kind: &str,
        refresh: bool,
    ) -> Result<Option<Resolved>, ClusterError> {
        let mut cache = self.cache.lock().await;
        if refresh || !cache.contains_key(api_version) {
            let resources = self.fetch(api_version).await?;
            cache.insert(api_version.to_string(), resources);
        }
        Ok(cache
            .get(api_version)
            .and_then(Option::as_ref)
            .and_then(|resources| resources.iter().find(|(r, _)| r.kind == kind))
            .map(|(resource, caps)| Resolved {
                resource: resource.clone(),
                namespaced: caps.scope == Scope::Namespaced,
                status_subresource: caps.subresources.iter().any(|(r, _)| r.plural == "status"),
            }))
    }

    async fn fetch(&self, api_version: &str) -> Result<Option<Resources>, ClusterError> {
        let gv: GroupVersion = match api_version.parse() {
            Ok(gv) => gv,
            Err(_) => return Ok(None),
        };
        let group = with_retries("discovery", || oneshot::pinned_group(&self.client, &gv)).await;
        match group {
            Ok(group) => Ok(Some(Arc::new(group.versioned_resources(&gv.version)))),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(source) => Err(ClusterError::Api {
                cluster: self.cluster.clone(),
                what: format!("discovering {api_version}"),
                error: source,
            }),
        }
    }
}

/// Stable built-in kinds whose REST mapping Kubernetes' API compatibility
/// rules fix (GA groups never rename or re-scope a resource): resolved
/// without a discovery request, so a plan of common manifests in a fresh
/// process sends none. Anything else is discovered.
fn builtin(api_version: &str, kind: &str) -> Option<Resolved> {
    // (apiVersion, kind, plural, namespaced, status subresource)
    const KINDS: &[(&str, &str, &str, bool, bool)] = &[
        ("v1", "ConfigMap", "configmaps", true, false),
        ("v1", "Secret", "secrets", true, false),
        ("v1", "Service", "services", true, true),
        ("v1", "ServiceAccount", "serviceaccounts", true, false),
        ("v1", "Namespace", "namespaces", false, true),
        (
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            true,
        ),
        ("v1", "Pod", "pods", true, true),
        ("apps/v1", "Deployment", "deployments", true, true),
        ("apps/v1", "StatefulSet", "statefulsets", true, true),
        ("apps/v1", "DaemonSet", "daemonsets", true, true),
        ("apps/v1", "ReplicaSet", "replicasets", true, true),
        ("batch/v1", "Job", "jobs", true, true),
        ("batch/v1", "CronJob", "cronjobs", true, true),
    ];
    let (_, _, plural, namespaced, status) = KINDS
        .iter()
        .find(|(v, k, ..)| *v == api_version && *k == kind)?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Some(Resolved {
        resource: ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            plural: (*plural).to_string(),
        },
        namespaced: *namespaced,
        status_subresource: *status,
    })
}

#[cfg(test)]
mod tests {
    use super::builtin;

    #[test]
    fn stable_built_in_kinds_resolve_without_discovery() {
        let d = builtin("apps/v1", "Deployment").expect("built in");
        assert_eq!(
            (
                d.resource.group.as_str(),
                d.resource.version.as_str(),
                d.resource.plural.as_str()
            ),
            ("apps", "v1", "deployments")
        );
        assert!(d.namespaced && d.status_subresource);
        let cm = builtin("v1", "ConfigMap").expect("built in");
        assert_eq!(
            (cm.resource.group.as_str(), cm.resource.plural.as_str()),
            ("", "configmaps")
        );
        assert!(cm.namespaced && !cm.status_subresource);
        assert!(!builtin("v1", "Namespace").expect("built in").namespaced);
        // Other versions, groups and custom kinds are discovered.
        assert!(builtin("apps/v1beta1", "Deployment").is_none());
        assert!(builtin("example.com/v1", "ConfigMap").is_none());
        assert!(builtin("v1", "Widget").is_none());
    }
}
