//! Executing a fleet rollout.

use crate::Journal;
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
use tidegate_cluster::{ClientFactory, Holder, LeaseError, acquire_lease, release_lease};
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
    /// The environment's custom health checks (built-in rules only by default).
    pub health_checks: Arc<tidegate_health::HealthChecks>,
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
            health_checks: Arc::default(),
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
    /// A cluster could not be reached or read.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The state machine refused the set-up or the journal.
    #[error("rollout state: {0}")]
    Machine(String),
    /// The journal could not be read or written.
    #[error("rollout journal {path}: {source}")]
    Journal {
        /// The journal file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `--resume` without a journal.
    #[error("nothing to resume: no journal at {0}")]
    NothingToResume(String),
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
    /// The journal, if any.
    pub journal: Option<Journal>,
    /// Options.
    pub options: DriverOptions,
}

type Pending<'f> = FuturesUnordered<Pin<Box<dyn Future<Output = (String, Event)> + 'f>>>;

impl<F: ClientFactory> Driver<'_, F> {
    fn lock_name(&self) -> String {
        format!("tidegate-rollout-{}", self.environment.metadata.name)
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

        // Connect every cluster, then lock them all (in name order).
        let mut engines: BTreeMap<String, Arc<Engine>> = BTreeMap::new();
        for cluster in &self.environment.spec.clusters {
            let mut engine = Engine::connect(self.factory, cluster)
                .await?
                .with_health_checks(self.options.health_checks.clone());
            if let Some(audit) = &self.audit {
                engine = engine.with_audit(audit.clone());
            }
            engines.insert(cluster.name.clone(), Arc::new(engine));
        }
        let holder = Holder::this_process(&self.options.identity);
        let mut locked = Vec::new();
        for (name, engine) in &engines {
            match acquire_lease(
                engine.client(),
                name,
                &self.lock_name(),
                &holder,
                self.options.lock_ttl,
                self.options.break_lock,
            )
            .await
            {
                Ok(()) => locked.push(name.clone()),
                Err(e) => {
                    self.release(&engines, &locked, &holder).await;
                    return Err(e.into());
                }
            }
        }
        let renew = self.spawn_renewal(&engines, &holder);
        let result = self.run_locked(&plan, &engines, progress).await;
        renew.abort();
        self.release(&engines, &locked, &holder).await;
        result
    }

    async fn run_locked(
        &self,
        plan: &tidegate_rollout::WavePlan,
        engines: &BTreeMap<String, Arc<Engine>>,
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
        // What each cluster runs now, and its last good revision.
        let mut current_keys: BTreeMap<String, Vec<(ObjectKey, String)>> = BTreeMap::new();
        let mut starts = Vec::new();
        for (name, engine) in engines {
            let inventories = engine.inventories(env).await?;
            let keys: Vec<(ObjectKey, String)> = inventories
                .iter()
                .flat_map(|i| i.objects.iter().map(|r| (r.key(), r.api_version.clone())))
                .collect();
            let health = worst(engine, &keys).await?;
            starts.push((
                name.clone(),
                ClusterStart {
                    current_revision: inventories.first().map(|i| i.revision.clone()),
                    last_good_revision: inventories
                        .first()
                        .and_then(|i| i.healthy_revision.clone()),
                    health,
                },
            ));
            current_keys.insert(name.clone(), keys);
        }
        let journal_error = |path: &std::path::Path, source| RolloutError::Journal {
            path: path.display().to_string(),
            source,
        };
        let (started_ms, mut machine, resumed) = match (&self.journal, self.options.resume) {
            (Some(j), true) => match j.load().map_err(|e| journal_error(j.path(), e))? {
                Some((started, m)) => (started, m, true),
                None => {
                    return Err(RolloutError::NothingToResume(
                        j.path().display().to_string(),
                    ));
                }
            },
            (None, true) => {
                return Err(RolloutError::NothingToResume(
                    "(no journal configured)".into(),
                ));
            }
            _ => {
                let config = RolloutConfig {
                    target_revision: self.revision.to_string(),
                    failure_policy: plan.failure_policy,
                    progress_deadline: plan.progress_deadline.0,
                    bake_time: plan.bake_time.0,
                };
                let m = FleetRollout::new(plan, config, starts)
                    .map_err(|e| RolloutError::Machine(e.to_string()))?;
                (tidegate_audit::now_ms(), m, false)
            }
        };
        let clock = Instant::now();
        let offset = Duration::from_millis((tidegate_audit::now_ms() - started_ms).max(0) as u64);
        let elapsed = || offset + clock.elapsed();
        let operation = self.audit_begin()?;

        let mut pending: Pending<'_> = FuturesUnordered::new();
        let mut transitions = Vec::new();
        let mut timeline = Vec::new();
        let mut waiting_for: Option<u32> = None;
        let mut outcome = None;
        let mut marked: BTreeSet<String> = BTreeSet::new();
        let mut first = true;
        loop {
            let commands = if first && resumed {
                machine.outstanding()
            } else {
                machine.step(elapsed())
            };
            first = false;
            for command in commands {
                match command {
                    Command::Apply { cluster, revision } => {
                        timeline.push((cluster.clone(), "apply".to_string(), elapsed()));
                        pending.push(Box::pin(self.apply(engines, cluster, revision)));
                    }
                    Command::Rollback {
                        cluster,
                        to: Some(to),
                    } => {
                        timeline.push((cluster.clone(), "rollback".to_string(), elapsed()));
                        pending.push(Box::pin(self.rollback(engines, cluster, to)));
                    }
                    Command::Rollback { cluster, to: None } => {
                        warn!(%cluster, "no known good revision: left as it is");
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
                j.save(started_ms, &machine)
                    .map_err(|e| journal_error(j.path(), e))?;
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
                        timeline.push((cluster, event_name(&event).to_string(), elapsed()));
                        machine.observe(elapsed(), event);
                    }
                    () = &mut tick => break,
                }
            }
            if let Some(wave) = waiting_for
                && self.approvals.approved(wave)
            {
                machine.observe(elapsed(), Event::Approved { wave });
                waiting_for = None;
            }
            // Health of every cluster: the target's objects once touched,
            // otherwise what it runs now.
            let views: Vec<(String, ClusterProgress)> = machine
                .clusters()
                .map(|v| (v.name.to_string(), v.progress))
                .collect();
            for (name, progress_state) in views {
                let Some(engine) = engines.get(&name) else {
                    continue;
                };
                // While applying, the new revision's objects may not exist
                // yet (a custom resource waits for its CRD): judge what runs.
                let keys = match progress_state {
                    ClusterProgress::Progressing
                    | ClusterProgress::Updated
                    | ClusterProgress::Failed
                    | ClusterProgress::Skipped => self.target_keys(&name),
                    _ => current_keys.get(&name).cloned().unwrap_or_default(),
                };
                let mut status = worst(engine, &keys).await?;
                let touched = matches!(
                    progress_state,
                    ClusterProgress::Progressing | ClusterProgress::Updated
                );
                if let (Some(check), true) = (self.check, touched) {
                    status = status.max(check.check(&name, engine).await);
                }
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
                if progress_state == ClusterProgress::Updated
                    && status == HealthStatus::Healthy
                    && marked.insert(name.clone())
                {
                    engine.mark_healthy(env, &apps, self.revision).await?;
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
        self.audit_finish(operation, &outcome, elapsed())?;
        if let Some(j) = &self.journal {
            j.remove().map_err(|e| journal_error(j.path(), e))?;
        }
        Ok(RolloutReport {
            outcome,
            transitions,
            timeline,
        })
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

    async fn rollback(
        &self,
        engines: &BTreeMap<String, Arc<Engine>>,
        cluster: String,
        to: String,
    ) -> (String, Event) {
        let result = async {
            let engine = engines.get(&cluster).ok_or("unknown cluster")?;
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
            let options = SyncOptions {
                prune: true,
                ..self.sync_options()
            };
            engine
                .sync(&target, &options, &|_| {})
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
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

    fn audit_begin(&self) -> Result<Option<OperationId>, RolloutError> {
        let Some(audit) = &self.audit else {
            return Ok(None);
        };
        let intent = Entry::new(audit.actor.clone(), AuditAction::RolloutStart)
            .env(&self.environment.metadata.name)
            .revisions(None, Some(Revision::sha(self.revision)));
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
                    "no known good revision: left as it is"
                }),
            TransitionKind::Quarantine { revision, failure } => e(AuditAction::Quarantine)
                .revisions(None, Some(Revision::sha(revision)))
                .message(failure.to_string()),
            #[allow(unreachable_patterns)]
            _ => return None,
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

    fn spawn_renewal(
        &self,
        engines: &BTreeMap<String, Arc<Engine>>,
        holder: &Holder,
    ) -> tokio::task::JoinHandle<()> {
        let clients: Vec<(String, kube::Client)> = engines
            .iter()
            .map(|(n, e)| (n.clone(), e.client().clone()))
            .collect();
        let (name, holder, ttl) = (self.lock_name(), holder.clone(), self.options.lock_ttl);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                for (cluster, client) in &clients {
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
            if let Some(engine) = engines.get(name)
                && let Err(e) =
                    release_lease(engine.client(), name, &self.lock_name(), holder).await
            {
                warn!(cluster = %name, error = %e, "releasing the rollout lock failed; it expires by itself");
            }
        }
    }
}

/// The worst health of some objects (Healthy when there are none).
async fn worst(engine: &Engine, keys: &[(ObjectKey, String)]) -> Result<HealthStatus, SyncError> {
    if keys.is_empty() {
        return Ok(HealthStatus::Healthy);
    }
    let resolved = engine.resolve_all(keys).await?;
    let health = engine.health(&resolved).await?;
    Ok(health
        .iter()
        .map(|h| h.health.status)
        .max()
        .unwrap_or(HealthStatus::Healthy))
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
