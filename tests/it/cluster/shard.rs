//! Sharding across controller replicas (`tidegate controller --shard`) on
//! the real local clusters: real processes, member and ownership Leases in
//! the management cluster, environments split by rendezvous hashing, a
//! rebalance when a replica joins or leaves, and a replica killed with
//! SIGKILL during a rollout whose environment another replica finishes
//! from the journal (the replicas sharing a PostgreSQL audit trail), with
//! two and with three replicas; and one environment split by cluster
//! between two replicas (`--shard-clusters-above`): each watches its
//! clusters, the owner corrects drift the other records, and a killed
//! watcher's clusters move to the survivor.

use super::{client, fleet, inventory_field, rollout::deployment};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use tidegate_controller::{assigned, membership::owner_lease};
use tidegate_testkit::{Fleet, TestNamespace};

const MANAGEMENT: &str = "aks-westeurope";
/// The shard group (`--leader-election-id`'s default).
const GROUP: &str = "tidegate-controller";

/// Several environments over the three clusters (waves 1, 2, 3) in one
/// repository; the Leases and journals live in the first one's namespace
/// of the management cluster.
struct Sharded {
    fleet: &'static Fleet,
    git: tidegate_tests::GitFixture,
    namespaces: Vec<TestNamespace>,
    dir: tempfile::TempDir,
    /// `TIDEGATE_AUDIT_DB` of every replica (a file or a `postgres://` URL).
    audit_db: PathBuf,
}

impl Sharded {
    /// `bakes[i]` is the bake time of environment `i`.
    async fn new(prefix: &str, bakes: &[&str], audit_db: Option<PathBuf>) -> Sharded {
        Sharded::with_sync(prefix, bakes, audit_db, "").await
    }

    /// [`Sharded::new`] with more lines under every environment's `spec.sync`.
    async fn with_sync(
        prefix: &str,
        bakes: &[&str],
        audit_db: Option<PathBuf>,
        sync: &str,
    ) -> Sharded {
        let fleet = fleet().await;
        let mut git = tidegate_tests::GitFixture::new();
        let mut namespaces = Vec::new();
        for (i, bake) in bakes.iter().enumerate() {
            let ns = TestNamespace::create(fleet, &format!("{prefix}{i}")).expect("namespace");
            let env = ns.name().to_string();
            let mut clusters = String::new();
            for (wave, name) in fleet.contexts().iter().enumerate() {
                clusters.push_str(&format!(
                    "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      wave: {}\n",
                    wave + 1
                ));
            }
            git.write(
                &format!("environments/{env}.yaml"),
                format!(
                    "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 60s\n    bakeTime: {bake}\n  sync:\n    interval: 1s\n{sync}"
                ),
            );
            namespaces.push(ns);
        }
        git.write(
            "manifests/app/web.yaml",
            deployment("registry.example/web:1", false),
        );
        git.commit("v1");
        let dir = tempfile::tempdir().expect("dir");
        let audit_db = audit_db.unwrap_or_else(|| dir.path().join("audit.db"));
        Sharded {
            fleet,
            git,
            namespaces,
            dir,
            audit_db,
        }
    }

    fn envs(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|n| n.name().to_string())
            .collect()
    }

    /// Where the Leases and journals are.
    fn lease_namespace(&self) -> &str {
        self.namespaces[0].name()
    }

    /// Starts `tidegate controller --shard` as replica `id` and waits until
    /// it joined (its audit trail open: two processes creating one SQLite
    /// file at the same instant race, so they start one after the other).
    async fn start(&self, id: &str) -> Replica {
        self.start_with(id, &[]).await
    }

    /// [`Sharded::start`] with more arguments of `tidegate controller`.
    async fn start_with(&self, id: &str, extra: &[&str]) -> Replica {
        let replica = self.spawn(id, extra);
        eventually(&format!("{id} joined"), &[&replica], || async {
            replica.log().contains("sharding the environments")
        })
        .await;
        replica
    }

    fn spawn(&self, id: &str, extra: &[&str]) -> Replica {
        let home = self.dir.path().join(id);
        std::fs::create_dir_all(&home).expect("home");
        let log = home.join("controller.log");
        let child = super::isolated_command(&home)
            .env("TIDEGATE_AUDIT_DB", &self.audit_db)
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .args(["--repo", &self.git.path().display().to_string()])
            .args(["controller", "--shard", "--replica-id", id])
            .args([
                "--kubeconfig",
                &self.fleet.kubeconfig().display().to_string(),
            ])
            .args(["--leader-election-namespace", self.lease_namespace()])
            .args(["--leader-election-context", MANAGEMENT])
            // Shorter than the defaults, long enough that a loaded machine
            // does not make the member Leases miss their renew deadline.
            .args(["--lease-duration", "6s", "--renew-deadline", "4s"])
            .args(["--retry-period", "1s", "--shutdown-grace", "5s"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("tidegate controller");
        Replica {
            id: id.to_string(),
            child,
            log,
        }
    }

    /// The holder of each environment's ownership Lease (None: nobody).
    async fn owners(&self) -> BTreeMap<String, Option<String>> {
        let leases: Api<Lease> =
            Api::namespaced(client(self.fleet, MANAGEMENT).await, self.lease_namespace());
        let mut owners = BTreeMap::new();
        for env in self.envs() {
            let holder = leases
                .get_opt(&owner_lease(GROUP, &env))
                .await
                .expect("lease")
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .filter(|h| !h.is_empty());
            owners.insert(env, holder);
        }
        owners
    }

    /// Whether every cluster runs `revision` of `env`.
    fn runs(&self, env: &str, revision: &str) -> bool {
        self.fleet
            .contexts()
            .iter()
            .all(|c| inventory_field(self.fleet, c, env, "revision") == revision)
    }

    /// Where `env`'s journaled rollout says `cluster` stands (None: no journal).
    async fn journaled(
        &self,
        env: &str,
        cluster: &str,
    ) -> Option<tidegate_rollout::machine::ClusterProgress> {
        super::journaled_progress(self.fleet, MANAGEMENT, self.lease_namespace(), env, cluster)
            .await
    }
}

/// The expected owners: each environment's rendezvous owner among `members`.
fn expected(envs: &[String], members: &[&str]) -> BTreeMap<String, Option<String>> {
    let set: BTreeSet<String> = members.iter().map(|m| m.to_string()).collect();
    let mut owners = BTreeMap::new();
    for m in members {
        for e in assigned(envs, &set, m) {
            owners.insert(e.to_string(), Some(m.to_string()));
        }
    }
    owners
}

/// How many environments each member gets.
fn shares(owners: &BTreeMap<String, Option<String>>) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for o in owners.values().flatten() {
        *n.entry(o.clone()).or_default() += 1;
    }
    n
}

/// Replica names (`<prefix>-<i>`) for which `good` holds: the assignment
/// depends on the environments' (random) names, so the test picks
/// identities that give the split it needs — deterministic, no retry.
fn pick(prefix: &str, count: usize, good: impl Fn(&[&str]) -> bool) -> Vec<String> {
    for start in 0..1000 {
        let ids: Vec<String> = (start..start + count)
            .map(|i| format!("{prefix}-{i}"))
            .collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        if good(&refs) {
            return ids;
        }
    }
    panic!("no identities give the split");
}

/// A `tidegate controller --shard` process.
struct Replica {
    id: String,
    child: std::process::Child,
    log: PathBuf,
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds (up to the generous cluster bound); on
/// failure prints the replicas' logs.
async fn eventually<F, Fut>(what: &str, logs: &[&Replica], check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let logs: Vec<&Path> = logs.iter().map(|r| r.log.as_path()).collect();
    super::eventually_logged(what, &logs, Duration::from_millis(300), check).await;
}

/// Whether `r`'s last "environments owned by this replica" line names
/// exactly the environments `owners` gives it.
fn owns(r: &Replica, owners: &BTreeMap<String, Option<String>>) -> bool {
    let mine: Vec<&String> = owners
        .iter()
        .filter(|(_, o)| o.as_deref() == Some(r.id.as_str()))
        .map(|(e, _)| e)
        .collect();
    let log = r.log();
    let last = log
        .lines()
        .rfind(|l| l.contains("environments owned by this replica"))
        .unwrap_or_default();
    last.contains(&format!("count={}", mine.len()))
        && mine.iter().all(|env| last.contains(&format!("\"{env}\"")))
}

/// Waits until each of `replicas` logs that it owns its share of `owners`
/// (the line follows the Lease by one step of the replica).
async fn assert_owns(replicas: &[&Replica], owners: &BTreeMap<String, Option<String>>) {
    for r in replicas {
        eventually(&format!("{} logs its share", r.id), replicas, || async {
            owns(r, owners)
        })
        .await;
    }
}

fn path_of(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn sharded_replicas_split_the_environments_and_rebalance_with_minimal_movement() {
    let fx = Sharded::new("shard", &["1s", "1s", "1s", "1s"], None).await;
    let envs = fx.envs();
    // Identities where two replicas both own some, and a third takes some.
    let ids = pick("r", 3, |ids| {
        let two = shares(&expected(&envs, &ids[..2]));
        let three = shares(&expected(&envs, ids));
        two.len() == 2 && three.len() == 3
    });
    let (a, b, c) = (ids[0].as_str(), ids[1].as_str(), ids[2].as_str());

    // Two replicas: each environment has one owner, the one rendezvous
    // hashing names; both own some; each rolls its own out.
    let ra = fx.start(a).await;
    let rb = fx.start(b).await;
    let two = expected(&envs, &[a, b]);
    eventually("the two replicas own their shares", &[&ra, &rb], || async {
        fx.owners().await == two
    })
    .await;
    let v1 = fx.git.head();
    eventually(
        "v1 rolled out in every environment",
        &[&ra, &rb],
        || async { envs.iter().all(|e| fx.runs(e, &v1)) },
    )
    .await;
    // Each replica says it owns exactly its share (a replica that starts
    // alone owns everything until the next one joins, then hands over).
    assert_owns(&[&ra, &rb], &two).await;

    // A third replica joins: only the environments it now owns move, each
    // handed over by its former owner; the others stay where they were.
    let seen = (ra.log().len(), rb.log().len());
    let rc = fx.start(c).await;
    let three = expected(&envs, &[a, b, c]);
    eventually(
        "the three replicas own their shares",
        &[&ra, &rb, &rc],
        || async { fx.owners().await == three },
    )
    .await;
    assert_owns(&[&ra, &rb, &rc], &three).await;
    let moved: Vec<&String> = envs.iter().filter(|e| two[*e] != three[*e]).collect();
    assert!(!moved.is_empty());
    for env in &moved {
        assert_eq!(
            three[*env].as_deref(),
            Some(c),
            "{env} moved to the newcomer"
        );
        let (from, seen) = if two[*env].as_deref() == Some(a) {
            (&ra, seen.0)
        } else {
            (&rb, seen.1)
        };
        let handed = format!("environment={env}");
        assert!(
            from.log()[seen..]
                .lines()
                .any(|l| l.contains("handing the environment over") && l.contains(&handed)),
            "{}:\n{}",
            from.id,
            from.log()
        );
    }
    for (r, seen) in [(&ra, seen.0), (&rb, seen.1)] {
        let handovers = r.log()[seen..]
            .lines()
            .filter(|l| l.contains("handing the environment over"))
            .count();
        let lost = moved
            .iter()
            .filter(|e| two[**e].as_deref() == Some(r.id.as_str()))
            .count();
        assert_eq!(handovers, lost, "{} handed over only what moved", r.id);
    }
    println!(
        "{} environments, 2 → 3 replicas: {} moved (ideal {:.2})",
        envs.len(),
        moved.len(),
        envs.len() as f64 / 3.0
    );

    // c stops (SIGTERM): it releases its Leases; its environments go back.
    rc.signal("-TERM");
    let mut rc = rc;
    let exit = rc.child.wait().expect("exit");
    assert!(exit.success(), "exit {exit}\n{}", rc.log());
    eventually(
        "the two replicas own everything again",
        &[&ra, &rb, &rc],
        || async { fx.owners().await == two },
    )
    .await;
    // Still rolled out, nothing broken by the moves.
    assert!(envs.iter().all(|e| fx.runs(e, &v1)));
    println!("audit trail: {}", path_of(&fx.audit_db));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_shard_s_rollout_is_finished_by_the_next_owner_from_the_journal_with_one_postgres_audit_chain()
 {
    a_killed_owner_s_rollout_is_finished_by_a_survivor(3, "shard_failover", "shardkill").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_two_replicas_a_killed_shard_s_rollout_is_finished_by_the_other_from_the_journal_with_one_postgres_audit_chain()
 {
    a_killed_owner_s_rollout_is_finished_by_a_survivor(2, "shard_failover_two", "shardkilltwo")
        .await;
}

/// `replicas` replicas (2 or 3) sharing a PostgreSQL audit trail (database
/// `database`); the first owns environment 0 and is killed with SIGKILL
/// during wave 1's bake of v2; a survivor takes the environment over,
/// resumes the rollout from its journal without re-applying the finished
/// canary, and the audit trail is one chain with every intent closed.
async fn a_killed_owner_s_rollout_is_finished_by_a_survivor(
    replicas: usize,
    database: &str,
    prefix: &str,
) {
    use tidegate_rollout::machine::ClusterProgress;
    let url = crate::audit::pg::new_database(database);
    // Environment 0 bakes long enough to kill its owner during the rollout.
    let mut fx = Sharded::new(prefix, &["8s", "1s", "1s"], Some(PathBuf::from(&url))).await;
    let envs = fx.envs();
    let victim_env = envs[0].clone();
    // The first replica owns the victim environment, and the replicas
    // still split the rest (each survivor owns some).
    let ids = pick("k", replicas, |ids| {
        let owners = expected(&envs, ids);
        owners[&envs[0]].as_deref() == Some(ids[0]) && shares(&owners).len() >= 2
    });
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let a = ids[0];
    let mut started = Vec::new();
    for id in &ids {
        started.push(fx.start(id).await);
    }
    let all: Vec<&Replica> = started.iter().collect();
    let owners = expected(&envs, &ids);
    eventually("the replicas own their shares", &all, || async {
        fx.owners().await == owners
    })
    .await;
    let v1 = fx.git.head();
    // ... and every v1 rollout over (its journal removed after the last
    // bake): otherwise the kill below could hit v1's rollout, which the
    // next owner rightly supersedes by v2 instead of resuming it.
    let canary = fx.fleet.contexts()[0].to_string();
    eventually("v1 rolled out and every rollout over", &all, || async {
        for e in &envs {
            if !fx.runs(e, &v1) || fx.journaled(e, &canary).await.is_some() {
                return false;
            }
        }
        true
    })
    .await;

    // v2: a kills its rollout of the victim environment during wave 1's bake.
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    fx.git.commit("v2");
    let v2 = fx.git.head();
    eventually("wave 1 of the victim applied by a", &all, || async {
        fx.journaled(&victim_env, &canary).await == Some(ClusterProgress::Updated)
            && fx
                .owners()
                .await
                .get(&victim_env)
                .cloned()
                .flatten()
                .as_deref()
                == Some(a)
    })
    .await;
    let mut rest = started.split_off(1);
    let mut ra = started.pop().expect("a");
    ra.child.kill().expect("SIGKILL");
    ra.child.wait().expect("reaped");
    let killed = Instant::now();

    // Its new owner (rendezvous over the survivors) takes the Lease and finishes.
    let survivors = expected(&envs, &ids[1..]);
    let heir = survivors[&victim_env].clone();
    let mut all: Vec<&Replica> = rest.iter().collect();
    all.push(&ra);
    eventually("the victim environment has its new owner", &all, || async {
        fx.owners().await.get(&victim_env).cloned().flatten() == heir
    })
    .await;
    println!(
        "{} replicas: {} took {} over {} ms after {a} was killed (lease 6 s, retry 1 s; polled every 300 ms)",
        replicas,
        heir.as_deref().unwrap_or_default(),
        victim_env,
        killed.elapsed().as_millis()
    );
    eventually(
        "the other environments moved as rendezvous says",
        &all,
        || async { fx.owners().await == survivors },
    )
    .await;
    eventually(
        "v2 everywhere and the victim's rollout finished",
        &all,
        || async {
            envs.iter().all(|e| fx.runs(e, &v2))
                && fx.journaled(&victim_env, &canary).await.is_none()
        },
    )
    .await;
    // A survivor resumed the victim's rollout from its journal (the heir;
    // on a loaded machine a member Lease may miss a renewal and the
    // environment pass through another survivor first).
    let span = format!("environment{{environment={victim_env}}}");
    let resumed = |r: &Replica| {
        r.log()
            .lines()
            .any(|l| l.contains(&span) && l.contains("resuming the interrupted rollout"))
    };
    let heir_log: String = rest.iter().map(|r| r.log() + "\n").collect();
    assert!(rest.iter().any(resumed), "{heir_log}");
    // The shared PostgreSQL trail: each cluster of the victim written once
    // with v2 (the finished canary not re-applied), every intent closed,
    // one chain that verifies.
    let store = tidegate_audit::AuditStore::open_existing(Path::new(&url)).expect("audit");
    for cluster in fx.fleet.contexts() {
        let syncs = store
            .records(&tidegate_audit::Filter {
                environment: Some(victim_env.clone()),
                cluster: Some(cluster.to_string()),
                actions: vec!["sync".into()],
                ..Default::default()
            })
            .expect("records")
            .into_iter()
            .filter(|r| {
                r.operation == Some(r.seq) && r.entry.to.as_ref().is_some_and(|t| t.sha == v2)
            })
            .count();
        assert_eq!(syncs, 1, "{cluster} was written once with v2\n{heir_log}");
    }
    let open = store.interrupted().expect("open");
    assert!(open.is_empty(), "open intents: {open:?}");
    let home = fx.dir.path().join("verifier");
    let out = super::isolated_command(&home)
        .env("TIDEGATE_AUDIT_DB", &url)
        .args(["audit", "verify"])
        .output()
        .expect("tidegate audit verify");
    assert!(out.status.success(), "{}", super::output_text(&out));
    // The survivors stop cleanly, releasing every Lease.
    for r in &rest {
        r.signal("-TERM");
    }
    for r in &mut rest {
        let exit = r.child.wait().expect("exit");
        assert!(exit.success(), "{} exit {exit}\n{}", r.id, r.log());
    }
    assert!(
        fx.owners().await.values().all(Option::is_none),
        "every ownership Lease released"
    );
}

/// The clusters `r`'s last "clusters watched by this replica" line names
/// (as `<environment>/<cluster>`), and its count.
fn watched_logged(r: &Replica) -> Option<(BTreeSet<String>, usize)> {
    let log = r.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("clusters watched by this replica"))?;
    let count = line
        .split("count=")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let list = line.split("clusters={").nth(1)?.split('}').next()?;
    let clusters = list
        .split(", ")
        .map(|c| c.trim_matches('"').to_string())
        .filter(|c| !c.is_empty())
        .collect();
    Some((clusters, count))
}

/// The `/metrics` text of a replica started with `--listen 127.0.0.1:0`.
fn metrics(r: &Replica) -> String {
    let log = r.log();
    let address = log
        .lines()
        .find(|l| l.contains("serving /healthz, /readyz, /metrics"))
        .and_then(|l| l.split("address=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .expect("the replica serves /metrics")
        .to_string();
    let (_, text) = tidegate_tests::http_request(&address, "GET", "/metrics", &[], b"");
    text
}

/// The value of one series of a metrics text (0 when absent).
fn series(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Watches a replica opened on `cluster`, as its `/metrics` counts them.
fn watches_opened(text: &str, cluster: &str) -> u64 {
    series(
        text,
        &format!(
            "tidegate_api_requests_total{{cluster=\"{cluster}\",verb=\"watch\",code=\"200\"}}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn one_large_environment_is_watched_by_cluster_across_two_replicas_and_its_owner_corrects_drift_the_other_records()
 {
    let fx = Sharded::with_sync("split", &["1s"], None, "    selfHeal: true\n").await;
    let env = fx.envs()[0].clone();
    let clusters: Vec<&str> = fx.fleet.contexts().to_vec();
    let envs = fx.envs();
    // Two replicas: `a` owns the environment (its coordinator) and both
    // watch some of its three clusters (threshold 2: it is split).
    let watched_by = |ids: &[&str], id: &str| -> BTreeSet<String> {
        let members: BTreeSet<String> = ids.iter().map(|m| m.to_string()).collect();
        tidegate_controller::split::watched_clusters(&env, clusters.iter().copied(), &members, id)
    };
    let ids = pick("s", 2, |ids| {
        expected(&envs, ids)[&env].as_deref() == Some(ids[0])
            && !watched_by(ids, ids[0]).is_empty()
            && !watched_by(ids, ids[1]).is_empty()
    });
    let (a, b) = (ids[0].as_str(), ids[1].as_str());
    let args = ["--shard-clusters-above", "2", "--listen", "127.0.0.1:0"];
    let ra = fx.start_with(a, &args).await;
    let rb = fx.start_with(b, &args).await;
    let both = [&ra, &rb];
    let (mine_a, mine_b) = (watched_by(&[a, b], a), watched_by(&[a, b], b));
    eventually("a owns the environment", &both, || async {
        fx.owners().await[&env].as_deref() == Some(a)
    })
    .await;
    let v1 = fx.git.head();
    // ... and its rollout over (a drift made during a first deploy that
    // then fails on a loaded machine is removed with it, by design).
    eventually("v1 rolled out", &both, || async {
        fx.runs(&env, &v1) && ra.log().contains("rollout succeeded")
    })
    .await;

    // Each replica watches only its clusters: its log, its gauge, and the
    // watches it opened per cluster (none on the other's clusters).
    let keyed = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.iter().map(|c| format!("{env}/{c}")).collect()
    };
    for (r, mine) in [(&ra, &mine_a), (&rb, &mine_b)] {
        eventually(&format!("{} watches its clusters", r.id), &both, || async {
            watched_logged(r) == Some((keyed(mine), mine.len()))
                && series(&metrics(r), "tidegate_shard_clusters") == mine.len() as u64
                && mine.iter().all(|c| watches_opened(&metrics(r), c) > 0)
        })
        .await;
    }
    // b joined when a was already a member: it never opened a watch on
    // a's clusters. a started alone and watched all three until b joined;
    // it dropped b's since (checked below: no watch opened there again).
    let text_b = metrics(&rb);
    for c in &clusters {
        if !mine_b.contains(*c) {
            assert_eq!(
                watches_opened(&text_b, c),
                0,
                "b opened watches on {c}, which it does not watch:\n{text_b}"
            );
        }
    }
    let text_a = metrics(&ra);
    let settled: BTreeMap<&str, u64> = clusters
        .iter()
        .map(|c| (*c, watches_opened(&text_a, c)))
        .collect();
    for (r, mine, text) in [(&ra, &mine_a, &text_a), (&rb, &mine_b, &text_b)] {
        println!(
            "{} watches {:?}: watches opened per cluster {:?}",
            r.id,
            mine,
            clusters
                .iter()
                .map(|c| (c.to_string(), watches_opened(text, c)))
                .collect::<Vec<_>>()
        );
    }

    // Drift by kubectl in a cluster b watches: b records it, a (the
    // owner) corrects it through its rollout; b writes nothing.
    let replicas = |c: &str| {
        fx.fleet
            .kubectl(
                c,
                &[
                    "get",
                    "deployment",
                    "web",
                    "-n",
                    &env,
                    "-o",
                    "jsonpath={.spec.replicas}",
                ],
            )
            // Not a panic: `eventually` prints the replicas' logs.
            .unwrap_or_else(|e| format!("{e:?}"))
    };
    let drift_in = |c: &str| {
        fx.fleet
            .kubectl(
                c,
                &["scale", "deployment", "web", "-n", &env, "--replicas=5"],
            )
            .expect("kubectl scale");
    };
    let target = mine_b.iter().next().expect("b watches a cluster").clone();
    drift_in(&target);
    eventually(
        &format!("the drift in {target} corrected"),
        &both,
        || async { replicas(&target) == "2" },
    )
    .await;
    let recorded = |r: &Replica, c: &str| {
        r.log().lines().any(|l| {
            l.contains("drift: recorded for the environment's owner")
                && l.contains(&format!("cluster={c}"))
        })
    };
    assert!(
        recorded(&rb, &target),
        "b recorded the drift:\n{}",
        rb.log()
    );
    assert!(
        ra.log()
            .contains("drift recorded by the watching replicas: correcting it"),
        "a corrected it:\n{}",
        ra.log()
    );
    assert!(
        !rb.log().contains("through the fleet rollout") && !rb.log().contains("rollout succeeded"),
        "b never rolls out:\n{}",
        rb.log()
    );

    // a opened no watch on b's clusters since the split settled (its
    // drift-correcting rollout included).
    let text_a = metrics(&ra);
    for c in &mine_b {
        assert_eq!(
            watches_opened(&text_a, c),
            settled[c.as_str()],
            "a opened watches on {c}, which b watches:\n{text_a}"
        );
    }

    // b is killed: its clusters' watching moves to a within the lease
    // duration; drift there is still corrected.
    let mut rb = rb;
    rb.child.kill().expect("SIGKILL");
    rb.child.wait().expect("reaped");
    let killed = Instant::now();
    let everything: BTreeSet<String> = clusters.iter().map(|c| c.to_string()).collect();
    eventually("a watches every cluster", &[&ra, &rb], || async {
        watched_logged(&ra) == Some((keyed(&everything), clusters.len()))
    })
    .await;
    println!(
        "a watched b's clusters {} ms after b was killed (lease 6 s, retry 1 s; polled every 300 ms)",
        killed.elapsed().as_millis()
    );
    eventually("a opened watches on b's clusters", &[&ra, &rb], || async {
        mine_b.iter().all(|c| watches_opened(&metrics(&ra), c) > 0)
    })
    .await;
    drift_in(&target);
    eventually(
        &format!("the drift in {target} corrected by a alone"),
        &[&ra, &rb],
        || async { replicas(&target) == "2" },
    )
    .await;
    assert!(
        recorded(&ra, &target),
        "a recorded it itself:\n{}",
        ra.log()
    );
    ra.signal("-TERM");
    let mut ra = ra;
    let exit = ra.child.wait().expect("exit");
    assert!(exit.success(), "exit {exit}\n{}", ra.log());
}
