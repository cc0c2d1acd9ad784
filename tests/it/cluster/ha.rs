//! High availability on the local clusters: the rollout journal kept in a
//! ConfigMap (another replica resumes it; a deposed writer is fenced off),
//! leader election between controller replicas over a real Lease, and a
//! rollout interrupted by shutdown or by a crash finished by another replica.

use super::{WAIT, client, fleet, kubeconfig_factory, rollout::deployment};
use crate::pipeline::{load_env_at, roll_out};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Namespace};
use kube::api::{Api, DeleteParams};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tidegate_audit::{
    Action as AuditAction, Actor, AuditSink, MemorySink, Outcome as AuditOutcome, Trigger,
};
use tidegate_cluster::LeaseError;
use tidegate_controller::leader::{LeaderConfig, LeaderState, Leadership};
use tidegate_fleet::{
    ConfigMapJournal, DriverOptions, FleetRollout, JournalError, JournalStore, Outcome,
    RolloutError, RolloutReport, interrupt::INTERRUPTED_DETAIL,
};
use tidegate_sync::{Audit, Engine};
use tidegate_testkit::TestNamespace;

/// The cluster that plays the management cluster.
const MANAGEMENT: &str = "eks-us-east-1";

/// A two-cluster machine, one wave each, rolling out `rev`.
fn machine(rev: &str) -> FleetRollout {
    let plan = tidegate_rollout::plan_fleet(
        [("a", Some(1)), ("b", Some(2))],
        &tidegate_core::environment::Rollout::default(),
    )
    .expect("plan");
    let start = tidegate_rollout::machine::ClusterStart {
        current_revision: Some("old".into()),
        last_good_revision: Some("old".into()),
        health: tidegate_health::HealthStatus::Healthy,
        drifted: false,
        unknown_state: false,
    };
    FleetRollout::new(
        &plan,
        tidegate_rollout::machine::RolloutConfig::from_plan(&plan, rev),
        vec![("a".into(), start.clone()), ("b".into(), start)],
    )
    .expect("machine")
}

fn target(m: &FleetRollout) -> String {
    m.config().target_revision.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journal_in_a_configmap_is_resumed_by_another_replica_and_fences_the_old_one() {
    let fleet = fleet().await;
    let ns = TestNamespace::create(fleet, "ha-journal").expect("namespace");
    // A namespace that does not exist yet: the first save creates it.
    let namespace = format!("{}-mgmt", ns.name());
    let env = ns.name();
    let a = ConfigMapJournal::new(
        client(fleet, MANAGEMENT).await,
        MANAGEMENT,
        &namespace,
        env,
        "replica-a",
    );
    let b = ConfigMapJournal::new(
        client(fleet, MANAGEMENT).await,
        MANAGEMENT,
        &namespace,
        env,
        "replica-b",
    );
    assert!(a.load().await.expect("load").is_none(), "no journal yet");
    a.save(1_000, Some(7), &machine("r1")).await.expect("save");
    a.save(1_000, Some(7), &machine("r2"))
        .await
        .expect("save again");

    // Replica b (another process, another client) takes the rollout over.
    let taken = b.load().await.expect("load").expect("journaled");
    assert_eq!((taken.started_ms, taken.operation), (1_000, Some(7)));
    assert_eq!(target(&taken.machine), "r2");
    b.save(1_000, Some(8), &machine("r2"))
        .await
        .expect("b saves");

    // Replica a, deposed, cannot overwrite or remove what b wrote.
    let err = a
        .save(1_000, Some(7), &machine("r3"))
        .await
        .expect_err("fenced");
    assert!(matches!(err, JournalError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("replica-b"), "{err}");
    let err = a.remove().await.expect_err("fenced");
    assert!(matches!(err, JournalError::Conflict { .. }), "{err}");
    let kept = b.load().await.expect("load").expect("kept");
    assert_eq!(kept.operation, Some(8), "b's journal is intact");

    b.remove().await.expect("remove");
    assert!(a.load().await.expect("load").is_none(), "removed");
    b.remove().await.expect("removing nothing is fine");

    let namespaces: Api<Namespace> = Api::all(client(fleet, MANAGEMENT).await);
    let _ = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;
}

/// Short timings so the tests run quickly (lease 3 s, renew deadline 2 s,
/// retry 300 ms).
fn election(namespace: &str, identity: &str) -> LeaderConfig {
    LeaderConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(300),
        ..LeaderConfig::new(namespace, "tidegate-controller", identity)
    }
}

/// Waits (up to the generous cluster bound) until `leadership` is in a state
/// `pred` accepts; returns when that was seen.
async fn wait_state(
    leadership: &Leadership,
    what: &str,
    pred: impl Fn(&LeaderState) -> bool,
) -> Instant {
    let mut watch = leadership.watch();
    tokio::time::timeout(WAIT, watch.wait_for(|s| pred(s)))
        .await
        .unwrap_or_else(|_| panic!("never {what}: {}", leadership.state()))
        .expect("election running");
    Instant::now()
}

/// Replica `identity` campaigning directly against the management cluster.
async fn campaign(namespace: &str, identity: &str) -> Leadership {
    Leadership::start(
        client(fleet().await, MANAGEMENT).await,
        MANAGEMENT,
        election(namespace, identity),
    )
    .await
    .expect("campaigns")
}

async fn lease_holder(namespace: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client(fleet().await, MANAGEMENT).await, namespace);
    leases
        .get_opt("tidegate-controller")
        .await
        .expect("lease")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_elect_one_leader_and_a_killed_leader_is_replaced_after_its_lease() {
    let fleet = fleet().await;
    let ns = TestNamespace::create(fleet, "ha-elect").expect("namespace");
    let a = campaign(ns.name(), "replica-a").await;
    wait_state(&a, "a leads", LeaderState::is_leading).await;
    let b = campaign(ns.name(), "replica-b").await;
    wait_state(&b, "b follows a", |s| {
        *s == LeaderState::Following {
            leader: Some("replica-a".into()),
        }
    })
    .await;
    // Several renewals later, still one leader.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(a.state().is_leading(), "{}", a.state());
    assert!(!b.state().is_leading(), "{}", b.state());
    assert_eq!(lease_holder(ns.name()).await.as_deref(), Some("replica-a"));

    // "kill -9": a stops renewing without releasing.
    let killed = Instant::now();
    drop(a);
    let took_over = wait_state(&b, "b leads", LeaderState::is_leading).await;
    let after = took_over - killed;
    // Safety: b waited for a's lease to run out (a renewed at most one retry
    // period before it was killed).
    assert!(
        after >= Duration::from_secs(3) - Duration::from_millis(300),
        "b took a live lease after {after:?}"
    );
    println!(
        "takeover {} ms after the leader was killed (lease 3 s)",
        after.as_millis()
    );
    assert_eq!(lease_holder(ns.name()).await.as_deref(), Some("replica-b"));
    b.release().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_released_lease_goes_to_the_other_replica_at_its_next_try() {
    let fleet = fleet().await;
    let ns = TestNamespace::create(fleet, "ha-release").expect("namespace");
    let a = campaign(ns.name(), "replica-a").await;
    wait_state(&a, "a leads", LeaderState::is_leading).await;
    let b = campaign(ns.name(), "replica-b").await;
    wait_state(&b, "b follows", |s| {
        matches!(s, LeaderState::Following { .. })
    })
    .await;
    let mut a_state = a.watch();
    a.release().await;
    assert_eq!(*a_state.borrow_and_update(), LeaderState::Released);
    assert_eq!(
        lease_holder(ns.name()).await,
        None,
        "the lease was released, not left to expire"
    );
    wait_state(&b, "b leads", LeaderState::is_leading).await;
    assert_eq!(lease_holder(ns.name()).await.as_deref(), Some("replica-b"));
    b.release().await;
}

/// A TCP forwarder to an API server that can be cut, as a network partition
/// cuts a replica off.
struct Partition {
    url: String,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Partition {
    async fn to(server: &str) -> Partition {
        let upstream = server
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let (cut, cuts) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let mut cuts = cuts.clone();
                tokio::spawn(async move {
                    if *cuts.borrow() {
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Partition { url, cut }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_cut_off_from_the_api_server_steps_down_before_another_takes_the_lease() {
    let fleet = fleet().await;
    let ns = TestNamespace::create(fleet, "ha-partition").expect("namespace");
    let direct = client(fleet, MANAGEMENT).await;
    let server = {
        let kubeconfig = kube::config::Kubeconfig::read_from(fleet.kubeconfig()).expect("kc");
        let options = kube::config::KubeConfigOptions {
            context: Some(MANAGEMENT.into()),
            ..Default::default()
        };
        kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .expect("config")
    };
    let partition = Partition::to(&server.cluster_url.to_string()).await;
    let mut through = server.clone();
    through.cluster_url = partition.url.parse().expect("url");
    let a = Leadership::start(
        kube::Client::try_from(through).expect("client"),
        MANAGEMENT,
        election(ns.name(), "replica-a"),
    )
    .await
    .expect("a campaigns");
    wait_state(&a, "a leads", LeaderState::is_leading).await;
    let b = Leadership::start(direct, MANAGEMENT, election(ns.name(), "replica-b"))
        .await
        .expect("b campaigns");
    wait_state(&b, "b follows", |s| {
        matches!(s, LeaderState::Following { .. })
    })
    .await;

    let _ = partition.cut.send(true);
    let a_down = wait_state(&a, "a steps down", |s| !s.is_leading()).await;
    let b_up = wait_state(&b, "b leads", LeaderState::is_leading).await;
    assert!(
        a_down < b_up,
        "a stepped down {:?} after b took the lease",
        a_down - b_up
    );
    println!(
        "a stepped down {} ms before b led",
        (b_up - a_down).as_millis()
    );
    b.release().await;
    drop(a);
}

/// The lock identity of the controller replicas of one election.
const CONTROLLER: &str = "tidegate-controller (tidegate-system/tidegate-controller)";

/// An environment of the three clusters (waves 1, 2, 3, a bake long enough
/// to stop a rollout in) with `web` at v1 rolled out.
struct Rolled {
    fleet: &'static tidegate_testkit::Fleet,
    git: tidegate_tests::GitFixture,
    ns: TestNamespace,
    audit: Arc<MemorySink>,
}

impl Rolled {
    async fn new(prefix: &str) -> Rolled {
        Rolled::with_spec(prefix, "3s", "").await
    }

    /// With `bake` as the bake time and `extra` appended to the spec.
    async fn with_spec(prefix: &str, bake: &str, extra: &str) -> Rolled {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        let env = ns.name().to_string();
        let mut clusters = String::new();
        for (wave, name) in fleet.contexts().iter().enumerate() {
            clusters.push_str(&format!(
                "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      wave: {}\n",
                wave + 1
            ));
        }
        let mut git = tidegate_tests::GitFixture::new();
        git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 60s\n    bakeTime: {bake}\n{extra}"
            ),
        );
        git.write(
            "manifests/app/web.yaml",
            deployment("registry.example/web:1", false),
        );
        git.commit("v1");
        let rolled = Rolled {
            fleet,
            git,
            ns,
            audit: Arc::new(MemorySink::new()),
        };
        let first = rolled
            .roll(DriverOptions::default(), None)
            .await
            .expect("v1 rolled out");
        assert_eq!(first.outcome, Outcome::Succeeded);
        rolled
    }

    fn env(&self) -> &str {
        self.ns.name()
    }

    async fn roll(
        &self,
        options: DriverOptions,
        journal: Option<Arc<dyn JournalStore>>,
    ) -> Result<RolloutReport, RolloutError> {
        let audit = Audit {
            sink: self.audit.clone(),
            actor: Actor::new(CONTROLLER, Trigger::ControllerPoll),
        };
        let options = DriverOptions {
            poll: Duration::from_millis(300),
            identity: CONTROLLER.into(),
            ..options
        };
        roll_out(self.git.path(), self.env(), options, Some(audit), journal).await
    }

    /// A journal in the management cluster, as replica `writer` keeps it.
    async fn journal(&self, writer: &str) -> Arc<dyn JournalStore> {
        Arc::new(ConfigMapJournal::new(
            client(self.fleet, MANAGEMENT).await,
            MANAGEMENT,
            self.env(),
            self.env(),
            writer,
        ))
    }

    /// The revision each cluster's inventory records.
    async fn revision_of(&self, cluster: &str) -> Option<String> {
        let (desired, _) = load_env_at(self.git.path(), self.env(), "HEAD").expect("valid");
        let cluster = desired
            .environment
            .spec
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .expect("cluster");
        let engine = Engine::connect(&kubeconfig_factory(self.fleet), cluster)
            .await
            .expect("connect");
        let inventories = engine.inventories(self.env()).await.expect("inventories");
        inventories.first().map(|i| i.revision.clone())
    }

    /// Sync operations (intents) that wrote `revision` to `cluster`.
    fn syncs_of(&self, cluster: &str, revision: &str) -> usize {
        self.audit
            .records()
            .iter()
            .filter(|r| {
                r.entry.action == AuditAction::Sync
                    && r.entry.outcome.is_none()
                    && r.operation == Some(r.seq)
                    && r.entry.cluster.as_deref() == Some(cluster)
                    && r.entry.to.as_ref().is_some_and(|t| t.sha == revision)
            })
            .count()
    }

    /// Whether any cluster still has the environment's lock Lease.
    async fn locked_anywhere(&self) -> Vec<String> {
        let mut held = Vec::new();
        for context in self.fleet.contexts() {
            let leases: Api<Lease> =
                Api::namespaced(client(self.fleet, context).await, "tidegate-system");
            if leases
                .get_opt(&tidegate_fleet::lock::lock_name(self.env()))
                .await
                .expect("lease")
                .is_some()
            {
                held.push(context.to_string());
            }
        }
        held
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_rollout_is_closed_in_the_audit_trail_and_finished_by_another_replica() {
    let mut fx = Rolled::new("ha-stop").await;
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    fx.git.commit("v2");
    let v2 = fx.git.head();
    let canary = fx.fleet.contexts()[0].to_string();

    // Replica a rolls v2 out; it is asked to stop (SIGTERM) once wave 1 is applied.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let a = fx.roll(
        DriverOptions {
            stop: Some(stopping),
            ..DriverOptions::default()
        },
        Some(fx.journal("replica-a").await),
    );
    let stopper = async {
        let deadline = Instant::now() + WAIT;
        while fx.revision_of(&canary).await.as_deref() != Some(v2.as_str()) {
            assert!(Instant::now() < deadline, "wave 1 never applied");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = stop.send(true);
    };
    let (a, ()) = tokio::join!(a, stopper);
    let err = a.expect_err("interrupted");
    assert!(matches!(err, RolloutError::Interrupted { .. }), "{err}");
    assert!(err.to_string().contains("tidegate-journal-"), "{err}");
    // Every intent has its outcome; the rollout's says interrupted.
    let open = fx.audit.open_operations().expect("open");
    assert!(open.is_empty(), "open intents: {open:?}");
    let ends: Vec<_> = fx
        .audit
        .records()
        .into_iter()
        .filter(|r| r.entry.action == AuditAction::RolloutEnd)
        .collect();
    let last = ends.last().expect("rollout end");
    assert_eq!(last.entry.outcome, Some(AuditOutcome::Aborted));
    assert_eq!(
        last.entry
            .details
            .get(INTERRUPTED_DETAIL)
            .map(String::as_str),
        Some("true")
    );
    // The locks were released, the journal kept.
    assert_eq!(fx.locked_anywhere().await, Vec::<String>::new());

    // Replica b resumes from the ConfigMap journal.
    let b = fx
        .roll(
            DriverOptions {
                resume: true,
                ..DriverOptions::default()
            },
            Some(fx.journal("replica-b").await),
        )
        .await
        .expect("resumed");
    assert_eq!(b.outcome, Outcome::Succeeded, "{b:?}");
    assert!(b.resumed_from.is_some(), "linked to the interrupted run");
    for cluster in fx.fleet.contexts() {
        assert_eq!(
            fx.revision_of(cluster).await.as_deref(),
            Some(v2.as_str()),
            "{cluster}"
        );
        assert_eq!(
            fx.syncs_of(cluster, &v2),
            1,
            "{cluster} was written once with v2: {:?}",
            b.timeline
        );
    }
    assert!(fx.audit.open_operations().expect("open").is_empty());
    assert!(
        fx.journal("check")
            .await
            .load()
            .await
            .expect("load")
            .is_none(),
        "journal removed at the end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_and_the_controller_refuse_each_others_rollouts_and_a_new_leader_takes_a_deposed_ones_lock()
 {
    let mut fx = Rolled::new("ha-lock").await;
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    fx.git.commit("v2");
    let lock = tidegate_fleet::lock::lock_name(fx.env());
    let hold = |identity: &str| tidegate_cluster::Holder {
        identity: identity.into(),
        pid: 4_000_000,
        host: "another-machine".into(),
        since: "2026-12-01T00:00:00.000000Z".into(),
    };
    let lock = &lock;
    let fleet = fx.fleet;
    let take_all = |holder: tidegate_cluster::Holder| async move {
        for context in fleet.contexts() {
            tidegate_cluster::acquire_lease(
                &client(fleet, context).await,
                context,
                lock,
                &holder,
                Duration::from_secs(600),
                true,
            )
            .await
            .expect("lock");
        }
    };

    // A controller replica (on another machine) holds the lock: the CLI is
    // refused, naming it.
    take_all(hold(CONTROLLER)).await;
    let home = tempfile::tempdir().expect("home");
    let out = super::isolated_command(home.path())
        .args(["--repo", &fx.git.path().display().to_string()])
        .args(["sync", "--env", fx.env()])
        .env("TIDEGATE_ACCESS", "kubeconfig")
        .env("KUBECONFIG", fx.fleet.kubeconfig())
        .output()
        .expect("tidegate sync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(CONTROLLER), "{stderr}");
    assert!(stderr.contains("another-machine"), "{stderr}");

    // The elected leader takes the lock of a replica that no longer leads.
    let report = fx
        .roll(
            DriverOptions {
                take_over_identity: Some(CONTROLLER.into()),
                ..DriverOptions::default()
            },
            None,
        )
        .await
        .expect("the leader rolls out");
    assert_eq!(report.outcome, Outcome::Succeeded);

    // A person's CLI run holds the lock: the controller is refused, naming
    // it. (A new commit: a fleet already at the revision is left alone
    // without taking the lock.)
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:3", false),
    );
    fx.git.commit("v3");
    take_all(hold("alice@laptop")).await;
    let err = fx
        .roll(
            DriverOptions {
                take_over_identity: Some(CONTROLLER.into()),
                ..DriverOptions::default()
            },
            None,
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(err, RolloutError::Locked(LeaseError::Held { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("alice@laptop"), "{err}");
    for context in fx.fleet.contexts() {
        let _ = tidegate_cluster::release_lease(
            &client(fx.fleet, context).await,
            context,
            lock,
            &hold("alice@laptop"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_rollout_is_resumed_by_another_replica_and_its_open_intents_are_closed() {
    let mut fx = Rolled::new("ha-crash").await;
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    fx.git.commit("v2");
    let v2 = fx.git.head();
    let canary = fx.fleet.contexts()[0].to_string();
    // The run stops dead once wave 1 is applied (its future dropped, as a
    // SIGKILL stops a process: nothing after that point runs).
    let a = fx.roll(
        DriverOptions::default(),
        Some(fx.journal("replica-a").await),
    );
    let applied = async {
        while fx.revision_of(&canary).await.as_deref() != Some(v2.as_str()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        r = a => panic!("the rollout ended before the crash: {r:?}"),
        () = applied => {}
        () = tokio::time::sleep(WAIT) => panic!("wave 1 never applied"),
    }
    let open = fx.audit.open_operations().expect("open");
    assert!(
        open.iter()
            .any(|r| r.entry.action == AuditAction::RolloutStart),
        "the crash left the rollout's intent open: {open:?}"
    );

    let b = fx
        .roll(
            DriverOptions {
                resume: true,
                take_over_identity: Some(CONTROLLER.into()),
                ..DriverOptions::default()
            },
            Some(fx.journal("replica-b").await),
        )
        .await
        .expect("resumed");
    assert_eq!(b.outcome, Outcome::Succeeded, "{b:?}");
    let resumed = b.resumed_from.expect("linked to the crashed run");
    assert!(fx.audit.open_operations().expect("open").is_empty());
    let closed = fx
        .audit
        .records()
        .into_iter()
        .find(|r| r.operation == Some(resumed) && r.entry.action == AuditAction::RolloutEnd)
        .expect("the crashed run's intent has an outcome");
    assert_eq!(closed.entry.outcome, Some(AuditOutcome::Aborted));
    assert!(
        closed
            .entry
            .message
            .as_deref()
            .is_some_and(|m| m.contains("resumed by")),
        "{closed:?}"
    );
    for cluster in fx.fleet.contexts() {
        assert_eq!(fx.revision_of(cluster).await.as_deref(), Some(v2.as_str()));
        assert_eq!(fx.syncs_of(cluster, &v2), 1, "{cluster}: {:?}", b.timeline);
    }
}

/// A `tidegate controller --leader-elect` replica, its logs in `dir`.
struct Replica {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Replica {
    fn start(
        fx: &Rolled,
        name: &str,
        dir: &std::path::Path,
        audit_db: &std::path::Path,
    ) -> Replica {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).expect("home");
        let log = home.join("controller.log");
        let child = super::isolated_command(&home)
            .env("TIDEGATE_AUDIT_DB", audit_db)
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .args(["--repo", &fx.git.path().display().to_string()])
            .args(["controller", "--env", fx.env(), "--leader-elect"])
            .args(["--kubeconfig", &fx.fleet.kubeconfig().display().to_string()])
            .args(["--leader-election-namespace", fx.env()])
            .args(["--leader-election-context", MANAGEMENT])
            .args(["--lease-duration", "3s", "--renew-deadline", "2s"])
            .args(["--retry-period", "500ms", "--shutdown-grace", "5s"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("tidegate controller");
        Replica { child, log }
    }

    /// How this replica is named in the Lease.
    fn id(&self) -> String {
        let me = tidegate_cluster::Holder::this_process("");
        format!("{}-{}", me.host, self.child.id())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds (up to the generous cluster bound).
async fn eventually<F, Fut>(what: &str, logs: &[&Replica], check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let logs: Vec<&std::path::Path> = logs.iter().map(|r| r.log.as_path()).collect();
    super::eventually_logged(what, &logs, Duration::from_millis(200), check).await;
}

/// Where the journaled rollout says `cluster` stands (None: no journal).
async fn journaled(
    fx: &Rolled,
    cluster: &str,
) -> Option<tidegate_rollout::machine::ClusterProgress> {
    super::journaled_progress(fx.fleet, MANAGEMENT, fx.env(), fx.env(), cluster).await
}

#[tokio::test(flavor = "multi_thread")]
async fn controller_replicas_hand_a_rollout_over_when_the_leader_is_killed_and_stop_cleanly_on_sigterm()
 {
    use tidegate_rollout::machine::ClusterProgress;
    let mut fx = Rolled::with_spec("ha-replicas", "8s", "  sync:\n    interval: 1s\n").await;
    let dir = tempfile::tempdir().expect("dir");
    let audit_db = dir.path().join("audit.db");
    let contexts: Vec<String> = fx.fleet.contexts().iter().map(|c| c.to_string()).collect();
    let canary = contexts[0].clone();

    // Two replicas: one leads, the other waits.
    let a = Replica::start(&fx, "a", dir.path(), &audit_db);
    eventually("replica a leads", &[&a], || async {
        lease_holder(fx.env()).await.as_deref() == Some(a.id().as_str())
    })
    .await;
    let b = Replica::start(&fx, "b", dir.path(), &audit_db);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lease_holder(fx.env()).await, Some(a.id()), "one leader");

    // A new commit: a rolls it out; it is killed (SIGKILL) during wave 1's bake.
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    fx.git.commit("v2");
    let v2 = fx.git.head();
    eventually("wave 1 applied and healthy", &[&a, &b], || async {
        journaled(&fx, &canary).await == Some(ClusterProgress::Updated)
    })
    .await;
    let mut a = a;
    a.child.kill().expect("SIGKILL");
    a.child.wait().expect("reaped");
    let killed = Instant::now();

    // b takes over and finishes the rollout from the journal.
    eventually("replica b leads", &[&a, &b], || async {
        lease_holder(fx.env()).await.as_deref() == Some(b.id().as_str())
    })
    .await;
    println!(
        "b led {} ms after a was killed (lease 3 s, retry 500 ms; polled every 200 ms)",
        killed.elapsed().as_millis()
    );
    eventually(
        "v2 everywhere and the rollout finished",
        &[&a, &b],
        || async {
            for c in &contexts {
                if fx.revision_of(c).await.as_deref() != Some(v2.as_str()) {
                    return false;
                }
            }
            journaled(&fx, &canary).await.is_none()
        },
    )
    .await;
    let store = tidegate_audit::SqliteStore::open_existing(&audit_db).expect("audit");
    let syncs = |cluster: &str, revision: &str| {
        store
            .records(&tidegate_audit::Filter {
                cluster: Some(cluster.into()),
                actions: vec!["sync".into()],
                ..Default::default()
            })
            .expect("records")
            .into_iter()
            .filter(|r| {
                r.operation == Some(r.seq) && r.entry.to.as_ref().is_some_and(|t| t.sha == revision)
            })
            .count()
    };
    for c in &contexts {
        assert_eq!(
            syncs(c, &v2),
            1,
            "{c} was written once with v2\n{}",
            b.log()
        );
    }
    assert!(
        b.log().contains("resuming the interrupted rollout"),
        "{}",
        b.log()
    );
    assert!(
        store.interrupted().expect("open").is_empty(),
        "every intent has an outcome"
    );

    // SIGTERM during the next rollout: b stops it safely and exits 0 (the
    // controller itself exits 1 when its shutdown bound is exceeded).
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:3", false),
    );
    fx.git.commit("v3");
    eventually("wave 1 of v3 applied", &[&b], || async {
        journaled(&fx, &canary).await == Some(ClusterProgress::Updated)
    })
    .await;
    // Meanwhile a person's `tidegate sync --env` is refused, naming the controller.
    let home = dir.path().join("person");
    let out = super::isolated_command(&home)
        .args(["--repo", &fx.git.path().display().to_string()])
        .args(["sync", "--env", fx.env()])
        .env("TIDEGATE_ACCESS", "kubeconfig")
        .env("KUBECONFIG", fx.fleet.kubeconfig())
        .output()
        .expect("tidegate sync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "locked by tidegate-controller ({}/tidegate-controller)",
            fx.env()
        )),
        "{stderr}"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &b.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut b = b;
    let terminated = Instant::now();
    let exit = b.child.wait().expect("exit");
    println!(
        "b exited {} ms after SIGTERM (bound: grace 5 s + 10 s)",
        terminated.elapsed().as_millis()
    );
    assert!(exit.success(), "exit {exit}\n{}", b.log());
    assert_eq!(lease_holder(fx.env()).await, None, "the lease was released");
    assert_eq!(
        fx.locked_anywhere().await,
        Vec::<String>::new(),
        "locks released"
    );
    let open = store.interrupted().expect("open");
    assert!(open.is_empty(), "open intents: {open:?}");
    let last_end = store
        .records(&tidegate_audit::Filter {
            actions: vec!["rollout-end".into()],
            ..Default::default()
        })
        .expect("records")
        .pop()
        .expect("an end");
    assert_eq!(
        last_end
            .entry
            .details
            .get(INTERRUPTED_DETAIL)
            .map(String::as_str),
        Some("true"),
        "{last_end:?}"
    );
    assert!(
        journaled(&fx, &canary).await.is_some(),
        "the journal is kept for the next leader"
    );
}
