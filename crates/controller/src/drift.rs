//! Drift: comparing what a watch event changed with what Git says, and
//! remembering drift episodes (so `selfHeal: false` reports each once).

use std::collections::BTreeMap;
use tidegate_core::tracking::FIELD_MANAGER;
use tidegate_diff::DiffStatus;
use tidegate_sync::Plan;

/// Where drift is noticed: one app in one cluster (the unit events are
/// debounced by).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DriftKey {
    /// The cluster.
    pub cluster: String,
    /// The app.
    pub app: String,
}

/// What differs from Git in one app of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Each differing field as `object path (changed by manager, ...)`, or
    /// a missing object as `object (deleted)`; at most 50.
    pub fields: Vec<String>,
}

impl Drift {
    /// The drift a plan of one app shows, if any. Objects of a revision the
    /// cluster does not run yet are a rollout's business, not drift: the
    /// caller plans only what the cluster runs.
    pub fn of(plan: &Plan, app: &str) -> Option<Drift> {
        let mut fields = Vec::new();
        for o in plan
            .objects
            .iter()
            .filter(|o| o.app == app && o.needs_apply())
        {
            let Some(diff) = &o.diff else {
                fields.push(format!("{} (not applied yet)", o.object.key));
                continue;
            };
            if diff.status == DiffStatus::Missing {
                fields.push(format!("{} (deleted)", o.object.key));
                continue;
            }
            for c in &diff.changes {
                let owners: Vec<&str> = c
                    .owners
                    .iter()
                    .map(String::as_str)
                    .filter(|o| *o != FIELD_MANAGER)
                    .collect();
                fields.push(if owners.is_empty() {
                    format!("{} {}", o.object.key, c.path)
                } else {
                    format!(
                        "{} {} (changed by {})",
                        o.object.key,
                        c.path,
                        owners.join(", ")
                    )
                });
            }
        }
        for p in plan.prune.iter().filter(|p| p.app == app) {
            fields.push(format!("{} (left Git, still in the cluster)", p.diff.key));
        }
        fields.truncate(50);
        (!fields.is_empty()).then_some(Drift { fields })
    }

    /// The fields, as one line.
    pub fn summary(&self) -> String {
        self.fields.join("; ")
    }
}

/// Drift episodes in progress: an episode starts when drift is first seen
/// in an app of a cluster and ends when that app matches Git again.
#[derive(Debug, Default)]
pub struct Episodes {
    open: BTreeMap<DriftKey, Drift>,
}

impl Episodes {
    /// Records what a check found; true when this starts a new episode
    /// (the moment to report it).
    pub fn observe(&mut self, key: &DriftKey, found: Option<Drift>) -> bool {
        match found {
            Some(drift) => self.open.insert(key.clone(), drift).is_none(),
            None => {
                self.open.remove(key);
                false
            }
        }
    }

    /// Ends every episode of a cluster (it was synced).
    pub fn close_cluster(&mut self, cluster: &str) {
        self.open.retain(|k, _| k.cluster != cluster);
    }

    /// The open episodes.
    pub fn open(&self) -> impl Iterator<Item = (&DriftKey, &Drift)> {
        self.open.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str) -> DriftKey {
        DriftKey {
            cluster: c.into(),
            app: "web".into(),
        }
    }

    fn drift(f: &str) -> Option<Drift> {
        Some(Drift {
            fields: vec![f.into()],
        })
    }

    #[test]
    fn an_episode_is_reported_once_until_it_ends() {
        let mut e = Episodes::default();
        assert!(e.observe(&key("a"), drift("/spec/replicas")));
        assert!(
            !e.observe(&key("a"), drift("/spec/replicas")),
            "same episode"
        );
        assert!(
            !e.observe(&key("a"), drift("/spec/template")),
            "still the same episode"
        );
        assert!(
            e.observe(&key("b"), drift("/spec/replicas")),
            "another cluster"
        );
        assert!(!e.observe(&key("a"), None));
        assert!(
            e.observe(&key("a"), drift("/spec/replicas")),
            "a new episode"
        );
        e.close_cluster("a");
        assert_eq!(e.open().count(), 1);
    }
}
