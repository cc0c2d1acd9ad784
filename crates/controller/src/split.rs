//! Splitting one large environment across sharded replicas by cluster
//! (`tidegate controller --shard --shard-clusters-above N`).
//!
//! An environment with more than `N` clusters is **split**:
//!
//! - **Watching and drift checks by cluster.** Every replica runs a
//!   read-only *watcher* loop for the environment and watches only the
//!   clusters whose key `<environment>/<cluster>` rendezvous-hashes to it
//!   among the live members ([`watched_clusters`]): a join moves about
//!   `1/n` of the clusters, a leave (or a crash, once its member Lease
//!   expired) only the leaver's. No per-cluster Lease: the assignment is
//!   derived from the member Leases every replica already lists, because
//!   watching writes nothing — two replicas watching one cluster for a
//!   moment (while their views of the members differ) cost a duplicate
//!   drift record at most, and a cluster gained is surveyed (every app
//!   planned) when its watches start, so a moment watched by nobody loses
//!   no drift.
//! - **One writer: the coordinator.** The holder of the environment's
//!   ownership Lease (`<group>-owner-<env>`, as without the split) runs its
//!   loop as today — new commits, rollouts, resumed journals — but watches
//!   no cluster. A watcher that finds drift (with `selfHeal`) never writes
//!   to the cluster: it records the drift in the management cluster as a
//!   ConfigMap `<group>-drift-<hash>` ([`DriftRecords`], one per
//!   environment, cluster and app, labelled `tidegate.dev/drift-record`),
//!   which the coordinator watches. The coordinator corrects it with a
//!   rollout of the current revision (the drift-correction path of an
//!   unsplit environment: waves, gates, the environment lock), then deletes
//!   the records it saw before that rollout started, each only at the
//!   `resourceVersion` it saw (a record rewritten meanwhile stays and is
//!   corrected again).
//! - `selfHeal: false`: the watcher reports drift itself (log and
//!   `drift-detected` audit entry), as an unsplit environment does.

use crate::{Event, Observers, controller::AbortOnDrop, membership::lease_part, rendezvous};
use futures::StreamExt;
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};
use tokio::sync::watch;
use tracing::{info, warn};

/// The label every drift record carries (value `"true"`).
pub const DRIFT_RECORD_LABEL: &str = "tidegate.dev/drift-record";
/// The label naming the shard group of a drift record.
pub const GROUP_LABEL: &str = "tidegate.dev/shard-group";

/// Whether an environment of `clusters` clusters is split across replicas
/// with `--shard-clusters-above` = `above` (None: never).
pub fn is_split(clusters: usize, above: Option<usize>) -> bool {
    above.is_some_and(|n| clusters > n)
}

/// The rendezvous key of a cluster of an environment.
pub fn cluster_key(environment: &str, cluster: &str) -> String {
    format!("{environment}/{cluster}")
}

/// The clusters of `environment` that `me` watches among the live
/// `members`: those whose key `<environment>/<cluster>` has `me` as its
/// rendezvous owner.
pub fn watched_clusters<'a>(
    environment: &str,
    clusters: impl IntoIterator<Item = &'a str>,
    members: &BTreeSet<String>,
    me: &str,
) -> BTreeSet<String> {
    clusters
        .into_iter()
        .filter(|c| {
            rendezvous::owner(
                &cluster_key(environment, c),
                members.iter().map(String::as_str),
            ) == Some(me)
        })
        .map(str::to_string)
        .collect()
}

/// What an environment's loop is in a sharded replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// It holds the ownership Lease: it rolls out; when the environment is
    /// split it watches no cluster and corrects the drift recorded.
    Owner,
    /// A read-only watcher of this replica's clusters of a split
    /// environment: it records drift, never writes to a cluster.
    Watcher,
}

/// What every environment loop of a sharded replica shares.
#[derive(Clone)]
pub struct ShardContext {
    /// `--shard-clusters-above`.
    pub above: Option<usize>,
    /// This replica.
    pub me: String,
    /// The live members, as last listed.
    pub members: watch::Receiver<BTreeSet<String>>,
    /// Where drift records are kept.
    pub records: DriftRecords,
    /// The clusters watched, summed over the loops.
    pub tally: Tally,
}

/// One environment loop's part in sharding.
#[derive(Clone)]
pub struct Split {
    /// What the replica shares.
    pub context: ShardContext,
    /// What this loop is.
    pub role: Role,
}

impl Split {
    /// The clusters of `environment` (with `clusters`) this loop watches.
    pub fn watched(&self, environment: &str, clusters: &[String]) -> BTreeSet<String> {
        let all = || clusters.iter().cloned().collect();
        match (self.role, is_split(clusters.len(), self.context.above)) {
            (Role::Owner, false) => all(),
            (Role::Owner, true) | (Role::Watcher, false) => BTreeSet::new(),
            (Role::Watcher, true) => {
                let mut members = self.context.members.borrow().clone();
                members.insert(self.context.me.clone());
                watched_clusters(
                    environment,
                    clusters.iter().map(String::as_str),
                    &members,
                    &self.context.me,
                )
            }
        }
    }
}

/// Up to this many clusters watched, the log lists them (else it counts
/// them by environment).
const LOGGED_CLUSTERS: usize = 50;

/// The clusters each loop watches, by (environment, role).
type Watched = BTreeMap<(String, Role), BTreeSet<String>>;

/// The clusters a replica watches, over all its environment loops: logged
/// (`clusters watched by this replica`) and told the observers
/// ([`Event::Watching`], the `tidegate_shard_clusters` gauge) when they change.
#[derive(Clone)]
pub struct Tally {
    by_loop: Arc<Mutex<Watched>>,
    observers: Observers,
}

impl Tally {
    /// An empty tally told to `observers`.
    pub fn new(observers: Observers) -> Tally {
        Tally {
            by_loop: Arc::new(Mutex::new(BTreeMap::new())),
            observers,
        }
    }

    /// Sets what the loop of `environment` in `role` watches.
    pub fn set(&self, environment: &str, role: Role, clusters: BTreeSet<String>) {
        let Ok(mut all) = self.by_loop.lock() else {
            return;
        };
        let key = (environment.to_string(), role);
        if all.get(&key) == Some(&clusters) || (clusters.is_empty() && !all.contains_key(&key)) {
            return;
        }
        if clusters.is_empty() {
            all.remove(&key);
        } else {
            all.insert(key, clusters);
        }
        let watched: BTreeSet<String> = all
            .iter()
            .flat_map(|((env, _), cs)| cs.iter().map(|c| cluster_key(env, c)))
            .collect();
        let count = watched.len();
        if count <= LOGGED_CLUSTERS {
            info!(clusters = ?watched, count, "clusters watched by this replica");
        } else {
            let by_environment: BTreeMap<&str, usize> = all
                .iter()
                .map(|((env, _), cs)| (env.as_str(), cs.len()))
                .fold(BTreeMap::new(), |mut n, (env, c)| {
                    *n.entry(env).or_default() += c;
                    n
                });
            info!(?by_environment, count, "clusters watched by this replica");
        }
        self.observers.emit(Event::Watching { clusters: count });
    }
}

/// Drift found by a watcher, waiting in the management cluster for the
/// environment's coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftRecord {
    /// The ConfigMap's name.
    pub name: String,
    /// Its `resourceVersion` when seen.
    pub resource_version: String,
    /// The environment.
    pub environment: String,
    /// The cluster.
    pub cluster: String,
    /// The app.
    pub app: String,
    /// The revision the cluster runs (what drift was judged against).
    pub revision: String,
    /// The replica that found it.
    pub replica: String,
}

impl DriftRecord {
    fn of(object: &DynamicObject) -> Option<DriftRecord> {
        let data = object.data.get("data")?;
        let field = |k: &str| data[k].as_str().map(str::to_string);
        Some(DriftRecord {
            name: object.metadata.name.clone()?,
            resource_version: object.metadata.resource_version.clone()?,
            environment: field("environment")?,
            cluster: field("cluster")?,
            app: field("app")?,
            revision: field("revision")?,
            replica: field("replica").unwrap_or_default(),
        })
    }
}

/// The drift records of a shard group, in its namespace of the management
/// cluster.
#[derive(Clone)]
pub struct DriftRecords {
    api: Api<DynamicObject>,
    group: String,
    replica: String,
}

impl DriftRecords {
    /// The records of group `group` in `namespace`, written as `replica`.
    pub fn new(client: Client, namespace: &str, group: &str, replica: &str) -> DriftRecords {
        DriftRecords {
            api: Api::namespaced_with(client, namespace, &configmaps()),
            group: group.to_string(),
            replica: replica.to_string(),
        }
    }

    /// The name of the record of `app` in `cluster` of `environment`: the
    /// group, then a fixed hash (names of any length and characters fit).
    pub fn name(&self, environment: &str, cluster: &str, app: &str) -> String {
        let key = format!("{environment}/{cluster}/{app}");
        format!(
            "{}-drift-{:016x}",
            self.group,
            rendezvous::weight("drift", &key)
        )
    }

    fn selector(&self) -> String {
        format!(
            "{DRIFT_RECORD_LABEL}=true,{GROUP_LABEL}={}",
            group_label(&self.group)
        )
    }

    /// Records drift of `app` in `cluster` of `environment` (running
    /// `revision`), found by this replica: `fields` is the drift's summary
    /// (object keys and field paths, never values). Server-side apply: a
    /// record already there is rewritten (a new `resourceVersion`).
    pub async fn record(
        &self,
        environment: &str,
        cluster: &str,
        app: &str,
        revision: &str,
        fields: &str,
    ) -> Result<(), kube::Error> {
        let name = self.name(environment, cluster, app);
        let body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "labels": {
                    DRIFT_RECORD_LABEL: "true",
                    GROUP_LABEL: group_label(&self.group),
                    "app.kubernetes.io/managed-by": "tidegate",
                },
            },
            "data": {
                "environment": environment,
                "cluster": cluster,
                "app": app,
                "revision": revision,
                "fields": fields,
                "replica": self.replica,
                "detectedAt": jiff::Timestamp::now().to_string(),
            },
        });
        let params = PatchParams::apply("tidegate-controller").force();
        self.api.patch(&name, &params, &Patch::Apply(&body)).await?;
        Ok(())
    }

    /// Deletes `records`, each only at the `resourceVersion` seen (one
    /// rewritten since stays). Failures are logged: the record stays and
    /// is corrected again, which is harmless.
    pub async fn clear(&self, records: &[DriftRecord]) {
        for r in records {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: Some(r.resource_version.clone()),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match self.api.delete(&r.name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => {
                    warn!(record = %r.name, error = %e, "deleting a handled drift record failed; it will be corrected again")
                }
            }
        }
    }

    /// Follows the records of `environment` (a watch of the group's
    /// records in the namespace): the receiver holds them all, by name.
    pub fn follow(&self, environment: &str) -> Following {
        let (publish, records) = watch::channel(BTreeMap::new());
        let config = watcher::Config::default().labels(&self.selector());
        // Errors are retried after kube-runtime's backoff (an RBAC refusal
        // does not spin).
        let stream = watcher::watcher(self.api.clone(), config).default_backoff();
        let environment = environment.to_string();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut listing: Option<BTreeMap<String, DriftRecord>> = None;
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        warn!(error = %e, "watching the drift records failed; retrying");
                        continue;
                    }
                };
                let mine =
                    |o: &DynamicObject| DriftRecord::of(o).filter(|r| r.environment == environment);
                match event {
                    watcher::Event::Init => listing = Some(BTreeMap::new()),
                    watcher::Event::InitApply(o) => {
                        if let (Some(l), Some(r)) = (listing.as_mut(), mine(&o)) {
                            l.insert(r.name.clone(), r);
                        }
                    }
                    watcher::Event::InitDone => {
                        let all = listing.take().unwrap_or_default();
                        publish.send_replace(all);
                    }
                    watcher::Event::Apply(o) => {
                        if let Some(r) = mine(&o) {
                            publish.send_modify(|all| {
                                all.insert(r.name.clone(), r);
                            });
                        }
                    }
                    watcher::Event::Delete(o) => {
                        if let Some(name) = o.metadata.name {
                            publish.send_if_modified(|all| all.remove(&name).is_some());
                        }
                    }
                }
            }
        });
        Following {
            records,
            _task: AbortOnDrop(task),
        }
    }
}

/// The drift records of one environment as they are (the watch stops when
/// this is dropped).
pub struct Following {
    /// Every record of the environment, by name.
    pub records: watch::Receiver<BTreeMap<String, DriftRecord>>,
    _task: AbortOnDrop<()>,
}

/// The group as a label value (at most 63 characters).
fn group_label(group: &str) -> String {
    let mut label = lease_part(group);
    label.truncate(63);
    label
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

fn configmaps() -> ApiResource {
    tidegate_cluster::configmap_resource()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|m| m.to_string()).collect()
    }

    fn clusters(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("cluster-{i}")).collect()
    }

    fn assignment(env: &str, cs: &[String], ms: &BTreeSet<String>) -> BTreeMap<String, String> {
        let mut owner = BTreeMap::new();
        for m in ms {
            for c in watched_clusters(env, cs.iter().map(String::as_str), ms, m) {
                assert!(owner.insert(c.clone(), m.clone()).is_none(), "{c} twice");
            }
        }
        owner
    }

    #[test]
    fn every_cluster_is_watched_by_exactly_one_member_and_the_answer_is_stable() {
        let cs = clusters(1_000);
        let ms = members(&["a", "b", "c"]);
        let first = assignment("prod", &cs, &ms);
        assert_eq!(first.len(), cs.len(), "every cluster watched");
        // The same answer every time and whatever the order of clusters.
        let mut reversed = cs.clone();
        reversed.reverse();
        assert_eq!(assignment("prod", &reversed, &ms), first);
        // Each member's share is near a third.
        for m in &ms {
            let n = first.values().filter(|o| *o == m).count();
            assert!(n.abs_diff(333) <= 50, "{m} watches {n}");
        }
        // Another environment with the same cluster names is split differently.
        assert_ne!(assignment("staging", &cs, &ms), first);
        // A replica not among the members watches nothing.
        assert!(watched_clusters("prod", cs.iter().map(String::as_str), &ms, "d").is_empty());
    }

    #[test]
    fn a_join_moves_about_one_nth_of_the_clusters_only_to_the_newcomer_and_a_leave_only_the_leavers()
     {
        let cs = clusters(1_000);
        let before = assignment("prod", &cs, &members(&["a", "b"]));
        let after = assignment("prod", &cs, &members(&["a", "b", "c"]));
        let moved: Vec<&String> = cs.iter().filter(|c| before[*c] != after[*c]).collect();
        for c in &moved {
            assert_eq!(after[*c], "c", "{c} moved between old members");
        }
        println!(
            "1,000 clusters of one environment, 2 → 3 replicas: {} moved (ideal 333), all to the newcomer",
            moved.len()
        );
        assert!(moved.len().abs_diff(333) <= 50, "{} moved", moved.len());
        // c leaves again: only its clusters move, back where they were.
        let left = assignment("prod", &cs, &members(&["a", "b"]));
        for c in &cs {
            if after[c] != "c" {
                assert_eq!(left[c], after[c], "{c} moved though its watcher stayed");
            }
        }
        assert_eq!(left, before);
    }

    #[test]
    fn only_environments_above_the_threshold_are_split() {
        assert!(!is_split(1_000, None));
        assert!(!is_split(2, Some(2)));
        assert!(is_split(3, Some(2)));
        assert!(is_split(1, Some(0)));
    }

    #[tokio::test]
    async fn the_owner_of_a_split_environment_watches_nothing_and_the_watchers_split_its_clusters()
    {
        let (_, members) = watch::channel(members(&["a", "b"]));
        let client_free = |me: &str, role| Split {
            context: ShardContext {
                above: Some(2),
                me: me.to_string(),
                members: members.clone(),
                records: DriftRecords {
                    api: Api::all_with(dummy_client(), &configmaps()),
                    group: "g".into(),
                    replica: me.into(),
                },
                tally: Tally::new(Observers::default()),
            },
            role,
        };
        let cs = clusters(3);
        let small = clusters(2);
        let a = client_free("a", Role::Watcher).watched("prod", &cs);
        let b = client_free("b", Role::Watcher).watched("prod", &cs);
        assert_eq!(a.len() + b.len(), 3);
        assert!(a.is_disjoint(&b));
        assert!(
            client_free("a", Role::Owner)
                .watched("prod", &cs)
                .is_empty()
        );
        // At or under the threshold: the owner watches every cluster, watchers none.
        assert_eq!(
            client_free("a", Role::Owner).watched("prod", &small).len(),
            2
        );
        assert!(
            client_free("b", Role::Watcher)
                .watched("prod", &small)
                .is_empty()
        );
    }

    /// A client that is never used (no request is sent by these tests).
    fn dummy_client() -> Client {
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        Client::try_from(config).expect("client")
    }

    #[tokio::test]
    async fn record_names_are_fixed_valid_and_distinct() {
        let records = DriftRecords {
            api: Api::all_with(dummy_client(), &configmaps()),
            group: "tidegate-controller".into(),
            replica: "r".into(),
        };
        let a = records.name("prod", "eks-1", "web");
        assert!(a.starts_with("tidegate-controller-drift-"));
        assert_eq!(a.len(), "tidegate-controller-drift-".len() + 16);
        assert_eq!(a, records.name("prod", "eks-1", "web"));
        assert_ne!(a, records.name("prod", "eks-1", "api"));
        assert_ne!(a, records.name("prod", "eks-2", "web"));
        assert_eq!(group_label("Tidegate_Controller"), "tidegate-controller");
    }
}
