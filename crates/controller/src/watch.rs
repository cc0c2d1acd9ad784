//! Watch caches: per cluster, one kube-runtime `watcher` + `reflector`
//! store per managed kind, filtered by Tidegate's managed-by label.
//!
//! kube-runtime does the informer's work (list, watch from the listed
//! resourceVersion, bookmarks, relist when the resourceVersion expires,
//! backoff on errors); this module only turns the events into
//! [`Changed`] notices for the objects of one environment, and only when an
//! object's declared state changed (a `status` update by the object's own
//! controller is not drift and costs nothing).

use futures::StreamExt;
use kube::{
    Client,
    api::DynamicObject,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store, store::Writer},
        watcher,
    },
};
use serde_json::Value;
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
};
use tidegate_cluster::{LiveObjects, Resolved, dynamic_api};
use tidegate_core::{
    ObjectKey,
    object::split_api_version,
    tracking::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, TRACKING_ANNOTATION},
};
use tokio::{sync::mpsc::UnboundedSender, task::JoinHandle};
use tracing::{debug, warn};

/// An object of the environment whose declared state changed in a cluster
/// (or that was deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The cluster.
    pub cluster: String,
    /// The app the object belongs to (from its tracking id).
    pub app: String,
    /// The object.
    pub key: ObjectKey,
}

/// The watch caches of one environment in one cluster.
pub struct ClusterWatch {
    cluster: String,
    environment: String,
    client: Client,
    events: UnboundedSender<Changed>,
    kinds: BTreeMap<String, Watched>,
}

struct Watched {
    resolved: Resolved,
    store: Store<DynamicObject>,
    task: JoinHandle<()>,
}

impl ClusterWatch {
    /// Watch caches for `environment` in `cluster`, reporting changes to `events`.
    pub fn new(
        cluster: &str,
        environment: &str,
        client: Client,
        events: UnboundedSender<Changed>,
    ) -> ClusterWatch {
        ClusterWatch {
            cluster: cluster.to_string(),
            environment: environment.to_string(),
            client,
            events,
            kinds: BTreeMap::new(),
        }
    }

    /// Starts watching a kind (once; later calls for the same kind do nothing).
    pub fn watch(&mut self, resolved: &Resolved) {
        let id = kind_id(resolved);
        if self.kinds.contains_key(&id) {
            return;
        }
        let writer = Writer::new(resolved.resource.clone());
        let store = writer.as_reader();
        let api = dynamic_api(&self.client, resolved, None);
        let config =
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
        let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
        let mut notices = Notices {
            cluster: self.cluster.clone(),
            prefix: format!("{}/", self.environment),
            resolved: resolved.clone(),
            events: self.events.clone(),
            fingerprints: HashMap::new(),
            listing: None,
            listed_once: false,
        };
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => notices.observe(event),
                    // The stream recovers by itself (after a backoff).
                    Err(e) => {
                        warn!(cluster = %notices.cluster, kind = %notices.resolved.resource.kind, error = %e, "watch interrupted; kube-runtime retries it")
                    }
                }
            }
        });
        self.kinds.insert(
            id,
            Watched {
                resolved: resolved.clone(),
                store,
                task,
            },
        );
    }

    /// Waits until every watched kind has been listed once.
    pub async fn ready(&self) {
        for w in self.kinds.values() {
            // Err: the writer is gone (the task ended), nothing to wait for.
            let _ = w.store.wait_until_ready().await;
        }
    }

    /// Objects in the caches (of every environment; the label selects all
    /// objects Tidegate manages).
    pub fn cached(&self) -> usize {
        self.kinds.values().map(|w| w.store.len()).sum()
    }

    /// The cached live objects of this environment, by key, as a LIST would return them.
    pub fn live(&self) -> LiveObjects {
        let mut out = LiveObjects::new();
        for w in self.kinds.values() {
            for object in w.store.state() {
                let value = serde_json::to_value(object.as_ref()).unwrap_or(Value::Null);
                if let Some(key) = key_of(&value, &w.resolved) {
                    out.insert(key, value);
                }
            }
        }
        out
    }

    /// The cluster watched.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }
}

impl Drop for ClusterWatch {
    fn drop(&mut self) {
        for w in self.kinds.values() {
            w.task.abort();
        }
    }
}

fn kind_id(resolved: &Resolved) -> String {
    format!(
        "{}/{}",
        resolved.resource.api_version, resolved.resource.kind
    )
}

/// Turns watch events of one kind into [`Changed`] notices.
struct Notices {
    cluster: String,
    /// `<environment>/`: tracking ids of this environment start with it.
    prefix: String,
    resolved: Resolved,
    events: UnboundedSender<Changed>,
    /// The declared-state fingerprint of every object seen.
    fingerprints: HashMap<ObjectKey, (String, u64)>,
    /// Objects seen during a relist in progress.
    listing: Option<HashSet<ObjectKey>>,
    /// False until the first list completes (what is there at start-up is
    /// the starting point, not a change).
    listed_once: bool,
}

impl Notices {
    fn observe(&mut self, event: watcher::Event<DynamicObject>) {
        match event {
            watcher::Event::Init => self.listing = Some(HashSet::new()),
            watcher::Event::InitApply(object) => {
                if let Some(key) = self.seen(&object)
                    && let Some(listing) = &mut self.listing
                {
                    listing.insert(key);
                }
            }
            watcher::Event::InitDone => {
                // Objects not listed again were deleted while the watch was down.
                let listed = self.listing.take().unwrap_or_default();
                let gone: Vec<ObjectKey> = self
                    .fingerprints
                    .keys()
                    .filter(|k| !listed.contains(k))
                    .cloned()
                    .collect();
                for key in gone {
                    if let Some((app, _)) = self.fingerprints.remove(&key) {
                        self.notify(app, key);
                    }
                }
                self.listed_once = true;
            }
            watcher::Event::Apply(object) => {
                self.seen(&object);
            }
            watcher::Event::Delete(object) => {
                let value = serde_json::to_value(&object).unwrap_or(Value::Null);
                if let Some(key) = key_of(&value, &self.resolved)
                    && let Some((app, _)) = self.fingerprints.remove(&key)
                {
                    self.notify(app, key);
                }
            }
        }
    }

    /// Records an object; notifies when its declared state changed. Returns
    /// its key when it belongs to this environment.
    fn seen(&mut self, object: &DynamicObject) -> Option<ObjectKey> {
        let value = serde_json::to_value(object).ok()?;
        let app = app_of(&value, &self.prefix)?;
        let key = key_of(&value, &self.resolved)?;
        let print = fingerprint(&value);
        let before = self.fingerprints.insert(key.clone(), (app.clone(), print));
        let changed = before.is_none_or(|(_, p)| p != print);
        if changed && self.listed_once {
            self.notify(app, key.clone());
        }
        Some(key)
    }

    fn notify(&self, app: String, key: ObjectKey) {
        debug!(cluster = %self.cluster, %app, object = %key, "declared state changed");
        // The receiver is gone only when the environment loop stopped.
        let _ = self.events.send(Changed {
            cluster: self.cluster.clone(),
            app,
            key,
        });
    }
}

/// The app of an object of this environment (tracking id `<env>/<app>/...`).
fn app_of(value: &Value, prefix: &str) -> Option<String> {
    let id = value["metadata"]["annotations"][TRACKING_ANNOTATION].as_str()?;
    let rest = id.strip_prefix(prefix)?;
    Some(rest.split('/').next()?.to_string())
}

fn key_of(value: &Value, resolved: &Resolved) -> Option<ObjectKey> {
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

/// A hash of an object's declared state: everything but `status` and the
/// metadata the API server and controllers keep up to date.
pub fn fingerprint(value: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    if let Some(object) = value.as_object() {
        for (field, v) in object {
            match field.as_str() {
                "status" => {}
                "metadata" => {
                    for (m, mv) in v.as_object().into_iter().flatten() {
                        if !matches!(
                            m.as_str(),
                            "resourceVersion"
                                | "managedFields"
                                | "generation"
                                | "uid"
                                | "creationTimestamp"
                                | "selfLink"
                        ) {
                            m.hash(&mut hasher);
                            mv.to_string().hash(&mut hasher);
                        }
                    }
                }
                _ => {
                    field.hash(&mut hasher);
                    v.to_string().hash(&mut hasher);
                }
            }
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: u32, ready: u32, rv: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": rv, "generation": replicas,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
                "annotations": {TRACKING_ANNOTATION: "prod/web/apps/Deployment/shop/web"},
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "time": format!("2026-12-01T00:00:{rv:0>2}Z")}]},
            "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready}
        })
    }

    #[test]
    fn status_and_bookkeeping_do_not_change_the_fingerprint() {
        let a = fingerprint(&deployment(3, 1, "10"));
        assert_eq!(a, fingerprint(&deployment(3, 3, "11")));
        assert_ne!(
            a,
            fingerprint(&deployment(2, 3, "12")),
            "spec.replicas is declared state"
        );
        let mut labelled = deployment(3, 1, "13");
        labelled["metadata"]["labels"]["team"] = json!("x");
        assert_ne!(a, fingerprint(&labelled), "labels are declared state");
    }

    #[test]
    fn objects_belong_to_their_environment_and_app() {
        let d = deployment(1, 1, "1");
        assert_eq!(app_of(&d, "prod/").as_deref(), Some("web"));
        assert_eq!(app_of(&d, "pro/"), None);
        assert_eq!(app_of(&json!({"metadata": {}}), "prod/"), None);
    }

    fn notices() -> (Notices, tokio::sync::mpsc::UnboundedReceiver<Changed>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let resolved = Resolved {
            resource: kube::discovery::ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                plural: "deployments".into(),
            },
            namespaced: true,
            status_subresource: true,
        };
        let n = Notices {
            cluster: "eks".into(),
            prefix: "prod/".into(),
            resolved,
            events: tx,
            fingerprints: HashMap::new(),
            listing: None,
            listed_once: false,
        };
        (n, rx)
    }

    fn object(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_first_list_is_the_start_then_declared_changes_and_deletes_are_notices() {
        let (mut n, mut rx) = notices();
        n.observe(watcher::Event::Init);
        n.observe(watcher::Event::InitApply(object(deployment(3, 0, "1"))));
        n.observe(watcher::Event::InitDone);
        assert!(
            rx.try_recv().is_err(),
            "what runs at start-up is not a change"
        );
        n.observe(watcher::Event::Apply(object(deployment(3, 3, "2"))));
        assert!(rx.try_recv().is_err(), "a status update is not a change");
        n.observe(watcher::Event::Apply(object(deployment(5, 3, "3"))));
        let c = rx.try_recv().unwrap();
        assert_eq!((c.cluster.as_str(), c.app.as_str()), ("eks", "web"));
        assert_eq!(c.key.name, "web");
        n.observe(watcher::Event::Delete(object(deployment(5, 3, "4"))));
        assert_eq!(rx.try_recv().unwrap().key.name, "web");
    }

    #[test]
    fn a_relist_reports_what_changed_or_vanished_while_the_watch_was_down() {
        let (mut n, mut rx) = notices();
        n.observe(watcher::Event::Init);
        n.observe(watcher::Event::InitApply(object(deployment(3, 0, "1"))));
        n.observe(watcher::Event::InitDone);
        // Relist after the resourceVersion expired: unchanged → nothing.
        n.observe(watcher::Event::Init);
        n.observe(watcher::Event::InitApply(object(deployment(3, 3, "9"))));
        n.observe(watcher::Event::InitDone);
        assert!(rx.try_recv().is_err());
        // Relist without the object: it was deleted.
        n.observe(watcher::Event::Init);
        n.observe(watcher::Event::InitDone);
        assert_eq!(rx.try_recv().unwrap().key.name, "web");
    }

    #[test]
    fn other_environments_objects_are_ignored() {
        let (mut n, mut rx) = notices();
        n.observe(watcher::Event::Init);
        n.observe(watcher::Event::InitDone);
        let mut other = deployment(1, 1, "1");
        other["metadata"]["annotations"][TRACKING_ANNOTATION] =
            json!("staging/web/apps/Deployment/shop/web");
        n.observe(watcher::Event::Apply(object(other)));
        assert!(rx.try_recv().is_err());
    }
}
