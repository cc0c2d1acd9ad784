//! Scripted scenarios: one engine conversation per test.

use super::*;
use crate::plan::plan_fleet;
use HealthStatus::{Degraded, Healthy, Missing, Progressing};
use tidegate_core::environment::{Located, Rollout, WavePolicy};
use tidegate_core::intorpercent::IntOrPercent;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn policy(surge: u32, unavailable: u32) -> Rollout {
    Rollout {
        max_surge: IntOrPercent::Int(surge),
        max_unavailable: IntOrPercent::Int(unavailable),
        ..Rollout::default()
    }
}

fn start(rev: Option<&str>, good: Option<&str>, health: HealthStatus) -> ClusterStart {
    ClusterStart {
        current_revision: rev.map(str::to_string),
        last_good_revision: good.map(str::to_string),
        health,
        drifted: false,
        unknown_state: false,
    }
}

/// A rollout of `v2` over `fleet`, every cluster at `v1` and Healthy unless
/// `starts` says otherwise.
fn rollout(
    fleet: &[(&str, Option<u32>)],
    policy: &Rollout,
    starts: &[(&str, ClusterStart)],
) -> FleetRollout {
    let plan = plan_fleet(fleet.iter().copied(), policy).expect("plans");
    let all = fleet.iter().map(|(name, _)| {
        let s = starts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| start(Some("v1"), Some("v1"), Healthy));
        (name.to_string(), s)
    });
    FleetRollout::new(&plan, RolloutConfig::from_plan(&plan, "v2"), all).expect("valid")
}

fn applies(cmds: &[Command]) -> Vec<&str> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Apply { cluster, revision } => {
                assert_eq!(revision, "v2");
                Some(cluster.as_str())
            }
            _ => None,
        })
        .collect()
}

fn rollbacks(cmds: &[Command]) -> Vec<(&str, Option<&str>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Rollback { cluster, to } => Some((cluster.as_str(), to.as_deref())),
            _ => None,
        })
        .collect()
}

fn finished(cmds: &[Command]) -> Option<&Outcome> {
    cmds.iter().find_map(|c| match c {
        Command::Finished(o) => Some(o),
        _ => None,
    })
}

fn actions(r: &mut FleetRollout) -> Vec<&'static str> {
    r.drain_transitions()
        .iter()
        .map(|t| t.kind.action())
        .collect()
}

fn health(r: &mut FleetRollout, now: Duration, cluster: &str, status: HealthStatus) {
    assert!(r.observe(
        now,
        Event::Health {
            cluster: cluster.into(),
            status,
        }
    ));
}

/// The apply succeeded and the cluster turned Healthy.
fn converge(r: &mut FleetRollout, now: Duration, cluster: &str) {
    assert!(r.observe(
        now,
        Event::Applied {
            cluster: cluster.into()
        }
    ));
    health(r, now, cluster, Healthy);
}

/// The rollback succeeded and the cluster is Healthy again (a rollback
/// counts as done only then).
fn rolled_back(r: &mut FleetRollout, now: Duration, cluster: &str) {
    assert!(r.observe(
        now,
        Event::RolledBack {
            cluster: cluster.into()
        }
    ));
    health(r, now, cluster, Healthy);
}

/// The worked examples of docs/rollouts.md: 10 clusters, maxSurge 25%
/// (→ 3), maxUnavailable 10% (→ 1), canary c0 in wave 1, c1..c9 in wave 2,
/// bakeTime 1m, progressDeadline 10m.
fn ten_clusters(policy: FailurePolicy) -> FleetRollout {
    let fleet: Vec<(String, Option<u32>)> = (0..10)
        .map(|i| (format!("c{i}"), Some(if i == 0 { 1 } else { 2 })))
        .collect();
    let fleet: Vec<(&str, Option<u32>)> = fleet.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    let p = Rollout {
        max_surge: IntOrPercent::Percent(25),
        max_unavailable: IntOrPercent::Percent(10),
        bake_time: tidegate_core::duration::GoDuration(secs(60)),
        failure_policy: policy,
        ..Rollout::default()
    };
    rollout(&fleet, &p, &[])
}

#[test]
fn a_good_revision_rolls_out_wave_by_wave_in_batches_of_max_surge() {
    let mut r = ten_clusters(FailurePolicy::Rollback);
    assert_eq!((r.max_in_flight(), r.max_unavailable()), (3, 1));

    assert_eq!(applies(&r.step(secs(0))), ["c0"]);
    assert_eq!(actions(&mut r), ["rollout-start", "wave-start"]);
    assert_eq!(r.in_flight(), 1);
    assert_eq!(r.bake_ends_at(), None, "not baking yet");
    converge(&mut r, secs(30), "c0");
    assert!(r.step(secs(30)).is_empty(), "baking");
    assert_eq!(
        r.bake_ends_at(),
        Some(secs(90)),
        "Healthy at 30 s, bakeTime 1m"
    );
    assert!(r.step(secs(89)).is_empty(), "still baking");
    assert_eq!(applies(&r.step(secs(90))), ["c1", "c2", "c3"]);
    assert_eq!(actions(&mut r), ["gate-passed", "wave-start"]);
    assert_eq!(r.current_wave(), Some(2));
    assert_eq!(r.in_flight(), 3);
    assert_eq!(r.bake_ends_at(), None, "wave 2 in flight");

    // Progressing is available: no failure, no new apply until one is Healthy.
    health(&mut r, secs(95), "c2", Progressing);
    assert!(r.step(secs(95)).is_empty());
    converge(&mut r, secs(100), "c2");
    assert_eq!(applies(&r.step(secs(100))), ["c4"]);
    for (t, c) in [(110, "c1"), (111, "c3")] {
        converge(&mut r, secs(t), c);
    }
    assert_eq!(applies(&r.step(secs(111))), ["c5", "c6"]);
    for (t, c) in [(120, "c4"), (121, "c5"), (122, "c6")] {
        converge(&mut r, secs(t), c);
    }
    assert_eq!(applies(&r.step(secs(122))), ["c7", "c8", "c9"]);
    for c in ["c7", "c8", "c9"] {
        converge(&mut r, secs(130), c);
    }
    assert!(r.step(secs(130)).is_empty(), "the last wave bakes too");
    let cmds = r.step(secs(190));
    assert_eq!(finished(&cmds), Some(&Outcome::Succeeded));
    assert_eq!(actions(&mut r), ["gate-passed", "rollout-end"]);
    assert!(r.step(secs(191)).is_empty(), "Finished is returned once");
    assert!(
        r.clusters()
            .all(|c| c.progress == ClusterProgress::Updated && c.revision == Some("v2"))
    );
}

#[test]
fn the_bad_revision_of_the_docs_is_rolled_back_in_reverse_order() {
    for policy in [FailurePolicy::Rollback, FailurePolicy::Halt] {
        let mut r = ten_clusters(policy);
        assert_eq!(applies(&r.step(secs(0))), ["c0"]);
        converge(&mut r, secs(30), "c0");
        r.step(secs(30));
        assert_eq!(applies(&r.step(secs(90))), ["c1", "c2", "c3"]);
        for c in ["c1", "c2", "c3"] {
            assert!(r.observe(secs(91), Event::Applied { cluster: c.into() }));
        }
        health(&mut r, secs(95), "c2", Degraded); // 1 unavailable: allowed
        assert!(r.step(secs(95)).is_empty());
        r.drain_transitions();
        health(&mut r, secs(105), "c8", HealthStatus::Missing); // 2 > 1
        let failure = Failure::TooManyUnavailable {
            unavailable: vec!["c2".into(), "c8".into()],
            max_unavailable: 1,
        };
        assert_eq!(r.failure(), Some(&failure));
        let cmds = r.step(secs(105));
        if policy == FailurePolicy::Halt {
            assert_eq!(cmds, [Command::Finished(Outcome::Halted { failure })]);
            assert_eq!(
                actions(&mut r),
                ["gate-failed", "quarantine", "rollout-end"]
            );
            continue;
        }
        assert_eq!(
            rollbacks(&cmds),
            [("c3", Some("v1")), ("c2", Some("v1")), ("c1", Some("v1"))]
        );
        rolled_back(&mut r, secs(110), "c2");
        assert_eq!(rollbacks(&r.step(secs(110))), [("c0", Some("v1"))]);
        for c in ["c3", "c1", "c0"] {
            rolled_back(&mut r, secs(120), c);
        }
        assert_eq!(
            finished(&r.step(secs(120))),
            Some(&Outcome::RolledBack {
                failure,
                not_restored: vec![]
            })
        );
        assert_eq!(
            actions(&mut r),
            [
                "gate-failed",
                "quarantine",
                "rollback",
                "rollback",
                "rollback",
                "rollback",
                "rollout-end"
            ]
        );
        let untouched: Vec<&str> = r
            .clusters()
            .filter(|c| c.progress == ClusterProgress::Pending)
            .map(|c| c.name)
            .collect();
        assert_eq!(untouched, ["c4", "c5", "c6", "c7", "c8", "c9"]);
    }
}

#[test]
fn a_bad_wave_one_is_rolled_back_in_reverse_order_and_wave_two_is_never_touched() {
    let fleet = [("a", Some(1)), ("b", Some(1)), ("c", Some(2))];
    let mut r = rollout(&fleet, &policy(2, 1), &[]);
    assert_eq!(applies(&r.step(secs(0))), ["a", "b"]);
    converge(&mut r, secs(10), "a");
    assert!(r.observe(
        secs(10),
        Event::Applied {
            cluster: "b".into()
        }
    ));
    // One Degraded cluster is within maxUnavailable 1: wait for the deadline.
    health(&mut r, secs(20), "b", Degraded);
    assert!(r.step(secs(20)).is_empty());
    assert_eq!(r.failure(), None);
    assert!(
        r.step(secs(600)).is_empty(),
        "exactly at the deadline is in time"
    );
    let cmds = r.step(secs(601));
    assert_eq!(
        r.failure(),
        Some(&Failure::ProgressDeadlineExceeded {
            cluster: "b".into()
        })
    );
    assert_eq!(rollbacks(&cmds), [("b", Some("v1")), ("a", Some("v1"))]);
    assert!(applies(&cmds).is_empty());
    assert_eq!(
        actions(&mut r),
        [
            "rollout-start",
            "wave-start",
            "gate-failed",
            "quarantine",
            "rollback",
            "rollback"
        ]
    );
    rolled_back(&mut r, secs(620), "b");
    assert!(r.step(secs(620)).is_empty());
    rolled_back(&mut r, secs(630), "a");
    let cmds = r.step(secs(630));
    assert_eq!(
        finished(&cmds),
        Some(&Outcome::RolledBack {
            failure: Failure::ProgressDeadlineExceeded {
                cluster: "b".into()
            },
            not_restored: vec![],
        })
    );
    assert_eq!(actions(&mut r), ["rollout-end"]);
    let c = r.clusters().find(|c| c.name == "c").expect("c");
    assert_eq!(
        (c.progress, c.revision),
        (ClusterProgress::Pending, Some("v1"))
    );
}

#[test]
fn an_apply_failure_triggers_the_policy_at_once() {
    let fleet = [("a", Some(1)), ("b", Some(1))];
    let mut r = rollout(&fleet, &policy(2, 0), &[]);
    assert_eq!(applies(&r.step(secs(0))), ["a", "b"]);
    assert!(r.observe(
        secs(1),
        Event::ApplyFailed {
            cluster: "a".into(),
            message: "admission webhook denied".into(),
        }
    ));
    // Both are rolled back: an apply that failed may have changed some objects.
    assert_eq!(
        rollbacks(&r.step(secs(1))),
        [("b", Some("v1")), ("a", Some("v1"))]
    );
    // A late Applied for b does not restart the forward rollout.
    assert!(r.observe(
        secs(2),
        Event::Applied {
            cluster: "b".into()
        }
    ));
    health(&mut r, secs(2), "b", Healthy);
    assert!(r.step(secs(2)).is_empty());
}

#[test]
fn halt_stops_and_leaves_clusters_as_they_are() {
    let fleet = [("a", Some(1)), ("b", Some(1)), ("c", Some(2))];
    let mut p = policy(1, 0);
    p.failure_policy = FailurePolicy::Halt;
    let mut r = rollout(&fleet, &p, &[]);
    assert_eq!(applies(&r.step(secs(0))), ["a"]);
    assert!(r.observe(
        secs(5),
        Event::Applied {
            cluster: "a".into()
        }
    ));
    health(&mut r, secs(6), "a", Degraded); // 1 > maxUnavailable 0
    let cmds = r.step(secs(6));
    assert_eq!(cmds.len(), 1);
    assert_eq!(
        finished(&cmds),
        Some(&Outcome::Halted {
            failure: Failure::TooManyUnavailable {
                unavailable: vec!["a".into()],
                max_unavailable: 0,
            }
        })
    );
    assert_eq!(
        actions(&mut r),
        [
            "rollout-start",
            "wave-start",
            "gate-failed",
            "quarantine",
            "rollout-end"
        ]
    );
    health(&mut r, secs(7), "a", Healthy);
    assert!(r.step(secs(700)).is_empty());
    // A resumed engine learns the outcome again.
    assert_eq!(r.outstanding(), cmds);
}

#[test]
fn a_wave_that_requires_approval_waits_for_it() {
    let fleet = [("a", Some(1)), ("b", Some(2)), ("c", Some(3))];
    let mut p = policy(1, 0);
    p.waves = vec![
        Located::new(WavePolicy {
            wave: 2,
            approval: Approval::Required,
        }),
        Located::new(WavePolicy {
            wave: 3,
            approval: Approval::Required,
        }),
    ];
    let mut r = rollout(&fleet, &p, &[]);
    assert_eq!(applies(&r.step(secs(0))), ["a"]);
    converge(&mut r, secs(1), "a");
    assert_eq!(r.step(secs(1)), [Command::AwaitApproval { wave: 2 }]);
    assert_eq!(
        actions(&mut r),
        ["rollout-start", "wave-start", "gate-passed"]
    );
    assert!(r.step(secs(3600)).is_empty(), "asked once, no deadline");
    assert_eq!(r.outstanding(), [Command::AwaitApproval { wave: 2 }]);
    // Wave 3 approved early: it will not wait.
    assert!(r.observe(secs(3600), Event::Approved { wave: 3 }));
    assert!(r.observe(secs(3601), Event::Approved { wave: 2 }));
    assert!(
        !r.observe(secs(3601), Event::Approved { wave: 2 }),
        "repeat"
    );
    assert_eq!(applies(&r.step(secs(3601))), ["b"]);
    converge(&mut r, secs(3602), "b");
    assert_eq!(applies(&r.step(secs(3602))), ["c"]);
}

#[test]
fn a_regression_during_the_bake_fails_the_gate() {
    let fleet = [("a", Some(1)), ("b", Some(1)), ("c", Some(2))];
    let mut p = policy(2, 1);
    p.bake_time = tidegate_core::duration::GoDuration(secs(300));
    let mut r = rollout(&fleet, &p, &[]);
    assert_eq!(applies(&r.step(secs(0))), ["a", "b"]);
    converge(&mut r, secs(10), "a");
    converge(&mut r, secs(20), "b");
    assert!(r.step(secs(20)).is_empty());
    // Progressing is not unavailable, but it is not Healthy: the bake fails.
    health(&mut r, secs(200), "a", Progressing);
    assert_eq!(
        r.failure(),
        Some(&Failure::Regressed {
            cluster: "a".into(),
            status: Progressing
        })
    );
    assert_eq!(
        rollbacks(&r.step(secs(200))),
        [("b", Some("v1")), ("a", Some("v1"))]
    );
}

#[test]
fn a_regression_of_an_earlier_wave_counts_only_towards_max_unavailable() {
    let fleet = [("a", Some(1)), ("b", Some(2)), ("c", Some(2))];
    let mut r = rollout(&fleet, &policy(1, 1), &[]);
    assert_eq!(applies(&r.step(secs(0))), ["a"]);
    converge(&mut r, secs(1), "a");
    assert_eq!(applies(&r.step(secs(1))), ["b"]);
    health(&mut r, secs(2), "a", Degraded); // 1 unavailable: allowed
    assert_eq!(r.failure(), None);
    assert!(r.observe(
        secs(3),
        Event::Applied {
            cluster: "b".into()
        }
    ));
    health(&mut r, secs(3), "b", Degraded); // 2 unavailable: too many
    assert_eq!(
        r.failure(),
        Some(&Failure::TooManyUnavailable {
            unavailable: vec!["a".into(), "b".into()],
            max_unavailable: 1
        })
    );
    assert_eq!(
        rollbacks(&r.step(secs(3))),
        [("b", Some("v1"))],
        "one at a time (maxSurge 1), b (wave 2) first"
    );
    rolled_back(&mut r, secs(4), "b");
    assert_eq!(rollbacks(&r.step(secs(4))), [("a", Some("v1"))]);
}

#[test]
fn clusters_unhealthy_before_the_rollout_count_towards_max_unavailable() {
    let fleet = [("a", Some(1)), ("b", Some(2)), ("z", Some(3))];
    let sick = [("z", start(Some("v1"), Some("v0"), Degraded))];
    // maxUnavailable 1: z alone is tolerated...
    let mut r = rollout(&fleet, &policy(1, 1), &sick);
    assert_eq!(applies(&r.step(secs(0))), ["a"]);
    assert!(r.observe(
        secs(1),
        Event::Applied {
            cluster: "a".into()
        }
    ));
    // ...but not together with a.
    health(&mut r, secs(2), "a", Degraded);
    assert!(matches!(
        r.failure(),
        Some(Failure::TooManyUnavailable { unavailable, .. }) if unavailable == &["a", "z"]
    ));
    // Only a was touched; z, sick before, is not rolled back.
    assert_eq!(rollbacks(&r.step(secs(2))), [("a", Some("v1"))]);

    // maxUnavailable 0: the rollout fails before touching anything.
    let mut r = rollout(&fleet, &policy(1, 0), &sick);
    let cmds = r.step(secs(0));
    assert!(applies(&cmds).is_empty());
    assert!(matches!(
        finished(&cmds),
        Some(Outcome::RolledBack { not_restored, .. }) if not_restored.is_empty()
    ));
    assert_eq!(
        actions(&mut r),
        [
            "rollout-start",
            "wave-start",
            "gate-failed",
            "quarantine",
            "rollout-end"
        ]
    );
}

#[test]
fn clusters_already_healthy_at_the_target_are_skipped() {
    let fleet = [("a", Some(1)), ("b", Some(1)), ("c", Some(1))];
    let starts = [
        ("a", start(Some("v2"), Some("v2"), Healthy)),
        // At the target but not Healthy: applied again.
        ("b", start(Some("v2"), Some("v1"), Progressing)),
    ];
    let mut r = rollout(&fleet, &policy(5, 0), &starts);
    assert_eq!(applies(&r.step(secs(0))), ["b", "c"]);
    let t = r.drain_transitions();
    assert!(matches!(
        &t[1].kind,
        TransitionKind::WaveStart { skipped, .. } if skipped == &["a"]
    ));
    converge(&mut r, secs(1), "b");
    converge(&mut r, secs(1), "c");
    assert_eq!(finished(&r.step(secs(1))), Some(&Outcome::Succeeded));

    // A skipped cluster is never rolled back, even when its wave fails.
    let mut r = rollout(&fleet, &policy(5, 0), &starts);
    r.step(secs(0));
    health(&mut r, secs(1), "a", Progressing);
    assert!(matches!(r.failure(), Some(Failure::Regressed { cluster, .. }) if cluster == "a"));
    assert_eq!(
        rollbacks(&r.step(secs(1))),
        [("c", Some("v1")), ("b", Some("v1"))]
    );
}

#[test]
fn rollbacks_respect_the_surge_limit_and_report_clusters_without_a_good_revision() {
    let fleet = [
        ("a", Some(1)),
        ("b", Some(1)),
        ("c", Some(1)),
        ("d", Some(2)),
    ];
    // b ran v0 but never recorded a healthy revision.
    let starts = [("b", start(Some("v0"), None, Healthy))];
    let mut r = rollout(&fleet, &policy(2, 0), &starts);
    assert_eq!(applies(&r.step(secs(0))), ["a", "b"]);
    converge(&mut r, secs(1), "a");
    converge(&mut r, secs(1), "b");
    assert_eq!(applies(&r.step(secs(1))), ["c"]);
    assert!(r.observe(
        secs(2),
        Event::ApplyFailed {
            cluster: "c".into(),
            message: "boom".into()
        }
    ));
    // c and b (b has no good revision: reported, does not use a slot), a.
    let cmds = r.step(secs(2));
    assert_eq!(
        rollbacks(&cmds),
        [("c", Some("v1")), ("b", None), ("a", Some("v1"))]
    );
    assert_eq!(r.rollbacks_in_flight(), 2);
    assert!(r.observe(
        secs(3),
        Event::RollbackFailed {
            cluster: "a".into(),
            message: "forbidden".into()
        }
    ));
    // c never answers: given up after the progress deadline.
    assert!(r.step(secs(602)).is_empty());
    let cmds = r.step(secs(603));
    let Some(Outcome::RolledBack { not_restored, .. }) = finished(&cmds) else {
        panic!("finished: {cmds:?}");
    };
    let names: Vec<&str> = not_restored.iter().map(|n| n.cluster.as_str()).collect();
    assert_eq!(names, ["c", "b", "a"]);
    assert!(not_restored[1].reason.contains("no known good revision"));
    assert!(not_restored[2].reason.contains("forbidden"));
}

#[test]
fn max_surge_zero_changes_max_unavailable_clusters_at_a_time() {
    let fleet = [("a", None), ("b", None), ("c", None), ("d", None)];
    let mut r = rollout(&fleet, &policy(0, 2), &[]);
    // Unwaved: 25% of 4 → 1 cluster per wave, so one at a time anyway.
    assert_eq!(applies(&r.step(secs(0))), ["a"]);
    let fleet = [("a", Some(1)), ("b", Some(1)), ("c", Some(1))];
    let mut r = rollout(&fleet, &policy(0, 2), &[]);
    assert_eq!(applies(&r.step(secs(0))), ["a", "b"]);
}

#[test]
fn a_resumed_rollout_continues_identically_and_never_reapplies_a_completed_wave() {
    let fleet = [("a", Some(1)), ("b", Some(2)), ("c", Some(2))];
    let mut r = rollout(&fleet, &policy(1, 0), &[]);
    assert_eq!(applies(&r.step(secs(0))), ["a"]);
    converge(&mut r, secs(1), "a");
    assert_eq!(applies(&r.step(secs(1))), ["b"]);

    // Crash: the journal holds the machine as of the last step.
    let journal = serde_json::to_string(&r).expect("serializes");
    let mut resumed: FleetRollout = serde_json::from_str(&journal).expect("deserializes");
    assert_eq!(resumed, r);
    assert_eq!(
        resumed.outstanding(),
        [Command::Apply {
            cluster: "b".into(),
            revision: "v2".into()
        }]
    );
    for m in [&mut r, &mut resumed] {
        assert!(m.step(secs(5)).is_empty(), "no re-apply of a or b");
        converge(m, secs(6), "b");
        assert_eq!(applies(&m.step(secs(6))), ["c"]);
    }
    assert_eq!(resumed, r);
}

#[test]
fn inconsistent_journals_and_setups_are_refused() {
    let fleet = [("a", Some(1)), ("b", Some(2))];
    let r = rollout(&fleet, &policy(1, 0), &[]);
    let mut json = serde_json::to_value(&r).expect("serializes");
    json["waves"][1]["members"][0] = 7.into();
    let err = serde_json::from_value::<FleetRollout>(json).expect_err("refused");
    assert!(
        err.to_string().contains("inconsistent rollout journal"),
        "{err}"
    );

    let plan = plan_fleet(fleet, &policy(1, 0)).expect("plans");
    let cfg = RolloutConfig::from_plan(&plan, "v2");
    let one = [("a".to_string(), start(None, None, Healthy))];
    assert_eq!(
        FleetRollout::new(&plan, cfg.clone(), one.clone()),
        Err(SetupError::MissingCluster("b".into()))
    );
    let three = one
        .into_iter()
        .chain(["b", "x"].map(|n| (n.to_string(), start(None, None, Healthy))));
    assert_eq!(
        FleetRollout::new(&plan, cfg, three),
        Err(SetupError::UnknownCluster("x".into()))
    );
}

#[test]
fn stale_and_unknown_events_are_ignored() {
    let fleet = [("a", Some(1)), ("b", Some(2))];
    let mut r = rollout(&fleet, &policy(1, 0), &[]);
    r.step(secs(0));
    assert!(
        !r.observe(
            secs(1),
            Event::Applied {
                cluster: "b".into()
            }
        ),
        "not applying"
    );
    assert!(!r.observe(
        secs(1),
        Event::Applied {
            cluster: "nope".into()
        }
    ));
    assert!(!r.observe(
        secs(1),
        Event::RolledBack {
            cluster: "a".into()
        }
    ));
    // A Healthy report before the apply succeeded does not count.
    health(&mut r, secs(1), "a", Healthy);
    assert!(r.step(secs(1)).is_empty());
    assert_eq!(r.in_flight(), 1);
}

#[test]
fn an_empty_fleet_succeeds_at_once() {
    let plan = plan_fleet([], &policy(1, 0)).expect("plans");
    let mut r = FleetRollout::new(&plan, RolloutConfig::from_plan(&plan, "v2"), []).expect("valid");
    assert_eq!(finished(&r.step(secs(0))), Some(&Outcome::Succeeded));
}

#[test]
fn a_rollback_never_goes_to_a_quarantined_revision() {
    let fleet = [("a", Some(1)), ("b", Some(1))];
    let plan = plan_fleet(fleet.iter().copied(), &policy(2, 0)).expect("plans");
    let mut config = RolloutConfig::from_plan(&plan, "v2");
    // a's last good revision v1.5 was quarantined after it was recorded.
    config.quarantined.insert("v1.5".into());
    let starts = [
        ("a".to_string(), start(Some("v1"), Some("v1.5"), Healthy)),
        ("b".to_string(), start(Some("v1"), Some("v1"), Healthy)),
    ];
    let mut r = FleetRollout::new(&plan, config, starts).expect("valid");
    assert_eq!(applies(&r.step(secs(0))), ["a", "b"]);
    assert!(r.observe(
        secs(1),
        Event::ApplyFailed {
            cluster: "b".into(),
            message: "boom".into()
        }
    ));
    let cmds = r.step(secs(1));
    assert_eq!(rollbacks(&cmds), [("b", Some("v1")), ("a", None)]);
    rolled_back(&mut r, secs(2), "b");
    let Some(Outcome::RolledBack { not_restored, .. }) = finished(&r.step(secs(2))).cloned() else {
        panic!("finished");
    };
    assert_eq!(not_restored.len(), 1);
    assert_eq!(not_restored[0].cluster, "a");
    assert!(
        not_restored[0].reason.contains("quarantined"),
        "{}",
        not_restored[0].reason
    );
    // Only a revision that completed its rollout becomes a last good one.
    assert_eq!(
        r.last_good_after(),
        Some(vec![
            ("a".to_string(), Some("v1.5".to_string())),
            ("b".to_string(), Some("v1".to_string()))
        ])
    );
}

#[test]
fn a_first_deploy_is_removed_again_when_it_fails() {
    let fleet = [("a", Some(1)), ("b", Some(2))];
    let starts = [
        ("a", start(None, None, Healthy)),
        ("b", start(None, None, Healthy)),
    ];
    let mut slow = policy(1, 0);
    slow.bake_time = tidegate_core::duration::GoDuration(secs(600));
    let mut r = rollout(&fleet, &slow, &starts);
    assert_eq!(applies(&r.step(secs(0))), ["a"]);
    converge(&mut r, secs(1), "a");
    r.step(secs(1));
    health(&mut r, secs(2), "a", Degraded);
    let cmds = r.step(secs(2));
    assert_eq!(
        cmds,
        [Command::Remove {
            cluster: "a".into()
        }]
    );
    assert!(r.observe(
        secs(3),
        Event::RolledBack {
            cluster: "a".into()
        }
    ));
    // Reported done only once it is Healthy again (nothing left: Healthy).
    assert!(finished(&r.step(secs(3))).is_none());
    health(&mut r, secs(4), "a", Healthy);
    assert!(matches!(
        finished(&r.step(secs(4))),
        Some(Outcome::RolledBack { not_restored, .. }) if not_restored.is_empty()
    ));
}

#[test]
fn a_rolled_back_cluster_that_stays_unhealthy_is_reported_not_restored() {
    let fleet = [("a", Some(1))];
    let mut r = rollout(&fleet, &policy(1, 1), &[]);
    r.step(secs(0));
    assert!(r.observe(
        secs(1),
        Event::ApplyFailed {
            cluster: "a".into(),
            message: "boom".into()
        }
    ));
    r.step(secs(1));
    assert!(r.observe(
        secs(2),
        Event::RolledBack {
            cluster: "a".into()
        }
    ));
    health(&mut r, secs(3), "a", Degraded);
    assert!(r.step(secs(300)).is_empty());
    let cmds = r.step(secs(603));
    let Some(Outcome::RolledBack { not_restored, .. }) = finished(&cmds) else {
        panic!("{cmds:?}");
    };
    assert!(
        not_restored[0].reason.contains("not Healthy"),
        "{}",
        not_restored[0].reason
    );
}

#[test]
fn clusters_being_applied_read_missing_without_counting_as_unavailable() {
    // docs/rollouts.md's 10-cluster fleet: maxSurge 25% (3), maxUnavailable
    // 10% (1); a first deploy's objects read Missing until created.
    let fleet: Vec<(String, Option<u32>)> = (0..10)
        .map(|i| (format!("c{i}"), Some(if i == 0 { 1 } else { 2 })))
        .collect();
    let rollout_policy = Rollout {
        max_surge: IntOrPercent::Percent(25),
        max_unavailable: IntOrPercent::Percent(10),
        ..Rollout::default()
    };
    let plan =
        plan_fleet(fleet.iter().map(|(n, w)| (n.as_str(), *w)), &rollout_policy).expect("plans");
    let starts = fleet
        .iter()
        .map(|(n, _)| (n.clone(), start(None, None, Healthy)));
    let mut r =
        FleetRollout::new(&plan, RolloutConfig::from_plan(&plan, "v2"), starts).expect("valid");
    let mut now = secs(0);
    let mut done = None;
    while done.is_none() && now < secs(3600) {
        let cmds = r.step(now);
        done = finished(&cmds).cloned();
        for c in applies(&cmds) {
            health(&mut r, now, c, Missing);
            assert!(r.observe(now, Event::Applied { cluster: c.into() }));
            health(&mut r, now, c, Progressing);
        }
        for v in r
            .clusters()
            .map(|v| (v.name.to_string(), v.progress))
            .collect::<Vec<_>>()
        {
            if v.1 == ClusterProgress::Progressing {
                health(&mut r, now, &v.0, Healthy);
            }
        }
        now += secs(1);
    }
    assert_eq!(done, Some(Outcome::Succeeded));
}

#[test]
fn drifted_clusters_at_the_target_are_applied_and_a_wave_without_changes_has_no_bake() {
    let fleet = [("a", Some(1)), ("b", Some(2))];
    let mut drifted = start(Some("v2"), Some("v2"), Healthy);
    drifted.drifted = true;
    let starts = [
        ("a", start(Some("v2"), Some("v2"), Healthy)),
        ("b", drifted),
    ];
    let mut slow = policy(1, 0);
    slow.bake_time = tidegate_core::duration::GoDuration(secs(600));
    let mut r = rollout(&fleet, &slow, &starts);
    // Wave 1 (a) changes nothing: no bake; wave 2 applies the drifted b at once.
    assert_eq!(applies(&r.step(secs(0))), ["b"]);
    converge(&mut r, secs(1), "b");
    assert!(finished(&r.step(secs(2))).is_none(), "b's wave bakes");
    assert!(finished(&r.step(secs(601))).is_none());
    assert_eq!(finished(&r.step(secs(602))), Some(&Outcome::Succeeded));

    // Nothing drifted, nothing new: done in the first step, no bake at all.
    let starts = [
        ("a", start(Some("v2"), Some("v2"), Healthy)),
        ("b", start(Some("v2"), Some("v2"), Healthy)),
    ];
    let mut r = rollout(&fleet, &slow, &starts);
    assert_eq!(finished(&r.step(secs(0))), Some(&Outcome::Succeeded));
}

#[test]
fn a_resumed_bake_counts_only_observed_time() {
    let fleet = [("a", Some(1)), ("b", Some(2))];
    let mut slow = policy(1, 0);
    slow.bake_time = tidegate_core::duration::GoDuration(secs(20));
    let mut r = rollout(&fleet, &slow, &[]);
    r.step(secs(0));
    converge(&mut r, secs(1), "a");
    r.step(secs(1)); // bake starts at 1 s
    // Killed at 2 s, resumed at 32 s: the bake restarts from 32 s.
    let journal = serde_json::to_string(&r).expect("journal");
    let mut resumed: FleetRollout = serde_json::from_str(&journal).expect("load");
    resumed.resume(secs(32));
    assert!(applies(&resumed.step(secs(33))).is_empty(), "not baked yet");
    assert!(applies(&resumed.step(secs(51))).is_empty());
    assert_eq!(applies(&resumed.step(secs(52))), ["b"]);
}

#[test]
fn a_cluster_that_already_ran_the_failed_revision_is_rolled_back_too() {
    // b was moved to v2 by hand (a single-cluster sync) before the rollout:
    // skipped, but v2 never completed a rollout there (its last good is v1).
    let fleet = [("a", Some(1)), ("b", Some(2))];
    let starts = [("b", start(Some("v2"), Some("v1"), Healthy))];
    let mut r = rollout(&fleet, &policy(1, 0), &starts);
    assert_eq!(applies(&r.step(secs(0))), ["a"]);
    assert!(r.observe(
        secs(1),
        Event::ApplyFailed {
            cluster: "a".into(),
            message: "boom".into()
        }
    ));
    // v2 is quarantined: neither a (touched) nor b (runs v2) stays on it.
    assert_eq!(rollbacks(&r.step(secs(1))), [("b", Some("v1"))]);
    rolled_back(&mut r, secs(2), "b");
    assert_eq!(rollbacks(&r.step(secs(2))), [("a", Some("v1"))]);
}

#[test]
fn a_failed_gate_of_a_changed_cluster_fails_the_wave_before_its_deadline() {
    let mut r = ten_clusters(FailurePolicy::Rollback);
    assert_eq!(applies(&r.step(secs(0))), ["c0"]);
    // Not applied yet: a gate verdict about it means nothing.
    let early = Event::GateFailed {
        cluster: "c0".into(),
        message: "early".into(),
    };
    assert!(!r.observe(secs(1), early));
    assert!(r.observe(
        secs(2),
        Event::Applied {
            cluster: "c0".into()
        }
    ));
    // A cluster of a later wave is not judged.
    let later = Event::GateFailed {
        cluster: "c5".into(),
        message: "not its turn".into(),
    };
    assert!(!r.observe(secs(3), later));
    health(&mut r, secs(4), "c0", Progressing); // one unavailable would be allowed
    r.drain_transitions();
    let message = "pod web-1 container web: CrashLoopBackOff".to_string();
    assert!(r.observe(
        secs(5),
        Event::GateFailed {
            cluster: "c0".into(),
            message: message.clone(),
        }
    ));
    let failure = Failure::ClusterGate {
        cluster: "c0".into(),
        message,
    };
    assert_eq!(r.failure(), Some(&failure));
    assert!(
        failure
            .to_string()
            .contains("cluster c0 failed its gate: pod web-1")
    );
    assert_eq!(rollbacks(&r.step(secs(5))), [("c0", Some("v1"))]);
    rolled_back(&mut r, secs(8), "c0");
    assert_eq!(
        finished(&r.step(secs(8))),
        Some(&Outcome::RolledBack {
            failure,
            not_restored: vec![]
        })
    );
}
