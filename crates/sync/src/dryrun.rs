//! Reusing dry-run results while neither side of the comparison changed.
//!
//! A dry-run apply's answer depends on the object sent and on the live
//! object it lands on. [`DryRunCache`] keeps the last answer per cluster,
//! object and `force` (a drifted object is asked both ways: the conflict,
//! then the prediction with force), for a SHA-256 of the desired object as
//! sent and the live object's `resourceVersion` (or its absence); any change
//! to either side (a new commit, `kubectl scale`, a controller writing the
//! object) misses, and the dry run is sent again.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};
use tidegate_core::ObjectKey;

/// What a dry run answered: the predicted object, or a field-manager
/// conflict (409), which depends only on the two objects too. Other
/// rejections (quota, admission, validation) are never cached: they may
/// depend on state outside the object.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// The object as the server would store it.
    Predicted(Arc<Value>),
    /// The server's conflict status.
    Conflict(Box<kube::core::Status>),
}

/// What both sides of one dry run were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inputs {
    desired: [u8; 32],
    live_version: Option<String>,
}

impl Inputs {
    /// The inputs of a dry run of `desired` (as sent) against a live object
    /// at `live_version` (`None`: absent, or without a version).
    #[cfg(test)]
    pub(crate) fn new(desired: &Value, live_version: Option<&str>) -> Inputs {
        Inputs::of(
            &serde_json::to_vec(desired).unwrap_or_default(),
            live_version,
        )
    }

    /// [`Inputs::new`] of a desired object already serialized
    /// (`serde_json::to_vec`).
    pub(crate) fn of(serialized: &[u8], live_version: Option<&str>) -> Inputs {
        Inputs {
            desired: Sha256::digest(serialized).into(),
            live_version: live_version.map(str::to_string),
        }
    }
}

/// (cluster, object, sent with force) → the inputs and the answer.
type Entries = HashMap<(String, ObjectKey, bool), (Inputs, Answer)>;

/// Dry-run answers by (cluster, object, force), reused while the desired
/// object (hash) and the live object (`resourceVersion`) are unchanged.
/// Send + Sync and cheap to clone (clones share the entries); at most two
/// entries (without and with force) per object and cluster, so it never
/// grows beyond the objects managed. Every
/// [`Engine`](crate::Engine) has one of its own; share one across engines
/// (or reconnects) with [`Engine::with_dry_run_cache`](crate::Engine::with_dry_run_cache).
#[derive(Debug, Clone, Default)]
pub struct DryRunCache(Arc<Mutex<Entries>>);

impl DryRunCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many objects have an answer.
    pub fn len(&self) -> usize {
        self.entries(|e| e.len())
    }

    /// True when no object has an answer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every answer. The keys see only the two objects, not
    /// admission webhooks, CRD schemas, quotas or the namespace: a
    /// long-running process clears the cache now and then to bound how
    /// long a change there can go unseen by plans.
    pub fn clear(&self) {
        self.entries(|e| e.clear());
    }

    /// The answer for `key` in `cluster` sent with `force`, if it was given
    /// for `inputs`.
    pub(crate) fn get(
        &self,
        cluster: &str,
        key: &ObjectKey,
        force: bool,
        inputs: &Inputs,
    ) -> Option<Answer> {
        self.entries(|e| {
            e.get(&(cluster.to_string(), key.clone(), force))
                .filter(|(had, _)| had == inputs)
                .map(|(_, answer)| answer.clone())
        })
    }

    /// Remembers `answer` for `key` in `cluster` sent with `force`
    /// (replacing an older one).
    pub(crate) fn put(
        &self,
        cluster: &str,
        key: &ObjectKey,
        force: bool,
        inputs: Inputs,
        answer: Answer,
    ) {
        self.entries(|e| e.insert((cluster.to_string(), key.clone(), force), (inputs, answer)));
    }

    fn entries<T>(&self, f: impl FnOnce(&mut Entries) -> T) -> T {
        // A panic while holding the lock cannot leave an entry half-written
        // (inserts and lookups are single calls): keep using the map.
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(v: Value) -> Answer {
        Answer::Predicted(Arc::new(v))
    }

    fn predicted(a: Option<Answer>) -> Option<Value> {
        match a? {
            Answer::Predicted(v) => Some((*v).clone()),
            Answer::Conflict(_) => None,
        }
    }

    #[test]
    fn an_answer_is_reused_only_for_the_same_object_version_and_force() {
        let cache = DryRunCache::new();
        let clone = cache.clone();
        let key = ObjectKey::new("", "ConfigMap", Some("ns"), "a");
        let desired = json!({"kind": "ConfigMap", "data": {"x": "1"}});
        let at = |v: Option<&str>| Inputs::new(&desired, v);
        cache.put("eks", &key, false, at(Some("7")), answer(json!({"x": 1})));
        assert_eq!(
            predicted(clone.get("eks", &key, false, &at(Some("7")))),
            Some(json!({"x": 1}))
        );
        // The live object changed, or is gone.
        assert!(cache.get("eks", &key, false, &at(Some("8"))).is_none());
        assert!(cache.get("eks", &key, false, &at(None)).is_none());
        // Another desired object, force, cluster or key.
        let other = json!({"kind": "ConfigMap", "data": {"x": "2"}});
        assert!(
            cache
                .get("eks", &key, false, &Inputs::new(&other, Some("7")))
                .is_none()
        );
        assert!(cache.get("eks", &key, true, &at(Some("7"))).is_none());
        assert!(cache.get("aks", &key, false, &at(Some("7"))).is_none());
        let b = ObjectKey::new("", "ConfigMap", Some("ns"), "b");
        assert!(cache.get("eks", &b, false, &at(Some("7"))).is_none());
        // A conflict and the forced prediction are both kept.
        let conflict = kube::core::Status::failure("conflict", "Conflict").with_code(409);
        cache.put(
            "eks",
            &key,
            false,
            at(Some("7")),
            Answer::Conflict(Box::new(conflict)),
        );
        cache.put("eks", &key, true, at(Some("7")), answer(json!({"x": 2})));
        assert!(matches!(
            cache.get("eks", &key, false, &at(Some("7"))),
            Some(Answer::Conflict(s)) if s.code == 409
        ));
        assert_eq!(
            predicted(cache.get("eks", &key, true, &at(Some("7")))),
            Some(json!({"x": 2}))
        );
        // A newer answer replaces the older one.
        cache.put("eks", &key, false, at(Some("8")), answer(json!({"x": 3})));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("eks", &key, false, &at(Some("7"))).is_none());
        cache.clear();
        assert!(clone.is_empty());
    }
}
