//! Property tests: random fleets, waves, limits, policies and event
//! sequences, driven through a simulated engine that checks the rollout
//! invariants after every call.

use super::*;
use crate::plan::plan_fleet;
use HealthStatus::{Degraded, Healthy, Missing, Progressing, Suspended, Unknown};
use proptest::prelude::*;
use std::collections::BTreeMap;
use tidegate_core::duration::GoDuration;
use tidegate_core::environment::{Located, Rollout, WavePolicy};
use tidegate_core::intorpercent::IntOrPercent;

const TARGET: &str = "v2";

#[derive(Debug, Clone)]
struct Init {
    wave: Option<u32>,
    revision: Option<String>,
    last_good: Option<String>,
    health: HealthStatus,
}

#[derive(Debug, Clone)]
enum Action {
    /// Advance the clock.
    Tick(u8),
    /// The engine finishes the oldest command of a cluster successfully.
    Deliver(u8),
    /// ... or with an error.
    Fail(u8),
    /// A health report for a cluster that was applied.
    HealthApplied(u8, HealthStatus),
    /// A health report for any cluster.
    HealthAny(u8, HealthStatus),
    /// An approval of a wave.
    Approve(u8),
}

#[derive(Debug, Clone)]
struct Scenario {
    fleet: Vec<Init>,
    max_surge: IntOrPercent,
    max_unavailable: IntOrPercent,
    policy: FailurePolicy,
    deadline: u64,
    bake: u64,
    approvals: Vec<u32>,
    script: Vec<Action>,
    twin_at: usize,
}

fn status() -> impl Strategy<Value = HealthStatus> {
    prop_oneof![
        6 => Just(Healthy),
        2 => Just(Progressing),
        1 => Just(Suspended),
        1 => Just(Missing),
        1 => Just(Degraded),
        1 => Just(Unknown),
    ]
}

fn initial_status() -> impl Strategy<Value = HealthStatus> {
    prop_oneof![30 => Just(Healthy), 1 => status()]
}

fn revision() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some("v0".to_string())),
        6 => Just(Some("v1".to_string())),
        2 => Just(Some(TARGET.to_string())),
    ]
}

fn limit() -> impl Strategy<Value = IntOrPercent> {
    prop_oneof![
        (0u32..6).prop_map(IntOrPercent::Int),
        (0u32..=100).prop_map(IntOrPercent::Percent),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (1u8..30).prop_map(Action::Tick),
        6 => any::<u8>().prop_map(Action::Deliver),
        1 => any::<u8>().prop_map(Action::Fail),
        6 => (any::<u8>(), status()).prop_map(|(c, s)| Action::HealthApplied(c, s)),
        2 => (any::<u8>(), status()).prop_map(|(c, s)| Action::HealthAny(c, s)),
        1 => any::<u8>().prop_map(Action::Approve),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let init = (
        prop::option::weighted(0.7, 1u32..5),
        revision(),
        revision(),
        initial_status(),
    )
        .prop_map(|(wave, revision, last_good, health)| Init {
            wave,
            revision,
            last_good,
            health,
        });
    (
        prop::collection::vec(init, 1..=40),
        limit(),
        limit(),
        prop_oneof![3 => Just(FailurePolicy::Rollback), 1 => Just(FailurePolicy::Halt)],
        5u64..90,
        prop_oneof![Just(0u64), 1u64..40],
        prop::collection::vec(1u32..8, 0..3),
        prop::collection::vec(action(), 0..300),
        0usize..300,
    )
        .prop_map(
            |(
                fleet,
                max_surge,
                max_unavailable,
                policy,
                deadline,
                bake,
                approvals,
                script,
                twin_at,
            )| {
                Scenario {
                    fleet,
                    max_surge,
                    max_unavailable,
                    policy,
                    deadline,
                    bake,
                    approvals,
                    script,
                    twin_at,
                }
            },
        )
}

/// The simulated engine and the world it changes.
struct Sim {
    machine: FleetRollout,
    /// A copy resumed from the journal mid-rollout, fed the same inputs.
    twin: Option<FleetRollout>,
    now: Duration,
    names: Vec<String>,
    index: BTreeMap<String, usize>,
    /// Wave index (in the plan) of each cluster.
    wave_of: Vec<usize>,
    wave_numbers: Vec<u32>,
    wave_members: Vec<Vec<usize>>,
    initial: Vec<Init>,
    /// The revision each cluster really runs.
    world: Vec<Option<String>>,
    /// The last health reported to the machine.
    health: Vec<HealthStatus>,
    applies: Vec<u32>,
    rollbacks: Vec<u32>,
    applied: Vec<bool>,
    reached: Vec<bool>,
    /// Commands issued and not answered, oldest first.
    pending: Vec<Command>,
    passed: BTreeSet<usize>,
    max_in_flight: usize,
    max_unavailable: usize,
    outcome: Option<Outcome>,
}

impl Sim {
    fn new(s: &Scenario) -> Option<Sim> {
        let names: Vec<String> = (0..s.fleet.len()).map(|i| format!("c{i}")).collect();
        let policy = Rollout {
            max_surge: s.max_surge,
            max_unavailable: s.max_unavailable,
            progress_deadline: GoDuration(Duration::from_secs(s.deadline)),
            bake_time: GoDuration(Duration::from_secs(s.bake)),
            failure_policy: s.policy,
            waves: s
                .approvals
                .iter()
                .map(|&wave| {
                    Located::new(WavePolicy {
                        wave,
                        approval: Approval::Required,
                    })
                })
                .collect(),
            deployment_strategy: None,
            ..Rollout::default()
        };
        let plan = plan_fleet(
            names
                .iter()
                .zip(&s.fleet)
                .map(|(n, i)| (n.as_str(), i.wave)),
            &policy,
        )
        .ok()?;
        let index: BTreeMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let mut wave_of = vec![0; names.len()];
        let mut wave_members = Vec::new();
        for (w, wave) in plan.waves.iter().enumerate() {
            let members: Vec<usize> = wave.clusters.iter().map(|c| index[c]).collect();
            for &m in &members {
                wave_of[m] = w;
            }
            wave_members.push(members);
        }
        let starts = names.iter().zip(&s.fleet).map(|(n, i)| {
            (
                n.clone(),
                ClusterStart {
                    current_revision: i.revision.clone(),
                    last_good_revision: i.last_good.clone(),
                    health: i.health,
                    drifted: false,
                    unknown_state: false,
                },
            )
        });
        let machine = FleetRollout::new(&plan, RolloutConfig::from_plan(&plan, TARGET), starts)
            .expect("a valid plan makes a valid rollout");
        let n = names.len();
        Some(Sim {
            machine,
            twin: None,
            now: Duration::ZERO,
            index,
            wave_of,
            wave_numbers: plan.waves.iter().map(|w| w.number).collect(),
            wave_members,
            initial: s.fleet.clone(),
            world: s.fleet.iter().map(|i| i.revision.clone()).collect(),
            health: s.fleet.iter().map(|i| i.health).collect(),
            applies: vec![0; n],
            rollbacks: vec![0; n],
            applied: vec![false; n],
            reached: vec![false; n],
            pending: Vec::new(),
            passed: BTreeSet::new(),
            max_in_flight: plan.max_in_flight as usize,
            max_unavailable: plan.max_unavailable as usize,
            outcome: None,
            names,
        })
    }

    fn forward(&self) -> bool {
        self.machine.failure().is_none() && !self.machine.is_finished()
    }

    fn step(&mut self) {
        let cmds = self.machine.step(self.now);
        if let Some(twin) = &mut self.twin {
            assert_eq!(twin.step(self.now), cmds, "resumed copy diverged");
        }
        let transitions = self.drain();
        for t in &transitions {
            if let TransitionKind::GatePassed { wave } = t.kind {
                let w = self
                    .wave_numbers
                    .iter()
                    .position(|&n| n == wave)
                    .expect("known wave");
                // Never past a wave that is not Healthy at the target.
                for &m in &self.wave_members[w] {
                    assert_eq!(
                        self.health[m], Healthy,
                        "gate passed with {} unhealthy",
                        self.names[m]
                    );
                    assert_eq!(
                        self.world[m].as_deref(),
                        Some(TARGET),
                        "gate passed with {} not at target",
                        self.names[m]
                    );
                }
                assert!(self.passed.insert(w), "gate passed twice");
            }
        }
        for cmd in cmds {
            match &cmd {
                Command::Apply { cluster, revision } => {
                    let i = self.index[cluster];
                    assert_eq!(revision, TARGET);
                    assert!(self.forward(), "apply after the rollout failed");
                    assert_eq!(self.applies[i], 0, "{cluster} moved forward twice");
                    self.applies[i] += 1;
                    for w in 0..self.wave_of[i] {
                        assert!(
                            self.passed.contains(&w),
                            "{cluster} applied before wave {w} passed"
                        );
                    }
                    self.pending.push(cmd);
                }
                Command::Rollback { cluster, to } => {
                    let i = self.index[cluster];
                    self.check_rollback(i);
                    // Never back to the failed (quarantined) revision.
                    let good = self.initial[i].last_good.clone().filter(|g| g != TARGET);
                    assert!(
                        to.is_none() || *to == good,
                        "{cluster} rolled back to {to:?}"
                    );
                    self.rollbacks[i] += 1;
                    if to.is_some() {
                        self.pending.push(cmd);
                    }
                }
                Command::Remove { cluster } => {
                    let i = self.index[cluster];
                    self.check_rollback(i);
                    assert!(
                        self.initial[i].revision.is_none(),
                        "{cluster} ran something before: never removed"
                    );
                    self.rollbacks[i] += 1;
                    self.pending.push(cmd);
                }
                Command::AwaitApproval { .. } => {}
                Command::Finished(outcome) => {
                    assert!(self.outcome.is_none(), "finished twice");
                    self.outcome = Some(outcome.clone());
                }
            }
        }
        self.check_limits();
    }

    /// A rollback goes only to a cluster this rollout touched, or one that
    /// already ran the failed revision without it being its last good one.
    fn check_rollback(&self, i: usize) {
        let ran_target = self.initial[i].revision.as_deref() == Some(TARGET)
            && self.initial[i].last_good.as_deref() != Some(TARGET);
        assert!(
            self.applies[i] == 1 || (self.applies[i] == 0 && ran_target),
            "{} rolled back but never touched",
            self.names[i]
        );
        assert_eq!(self.rollbacks[i], 0, "{} rolled back twice", self.names[i]);
    }

    /// Clusters counted against maxUnavailable: an in-flight cluster whose
    /// objects are not created yet (Missing) is progress, not unavailability.
    fn unavailable_count(&self) -> usize {
        (0..self.names.len())
            .filter(|&i| {
                is_unavailable(self.health[i])
                    && !(self.applies[i] > 0 && !self.reached[i] && self.health[i] == Missing)
            })
            .count()
    }

    fn drain(&mut self) -> Vec<Transition> {
        let t = self.machine.drain_transitions();
        if let Some(twin) = &mut self.twin {
            assert_eq!(twin.drain_transitions(), t, "resumed copy diverged");
        }
        t
    }

    fn observe(&mut self, event: Event) {
        let forward_before = self.forward() && self.passed.len() < self.wave_numbers.len();
        let accepted = self.machine.observe(self.now, event.clone());
        if let Some(twin) = &mut self.twin {
            assert_eq!(
                twin.observe(self.now, event.clone()),
                accepted,
                "resumed copy diverged"
            );
        }
        if let Event::Health { cluster, status } = &event {
            let i = self.index[cluster];
            self.health[i] = *status;
            if self.applied[i] && *status == Healthy {
                self.reached[i] = true;
            }
            let unavailable = self.unavailable_count();
            if forward_before && unavailable > self.max_unavailable {
                assert!(
                    self.machine.failure().is_some(),
                    "{unavailable} unavailable > {} without triggering the policy",
                    self.max_unavailable
                );
            }
        }
        self.check_limits();
    }

    fn check_limits(&self) {
        if self.forward() {
            // Exceeding maxUnavailable always triggers the policy, at once.
            let unavailable = self.unavailable_count();
            assert!(
                unavailable <= self.max_unavailable,
                "{unavailable} unavailable > {} and the rollout goes on",
                self.max_unavailable
            );
            let in_flight = (0..self.names.len())
                .filter(|&i| self.applies[i] > 0 && !self.reached[i])
                .count();
            assert!(in_flight <= self.max_in_flight, "{in_flight} in flight");
            assert_eq!(self.machine.in_flight(), in_flight);
        }
        let rolling = self
            .pending
            .iter()
            .filter(|c| matches!(c, Command::Rollback { .. }))
            .count();
        assert!(self.machine.rollbacks_in_flight() <= self.max_in_flight);
        assert!(rolling <= self.max_in_flight || !self.forward());
    }

    /// Answers the oldest outstanding command of the cluster of
    /// `pending[pick]` (commands of one cluster run in order).
    fn answer(&mut self, pick: u8, ok: bool) {
        if self.pending.is_empty() {
            return;
        }
        let name = match &self.pending[pick as usize % self.pending.len()] {
            Command::Apply { cluster, .. }
            | Command::Rollback { cluster, .. }
            | Command::Remove { cluster } => cluster.clone(),
            _ => return,
        };
        let at = self
            .pending
            .iter()
            .position(|c| matches!(c, Command::Apply { cluster, .. } | Command::Rollback { cluster, .. } | Command::Remove { cluster } if *cluster == name))
            .expect("present");
        let cmd = self.pending.remove(at);
        let i = self.index[&name];
        let event = match (cmd, ok) {
            (Command::Apply { cluster, revision }, true) => {
                self.world[i] = Some(revision);
                self.applied[i] = true;
                Event::Applied { cluster }
            }
            (Command::Apply { cluster, .. }, false) => Event::ApplyFailed {
                cluster,
                message: "simulated".into(),
            },
            (Command::Rollback { cluster, to }, true) => {
                self.world[i] = to;
                self.applied[i] = false;
                Event::RolledBack { cluster }
            }
            (Command::Remove { cluster }, true) => {
                self.world[i] = None;
                self.applied[i] = false;
                Event::RolledBack { cluster }
            }
            (Command::Rollback { cluster, .. } | Command::Remove { cluster }, false) => {
                Event::RollbackFailed {
                    cluster,
                    message: "simulated".into(),
                }
            }
            _ => return,
        };
        self.observe(event);
    }

    fn act(&mut self, action: &Action) {
        match action {
            Action::Tick(s) => self.now += Duration::from_secs(u64::from(*s)),
            Action::Deliver(p) => self.answer(*p, true),
            Action::Fail(p) => self.answer(*p, false),
            Action::HealthApplied(c, status) => {
                let applied: Vec<usize> =
                    (0..self.names.len()).filter(|&i| self.applied[i]).collect();
                if let Some(&i) = applied.get(*c as usize % applied.len().max(1)) {
                    let cluster = self.names[i].clone();
                    self.observe(Event::Health {
                        cluster,
                        status: *status,
                    });
                }
            }
            Action::HealthAny(c, status) => {
                let cluster = self.names[*c as usize % self.names.len()].clone();
                self.observe(Event::Health {
                    cluster,
                    status: *status,
                });
            }
            Action::Approve(w) => {
                let wave = self
                    .wave_numbers
                    .get(*w as usize % self.wave_numbers.len().max(1));
                if let Some(&wave) = wave {
                    self.observe(Event::Approved { wave });
                }
            }
        }
        self.step();
    }

    /// A cooperative engine: answers everything, reports Healthy, approves.
    fn drain_to_the_end(&mut self) {
        for _ in 0..10_000 {
            if self.outcome.is_some() {
                return;
            }
            while !self.pending.is_empty() {
                self.answer(0, true);
            }
            for i in 0..self.names.len() {
                if self.health[i] != Healthy || self.rollbacks[i] > 0 {
                    let cluster = self.names[i].clone();
                    self.observe(Event::Health {
                        cluster,
                        status: Healthy,
                    });
                }
            }
            for i in 0..self.names.len() {
                if self.applied[i] && !self.reached[i] {
                    let cluster = self.names[i].clone();
                    self.observe(Event::Health {
                        cluster,
                        status: Healthy,
                    });
                }
            }
            for w in self.wave_numbers.clone() {
                self.observe(Event::Approved { wave: w });
            }
            self.now += Duration::from_secs(1);
            self.step();
        }
        panic!("the rollout did not finish");
    }

    fn check_end(&self) {
        let outcome = self.outcome.as_ref().expect("finished");
        assert_eq!(self.machine.outcome(), Some(outcome));
        for i in 0..self.names.len() {
            let untouched = self.applies[i] == 0 && self.rollbacks[i] == 0;
            match outcome {
                Outcome::Succeeded => {
                    assert_eq!(self.world[i].as_deref(), Some(TARGET), "{}", self.names[i]);
                    assert_eq!(self.passed.len(), self.wave_numbers.len());
                }
                Outcome::RolledBack { not_restored, .. } => {
                    if untouched {
                        assert_eq!(self.world[i], self.initial[i].revision);
                    } else if self.world[i] != self.initial[i].last_good
                        && !(self.world[i].is_none() && self.initial[i].revision.is_none())
                    {
                        assert!(
                            not_restored.iter().any(|n| n.cluster == self.names[i]),
                            "{} neither restored nor reported",
                            self.names[i]
                        );
                    }
                    assert!(self.rollbacks[i] >= self.applies[i], "{}", self.names[i]);
                }
                Outcome::Halted { .. } => {
                    if untouched {
                        assert_eq!(self.world[i], self.initial[i].revision);
                    }
                    assert_eq!(self.rollbacks[i], 0);
                }
            }
        }
    }
}

fn run(s: &Scenario) -> Option<Outcome> {
    let mut sim = Sim::new(s)?;
    sim.step();
    for (n, action) in s.script.iter().enumerate() {
        if n == s.twin_at {
            let journal = serde_json::to_string(&sim.machine).expect("serializes");
            let twin: FleetRollout = serde_json::from_str(&journal).expect("deserializes");
            assert_eq!(twin, sim.machine);
            sim.twin = Some(twin);
        }
        sim.act(action);
    }
    sim.drain_to_the_end();
    sim.check_end();
    if let Some(twin) = &sim.twin {
        assert_eq!(twin, &sim.machine);
    }
    sim.outcome
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rollout_invariants_hold_for_random_fleets_and_events(s in scenario()) {
        run(&s);
    }
}

#[test]
fn random_runs_reach_every_outcome() {
    // Guard against a generator that only ever exercises one path.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..400 {
        let s = scenario()
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        if let Some(outcome) = run(&s) {
            seen.insert(match outcome {
                Outcome::Succeeded => "succeeded",
                Outcome::RolledBack { .. } => "rolled-back",
                Outcome::Halted { .. } => "halted",
            });
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}
