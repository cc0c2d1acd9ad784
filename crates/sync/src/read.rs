//! Reading the live objects of a set of keys: one read per kind.

use crate::{
    Engine, SyncError,
    live::{ListScope, LiveMap},
};
use futures::{StreamExt, TryStreamExt, stream};
use std::collections::{BTreeMap, BTreeSet};
use tidegate_cluster::Resolved;
use tidegate_core::ObjectKey;

/// The keys of one kind, with how to reach it.
struct Kind<'a> {
    resolved: &'a Resolved,
    keys: Vec<&'a ObjectKey>,
}

impl Engine {
    /// The live objects of `wanted` that exist (absent keys are missing from
    /// the map). One read per kind: a GET when the kind has a single key,
    /// otherwise a LIST by label — this `environment`'s objects when given,
    /// in their namespace when they share one. Keys the LIST does not
    /// return (deleted, or applied by an older Tidegate without the
    /// environment label) are fetched by GET.
    pub(crate) async fn read_live(
        &self,
        wanted: &[(ObjectKey, Resolved)],
        environment: Option<&str>,
    ) -> Result<LiveMap, SyncError> {
        // A name no label can carry (refused when the environment is
        // loaded; checked again so a selector never makes the read fail).
        let environment = environment.filter(|e| tidegate_core::names::is_label_value(e));
        let mut kinds: BTreeMap<(&str, &str), Kind<'_>> = BTreeMap::new();
        for (key, resolved) in wanted {
            kinds
                .entry((&resolved.resource.api_version, &resolved.resource.kind))
                .or_insert_with(|| Kind {
                    resolved,
                    keys: Vec::new(),
                })
                .keys
                .push(key);
        }
        // The futures are made first, not mapped inside the streams: a
        // closure over references there makes the sync future unprovably
        // `Send` (rust-lang/rust#102211), and the fleet driver needs it `Send`.
        let asked_by_kind: Vec<(&Kind<'_>, BTreeSet<&ObjectKey>)> = kinds
            .values()
            .filter(|k| k.keys.len() > 1)
            .map(|kind| (kind, kind.keys.iter().copied().collect()))
            .collect();
        let lists: Vec<_> = asked_by_kind
            .iter()
            .map(|(kind, asked)| {
                let scope = ListScope {
                    environment,
                    namespace: shared_namespace(kind),
                };
                self.live.list_keys(kind.resolved, scope, asked)
            })
            .collect();
        let listed: Vec<LiveMap> = stream::iter(lists)
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        let mut live: LiveMap = listed.into_iter().flatten().collect();
        let unlisted: Vec<(&ObjectKey, &Resolved)> = kinds
            .values()
            .flat_map(|kind| kind.keys.iter().map(|k| (*k, kind.resolved)))
            .filter(|(key, _)| !live.contains_key(*key))
            .collect();
        let gets: Vec<_> = unlisted
            .into_iter()
            .map(|(key, resolved)| async move {
                self.live
                    .get(resolved, key)
                    .await
                    .map(|found| found.map(|v| (key.clone(), v)))
            })
            .collect();
        let fetched: Vec<_> = stream::iter(gets)
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        // Every read above was of asked keys only (`list_keys`, GETs).
        live.extend(fetched.into_iter().flatten());
        // What this engine wrote is read from the API server until its
        // cache has seen it.
        self.fresh(wanted, &mut live).await?;
        Ok(live)
    }
}

/// The namespace every key of a namespaced kind lives in, if they share one.
fn shared_namespace<'a>(kind: &Kind<'a>) -> Option<&'a str> {
    if !kind.resolved.namespaced {
        return None;
    }
    let first = kind.keys.first()?.namespace.as_deref()?;
    kind.keys
        .iter()
        .all(|k| k.namespace.as_deref() == Some(first))
        .then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::discovery::ApiResource;

    fn configmaps(namespaced: bool) -> Resolved {
        Resolved {
            resource: ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                plural: "configmaps".into(),
            },
            namespaced,
            status_subresource: false,
        }
    }

    #[test]
    fn a_list_is_narrowed_to_a_namespace_only_when_every_key_is_in_it() {
        let resolved = configmaps(true);
        let a = ObjectKey::new("", "ConfigMap", Some("web"), "a");
        let b = ObjectKey::new("", "ConfigMap", Some("web"), "b");
        let c = ObjectKey::new("", "ConfigMap", Some("api"), "c");
        let unset = ObjectKey::new("", "ConfigMap", None, "d");
        for (keys, expected) in [
            (vec![&a, &b], Some("web")),
            (vec![&a, &c], None),
            (vec![&unset, &a], None),
        ] {
            let kind = Kind {
                resolved: &resolved,
                keys,
            };
            assert_eq!(shared_namespace(&kind), expected);
        }
        let cluster_scoped = configmaps(false);
        let kind = Kind {
            resolved: &cluster_scoped,
            keys: vec![&a, &b],
        };
        assert_eq!(shared_namespace(&kind), None);
    }
}
