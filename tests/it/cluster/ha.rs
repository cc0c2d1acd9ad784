//! High availability on the local clusters: the rollout journal kept in a
//! ConfigMap (another replica resumes it; a deposed writer is fenced off),
//! leader election between controller replicas over a real Lease, and a
//! rollout interrupted by shutdown or by a crash finished by another replica.

use super::{client, fleet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};
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
