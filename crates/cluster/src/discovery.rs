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
