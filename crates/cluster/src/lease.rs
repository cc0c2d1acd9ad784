//! A lock held in the cluster: a `coordination.k8s.io/v1` Lease in the
//! `tidegate-system` namespace. The CLI on a laptop and the controller in a
//! cluster both see it, so they cannot roll out the same environment at once.

use crate::{ClusterError, with_retries};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    discovery::ApiResource,
};
use serde_json::{Value, json};
use std::time::Duration;

const NAMESPACE: &str = "tidegate-system";
const MANAGER: &str = "tidegate-lock";

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `user@host` or the controller's identity.
    pub identity: String,
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When the holder took the lock (RFC 3339).
    pub since: String,
}

impl Holder {
    /// This process, as `identity`.
    pub fn this_process(identity: &str) -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Holder {
            identity: identity.to_string(),
            pid: std::process::id(),
            host,
            since: now(),
        }
    }
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Someone else holds it.
    #[error(
        "{what} is locked by {} (pid {} on {}) since {}, until at least {}; wait for it to finish, or if that process is gone, break the lock with --break-lock",
        holder.identity, holder.pid, holder.host, holder.since, expires
    )]
    Held {
        /// What the lock protects.
        what: String,
        /// The current holder.
        holder: Holder,
        /// When the holder's lease runs out unless renewed.
        expires: String,
    },
    /// The cluster could not be read or written.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// The `coordination.k8s.io/v1` Lease resource.
pub fn lease_resource() -> ApiResource {
    ApiResource {
        group: "coordination.k8s.io".into(),
        version: "v1".into(),
        api_version: "coordination.k8s.io/v1".into(),
        kind: "Lease".into(),
        plural: "leases".into(),
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn manifest(name: &str, holder: &Holder, ttl: Duration) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "annotations": {
                "tidegate.dev/holder-pid": holder.pid.to_string(),
                "tidegate.dev/holder-host": holder.host,
                "tidegate.dev/holder-since": holder.since,
            }
        },
        "spec": {
            "holderIdentity": holder.identity,
            "leaseDurationSeconds": ttl.as_secs(),
            "acquireTime": holder.since,
            "renewTime": now(),
        }
    })
}

fn holder_of(lease: &Value) -> Holder {
    let a = &lease["metadata"]["annotations"];
    Holder {
        identity: lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        pid: a["tidegate.dev/holder-pid"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
        host: a["tidegate.dev/holder-host"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        since: a["tidegate.dev/holder-since"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
    }
}

/// When a lease runs out, and whether it already has.
fn expiry(lease: &Value) -> (String, bool) {
    let renewed = lease["spec"]["renewTime"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let ttl = lease["spec"]["leaseDurationSeconds"].as_i64().unwrap_or(0);
    match renewed.and_then(|r| r.checked_add(jiff::SignedDuration::from_secs(ttl)).ok()) {
        Some(until) => (until.to_string(), until < jiff::Timestamp::now()),
        None => ("unknown".into(), true),
    }
}

fn api_error(cluster: &str, what: &str, source: kube::Error) -> ClusterError {
    ClusterError::Api {
        cluster: cluster.to_string(),
        what: what.to_string(),
        error: source,
    }
}

/// Takes (or renews, when `holder` already has it) the lease `name`. An
/// expired lease is taken over; a live one held by someone else is an error
/// naming the holder, unless `break_lock`.
pub async fn acquire_lease(
    client: &Client,
    cluster: &str,
    name: &str,
    holder: &Holder,
    ttl: Duration,
    break_lock: bool,
) -> Result<(), LeaseError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &lease_resource());
    let wanted = manifest(name, holder, ttl);
    let object: DynamicObject = serde_json::from_value(wanted.clone()).map_err(|e| {
        api_error(
            cluster,
            "building the rollout lock",
            kube::Error::SerdeError(e),
        )
    })?;
    // Most often nobody holds it: one create. 404: the namespace is
    // missing (created, then the create is retried once); 409: it exists,
    // so whose it is decides below.
    let mut created = api.create(&PostParams::default(), &object).await;
    if matches!(&created, Err(kube::Error::Api(s)) if s.code == 404) {
        ensure_namespace(client, cluster, NAMESPACE).await?;
        created = api.create(&PostParams::default(), &object).await;
    }
    match created {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(api_error(cluster, "creating the rollout lock", e).into()),
    }
    let existing = with_retries("get lease", || api.get_opt(name))
        .await
        .map_err(|e| api_error(cluster, "reading the rollout lock", e))?;
    let Some(existing) = existing else {
        // Released between our create and GET: try again.
        return Box::pin(acquire_lease(
            client, cluster, name, holder, ttl, break_lock,
        ))
        .await;
    };
    let existing = serde_json::to_value(existing).unwrap_or(Value::Null);
    let current = holder_of(&existing);
    let (expires, expired) = expiry(&existing);
    let mine = current.identity == holder.identity
        && current.pid == holder.pid
        && current.host == holder.host;
    if !mine && !expired && !break_lock {
        return Err(LeaseError::Held {
            what: format!("lock {name} in cluster {cluster}"),
            holder: current,
            expires,
        });
    }
    // Replace with optimistic concurrency: a concurrent taker makes this fail with 409.
    let mut replacement = wanted;
    replacement["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
    let object: DynamicObject = serde_json::from_value(replacement).map_err(|e| {
        api_error(
            cluster,
            "building the rollout lock",
            kube::Error::SerdeError(e),
        )
    })?;
    match api.replace(name, &PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            Box::pin(acquire_lease(client, cluster, name, holder, ttl, false)).await
        }
        Err(e) => Err(api_error(cluster, "taking the rollout lock", e).into()),
    }
}

/// Releases the lease if `holder` has it.
pub async fn release_lease(
    client: &Client,
    cluster: &str,
    name: &str,
    holder: &Holder,
) -> Result<(), ClusterError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &lease_resource());
    let Some(existing) = api
        .get_opt(name)
        .await
        .map_err(|e| api_error(cluster, "reading the rollout lock", e))?
    else {
        return Ok(());
    };
    let existing = serde_json::to_value(existing).unwrap_or(Value::Null);
    let current = holder_of(&existing);
    if current.identity == holder.identity
        && current.pid == holder.pid
        && current.host == holder.host
    {
        let params = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                resource_version: existing["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_string),
                uid: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(api_error(cluster, "releasing the rollout lock", e)),
        }
    }
    Ok(())
}

/// Creates the namespace `namespace` (server-side apply) unless it exists.
pub async fn ensure_namespace(
    client: &Client,
    cluster: &str,
    namespace: &str,
) -> Result<(), ClusterError> {
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Namespace".into(),
            plural: "namespaces".into(),
        },
    );
    if api
        .get_opt(namespace)
        .await
        .map_err(|e| api_error(cluster, &format!("reading the {namespace} namespace"), e))?
        .is_none()
    {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        let patch = Patch::Apply(&ns);
        api.patch(namespace, &PatchParams::apply(MANAGER), &patch)
            .await
            .map_err(|e| api_error(cluster, &format!("creating the {namespace} namespace"), e))?;
    }
    Ok(())
}
