//! A deterministic fleet history for tests, benchmarks and demos: rollouts
//! in waves over three clusters, failures rolled back, blue/green switches,
//! drift corrected, and one operation left interrupted at the end.

use crate::entry::{
    Action, Actor, Change, Entry, ObjectRef, ObjectsChanged, Outcome, Revision, SelectorChange,
    Trigger,
};
use crate::{AuditError, AuditSink};
use std::collections::BTreeMap;

/// Clusters of the fixture's `prod` environment, with their wave.
pub const CLUSTERS: [(&str, u32); 3] = [
    ("eks-us-east-1", 1),
    ("aks-westeurope", 2),
    ("gke-us-central1", 2),
];

/// What [`fleet_log`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FleetLog {
    /// Entries written.
    pub entries: u64,
    /// Rollouts begun (one `rollout-start` intent each).
    pub rollouts: u64,
    /// Rollbacks.
    pub rollbacks: u64,
    /// Interrupted operations.
    pub interrupted: u64,
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn sha(n: u64) -> String {
    let mut s = String::new();
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    while s.len() < 40 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        s.push_str(&format!("{:016x}", x));
    }
    s.truncate(40);
    s
}

/// Writes `rollouts` rollouts of `gin-app` to `prod`, one every
/// `spacing_ms` from `start_ms`, through `sink`. Every fourth rollout fails
/// its canary gate and is rolled back; every third is followed by a
/// blue/green switch; every fifth by drift detected and corrected. The last
/// rollout is left without an outcome (interrupted) when `interrupt_last`.
pub fn fleet_log(
    sink: &dyn AuditSink,
    start_ms: i64,
    spacing_ms: i64,
    rollouts: u64,
    interrupt_last: bool,
) -> Result<FleetLog, AuditError> {
    let mut rng = Lcg(42);
    let mut out = FleetLog::default();
    let person = Actor::new("alice@laptop", Trigger::Cli);
    let controller = Actor::new(
        "system:serviceaccount:tidegate:controller",
        Trigger::ControllerPoll,
    );
    let mut current = Revision {
        sha: sha(0),
        time_ms: Some(start_ms - 86_400_000),
        author: Some("Alice <alice@example.com>".into()),
    };
    let mut color_blue = true;
    for i in 0..rollouts {
        let t0 = start_ms + i as i64 * spacing_ms;
        let lead = 600_000 + (rng.next() % 7_200_000) as i64;
        let target = Revision {
            sha: sha(i + 1),
            time_ms: Some(t0 - lead),
            author: Some(if i % 2 == 0 {
                "Alice <alice@example.com>".into()
            } else {
                "Bob <bob@example.com>".into()
            }),
        };
        let actor = if i % 3 == 0 { &person } else { &controller };
        let digest = format!("sha256:{}{}", sha(i + 1000), &sha(i + 2000)[..24]);
        let op = sink.begin_operation(
            Entry::new(actor.clone(), Action::RolloutStart)
                .env("prod")
                .app("gin-app")
                .revisions(Some(current.clone()), Some(target.clone()))
                .at(t0),
        )?;
        out.rollouts += 1;
        out.entries += 1;
        let last = i + 1 == rollouts;
        let fails = i % 4 == 3;
        let mut t = t0;
        let mut steps = Vec::new();
        for wave in [1u32, 2] {
            t += 1_000;
            let mut e = Entry::new(actor.clone(), Action::WaveStart)
                .env("prod")
                .app("gin-app")
                .at(t);
            e.details.insert("wave".into(), wave.to_string());
            steps.push(e);
            for (cluster, _) in CLUSTERS.iter().filter(|(_, w)| *w == wave) {
                t += 2_000 + (rng.next() % 20_000) as i64;
                let refs = vec![
                    ObjectRef {
                        change: Change::Updated,
                        group: "apps".into(),
                        kind: "Deployment".into(),
                        namespace: Some("gin-app".into()),
                        name: if color_blue {
                            "gin-app-green"
                        } else {
                            "gin-app-blue"
                        }
                        .into(),
                    },
                    ObjectRef {
                        change: Change::Updated,
                        group: String::new(),
                        kind: "ConfigMap".into(),
                        namespace: Some("gin-app".into()),
                        name: "gin-app-config".into(),
                    },
                ];
                let mut apply = Entry::new(actor.clone(), Action::Apply)
                    .env("prod")
                    .cluster(*cluster)
                    .app("gin-app")
                    .revisions(Some(current.clone()), Some(target.clone()))
                    .outcome(Outcome::Success)
                    .at(t);
                apply.manifest_digest = Some(digest.clone());
                apply.objects = Some(ObjectsChanged::from_refs(refs));
                apply.duration_ms = Some(1_500 + rng.next() % 3_000);
                steps.push(apply);
                t += 60_000;
                let gate_failed = fails && wave == 1;
                let mut gate = Entry::new(
                    actor.clone(),
                    if gate_failed {
                        Action::GateFailed
                    } else {
                        Action::GatePassed
                    },
                )
                .env("prod")
                .cluster(*cluster)
                .app("gin-app")
                .outcome(if gate_failed {
                    Outcome::Failure
                } else {
                    Outcome::Success
                })
                .at(t);
                gate.details.insert("gate".into(), "health+bake".into());
                if gate_failed {
                    gate.message = Some(
                        "Deployment gin-app-green: 2/3 replicas ready after 5m (progressDeadline)"
                            .into(),
                    );
                }
                steps.push(gate);
            }
            if fails {
                break;
            }
        }
        out.entries += steps.len() as u64;
        sink.record_batch(op, steps)?;
        if last && interrupt_last {
            out.interrupted += 1;
            break;
        }
        t += 5_000;
        if fails {
            sink.finish_operation(
                op,
                Entry::new(actor.clone(), Action::RolloutEnd)
                    .outcome(Outcome::Failure)
                    .message("canary gate failed on eks-us-east-1; rolling back")
                    .at(t),
            )?;
            t += 2_000;
            let rb = sink.begin_operation(
                Entry::new(controller.clone(), Action::Rollback)
                    .env("prod")
                    .cluster("eks-us-east-1")
                    .app("gin-app")
                    .revisions(Some(target.clone()), Some(current.clone()))
                    .message("failurePolicy: rollback")
                    .at(t),
            )?;
            t += 30_000;
            sink.finish_operation(
                rb,
                Entry::new(controller.clone(), Action::Rollback)
                    .outcome(Outcome::Success)
                    .at(t),
            )?;
            out.rollbacks += 1;
            out.entries += 3;
        } else {
            sink.finish_operation(
                op,
                Entry::new(actor.clone(), Action::RolloutEnd)
                    .outcome(Outcome::Success)
                    .message("all clusters Healthy")
                    .at(t),
            )?;
            out.entries += 1;
            current = target;
            if i % 3 == 2 {
                for (cluster, _) in CLUSTERS {
                    t += 3_000;
                    let (before, after) = if color_blue {
                        ("blue", "green")
                    } else {
                        ("green", "blue")
                    };
                    let mut e = Entry::new(actor.clone(), Action::Switch)
                        .env("prod")
                        .cluster(cluster)
                        .app("gin-app")
                        .revisions(None, Some(current.clone()))
                        .at(t);
                    e.selector = Some(SelectorChange {
                        service: "gin-app".into(),
                        before: BTreeMap::from([("version".into(), before.into())]),
                        after: BTreeMap::from([("version".into(), after.into())]),
                    });
                    let sw = sink.begin_operation(e)?;
                    t += 1_000;
                    sink.finish_operation(
                        sw,
                        Entry::new(actor.clone(), Action::Switch)
                            .outcome(Outcome::Success)
                            .at(t),
                    )?;
                    out.entries += 2;
                }
                color_blue = !color_blue;
            }
        }
        if i % 5 == 4 {
            t += 600_000;
            let drift = Actor::new("system:serviceaccount:tidegate:controller", Trigger::Drift);
            let mut e = Entry::new(drift.clone(), Action::DriftDetected)
                .env("prod")
                .cluster("aks-westeurope")
                .app("gin-app")
                .message("ConfigMap gin-app/gin-app-config differs from Git")
                .at(t);
            e.objects = Some(ObjectsChanged::from_refs(vec![ObjectRef {
                change: Change::Unchanged,
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: Some("gin-app".into()),
                name: "gin-app-config".into(),
            }]));
            sink.append(e)?;
            t += 1_000;
            let dc = sink.begin_operation(
                Entry::new(drift.clone(), Action::DriftCorrected)
                    .env("prod")
                    .cluster("aks-westeurope")
                    .app("gin-app")
                    .revisions(None, Some(current.clone()))
                    .at(t),
            )?;
            t += 2_000;
            sink.finish_operation(
                dc,
                Entry::new(drift, Action::DriftCorrected)
                    .outcome(Outcome::Success)
                    .at(t),
            )?;
            out.entries += 3;
        }
    }
    Ok(out)
}
