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
use futures::future::BoxFuture;
use kube::{
    Client,
    api::DynamicObject,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store, store::Writer},
        watcher,
    },
};
use serde_json::Value;
use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};
use tidegate_cluster::{ClusterError, Resolved, dynamic_api, key_of, listed_value};
use tidegate_core::{
    ObjectKey,
    tracking::{TRACKING_ANNOTATION, managed_selector},
};
use tidegate_sync::{ApiLiveState, ListScope, LiveMap, LiveObject, LiveState};
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
    kinds: Kinds,
}

/// The watched kinds of one cluster, shared by the [`ClusterWatch`] that
/// starts them and the [`CachedLiveState`] that reads them.
pub type Kinds = Arc<Mutex<BTreeMap<String, Watched>>>;

/// One watched kind.
pub struct Watched {
    store: Store<DynamicObject>,
    /// True once the first list completed (the store then answers reads).
    listed: Arc<AtomicBool>,
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
            kinds: Kinds::default(),
        }
    }

    /// A [`LiveState`] that answers from these caches (the API server for
    /// kinds not watched, or not listed yet).
    pub fn live_state(&self) -> CachedLiveState {
        CachedLiveState {
            kinds: self.kinds.clone(),
            environment: self.selector_environment().map(str::to_string),
            api: ApiLiveState::new(self.client.clone(), &self.cluster),
        }
    }

    /// The environment the watches select by label, when its name can be a
    /// label value (otherwise every managed object is watched).
    fn selector_environment(&self) -> Option<&str> {
        Some(self.environment.as_str()).filter(|e| tidegate_core::names::is_label_value(e))
    }

    /// Starts watching a kind (once; later calls for the same kind do nothing).
    pub fn watch(&mut self, resolved: &Resolved) {
        let id = kind_id(resolved);
        let Ok(mut kinds) = self.kinds.lock() else {
            return;
        };
        if kinds.contains_key(&id) {
            return;
        }
        let writer = Writer::new(resolved.resource.clone());
        let store = writer.as_reader();
        let api = dynamic_api(&self.client, resolved, None);
        let config =
            watcher::Config::default().labels(&managed_selector(self.selector_environment()));
        let listed = Arc::new(AtomicBool::new(false));
        let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
        let mut notices = Notices {
            cluster: self.cluster.clone(),
            prefix: format!("{}/", self.environment),
            resolved: resolved.clone(),
            events: self.events.clone(),
            fingerprints: HashMap::new(),
            listing: None,
            listed_once: false,
            listed: listed.clone(),
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
        kinds.insert(
            id,
            Watched {
                store,
                listed,
                task,
            },
        );
    }

    /// Waits until every watched kind has been listed once.
    pub async fn ready(&self) {
        let stores: Vec<Store<DynamicObject>> = self
            .kinds
            .lock()
            .map(|k| k.values().map(|w| w.store.clone()).collect())
            .unwrap_or_default();
        for store in stores {
            // Err: the writer is gone (the task ended), nothing to wait for.
            let _ = store.wait_until_ready().await;
        }
    }

    /// How many kinds are watched.
    pub fn kinds_watched(&self) -> usize {
        self.kinds.lock().map(|k| k.len()).unwrap_or(0)
    }

    /// Objects in the caches.
    pub fn cached(&self) -> usize {
        self.kinds
            .lock()
            .map(|k| k.values().map(|w| w.store.len()).sum())
            .unwrap_or(0)
    }

    /// The cluster watched.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }
}

impl Drop for ClusterWatch {
    fn drop(&mut self) {
        if let Ok(kinds) = self.kinds.lock() {
            for w in kinds.values() {
                w.task.abort();
            }
        }
    }
}

/// The live-state seam of the sync engine answered from the watch caches:
/// a plan or health read of a watched kind sends no request. Kinds not
/// watched (or not listed yet), other scopes and objects the caches do not
/// hold (unlabelled ones) are read from the API server.
pub struct CachedLiveState {
    kinds: Kinds,
    environment: Option<String>,
    api: ApiLiveState,
}

impl CachedLiveState {
    /// The store of a kind when the cache can answer for `scope` (this
    /// environment's objects, the kind watched and listed once).
    fn store(&self, resolved: &Resolved, scope: ListScope<'_>) -> Option<Store<DynamicObject>> {
        if scope.environment != self.environment.as_deref() || scope.environment.is_none() {
            return None;
        }
        let kinds = self.kinds.lock().ok()?;
        let w = kinds.get(&kind_id(resolved))?;
        w.listed.load(Ordering::Acquire).then(|| w.store.clone())
    }

    /// The cached objects of a kind in `namespace` (or all), when the cache can answer.
    fn cached(&self, resolved: &Resolved, scope: ListScope<'_>) -> Option<LiveMap> {
        let store = self.store(resolved, scope)?;
        let mut out = LiveMap::new();
        for object in store.state() {
            if scope
                .namespace
                .is_some_and(|ns| object.metadata.namespace.as_deref() != Some(ns))
            {
                continue;
            }
            let value = listed_value(&object, resolved);
            if let Some(key) = key_of(&value, resolved) {
                out.insert(key, Arc::new(value));
            }
        }
        Some(out)
    }

    /// The cached objects among `keys` (looked up one by one: only those
    /// are converted), when the cache can answer for `scope`.
    fn cached_keys(
        &self,
        resolved: &Resolved,
        scope: ListScope<'_>,
        keys: &BTreeSet<&ObjectKey>,
    ) -> Option<LiveMap> {
        let store = self.store(resolved, scope)?;
        let mut out = LiveMap::new();
        for key in keys {
            if scope
                .namespace
                .is_some_and(|ns| key.namespace.as_deref() != Some(ns))
            {
                continue;
            }
            if let Some(object) = store.get(&object_ref(resolved, key)) {
                let value = listed_value(&object, resolved);
                // The key the object reads as, as a list would file it.
                if let Some(found) = key_of(&value, resolved)
                    && &found == *key
                {
                    out.insert(found, Arc::new(value));
                }
            }
        }
        Some(out)
    }
}

/// The reflector store's key of `key` (a kind's store is keyed by name and
/// namespace under the kind's `ApiResource`).
fn object_ref(resolved: &Resolved, key: &ObjectKey) -> ObjectRef<DynamicObject> {
    let r = ObjectRef::new_with(&key.name, resolved.resource.clone());
    match &key.namespace {
        Some(ns) if resolved.namespaced => r.within(ns),
        _ => r,
    }
}

impl LiveState for CachedLiveState {
    fn list<'a>(
        &'a self,
        resolved: &'a Resolved,
        scope: ListScope<'a>,
    ) -> BoxFuture<'a, Result<LiveMap, ClusterError>> {
        match self.cached(resolved, scope) {
            Some(found) => Box::pin(std::future::ready(Ok(found))),
            None => self.api.list(resolved, scope),
        }
    }

    fn list_keys<'a>(
        &'a self,
        resolved: &'a Resolved,
        scope: ListScope<'a>,
        keys: &'a BTreeSet<&'a ObjectKey>,
    ) -> BoxFuture<'a, Result<LiveMap, ClusterError>> {
        match self.cached_keys(resolved, scope, keys) {
            Some(found) => Box::pin(std::future::ready(Ok(found))),
            None => self.api.list_keys(resolved, scope, keys),
        }
    }

    fn get<'a>(
        &'a self,
        resolved: &'a Resolved,
        key: &'a ObjectKey,
    ) -> BoxFuture<'a, Result<Option<LiveObject>, ClusterError>> {
        let scope = ListScope {
            environment: self.environment.as_deref(),
            namespace: key.namespace.as_deref(),
        };
        let keys = BTreeSet::from([key]);
        match self
            .cached_keys(resolved, scope, &keys)
            .and_then(|mut m| m.remove(key))
        {
            Some(found) => Box::pin(std::future::ready(Ok(Some(found)))),
            None => self.api.get(resolved, key),
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
    /// Shared with the cache's readers: the store answers once listed.
    listed: Arc<AtomicBool>,
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
                self.listed.store(true, Ordering::Release);
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
                "labels": {"app.kubernetes.io/managed-by": "tidegate"},
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
            listed: Arc::default(),
        };
        (n, rx)
    }

    fn object(v: Value) -> DynamicObject {
        serde_json::from_value(v).expect("a valid object")
    }

    fn deployment_named(name: &str, namespace: &str, replicas: u32) -> DynamicObject {
        let mut d = deployment(replicas, replicas, "7");
        d["metadata"]["name"] = json!(name);
        d["metadata"]["namespace"] = json!(namespace);
        object(d)
    }

    /// A cache of `objects` (listed once) behind a `CachedLiveState`
    /// whose API server fallback is a closed port.
    fn cache_of(objects: Vec<DynamicObject>) -> (CachedLiveState, Resolved, Writer<DynamicObject>) {
        let (n, _rx) = notices();
        let resolved = n.resolved.clone();
        let mut writer = Writer::new(resolved.resource.clone());
        writer.apply_watcher_event(&watcher::Event::Init);
        for o in objects {
            writer.apply_watcher_event(&watcher::Event::InitApply(o));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let kinds = Kinds::default();
        kinds.lock().expect("unpoisoned").insert(
            kind_id(&resolved),
            Watched {
                store: writer.as_reader(),
                listed: Arc::new(AtomicBool::new(true)),
                task: tokio::spawn(async {}),
            },
        );
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        let client = Client::try_from(config).expect("a client");
        let live = CachedLiveState {
            kinds,
            environment: Some("prod".into()),
            api: ApiLiveState::new(client, "eks"),
        };
        (live, resolved, writer)
    }

    #[tokio::test]
    async fn looking_keys_up_gives_what_the_list_gives_for_them_and_only_them() {
        let objects = vec![
            deployment_named("a", "shop", 1),
            deployment_named("b", "shop", 2),
            deployment_named("c", "shop", 3),
            deployment_named("a", "other", 4),
        ];
        let (live, resolved, _writer) = cache_of(objects);
        let key = |name: &str, ns: &str| ObjectKey {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some(ns.into()),
            name: name.into(),
        };
        let scope = ListScope {
            environment: Some("prod"),
            namespace: Some("shop"),
        };
        let listed = live.list(&resolved, scope).await.expect("from the cache");
        assert_eq!(listed.len(), 3, "the namespace scopes the list");
        let (a, c, missing, elsewhere) = (
            key("a", "shop"),
            key("c", "shop"),
            key("z", "shop"),
            key("a", "other"),
        );
        let asked = BTreeSet::from([&a, &c, &missing, &elsewhere]);
        let found = live
            .list_keys(&resolved, scope, &asked)
            .await
            .expect("from the cache");
        assert_eq!(
            found.keys().collect::<Vec<_>>(),
            vec![&a, &c],
            "only the asked keys in scope that the cache holds"
        );
        for (k, v) in &found {
            assert_eq!(v, &listed[k], "the same object as the list's");
        }
        assert_eq!(found[&c]["spec"]["replicas"], json!(3));
        // One object by key: the cached one, never the other namespace's.
        let got = live
            .get(&resolved, &elsewhere)
            .await
            .expect("from the cache");
        assert_eq!(got.expect("cached")["spec"]["replicas"], json!(4));
        // A scope the cache does not answer for goes to the API server
        // (here a closed port: an error, not a wrong answer).
        let other_env = ListScope {
            environment: Some("staging"),
            namespace: Some("shop"),
        };
        assert!(live.list_keys(&resolved, other_env, &asked).await.is_err());
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
        let c = rx.try_recv().expect("a notice");
        assert_eq!((c.cluster.as_str(), c.app.as_str()), ("eks", "web"));
        assert_eq!(c.key.name, "web");
        n.observe(watcher::Event::Delete(object(deployment(5, 3, "4"))));
        assert_eq!(rx.try_recv().expect("a notice").key.name, "web");
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
        assert_eq!(rx.try_recv().expect("a notice").key.name, "web");
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
