//! Planner benchmark: plan and run a simulated fleet of 1,000 clusters with
//! 50 changed objects each, from the first step to `Finished`.
//!
//! The simulated engine "applies" a cluster by walking its object list (the
//! work the real engine would hand to server-side apply), reports `Applied`
//! at once and `Healthy` five simulated seconds later. Time advances one
//! simulated second per loop; waves bake for a minute. Run with
//! `cargo bench -p tidegate-rollout --bench planner`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::{collections::VecDeque, hint::black_box, time::Duration};
use tidegate_core::{
    duration::GoDuration,
    environment::{FailurePolicy, Rollout},
    intorpercent::IntOrPercent,
};
use tidegate_health::HealthStatus;
use tidegate_rollout::{
    ClusterStart, Command, Event, FleetRollout, Outcome, RolloutConfig, plan_fleet,
};

const CLUSTERS: usize = 1_000;
const OBJECTS: usize = 50;

struct Fleet {
    clusters: Vec<(String, Option<u32>)>,
    objects: Vec<Vec<String>>,
    policy: Rollout,
}

/// 10 canaries in wave 1, 90 clusters in wave 2, 900 auto-partitioned into
/// four waves of 225; maxSurge 25% (250), maxUnavailable 10% (100).
fn fleet(policy: FailurePolicy) -> Fleet {
    let clusters = (0..CLUSTERS)
        .map(|i| {
            let wave = match i {
                0..10 => Some(1),
                10..100 => Some(2),
                _ => None,
            };
            (format!("cluster-{i:04}"), wave)
        })
        .collect();
    let objects = (0..CLUSTERS)
        .map(|i| {
            (0..OBJECTS)
                .map(|j| format!("apps/Deployment team-{}/app-{j}", i % 7))
                .collect()
        })
        .collect();
    Fleet {
        clusters,
        objects,
        policy: Rollout {
            max_surge: IntOrPercent::Percent(25),
            max_unavailable: IntOrPercent::Percent(10),
            bake_time: GoDuration(Duration::from_secs(60)),
            failure_policy: policy,
            ..Rollout::default()
        },
    }
}

/// Plans and runs the whole rollout; `bad_from` makes every cluster from
/// that index on turn Degraded after its apply. Returns the outcome and
/// the number of objects applied.
fn plan_and_run(fleet: &Fleet, bad_from: usize) -> (Outcome, usize) {
    let plan = plan_fleet(
        fleet.clusters.iter().map(|(n, w)| (n.as_str(), *w)),
        &fleet.policy,
    )
    .expect("plans");
    let starts = fleet.clusters.iter().map(|(n, _)| {
        (
            n.clone(),
            ClusterStart {
                current_revision: Some("v1".into()),
                last_good_revision: Some("v1".into()),
                health: HealthStatus::Healthy,
                drifted: false,
                unknown_state: false,
            },
        )
    });
    let mut rollout =
        FleetRollout::new(&plan, RolloutConfig::from_plan(&plan, "v2"), starts).expect("valid");
    let index = |name: &str| name[8..].parse::<usize>().expect("cluster-NNNN");
    let mut now = Duration::ZERO;
    let mut healthy_at: VecDeque<(Duration, String)> = VecDeque::new();
    let mut restored_at: VecDeque<(Duration, String)> = VecDeque::new();
    let mut objects_applied = 0;
    loop {
        for command in rollout.step(now) {
            match command {
                Command::Apply { cluster, .. } => {
                    objects_applied += fleet.objects[index(&cluster)]
                        .iter()
                        .map(|o| black_box(o.len()).min(1))
                        .sum::<usize>();
                    rollout.observe(
                        now,
                        Event::Applied {
                            cluster: cluster.clone(),
                        },
                    );
                    healthy_at.push_back((now + Duration::from_secs(5), cluster));
                }
                Command::Rollback { cluster, .. } | Command::Remove { cluster } => {
                    objects_applied += fleet.objects[index(&cluster)].len();
                    rollout.observe(
                        now,
                        Event::RolledBack {
                            cluster: cluster.clone(),
                        },
                    );
                    // Back at the good revision: Healthy again a moment later.
                    restored_at.push_back((now + Duration::from_secs(5), cluster));
                }
                Command::AwaitApproval { wave } => {
                    rollout.observe(now, Event::Approved { wave });
                }
                // The simulated fleet has no metric analyses.
                Command::Analyze { .. } => {}
                Command::Finished(outcome) => return (outcome, objects_applied),
            }
        }
        while healthy_at.front().is_some_and(|(t, _)| *t <= now) {
            let Some((_, cluster)) = healthy_at.pop_front() else {
                break;
            };
            let status = if index(&cluster) >= bad_from {
                HealthStatus::Degraded
            } else {
                HealthStatus::Healthy
            };
            rollout.observe(now, Event::Health { cluster, status });
        }
        while restored_at.front().is_some_and(|(t, _)| *t <= now) {
            let Some((_, cluster)) = restored_at.pop_front() else {
                break;
            };
            let status = HealthStatus::Healthy;
            rollout.observe(now, Event::Health { cluster, status });
        }
        black_box(rollout.drain_transitions());
        now += Duration::from_secs(1);
    }
}

fn bench(c: &mut Criterion) {
    let good = fleet(FailurePolicy::Rollback);
    let (outcome, objects) = plan_and_run(&good, usize::MAX);
    assert_eq!(outcome, Outcome::Succeeded);
    assert_eq!(objects, CLUSTERS * OBJECTS);
    c.bench_function("plan+run 1000 clusters x 50 objects, good revision", |b| {
        b.iter(|| plan_and_run(black_box(&good), usize::MAX))
    });

    // Degraded from the middle of the first auto wave on: more than
    // maxUnavailable (100) turn Degraded, then every touched cluster rolls back.
    let (outcome, _) = plan_and_run(&good, 100);
    assert!(matches!(outcome, Outcome::RolledBack { .. }), "{outcome:?}");
    c.bench_function(
        "plan+run 1000 clusters x 50 objects, bad revision rolled back",
        |b| b.iter(|| plan_and_run(black_box(&good), 100)),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
