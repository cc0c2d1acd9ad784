//! Property test across many operations on one fleet: rollouts of several
//! revisions (succeeding, failing, rolled back or halted, some resumed from
//! their journal part-way) and single-cluster syncs, in any order. The world
//! keeps what each cluster runs, its recorded last good revision and the
//! quarantine list, updated only through the rules the engine uses
//! ([`FleetRollout::last_good_after`], [`crate::quarantine`]).
//!
//! Checked after every call:
//! - no command ever moves a cluster to a quarantined revision, unless the
//!   operation explicitly allowed that revision;
//! - at most `maxSurge` (the in-flight limit) clusters are ever off their
//!   last good revision without having been seen Healthy where they are,
//!   counting both the rollout's applies and its rollbacks;
//! - a last good revision is never a quarantined one;
//! - after a rollout that was rolled back, every cluster runs its last good
//!   revision (or nothing, for a first deploy), was moved by hand before, or
//!   is reported as not restored.

use super::*;
use crate::plan::plan_fleet;
use crate::quarantine::{Admission, admit, records_healthy};
use HealthStatus::{Degraded, Healthy, Missing, Progressing, Unknown};
use proptest::prelude::*;
use std::collections::BTreeMap;
use tidegate_core::duration::GoDuration;
use tidegate_core::environment::Rollout;
use tidegate_core::intorpercent::IntOrPercent;

const REVISIONS: [&str; 4] = ["r1", "r2", "r3", "r4"];

#[derive(Debug, Clone)]
enum Ev {
    Tick(u8),
    /// Answer the oldest command of a cluster: ok or failed.
    Deliver(u8, bool),
    Health(u8, HealthStatus),
}

#[derive(Debug, Clone)]
enum Op {
    Rollout {
        revision: u8,
        allow: bool,
        script: Vec<Ev>,
        /// Journal the machine and continue from the copy at this event.
        resume_at: usize,
    },
    ClusterSync {
        cluster: u8,
        revision: u8,
        allow: bool,
        healthy: bool,
    },
}

#[derive(Debug, Clone)]
struct Scenario {
    waves: Vec<Option<u32>>,
    max_surge: IntOrPercent,
    max_unavailable: IntOrPercent,
    policy: FailurePolicy,
    ops: Vec<Op>,
}

fn status() -> impl Strategy<Value = HealthStatus> {
    prop_oneof![
        6 => Just(Healthy),
        2 => Just(Progressing),
        2 => Just(Missing),
        1 => Just(Degraded),
        1 => Just(Unknown),
    ]
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        2 => (1u8..20).prop_map(Ev::Tick),
        5 => (any::<u8>(), prop::bool::weighted(0.85)).prop_map(|(c, ok)| Ev::Deliver(c, ok)),
        5 => (any::<u8>(), status()).prop_map(|(c, s)| Ev::Health(c, s)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4, prop::bool::weighted(0.2), prop::collection::vec(ev(), 0..80), 0usize..80)
            .prop_map(|(revision, allow, script, resume_at)| Op::Rollout { revision, allow, script, resume_at }),
        1 => (any::<u8>(), 0u8..4, prop::bool::weighted(0.3), any::<bool>())
            .prop_map(|(cluster, revision, allow, healthy)| Op::ClusterSync { cluster, revision, allow, healthy }),
    ]
}

fn limit() -> impl Strategy<Value = IntOrPercent> {
    prop_oneof![
        (0u32..4).prop_map(IntOrPercent::Int),
        (0u32..=100).prop_map(IntOrPercent::Percent),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(prop::option::weighted(0.6, 1u32..4), 1..=8),
        limit(),
        limit(),
        prop_oneof![3 => Just(FailurePolicy::Rollback), 1 => Just(FailurePolicy::Halt)],
        prop::collection::vec(op(), 1..8),
    )
        .prop_map(
            |(waves, max_surge, max_unavailable, policy, ops)| Scenario {
                waves,
                max_surge,
                max_unavailable,
                policy,
                ops,
            },
        )
}

/// The fleet between and during operations.
struct World {
    names: Vec<String>,
    index: BTreeMap<String, usize>,
    /// What each cluster runs.
    running: Vec<Option<String>>,
    /// Its recorded last good revision.
    last_good: Vec<Option<String>>,
    health: Vec<HealthStatus>,
    /// Seen Healthy since it last changed.
    verified: Vec<bool>,
    /// Moved by a single-cluster sync (outside any rollout).
    by_hand: Vec<bool>,
    quarantined: BTreeSet<String>,
}

impl World {
    /// A last good revision is recorded only when it is not quarantined
    /// (it may be quarantined later: then no rollback goes to it).
    fn record_last_good(&mut self, i: usize, good: Option<String>) {
        if good != self.last_good[i]
            && let Some(g) = &good
        {
            assert!(
                !self.quarantined.contains(g),
                "{} records quarantined {g} as its last good revision",
                self.names[i]
            );
        }
        self.last_good[i] = good;
    }

    fn unverified_changes(&self, changed: &[bool]) -> usize {
        (0..self.names.len())
            .filter(|&i| changed[i] && self.running[i] != self.last_good[i] && !self.verified[i])
            .count()
    }

    fn cluster_sync(&mut self, cluster: u8, revision: u8, allow: bool, healthy: bool) {
        let i = cluster as usize % self.names.len();
        let revision = REVISIONS[revision as usize % REVISIONS.len()].to_string();
        let Ok(admission) = admit(&revision, &self.quarantined, allow.then_some("by hand")) else {
            assert!(self.quarantined.contains(&revision));
            return;
        };
        if admission == Admission::Clear {
            assert!(!self.quarantined.contains(&revision));
        }
        self.running[i] = Some(revision.clone());
        self.by_hand[i] = true;
        self.verified[i] = healthy;
        self.health[i] = if healthy { Healthy } else { Progressing };
        if healthy && records_healthy(&revision, &self.quarantined) {
            self.record_last_good(i, Some(revision));
        }
    }

    fn rollout(
        &mut self,
        s: &Scenario,
        revision: u8,
        allow: bool,
        script: &[Ev],
        resume_at: usize,
    ) {
        let target = REVISIONS[revision as usize % REVISIONS.len()].to_string();
        let allowed = match admit(&target, &self.quarantined, allow.then_some("by hand")) {
            Ok(Admission::Clear) => false,
            Ok(Admission::Allowed { .. }) => true,
            Err(_) => return,
        };
        let policy = Rollout {
            max_surge: s.max_surge,
            max_unavailable: s.max_unavailable,
            progress_deadline: GoDuration(Duration::from_secs(30)),
            bake_time: GoDuration(Duration::from_secs(5)),
            failure_policy: s.policy,
            ..Rollout::default()
        };
        let Ok(plan) = plan_fleet(
            self.names
                .iter()
                .map(String::as_str)
                .zip(s.waves.iter().copied()),
            &policy,
        ) else {
            return;
        };
        let limit = plan.max_in_flight as usize;
        let starts: Vec<(String, ClusterStart)> = (0..self.names.len())
            .map(|i| {
                (
                    self.names[i].clone(),
                    ClusterStart {
                        current_revision: self.running[i].clone(),
                        last_good_revision: self.last_good[i].clone(),
                        health: self.health[i],
                        drifted: false,
                        unknown_state: false,
                    },
                )
            })
            .collect();
        let mut config = RolloutConfig::from_plan(&plan, target.clone());
        config.quarantined = self.quarantined.clone();
        let Ok(mut machine) = FleetRollout::new(&plan, config, starts) else {
            return;
        };
        let before = self.running.clone();
        let by_hand_before = self.by_hand.clone();
        let mut changed = vec![false; self.names.len()];
        let mut pending: Vec<Command> = Vec::new();
        let mut now = Duration::ZERO;
        let mut outcome = None;
        let quarantined_at_start = self.quarantined.clone();
        let run = |world: &mut World,
                   machine: &mut FleetRollout,
                   pending: &mut Vec<Command>,
                   now: Duration,
                   outcome: &mut Option<Outcome>| {
            for cmd in machine.step(now) {
                match &cmd {
                    Command::Apply { revision, .. } => {
                        assert_eq!(revision, &target);
                        assert!(
                            allowed || !quarantined_at_start.contains(revision),
                            "apply of quarantined {revision}"
                        );
                        pending.push(cmd);
                    }
                    Command::Rollback { to: Some(to), .. } => {
                        assert!(
                            !world.quarantined.contains(to) && *to != target,
                            "rollback to quarantined {to}"
                        );
                        pending.push(cmd);
                    }
                    Command::Remove { .. } => pending.push(cmd),
                    Command::Rollback { to: None, .. } | Command::AwaitApproval { .. } => {}
                    Command::Analyze { .. } => panic!("analysis requested without analyses"),
                    Command::Finished(o) => *outcome = Some(o.clone()),
                }
            }
            if machine.failure().is_some() {
                world.quarantined.insert(target.clone());
            }
        };
        let deliver = |world: &mut World,
                       machine: &mut FleetRollout,
                       pending: &mut Vec<Command>,
                       changed: &mut Vec<bool>,
                       pick: usize,
                       ok: bool,
                       now: Duration| {
            if pending.is_empty() {
                return;
            }
            // Commands of one cluster are answered in the order they were issued.
            let cluster_of = |c: &Command| match c {
                Command::Apply { cluster, .. }
                | Command::Rollback { cluster, .. }
                | Command::Remove { cluster } => Some(cluster.clone()),
                _ => None,
            };
            let Some(name) = cluster_of(&pending[pick % pending.len()]) else {
                return;
            };
            let Some(at) = pending
                .iter()
                .position(|c| cluster_of(c).as_ref() == Some(&name))
            else {
                return;
            };
            let cmd = pending.remove(at);
            let cluster = &name;
            let i = world.index[cluster];
            let event = match (&cmd, ok) {
                (Command::Apply { revision, .. }, true) => {
                    world.running[i] = Some(revision.clone());
                    Event::Applied {
                        cluster: cluster.clone(),
                    }
                }
                (Command::Rollback { to, .. }, true) => {
                    world.running[i] = to.clone();
                    Event::RolledBack {
                        cluster: cluster.clone(),
                    }
                }
                (Command::Remove { .. }, true) => {
                    world.running[i] = None;
                    Event::RolledBack {
                        cluster: cluster.clone(),
                    }
                }
                (Command::Apply { .. }, false) => Event::ApplyFailed {
                    cluster: cluster.clone(),
                    message: "simulated".into(),
                },
                _ => Event::RollbackFailed {
                    cluster: cluster.clone(),
                    message: "simulated".into(),
                },
            };
            if ok {
                changed[i] = true;
                world.verified[i] = false;
            }
            machine.observe(now, event);
        };
        run(self, &mut machine, &mut pending, now, &mut outcome);
        for (n, e) in script.iter().enumerate() {
            if n == resume_at {
                let journal = serde_json::to_string(&machine).expect("serializes");
                machine = serde_json::from_str(&journal).expect("deserializes");
                machine.resume(now);
                // Outstanding commands are executed again.
                pending = machine
                    .outstanding()
                    .into_iter()
                    .filter(|c| {
                        matches!(
                            c,
                            Command::Apply { .. }
                                | Command::Rollback { to: Some(_), .. }
                                | Command::Remove { .. }
                        )
                    })
                    .collect();
            }
            match e {
                Ev::Tick(t) => now += Duration::from_secs(u64::from(*t)),
                Ev::Deliver(p, ok) => deliver(
                    self,
                    &mut machine,
                    &mut pending,
                    &mut changed,
                    *p as usize,
                    *ok,
                    now,
                ),
                Ev::Health(c, status) => {
                    let i = *c as usize % self.names.len();
                    self.health[i] = *status;
                    if *status == Healthy {
                        self.verified[i] = true;
                    }
                    machine.observe(
                        now,
                        Event::Health {
                            cluster: self.names[i].clone(),
                            status: *status,
                        },
                    );
                }
            }
            run(self, &mut machine, &mut pending, now, &mut outcome);
            let off = self.unverified_changes(&changed);
            assert!(
                off <= limit,
                "{off} clusters off their last good revision, unverified (limit {limit})"
            );
        }
        // A cooperative engine to the end.
        for _ in 0..1000 {
            if outcome.is_some() {
                break;
            }
            while !pending.is_empty() {
                deliver(self, &mut machine, &mut pending, &mut changed, 0, true, now);
                let off = self.unverified_changes(&changed);
                assert!(
                    off <= limit,
                    "{off} off their last good revision (limit {limit})"
                );
            }
            for i in 0..self.names.len() {
                self.health[i] = Healthy;
                self.verified[i] = true;
                machine.observe(
                    now,
                    Event::Health {
                        cluster: self.names[i].clone(),
                        status: Healthy,
                    },
                );
            }
            now += Duration::from_secs(1);
            run(self, &mut machine, &mut pending, now, &mut outcome);
        }
        let outcome = outcome.expect("the rollout finished");
        let goods = machine.last_good_after().expect("finished");
        for (name, good) in goods {
            let i = self.index[&name];
            self.record_last_good(i, good);
        }
        if let Outcome::RolledBack { not_restored, .. } = &outcome {
            for i in 0..self.names.len() {
                let reported = not_restored.iter().any(|n| n.cluster == self.names[i]);
                let home = self.running[i] == self.last_good[i]
                    || (self.running[i].is_none() && before[i].is_none());
                assert!(
                    home || reported
                        || (by_hand_before[i] && !changed[i])
                        || self.running[i] == before[i] && !changed[i],
                    "{} runs {:?}, last good {:?}, not reported",
                    self.names[i],
                    self.running[i],
                    self.last_good[i]
                );
                if let Some(r) = &self.running[i] {
                    assert!(
                        !changed[i]
                            || reported
                            || !self.quarantined.contains(r)
                            || self.last_good[i].as_ref() == Some(r),
                        "{} left on quarantined {r}",
                        self.names[i]
                    );
                }
            }
        }
        for (by_hand, changed) in self.by_hand.iter_mut().zip(&changed) {
            if *changed {
                *by_hand = false;
            }
        }
    }
}

fn run(s: &Scenario) {
    let names: Vec<String> = (0..s.waves.len()).map(|i| format!("c{i}")).collect();
    let n = names.len();
    let mut world = World {
        index: names
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect(),
        names,
        running: vec![None; n],
        last_good: vec![None; n],
        health: vec![Healthy; n],
        verified: vec![true; n],
        by_hand: vec![false; n],
        quarantined: BTreeSet::new(),
    };
    for op in &s.ops {
        match op {
            Op::Rollout {
                revision,
                allow,
                script,
                resume_at,
            } => world.rollout(s, *revision, *allow, script, *resume_at),
            Op::ClusterSync {
                cluster,
                revision,
                allow,
                healthy,
            } => world.cluster_sync(*cluster, *revision, *allow, *healthy),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn no_quarantined_target_and_at_most_max_surge_off_the_last_good_revision(s in scenario()) {
        run(&s);
    }
}
