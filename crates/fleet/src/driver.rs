//! Executing a fleet rollout.

use crate::{
    ClusterStep, CommandError, JournalStore, LockLoss, RolloutError, TimelineEntry,
    health::{self, Judge},
    lock::{self, LockPolicy},
    renewal::Renewal,
};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tidegate_audit::{
    Action as AuditAction, Entry, OperationId, Outcome as AuditOutcome, Revision,
};
use tidegate_cluster::{ClientFactory, Holder, LeaseError, RequestCounts};
use tidegate_core::{Environment, ObjectKey, environment::Cluster};
use tidegate_health::HealthStatus;
use tidegate_render::Rendered;
use tidegate_rollout::{
    machine::{
        ClusterProgress, ClusterStart, Command, Event, FleetRollout, Outcome, RolloutConfig,
        Transition, TransitionKind,
    },
    plan_waves,
    windows::Windows,
};
use tidegate_sync::{Audit, DryRunCache, Engine, ObjectProblem, SyncError, SyncOptions, Target};
use tracing::{Instrument, info, info_span, warn};

/// The audit action of a wave that waits for `tidegate approve`.
pub const APPROVAL_REQUESTED: &str = "approval-requested";

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
    /// How often the health of clusters in flight or baking is read.
    pub poll: Duration,
    /// How long the lock lasts without renewal (renewed every third of it).
    pub lock_ttl: Duration,
    /// Who runs the rollout (lock holder and audit actor identity).
    pub identity: String,
    /// Revisions a failed rollout quarantined (never a rollback target).
    pub quarantined: BTreeSet<String>,
    /// The environment's custom health checks (built-in rules only by default).
    pub health_checks: Arc<tidegate_health::HealthChecks>,
    /// How many clusters are connected, read, dry-run, locked and released
    /// at once.
    pub concurrency: usize,
    /// Dry-run answers kept across rollouts, per cluster (a long-running
    /// caller such as the controller keeps them; the CLI starts empty). A
    /// cluster without one uses its engine's own, empty at connect.
    pub dry_run_caches: BTreeMap<String, DryRunCache>,
    /// `--ignore-windows --reason`: apply outside maintenance windows and
    /// during freezes, for this reason (audited).
    pub ignore_windows: Option<String>,
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
    /// Engines a long-running caller (the controller) already holds, by
    /// cluster: the rollout [shares](Engine::share) them instead of
    /// connecting, so its plans and health reads read their live state
    /// (the controller's watch caches), reuse their discovery and dry-run
    /// answers, and send only what changed. Clusters without one are
    /// connected afresh (the CLI's way).
    pub engines: ConnectedEngines,
}

/// Connected engines by cluster, handed to a rollout
/// ([`DriverOptions::engines`]).
#[derive(Clone, Default)]
pub struct ConnectedEngines(pub BTreeMap<String, Arc<Engine>>);

impl std::fmt::Debug for ConnectedEngines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
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
            concurrency: 8,
            dry_run_caches: BTreeMap::new(),
            ignore_windows: None,
            stop: None,
            stop_grace: Duration::from_secs(15),
            take_over_identity: None,
            engines: ConnectedEngines::default(),
        }
    }
}

/// The environment at one commit, rendered: what [`Revisions::render`] returns.
#[derive(Debug, Clone)]
pub struct RevisionRendering {
    /// The commit the revision resolved to (full SHA).
    pub commit: String,
    /// The environment file at that commit, its `discover:` entries expanded.
    pub environment: Environment,
    /// Its rendering for every cluster.
    pub rendered: Rendered,
}

/// Why another revision of the environment could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    /// The revision's environment or manifests have problems.
    #[error("revision {revision} has problems:\n{problems}")]
    Invalid {
        /// The revision asked for.
        revision: String,
        /// Every problem, at its file and line.
        problems: tidegate_core::Diagnostics,
    },
    /// Git could not be read (an unknown ref, a fetch that failed).
    #[error("revision {revision}: {source}")]
    Git {
        /// The revision asked for.
        revision: String,
        /// What Git said.
        #[source]
        source: tidegate_source::SourceError,
    },
}

/// Renders the environment at another revision (the rollback target).
pub trait Revisions: Send + Sync {
    /// The commit `revision` (a ref or SHA) resolves to, the environment
    /// file there (its `discover:` entries expanded) and its rendering.
    /// Implementations cache by commit: a rollback of N clusters renders
    /// its target once.
    fn render<'a>(
        &'a self,
        revision: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Arc<RevisionRendering>, RevisionError>>;
}

/// An extra verdict on a changed cluster, combined with its objects' health
/// (the worst wins): blue-green post-checks, for example.
pub trait ClusterCheck: Send + Sync {
    /// The cluster's status by this check.
    fn check<'a>(&'a self, cluster: &'a str, engine: &'a Engine) -> BoxFuture<'a, HealthStatus>;
}

/// Why approvals could not be read (the driver keeps waiting and asks again).
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The local audit trail could not be read.
    #[error("reading approvals from the audit trail: {0}")]
    Audit(#[from] tidegate_audit::AuditError),
    /// No cluster of the environment could be read.
    #[error("reading approvals: no cluster could be read ({})", clusters.join(", "))]
    Unreadable {
        /// The clusters tried.
        clusters: Vec<String>,
    },
}

/// Tells whether a wave was approved (`tidegate approve`).
pub trait Approvals: Send + Sync {
    /// True when `wave` of this rollout's revision is approved; an error
    /// when that cannot be known (never turned into `false` here).
    fn approved(&self, wave: u32) -> futures::future::BoxFuture<'_, Result<bool, ApprovalError>>;
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
    /// it turned Healthy at the target (since the rollout started).
    pub timeline: Vec<TimelineEntry>,
    /// Clusters that already ran the target revision but differed from Git
    /// (drift, or a sync that stopped part-way), and were applied.
    pub drift_corrected: Vec<String>,
    /// The audit operation of the interrupted run this one resumed.
    pub resumed_from: Option<u64>,
    /// True when every cluster already ran the revision, matched Git and
    /// was Healthy: nothing was written (no lock taken), no bake waited,
    /// nothing recorded in the audit trail.
    pub nothing_to_do: bool,
    /// The requests sent to each cluster by this run (its request counter).
    pub requests: BTreeMap<String, RequestCounts>,
}

/// One cluster's problem found by the pre-flight dry run.
#[derive(Debug, Clone)]
pub struct ClusterProblem {
    /// The cluster.
    pub cluster: String,
    /// What its dry run rejected (file:line, object, message, fix).
    pub problem: ObjectProblem,
}

/// Why a rollout was refused before anything was written anywhere.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// Objects some cluster rejects.
    pub problems: Vec<ClusterProblem>,
    /// Clusters that could not be reached, with why.
    pub unreachable: Vec<(String, String)>,
    /// Clusters that answered but refused a read for want of an RBAC
    /// permission, with the permission and the rule that grants it. They
    /// are reachable, so they do not count against `maxUnavailable`: the
    /// rollout is refused (a fix of the cluster's RBAC, not a retry, helps).
    pub forbidden: Vec<(String, String)>,
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
        if !self.forbidden.is_empty() {
            if !self.problems.is_empty() {
                writeln!(f)?;
            }
            write!(
                f,
                "{} cluster(s) refuse a read the rollout needs: its identity lacks an RBAC permission there; nothing was written to any cluster:",
                self.forbidden.len()
            )?;
            for (c, why) in &self.forbidden {
                write!(f, "\n  [cluster {c}] {why}")?;
            }
        }
        if self.unreachable.len() > self.max_unavailable as usize {
            if !self.problems.is_empty() || !self.forbidden.is_empty() {
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

/// Commands running (at most one per cluster), each answering with an event.
type Pending<'f> = FuturesUnordered<BoxFuture<'f, (String, Event)>>;
/// Health reads running (at most one per cluster).
/// A health read's answer: the cluster, its health and, when a gate failed
/// outright (fail fast, a PostSync hook), why.
type Polled = (String, HealthStatus, Option<String>);

type Polls<'f> = FuturesUnordered<BoxFuture<'f, Polled>>;

/// What is known about a cluster before the first write.
struct Found {
    /// Objects of what it runs now (its inventories).
    keys: Vec<(ObjectKey, String)>,
    start: ClusterStart,
}

/// One cluster surveyed before the first write: connected, its
/// inventories read, the target dry-run (unless resuming), its health.
struct Survey {
    cluster: String,
    engine: Option<Arc<Engine>>,
    /// The engine's requests before this rollout (a shared engine's
    /// counter runs on).
    counted_from: RequestCounts,
    /// What it runs, or why it cannot be reached or read.
    found: Result<Found, SyncError>,
    /// What its dry run rejected.
    problems: Vec<ObjectProblem>,
}

impl<F: ClientFactory> Driver<'_, F> {
    fn lock_policy(&self) -> LockPolicy {
        LockPolicy {
            break_lock: self.options.break_lock,
            take_over_dead: self.options.resume,
            ttl: self.options.lock_ttl,
        }
    }

    /// Runs the rollout to its end; `progress` gets one line per cluster at
    /// every poll. The future is `Send`, so it runs on any runtime.
    pub async fn run(
        &self,
        progress: &(dyn Fn(&[ClusterLine]) + Sync),
    ) -> Result<RolloutReport, RolloutError> {
        let span = info_span!("rollout", environment = %self.environment.metadata.name, revision = %self.revision);
        self.run_in_span(progress).instrument(span).await
    }

    async fn run_in_span(
        &self,
        progress: &(dyn Fn(&[ClusterLine]) + Sync),
    ) -> Result<RolloutReport, RolloutError> {
        let env = &self.environment.metadata.name;
        let plan = plan_waves(self.environment).map_err(RolloutError::Invalid)?;

        // Before any write anywhere, every cluster at once (bounded): connect,
        // what it runs now, and (for a new rollout) the dry run of the
        // target revision. A cluster that cannot be reached is Unknown.
        let surveys = self.environment.spec.clusters.iter();
        let surveys = bounded(
            surveys
                .map(|c| {
                    let span = info_span!("cluster", cluster = %c.name);
                    self.survey(c).instrument(span).boxed()
                })
                .collect(),
            self.options.concurrency,
        )
        .await;
        let mut engines: BTreeMap<String, Arc<Engine>> = BTreeMap::new();
        let mut counted_from: BTreeMap<String, RequestCounts> = BTreeMap::new();
        let mut unreachable: BTreeMap<String, String> = BTreeMap::new();
        let mut forbidden: BTreeMap<String, String> = BTreeMap::new();
        let mut found: BTreeMap<String, Found> = BTreeMap::new();
        let mut problems = Vec::new();
        for survey in surveys {
            let name = survey.cluster;
            if let Some(engine) = survey.engine {
                engines.insert(name.clone(), engine);
                counted_from.insert(name.clone(), survey.counted_from);
            }
            let f = survey.found.unwrap_or_else(|why| {
                match why.forbidden() {
                    // Reachable, but a read was refused: say which permission.
                    Some(denied) => {
                        forbidden
                            .insert(name.clone(), format!("{denied}; to fix: {}", denied.fix()));
                    }
                    None => {
                        unreachable.insert(name.clone(), why.to_string());
                    }
                }
                Found::unreachable()
            });
            found.insert(name.clone(), f);
            problems.extend(survey.problems.into_iter().map(|problem| ClusterProblem {
                cluster: name.clone(),
                problem,
            }));
        }
        problems.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        if !self.options.resume
            && (!problems.is_empty()
                || !forbidden.is_empty()
                || unreachable.len() > plan.max_unavailable as usize)
        {
            return Err(RolloutError::Refused(Preflight {
                problems,
                unreachable: unreachable.into_iter().collect(),
                forbidden: forbidden.into_iter().collect(),
                max_unavailable: plan.max_unavailable,
            }));
        }
        if !self.options.resume && self.nothing_to_do(&found, &unreachable) {
            info!("nothing to do: every cluster runs the revision, matches Git and is Healthy");
            return Ok(RolloutReport {
                outcome: Outcome::Succeeded,
                transitions: Vec::new(),
                timeline: Vec::new(),
                drift_corrected: Vec::new(),
                resumed_from: None,
                nothing_to_do: true,
                requests: requests_of(&engines, &counted_from),
            });
        }

        // Lock every reachable cluster (several at once).
        let holder = Holder::this_process(&self.options.identity);
        let takes = engines.iter().map(|(name, engine)| {
            let holder = &holder;
            async move {
                let taken = lock::take_over(
                    engine,
                    env,
                    holder,
                    self.lock_policy(),
                    self.options.take_over_identity.as_deref(),
                )
                .await;
                (name.clone(), taken)
            }
            .boxed()
        });
        let mut taken: Vec<(String, Result<(), LeaseError>)> =
            bounded(takes.collect(), self.options.concurrency).await;
        taken.sort_by(|a, b| a.0.cmp(&b.0));
        let mut locked = Vec::new();
        let mut refused = None;
        for (name, result) in taken {
            match result {
                Ok(()) => locked.push(name),
                Err(LeaseError::Cluster(e)) if unreachable.contains_key(&name) => {
                    warn!(cluster = %name, error = %e, "not locked: unreachable");
                }
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        if let Some(e) = refused {
            self.release(&engines, &locked, &holder).await;
            return Err(e.into());
        }
        let locked = Arc::new(Mutex::new(locked));
        let renewal = Renewal::spawn(
            engines
                .iter()
                .map(|(n, e)| (n.clone(), e.client().clone()))
                .collect(),
            locked.clone(),
            lock::lock_name(env),
            holder.clone(),
            self.options.lock_ttl,
        );
        let result = self
            .run_locked(&plan, &engines, found, &locked, &holder, &renewal, progress)
            .await;
        drop(renewal);
        let locked = locked.lock().map(|l| l.clone()).unwrap_or_default();
        // Releases only where this run still holds the lock.
        self.release(&engines, &locked, &holder).await;
        result.map(|mut report| {
            report.requests = requests_of(&engines, &counted_from);
            log_requests(&report.requests, "rollout finished");
            report
        })
    }

    /// Connects one cluster, reads what it runs, dry-runs the target (a new
    /// rollout) and reads its health (one LIST per kind).
    async fn survey(&self, cluster: &Cluster) -> Survey {
        let name = cluster.name.clone();
        // A caller's engine is shared (its watch caches, discovery and
        // dry-run answers); otherwise the cluster is connected afresh.
        let (connected, counted_from) = match self.options.engines.0.get(&name) {
            Some(held) => (Ok(held.share()), held.requests()),
            None => (
                Engine::connect(self.factory, cluster).await,
                RequestCounts::default(),
            ),
        };
        let engine = match connected {
            Ok(engine) => {
                // Health reads list only this environment's objects.
                let mut engine = engine
                    .with_health_checks(self.options.health_checks.clone())
                    .with_environment(&self.environment.metadata.name);
                if let Some(audit) = &self.audit {
                    engine = engine.with_audit(audit.clone());
                }
                if let Some(cache) = self.options.dry_run_caches.get(&name) {
                    engine = engine.with_dry_run_cache(cache.clone());
                }
                Arc::new(engine)
            }
            Err(e) => {
                return Survey {
                    cluster: name,
                    engine: None,
                    counted_from,
                    found: Err(e),
                    problems: Vec::new(),
                };
            }
        };
        let rendered = self.rendered.clusters.iter().find(|c| c.cluster == name);
        // The dry run reads the inventories itself: they are read once; and
        // the live objects, which judge the health of what it runs.
        let mut seen = None;
        let (inventories, differs, problems) = match (self.options.resume, rendered) {
            (false, Some(rendered)) => {
                let target = Target {
                    environment: self.environment,
                    cluster,
                    rendered,
                    revision: self.revision,
                };
                match engine.plan(&target, &self.sync_options()).await {
                    Ok(p) => {
                        // Objects left to prune count only when this run prunes.
                        let prune = self.options.prune || self.environment.spec.sync.prune;
                        let differs = p.objects.iter().any(|o| o.needs_apply())
                            || (prune && !p.prune.is_empty());
                        seen = Some((p.read, p.live));
                        (Ok(p.previous), differs, p.problems)
                    }
                    Err(e) => (Err(e), false, Vec::new()),
                }
            }
            _ => (
                engine.inventories(&self.environment.metadata.name).await,
                false,
                Vec::new(),
            ),
        };
        let inventories = match inventories {
            Ok(i) => i,
            Err(e) => {
                return Survey {
                    cluster: name,
                    engine: Some(engine),
                    counted_from,
                    found: Err(e),
                    problems,
                };
            }
        };
        let keys: Vec<(ObjectKey, String)> = inventories
            .iter()
            .flat_map(|i| i.objects.iter().map(|r| (r.key(), r.api_version.clone())))
            .collect();
        let health = match &seen {
            Some((read, live)) => health::worst_from(&engine, &keys, read, live).await,
            None => health::worst(&engine, &keys).await,
        };
        let start = ClusterStart {
            current_revision: inventories.first().map(|i| i.revision.clone()),
            last_good_revision: inventories.first().and_then(|i| i.healthy_revision.clone()),
            health,
            // A sync that stopped part-way is not "at" its revision.
            drifted: differs || inventories.iter().any(|i| i.incomplete()),
            unknown_state: false,
        };
        Survey {
            cluster: name,
            engine: Some(engine),
            counted_from,
            found: Ok(Found { keys, start }),
            problems,
        }
    }

    /// True when no cluster needs anything: all reachable, at the target
    /// revision, matching Git, Healthy, and recording the target as last
    /// healthy (or it is quarantined, so it never will). The machine would
    /// skip every wave; only the lock and the bookkeeping would be written.
    fn nothing_to_do(
        &self,
        found: &BTreeMap<String, Found>,
        unreachable: &BTreeMap<String, String>,
    ) -> bool {
        let quarantined = self.options.quarantined.contains(self.revision);
        unreachable.is_empty()
            && found.values().all(|f| {
                let s = &f.start;
                s.current_revision.as_deref() == Some(self.revision)
                    && !s.drifted
                    && !s.unknown_state
                    && s.health == HealthStatus::Healthy
                    && (quarantined || s.last_good_revision.as_deref() == Some(self.revision))
            })
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_locked(
        &self,
        plan: &tidegate_rollout::WavePlan,
        engines: &BTreeMap<String, Arc<Engine>>,
        found: BTreeMap<String, Found>,
        locked: &Mutex<Vec<String>>,
        holder: &Holder,
        renewal: &Renewal,
        progress: &(dyn Fn(&[ClusterLine]) + Sync),
    ) -> Result<RolloutReport, RolloutError> {
        let env = &self.environment.metadata.name;
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
                let started_ms = tidegate_audit::now_ms();
                let config = RolloutConfig {
                    quarantined: self.options.quarantined.clone(),
                    windows: self.windows(started_ms)?,
                    analysis: !self.environment.spec.rollout.analyses.is_empty(),
                    ..RolloutConfig::from_plan(plan, self.revision)
                };
                let m = FleetRollout::new(plan, config, starts.clone())?;
                (started_ms, m, None)
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
            let locked = locked_set(locked);
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
        let gates = crate::gates::Gates::new(self.environment, self.rendered, self.revision);

        // Commands and health reads run side by side: an apply never waits
        // for a poll. Commands of one cluster run one after the other.
        let mut pending: Pending<'_> = FuturesUnordered::new();
        let mut polls: Polls<'_> = FuturesUnordered::new();
        let mut analyses: FuturesUnordered<crate::analysis::Analyzing<'_>> =
            FuturesUnordered::new();
        // Commands of one cluster run one after the other, in order.
        let mut busy: BTreeSet<String> = BTreeSet::new();
        let mut polling: BTreeSet<String> = BTreeSet::new();
        let mut queued: BTreeMap<String, VecDeque<Command>> = BTreeMap::new();
        let mut transitions = Vec::new();
        let mut timeline = Vec::new();
        let mut waiting_for: Option<u32> = None;
        let mut outcome = None;
        let mut first = true;
        let mut saved: Option<FleetRollout> = None;
        let mut stopping = false;
        // One span per wave, one per cluster's command or health read in it.
        let mut spans = crate::spans::Spans::new(tracing::Span::current());
        let mut lost = renewal.watch();
        let mut ticker = tokio::time::interval(self.options.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let current_keys = &current_keys;
        let loss = loop {
            if let Some(loss) = renewal.lost() {
                break Some(loss);
            }
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
                            let span = spans.cluster(&machine, &cluster);
                            busy.insert(cluster);
                            let started = self.start(
                                engines,
                                locked,
                                holder,
                                &gates,
                                command,
                                &mut timeline,
                                elapsed(),
                            );
                            pending.push(Box::pin(started.instrument(span)));
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
                        self.audit_approval_requested(operation, wave)?;
                    }
                    Command::Analyze {
                        wave,
                        clusters,
                        baseline,
                    } => {
                        info!(wave, ?clusters, ?baseline, "metric analysis starts");
                        analyses.push(crate::analysis::run(
                            self.environment,
                            wave,
                            clusters,
                            baseline,
                        ));
                    }
                    Command::Finished(o) => outcome = Some(o),
                }
            }
            self.forward(&mut machine, operation, &mut transitions)?;
            if saved.as_ref() != Some(&machine) {
                self.save_journal(started_ms, operation, &machine).await?;
                saved = Some(machine.clone());
            }
            if outcome.is_some() && pending.is_empty() {
                break None;
            }
            // A bake ends when it ends, not at the next poll.
            let bake_left = machine
                .bake_ends_at()
                .map(|at| at.saturating_sub(elapsed()))
                .filter(|left| !left.is_zero());
            tokio::select! {
                biased;
                Ok(()) = lost.changed() => {}
                () = crate::interrupt::stopped(self.options.stop.as_ref()) => {
                    stopping = true;
                    break None;
                }
                () = tokio::time::sleep(bake_left.unwrap_or_default()), if bake_left.is_some() => {}
                Some((cluster, event)) = pending.next(), if !pending.is_empty() => {
                    let answered = matches!(event, Event::Applied { .. } | Event::RolledBack { .. });
                    if matches!(event, Event::ApplyFailed { .. }) {
                        gates.sync_failed(&cluster, engines.get(&cluster));
                    }
                    self.answered(&mut machine, &mut timeline, &cluster, event, elapsed());
                    busy.remove(&cluster);
                    if let Some(next) = queued.get_mut(&cluster).and_then(VecDeque::pop_front) {
                        busy.insert(cluster.clone());
                        let span = spans.cluster(&machine, &cluster);
                        let started = self.start(engines, locked, holder, &gates, next, &mut timeline, elapsed());
                        pending.push(Box::pin(started.instrument(span)));
                    } else if answered {
                        // Its health is read at once, not at the next tick.
                        for (cluster, judge, state) in health::to_read(&machine, &polling, Some(&cluster)) {
                            polling.insert(cluster.clone());
                            let span = spans.cluster(&machine, &cluster);
                            let polled = self.poll(engines, current_keys, &gates, cluster, judge, state, elapsed());
                            polls.push(Box::pin(polled.instrument(span)));
                        }
                    }
                }
                Some((cluster, status, failed)) = polls.next(), if !polls.is_empty() => {
                    polling.remove(&cluster);
                    let before = progress_of(&machine, &cluster);
                    machine.observe(elapsed(), Event::Health { cluster: cluster.clone(), status });
                    if let Some(message) = failed {
                        // Fail fast or a failed PostSync hook: the wave fails now.
                        warn!(%cluster, %message, "gate failed");
                        timeline.push((cluster.clone(), ClusterStep::GateFailed, elapsed()));
                        machine.observe(elapsed(), Event::GateFailed { cluster: cluster.clone(), message });
                        gates.sync_failed(&cluster, engines.get(&cluster));
                    }
                    if before != Some(ClusterProgress::Updated)
                        && progress_of(&machine, &cluster) == Some(ClusterProgress::Updated)
                    {
                        timeline.push((cluster, ClusterStep::Healthy, elapsed()));
                    }
                }
                Some(event) = analyses.next(), if !analyses.is_empty() => {
                    machine.observe(elapsed(), event);
                }
                _ = ticker.tick() => {
                    if let Some(wave) = waiting_for {
                        match self.approvals.approved(wave).await {
                            Ok(true) => {
                                machine.observe(elapsed(), Event::Approved { wave });
                                waiting_for = None;
                            }
                            Ok(false) => {}
                            Err(e) => warn!(wave, error = %e, "approvals could not be read; still waiting"),
                        }
                    }
                    // Health only of clusters in flight or in the wave being
                    // gated; one read per kind; at most one read per cluster.
                    for (cluster, judge, state) in health::to_read(&machine, &polling, None) {
                        polling.insert(cluster.clone());
                        let span = spans.cluster(&machine, &cluster);
                        let polled = self.poll(engines, current_keys, &gates, cluster, judge, state, elapsed());
                        polls.push(Box::pin(polled.instrument(span)));
                    }
                    progress(&lines(&machine, elapsed()));
                    self.record_hooks(operation, gates.take_finished().await)?;
                }
            }
        };
        if let Some((cluster, loss)) = loss {
            return self
                .stop_after_loss(
                    &mut machine,
                    operation,
                    started_ms,
                    pending,
                    &mut timeline,
                    &mut transitions,
                    cluster,
                    loss,
                    &elapsed,
                )
                .await;
        }
        if stopping {
            // Let the steps in flight finish (bounded), record them, and
            // stop: the journal says what is left. The interruption itself
            // is not a failure: it starts no SyncFail hook (the resumed
            // rollout decides). A step that fails while finishing, and
            // SyncFail hooks a failure started before the stop, are
            // waited for within the same grace and recorded.
            let grace = tokio::time::sleep(self.options.stop_grace);
            tokio::pin!(grace);
            while !pending.is_empty() {
                tokio::select! {
                    Some((cluster, event)) = pending.next() => {
                        if matches!(event, Event::ApplyFailed { .. }) {
                            gates.sync_failed(&cluster, engines.get(&cluster));
                        }
                        self.answered(&mut machine, &mut timeline, &cluster, event, elapsed());
                        busy.remove(&cluster);
                    }
                    () = &mut grace => break,
                }
            }
            drop(pending);
            tokio::select! {
                () = gates.wait_sync_fail() => {}
                () = &mut grace => warn!("SyncFail hooks still running at the end of the stop grace: their Jobs go on in the clusters, their outcome is not recorded"),
            }
            self.record_hooks(operation, gates.take_finished().await)?;
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
        gates.wait_sync_fail().await;
        self.record_hooks(operation, gates.take_finished().await)?;
        gates.wait_sync_fail().await;
        self.record_hooks(operation, gates.take_finished().await)?;
        let outcome = outcome.unwrap_or(Outcome::Succeeded);
        // Only a revision that completed its rollout becomes a cluster's
        // last good revision (the rollback target).
        if let Some(goods) = machine.last_good_after() {
            let apps: Vec<String> = self
                .environment
                .spec
                .apps
                .iter()
                .map(|a| a.name.clone())
                .collect();
            let marks = goods.into_iter().filter_map(|(name, good)| {
                let before = starts
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, s)| s.last_good_revision.clone());
                let good = good.filter(|g| Some(g) != before.as_ref())?;
                let engine = engines.get(&name)?;
                let apps = &apps;
                Some(
                    async move {
                        if let Err(e) = engine.mark_healthy(env, apps, &good).await {
                            warn!(cluster = %name, error = %e, "recording the last good revision failed");
                        }
                    }
                    .boxed(),
                )
            });
            bounded(marks.collect(), self.options.concurrency).await;
        }
        self.audit_finish(operation, &outcome, elapsed())?;
        if let Some(j) = &self.journal {
            j.remove().await?;
        }
        let applied: BTreeSet<&str> = timeline
            .iter()
            .filter(|(_, step, _)| *step == ClusterStep::Applied)
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
            nothing_to_do: false,
            requests: BTreeMap::new(),
        })
    }

    /// Records a command's answer in the timeline and the machine.
    fn answered(
        &self,
        machine: &mut FleetRollout,
        timeline: &mut Vec<TimelineEntry>,
        cluster: &str,
        event: Event,
        now: Duration,
    ) {
        if let Some(step) = ClusterStep::of(&event) {
            timeline.push((cluster.to_string(), step, now));
        }
        machine.observe(now, event);
    }

    /// The lock was lost: no further command. The commands in flight are let
    /// finish and observed, the machine journaled (for `--resume`), the
    /// audit operation ended as aborted.
    #[allow(clippy::too_many_arguments)]
    async fn stop_after_loss(
        &self,
        machine: &mut FleetRollout,
        operation: Option<OperationId>,
        started_ms: i64,
        mut pending: Pending<'_>,
        timeline: &mut Vec<TimelineEntry>,
        transitions: &mut Vec<Transition>,
        cluster: String,
        loss: LockLoss,
        elapsed: &(dyn Fn() -> Duration + Send + Sync),
    ) -> Result<RolloutReport, RolloutError> {
        warn!(%cluster, %loss, in_flight = pending.len(), "the environment lock was lost: stopping the rollout");
        let mut finished = Vec::new();
        while let Some((name, event)) = pending.next().await {
            self.answered(machine, timeline, &name, event, elapsed());
            finished.push(name);
        }
        finished.sort();
        self.forward(machine, operation, transitions)?;
        self.save_journal(started_ms, operation, machine).await?;
        let error = RolloutError::LockLost {
            environment: self.environment.metadata.name.clone(),
            cluster,
            loss,
            finished,
        };
        self.audit_interrupted(operation, &error, elapsed())?;
        Err(error)
    }

    /// Journals the machine, if this run has a journal.
    async fn save_journal(
        &self,
        started_ms: i64,
        operation: Option<OperationId>,
        machine: &FleetRollout,
    ) -> Result<(), RolloutError> {
        if let Some(j) = &self.journal {
            j.save(started_ms, operation.map(|o| o.0), machine).await?;
        }
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
        locked: &Mutex<Vec<String>>,
        elapsed: Duration,
    ) -> Result<RolloutReport, RolloutError> {
        self.forward(machine, operation, transitions)?;
        self.save_journal(started_ms, operation, machine).await?;
        let journal = match &self.journal {
            Some(j) => j.location(),
            None => "(no journal: the next run starts over)".to_string(),
        };
        let in_flight: Vec<String> = in_flight.into_iter().collect();
        if let Some(audit) = &self.audit {
            let locked = locked_set(locked);
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
                    .env(env)
                    .revisions(None, Some(Revision::sha(self.revision)))
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

    /// Reads one cluster's health: the target's objects once touched,
    /// otherwise what it ran before. Unknown when it cannot be read.
    #[allow(clippy::too_many_arguments)]
    fn poll<'s>(
        &'s self,
        engines: &'s BTreeMap<String, Arc<Engine>>,
        current_keys: &'s BTreeMap<String, Vec<(ObjectKey, String)>>,
        gates: &'s crate::gates::Gates,
        cluster: String,
        judge: Judge,
        state: ClusterProgress,
        now: Duration,
    ) -> BoxFuture<'s, Polled> {
        Box::pin(async move {
            let Some(engine) = engines.get(&cluster) else {
                return (cluster, HealthStatus::Unknown, None);
            };
            let keys = match judge {
                Judge::Target => self.target_keys(&cluster),
                Judge::Current => current_keys.get(&cluster).cloned().unwrap_or_default(),
            };
            let mut status = health::worst(engine, &keys).await;
            if let (Some(check), true) = (self.check, touched(state)) {
                status = status.max(check.check(&cluster, engine).await);
            }
            // Fail fast and PostSync hooks (only for clusters in flight).
            let deployments: Vec<ObjectKey> = keys
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| k.group == "apps" && k.kind == "Deployment")
                .collect();
            let judged = gates
                .judge(&cluster, engine, state, status, &deployments, now)
                .await;
            (cluster, judged.status, judged.failed)
        })
    }

    /// Starts one command of a cluster (the previous one of that cluster has ended).
    #[allow(clippy::too_many_arguments)]
    fn start<'s>(
        &'s self,
        engines: &'s BTreeMap<String, Arc<Engine>>,
        locked: &'s Mutex<Vec<String>>,
        holder: &'s Holder,
        gates: &'s crate::gates::Gates,
        command: Command,
        timeline: &mut Vec<TimelineEntry>,
        now: Duration,
    ) -> BoxFuture<'s, (String, Event)> {
        match command {
            Command::Apply { cluster, revision } => {
                timeline.push((cluster.clone(), ClusterStep::Apply, now));
                Box::pin(async move {
                    if let Err(e) = self.lock_late(engines, locked, holder, &cluster).await {
                        let message = e.to_string();
                        return (cluster.clone(), Event::ApplyFailed { cluster, message });
                    }
                    self.apply(engines, gates, cluster, revision).await
                })
            }
            Command::Rollback {
                cluster,
                to: Some(to),
            } => {
                timeline.push((cluster.clone(), ClusterStep::Rollback, now));
                Box::pin(self.rollback(engines, cluster, Some(to)))
            }
            Command::Remove { cluster } => {
                timeline.push((cluster.clone(), ClusterStep::Rollback, now));
                Box::pin(self.rollback(engines, cluster, None))
            }
            Command::Rollback { cluster, to: None } => Box::pin(std::future::ready((
                cluster.clone(),
                Event::RollbackFailed {
                    cluster,
                    message: "no rollback target".into(),
                },
            ))),
            Command::AwaitApproval { .. } | Command::Analyze { .. } | Command::Finished(_) => {
                Box::pin(std::future::pending())
            }
        }
    }

    /// Takes the lock of a cluster that could not be locked at the start
    /// (unreachable then) before the first write to it.
    async fn lock_late(
        &self,
        engines: &BTreeMap<String, Arc<Engine>>,
        locked: &Mutex<Vec<String>>,
        holder: &Holder,
        cluster: &str,
    ) -> Result<(), CommandError> {
        let already = locked
            .lock()
            .map(|l| l.iter().any(|c| c == cluster))
            .unwrap_or(false);
        if already {
            return Ok(());
        }
        let engine = engines
            .get(cluster)
            .ok_or_else(|| CommandError::Unreachable(cluster.to_string()))?;
        lock::take_over(
            engine,
            &self.environment.metadata.name,
            holder,
            self.lock_policy(),
            self.options.take_over_identity.as_deref(),
        )
        .await?;
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
        gates: &crate::gates::Gates,
        cluster: String,
        revision: String,
    ) -> (String, Event) {
        let result = async {
            let engine = engines
                .get(&cluster)
                .ok_or_else(|| CommandError::Unreachable(cluster.clone()))?;
            let definition = self.environment.cluster(&cluster).ok_or_else(|| {
                CommandError::NotInEnvironment {
                    cluster: cluster.clone(),
                    revision: revision.clone(),
                }
            })?;
            let rendered = self
                .rendered
                .clusters
                .iter()
                .find(|c| c.cluster == cluster)
                .ok_or_else(|| CommandError::NotRendered {
                    cluster: cluster.clone(),
                    revision: revision.clone(),
                })?;
            if revision != self.revision {
                return Err(CommandError::OtherRevision(revision.clone()));
            }
            let target = Target {
                environment: self.environment,
                cluster: definition,
                rendered,
                revision: self.revision,
            };
            let report = engine.sync(&target, &self.sync_options(), &|_| {}).await?;
            // Fail fast watches the Deployments this sync changed.
            gates.applied(&cluster, &report);
            Ok::<(), CommandError>(())
        }
        .await;
        let event = match result {
            Ok(()) => Event::Applied {
                cluster: cluster.clone(),
            },
            Err(e) => Event::ApplyFailed {
                cluster: cluster.clone(),
                message: e.to_string(),
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
                .ok_or_else(|| CommandError::Unreachable(cluster.clone()))?;
            let Some(to) = to else {
                return self.remove(engine, &cluster).await;
            };
            let rendering =
                self.revisions
                    .render(&to)
                    .await
                    .map_err(|error| CommandError::Render {
                        revision: to.clone(),
                        error,
                    })?;
            let (environment, rendered) = (&rendering.environment, &rendering.rendered);
            let definition =
                environment
                    .cluster(&cluster)
                    .ok_or_else(|| CommandError::NotInEnvironment {
                        cluster: cluster.clone(),
                        revision: to.clone(),
                    })?;
            let cluster_render = rendered
                .clusters
                .iter()
                .find(|c| c.cluster == cluster)
                .ok_or_else(|| CommandError::NotRendered {
                    cluster: cluster.clone(),
                    revision: to.clone(),
                })?;
            let target = Target {
                environment,
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
            Err(e) => Event::RollbackFailed {
                cluster: cluster.clone(),
                message: e.to_string(),
            },
        };
        (cluster, event)
    }

    /// Removes what a first deploy created: a sync of no apps, pruning
    /// every object of this environment's inventories and the inventories.
    async fn remove(&self, engine: &Engine, cluster: &str) -> Result<(), CommandError> {
        let mut environment = self.environment.clone();
        environment.spec.apps.clear();
        let definition =
            environment
                .cluster(cluster)
                .ok_or_else(|| CommandError::NotInEnvironment {
                    cluster: cluster.to_string(),
                    revision: self.revision.to_string(),
                })?;
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
    ) -> Result<(), CommandError> {
        let options = SyncOptions {
            prune: true,
            allow_empty,
            ..self.sync_options()
        };
        engine.sync(target, &options, &|_| {}).await?;
        Ok(())
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
            let entries: Vec<Entry> = new
                .iter()
                .flat_map(|t| match &t.kind {
                    TransitionKind::Analysis { wave, report } => {
                        crate::analysis::entries(|| self.entry_base(audit), *wave, report)
                    }
                    _ => self.entry_of(audit, t).into_iter().collect(),
                })
                .collect();
            audit.sink.record_batch(op, entries)?;
        }
        all.extend(new);
        Ok(())
    }

    /// The maintenance windows of the rollout, its clock reading zero at
    /// `started_ms`, overridden when `--ignore-windows` was given.
    fn windows(&self, started_ms: i64) -> Result<Windows, RolloutError> {
        let windows = Windows::from_environment(self.environment, started_ms)
            .map_err(RolloutError::Windows)?;
        Ok(match &self.options.ignore_windows {
            Some(reason) => windows.ignoring(reason.clone()),
            None => windows,
        })
    }

    /// An entry of this rollout (actor, environment, target revision).
    fn entry_base(&self, audit: &Audit) -> Entry {
        Entry::new(audit.actor.clone(), AuditAction::Other(String::new()))
            .env(&self.environment.metadata.name)
            .revisions(None, Some(Revision::sha(self.revision)))
    }

    /// Records that a wave waits for approval (`approval-requested`, with
    /// the wave in `details`): what notifications' `approval-needed` is.
    fn audit_approval_requested(
        &self,
        operation: Option<OperationId>,
        wave: u32,
    ) -> Result<(), RolloutError> {
        if let (Some(audit), Some(op)) = (&self.audit, operation) {
            let env = &self.environment.metadata.name;
            let mut e = self.entry_base(audit).message(format!(
                "wave {wave} waits for approval: tidegate approve --env {env} --wave {wave}"
            ));
            e.action = AuditAction::Other(APPROVAL_REQUESTED.into());
            e.details.insert("wave".into(), wave.to_string());
            audit.sink.record(op, e)?;
        }
        Ok(())
    }

    /// Records hook runs (PostSync, SyncFail) in the rollout's operation.
    fn record_hooks(
        &self,
        operation: Option<OperationId>,
        runs: Vec<(String, tidegate_sync::HookRun)>,
    ) -> Result<(), RolloutError> {
        if let (Some(audit), Some(op), false) = (&self.audit, operation, runs.is_empty()) {
            let env = &self.environment.metadata.name;
            let entries = runs
                .iter()
                .map(|(cluster, run)| audit.hook_entry(env, cluster, self.revision, run))
                .collect();
            audit.sink.record_batch(op, entries)?;
        }
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
            TransitionKind::RolloutStart { .. }
            | TransitionKind::RolloutEnd { .. }
            | TransitionKind::Analysis { .. } => return None,
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
            TransitionKind::WindowClosed { .. } | TransitionKind::WindowsIgnored { .. } => {
                crate::windows::entry(e, &t.kind)?
            }
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

    /// Ends the audit operation of a rollout stopped by `error` (aborted).
    fn audit_interrupted(
        &self,
        operation: Option<OperationId>,
        error: &RolloutError,
        elapsed: Duration,
    ) -> Result<(), RolloutError> {
        let (Some(audit), Some(op)) = (&self.audit, operation) else {
            return Ok(());
        };
        let mut end = Entry::new(audit.actor.clone(), AuditAction::RolloutEnd)
            .env(&self.environment.metadata.name)
            .revisions(None, Some(Revision::sha(self.revision)))
            .outcome(AuditOutcome::Aborted)
            .message(format!("stopped: {error}"));
        end.duration_ms = Some(elapsed.as_millis() as u64);
        audit.sink.finish_operation(op, end)?;
        Ok(())
    }

    /// Releases the lock in `locked` (several clusters at once); a cluster
    /// where someone else holds it now is left alone.
    async fn release(
        &self,
        engines: &BTreeMap<String, Arc<Engine>>,
        locked: &[String],
        holder: &Holder,
    ) {
        let env = &self.environment.metadata.name;
        let releases = locked.iter().filter_map(|name| engines.get(name));
        let releases = releases.map(|engine| lock::release(engine, env, holder).boxed());
        bounded(releases.collect(), self.options.concurrency).await;
    }
}

/// Runs `futures`, at most `limit` at a time, in completion order. (They
/// are boxed by the caller: a closure over references inside the stream
/// would make the driver's future unprovably `Send`, rust-lang/rust#102211.)
async fn bounded<'a, T: Send + 'a>(futures: Vec<BoxFuture<'a, T>>, limit: usize) -> Vec<T> {
    futures::stream::iter(futures)
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}

/// The clusters this run holds the lock of now (whose interrupted audit
/// operations it may close).
fn locked_set(locked: &Mutex<Vec<String>>) -> BTreeSet<String> {
    locked
        .lock()
        .map(|l| l.iter().cloned().collect())
        .unwrap_or_default()
}

/// Logs the requests a rollout sent, summed over its clusters.
fn log_requests(requests: &BTreeMap<String, RequestCounts>, message: &str) {
    let total = requests
        .values()
        .fold(RequestCounts::default(), |a, b| RequestCounts {
            reads: a.reads + b.reads,
            watches: a.watches + b.watches,
            dry_runs: a.dry_runs + b.dry_runs,
            writes: a.writes + b.writes,
            ..RequestCounts::default()
        });
    info!(
        clusters = requests.len(),
        reads = total.reads,
        dry_runs = total.dry_runs,
        writes = total.writes,
        "{message}"
    );
}

/// The requests each engine has sent since the rollout began.
fn requests_of(
    engines: &BTreeMap<String, Arc<Engine>>,
    counted_from: &BTreeMap<String, RequestCounts>,
) -> BTreeMap<String, RequestCounts> {
    engines
        .iter()
        .map(|(n, e)| {
            let from = counted_from.get(n).copied().unwrap_or_default();
            (n.clone(), e.requests().since(from))
        })
        .collect()
}

/// Where a cluster stands in the machine.
fn progress_of(machine: &FleetRollout, cluster: &str) -> Option<ClusterProgress> {
    machine
        .clusters()
        .find(|v| v.name == cluster)
        .map(|v| v.progress)
}

/// True when the rollout changed the cluster (its extra check applies).
fn touched(progress: ClusterProgress) -> bool {
    matches!(
        progress,
        ClusterProgress::Progressing | ClusterProgress::Updated
    )
}

/// One progress line per cluster.
fn lines(machine: &FleetRollout, now: Duration) -> Vec<ClusterLine> {
    machine
        .clusters()
        .map(|v| ClusterLine {
            cluster: v.name.to_string(),
            wave: v.wave,
            state: format!("{:?}", v.progress),
            health: v.health,
            elapsed: v.since.map(|s| now.saturating_sub(s)),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Compile-time proof: the driver's futures are `Send` for every client
    /// factory, so a multi-threaded runtime (the controller) can run them.
    #[allow(dead_code)]
    fn driver_futures_are_send<F: ClientFactory>(
        driver: &Driver<'_, F>,
        check: &dyn ClusterCheck,
        engine: &Engine,
        engines: &BTreeMap<String, Arc<Engine>>,
        gates: &crate::gates::Gates,
    ) {
        assert_send(&driver.run(&|_| {}));
        assert_send(&check.check("c", engine));
        let pending: Pending<'_> = FuturesUnordered::new();
        pending.push(driver.apply(engines, gates, "c".into(), "r".into()).boxed());
        assert_send(&pending);
    }

    #[test]
    fn the_driver_futures_are_send() {
        // Type-checking `driver_futures_are_send` is the test; naming it
        // here keeps it from being optimised out of the build.
        let _ = driver_futures_are_send::<tidegate_cluster::KubeconfigFactory>;
    }
}
