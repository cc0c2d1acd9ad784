//! High availability on the local clusters: the rollout journal kept in a
//! ConfigMap (another replica resumes it; a deposed writer is fenced off),
//! leader election between controller replicas over a real Lease, and a
//! rollout interrupted by shutdown or by a crash finished by another replica.

use super::{WAIT, client, fleet};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Namespace};
use kube::api::{Api, DeleteParams};
use std::time::{Duration, Instant};
use tidegate_controller::leader::{LeaderConfig, LeaderState, Leadership};
use tidegate_fleet::{ConfigMapJournal, FleetRollout, JournalError, JournalStore};
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

async fn lease_holder(namespace: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client(fleet().await, MANAGEMENT).await, namespace);
    leases
        .get("tidegate-controller")
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.holder_identity)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_elect_one_leader_and_a_killed_leader_is_replaced_after_its_lease() {
    let fleet = fleet().await;
    let ns = TestNamespace::create(fleet, "ha-elect").expect("namespace");
    let a = Leadership::start(
        client(fleet, MANAGEMENT).await,
        MANAGEMENT,
        election(ns.name(), "replica-a"),
    )
    .await
    .expect("a campaigns");
    wait_state(&a, "a leads", LeaderState::is_leading).await;
    let b = Leadership::start(
        client(fleet, MANAGEMENT).await,
        MANAGEMENT,
        election(ns.name(), "replica-b"),
    )
    .await
    .expect("b campaigns");
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
    let a = Leadership::start(
        client(fleet, MANAGEMENT).await,
        MANAGEMENT,
        election(ns.name(), "replica-a"),
    )
    .await
    .expect("a campaigns");
    wait_state(&a, "a leads", LeaderState::is_leading).await;
    let b = Leadership::start(
        client(fleet, MANAGEMENT).await,
        MANAGEMENT,
        election(ns.name(), "replica-b"),
    )
    .await
    .expect("b campaigns");
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
