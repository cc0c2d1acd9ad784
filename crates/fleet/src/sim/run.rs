//! The simulated controller: the real rollout machine
//! ([`tidegate_rollout::FleetRollout`]) driven as the fleet driver drives
//! it, on a virtual clock, with cluster latencies drawn from measured
//! distributions, and the controller's drift queue in front of it.

use super::rng::{Latency, Rng};
use crate::health::needs_health;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tidegate_core::duration::GoDuration;
use tidegate_core::environment::Rollout;
use tidegate_core::intorpercent::IntOrPercent;
use tidegate_health::HealthStatus;
use tidegate_rollout::{
    ClusterStart, Command, Event, FleetRollout, Outcome, RolloutConfig, SetupError, plan_fleet,
};

/// The latencies and costs of one cluster's steps (measured: see
/// docs/scale.md for where each figure comes from).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// A cluster's pre-flight, network and API server time (connect, read
    /// what it runs, dry run what changed), without the controller's CPU.
    pub survey: Latency,
    /// Taking the environment's Lease in a cluster.
    pub lock: Latency,
    /// An apply of what changed, to its answer.
    pub apply: Latency,
    /// From an apply's answer until the cluster's objects are Healthy.
    pub ready: Latency,
    /// One health read of a cluster (one read per kind).
    pub health_read: Latency,
    /// Releasing the Lease.
    pub release: Latency,
    /// A drift check of one app from the watch cache, without its CPU.
    pub drift_check: Latency,
    /// The controller's CPU per object planned (pre-flight and drift
    /// checks: render lookup, diff, verdicts).
    pub cpu_per_object: Duration,
}

/// The controller's limits (its defaults: [`Limits::default`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `DriverOptions::concurrency`: clusters surveyed, locked and released
    /// at once.
    pub concurrency: usize,
    /// `DriverOptions::poll`: how often clusters in flight or baking are
    /// read.
    pub poll: Duration,
    /// `--debounce-ms`: the drift queue's debounce per (cluster, app).
    pub debounce: Duration,
    /// CPU cores the controller's work can use at once.
    pub cores: usize,
}

impl Default for Limits {
    /// The controller's: concurrency 8, poll 500 ms, debounce 200 ms, 2 cores.
    fn default() -> Self {
        Limits {
            concurrency: 8,
            poll: Duration::from_millis(500),
            debounce: Duration::from_millis(200),
            cores: 2,
        }
    }
}

/// The environment simulated.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Clusters, in 3 waves: 10% (at least 1), 30%, the rest.
    pub clusters: usize,
    /// Apps per cluster.
    pub apps: usize,
    /// Managed objects per cluster.
    pub objects_per_cluster: usize,
    /// `rollout.maxSurge`.
    pub max_surge: IntOrPercent,
    /// `rollout.bakeTime`.
    pub bake: Duration,
}

impl Shape {
    /// The wave of the `i`-th cluster (as the fleet benchmark assigns them).
    pub fn wave_of(&self, i: usize) -> u32 {
        let n = self.clusters;
        let first = n.div_ceil(10).max(1);
        let second = first + (n * 3).div_ceil(10).max(1);
        if i < first {
            1
        } else if i < second {
            2
        } else {
            3
        }
    }

    fn names(&self) -> Vec<String> {
        (0..self.clusters).map(|i| format!("c{i:04}")).collect()
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The simulated environment is not valid.
    #[error("the simulated environment is not valid:\n{0}")]
    Plan(tidegate_core::Diagnostics),
    /// The machine refused its start.
    #[error("the rollout machine refused the simulated fleet: {0}")]
    Setup(#[from] SetupError),
    /// The machine waited for something the simulation never sends.
    #[error(
        "the simulated rollout stalled at {0:?}: the machine waits for an event the simulation does not produce"
    )]
    Stalled(Duration),
    /// The machine asked for something this simulation does not model.
    #[error(
        "the machine asked for {0}, which the simulation does not model (every simulated cluster turns Healthy)"
    )]
    Unmodelled(String),
}

/// One simulated fleet rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRun {
    /// From the start of the pre-flight to the last Lease released.
    pub total: Duration,
    /// Pre-flight of every cluster (bounded by `concurrency` and `cores`).
    pub preflight: Duration,
    /// Taking every Lease.
    pub lock: Duration,
    /// The machine's waves, first step to `Finished`.
    pub waves: Duration,
    /// Releasing every Lease.
    pub release: Duration,
    /// The gates' own time: `bakeTime` × the waves in which something was
    /// applied.
    pub gates: Duration,
    /// When each applied cluster's apply was answered (from the start).
    pub applied_at: BTreeMap<String, Duration>,
    /// Most clusters in flight at once (apply issued, not yet seen Healthy),
    /// as the simulation counted them.
    pub max_in_flight: usize,
    /// The plan's limit (`maxSurge` resolved).
    pub allowed_in_flight: usize,
    /// The outcome the machine reported.
    pub outcome: Outcome,
    /// Controller CPU the rollout used.
    pub cpu: Duration,
    /// Time work waited for a free `concurrency` slot.
    pub slot_wait: Duration,
    /// Time work waited for a free core.
    pub core_wait: Duration,
}

impl RolloutRun {
    /// What the rollout took beyond its gates.
    pub fn overhead(&self) -> Duration {
        self.total.saturating_sub(self.gates)
    }
}

/// A simulated drift in one app of every cluster at once.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftRun {
    /// Until the last cluster's correction was applied.
    pub all_corrected: Duration,
    /// Until the drift queue was empty again (every key checked).
    pub drained: Duration,
    /// Drift checks run (one per drifted (cluster, app)).
    pub checks: usize,
    /// The fleet rollout that corrected it.
    pub rollout: RolloutRun,
}

/// A seeded simulation of one environment.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// The environment.
    pub shape: Shape,
    /// The clusters' latencies and the controller's CPU.
    pub costs: Costs,
    /// The controller's limits.
    pub limits: Limits,
    /// The seed of every draw.
    pub seed: u64,
}

/// Work through a pool of `slots` (the driver's bounded concurrency) and
/// `cores` (the controller's CPU): each task holds a slot while it first
/// uses `cpu` on a core, then waits `latency`. First come, first served.
struct Pool {
    slots: Vec<Duration>,
    cores: Vec<Duration>,
    slot_wait: Duration,
    core_wait: Duration,
    cpu: Duration,
}

impl Pool {
    fn new(slots: usize, cores: usize, at: Duration) -> Pool {
        Pool {
            slots: vec![at; slots.max(1)],
            cores: vec![at; cores.max(1)],
            slot_wait: Duration::ZERO,
            core_wait: Duration::ZERO,
            cpu: Duration::ZERO,
        }
    }

    /// Runs one task ready at `ready`; returns when it ends.
    fn run(&mut self, ready: Duration, cpu: Duration, latency: Duration) -> Duration {
        let slot = earliest(&self.slots);
        let start = self.slots[slot].max(ready);
        self.slot_wait += start - ready;
        let core = earliest(&self.cores);
        let on_core = self.cores[core].max(start);
        self.core_wait += on_core - start;
        self.cores[core] = on_core + cpu;
        self.cpu += cpu;
        let end = on_core + cpu + latency;
        self.slots[slot] = end;
        end
    }

    fn done(&self) -> Duration {
        self.slots.iter().copied().max().unwrap_or_default()
    }
}

fn earliest(v: &[Duration]) -> usize {
    (0..v.len()).min_by_key(|&i| v[i]).unwrap_or(0)
}

/// The events of the machine phase.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Applied(String),
    Health(String, HealthStatus),
    Tick,
}

impl Simulation {
    /// A new commit: every cluster changes (one object per app).
    pub fn rollout(&self) -> Result<RolloutRun, SimError> {
        let names = self.shape.names();
        let mut rng = Rng::new(self.seed);
        self.run_rollout(
            &names,
            &names.iter().cloned().collect(),
            Duration::ZERO,
            &mut rng,
        )
    }

    /// One app drifts in every cluster at once (`kubectl scale` everywhere):
    /// the first drift check finds it and runs the fleet rollout of the
    /// revision the fleet runs, which corrects every drifted cluster; the
    /// other keys are then checked one after the other (one environment's
    /// loop checks one key at a time) and find nothing.
    pub fn drift_everywhere(&self) -> Result<DriftRun, SimError> {
        let names = self.shape.names();
        let mut rng = Rng::new(self.seed);
        let per_app = self.shape.objects_per_cluster / self.shape.apps.max(1);
        let check_cpu = self.costs.cpu_per_object * per_app as u32;
        let mut at = self.limits.debounce;
        at += check_cpu + self.costs.drift_check.sample(&mut rng);
        let rollout = self.run_rollout(&names, &names.iter().cloned().collect(), at, &mut rng)?;
        let all_corrected = rollout.applied_at.values().copied().max().unwrap_or(at);
        let mut drained = at + rollout.total;
        for _ in 1..names.len() {
            drained += check_cpu + self.costs.drift_check.sample(&mut rng);
        }
        Ok(DriftRun {
            all_corrected,
            drained,
            checks: names.len(),
            rollout,
        })
    }

    /// A fleet rollout starting at `at`, applying `changed` (the others are
    /// at the target, Healthy and not drifted: skipped).
    fn run_rollout(
        &self,
        names: &[String],
        changed: &BTreeSet<String>,
        at: Duration,
        rng: &mut Rng,
    ) -> Result<RolloutRun, SimError> {
        let rollout = Rollout {
            max_surge: self.shape.max_surge,
            max_unavailable: IntOrPercent::Int(0),
            bake_time: GoDuration(self.shape.bake),
            progress_deadline: GoDuration(Duration::from_secs(24 * 3600)),
            ..Rollout::default()
        };
        let plan = plan_fleet(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), Some(self.shape.wave_of(i)))),
            &rollout,
        )
        .map_err(SimError::Plan)?;
        // A drift correction targets the revision the fleet runs; a new
        // commit another one.
        let drift = changed.len() < names.len() || at > Duration::ZERO;
        let target = if drift { "v1" } else { "v2" };
        let starts = names.iter().map(|n| {
            (
                n.clone(),
                ClusterStart {
                    current_revision: Some("v1".into()),
                    last_good_revision: Some("v1".into()),
                    health: HealthStatus::Healthy,
                    drifted: drift && changed.contains(n),
                    unknown_state: false,
                },
            )
        });
        let mut machine =
            FleetRollout::new(&plan, RolloutConfig::from_plan(&plan, target), starts)?;

        // Pre-flight: every cluster surveyed (plan of every object).
        let cpu = self.costs.cpu_per_object * self.shape.objects_per_cluster as u32;
        let mut pool = Pool::new(self.limits.concurrency, self.limits.cores, at);
        for _ in names {
            let latency = self.costs.survey.sample(rng);
            pool.run(at, cpu, latency);
        }
        let surveyed = pool.done();
        // Locks, several at once.
        let mut locks = Pool::new(self.limits.concurrency, self.limits.cores, surveyed);
        for _ in names {
            let latency = self.costs.lock.sample(rng);
            locks.run(surveyed, Duration::ZERO, latency);
        }
        let locked = locks.done();

        // The waves: the machine stepped at every event and poll tick.
        let origin = locked;
        let mut queue: BTreeMap<(Duration, u64), Ev> = BTreeMap::new();
        let mut seq = 0u64;
        let mut push = |queue: &mut BTreeMap<(Duration, u64), Ev>, t: Duration, ev: Ev| {
            seq += 1;
            queue.insert((t, seq), ev);
        };
        push(&mut queue, self.limits.poll, Ev::Tick);
        let mut now = Duration::ZERO;
        let mut ready_at: BTreeMap<String, Duration> = BTreeMap::new();
        let mut polling: BTreeSet<String> = BTreeSet::new();
        let mut in_flight: BTreeSet<String> = BTreeSet::new();
        let mut applied_at = BTreeMap::new();
        let mut applied_waves = BTreeSet::new();
        let mut max_in_flight = 0;
        let outcome = loop {
            let mut finished = None;
            for command in machine.step(now) {
                match command {
                    Command::Apply { cluster, .. } => {
                        in_flight.insert(cluster.clone());
                        max_in_flight = max_in_flight.max(in_flight.len());
                        let answered = now + self.costs.apply.sample(rng);
                        push(&mut queue, answered, Ev::Applied(cluster));
                    }
                    Command::Finished(outcome) => finished = Some(outcome),
                    other => return Err(SimError::Unmodelled(format!("{other:?}"))),
                }
            }
            if let Some(outcome) = finished {
                break outcome;
            }
            let Some(((t, _), ev)) = queue.pop_first() else {
                return Err(SimError::Stalled(origin + now));
            };
            now = t;
            let mut reads = Vec::new();
            match ev {
                Ev::Applied(cluster) => {
                    applied_at.insert(cluster.clone(), origin + now);
                    ready_at.insert(cluster.clone(), now + self.costs.ready.sample(rng));
                    if let Some(view) = machine.clusters().find(|v| v.name == cluster) {
                        applied_waves.insert(view.wave);
                    }
                    machine.observe(
                        now,
                        Event::Applied {
                            cluster: cluster.clone(),
                        },
                    );
                    // Its health is read at once, not at the next tick.
                    reads.push(cluster);
                }
                Ev::Health(cluster, status) => {
                    polling.remove(&cluster);
                    if status == HealthStatus::Healthy && ready_at.contains_key(&cluster) {
                        in_flight.remove(&cluster);
                    }
                    machine.observe(now, Event::Health { cluster, status });
                }
                Ev::Tick => {
                    let wave = machine.current_wave();
                    reads.extend(
                        machine
                            .clusters()
                            .filter(|v| needs_health(v, wave).is_some())
                            .map(|v| v.name.to_string()),
                    );
                    push(&mut queue, now + self.limits.poll, Ev::Tick);
                }
            }
            for cluster in reads {
                if !polling.insert(cluster.clone()) {
                    continue;
                }
                // Healthy once its objects are ready (never applied: already).
                let ready = ready_at.get(&cluster).is_none_or(|r| now >= *r);
                let status = if ready {
                    HealthStatus::Healthy
                } else {
                    HealthStatus::Progressing
                };
                let answered = now + self.costs.health_read.sample(rng);
                push(&mut queue, answered, Ev::Health(cluster, status));
            }
        };
        let waves_done = origin + now;
        let mut releases = Pool::new(self.limits.concurrency, self.limits.cores, waves_done);
        for _ in names {
            let latency = self.costs.release.sample(rng);
            releases.run(waves_done, Duration::ZERO, latency);
        }
        let end = releases.done();
        Ok(RolloutRun {
            total: end - at,
            preflight: surveyed - at,
            lock: locked - surveyed,
            waves: now,
            release: end - waves_done,
            gates: self.shape.bake * applied_waves.len() as u32,
            applied_at,
            max_in_flight,
            allowed_in_flight: plan.max_in_flight as usize,
            outcome,
            cpu: pool.cpu,
            slot_wait: pool.slot_wait + locks.slot_wait + releases.slot_wait,
            core_wait: pool.core_wait,
        })
    }
}
