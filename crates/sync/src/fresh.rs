//! Reading one's own writes through a cache.
//!
//! A watch cache sees a write some time after the API server answered it.
//! An engine whose live state is a cache ([`Engine::with_live_state`])
//! records the `resourceVersion` of every object it applies and every
//! object it prunes; a read of such an object returns the cache's copy only
//! once the cache holds exactly that version (or, for a pruned object, no
//! longer holds it). Until then the object is read from the API server
//! (a GET, a consistent read: at least as new as the write), and the record
//! is dropped as soon as the cache and the API server agree. Watch events
//! arrive in order, so once the cache has shown the version written, every
//! later copy it holds is newer. A health read right after an apply is
//! therefore never judged on the object as it was before the apply.

use crate::{
    Engine, SyncError,
    live::{LiveMap, LiveObject},
};
use futures::{StreamExt, TryStreamExt, stream};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tidegate_cluster::{Resolved, get_object};
use tidegate_core::ObjectKey;

/// What an engine wrote and its cache may not have seen yet: by key, the
/// `resourceVersion` applied, or `None` for a deleted object. Shared by the
/// engines [shared](Engine::share) from one another.
#[derive(Debug, Clone, Default)]
pub(crate) struct Written(Arc<Mutex<HashMap<ObjectKey, Option<String>>>>);

impl Written {
    /// `key` was applied and the API server answered with `version`.
    pub(crate) fn applied(&self, key: &ObjectKey, version: &str) {
        if let Ok(mut w) = self.0.lock() {
            w.insert(key.clone(), Some(version.to_string()));
        }
    }

    /// `key` was deleted.
    pub(crate) fn deleted(&self, key: &ObjectKey) {
        if let Ok(mut w) = self.0.lock() {
            w.insert(key.clone(), None);
        }
    }

    /// What was written of `key` and not yet seen by the cache.
    fn expected(&self, key: &ObjectKey) -> Option<Option<String>> {
        self.0.lock().ok().and_then(|w| w.get(key).cloned())
    }

    /// The cache has seen `expected` of `key` (or something newer): forget
    /// it, unless a newer write replaced it meanwhile.
    fn seen(&self, key: &ObjectKey, expected: &Option<String>) {
        if let Ok(mut w) = self.0.lock()
            && w.get(key) == Some(expected)
        {
            w.remove(key);
        }
    }

    /// How many writes the cache has not been seen to hold yet.
    pub(crate) fn pending(&self) -> usize {
        self.0.lock().map(|w| w.len()).unwrap_or(0)
    }
}

fn version(object: Option<&LiveObject>) -> Option<&str> {
    object.and_then(|o| o["metadata"]["resourceVersion"].as_str())
}

impl Engine {
    /// Replaces in `live` (read from the cache) every object of `wanted`
    /// this engine wrote and the cache has not been seen to hold yet by
    /// what the API server says now.
    pub(crate) async fn fresh(
        &self,
        wanted: &[(ObjectKey, Resolved)],
        live: &mut LiveMap,
    ) -> Result<(), SyncError> {
        let Some(written) = &self.written else {
            return Ok(());
        };
        let mut stale = Vec::new();
        for (key, resolved) in wanted {
            let Some(expected) = written.expected(key) else {
                continue;
            };
            let cached = live.get(key);
            let caught_up = match &expected {
                Some(v) => version(cached) == Some(v.as_str()),
                None => cached.is_none(),
            };
            if caught_up {
                written.seen(key, &expected);
            } else {
                stale.push((key, resolved, expected, version(cached).map(str::to_string)));
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        let gets: Vec<_> = stale
            .into_iter()
            .map(|(key, resolved, expected, cached)| async move {
                get_object(&self.client, &self.cluster, resolved, key)
                    .await
                    .map(|found| (key, expected, cached, found.map(Arc::new)))
            })
            .collect();
        let fetched: Vec<_> = stream::iter(gets)
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        for (key, expected, cached, found) in fetched {
            // The cache holds what the API server holds now: it has caught up.
            if version(found.as_ref()) == cached.as_deref() {
                written.seen(key, &expected);
            }
            match found {
                Some(object) => live.insert(key.clone(), object),
                None => live.remove(key),
            };
        }
        Ok(())
    }
}
