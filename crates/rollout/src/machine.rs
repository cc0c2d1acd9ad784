//! The fleet rollout state machine: a Deployment's rolling update one level
//! up, with clusters in place of pods. See the crate documentation for the
//! semantics; this module holds the types and the transitions.

use crate::{analysis::AnalysisReport, plan::WavePlan, windows::Windows};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeSet, fmt, time::Duration};
use tidegate_core::environment::{Approval, FailurePolicy, WindowPolicy};
use tidegate_health::HealthStatus;

/// What a rollout changes and how it reacts to failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutConfig {
    /// The revision every cluster is moved to.
    pub target_revision: String,
    /// What a failed gate does.
    pub failure_policy: FailurePolicy,
    /// How long a changed cluster may take to become Healthy (also bounds
    /// how long a rollback may go without an outcome).
    pub progress_deadline: Duration,
    /// How long a completed wave must stay Healthy before the next starts.
    pub bake_time: Duration,
    /// Revisions a failed rollout quarantined: never a rollback target. The
    /// machine adds its own target when a gate fails.
    #[serde(default)]
    pub quarantined: BTreeSet<String>,
    /// Maintenance windows and freezes: no apply to a cluster while its
    /// window is closed (unless they are ignored, with a reason).
    #[serde(default, skip_serializing_if = "Windows::is_empty")]
    pub windows: Windows,
    /// True when the environment has metric analyses: a wave that baked
    /// also needs [`Event::Analyzed`] with a passing report (requested
    /// with [`Command::Analyze`] when the bake starts).
    #[serde(default)]
    pub analysis: bool,
}

/// What is known about a cluster before the rollout starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStart {
    /// The revision the cluster runs now, if known.
    pub current_revision: Option<String>,
    /// The revision that was last Healthy there (from the in-cluster
    /// inventory and the audit trail); the rollback target.
    pub last_good_revision: Option<String>,
    /// The cluster's health now.
    pub health: HealthStatus,
    /// True when the live objects differ from Git at `current_revision`
    /// (drift, or an apply that did not finish): such a cluster is applied
    /// even when it already runs the target revision.
    #[serde(default)]
    pub drifted: bool,
    /// True when what the cluster ran could not be read (unreachable at the
    /// start): a rollback never removes anything there.
    #[serde(default)]
    pub unknown_state: bool,
}

/// What the engine must do now. Commands for one cluster must be executed in
/// the order they are returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    /// Move `cluster` to `revision`; answer with [`Event::Applied`] or
    /// [`Event::ApplyFailed`], then keep sending [`Event::Health`].
    Apply {
        /// The cluster.
        cluster: String,
        /// The target revision.
        revision: String,
    },
    /// Move `cluster` back to `to`; answer with [`Event::RolledBack`] or
    /// [`Event::RollbackFailed`]. `to: None` means there is no known good
    /// revision: leave the cluster as it is and report it (no answer needed).
    Rollback {
        /// The cluster.
        cluster: String,
        /// Its last known good revision.
        to: Option<String>,
    },
    /// The cluster ran nothing of this environment before the rollout (a
    /// first deploy): delete what the rollout created there. Answer with
    /// [`Event::RolledBack`] or [`Event::RollbackFailed`].
    Remove {
        /// The cluster.
        cluster: String,
    },
    /// Ask for `tidegate approve --wave N`; answer with [`Event::Approved`].
    AwaitApproval {
        /// The wave waiting for approval.
        wave: u32,
    },
    /// Run the metric analyses of `wave` during its bake: judge
    /// `clusters` (the wave) against `baseline` (clusters still on the old
    /// revision); answer with [`Event::Analyzed`].
    Analyze {
        /// The baking wave.
        wave: u32,
        /// Its clusters.
        clusters: Vec<String>,
        /// Clusters not updated yet, in plan order.
        baseline: Vec<String>,
    },
    /// The rollout is over; returned once.
    Finished(Outcome),
}

/// What happened, as reported by the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Event {
    /// An [`Command::Apply`] succeeded: the cluster runs the target revision
    /// (its workloads may still be rolling).
    Applied {
        /// The cluster.
        cluster: String,
    },
    /// An [`Command::Apply`] failed (after the engine's own retries).
    ApplyFailed {
        /// The cluster.
        cluster: String,
        /// Why.
        message: String,
    },
    /// The cluster's current health (the worst of its objects').
    Health {
        /// The cluster.
        cluster: String,
        /// Its health.
        status: HealthStatus,
    },
    /// Someone approved a wave (may arrive before the wave is reached).
    Approved {
        /// The wave number.
        wave: u32,
    },
    /// A [`Command::Rollback`] or [`Command::Remove`] succeeded (the
    /// cluster must then report Healthy to count as restored).
    RolledBack {
        /// The cluster.
        cluster: String,
    },
    /// A [`Command::Rollback`] failed.
    RollbackFailed {
        /// The cluster.
        cluster: String,
        /// Why.
        message: String,
    },
    /// The metric analyses of a wave ended (see [`Command::Analyze`]).
    Analyzed {
        /// The wave.
        wave: u32,
        /// What was measured and the verdict.
        report: AnalysisReport,
    },
    /// A changed cluster of the current wave failed a gate outright, before
    /// its progress deadline: a PostSync hook failed, or its new pods can
    /// never start (fail fast). Fails the rollout as an unhealthy cluster
    /// at its deadline would.
    GateFailed {
        /// The cluster.
        cluster: String,
        /// Why.
        message: String,
    },
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Every cluster is Healthy at the target revision and every wave baked.
    Succeeded,
    /// A gate failed and every touched cluster was rolled back, except those
    /// in `not_restored`.
    RolledBack {
        /// The failure that triggered the rollback.
        failure: Failure,
        /// Touched clusters that could not be put back.
        not_restored: Vec<NotRestored>,
    },
    /// A gate failed and the rollout stopped, leaving clusters as they were.
    Halted {
        /// The failure that stopped the rollout.
        failure: Failure,
    },
}

/// A touched cluster that a rollback could not restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotRestored {
    /// The cluster.
    pub cluster: String,
    /// Why: no known good revision, the rollback failed, or no outcome came
    /// within the progress deadline.
    pub reason: String,
}

/// Why a gate failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Failure {
    /// Applying the target revision to a cluster failed.
    ApplyFailed {
        /// The cluster.
        cluster: String,
        /// The engine's message.
        message: String,
    },
    /// A changed cluster was not Healthy within the progress deadline.
    ProgressDeadlineExceeded {
        /// The cluster.
        cluster: String,
    },
    /// More clusters were unavailable (Degraded, Missing, Unknown) than
    /// `maxUnavailable` allows.
    TooManyUnavailable {
        /// The unavailable clusters, in plan order.
        unavailable: Vec<String>,
        /// The resolved `maxUnavailable`.
        max_unavailable: u32,
    },
    /// A cluster of the current wave reported a status other than Healthy
    /// after it had been Healthy at the target revision (before or during
    /// the bake).
    Regressed {
        /// The cluster.
        cluster: String,
        /// What it reported.
        status: HealthStatus,
    },
    /// A metric analysis failed in a cluster of the wave (or stayed
    /// inconclusive beyond its limit).
    AnalysisFailed {
        /// The analysis.
        analysis: String,
        /// The cluster.
        cluster: String,
        /// Why, e.g. "2 of 3 measurements failed the condition".
        reason: String,
    },
    /// A changed cluster failed a gate outright ([`Event::GateFailed`]).
    ClusterGate {
        /// The cluster.
        cluster: String,
        /// Why.
        message: String,
    },
}

/// One entry of the audit stream; the engine forwards these to the audit
/// trail in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// Time since the rollout started.
    pub at: Duration,
    /// What happened.
    pub kind: TransitionKind,
}

/// What a [`Transition`] records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransitionKind {
    /// The first step.
    RolloutStart {
        /// The target revision.
        revision: String,
        /// Number of waves.
        waves: usize,
        /// Number of clusters.
        clusters: usize,
    },
    /// A wave became active (after its approval, if any).
    WaveStart {
        /// The wave number.
        wave: u32,
        /// Its clusters.
        clusters: Vec<String>,
        /// Those already Healthy at the target revision, which get no apply.
        skipped: Vec<String>,
    },
    /// A wave was Healthy and baked.
    GatePassed {
        /// The wave number.
        wave: u32,
    },
    /// A gate failed; the failure policy runs.
    GateFailed {
        /// The active wave, if one was.
        wave: Option<u32>,
        /// Why.
        failure: Failure,
    },
    /// A rollback of one cluster was issued.
    Rollback {
        /// The cluster.
        cluster: String,
        /// Its last known good revision (None: left as it is).
        to: Option<String>,
    },
    /// What a first deploy created in a cluster is being removed.
    Remove {
        /// The cluster.
        cluster: String,
    },
    /// The target revision must not be re-applied by continuous sync.
    Quarantine {
        /// The quarantined revision.
        revision: String,
        /// Why.
        failure: Failure,
    },
    /// The metric analyses of a wave ended (passed or not).
    Analysis {
        /// The wave.
        wave: u32,
        /// Every measurement and verdict.
        report: AnalysisReport,
    },
    /// The rollout ended.
    RolloutEnd {
        /// How.
        outcome: Outcome,
    },
    /// A cluster was due but its maintenance window was closed (or a
    /// freeze was on): it waits (`wait`), or its wave went on without it
    /// and the rollout comes back for it (`skipAndReturn`, `deferred`).
    WindowClosed {
        /// The cluster.
        cluster: String,
        /// Why it may not change now.
        reason: String,
        /// When it opens next (Unix milliseconds), if ever.
        opens_at_ms: Option<i64>,
        /// True when its wave went on without it.
        deferred: bool,
    },
    /// Windows and freezes are ignored for this rollout (`--ignore-windows`).
    WindowsIgnored {
        /// The reason given.
        reason: String,
    },
}

/// Where one cluster stands, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClusterProgress {
    /// Not changed yet.
    Pending,
    /// Due, but its maintenance window is closed (or a freeze is on).
    WaitingForWindow,
    /// Already Healthy at the target revision when its wave started.
    Skipped,
    /// Apply issued, no outcome yet.
    Applying,
    /// Applied, not Healthy yet.
    Progressing,
    /// Healthy at the target revision.
    Updated,
    /// The apply failed.
    Failed,
    /// Waiting for its turn to be rolled back.
    RollbackQueued,
    /// Rollback issued, no outcome yet.
    RollingBack,
    /// Back at its last known good revision.
    RolledBack,
    /// The rollback failed or was impossible.
    NotRestored,
}

/// A read-only view of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterView<'a> {
    /// The cluster.
    pub name: &'a str,
    /// Its wave number.
    pub wave: u32,
    /// Where it stands.
    pub progress: ClusterProgress,
    /// Its last reported health.
    pub health: HealthStatus,
    /// The revision it is believed to run.
    pub revision: Option<&'a str>,
    /// For elapsed times: when the apply was issued (Applying, Progressing,
    /// Failed), when it turned Healthy (Updated), or when the rollback was
    /// issued (RollingBack, RolledBack).
    pub since: Option<Duration>,
}

/// A journal that does not describe a consistent rollout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// An initial state was given for a cluster the plan does not contain.
    #[error("cluster {0:?} has an initial state but is not in the plan")]
    UnknownCluster(String),
    /// The plan contains a cluster without an initial state.
    #[error("cluster {0:?} is in the plan but has no initial state")]
    MissingCluster(String),
    /// A cluster is in the plan twice.
    #[error("cluster {0:?} is in the plan more than once")]
    DuplicateCluster(String),
    /// The plan lets no cluster change.
    #[error("the plan allows no cluster in flight (maxSurge and maxUnavailable resolve to 0)")]
    NoCapacity,
    /// A deserialized state refers to clusters or waves it does not hold.
    #[error("inconsistent rollout journal: {0}")]
    Inconsistent(&'static str),
}

/// The rollout of one revision across a fleet. Feed it [`Event`]s with
/// [`observe`](Self::observe), ask it what to do with [`step`](Self::step),
/// and journal it (it is `Serialize`/`Deserialize`) to resume after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "State", into = "State")]
pub struct FleetRollout {
    state: State,
}

/// The journaled state; validated on deserialization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    config: RolloutConfig,
    max_in_flight: u32,
    max_unavailable: u32,
    waves: Vec<WaveState>,
    clusters: Vec<ClusterState>,
    phase: Phase,
    approved: BTreeSet<u32>,
    transitions: Vec<Transition>,
    /// Waves whose analyses were requested.
    #[serde(default)]
    analysis_requested: BTreeSet<u32>,
    /// Waves whose analyses passed.
    #[serde(default)]
    analysis_passed: BTreeSet<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WaveState {
    number: u32,
    approval: Approval,
    members: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterState {
    name: String,
    wave: usize,
    revision: Option<String>,
    last_good: Option<String>,
    health: HealthStatus,
    forward: Forward,
    back: Back,
    /// The revision it ran when the rollout started.
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    drifted: bool,
    #[serde(default)]
    unknown_state: bool,
    /// Since when it has been due with its window closed (cleared by its apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_closed_since: Option<Duration>,
    /// Its wave went on without it (`skipAndReturn`); applied when its window opens.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deferred: bool,
}

/// Progress towards the target revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Forward {
    Pending,
    Skipped,
    Applying { since: Duration },
    Applied { since: Duration },
    Reached { since: Duration },
    ApplyFailed { since: Duration },
}

/// Progress of a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Back {
    NotNeeded,
    Queued,
    InFlight {
        since: Duration,
    },
    /// Rolled back; waiting for it to report Healthy.
    Restoring {
        since: Duration,
    },
    Done {
        since: Duration,
    },
    NotRestored {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Phase {
    NotStarted,
    Wave {
        index: usize,
        stage: Stage,
    },
    RollingBack {
        failure: Failure,
        order: Vec<usize>,
        next: usize,
    },
    /// Every wave passed its gate; clusters deferred by `skipAndReturn`
    /// are applied when their windows open, then baked once.
    Returning {
        baking_since: Option<Duration>,
    },
    Done {
        outcome: Outcome,
        reported: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Stage {
    AwaitingApproval { requested: bool },
    Active,
    Baking { since: Duration },
}

/// Where a rollback takes one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BackTarget {
    To(String),
    Remove,
    Leave(String),
}

impl BackTarget {
    fn command(&self, cluster: &str) -> Option<Command> {
        let cluster = cluster.to_string();
        match self {
            BackTarget::To(to) => Some(Command::Rollback {
                cluster,
                to: Some(to.clone()),
            }),
            BackTarget::Remove => Some(Command::Remove { cluster }),
            BackTarget::Leave(_) => Some(Command::Rollback { cluster, to: None }),
        }
    }
}

/// The first 12 characters of a revision.
fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

// === impl FleetRollout ===

impl FleetRollout {
    /// A rollout of `config.target_revision` along `plan`, with the initial
    /// state of every cluster of the plan (`(name, start)` pairs, any order).
    pub fn new(
        plan: &WavePlan,
        config: RolloutConfig,
        starts: impl IntoIterator<Item = (String, ClusterStart)>,
    ) -> Result<Self, SetupError> {
        if plan.max_in_flight == 0 && plan.cluster_count() > 0 {
            return Err(SetupError::NoCapacity);
        }
        let mut starts: std::collections::BTreeMap<String, ClusterStart> =
            starts.into_iter().collect();
        let mut waves = Vec::with_capacity(plan.waves.len());
        let mut clusters = Vec::with_capacity(plan.cluster_count());
        for (wave_index, wave) in plan.waves.iter().enumerate() {
            let mut members = Vec::with_capacity(wave.clusters.len());
            for name in &wave.clusters {
                let start = match starts.remove(name) {
                    Some(s) => s,
                    None if clusters.iter().any(|c: &ClusterState| &c.name == name) => {
                        return Err(SetupError::DuplicateCluster(name.clone()));
                    }
                    None => return Err(SetupError::MissingCluster(name.clone())),
                };
                members.push(clusters.len());
                clusters.push(ClusterState {
                    name: name.clone(),
                    wave: wave_index,
                    before: start.current_revision.clone(),
                    revision: start.current_revision,
                    last_good: start.last_good_revision,
                    health: start.health,
                    forward: Forward::Pending,
                    back: Back::NotNeeded,
                    drifted: start.drifted,
                    unknown_state: start.unknown_state,
                    window_closed_since: None,
                    deferred: false,
                });
            }
            waves.push(WaveState {
                number: wave.number,
                approval: wave.approval,
                members,
            });
        }
        if let Some(name) = starts.into_keys().next() {
            return Err(SetupError::UnknownCluster(name));
        }
        Ok(FleetRollout {
            state: State {
                config,
                max_in_flight: plan.max_in_flight,
                max_unavailable: plan.max_unavailable,
                waves,
                clusters,
                phase: Phase::NotStarted,
                approved: BTreeSet::new(),
                transitions: Vec::new(),
                analysis_requested: BTreeSet::new(),
                analysis_passed: BTreeSet::new(),
            },
        })
    }

    /// The commands to execute now, `now` being the time since the rollout
    /// started (never decreasing). Call it after every batch of events and
    /// periodically (deadlines and bake times are checked against `now`).
    pub fn step(&mut self, now: Duration) -> Vec<Command> {
        self.state.step(now)
    }

    /// Feeds one event. Returns false when the event was ignored: an unknown
    /// cluster, or an outcome for a command that is not outstanding (stale
    /// or repeated).
    pub fn observe(&mut self, now: Duration, event: Event) -> bool {
        self.state.tick(now);
        self.state.observe(now, event)
    }

    /// The transitions recorded since the last call, oldest first.
    pub fn drain_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.state.transitions)
    }

    /// The commands issued and still without an outcome, plus a pending
    /// approval request, or `Finished` once the rollout has ended. After
    /// resuming from a journal, execute these again: their results may have
    /// been lost with the crash. Applies are idempotent, so this never moves
    /// a cluster forward twice.
    pub fn outstanding(&self) -> Vec<Command> {
        let s = &self.state;
        let mut out = Vec::new();
        for c in &s.clusters {
            if matches!(c.forward, Forward::Applying { .. })
                && matches!(s.phase, Phase::Wave { .. } | Phase::Returning { .. })
            {
                out.push(Command::Apply {
                    cluster: c.name.clone(),
                    revision: s.config.target_revision.clone(),
                });
            }
            if matches!(c.back, Back::InFlight { .. }) {
                out.extend(s.back_target(c).command(&c.name));
            }
        }
        if let Phase::Wave {
            index,
            stage: Stage::AwaitingApproval { requested: true },
        } = s.phase
            && let Some(w) = s.waves.get(index)
        {
            out.push(Command::AwaitApproval { wave: w.number });
        }
        if let Phase::Wave {
            index,
            stage: Stage::Baking { .. },
        } = s.phase
            && let Some(w) = s.waves.get(index)
            && s.analysis_requested.contains(&w.number)
            && !s.analysis_passed.contains(&w.number)
        {
            out.push(s.analyze(index));
        }
        if let Phase::Done { outcome, .. } = &s.phase {
            out.push(Command::Finished(outcome.clone()));
        }
        out
    }

    /// Call once after loading the machine from a journal, before the
    /// first `step`: time nobody watched does not count. A bake restarts
    /// from `now` (only observed time counts towards `bakeTime`), and the
    /// progress deadlines of outstanding applies and rollbacks (which are
    /// re-executed) count from `now`.
    pub fn resume(&mut self, now: Duration) {
        let s = &mut self.state;
        if let Phase::Wave {
            stage: Stage::Baking { since },
            ..
        }
        | Phase::Returning {
            baking_since: Some(since),
        } = &mut s.phase
        {
            *since = now;
        }
        for c in &mut s.clusters {
            match &mut c.forward {
                Forward::Applying { since } | Forward::Applied { since } => *since = now,
                _ => {}
            }
            match &mut c.back {
                Back::InFlight { since } | Back::Restoring { since } => *since = now,
                _ => {}
            }
        }
    }

    /// Each cluster's last good revision once the rollout has ended (what
    /// the engine records as the rollback target): the target revision for
    /// every cluster when the rollout succeeded — only a revision that
    /// completed its rollout becomes a last good revision, and never one
    /// that is quarantined — and the revision known before the rollout
    /// otherwise. `None` before the end.
    pub fn last_good_after(&self) -> Option<Vec<(String, Option<String>)>> {
        let s = &self.state;
        let Phase::Done { outcome, .. } = &s.phase else {
            return None;
        };
        Some(
            s.clusters
                .iter()
                .map(|c| {
                    let good = match outcome {
                        // A quarantined revision rolled out on purpose
                        // (`--allow-quarantined`) stays no rollback target.
                        Outcome::Succeeded
                            if !s.config.quarantined.contains(&s.config.target_revision) =>
                        {
                            Some(s.config.target_revision.clone())
                        }
                        _ => c.last_good.clone(),
                    };
                    (c.name.clone(), good)
                })
                .collect(),
        )
    }

    /// The configuration.
    pub fn config(&self) -> &RolloutConfig {
        &self.state.config
    }

    /// The most clusters changed (or rolled back) at once.
    pub fn max_in_flight(&self) -> u32 {
        self.state.max_in_flight
    }

    /// The most clusters that may be unavailable at once.
    pub fn max_unavailable(&self) -> u32 {
        self.state.max_unavailable
    }

    /// Clusters changed and not yet Healthy at the target revision, while
    /// the rollout moves forward (0 once it failed).
    pub fn in_flight(&self) -> usize {
        self.state.in_flight()
    }

    /// Rollbacks issued and still without an outcome.
    pub fn rollbacks_in_flight(&self) -> usize {
        self.state.rollbacks_in_flight()
    }

    /// Clusters whose last health is Degraded, Missing or Unknown.
    pub fn unavailable(&self) -> usize {
        self.state.unavailable().count()
    }

    /// When the wave baking now has baked for `bakeTime` (time since the
    /// rollout started, as [`FleetRollout::step`] takes it): a driver steps
    /// the machine then rather than at its next poll. `None` when no wave
    /// is baking.
    pub fn bake_ends_at(&self) -> Option<Duration> {
        match self.state.phase {
            Phase::Wave {
                stage: Stage::Baking { since },
                ..
            } => Some(since + self.state.config.bake_time),
            _ => None,
        }
    }

    /// The active (or approval-waiting) wave's number.
    pub fn current_wave(&self) -> Option<u32> {
        match self.state.phase {
            Phase::Wave { index, .. } => self.state.waves.get(index).map(|w| w.number),
            _ => None,
        }
    }

    /// The failure that ended the forward rollout, if any.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.state.phase {
            Phase::RollingBack { failure, .. } => Some(failure),
            Phase::Done { outcome, .. } => match outcome {
                Outcome::Succeeded => None,
                Outcome::RolledBack { failure, .. } | Outcome::Halted { failure } => Some(failure),
            },
            _ => None,
        }
    }

    /// The outcome, once the rollout has ended.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.state.phase {
            Phase::Done { outcome, .. } => Some(outcome),
            _ => None,
        }
    }

    /// True once the rollout has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.phase, Phase::Done { .. })
    }

    /// Every cluster, in plan order.
    pub fn clusters(&self) -> impl Iterator<Item = ClusterView<'_>> {
        self.state.clusters.iter().map(|c| {
            let (progress, since) = match (&c.back, c.forward) {
                (Back::Queued, _) => (ClusterProgress::RollbackQueued, None),
                (Back::InFlight { since } | Back::Restoring { since }, _) => {
                    (ClusterProgress::RollingBack, Some(*since))
                }
                (Back::Done { since }, _) => (ClusterProgress::RolledBack, Some(*since)),
                (Back::NotRestored { .. }, _) => (ClusterProgress::NotRestored, None),
                (Back::NotNeeded, Forward::Pending) if c.window_closed_since.is_some() => {
                    (ClusterProgress::WaitingForWindow, c.window_closed_since)
                }
                (Back::NotNeeded, Forward::Pending) => (ClusterProgress::Pending, None),
                (Back::NotNeeded, Forward::Skipped) => (ClusterProgress::Skipped, None),
                (Back::NotNeeded, Forward::Applying { since }) => {
                    (ClusterProgress::Applying, Some(since))
                }
                (Back::NotNeeded, Forward::Applied { since }) => {
                    (ClusterProgress::Progressing, Some(since))
                }
                (Back::NotNeeded, Forward::Reached { since }) => {
                    (ClusterProgress::Updated, Some(since))
                }
                (Back::NotNeeded, Forward::ApplyFailed { since }) => {
                    (ClusterProgress::Failed, Some(since))
                }
            };
            ClusterView {
                name: &c.name,
                wave: self.state.waves.get(c.wave).map_or(0, |w| w.number),
                progress,
                health: c.health,
                revision: c.revision.as_deref(),
                since,
            }
        })
    }
}

impl TryFrom<State> for FleetRollout {
    type Error = SetupError;

    fn try_from(state: State) -> Result<Self, SetupError> {
        state.validate()?;
        Ok(FleetRollout { state })
    }
}

impl From<FleetRollout> for State {
    fn from(r: FleetRollout) -> State {
        r.state
    }
}

// === impl State ===

impl State {
    fn validate(&self) -> Result<(), SetupError> {
        use SetupError::Inconsistent;
        let n = self.clusters.len();
        let mut seen = vec![false; n];
        for (wi, w) in self.waves.iter().enumerate() {
            for &m in &w.members {
                let c = self.clusters.get(m).ok_or(Inconsistent("wave member"))?;
                if c.wave != wi || std::mem::replace(&mut seen[m], true) {
                    return Err(Inconsistent("wave membership"));
                }
            }
        }
        if seen.iter().any(|s| !s) {
            return Err(Inconsistent("cluster without wave"));
        }
        if self.max_in_flight == 0 && n > 0 {
            return Err(SetupError::NoCapacity);
        }
        match &self.phase {
            Phase::Wave { index, .. } if *index >= self.waves.len() => {
                Err(Inconsistent("wave index"))
            }
            Phase::RollingBack { order, next, .. }
                if *next > order.len() || order.iter().any(|&i| i >= n) =>
            {
                Err(Inconsistent("rollback order"))
            }
            _ => Ok(()),
        }
    }

    fn record(&mut self, at: Duration, kind: TransitionKind) {
        self.transitions.push(Transition { at, kind });
    }

    fn in_flight(&self) -> usize {
        if !self.moving_forward() {
            return 0;
        }
        self.clusters
            .iter()
            .filter(|c| {
                matches!(
                    c.forward,
                    Forward::Applying { .. } | Forward::Applied { .. }
                )
            })
            .count()
    }

    fn rollbacks_in_flight(&self) -> usize {
        self.clusters
            .iter()
            .filter(|c| matches!(c.back, Back::InFlight { .. } | Back::Restoring { .. }))
            .count()
    }

    /// Clusters counted against `maxUnavailable`. A cluster being applied
    /// (in flight, within its deadline) whose new objects are not created
    /// yet reads Missing: that is progress, counted by `maxSurge`, not
    /// unavailability. Degraded and Unknown (unreachable) always count.
    fn unavailable(&self) -> impl Iterator<Item = &ClusterState> {
        let forward = self.moving_forward() || matches!(self.phase, Phase::NotStarted);
        self.clusters.iter().filter(move |c| {
            is_unavailable(c.health)
                && !(forward && c.in_flight() && c.health == HealthStatus::Missing)
        })
    }

    /// Where a rollback takes a cluster: its last good revision unless that
    /// is quarantined (or is the failed target), nothing of the environment
    /// for a first deploy, otherwise nowhere (left and reported).
    fn back_target(&self, c: &ClusterState) -> BackTarget {
        let target = &self.config.target_revision;
        match &c.last_good {
            Some(good) if good != target && !self.config.quarantined.contains(good) => {
                BackTarget::To(good.clone())
            }
            _ if c.before.is_none() && !c.unknown_state => BackTarget::Remove,
            Some(good) => BackTarget::Leave(format!(
                "its last good revision {} is quarantined (or is the failed revision), so it was not rolled back to it; it is left at {}: choose a good revision and run `tidegate rollback --cluster {} --to REV`",
                short(good),
                short(target),
                c.name
            )),
            None if c.unknown_state => BackTarget::Leave(format!(
                "what it ran before the rollout could not be read (it was unreachable), so nothing is removed; it is left at {}: run `tidegate rollback --cluster {} --to REV` once it is reachable",
                short(target),
                c.name
            )),
            None => BackTarget::Leave(format!(
                "no known good revision: left at the failed revision {} (it ran {} before, never recorded Healthy); run `tidegate rollback --cluster {} --to REV`",
                short(target),
                c.before.as_deref().map_or("nothing", short),
                c.name
            )),
        }
    }

    fn index_of(&self, cluster: &str) -> Option<usize> {
        self.clusters.iter().position(|c| c.name == cluster)
    }

    /// Deadlines that expired by `now`.
    fn tick(&mut self, now: Duration) {
        let deadline = self.config.progress_deadline;
        match &self.phase {
            Phase::Wave { index, .. } => {
                let Some(wave) = self.waves.get(*index) else {
                    return;
                };
                let late = wave.members.iter().find_map(|&m| {
                    let c = self.clusters.get(m)?;
                    match c.forward {
                        Forward::Applying { since } | Forward::Applied { since }
                            if now.saturating_sub(since) > deadline =>
                        {
                            Some(c.name.clone())
                        }
                        _ => None,
                    }
                });
                if let Some(cluster) = late.or_else(|| self.late_deferred(now)) {
                    self.fail(now, Failure::ProgressDeadlineExceeded { cluster });
                }
            }
            Phase::Returning { .. } => {
                if let Some(cluster) = self.late_deferred(now) {
                    self.fail(now, Failure::ProgressDeadlineExceeded { cluster });
                }
            }
            Phase::RollingBack { .. } => {
                for c in &mut self.clusters {
                    match c.back {
                        Back::InFlight { since } if now.saturating_sub(since) > deadline => {
                            c.back = Back::NotRestored {
                                reason: format!(
                                    "no rollback outcome within the progress deadline ({deadline:?})"
                                ),
                            };
                        }
                        Back::Restoring { since } if now.saturating_sub(since) > deadline => {
                            c.back = Back::NotRestored {
                                reason: format!(
                                    "rolled back, but not Healthy within the progress deadline ({deadline:?}); last health {}",
                                    c.health
                                ),
                            };
                        }
                        _ => {}
                    }
                }
            }
            Phase::NotStarted | Phase::Done { .. } => {}
        }
    }

    fn step(&mut self, now: Duration) -> Vec<Command> {
        self.tick(now);
        let mut out = Vec::new();
        loop {
            match &mut self.phase {
                Phase::NotStarted => {
                    self.record(
                        now,
                        TransitionKind::RolloutStart {
                            revision: self.config.target_revision.clone(),
                            waves: self.waves.len(),
                            clusters: self.clusters.len(),
                        },
                    );
                    if let Some(reason) = self.config.windows.ignored.clone() {
                        self.record(now, TransitionKind::WindowsIgnored { reason });
                    }
                    self.enter_wave(0, now);
                    self.check_unavailable(now);
                }
                Phase::Wave {
                    index,
                    stage: Stage::AwaitingApproval { requested },
                } => {
                    let index = *index;
                    let number = self.waves.get(index).map_or(0, |w| w.number);
                    if self.approved.contains(&number) {
                        self.activate(index, now);
                    } else {
                        if !*requested {
                            *requested = true;
                            out.push(Command::AwaitApproval { wave: number });
                        }
                        break;
                    }
                }
                Phase::Wave {
                    index,
                    stage: Stage::Active,
                } => {
                    let index = *index;
                    self.issue_applies(index, now, &mut out);
                    if !self.wave_healthy(index) {
                        break;
                    }
                    if self.wave_changed(index) {
                        self.phase = Phase::Wave {
                            index,
                            stage: Stage::Baking { since: now },
                        };
                    } else {
                        // Nothing was applied in this wave: nothing to bake.
                        let number = self.waves.get(index).map_or(0, |w| w.number);
                        self.record(now, TransitionKind::GatePassed { wave: number });
                        self.enter_wave(index + 1, now);
                    }
                }
                Phase::Wave {
                    index,
                    stage: Stage::Baking { since },
                } => {
                    let (index, since) = (*index, *since);
                    let number = self.waves.get(index).map_or(0, |w| w.number);
                    if self.config.analysis && self.analysis_requested.insert(number) {
                        out.push(self.analyze(index));
                    }
                    let analyzed = !self.config.analysis || self.analysis_passed.contains(&number);
                    if now.saturating_sub(since) < self.config.bake_time || !analyzed {
                        break;
                    }
                    self.record(now, TransitionKind::GatePassed { wave: number });
                    self.enter_wave(index + 1, now);
                }
                Phase::RollingBack { .. } => {
                    if !self.issue_rollbacks(now, &mut out) {
                        break;
                    }
                }
                Phase::Returning { .. } => {
                    if !self.step_returning(now, &mut out) {
                        break;
                    }
                }
                Phase::Done { outcome, reported } => {
                    if !*reported {
                        *reported = true;
                        out.push(Command::Finished(outcome.clone()));
                    }
                    break;
                }
            }
        }
        out
    }

    /// Moves to wave `index`, or finishes when there is none.
    fn enter_wave(&mut self, index: usize, now: Duration) {
        match self.waves.get(index) {
            None if self.clusters.iter().any(|c| c.deferred) => {
                self.phase = Phase::Returning { baking_since: None };
            }
            None => self.finish(now, Outcome::Succeeded),
            Some(w) if w.approval == Approval::Required => {
                self.phase = Phase::Wave {
                    index,
                    stage: Stage::AwaitingApproval { requested: false },
                };
            }
            Some(_) => self.activate(index, now),
        }
    }

    /// Starts wave `index`: clusters already Healthy at the target are skipped.
    fn activate(&mut self, index: usize, now: Duration) {
        let Some(wave) = self.waves.get(index) else {
            return;
        };
        let mut names = Vec::with_capacity(wave.members.len());
        let mut skipped = Vec::new();
        for &m in &wave.members {
            let Some(c) = self.clusters.get_mut(m) else {
                continue;
            };
            names.push(c.name.clone());
            if c.forward == Forward::Pending
                && c.health == HealthStatus::Healthy
                && !c.drifted
                && c.revision.as_deref() == Some(self.config.target_revision.as_str())
            {
                c.forward = Forward::Skipped;
                skipped.push(c.name.clone());
            }
        }
        let number = wave.number;
        self.phase = Phase::Wave {
            index,
            stage: Stage::Active,
        };
        self.record(
            now,
            TransitionKind::WaveStart {
                wave: number,
                clusters: names,
                skipped,
            },
        );
    }

    /// Issues applies up to the surge limit: first to clusters of earlier
    /// waves deferred by their windows, then to wave `index` (none past the
    /// last wave). A cluster whose window is closed gets none.
    fn issue_applies(&mut self, index: usize, now: Duration, out: &mut Vec<Command>) {
        let limit = usize::try_from(self.max_in_flight).unwrap_or(usize::MAX);
        let mut in_flight = self.in_flight();
        let deferred = (0..self.clusters.len()).filter(|&i| {
            self.clusters
                .get(i)
                .is_some_and(|c| c.deferred && c.wave < index)
        });
        let members = self.waves.get(index).map(|w| w.members.clone());
        let candidates: Vec<usize> = deferred.chain(members.into_iter().flatten()).collect();
        for m in candidates {
            if in_flight >= limit {
                break;
            }
            if self
                .clusters
                .get(m)
                .is_none_or(|c| c.forward != Forward::Pending)
            {
                continue;
            }
            if self.window_closed(m, now) {
                continue;
            }
            let Some(c) = self.clusters.get_mut(m) else {
                continue;
            };
            c.window_closed_since = None;
            c.forward = Forward::Applying { since: now };
            in_flight += 1;
            out.push(Command::Apply {
                cluster: c.name.clone(),
                revision: self.config.target_revision.clone(),
            });
        }
    }

    /// True when cluster `m`'s window is closed at `now`; the first time it
    /// is found so, records why and, under `skipAndReturn`, defers it.
    fn window_closed(&mut self, m: usize, now: Duration) -> bool {
        let Some(c) = self.clusters.get(m) else {
            return false;
        };
        let Some(closed) = self.config.windows.closed(&c.name, now) else {
            return false;
        };
        if c.window_closed_since.is_none() {
            let deferred = self.config.windows.policy == WindowPolicy::SkipAndReturn;
            let transition = TransitionKind::WindowClosed {
                cluster: c.name.clone(),
                reason: closed.to_string(),
                opens_at_ms: self.config.windows.next_open_ms(&c.name, now),
                deferred,
            };
            if let Some(c) = self.clusters.get_mut(m) {
                c.window_closed_since = Some(now);
                c.deferred = deferred;
            }
            self.record(now, transition);
        }
        true
    }

    /// After the last wave: applies deferred clusters as their windows
    /// open; once all are Healthy at the target, bakes, then succeeds.
    /// Returns true when the phase changed.
    fn step_returning(&mut self, now: Duration, out: &mut Vec<Command>) -> bool {
        self.issue_applies(self.waves.len(), now, out);
        let done = self.clusters.iter().filter(|c| c.deferred).all(|c| {
            matches!(c.forward, Forward::Reached { .. }) && c.health == HealthStatus::Healthy
        });
        let Phase::Returning { baking_since } = &mut self.phase else {
            return false;
        };
        match (*baking_since, done) {
            (_, false) => {
                *baking_since = None;
                false
            }
            (None, true) => {
                *baking_since = Some(now);
                true
            }
            (Some(since), true) if now.saturating_sub(since) >= self.config.bake_time => {
                self.finish(now, Outcome::Succeeded);
                true
            }
            (Some(_), true) => false,
        }
    }

    /// A deferred cluster applied late that is past its progress deadline.
    fn late_deferred(&self, now: Duration) -> Option<String> {
        let deadline = self.config.progress_deadline;
        self.clusters.iter().find_map(|c| match c.forward {
            Forward::Applying { since } | Forward::Applied { since }
                if c.deferred && now.saturating_sub(since) > deadline =>
            {
                Some(c.name.clone())
            }
            _ => None,
        })
    }

    /// Moving towards the target: a wave, or coming back for deferred clusters.
    fn moving_forward(&self) -> bool {
        matches!(self.phase, Phase::Wave { .. } | Phase::Returning { .. })
    }

    /// True when this rollout applied to some cluster of wave `index`.
    fn wave_changed(&self, index: usize) -> bool {
        self.waves.get(index).is_some_and(|w| {
            w.members
                .iter()
                .any(|&m| self.clusters.get(m).is_some_and(ClusterState::touched))
        })
    }

    fn wave_healthy(&self, index: usize) -> bool {
        self.waves.get(index).is_some_and(|w| {
            w.members.iter().all(|&m| {
                self.clusters.get(m).is_some_and(|c| {
                    (matches!(c.forward, Forward::Skipped | Forward::Reached { .. })
                        && c.health == HealthStatus::Healthy)
                        // Its window was closed: the wave went on without it.
                        || (c.deferred && c.forward == Forward::Pending)
                })
            })
        })
    }

    /// Issues rollbacks up to the surge limit. Returns true when the phase
    /// changed (the rollout finished).
    fn issue_rollbacks(&mut self, now: Duration, out: &mut Vec<Command>) -> bool {
        let limit = usize::try_from(self.max_in_flight).unwrap_or(usize::MAX);
        let mut in_flight = self.rollbacks_in_flight();
        let Phase::RollingBack { order, next, .. } = &mut self.phase else {
            return false;
        };
        let (order, mut next) = (order.clone(), *next);
        let mut issued = Vec::new();
        while next < order.len() && in_flight < limit {
            let Some(&m) = order.get(next) else { break };
            next += 1;
            let Some(c) = self.clusters.get(m) else {
                continue;
            };
            let back = self.back_target(c);
            // A cluster left as it is takes no rollback slot.
            if !matches!(back, BackTarget::Leave(_)) {
                in_flight += 1;
            }
            let name = c.name.clone();
            out.extend(back.command(&name));
            issued.push((m, name, back));
        }
        if let Phase::RollingBack { next: n, .. } = &mut self.phase {
            *n = next;
        }
        let done = next >= order.len();
        for (m, cluster, back) in issued {
            let (state, transition) = match back {
                BackTarget::To(to) => (
                    Back::InFlight { since: now },
                    TransitionKind::Rollback {
                        cluster,
                        to: Some(to),
                    },
                ),
                BackTarget::Remove => (
                    Back::InFlight { since: now },
                    TransitionKind::Remove { cluster },
                ),
                BackTarget::Leave(reason) => (
                    Back::NotRestored { reason },
                    TransitionKind::Rollback { cluster, to: None },
                ),
            };
            if let Some(c) = self.clusters.get_mut(m) {
                c.back = state;
            }
            self.record(now, transition);
        }
        let done = done && self.rollbacks_in_flight() == 0;
        if !done {
            return false;
        }
        let Phase::RollingBack { failure, order, .. } = &self.phase else {
            return false;
        };
        let not_restored = order
            .iter()
            .filter_map(|&m| self.clusters.get(m))
            .filter_map(|c| match &c.back {
                Back::NotRestored { reason } => Some(NotRestored {
                    cluster: c.name.clone(),
                    reason: reason.clone(),
                }),
                _ => None,
            })
            .collect();
        let outcome = Outcome::RolledBack {
            failure: failure.clone(),
            not_restored,
        };
        self.finish(now, outcome);
        true
    }

    fn finish(&mut self, now: Duration, outcome: Outcome) {
        self.record(
            now,
            TransitionKind::RolloutEnd {
                outcome: outcome.clone(),
            },
        );
        self.phase = Phase::Done {
            outcome,
            reported: false,
        };
    }

    /// Runs the failure policy, once; later failures are ignored.
    fn fail(&mut self, now: Duration, failure: Failure) {
        let wave = match self.phase {
            Phase::Wave { index, .. } => self.waves.get(index).map(|w| w.number),
            Phase::NotStarted | Phase::Returning { .. } => None,
            Phase::RollingBack { .. } | Phase::Done { .. } => return,
        };
        self.record(
            now,
            TransitionKind::GateFailed {
                wave,
                failure: failure.clone(),
            },
        );
        self.record(
            now,
            TransitionKind::Quarantine {
                revision: self.config.target_revision.clone(),
                failure: failure.clone(),
            },
        );
        self.config
            .quarantined
            .insert(self.config.target_revision.clone());
        match self.config.failure_policy {
            FailurePolicy::Halt => self.finish(now, Outcome::Halted { failure }),
            FailurePolicy::Rollback => {
                // Plan order is wave order, so reversed plan order is
                // reverse wave order (and reverse order within a wave).
                // Clusters that already ran the failed revision without a
                // rollout of it having completed there (moved by hand,
                // skipped or not reached yet) go back too.
                let target = self.config.target_revision.clone();
                let order: Vec<usize> = (0..self.clusters.len())
                    .rev()
                    .filter(|&i| {
                        self.clusters.get(i).is_some_and(|c| {
                            c.touched()
                                || (matches!(c.forward, Forward::Skipped | Forward::Pending)
                                    && c.revision.as_deref() == Some(target.as_str())
                                    && c.last_good.as_deref() != Some(target.as_str()))
                        })
                    })
                    .collect();
                for &i in &order {
                    if let Some(c) = self.clusters.get_mut(i) {
                        c.back = Back::Queued;
                    }
                }
                self.phase = Phase::RollingBack {
                    failure,
                    order,
                    next: 0,
                };
            }
        }
    }

    fn check_unavailable(&mut self, now: Duration) {
        if !self.moving_forward() {
            return;
        }
        let max = self.max_unavailable;
        let count = self.unavailable().count();
        if u32::try_from(count).unwrap_or(u32::MAX) > max {
            let unavailable = self.unavailable().map(|c| c.name.clone()).collect();
            self.fail(
                now,
                Failure::TooManyUnavailable {
                    unavailable,
                    max_unavailable: max,
                },
            );
        }
    }

    /// The analysis request of wave `index`: its clusters against those
    /// still on the old revision.
    fn analyze(&self, index: usize) -> Command {
        let target = self.config.target_revision.as_str();
        let clusters = self.waves.get(index).map_or_else(Vec::new, |w| {
            w.members
                .iter()
                .filter_map(|&m| self.clusters.get(m).map(|c| c.name.clone()))
                .collect()
        });
        let baseline = self
            .clusters
            .iter()
            .filter(|c| {
                c.wave != index
                    && c.forward == Forward::Pending
                    && c.revision.as_deref() != Some(target)
            })
            .map(|c| c.name.clone())
            .collect();
        Command::Analyze {
            wave: self.waves.get(index).map_or(0, |w| w.number),
            clusters,
            baseline,
        }
    }

    /// A wave's analyses ended: recorded; a failed report fails the gate.
    /// Ignored unless that wave is baking and its analyses are outstanding.
    fn analyzed(&mut self, now: Duration, wave: u32, report: AnalysisReport) -> bool {
        let baking = match self.phase {
            Phase::Wave {
                index,
                stage: Stage::Baking { .. },
            } => self.waves.get(index).map(|w| w.number),
            _ => None,
        };
        if baking != Some(wave)
            || !self.analysis_requested.contains(&wave)
            || self.analysis_passed.contains(&wave)
        {
            return false;
        }
        let failure = report.failure();
        self.record(now, TransitionKind::Analysis { wave, report });
        match failure {
            None => {
                self.analysis_passed.insert(wave);
            }
            Some((analysis, cluster, reason)) => self.fail(
                now,
                Failure::AnalysisFailed {
                    analysis,
                    cluster,
                    reason,
                },
            ),
        }
        true
    }

    fn observe(&mut self, now: Duration, event: Event) -> bool {
        if let Event::Approved { wave } = event {
            return self.approved.insert(wave);
        }
        if let Event::Analyzed { wave, report } = event {
            return self.analyzed(now, wave, report);
        }
        let (Event::Applied { cluster }
        | Event::ApplyFailed { cluster, .. }
        | Event::Health { cluster, .. }
        | Event::RolledBack { cluster }
        | Event::RollbackFailed { cluster, .. }
        | Event::GateFailed { cluster, .. }) = &event
        else {
            return false;
        };
        let Some(i) = self.index_of(cluster) else {
            return false;
        };
        let current_wave = match self.phase {
            Phase::Wave { index, .. } => Some(index),
            _ => None,
        };
        let target = self.config.target_revision.clone();
        let Some(c) = self.clusters.get_mut(i) else {
            return false;
        };
        match event {
            Event::Approved { .. } | Event::Analyzed { .. } => false,
            Event::Applied { .. } => match c.forward {
                Forward::Applying { since } => {
                    c.forward = Forward::Applied { since };
                    c.revision = Some(target);
                    true
                }
                _ => false,
            },
            Event::ApplyFailed { cluster, message } => match c.forward {
                Forward::Applying { since } => {
                    c.forward = Forward::ApplyFailed { since };
                    self.fail(now, Failure::ApplyFailed { cluster, message });
                    true
                }
                _ => false,
            },
            Event::Health { cluster, status } => {
                c.health = status;
                if let Back::Restoring { since } = c.back
                    && status == HealthStatus::Healthy
                {
                    c.back = Back::Done { since };
                }
                let in_current_wave = current_wave == Some(c.wave);
                match c.forward {
                    Forward::Applied { .. } if status == HealthStatus::Healthy => {
                        c.forward = Forward::Reached { since: now };
                    }
                    Forward::Reached { .. } | Forward::Skipped
                        if in_current_wave && status != HealthStatus::Healthy =>
                    {
                        self.fail(now, Failure::Regressed { cluster, status });
                    }
                    _ => {}
                }
                self.check_unavailable(now);
                true
            }
            Event::RolledBack { .. } => match c.back {
                Back::InFlight { since } => {
                    c.back = Back::Restoring { since };
                    let back = self.clusters.get(i).map(|c| self.back_target(c));
                    if let (Some(back), Some(c)) = (back, self.clusters.get_mut(i)) {
                        c.revision = match back {
                            BackTarget::To(to) => Some(to),
                            _ => None,
                        };
                    }
                    true
                }
                _ => false,
            },
            Event::RollbackFailed { message, .. } => match c.back {
                Back::InFlight { .. } => {
                    c.back = Back::NotRestored {
                        reason: format!("rollback failed: {message}"),
                    };
                    true
                }
                _ => false,
            },
            Event::GateFailed { cluster, message } => {
                let changed =
                    matches!(c.forward, Forward::Applied { .. } | Forward::Reached { .. });
                if changed && current_wave == Some(c.wave) {
                    self.fail(now, Failure::ClusterGate { cluster, message });
                    true
                } else {
                    false
                }
            }
        }
    }
}

// === impl ClusterState ===

impl ClusterState {
    /// Applying, or applied and not yet Healthy at the target.
    fn in_flight(&self) -> bool {
        matches!(
            self.forward,
            Forward::Applying { .. } | Forward::Applied { .. }
        )
    }

    /// True once this rollout issued an apply to the cluster.
    fn touched(&self) -> bool {
        matches!(
            self.forward,
            Forward::Applying { .. }
                | Forward::Applied { .. }
                | Forward::Reached { .. }
                | Forward::ApplyFailed { .. }
        )
    }
}

/// Degraded, Missing and Unknown count against `maxUnavailable`; Healthy,
/// Suspended and Progressing do not.
pub fn is_unavailable(status: HealthStatus) -> bool {
    matches!(
        status,
        HealthStatus::Degraded | HealthStatus::Missing | HealthStatus::Unknown
    )
}

// === impl TransitionKind ===

impl TransitionKind {
    /// The audit action name: `rollout-start`, `wave-start`, `gate-passed`,
    /// `gate-failed`, `analysis`, `rollback`, `quarantine`, `rollout-end`,
    /// `window-closed` or `windows-ignored`.
    pub fn action(&self) -> &'static str {
        match self {
            TransitionKind::RolloutStart { .. } => "rollout-start",
            TransitionKind::WaveStart { .. } => "wave-start",
            TransitionKind::GatePassed { .. } => "gate-passed",
            TransitionKind::GateFailed { .. } => "gate-failed",
            TransitionKind::Analysis { .. } => "analysis",
            TransitionKind::Rollback { .. } | TransitionKind::Remove { .. } => "rollback",
            TransitionKind::Quarantine { .. } => "quarantine",
            TransitionKind::RolloutEnd { .. } => "rollout-end",
            TransitionKind::WindowClosed { .. } => "window-closed",
            TransitionKind::WindowsIgnored { .. } => "windows-ignored",
        }
    }
}

// === impl Failure ===

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ApplyFailed { cluster, message } => {
                write!(f, "applying to cluster {cluster} failed: {message}")
            }
            Failure::ProgressDeadlineExceeded { cluster } => {
                write!(
                    f,
                    "cluster {cluster} was not Healthy within the progress deadline"
                )
            }
            Failure::TooManyUnavailable {
                unavailable,
                max_unavailable,
            } => write!(
                f,
                "{} clusters unavailable ({}), more than maxUnavailable {max_unavailable}",
                unavailable.len(),
                unavailable.join(", ")
            ),
            Failure::Regressed { cluster, status } => write!(
                f,
                "cluster {cluster} turned {status} after being Healthy at the target revision"
            ),
            Failure::AnalysisFailed {
                analysis,
                cluster,
                reason,
            } => write!(
                f,
                "analysis {analysis} failed in cluster {cluster}: {reason}"
            ),
            Failure::ClusterGate { cluster, message } => {
                write!(f, "cluster {cluster} failed its gate: {message}")
            }
        }
    }
}

// === impl RolloutConfig ===

impl RolloutConfig {
    /// The configuration of a rollout of `target_revision` with the gates
    /// and failure policy of `plan`.
    pub fn from_plan(plan: &WavePlan, target_revision: impl Into<String>) -> Self {
        RolloutConfig {
            target_revision: target_revision.into(),
            failure_policy: plan.failure_policy,
            progress_deadline: plan.progress_deadline.0,
            bake_time: plan.bake_time.0,
            quarantined: BTreeSet::new(),
            windows: Windows::default(),
            analysis: false,
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod analysis_tests;

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod fleet_proptests;

#[cfg(test)]
mod window_tests;
