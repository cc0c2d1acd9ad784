//! Maintenance windows in the machine: scripted scenarios and property
//! tests (no apply to a cluster while its window is closed unless the
//! windows are ignored; surge limits hold; every cluster is done once its
//! window opens).

use super::*;
use crate::plan::plan_fleet;
use HealthStatus::Healthy;
use proptest::prelude::*;
use std::collections::BTreeMap;
use tidegate_core::duration::GoDuration;
use tidegate_core::environment::{ClusterSchedule, MaintenanceWindow, Rollout};
use tidegate_core::intorpercent::IntOrPercent;

/// 2026-12-01T10:00:00Z: the rollout's clock reads zero here.
const EPOCH_MS: i64 = 1_796_119_200_000;

fn window(schedule: &str, seconds: u64, tz: &str) -> MaintenanceWindow {
    MaintenanceWindow {
        name: format!("w-{schedule}"),
        schedule: schedule.into(),
        duration: GoDuration(Duration::from_secs(seconds)),
        time_zone: tz.into(),
        clusters: Vec::new(),
        cluster_selector: None,
    }
}

fn windows(policy: WindowPolicy, per_cluster: &[(&str, MaintenanceWindow)]) -> Windows {
    Windows {
        epoch_ms: EPOCH_MS,
        policy,
        clusters: per_cluster
            .iter()
            .map(|(c, w)| {
                (
                    c.to_string(),
                    ClusterSchedule::new(std::slice::from_ref(w), &[]).expect("compiles"),
                )
            })
            .collect(),
        ignored: None,
    }
}

fn rollout(fleet: &[(&str, Option<u32>)], surge: u32, windows: Windows) -> FleetRollout {
    let policy = Rollout {
        max_surge: IntOrPercent::Int(surge),
        bake_time: GoDuration(Duration::from_secs(10)),
        ..Rollout::default()
    };
    let plan = plan_fleet(fleet.iter().copied(), &policy).expect("plans");
    let starts = fleet.iter().map(|(n, _)| {
        (
            n.to_string(),
            ClusterStart {
                current_revision: Some("v1".into()),
                last_good_revision: Some("v1".into()),
                health: Healthy,
                drifted: false,
                unknown_state: false,
            },
        )
    });
    let config = RolloutConfig {
        windows,
        ..RolloutConfig::from_plan(&plan, "v2")
    };
    FleetRollout::new(&plan, config, starts).expect("valid")
}

/// A cooperative engine: every apply succeeds and turns Healthy at once.
/// Runs until the end, one second at a time, and returns when each
/// cluster was applied.
fn run_to_end(r: &mut FleetRollout, limit: u64) -> (BTreeMap<String, u64>, Vec<TransitionKind>) {
    run_to_end_watching(r, limit, |_| {})
}

/// [`run_to_end`], calling `watch` after every step.
fn run_to_end_watching(
    r: &mut FleetRollout,
    limit: u64,
    mut watch: impl FnMut(&FleetRollout),
) -> (BTreeMap<String, u64>, Vec<TransitionKind>) {
    let mut applied = BTreeMap::new();
    let mut transitions = Vec::new();
    for t in 0..limit {
        let now = Duration::from_secs(t);
        for cmd in r.step(now) {
            match cmd {
                Command::Apply { cluster, .. } => {
                    applied.insert(cluster.clone(), t);
                    r.observe(
                        now,
                        Event::Applied {
                            cluster: cluster.clone(),
                        },
                    );
                    r.observe(
                        now,
                        Event::Health {
                            cluster,
                            status: Healthy,
                        },
                    );
                }
                Command::Finished(outcome) => {
                    assert_eq!(outcome, Outcome::Succeeded);
                    transitions.extend(r.drain_transitions().into_iter().map(|t| t.kind));
                    return (applied, transitions);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        watch(r);
        transitions.extend(r.drain_transitions().into_iter().map(|t| t.kind));
    }
    panic!("not finished after {limit}s");
}

/// `c`'s window opens at 10:02 UTC (120 s after the start) for an hour.
fn opens_at_two_minutes() -> MaintenanceWindow {
    window("2 10 * * *", 3600, "UTC")
}

#[test]
fn wait_holds_the_wave_gate_but_not_the_rest_of_the_wave() {
    let fleet = [
        ("canary", Some(1)),
        ("a", Some(2)),
        ("b", Some(2)),
        ("c", Some(2)),
    ];
    let w = windows(WindowPolicy::Wait, &[("b", opens_at_two_minutes())]);
    let mut r = rollout(&fleet, 3, w);
    let (applied, transitions) = run_to_end(&mut r, 1000);
    // canary at 0, its bake of 10 s, then a and c at once; b at 120 s.
    assert_eq!(applied["canary"], 0);
    // (Health is observed after the step that applied: the gate holds from 1 s.)
    assert_eq!(applied["a"], 11);
    assert_eq!(applied["c"], 11);
    assert_eq!(applied["b"], 120);
    let closed: Vec<_> = transitions
        .iter()
        .filter_map(|t| match t {
            TransitionKind::WindowClosed {
                cluster,
                opens_at_ms,
                deferred,
                reason,
            } => Some((cluster.as_str(), *opens_at_ms, *deferred, reason.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        closed,
        [(
            "b",
            Some(EPOCH_MS + 120_000),
            false,
            "outside its window w-2 10 * * *"
        )]
    );
    // Wave 2's gate passed only after b was done and baked.
    let gate2 = transitions
        .iter()
        .position(|t| *t == TransitionKind::GatePassed { wave: 2 })
        .expect("gate 2");
    assert!(
        gate2
            > transitions
                .iter()
                .position(|t| matches!(t, TransitionKind::WindowClosed { .. }))
                .expect("closed")
    );
}

#[test]
fn skip_and_return_moves_on_and_comes_back() {
    let fleet = [
        ("canary", Some(1)),
        ("a", Some(2)),
        ("late", Some(2)),
        ("z", Some(3)),
    ];
    let w = windows(
        WindowPolicy::SkipAndReturn,
        &[("late", opens_at_two_minutes())],
    );
    let mut r = rollout(&fleet, 2, w);
    // Until its window opens, `late` is reported as waiting.
    let mut saw_waiting = false;
    let (applied, _) = run_to_end_watching(&mut r, 1000, |r| {
        saw_waiting |= r
            .clusters()
            .any(|v| v.name == "late" && v.progress == ClusterProgress::WaitingForWindow);
    });
    assert!(saw_waiting);
    // Wave 3 did not wait for `late`: z went after two bakes of 10 s.
    assert_eq!(applied["z"], 22);
    assert_eq!(applied["late"], 120);
    assert!(r.last_good_after().is_some());
}

#[test]
fn ignoring_windows_applies_at_once_and_says_why() {
    let fleet = [("a", Some(1)), ("b", Some(1))];
    let w = windows(WindowPolicy::Wait, &[("b", opens_at_two_minutes())]).ignoring("outage INC-1");
    let mut r = rollout(&fleet, 2, w);
    let (applied, transitions) = run_to_end(&mut r, 1000);
    assert_eq!(applied["b"], 0);
    assert!(transitions.contains(&TransitionKind::WindowsIgnored {
        reason: "outage INC-1".into()
    }));
    assert!(
        !transitions
            .iter()
            .any(|t| matches!(t, TransitionKind::WindowClosed { .. }))
    );
}

#[test]
fn a_freeze_holds_every_cluster_it_selects() {
    let fleet = [("a", Some(1))];
    // Frozen from 09:00 for two hours: until 11:00, an hour after the start.
    let mut w = windows(WindowPolicy::Wait, &[]);
    w.clusters.insert(
        "a".into(),
        ClusterSchedule::new(&[], &[window("0 9 * * *", 7200, "UTC")]).expect("compiles"),
    );
    let mut r = rollout(&fleet, 1, w);
    let (applied, transitions) = run_to_end(&mut r, 4000);
    assert_eq!(applied["a"], 3600);
    assert!(transitions.iter().any(|t| matches!(t, TransitionKind::WindowClosed { reason, .. } if reason.starts_with("frozen by w-0 9 * * * until 2026-12-01T11:00:00"))));
}

#[test]
fn a_journaled_wait_resumes_with_its_windows() {
    let fleet = [("a", Some(1)), ("b", Some(1))];
    let w = windows(
        WindowPolicy::SkipAndReturn,
        &[("b", opens_at_two_minutes())],
    );
    let mut r = rollout(&fleet, 2, w);
    let now = Duration::from_secs(5);
    let cmds = r.step(now);
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    let journal = serde_json::to_string(&r).expect("journal");
    let mut back: FleetRollout = serde_json::from_str(&journal).expect("resumes");
    assert_eq!(back, r);
    back.resume(Duration::from_secs(60));
    assert_eq!(back.config().windows.policy, WindowPolicy::SkipAndReturn);
    assert!(
        back.config()
            .windows
            .closed("b", Duration::from_secs(60))
            .is_some()
    );
    assert!(
        back.config()
            .windows
            .closed("b", Duration::from_secs(120))
            .is_none()
    );
}

// === property tests ===

#[derive(Debug, Clone)]
struct Scenario {
    waves: Vec<Option<u32>>,
    /// Per cluster: none, or (every k minutes, open for d seconds, zone).
    windows: Vec<Option<(u32, u64, &'static str)>>,
    surge: u32,
    policy: WindowPolicy,
    ignored: bool,
    /// Seconds between steps.
    ticks: Vec<u64>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1usize..10).prop_flat_map(|n| {
        (
            prop::collection::vec(prop::option::weighted(0.8, 1u32..4), n),
            prop::collection::vec(
                prop::option::weighted(
                    0.6,
                    (
                        2u32..7,
                        10u64..100,
                        prop::sample::select(vec![
                            "UTC",
                            "Asia/Kolkata",
                            "America/St_Johns",
                            "Europe/Berlin",
                        ]),
                    ),
                ),
                n,
            ),
            1u32..4,
            prop_oneof![Just(WindowPolicy::Wait), Just(WindowPolicy::SkipAndReturn)],
            prop::bool::weighted(0.1),
            prop::collection::vec(1u64..90, 1..200),
        )
            .prop_map(|(waves, windows, surge, policy, ignored, ticks)| Scenario {
                waves,
                windows,
                surge,
                policy,
                ignored,
                ticks,
            })
    })
}

fn check(s: &Scenario) {
    let names: Vec<String> = (0..s.waves.len()).map(|i| format!("c{i}")).collect();
    let per_cluster: Vec<(&str, MaintenanceWindow)> = names
        .iter()
        .zip(&s.windows)
        .filter_map(|(n, w)| {
            w.map(|(k, d, tz)| (n.as_str(), window(&format!("*/{k} * * * *"), d, tz)))
        })
        .collect();
    let mut w = windows(s.policy, &per_cluster);
    if s.ignored {
        w = w.ignoring("emergency");
    }
    let schedules = w.clone();
    let fleet: Vec<(&str, Option<u32>)> = names
        .iter()
        .map(|n| n.as_str())
        .zip(s.waves.iter().copied())
        .collect();
    let policy = Rollout {
        max_surge: IntOrPercent::Int(s.surge),
        bake_time: GoDuration(Duration::from_secs(5)),
        progress_deadline: GoDuration(Duration::from_secs(3600)),
        ..Rollout::default()
    };
    let plan = plan_fleet(fleet.iter().copied(), &policy).expect("plans");
    let wave_of: BTreeMap<&str, usize> = plan
        .waves
        .iter()
        .enumerate()
        .flat_map(|(i, w)| w.clusters.iter().map(move |c| (c.as_str(), i)))
        .collect();
    let starts = names.iter().map(|n| {
        (
            n.clone(),
            ClusterStart {
                current_revision: Some("v1".into()),
                last_good_revision: Some("v1".into()),
                health: Healthy,
                drifted: false,
                unknown_state: false,
            },
        )
    });
    let config = RolloutConfig {
        windows: w,
        ..RolloutConfig::from_plan(&plan, "v2")
    };
    let mut r = FleetRollout::new(&plan, config, starts).expect("valid");
    let mut now = Duration::ZERO;
    let mut done: BTreeMap<String, Duration> = BTreeMap::new();
    let mut passed: Vec<usize> = Vec::new();
    let mut deferred: std::collections::BTreeSet<String> = Default::default();
    let ticks = s.ticks.iter().copied().chain(std::iter::repeat(10));
    // Every cluster's window opens at least every 6 minutes: the rollout
    // ends within a few hours of simulated time.
    for tick in ticks.take(20_000) {
        let cmds = r.step(now);
        let mut in_flight = Vec::new();
        for cmd in &cmds {
            match cmd {
                Command::Apply { cluster, .. } => {
                    assert!(
                        s.ignored || schedules.closed(cluster, now).is_none(),
                        "{cluster} applied at {now:?} while its window is closed"
                    );
                    assert!(!done.contains_key(cluster), "{cluster} applied twice");
                    let wave = wave_of[cluster.as_str()];
                    if s.policy == WindowPolicy::Wait {
                        // Never past a wave with a cluster not done.
                        for (c, &w) in &wave_of {
                            if w < wave {
                                assert!(
                                    done.contains_key(*c),
                                    "{cluster} applied before {c} of an earlier wave"
                                );
                            }
                        }
                    }
                    in_flight.push(cluster.clone());
                }
                Command::Finished(o) => {
                    assert_eq!(*o, Outcome::Succeeded);
                    assert_eq!(done.len(), names.len(), "finished with clusters not done");
                    return;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            r.in_flight() <= plan.max_in_flight as usize,
            "{} in flight",
            r.in_flight()
        );
        for t in r.drain_transitions() {
            match t.kind {
                TransitionKind::GatePassed { wave } => {
                    let index = plan
                        .waves
                        .iter()
                        .position(|w| w.number == wave)
                        .expect("wave");
                    passed.push(index);
                    for c in &plan.waves[index].clusters {
                        // Or its wave went on without it (and it may have
                        // been applied in the same step, its window open).
                        let ok = done.contains_key(c) || deferred.contains(c);
                        assert!(ok, "gate of wave {wave} passed with {c} not done");
                    }
                }
                TransitionKind::WindowClosed {
                    ref cluster,
                    deferred: was_deferred,
                    ..
                } => {
                    assert!(!s.ignored, "a window was consulted although ignored");
                    assert_eq!(was_deferred, s.policy == WindowPolicy::SkipAndReturn);
                    assert!(schedules.closed(cluster, now).is_some());
                    if was_deferred {
                        deferred.insert(cluster.clone());
                    }
                }
                _ => {}
            }
        }
        for cluster in in_flight {
            r.observe(
                now,
                Event::Applied {
                    cluster: cluster.clone(),
                },
            );
            r.observe(
                now,
                Event::Health {
                    cluster: cluster.clone(),
                    status: Healthy,
                },
            );
            done.insert(cluster, now);
        }
        now += Duration::from_secs(tick);
    }
    panic!(
        "the rollout did not end: {:?}",
        r.clusters()
            .map(|v| (v.name.to_string(), v.progress))
            .collect::<Vec<_>>()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_apply_while_a_window_is_closed_and_every_cluster_is_done(s in scenario()) {
        check(&s);
    }
}
