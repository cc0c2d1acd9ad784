//! The live-state seam: where the engine reads what runs in a cluster.
//!
//! [`Engine::plan`](crate::Engine::plan) and the health reads
//! ([`Engine::health_of`](crate::Engine::health_of)) read live objects only
//! through [`LiveState`]. [`ApiLiveState`] reads the API server (one LIST
//! per kind by label, a GET per object); a watch cache (the controller's
//! reflector stores) is another implementation, plugged in with
//! [`Engine::with_live_state`](crate::Engine::with_live_state).

use futures::future::BoxFuture;
use kube::Client;
use serde_json::Value;
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};
use tidegate_cluster::{ClusterError, Resolved, get_object, list_managed};
use tidegate_core::ObjectKey;

/// A live object as the API server returns it, `apiVersion`, `kind` and
/// `metadata.resourceVersion` included. Shared, so a cache can hand out
/// what it holds without copying.
pub type LiveObject = Arc<Value>;

/// Live objects by key.
pub type LiveMap = BTreeMap<ObjectKey, LiveObject>;

/// Which objects of a kind a [`LiveState::list`] returns: those carrying
/// Tidegate's managed-by label, only `environment`'s when it is given, only
/// in `namespace` when it is given (namespaced kinds).
#[derive(Debug, Clone, Copy, Default)]
pub struct ListScope<'a> {
    /// The environment whose objects (`tidegate.dev/environment` label) to list.
    pub environment: Option<&'a str>,
    /// The one namespace to list in.
    pub namespace: Option<&'a str>,
}

/// Reads the live state of one cluster. The reads may come from the API
/// server or from a cache kept up to date by watches; both return owned
/// (shared) objects, so an implementation that answers synchronously from
/// memory fits as well as one that sends requests.
pub trait LiveState: Send + Sync {
    /// The managed objects of a kind within `scope`. Objects applied by an
    /// older Tidegate may lack the environment label: callers fetch the
    /// keys they expected but did not find with [`LiveState::get`].
    fn list<'a>(
        &'a self,
        resolved: &'a Resolved,
        scope: ListScope<'a>,
    ) -> BoxFuture<'a, Result<LiveMap, ClusterError>>;

    /// One object, labelled or not; `None` when it does not exist.
    fn get<'a>(
        &'a self,
        resolved: &'a Resolved,
        key: &'a ObjectKey,
    ) -> BoxFuture<'a, Result<Option<LiveObject>, ClusterError>>;

    /// The objects among `keys` that [`LiveState::list`] would return for
    /// `scope` (the others may be absent or unlabelled: callers fetch them
    /// with [`LiveState::get`]). By default a list, filtered; a cache can
    /// look the keys up instead of handing out the whole scope (a plan of
    /// one app in a namespace shared by many reads only its own objects).
    fn list_keys<'a>(
        &'a self,
        resolved: &'a Resolved,
        scope: ListScope<'a>,
        keys: &'a BTreeSet<&'a ObjectKey>,
    ) -> BoxFuture<'a, Result<LiveMap, ClusterError>> {
        Box::pin(async move {
            let mut found = self.list(resolved, scope).await?;
            found.retain(|key, _| keys.contains(key));
            Ok(found)
        })
    }
}

/// The default [`LiveState`]: a LIST or GET request to the API server per read.
#[derive(Clone)]
pub struct ApiLiveState {
    client: Client,
    cluster: String,
}

impl ApiLiveState {
    /// Reads `cluster` through `client`.
    pub fn new(client: Client, cluster: &str) -> Self {
        ApiLiveState {
            client,
            cluster: cluster.to_string(),
        }
    }
}

impl LiveState for ApiLiveState {
    fn list<'a>(
        &'a self,
        resolved: &'a Resolved,
        scope: ListScope<'a>,
    ) -> BoxFuture<'a, Result<LiveMap, ClusterError>> {
        Box::pin(async move {
            let listed = list_managed(
                &self.client,
                &self.cluster,
                resolved,
                scope.environment,
                scope.namespace,
            )
            .await?;
            Ok(listed.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
        })
    }

    fn get<'a>(
        &'a self,
        resolved: &'a Resolved,
        key: &'a ObjectKey,
    ) -> BoxFuture<'a, Result<Option<LiveObject>, ClusterError>> {
        Box::pin(async move {
            Ok(get_object(&self.client, &self.cluster, resolved, key)
                .await?
                .map(Arc::new))
        })
    }
}
