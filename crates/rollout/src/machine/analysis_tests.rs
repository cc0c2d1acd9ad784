//! Metric analyses as part of a wave's gate.

use super::*;
use crate::analysis::{ClusterResult, Sample, Status, Verdict};
use crate::plan::plan_fleet;
use tidegate_core::{duration::GoDuration, environment::Rollout};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `canary` in wave 1, `west` and `central` in wave 2; bake 10 s; analyses on.
fn rollout() -> FleetRollout {
    let policy = Rollout {
        bake_time: GoDuration(secs(10)),
        ..Rollout::default()
    };
    let fleet = [("canary", Some(1)), ("west", Some(2)), ("central", Some(2))];
    let plan = plan_fleet(fleet, &policy).expect("plans");
    let start = ClusterStart {
        current_revision: Some("v1".into()),
        last_good_revision: Some("v1".into()),
        health: HealthStatus::Healthy,
        drifted: false,
        unknown_state: false,
    };
    let config = RolloutConfig {
        analysis: true,
        ..RolloutConfig::from_plan(&plan, "v2")
    };
    FleetRollout::new(
        &plan,
        config,
        fleet.map(|(c, _)| (c.to_string(), start.clone())),
    )
    .expect("valid")
}

fn report(cluster: &str, status: Status) -> AnalysisReport {
    let verdict = match status {
        Status::Failed => Verdict::Failed,
        _ => Verdict::Passed,
    };
    AnalysisReport {
        results: vec![ClusterResult {
            analysis: "error-rate".into(),
            cluster: cluster.into(),
            samples: vec![Sample {
                value: Some("0.2".into()),
                baseline_median: Some("0.01".into()),
                verdict,
                reason: None,
            }],
            status,
        }],
        baseline: vec!["west".into(), "central".into()],
    }
}

/// Applies wave 1 and reports it Healthy at `now`; returns the commands of
/// the step that starts its bake.
fn wave_one_healthy(r: &mut FleetRollout, now: Duration) -> Vec<Command> {
    let cmds = r.step(now);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Apply { cluster, .. } if cluster == "canary"))
    );
    r.observe(
        now,
        Event::Applied {
            cluster: "canary".into(),
        },
    );
    r.observe(
        now,
        Event::Health {
            cluster: "canary".into(),
            status: HealthStatus::Healthy,
        },
    );
    r.step(now)
}

fn analyze_commands(cmds: &[Command]) -> Vec<&Command> {
    cmds.iter()
        .filter(|c| matches!(c, Command::Analyze { .. }))
        .collect()
}

#[test]
fn the_bake_asks_for_the_analysis_of_the_wave_against_the_clusters_still_on_the_old_revision() {
    let mut r = rollout();
    let cmds = wave_one_healthy(&mut r, secs(0));
    assert_eq!(
        analyze_commands(&cmds),
        [&Command::Analyze {
            wave: 1,
            clusters: vec!["canary".into()],
            baseline: vec!["west".into(), "central".into()],
        }]
    );
    // Asked once.
    assert!(analyze_commands(&r.step(secs(1))).is_empty());
}

#[test]
fn the_gate_waits_for_the_analysis_after_the_bake_and_passes_with_it() {
    let mut r = rollout();
    wave_one_healthy(&mut r, secs(0));
    // The bake is over, the analysis is not: wave 2 does not start.
    let cmds = r.step(secs(30));
    assert!(
        cmds.iter().all(|c| !matches!(c, Command::Apply { .. })),
        "{cmds:?}"
    );
    assert_eq!(r.current_wave(), Some(1));
    // A report for another wave is ignored.
    assert!(!r.observe(
        secs(31),
        Event::Analyzed {
            wave: 2,
            report: report("canary", Status::Passed)
        }
    ));
    assert!(r.observe(
        secs(31),
        Event::Analyzed {
            wave: 1,
            report: report("canary", Status::Passed)
        }
    ));
    // A repeated one too.
    assert!(!r.observe(
        secs(31),
        Event::Analyzed {
            wave: 1,
            report: report("canary", Status::Passed)
        }
    ));
    let cmds = r.step(secs(31));
    assert_eq!(r.current_wave(), Some(2));
    assert_eq!(
        cmds.iter()
            .filter(|c| matches!(c, Command::Apply { .. }))
            .count(),
        1
    );
    let kinds: Vec<&str> = r
        .drain_transitions()
        .iter()
        .map(|t| t.kind.action())
        .collect();
    assert_eq!(
        kinds,
        [
            "rollout-start",
            "wave-start",
            "analysis",
            "gate-passed",
            "wave-start"
        ]
    );
}

#[test]
fn an_analysis_that_passes_before_the_bake_ends_still_waits_for_the_bake() {
    let mut r = rollout();
    wave_one_healthy(&mut r, secs(0));
    r.observe(
        secs(2),
        Event::Analyzed {
            wave: 1,
            report: report("canary", Status::Passed),
        },
    );
    r.step(secs(5));
    assert_eq!(r.current_wave(), Some(1));
    r.step(secs(10));
    assert_eq!(r.current_wave(), Some(2));
}

#[test]
fn a_failed_analysis_fails_the_gate_and_rolls_the_wave_back_while_it_is_healthy() {
    let mut r = rollout();
    wave_one_healthy(&mut r, secs(0));
    r.observe(
        secs(4),
        Event::Analyzed {
            wave: 1,
            report: report("canary", Status::Failed),
        },
    );
    let cmds = r.step(secs(4));
    assert_eq!(
        cmds,
        [Command::Rollback {
            cluster: "canary".into(),
            to: Some("v1".into())
        }]
    );
    let failure = Failure::AnalysisFailed {
        analysis: "error-rate".into(),
        cluster: "canary".into(),
        reason: "1 of 1 measurements failed the condition".into(),
    };
    assert_eq!(r.failure(), Some(&failure));
    assert_eq!(
        failure.to_string(),
        "analysis error-rate failed in cluster canary: 1 of 1 measurements failed the condition"
    );
    let transitions = r.drain_transitions();
    let analysis = transitions.iter().find_map(|t| match &t.kind {
        TransitionKind::Analysis { wave, report } => Some((*wave, report.clone())),
        _ => None,
    });
    assert_eq!(analysis, Some((1, report("canary", Status::Failed))));
    assert!(
        transitions
            .iter()
            .any(|t| matches!(&t.kind, TransitionKind::Quarantine { .. }))
    );
}

#[test]
fn a_resumed_bake_asks_for_the_analysis_again() {
    let mut r = rollout();
    wave_one_healthy(&mut r, secs(0));
    let journal = serde_json::to_string(&r).expect("serializes");
    let mut resumed: FleetRollout = serde_json::from_str(&journal).expect("deserializes");
    resumed.resume(secs(100));
    assert_eq!(analyze_commands(&resumed.outstanding()).len(), 1);
    resumed.observe(
        secs(100),
        Event::Analyzed {
            wave: 1,
            report: report("canary", Status::Passed),
        },
    );
    assert!(analyze_commands(&resumed.outstanding()).is_empty());
    resumed.step(secs(110));
    assert_eq!(resumed.current_wave(), Some(2));
}

#[test]
fn without_analyses_nothing_is_asked_and_old_journals_still_load() {
    let mut r = rollout();
    let mut json: serde_json::Value = serde_json::to_value(&r).expect("serializes");
    // A journal written before analyses existed.
    for key in ["analysisRequested", "analysisPassed"] {
        json.as_object_mut().map(|o| o.remove(key));
    }
    json["config"].as_object_mut().map(|o| o.remove("analysis"));
    let mut old: FleetRollout = serde_json::from_value(json).expect("loads");
    assert!(!old.config().analysis);
    let cmds = wave_one_healthy(&mut old, secs(0));
    assert!(analyze_commands(&cmds).is_empty());
    old.step(secs(10));
    assert_eq!(old.current_wave(), Some(2));
    // The rollout with analyses, unchanged, still waits.
    wave_one_healthy(&mut r, secs(0));
    r.step(secs(10));
    assert_eq!(r.current_wave(), Some(1));
}
