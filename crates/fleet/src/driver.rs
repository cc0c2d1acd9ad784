//! Executing a fleet rollout.

use crate::{
    JournalError, JournalStore,
    lock::{self, LockPolicy},
};
use futures::{StreamExt, stream::FuturesUnordered};
use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};
use tidegate_audit::{
    Action as AuditAction, Entry, OperationId, Outcome as AuditOutcome, Revision,
};
use tidegate_cluster::{ClientFactory, Holder, LeaseError, acquire_lease};
use tidegate_core::{Diagnostics, Environment, ObjectKey};
use tidegate_health::HealthStatus;
use tidegate_render::Rendered;
use tidegate_rollout::{
    machine::{
        ClusterProgress, ClusterStart, Command, Event, FleetRollout, Outcome, RolloutConfig,
        Transition, TransitionKind,
    },
    plan_waves,
};
use tidegate_sync::{Audit, Engine, SyncError, SyncOptions, Target};
use tracing::{info, info_span, warn};

/// How a rollout is run.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// Take ownership of fields other appliers own.
    pub force_conflicts: bool,
    /// Delete objects that left Git (the environment's `sync.prune` also turns it on).
    pub prune: bool,
    /// Take the environment's lock even if someone holds it.
    pub break_lock: bool,
    /// Continue the journaled rollout instead of starting a new one.
    pub resume: bool,
    /// How often health is polled.
    pub poll: Duration,
    /// How long the lock lasts without renewal.
    pub lock_ttl: Duration,
    /// Who runs the rollout (lock holder and audit actor identity).
    pub identity: String,
    /// Revisions a failed rollout quarantined (never a rollback target).
    pub quarantined: BTreeSet<String>,
    /// The environment's custom health checks (built-in rules only by default).
    pub health_checks: Arc<tidegate_health::HealthChecks>,
    /// When this turns true the rollout stops safely: steps in flight get
    /// `stop_grace` to finish, the machine is journaled, the audit
    /// operations are closed, the locks released, and the run returns
    /// [`RolloutError::Interrupted`] (a controller's SIGTERM or lost leadership).
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// How long steps in flight may take to finish after a stop.
    pub stop_grace: Duration,
    /// A lock holder identity taken over even while its lease is live: the
    /// other replicas of this controller (only the elected leader runs
    /// rollouts, so a holder with this identity has been deposed).
    pub take_over_identity: Option<String>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            force_conflicts: false,
            prune: false,
            break_lock: false,
            resume: false,
            poll: Duration::from_secs(1),
            lock_ttl: Duration::from_secs(60),
            identity: "tidegate".into(),
            quarantined: BTreeSet::new(),
            health_checks: Arc::default(),
            stop: None,
            stop_grace: Duration::from_secs(15),
            take_over_identity: None,
        }
    }
}

/// Renders the environment at another revision (the rollback target).
pub trait Revisions: Send + Sync {
    /// The environment file (its `discover:` entries expanded) and its
    /// rendering at `revision`.
    fn render<'a>(
        &'a self,
        revision: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(Environment, Rendered), String>>;
}

/// An extra verdict on a changed cluster, combined with its objects' health
/// (the worst wins): blue-green post-checks, for example.
pub trait ClusterCheck: Send + Sync {
    /// The cluster's status by this check.
    fn check<'a>(
        &'a self,
        cluster: &'a str,
        engine: &'a Engine,
    ) -> Pin<Box<dyn Future<Output = HealthStatus> + 'a>>;
}

/// Tells whether a wave was approved (`tidegate approve`).
pub trait Approvals: Send + Sync {
    /// True when `wave` of this rollout's revision is approved.
    fn approved(&self, wave: u32) -> bool;
}

/// One line of live progress: a cluster, its wave, state, health and elapsed time.
#[derive(Debug, Clone)]
pub struct ClusterLine {
    /// The cluster.
    pub cluster: String,
    /// Its wave.
    pub wave: u32,
    /// Where it stands.
    pub state: String,
    /// Its last health.
    pub health: HealthStatus,
    /// Time since its apply or rollback was issued.
    pub elapsed: Option<Duration>,
}

/// What a rollout did.
#[derive(Debug, Clone)]
pub struct RolloutReport {
    /// How it ended.
    pub outcome: Outcome,
    /// Every transition, in order (also in the audit trail).
    pub transitions: Vec<Transition>,
    /// When each cluster's apply or rollback was issued, answered, and when
    /// it turned Healthy at the target (since the rollout started):
    /// `(cluster, "apply" | "applied" | "apply-failed" | "healthy" |
    /// "rollback" | "rolled-back" | "rollback-failed", at)`.
    pub timeline: Vec<(String, String, Duration)>,
    /// Clusters that already ran the target revision but differed from Git
    /// (drift, or a sync that stopped part-way), and were applied.
    pub drift_corrected: Vec<String>,
    /// The audit operation of the interrupted run this one resumed.
    pub resumed_from: Option<u64>,
}

/// One cluster's problem found by the pre-flight dry run.
#[derive(Debug, Clone)]
pub struct ClusterProblem {
    /// The cluster.
    pub cluster: String,
    /// What its dry run rejected (file:line, object, message, fix).
    pub problem: tidegate_sync::ObjectProblem,
}

/// Why a rollout was refused before anything was written anywhere.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// Objects some cluster rejects.
    pub problems: Vec<ClusterProblem>,
    /// Clusters that could not be reached, with why.
    pub unreachable: Vec<(String, String)>,
    /// The resolved `maxUnavailable`.
    pub max_unavailable: u32,
}

impl std::fmt::Display for Preflight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.problems.is_empty() {
            let clusters: BTreeSet<&str> =
                self.problems.iter().map(|p| p.cluster.as_str()).collect();
            write!(
                f,
                "the revision is rejected by the dry run in {} cluster(s) ({}); nothing was written to any cluster:",
                clusters.len(),
                clusters.into_iter().collect::<Vec<_>>().join(", ")
            )?;
            for p in &self.problems {
                write!(f, "\n  [cluster {}] {}", p.cluster, p.problem)?;
            }
        }
        if self.unreachable.len() > self.max_unavailable as usize {
            if !self.problems.is_empty() {
                writeln!(f)?;
            }
            write!(
                f,
                "{} cluster(s) cannot be reached, more than maxUnavailable {}; nothing was written to any cluster:",
                self.unreachable.len(),
                self.max_unavailable
            )?;
            for (c, why) in &self.unreachable {
                write!(f, "\n  [cluster {c}] {why}")?;
            }
        }
        Ok(())
    }
}

/// Why a rollout could not run.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The environment's waves or limits are invalid.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// Someone else is rolling out this environment.
    #[error(transparent)]
    Locked(#[from] LeaseError),
    /// The pre-flight dry run on every cluster refused the revision before
    /// anything was written.
    #[error("{0}")]
    Refused(Preflight),
    /// A cluster could not be reached or read.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The state machine refused the set-up or the journal.
    #[error("rollout state: {0}")]
    Machine(String),
    /// The journal could not be read or written (or another replica took
    /// the rollout over).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// `--resume` without a journal.
    #[error("nothing to resume: no journal at {0}")]
    NothingToResume(String),
    /// Stopped on request (shutdown, lost leadership) before the end; the
    /// journal holds where it stopped.
    #[error(
        "rollout interrupted on request; continue it from its journal ({journal}){}",
        if .in_flight.is_empty() { String::new() } else { format!("; stopped in flight: {}", .in_flight.join(", ")) }
    )]
    Interrupted {
        /// Where the journal is.
        journal: String,
        /// Clusters whose step did not finish within the grace period (redone on resume).
        in_flight: Vec<String>,
    },
    /// The audit trail could not record the rollout.
    #[error("audit trail: {0}")]
    Audit(#[from] tidegate_audit::AuditError),
}

/// Runs one rollout of `rendered` (at `revision`) across the environment.
pub struct Driver<'a, F: ClientFactory> {
    /// Makes clients.
    pub factory: &'a F,
    /// The environment at the target revision.
    pub environment: &'a Environment,
    /// Its rendering.
    pub rendered: &'a Rendered,
    /// The target revision (commit SHA).
    pub revision: &'a str,
    /// Renders rollback targets.
    pub revisions: &'a dyn Revisions,
    /// Answers approval questions.
    pub approvals: &'a dyn Approvals,
    /// The audit trail, if any.
    pub audit: Option<Audit>,
    /// An extra check of changed clusters, if any.
    pub check: Option<&'a dyn ClusterCheck>,
    /// Where the machine is journaled, if anywhere (a file for the CLI, a
    /// ConfigMap for the controller).
    pub journal: Option<Arc<dyn JournalStore>>,
    /// Options.
    pub options: DriverOptions,
}

type Pending<'f> = FuturesUnordered<Pin<Box<dyn Future<Output = (String, Event)> + 'f>>>;

/// What is known about a cluster before the first write.
struct Found {
    /// Objects of what it runs now (its inventories).
    keys: Vec<(ObjectKey, String)>,
    start: ClusterStart,
}

impl<F: ClientFactory> Driver<'_, F> {
    fn lock_policy(&self) -> LockPolicy {
        LockPolicy {
            break_lock: self.options.break_lock,
            take_over_dead: self.options.resume,
            ttl: self.options.lock_ttl,
        }
    }

    /// Runs the rollout to its end; `progress` gets one line per cluster after every poll.
    pub async fn run(
        &self,
        progress: &(dyn Fn(&[ClusterLine]) + Sync),
    ) -> Result<RolloutReport, RolloutError> {
        let env = &self.environment.metadata.name;
        let span = info_span!("rollout", environment = %env, revision = %self.revision);
        let _entered = span.enter();
        let plan = plan_waves(self.environment).map_err(RolloutError::Invalid)?;

        // Connect every cluster (a cluster that cannot be reached is Unknown).
        let mut engines: BTreeMap<String, Arc<Engine>> = BTreeMap::new();
        let mut unreachable: BTreeMap<String, String> = BTreeMap::new();
        for cluster in &self.environment.spec.clusters {
            match Engine::connect(self.factory, cluster).await {
                Ok(engine) => {
                    let mut engine = engine.with_health_checks(self.options.health_checks.clone());
                    if let Some(audit) = &self.audit {
                        engine = engine.with_audit(audit.clone());
                    }
                    engines.insert(cluster.name.clone(), Arc::new(engine));
                }
                Err(e) => {
                    unreachable.insert(cluster.name.clone(), e.to_string());
                }
            }
        }

        // Before any write anywhere: what every cluster runs, and (for a new
        // rollout) the dry run of the target revision on every cluster.
        let mut found = self.read_clusters(&engines, &mut unreachable).await;
        if !self.options.resume {
            let drift = self.preflight(&plan, &engines, &mut unreachable).await?;
            for (name, drifted) in drift {
                if let Some(f) = found.get_mut(&name) {
                    f.start.drifted |= drifted;
                }
            }
        }
        for name in unreachable.keys() {
            found.insert(name.clone(), Found::unreachable());
        }

        // Lock every reachable cluster (in name order).
        let holder = Holder::this_process(&self.options.identity);
        let mut locked = Vec::new();
        for (name, engine) in &engines {
            match lock::take_over(
                engine,
                env,
                &holder,
                self.lock_policy(),
                self.options.take_over_identity.as_deref(),
            )
            .await
            {
                Ok(()) => locked.push(name.clone()),
                Err(LeaseError::Cluster(e)) if unreachable.contains_key(name) => {
                    warn!(cluster = %name, error = %e, "not locked: unreachable");
                }
                Err(e) => {
                    self.release(&engines, &locked, &holder).await;
                    return Err(e.into());
                }
            }
        }
        let locked = Arc::new(std::sync::Mutex::new(locked));
        let renew = self.spawn_renewal(&engines, &locked, &holder);
        let result = self
            .run_locked(&plan, &engines, found, &locked, &holder, progress)
            .await;
        renew.abort();
        let locked = locked.lock().map(|l| l.clone()).unwrap_or_default();
        self.release(&engines, &locked, &holder).await;
        result
    }

    /// What each cluster runs now, its last good revision and health. A
    /// cluster whose inventories cannot be read is added to `unreachable`.
    async fn read_clusters(
        &self,
        engines: &BTreeMap<String, Arc<Engine>>,
        unreachable: &mut BTreeMap<String, String>,
    ) -> BTreeMap<String, Found> {
        let env = &self.environment.metadata.name;
        let mut found = BTreeMap::new();
        for (name, engine) in engines {
            let inventories = match engine.inventories(env).await {
                Ok(i) => i,
                Err(e) => {
                    unreachable.insert(name.clone(), e.to_string());
                    continue;
                }
            };
            let keys: Vec<(ObjectKey, String)> = inventories
                .iter()
                .flat_map(|i| i.objects.iter().map(|r| (r.key(), r.api_version.clone())))
                .collect();
            let health = worst(engine, &keys).await;
            found.insert(
                name.clone(),
                Found {
                    keys,
                    start: ClusterStart {
                        current_revision: inventories.first().map(|i| i.revision.clone()),
                        last_good_revision: inventories
                            .first()
                            .and_then(|i| i.healthy_revision.clone()),
                        health,
                        // A sync that stopped part-way is not "at" its revision.
                        drifted: inventories.iter().any(|i| i.incomplete()),
                        unknown_state: false,
                    },
                },
            );
        }
        found
    }

    /// Plans the target revision on every reachable cluster (dry runs, no
    /// writes). Refuses when any cluster rejects it, or when more clusters
    /// than `maxUnavailable` cannot be reached. Returns which clusters
    /// differ from Git (drift, when they already run the target).
    async fn preflight(
        &self,
        plan: &tidegate_rollout::WavePlan,
        engines: &BTreeMap<String, Arc<Engine>>,
        unreachable: &mut BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, bool>, RolloutError> {
        let options = self.sync_options();
        let plans = futures::future::join_all(engines.iter().filter_map(|(name, engine)| {
            if unreachable.contains_key(name) {
                return None;
            }
            let definition = self.environment.cluster(name)?;
            let rendered = self.rendered.clusters.iter().find(|c| c.cluster == *name)?;
            let options = &options;
            Some(async move {
                let target = Target {
                    environment: self.environment,
                    cluster: definition,
                    rendered,
                    revision: self.revision,
                };
                (name.clone(), engine.plan(&target, options).await)
            })
        }))
        .await;
        let mut problems = Vec::new();
        let mut drift = BTreeMap::new();
        for (name, planned) in plans {
            match planned {
                Ok(p) => {
                    // Objects left to prune count only when this run prunes.
                    let prune = options.prune || self.environment.spec.sync.prune;
                    let differs =
                        p.objects.iter().any(|o| o.needs_apply()) || (prune && !p.prune.is_empty());
                    drift.insert(name.clone(), differs);
                    problems.extend(p.problems.into_iter().map(|problem| ClusterProblem {
                        cluster: name.clone(),
                        problem,
                    }));
                }
                Err(e) => {
                    unreachable.insert(name, e.to_string());
                }
            }
        }
        let refusal = Preflight {
            problems,
            unreachable: unreachable
                .iter()
                .map(|(c, w)| (c.clone(), w.clone()))
                .collect(),
            max_unavailable: plan.max_unavailable,
        };
        if !refusal.problems.is_empty() || refusal.unreachable.len() > plan.max_unavailable as usize
        {
            return Err(RolloutError::Refused(refusal));
        }
        Ok(drift)
    }

    async fn run_locked(
        &self,
        plan: &tidegate_rollout::WavePlan,
        engines: &BTreeMap<String, Arc<Engine>>,
        found: BTreeMap<String, Found>,
        locked: &std::sync::Mutex<Vec<String>>,
        holder: &Holder,
        progress: &(dyn Fn(&[ClusterLine]) + Sync),
    ) -> Result<RolloutReport, RolloutError> {
        let env = &self.environment.metadata.name;
        let apps: Vec<String> = self
            .environment
            .spec
            .apps
            .iter()
            .map(|a| a.name.clone())
            .collect();
        let current_keys: BTreeMap<String, Vec<(ObjectKey, String)>> = found
            .iter()
            .map(|(n, f)| (n.clone(), f.keys.clone()))
            .collect();
        let starts: Vec<(String, ClusterStart)> =
            found.into_iter().map(|(n, f)| (n, f.start)).collect();
        let drifted: Vec<String> = starts
            .iter()
            .filter(|(_, s)| s.drifted && s.current_revision.as_deref() == Some(self.revision))
            .map(|(n, _)| n.clone())
            .collect();
        let (started_ms, mut machine, resumed_from) = match (&self.journal, self.options.resume) {
            (Some(j), true) => match j.load().await? {
                Some(journaled) => (
                    journaled.started_ms,
                    journaled.machine,
                    Some(journaled.operation),
                ),
                None => {
                    return Err(RolloutError::NothingToResume(j.location()));
                }
            },
            (None, true) => {
                return Err(RolloutError::NothingToResume(
                    "(no journal configured)".into(),
                ));
            }
            _ => {
                let config = RolloutConfig {
                    quarantined: self.options.quarantined.clone(),
                    ..RolloutConfig::from_plan(plan, self.revision)
                };
                let m = FleetRollout::new(plan, config, starts.clone())
                    .map_err(|e| RolloutError::Machine(e.to_string()))?;
                (tidegate_audit::now_ms(), m, None)
            }
        };
        let clock = Instant::now();
        let offset = Duration::from_millis((tidegate_audit::now_ms() - started_ms).max(0) as u64);
        let elapsed = || offset + clock.elapsed();
        if resumed_from.is_some() {
            // Time nobody watched does not count towards a bake or deadline.
            machine.resume(elapsed());
        }
        let operation = self.audit_begin(resumed_from.flatten())?;
        // What a crashed run of this environment left open gets its outcome
        // now that this run holds the locks.
        if let (Some(audit), Some(op)) = (&self.audit, operation) {
            let locked: BTreeSet<String> = locked
                .lock()
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default();
            let next = if resumed_from.is_some() {
                "resumed by"
            } else {
                "superseded by"
            };
            crate::interrupt::close_interrupted(
                audit,
                env,
                &locked,
                Some(op),
                &format!("interrupted: the run stopped before recording an outcome; {next} {op}"),
            )?;
        }

        let mut pending: Pending<'_> = FuturesUnordered::new();
        // Commands of one cluster run one after the other, in order.
        let mut busy: BTreeSet<String> = BTreeSet::new();
        let mut queued: BTreeMap<String, std::collections::VecDeque<Command>> = BTreeMap::new();
        let mut transitions = Vec::new();
        let mut timeline = Vec::new();
        let mut waiting_for: Option<u32> = None;
        let mut outcome = None;
        let mut first = true;
        let mut stopping = false;
        loop {
            let commands = if first && resumed_from.is_some() {
                machine.outstanding()
            } else {
                machine.step(elapsed())
            };
            first = false;
            for command in commands {
                match command {
                    Command::Apply { ref cluster, .. }
                    | Command::Rollback {
                        ref cluster,
                        to: Some(_),
                    }
                    | Command::Remove { ref cluster } => {
                        let cluster = cluster.clone();
                        if busy.contains(&cluster) {
                            queued.entry(cluster).or_default().push_back(command);
                        } else {
                            busy.insert(cluster);
                            pending.push(self.start(
                                engines,
                                locked,
                                holder,
                                command,
                                &mut timeline,
                                elapsed(),
                            ));
                        }
                    }
                    Command::Rollback { cluster, to: None } => {
                        warn!(%cluster, "no rollback target: left as it is");
                    }
                    Command::AwaitApproval { wave } => {
                        info!(
                            wave,
                            "waiting for approval: tidegate approve --env {env} --wave {wave}"
                        );
                        waiting_for = Some(wave);
                    }
                    Command::Finished(o) => outcome = Some(o),
                }
            }
            self.forward(&mut machine, operation, &mut transitions)?;
            if let Some(j) = &self.journal {
                j.save(started_ms, operation.map(|o| o.0), &machine).await?;
            }
            if outcome.is_some() && pending.is_empty() {
                break;
            }
            // Collect outcomes of syncs until the next poll.
            let tick = tokio::time::sleep(self.options.poll);
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    Some((cluster, event)) = pending.next(), if !pending.is_empty() => {
                        timeline.push((cluster.clone(), event_name(&event).to_string(), elapsed()));
                        machine.observe(elapsed(), event);
                        busy.remove(&cluster);
                        if let Some(next) = queued.get_mut(&cluster).and_then(|q| q.pop_front()) {
                            busy.insert(cluster.clone());
                            pending.push(self.start(engines, locked, holder, next, &mut timeline, elapsed()));
                        }
                    }
                    () = &mut tick => break,
                    () = crate::interrupt::stopped(self.options.stop.as_ref()) => {
                        stopping = true;
                        break;
                    }
                }
            }
            if stopping {
                // Let the steps in flight finish (bounded), record them, and
                // stop: the journal says what is left.
                let grace = tokio::time::sleep(self.options.stop_grace);
                tokio::pin!(grace);
                while !pending.is_empty() {
                    tokio::select! {
                        Some((cluster, event)) = pending.next() => {
                            timeline.push((cluster.clone(), event_name(&event).to_string(), elapsed()));
                            machine.observe(elapsed(), event);
                            busy.remove(&cluster);
                        }
                        () = &mut grace => break,
                    }
                }
                drop(pending);
                return self
                    .interrupted(
                        &mut machine,
                        operation,
                        started_ms,
                        busy,
                        &mut transitions,
                        locked,
                        elapsed(),
                    )
                    .await;
            }
            if let Some(wave) = waiting_for
                && self.approvals.approved(wave)
            {
                machine.observe(elapsed(), Event::Approved { wave });
                waiting_for = None;
            }
            // Health of every cluster: the target's objects once touched,
            // otherwise what it runs now. A cluster that cannot be read is
            // Unknown (counted against maxUnavailable).
            let views: Vec<(String, ClusterProgress)> = machine
                .clusters()
                .map(|v| (v.name.to_string(), v.progress))
                .collect();
            // Read every cluster at once: one that cannot be reached (and
            // is retried) does not hold up the others.
            let current_keys = &current_keys;
            let reads = views.iter().map(|(name, progress_state)| async move {
                let Some(engine) = engines.get(name) else {
                    return HealthStatus::Unknown;
                };
                // While applying, the new revision's objects may not exist
                // yet (a custom resource waits for its CRD): judge what runs.
                let keys = match progress_state {
                    ClusterProgress::Progressing
                    | ClusterProgress::Updated
                    | ClusterProgress::Failed
                    | ClusterProgress::Skipped => self.target_keys(name),
                    _ => current_keys.get(name).cloned().unwrap_or_default(),
                };
                let status = worst(engine, &keys).await;
                let touched = matches!(
                    progress_state,
                    ClusterProgress::Progressing | ClusterProgress::Updated
                );
                match (self.check, touched) {
                    (Some(check), true) => status.max(check.check(name, engine).await),
                    _ => status,
                }
            });
            let statuses = futures::future::join_all(reads).await;
            for ((name, progress_state), status) in views.into_iter().zip(statuses) {
                machine.observe(
                    elapsed(),
                    Event::Health {
                        cluster: name.clone(),
                        status,
                    },
                );
                let now_updated = machine
                    .clusters()
                    .any(|v| v.name == name && v.progress == ClusterProgress::Updated);
                if now_updated && progress_state != ClusterProgress::Updated {
                    timeline.push((name.clone(), "healthy".to_string(), elapsed()));
                }
            }
            let lines: Vec<ClusterLine> = machine
                .clusters()
                .map(|v| ClusterLine {
                    cluster: v.name.to_string(),
                    wave: v.wave,
                    state: format!("{:?}", v.progress),
                    health: v.health,
                    elapsed: v.since.map(|s| elapsed().saturating_sub(s)),
                })
                .collect();
            progress(&lines);
        }
        let outcome = outcome.unwrap_or(Outcome::Succeeded);
        // Only a revision that completed its rollout becomes a cluster's
        // last good revision (the rollback target).
        if let Some(goods) = machine.last_good_after() {
            for (name, good) in goods {
                let before = starts
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, s)| s.last_good_revision.clone());
                if let (Some(good), Some(engine)) = (good, engines.get(&name))
                    && Some(&good) != before.as_ref()
                    && let Err(e) = engine.mark_healthy(env, &apps, &good).await
                {
                    warn!(cluster = %name, error = %e, "recording the last good revision failed");
                }
            }
        }
        self.audit_finish(operation, &outcome, elapsed())?;
        if let Some(j) = &self.journal {
            j.remove().await?;
        }
        let applied: BTreeSet<&str> = timeline
            .iter()
            .filter(|(_, w, _)| w == "applied")
            .map(|(c, _, _)| c.as_str())
            .collect();
        Ok(RolloutReport {
            outcome,
            drift_corrected: drifted
                .into_iter()
                .filter(|c| applied.contains(c.as_str()))
                .collect(),
            resumed_from: resumed_from.flatten(),
            transitions,
            timeline,
        })
    }

    /// Starts one command of a cluster (the previous one of that cluster has ended).
    fn start<'s>(
        &'s self,
        engines: &'s BTreeMap<String, Arc<Engine>>,
        locked: &'s std::sync::Mutex<Vec<String>>,
        holder: &'s Holder,
        command: Command,
        timeline: &mut Vec<(String, String, Duration)>,
        now: Duration,
    ) -> Pin<Box<dyn Future<Output = (String, Event)> + 's>> {
        match command {
            Command::Apply { cluster, revision } => {
                timeline.push((cluster.clone(), "apply".to_string(), now));
                Box::pin(async move {
                    if let Err(message) = self.lock_late(engines, locked, holder, &cluster).await {
                        return (cluster.clone(), Event::ApplyFailed { cluster, message });
                    }
                    self.apply(engines, cluster, revision).await
                })
            }
            Command::Rollback {
                cluster,
                to: Some(to),
            } => {
                timeline.push((cluster.clone(), "rollback".to_string(), now));
                Box::pin(self.rollback(engines, cluster, Some(to)))
            }
            Command::Remove { cluster } => {
                timeline.push((cluster.clone(), "rollback".to_string(), now));
                Box::pin(self.rollback(engines, cluster, None))
            }
            Command::Rollback { cluster, to: None } => Box::pin(std::future::ready((
                cluster.clone(),
                Event::RollbackFailed {
                    cluster,
                    message: "no rollback target".into(),
                },
            ))),
            Command::AwaitApproval { .. } | Command::Finished(_) => {
                Box::pin(std::future::pending())
            }
        }
    }

    /// Takes the lock of a cluster that could not be locked at the start
    /// (unreachable then) before the first write to it.
    async fn lock_late(
        &self,
        engines: &BTreeMap<String, Arc<Engine>>,
        locked: &std::sync::Mutex<Vec<String>>,
        holder: &Holder,
        cluster: &str,
    ) -> Result<(), String> {
        let already = locked
            .lock()
            .map(|l| l.iter().any(|c| c == cluster))
            .unwrap_or(false);
        if already {
            return Ok(());
        }
        let engine = engines
            .get(cluster)
            .ok_or_else(|| format!("cluster {cluster} could not be reached at the start"))?;
        lock::take_over(
            engine,
            &self.environment.metadata.name,
            holder,
            self.lock_policy(),
            self.options.take_over_identity.as_deref(),
        )
        .await
        .map_err(|e| e.to_string())?;
        if let Ok(mut l) = locked.lock() {
            l.push(cluster.to_string());
        }
        Ok(())
    }

    fn target_keys(&self, cluster: &str) -> Vec<(ObjectKey, String)> {
        self.rendered
            .clusters
            .iter()
            .filter(|c| c.cluster == cluster)
            .flat_map(|c| c.apps.iter().flat_map(|a| &a.objects))
            .map(|o| {
                (
                    o.key.clone(),
                    o.manifest["apiVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            prune: self.options.prune,
            force_conflicts: self.options.force_conflicts,
            ..SyncOptions::default()
        }
    }

    async fn apply(
        &self,
        engines: &BTreeMap<String, Arc<Engine>>,
        cluster: String,
        revision: String,
    ) -> (String, Event) {
        let result = async {
            let engine = engines.get(&cluster).ok_or("unknown cluster")?;
            let definition = self
                .environment
                .cluster(&cluster)
                .ok_or("cluster not in the environment")?;
            let rendered = self
                .rendered
                .clusters
                .iter()
                .find(|c| c.cluster == cluster)
                .ok_or("cluster not rendered")?;
            if revision != self.revision {
                return Err("asked for a revision this run did not render".to_string());
            }
            let target = Target {
                environment: self.environment,
                cluster: definition,
                rendered,
                revision: self.revision,
            };
            engine
                .sync(&target, &self.sync_options(), &|_| {})
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        .await;
        let event = match result {
            Ok(()) => Event::Applied {
                cluster: cluster.clone(),
            },
            Err(message) => Event::ApplyFailed {
                cluster: cluster.clone(),
                message,
            },
        };
        (cluster, event)
    }

    /// Rolls a cluster back to `to`, or (`None`, a first deploy) removes
    /// everything this environment has there.
    async fn rollback(
        &self,
        engines: &BTreeMap<String, Arc<Engine>>,
        cluster: String,
        to: Option<String>,
    ) -> (String, Event) {
        let result = async {
            let engine = engines
                .get(&cluster)
                .ok_or("cluster could not be reached")?;
            let Some(to) = to else {
                return self.remove(engine, &cluster).await;
            };
            let (environment, rendered) = self.revisions.render(&to).await?;
            let definition = environment
                .cluster(&cluster)
                .ok_or_else(|| format!("cluster {cluster} is not in the environment at {to}"))?;
            let cluster_render = rendered
                .clusters
                .iter()
                .find(|c| c.cluster == cluster)
                .ok_or("cluster not rendered at the rollback revision")?;
            let target = Target {
                environment: &environment,
                cluster: definition,
                rendered: cluster_render,
                revision: &to,
            };
            // Objects the failed revision added are removed again.
            self.sync_pruning(engine, &target, false).await
        }
        .await;
        let event = match result {
            Ok(()) => Event::RolledBack {
                cluster: cluster.clone(),
            },
            Err(message) => Event::RollbackFailed {
                cluster: cluster.clone(),
                message,
            },
        };
        (cluster, event)
    }

    /// Removes what a first deploy created: a sync of no apps, pruning
    /// every object of this environment's inventories and the inventories.
    async fn remove(&self, engine: &Engine, cluster: &str) -> Result<(), String> {
        let mut environment = self.environment.clone();
        environment.spec.apps.clear();
        let definition = environment
            .cluster(cluster)
            .ok_or("cluster not in the environment")?;
        let nothing = tidegate_render::RenderedCluster {
            cluster: cluster.to_string(),
            apps: Vec::new(),
        };
        let target = Target {
            environment: &environment,
            cluster: definition,
            rendered: &nothing,
            revision: self.revision,
        };
        self.sync_pruning(engine, &target, true).await
    }

    /// A sync of `target` with prune on (a rollback or a removal).
    async fn sync_pruning(
        &self,
        engine: &Engine,
        target: &Target<'_>,
        allow_empty: bool,
    ) -> Result<(), String> {
        let options = SyncOptions {
            prune: true,
            allow_empty,
            ..self.sync_options()
        };
        engine
            .sync(target, &options, &|_| {})
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn audit_begin(&self, resumes: Option<u64>) -> Result<Option<OperationId>, RolloutError> {
        let Some(audit) = &self.audit else {
            return Ok(None);
        };
        let mut intent = Entry::new(audit.actor.clone(), AuditAction::RolloutStart)
            .env(&self.environment.metadata.name)
            .revisions(None, Some(Revision::sha(self.revision)));
        if let Some(op) = resumes {
            intent.details.insert("resumes".into(), op.to_string());
            intent = intent.message(format!("resumes the interrupted rollout #{op}"));
        }
        Ok(Some(audit.sink.begin_operation(intent)?))
    }

    fn forward(
        &self,
        machine: &mut FleetRollout,
        operation: Option<OperationId>,
        all: &mut Vec<Transition>,
    ) -> Result<(), RolloutError> {
        let new = machine.drain_transitions();
        if let (Some(audit), Some(op)) = (&self.audit, operation) {
            let entries: Vec<Entry> = new.iter().filter_map(|t| self.entry_of(audit, t)).collect();
            audit.sink.record_batch(op, entries)?;
        }
        all.extend(new);
        Ok(())
    }

    fn entry_of(&self, audit: &Audit, t: &Transition) -> Option<Entry> {
        let env = &self.environment.metadata.name;
        let e = |action| {
            Entry::new(audit.actor.clone(), action)
                .env(env)
                .revisions(None, Some(Revision::sha(self.revision)))
        };
        Some(match &t.kind {
            TransitionKind::RolloutStart { .. } | TransitionKind::RolloutEnd { .. } => return None,
            TransitionKind::WaveStart {
                wave,
                clusters,
                skipped,
            } => e(AuditAction::WaveStart).message(format!(
                "wave {wave}: {} (already there: {})",
                clusters.join(", "),
                skipped.join(", ")
            )),
            TransitionKind::GatePassed { wave } => {
                e(AuditAction::GatePassed).message(format!("wave {wave}"))
            }
            TransitionKind::GateFailed { wave, failure } => {
                e(AuditAction::GateFailed).message(format!(
                    "wave {}: {failure}",
                    wave.map_or("-".into(), |w| w.to_string())
                ))
            }
            TransitionKind::Rollback { cluster, to } => e(AuditAction::Rollback)
                .cluster(cluster)
                .revisions(
                    Some(Revision::sha(self.revision)),
                    to.as_ref().map(Revision::sha),
                )
                .message(if to.is_some() {
                    "back to the last healthy revision"
                } else {
                    "no rollback target: left as it is"
                }),
            TransitionKind::Remove { cluster } => e(AuditAction::Rollback)
                .cluster(cluster)
                .revisions(Some(Revision::sha(self.revision)), None)
                .message("first deploy: removing what the rollout created"),
            TransitionKind::Quarantine { revision, failure } => e(AuditAction::Quarantine)
                .revisions(None, Some(Revision::sha(revision)))
                .message(failure.to_string()),
        })
    }

    fn audit_finish(
        &self,
        operation: Option<OperationId>,
        outcome: &Outcome,
        elapsed: Duration,
    ) -> Result<(), RolloutError> {
        let (Some(audit), Some(op)) = (&self.audit, operation) else {
            return Ok(());
        };
        let (result, message) = match outcome {
            Outcome::Succeeded => (
                AuditOutcome::Success,
                "every cluster Healthy at the target revision".to_string(),
            ),
            Outcome::RolledBack {
                failure,
                not_restored,
            } => (
                AuditOutcome::Failure,
                if not_restored.is_empty() {
                    format!("rolled back after {failure}")
                } else {
                    format!(
                        "rolled back after {failure}; not restored: {}",
                        not_restored
                            .iter()
                            .map(|n| format!("{} ({})", n.cluster, n.reason))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            ),
            Outcome::Halted { failure } => {
                (AuditOutcome::Aborted, format!("halted after {failure}"))
            }
        };
        let mut end = Entry::new(audit.actor.clone(), AuditAction::RolloutEnd)
            .env(&self.environment.metadata.name)
            .revisions(None, Some(Revision::sha(self.revision)))
            .outcome(result)
            .message(message);
        end.duration_ms = Some(elapsed.as_millis() as u64);
        audit.sink.finish_operation(op, end)?;
        Ok(())
    }

    /// Ends a stopped run: journals the machine, closes the audit
    /// operations of steps cut short and the rollout's own (`aborted`,
    /// interrupted), and returns [`RolloutError::Interrupted`].
    #[allow(clippy::too_many_arguments)]
    async fn interrupted(
        &self,
        machine: &mut FleetRollout,
        operation: Option<OperationId>,
        started_ms: i64,
        in_flight: BTreeSet<String>,
        transitions: &mut Vec<Transition>,
        locked: &std::sync::Mutex<Vec<String>>,
        elapsed: Duration,
    ) -> Result<RolloutReport, RolloutError> {
        self.forward(machine, operation, transitions)?;
        let journal = match &self.journal {
            Some(j) => {
                j.save(started_ms, operation.map(|o| o.0), machine).await?;
                j.location()
            }
            None => "(no journal: the next run starts over)".to_string(),
        };
        let in_flight: Vec<String> = in_flight.into_iter().collect();
        if let Some(audit) = &self.audit {
            let locked: BTreeSet<String> = locked
                .lock()
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default();
            let env = &self.environment.metadata.name;
            crate::interrupt::close_interrupted(
                audit,
                env,
                &locked,
                operation,
                "interrupted: stopped on request while applying; the resumed rollout applies it again",
            )?;
            if let Some(op) = operation {
                let mut end = Entry::new(audit.actor.clone(), AuditAction::RolloutEnd)
                    .outcome(AuditOutcome::Aborted)
                    .message(format!(
                        "interrupted on request (shutdown or lost leadership); in flight: {}; resumed from {journal}",
                        if in_flight.is_empty() { "none".to_string() } else { in_flight.join(", ") }
                    ));
                end.duration_ms = Some(elapsed.as_millis() as u64);
                end.details
                    .insert(crate::interrupt::INTERRUPTED_DETAIL.into(), "true".into());
                audit.sink.finish_operation(op, end)?;
            }
        }
        warn!(in_flight = ?in_flight, %journal, "rollout interrupted on request");
        Err(RolloutError::Interrupted { journal, in_flight })
    }

    /// Renews the lock in the clusters where this run holds it (also those
    /// locked late, before their first write).
    fn spawn_renewal(
        &self,
        engines: &BTreeMap<String, Arc<Engine>>,
        locked: &Arc<std::sync::Mutex<Vec<String>>>,
        holder: &Holder,
    ) -> tokio::task::JoinHandle<()> {
        let locked = locked.clone();
        let clients: Vec<(String, kube::Client)> = engines
            .iter()
            .map(|(n, e)| (n.clone(), e.client().clone()))
            .collect();
        let (name, holder, ttl) = (
            lock::lock_name(&self.environment.metadata.name),
            holder.clone(),
            self.options.lock_ttl,
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let held = locked.lock().map(|l| l.clone()).unwrap_or_default();
                for (cluster, client) in clients.iter().filter(|(c, _)| held.contains(c)) {
                    if let Err(e) = acquire_lease(client, cluster, &name, &holder, ttl, false).await
                    {
                        warn!(%cluster, error = %e, "renewing the rollout lock failed");
                    }
                }
            }
        })
    }

    async fn release(
        &self,
        engines: &BTreeMap<String, Arc<Engine>>,
        locked: &[String],
        holder: &Holder,
    ) {
        for name in locked {
            if let Some(engine) = engines.get(name) {
                lock::release(engine, &self.environment.metadata.name, holder).await;
            }
        }
    }
}

/// The worst health of some objects (Healthy when there are none); Unknown
/// when the cluster cannot be read.
async fn worst(engine: &Engine, keys: &[(ObjectKey, String)]) -> HealthStatus {
    if keys.is_empty() {
        return HealthStatus::Healthy;
    }
    let read = async {
        let resolved = engine.resolve_all(keys).await?;
        engine.health(&resolved).await
    };
    match read.await {
        Ok(health) => health
            .iter()
            .map(|h| h.health.status)
            .max()
            .unwrap_or(HealthStatus::Healthy),
        Err(e) => {
            warn!(cluster = %engine.cluster(), error = %e, "health unknown: the cluster cannot be read");
            HealthStatus::Unknown
        }
    }
}

impl Found {
    /// A cluster that could not be reached before the rollout.
    fn unreachable() -> Found {
        Found {
            keys: Vec::new(),
            start: ClusterStart {
                current_revision: None,
                last_good_revision: None,
                health: HealthStatus::Unknown,
                drifted: true,
                unknown_state: true,
            },
        }
    }
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Applied { .. } => "applied",
        Event::ApplyFailed { .. } => "apply-failed",
        Event::Health { .. } => "health",
        Event::Approved { .. } => "approved",
        Event::RolledBack { .. } => "rolled-back",
        Event::RollbackFailed { .. } => "rollback-failed",
    }
}
