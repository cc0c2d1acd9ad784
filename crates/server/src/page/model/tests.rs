use super::*;
use crate::page::fixture::{self, REVISION};

#[test]
fn events_fill_the_model_per_environment_and_cluster() {
    let model = FleetModel::new();
    let view = fixture::environment("prod", 3, 2);
    fixture::feed(&model, &view, 1);
    let env = model.environment("prod").expect("prod");
    assert_eq!(env.clusters.len(), 3);
    let first = &env.clusters[&view.clusters[0].name];
    assert_eq!(first.revision.as_deref(), Some(REVISION));
    assert_eq!(first.health, Some(HealthStatus::Healthy));
    assert_eq!(
        first.drift.values().sum::<u64>(),
        2,
        "one drifted object per app"
    );
    assert_eq!(first.objects.len(), 2);
    let rollout = env.rollouts.last().expect("a rollout");
    assert!(rollout.ended.is_none());
    assert_eq!(rollout.clusters.len(), 3);
    assert!(model.environment("staging").is_none());
}

#[test]
fn a_rollout_ends_with_its_outcome_and_failure() {
    let model = FleetModel::new();
    fixture::feed(&model, &fixture::environment("prod", 2, 1), 0);
    let failed = "eks-us-east-1-000";
    model.record(&Event::RollbackSettled {
        environment: "prod".into(),
        cluster: failed.into(),
        restored: true,
    });
    model.record(&Event::RolloutFailed {
        environment: "prod".into(),
        failure: "cluster eks-us-east-1-000: Degraded".into(),
    });
    fixture::end(&model, "prod", RolloutOutcome::RolledBack);
    let env = model.environment("prod").expect("prod");
    let r = env.rollouts.last().expect("rollout");
    assert_eq!(r.outcome, Some(RolloutOutcome::RolledBack));
    assert!(r.ended.is_some());
    assert_eq!(
        r.failure.as_deref(),
        Some("cluster eks-us-east-1-000: Degraded")
    );
    // Progress after the end changes nothing (no rollout is running).
    let before = *model.changes().borrow();
    model.record(&Event::Progress {
        environment: "prod".into(),
        clusters: Vec::new(),
    });
    assert_eq!(*model.changes().borrow(), before);
    assert_eq!(
        model.environment("prod").expect("prod").rollouts[0]
            .clusters
            .len(),
        2
    );
}

#[test]
fn only_events_the_page_shows_change_its_version() {
    let model = FleetModel::new();
    let changes = model.changes();
    model.record(&Event::Leading(true));
    model.record(&Event::Requests {
        cluster: "a".into(),
        counts: Default::default(),
    });
    assert_eq!(*changes.borrow(), 0);
    model.record(&Event::AuditVerified { ok: true });
    assert_eq!(*changes.borrow(), 1);
    assert_eq!(model.audit_verified(), Some(true));
}

#[test]
fn only_the_last_rollouts_are_kept() {
    let model = FleetModel::new();
    for _ in 0..ROLLOUTS_KEPT + 3 {
        model.record(&Event::RolloutStarted {
            environment: "prod".into(),
            revision: REVISION.into(),
            trigger: "controller-poll".into(),
        });
        fixture::end(&model, "prod", RolloutOutcome::Succeeded);
    }
    let env = model.environment("prod").expect("prod");
    assert_eq!(env.rollouts.len(), ROLLOUTS_KEPT);
    assert_eq!(
        env.rollouts.last().map(|r| r.number),
        Some(ROLLOUTS_KEPT as u64 + 3)
    );
}
