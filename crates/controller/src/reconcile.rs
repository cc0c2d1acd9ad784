//! One environment's reconcile loop: fetch on an interval or a trigger,
//! roll new commits out, check drift that watch events point at.

use crate::{
    Application, Backoff, ControllerOptions, Loaded, RollOutControl, TriggerReceiver,
    drift::{Drift, DriftKey, Episodes},
    observe::{Event, RolloutOutcome},
    watch::{Changed, ClusterWatch},
};
use futures::StreamExt;
use kube::runtime::scheduler::{ScheduleRequest, debounced_scheduler};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};
use tidegate_app::AppError;
use tidegate_audit::{Action as AuditAction, Actor, Entry, Revision, Trigger as AuditTrigger};
use tidegate_core::ObjectKey;
use tidegate_fleet::{Outcome, RolloutError};
use tidegate_sync::{Engine, SyncOptions, Target};
use tokio::{
    sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel},
    time::Instant,
};
use tracing::{Instrument, debug, error, info, info_span, warn};

mod split;

/// The connected clusters of every environment, by (environment, cluster),
/// shared with the [`Controller`](crate::Controller) so it can count their requests.
pub type Engines = Arc<Mutex<BTreeMap<(String, String), Arc<Engine>>>>;

/// Why the head revision is not rolled out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Skip {
    /// Quarantined by a failed rollout: skipped until a newer commit or
    /// `tidegate unquarantine` (checked every interval).
    Quarantined,
    /// Refused by the pre-flight dry run or halted: skipped until a newer commit.
    UntilNewerCommit,
}

/// What a rollout ended with, for the loop.
enum Rolled {
    /// The fleet runs the revision.
    Done,
    /// Not rolled out; do not retry this revision until the reason goes.
    Skipped(Skip),
    /// Could not run (lock held, Git or the audit trail failing, ...): retry later.
    Retry,
    /// Refused because more clusters than `maxUnavailable` cannot be
    /// reached (reported, nothing written): retry after this backoff.
    Unreachable(Duration),
}

/// One environment followed by the controller (run as its own task).
pub struct EnvironmentLoop<A: Application> {
    app: Arc<A>,
    name: String,
    options: Arc<ControllerOptions>,
    engines: Engines,
    /// What the fleet runs (what drift is judged against), once known.
    current: Option<Arc<Loaded>>,
    /// The revision the fleet runs when its rendering was let go for a
    /// rollout that did not end at the new revision and could not be loaded
    /// again then (loaded at the next fetch).
    unloaded: Option<String>,
    /// A head revision not rolled out, and why.
    skipped: Option<(String, Skip)>,
    /// The last invalid-commit message logged (logged once).
    invalid: Option<String>,
    watches: BTreeMap<String, ClusterWatch>,
    changes: UnboundedSender<Changed>,
    episodes: Episodes,
    cluster_backoff: BTreeMap<String, Backoff>,
    /// Clusters reported unreachable, with why (one report per episode).
    unreachable: BTreeMap<String, String>,
    fetch_backoff: Backoff,
    /// Turns true on shutdown: a rollout under way stops safely.
    stopping: Option<tokio::sync::watch::Receiver<bool>>,
    /// With `--shard`: this loop's part (owner or watcher of a split
    /// environment; see [`crate::split`]).
    split: Option<crate::split::Split>,
}

impl<A: Application> EnvironmentLoop<A> {
    /// A loop for `name`; its engines are registered in `engines`.
    pub fn new(
        app: Arc<A>,
        name: &str,
        options: Arc<ControllerOptions>,
        engines: Engines,
    ) -> (EnvironmentLoop<A>, UnboundedReceiver<Changed>) {
        let (changes, received) = unbounded_channel();
        (
            EnvironmentLoop {
                app,
                name: name.to_string(),
                options,
                engines,
                current: None,
                unloaded: None,
                skipped: None,
                invalid: None,
                watches: BTreeMap::new(),
                changes,
                episodes: Episodes::default(),
                cluster_backoff: BTreeMap::new(),
                unreachable: BTreeMap::new(),
                fetch_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
                stopping: None,
                split: None,
            },
            received,
        )
    }

    /// A rollout under way stops safely (steps in flight finish, journal
    /// kept, audit closed, locks released) when `stopping` turns true.
    pub fn with_stop(mut self, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stopping = Some(stopping);
        self
    }

    /// Runs until `stop` resolves.
    pub async fn run(
        mut self,
        changes: UnboundedReceiver<Changed>,
        mut trigger: TriggerReceiver,
        stop: impl Future<Output = ()> + Send,
    ) {
        let span = info_span!("environment", environment = %self.name);
        async move {
            let mut changes = changes;
            let (retry, retries) = unbounded_channel::<ScheduleRequest<DriftKey>>();
            let mut retries = retries;
            let noticed = futures::stream::poll_fn(move |cx| changes.poll_recv(cx)).map(|c| {
                ScheduleRequest {
                    message: DriftKey {
                        cluster: c.cluster,
                        app: c.app,
                    },
                    run_at: Instant::now(),
                }
            });
            let retried = futures::stream::poll_fn(move |cx| retries.poll_recv(cx));
            let queue = debounced_scheduler(
                futures::stream::select(noticed, retried),
                self.options.debounce,
            );
            let mut queue = std::pin::pin!(queue);
            let mut stop = std::pin::pin!(stop);
            let mut next_fetch = Instant::now();
            let mut trigger_kind = AuditTrigger::ControllerPoll;
            let mut logged = tidegate_cluster::RequestCounts::default();
            let mut observed = BTreeMap::new();
            let mut sharded = self.sharded();
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    Some(change) = sharded.next() => self.on_shard_change(change, &mut sharded).await,
                    () = tokio::time::sleep_until(next_fetch) => {
                        let wait = self.fetch(trigger_kind).await;
                        trigger_kind = AuditTrigger::ControllerPoll;
                        next_fetch = Instant::now() + wait;
                    }
                    () = trigger.wanted(&self.name) => {
                        info!("fetch asked for");
                        let wait = self.fetch(AuditTrigger::Webhook).await;
                        next_fetch = Instant::now() + wait;
                    }
                    Some(key) = queue.next() => {
                        if let Some(after) = self.check_drift(&key).await {
                            let _ = retry.send(ScheduleRequest { message: key, run_at: Instant::now() + after });
                        }
                    }
                }
                self.observe_requests(&mut observed);
                let now = self.requests();
                if now != logged {
                    logged = now;
                    debug!(
                        reads = now.reads,
                        watches = now.watches,
                        dry_runs = now.dry_runs,
                        writes = now.writes,
                        "requests so far (watch caches and drift checks)"
                    );
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// The requests this environment's connections sent so far (rollouts
    /// connect their own).
    fn requests(&self) -> tidegate_cluster::RequestCounts {
        let engines = self.engines.lock().map(|e| e.clone()).unwrap_or_default();
        sum(engines
            .iter()
            .filter(|((env, _), _)| *env == self.name)
            .map(|(_, e)| e.requests()))
    }

    /// Tells the observers how many more requests each cluster's connection
    /// sent since `observed` (updated).
    fn observe_requests(&self, observed: &mut BTreeMap<String, tidegate_cluster::RequestCounts>) {
        let engines = self.engines.lock().map(|e| e.clone()).unwrap_or_default();
        for ((env, cluster), engine) in engines {
            if env != self.name {
                continue;
            }
            let now = engine.requests();
            let before = observed.insert(cluster.clone(), now).unwrap_or_default();
            if now != before {
                self.options.observers.emit(Event::Requests {
                    cluster,
                    counts: Box::new(now.since(before)),
                });
            }
        }
    }

    /// Fetches the source; rolls a new commit out. Returns when to fetch next.
    async fn fetch(&mut self, trigger: AuditTrigger) -> Duration {
        let interval = self.current.as_ref().map_or(Duration::from_secs(180), |c| {
            c.environment.spec.sync.interval.0
        });
        if self.current.is_none()
            && let Some(revision) = self.unloaded.take()
        {
            self.reload(&revision).await;
        }
        let started = std::time::Instant::now();
        let head = self.app.load_head(&self.name).await;
        self.options.observers.emit(Event::Fetched {
            environment: self.name.clone(),
            duration: started.elapsed(),
            ok: matches!(head, Ok(_) | Err(AppError::Invalid(_))),
        });
        let loaded = match head {
            Ok(loaded) => {
                let source = &loaded.environment.spec.source;
                self.options.observers.emit(Event::Following {
                    environment: self.name.clone(),
                    repo_url: source.repo_url.clone(),
                    git_ref: source.git_ref.clone(),
                });
                self.options.observers.emit(Event::Environment(Box::new(
                    crate::view::EnvironmentView::of(&loaded.environment, &loaded.revision),
                )));
                self.fetch_backoff.succeeded();
                self.invalid = None;
                loaded
            }
            Err(AppError::Invalid(problems)) => {
                let text = problems.to_string();
                if self.invalid.as_deref() != Some(text.as_str()) {
                    error!(
                        "the head commit is invalid; nothing is rolled out until a newer commit fixes it:\n{text}"
                    );
                    self.invalid = Some(text);
                }
                return interval;
            }
            Err(e) => {
                let wait = self.fetch_backoff.failed().min(interval);
                warn!(error = %e, retry_in = ?wait, "fetching the source failed");
                return wait;
            }
        };
        let interval = loaded.environment.spec.sync.interval.0;
        let head = loaded.revision.clone();
        if self.is_watcher() {
            // A read-only watcher of a split environment: it follows the
            // head, never rolls out.
            self.follow(loaded).await;
            return interval;
        }
        if self.current.as_ref().is_some_and(|c| c.revision == head) {
            // Watches started now (a cluster reached again) did not see what
            // changed before they listed: check those apps once.
            if self.ensure_watches().await {
                self.survey().await;
                self.log_watching();
            }
            return interval;
        }
        match &self.skipped {
            Some((rev, Skip::UntilNewerCommit)) if *rev == head => return interval,
            _ => {}
        }
        let quarantined = match self.app.quarantined(&loaded.environment).await {
            Ok(list) if list.contains(&head) => {
                if self.skipped.as_ref().is_none_or(|(r, _)| *r != head) {
                    warn!(revision = %short(&head), "the head revision is quarantined: not rolled out until a newer commit or `tidegate unquarantine --env {} --revision {head}`", self.name);
                    self.skipped = Some((head, Skip::Quarantined));
                }
                return interval;
            }
            Ok(list) => list,
            Err(e) => {
                warn!(error = %e, "reading the quarantine list failed; retrying");
                return self.fetch_backoff.failed().min(interval);
            }
        };
        let loaded = Arc::new(loaded);
        if self.current.is_none() && !self.journaled(&head).await && self.fleet_runs(&loaded).await
        {
            info!(revision = %short(&head), "every cluster runs the head revision: following it");
            self.adopt(loaded);
            if self.ensure_watches().await {
                self.log_watching();
            }
            self.survey().await;
            let r = self.requests();
            info!(
                reads = r.reads,
                watches = r.watches,
                dry_runs = r.dry_runs,
                writes = r.writes,
                "start-up drift check done"
            );
            return interval;
        }
        info!(revision = %short(&head), "new revision: rolling it out");
        // The running revision's rendering is let go during the rollout
        // (a rollback renders its target itself): the environment is not
        // held rendered twice, the largest part of the controller's memory
        // at a rollout's peak. Loaded again when the fleet stays at it.
        let running = self.current.take().map(|c| c.revision.clone());
        // The quarantine list just read is the rollout's: not read twice.
        let rolled = self.rollout(&loaded, trigger, Some(quarantined)).await;
        if !matches!(rolled, Rolled::Done)
            && let Some(revision) = running
        {
            self.reload(&revision).await;
        }
        match rolled {
            Rolled::Done => {
                self.skipped = None;
                self.adopt(loaded);
                // Drift between the rollout's applies and the first list of
                // the new watches raises no watch event: check once.
                if self.ensure_watches().await {
                    self.survey().await;
                    self.log_watching();
                }
                interval
            }
            Rolled::Skipped(why) => {
                self.skipped = Some((head, why));
                interval
            }
            Rolled::Retry => self.fetch_backoff.failed().min(interval),
            // Retried when the slowest of the unreachable clusters' backoffs
            // says so, however short the interval.
            Rolled::Unreachable(wait) => wait,
        }
    }

    /// Loads `revision` again as what the fleet runs (its rendering was let
    /// go for a rollout that did not end at the new revision); retried at
    /// the next fetch when it cannot be loaded now.
    async fn reload(&mut self, revision: &str) {
        match self.app.load_revision(&self.name, revision).await {
            Ok(loaded) => self.current = Some(Arc::new(loaded)),
            Err(e) => {
                warn!(revision = %short(revision), error = %e, "cannot load the revision the fleet runs again; drift is not checked until it is (retried at the next fetch)");
                self.unloaded = Some(revision.to_string());
            }
        }
    }

    /// True when a rollout of `revision` was interrupted (its journal is
    /// left): it is resumed even if every cluster already runs the revision,
    /// so its bake, its last-good records and its audit outcome happen.
    async fn journaled(&self, revision: &str) -> bool {
        match self.app.journal(&self.name).load().await {
            Ok(found) => found.is_some_and(|j| j.machine.config().target_revision == revision),
            Err(e) => {
                warn!(error = %e, "reading the rollout journal failed");
                false
            }
        }
    }

    fn adopt(&mut self, loaded: Arc<Loaded>) {
        for c in &loaded.environment.spec.clusters {
            self.episodes.close_cluster(&c.name);
            let observers = &self.options.observers;
            observers.emit(Event::Applied {
                environment: self.name.clone(),
                cluster: c.name.clone(),
                revision: loaded.revision.clone(),
            });
            for a in &loaded.environment.spec.apps {
                observers.emit(Event::Drift {
                    environment: self.name.clone(),
                    cluster: c.name.clone(),
                    app: a.name.clone(),
                    objects: 0,
                });
            }
        }
        self.current = Some(loaded);
    }

    /// True when every cluster records `loaded`'s revision as applied and complete.
    async fn fleet_runs(&mut self, loaded: &Loaded) -> bool {
        for cluster in &loaded.environment.spec.clusters {
            let Ok(engine) = self.engine(loaded, &cluster.name).await else {
                return false;
            };
            match engine.inventories(&self.name).await {
                Ok(inventories) => {
                    let at = !inventories.is_empty()
                        && inventories
                            .iter()
                            .all(|i| i.revision == loaded.revision && !i.incomplete());
                    if !at {
                        return false;
                    }
                }
                Err(e) => {
                    warn!(cluster = %cluster.name, error = %e, "cannot read what the cluster runs");
                    return false;
                }
            }
        }
        true
    }

    /// The engines this loop holds, by cluster: a rollout shares them (their
    /// watch caches, discovery and dry-run answers) instead of connecting.
    fn held_engines(&self) -> tidegate_fleet::ConnectedEngines {
        let engines = self.engines.lock().map(|e| e.clone()).unwrap_or_default();
        tidegate_fleet::ConnectedEngines(
            engines
                .into_iter()
                .filter(|((env, _), _)| *env == self.name)
                .map(|((_, cluster), engine)| (cluster, engine))
                .collect(),
        )
    }

    /// A connected engine for a cluster (connected once, then reused); when
    /// it cannot be connected (reported), how long to wait before trying again.
    async fn engine(&mut self, loaded: &Loaded, cluster: &str) -> Result<Arc<Engine>, Duration> {
        let id = (self.name.clone(), cluster.to_string());
        if let Some(e) = self.engines.lock().ok().and_then(|e| e.get(&id).cloned()) {
            return Ok(e);
        }
        let Some(definition) = loaded.environment.cluster(cluster) else {
            return Err(self.retry_wait(cluster));
        };
        match Engine::connect(self.app.factory(), definition).await {
            Ok(engine) => {
                self.cluster_reachable(cluster);
                // Plans and health reads of this engine read the watch caches.
                let watch = ClusterWatch::new(
                    cluster,
                    &self.name,
                    engine.client().clone(),
                    self.changes.clone(),
                );
                let engine = Arc::new(
                    engine
                        .with_health_checks(loaded.health_checks.clone())
                        .with_environment(&self.name)
                        .with_live_state(Arc::new(watch.live_state())),
                );
                self.watches.insert(cluster.to_string(), watch);
                if let Ok(mut all) = self.engines.lock() {
                    all.insert(id, engine.clone());
                }
                Ok(engine)
            }
            Err(e) => Err(self.cluster_unreachable(cluster, &e.to_string())),
        }
    }

    /// Watches every kind the current revision renders, in every cluster;
    /// true when a watch was started.
    async fn ensure_watches(&mut self) -> bool {
        let Some(current) = self.current.clone() else {
            return false;
        };
        let mut started = false;
        let watched = self.unwatch_others(&current);
        for rendered in &current.rendered.clusters {
            if !watched.contains(&rendered.cluster) {
                continue;
            }
            let Ok(engine) = self.engine(&current, &rendered.cluster).await else {
                continue;
            };
            let keys: Vec<(ObjectKey, String)> = rendered
                .apps
                .iter()
                .flat_map(|a| &a.objects)
                .map(|o| {
                    let api_version = o.manifest["apiVersion"].as_str().unwrap_or_default();
                    (o.key.clone(), api_version.to_string())
                })
                .collect();
            // One key per kind is enough to resolve it.
            let mut kinds: BTreeMap<(String, String), (ObjectKey, String)> = BTreeMap::new();
            for (key, api_version) in keys {
                kinds
                    .entry((api_version.clone(), key.kind.clone()))
                    .or_insert((key, api_version));
            }
            let kinds: Vec<(ObjectKey, String)> = kinds.into_values().collect();
            let resolved = match engine.resolve_all(&kinds).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(cluster = %rendered.cluster, error = %e, "cannot resolve the managed kinds; retried at the next fetch");
                    continue;
                }
            };
            let Some(watch) = self.watches.get_mut(&rendered.cluster) else {
                continue;
            };
            let before = watch.kinds_watched();
            for (_, r) in &resolved {
                watch.watch(r);
            }
            started |= watch.kinds_watched() > before;
        }
        self.tally(&watched);
        if started {
            // Bounded: a cluster that went away after its watches started
            // never lists, and must not hold up this environment's loop (its
            // reads go to the API server until its caches are listed).
            let listed = futures::future::join_all(self.watches.values().map(|w| async move {
                tokio::time::timeout(WATCH_READY_WAIT, w.ready())
                    .await
                    .is_ok()
            }))
            .await;
            for (w, listed) in self.watches.values().zip(listed) {
                if !listed {
                    warn!(cluster = %w.cluster(), waited = ?WATCH_READY_WAIT, "watch caches not listed yet; reads go to the API server until they are");
                }
            }
        }
        started
    }

    /// Says what the watch caches hold and what they cost so far: from here
    /// on, with nothing changing, no request but the watches.
    fn log_watching(&self) {
        let cached: usize = self.watches.values().map(ClusterWatch::cached).sum();
        let r = self.requests();
        let watching = self
            .watches
            .values()
            .filter(|w| w.kinds_watched() > 0)
            .count();
        info!(
            clusters = watching,
            objects = cached,
            reads = r.reads,
            watches = r.watches,
            dry_runs = r.dry_runs,
            writes = r.writes,
            "watching"
        );
    }

    /// Checks every app of every cluster for drift (at start-up).
    async fn survey(&mut self) {
        let Some(current) = self.current.clone() else {
            return;
        };
        let watched = self.watched(&current);
        self.survey_clusters(&current, &watched).await;
    }

    /// Checks every app of `clusters` for drift.
    async fn survey_clusters(&mut self, current: &Loaded, clusters: &BTreeSet<String>) {
        for c in &current.rendered.clusters {
            if !clusters.contains(&c.cluster) {
                continue;
            }
            for a in &current.environment.spec.apps {
                let key = DriftKey {
                    cluster: c.cluster.clone(),
                    app: a.name.clone(),
                };
                if self.check_drift(&key).await.is_some() {
                    break;
                }
            }
        }
    }

    /// Plans one app in one cluster against what the fleet runs; corrects
    /// or reports drift. Returns when to check again after a failure.
    async fn check_drift(&mut self, key: &DriftKey) -> Option<Duration> {
        let current = self.current.clone()?;
        if self.split.is_some() && !self.watched(&current).contains(&key.cluster) {
            // A cluster this replica no longer watches (the shard changed).
            return None;
        }
        let definition = current.environment.cluster(&key.cluster)?;
        let rendered = current
            .rendered
            .clusters
            .iter()
            .find(|c| c.cluster == key.cluster)?;
        let engine = match self.engine(&current, &key.cluster).await {
            Ok(engine) => engine,
            Err(wait) => return Some(wait),
        };
        let target = Target {
            environment: &current.environment,
            cluster: definition,
            rendered,
            revision: &current.revision,
        };
        let options = SyncOptions {
            apps: vec![key.app.clone()],
            prune: current.environment.spec.sync.prune,
            ..SyncOptions::default()
        };
        let span = info_span!("cluster", cluster = %key.cluster, app = %key.app);
        let plan = match engine.plan(&target, &options).instrument(span).await {
            Ok(plan) => plan,
            Err(e) => {
                let wait = self.retry_wait(&key.cluster);
                warn!(cluster = %key.cluster, app = %key.app, error = %e, retry_in = ?wait, "drift check failed; retrying");
                return Some(wait);
            }
        };
        self.cluster_reachable(&key.cluster);
        // The app runs another revision (a rollout stopped part-way, or one
        // was rolled back): that is a rollout's business, not drift.
        let runs_current = plan
            .previous
            .iter()
            .filter(|i| i.app == key.app)
            .all(|i| i.revision == current.revision)
            // A watcher of a split environment: an app never rolled out
            // to the cluster yet is the owner's rollout to come, not drift.
            && (!self.is_watcher() || plan.previous.iter().any(|i| i.app == key.app));
        if !runs_current {
            debug!(cluster = %key.cluster, app = %key.app, "the app runs another revision: not drift");
            return None;
        }
        self.options.observers.emit(Event::Drift {
            environment: self.name.clone(),
            cluster: key.cluster.clone(),
            app: key.app.clone(),
            objects: drifted_objects(&plan, &key.app),
        });
        self.options.observers.emit(Event::Objects {
            environment: self.name.clone(),
            cluster: key.cluster.clone(),
            app: key.app.clone(),
            objects: crate::view::objects(
                &plan,
                &key.app,
                &current.health_checks,
                definition.provider.name(),
            ),
        });
        let drift = Drift::of(&plan, &key.app);
        let new_episode = self.episodes.observe(key, drift.clone());
        let drift = drift?;
        if current.environment.spec.sync.self_heal && self.is_watcher() {
            return self.record_drift(key, &current.revision, &drift).await;
        }
        if current.environment.spec.sync.self_heal {
            info!(cluster = %key.cluster, app = %key.app, fields = %drift.summary(), "drift: correcting it through the fleet rollout (selfHeal)");
            match self.rollout(&current, AuditTrigger::Drift, None).await {
                Rolled::Done => {
                    for c in &current.environment.spec.clusters {
                        self.episodes.close_cluster(&c.name);
                    }
                    None
                }
                Rolled::Skipped(_) | Rolled::Retry => Some(self.retry_wait(&key.cluster)),
                Rolled::Unreachable(wait) => Some(wait),
            }
        } else {
            if new_episode {
                warn!(cluster = %key.cluster, app = %key.app, fields = %drift.summary(), "drift (selfHeal is off: reported and left)");
                self.audit_drift(key, &current.revision, &drift);
            }
            None
        }
    }

    /// Reports `cluster` as unreachable: logged at every try with the wait
    /// before the next, recorded in the audit trail once per episode
    /// (`cluster-unreachable`). Returns the cluster's backoff (exponential,
    /// with jitter, 1 s up to 2 min).
    fn cluster_unreachable(&mut self, cluster: &str, why: &str) -> Duration {
        let wait = self.retry_wait(cluster);
        let attempt = self
            .cluster_backoff
            .get(cluster)
            .map_or(1, Backoff::failures);
        warn!(%cluster, error = %why, attempt, retry_in = ?wait, "cluster unreachable; retrying with backoff (other environments go on)");
        if !self.unreachable.contains_key(cluster) {
            self.unreachable
                .insert(cluster.to_string(), why.to_string());
            self.audit_reachability(cluster, CLUSTER_UNREACHABLE, why);
        }
        wait
    }

    /// Ends an unreachable episode of `cluster` (logged and audited as
    /// `cluster-reachable`); resets its backoff.
    fn cluster_reachable(&mut self, cluster: &str) {
        if let Some(backoff) = self.cluster_backoff.get_mut(cluster) {
            backoff.succeeded();
        }
        if let Some(why) = self.unreachable.remove(cluster) {
            info!(%cluster, "cluster reachable again");
            self.audit_reachability(
                cluster,
                CLUSTER_REACHABLE,
                &format!("reachable again (was: {why})"),
            );
        }
    }

    fn audit_reachability(&self, cluster: &str, action: &str, message: &str) {
        let Some(sink) = self.app.audit() else {
            return;
        };
        let entry = Entry::new(
            Actor::new(&self.options.identity, AuditTrigger::ControllerPoll),
            AuditAction::Other(action.to_string()),
        )
        .env(&self.name)
        .cluster(cluster)
        .message(message);
        if let Err(e) = sink.append(entry) {
            error!(error = %e, "recording {action} in the audit trail failed");
        }
    }

    fn retry_wait(&mut self, cluster: &str) -> Duration {
        self.cluster_backoff
            .entry(cluster.to_string())
            .or_insert_with(|| Backoff::new(Duration::from_secs(1), Duration::from_secs(120)))
            .failed()
    }

    fn audit_drift(&self, key: &DriftKey, revision: &str, drift: &Drift) {
        let Some(sink) = self.app.audit() else {
            return;
        };
        let entry = Entry::new(
            Actor::new(&self.options.identity, AuditTrigger::Drift),
            AuditAction::DriftDetected,
        )
        .env(&self.name)
        .cluster(&key.cluster)
        .app(&key.app)
        .revisions(None, Some(Revision::sha(revision)))
        .message(drift.summary());
        if let Err(e) = sink.append(entry) {
            error!(error = %e, "recording drift-detected in the audit trail failed");
        }
    }

    /// Rolls `loaded` out through the fleet driver: the path of `tidegate
    /// sync --env` (waves, limits, gates, lock, rollback, audit).
    /// `quarantined`: the quarantine list when the caller has just read it.
    async fn rollout(
        &mut self,
        loaded: &Loaded,
        trigger: AuditTrigger,
        quarantined: Option<BTreeSet<String>>,
    ) -> Rolled {
        if self.is_watcher() {
            // Never reached (a watcher records drift instead): a watcher
            // of a split environment must not write to its clusters.
            error!("a watcher loop may not roll out; the environment's owner does");
            return Rolled::Skipped(Skip::UntilNewerCommit);
        }
        let quarantined = match quarantined {
            Some(q) => q,
            None => match self.app.quarantined(&loaded.environment).await {
                Ok(q) => q,
                Err(e) => {
                    warn!(error = %e, "reading the quarantine list failed");
                    return Rolled::Retry;
                }
            },
        };
        // A journal of this revision is an interrupted rollout (this
        // replica's, or a replica's that no longer leads): resume it.
        let journal = self.app.journal(&self.name);
        let resume = match journal.load().await {
            Ok(found) => {
                found.is_some_and(|j| j.machine.config().target_revision == loaded.revision)
            }
            Err(e) => {
                warn!(error = %e, "reading the rollout journal failed; retrying");
                return Rolled::Retry;
            }
        };
        if resume {
            info!(revision = %short(&loaded.revision), journal = %journal.location(), "resuming the interrupted rollout from its journal");
        }
        let control = RollOutControl {
            journal,
            resume,
            stop: self.stopping.clone(),
            stop_grace: self.options.stop_grace,
            take_over_identity: self.options.take_over_identity.clone(),
            engines: self.held_engines(),
        };
        // Their requests are counted from their own counters
        // (`observe_requests`), not again from the report.
        let shared: BTreeSet<String> = control.engines.0.keys().cloned().collect();
        let last = Mutex::new(String::new());
        let progress = |lines: &[tidegate_fleet::ClusterLine]| {
            let now: String = lines
                .iter()
                .map(|l| format!("{}:{}:{:?} ", l.cluster, l.state, l.health))
                .collect();
            if let Ok(mut last) = last.lock()
                && *last != now
            {
                info!(progress = %now.trim_end(), "rollout");
                self.options.observers.progress(&self.name, lines);
                *last = now;
            }
        };
        self.options.observers.emit(Event::RolloutStarted {
            environment: self.name.clone(),
            revision: loaded.revision.clone(),
            trigger: trigger.as_str().to_string(),
        });
        let short = short(&loaded.revision);
        let actor = Actor::new(&self.options.identity, trigger);
        let result = self
            .app
            .roll_out(loaded, actor, quarantined, control, &progress)
            .await;
        self.observe_rollout(&result, &shared);
        match result {
            Ok(report) => match report.outcome {
                Outcome::Succeeded => {
                    for c in &loaded.environment.spec.clusters {
                        self.cluster_reachable(&c.name);
                    }
                    info!(revision = %short, drift_corrected = ?report.drift_corrected, "rollout succeeded: every cluster is Healthy at the revision");
                    Rolled::Done
                }
                Outcome::RolledBack { failure, .. } => {
                    warn!(revision = %short, %failure, "rollout FAILED: rolled back and quarantined; waiting for a newer commit");
                    Rolled::Skipped(Skip::Quarantined)
                }
                Outcome::Halted { failure } => {
                    warn!(revision = %short, %failure, "rollout HALTED; waiting for a newer commit");
                    Rolled::Skipped(Skip::UntilNewerCommit)
                }
            },
            Err(AppError::Rollout(RolloutError::Refused(refusal)))
                if !refusal.problems.is_empty() =>
            {
                error!(revision = %short, "rollout refused before any write: {refusal}");
                Rolled::Skipped(Skip::UntilNewerCommit)
            }
            Err(AppError::Rollout(RolloutError::Refused(refusal)))
                if !refusal.forbidden.is_empty() =>
            {
                // A missing RBAC permission: nothing was written; retried
                // with backoff (an operator fixing the role needs no new commit).
                error!(revision = %short, "rollout not started: {refusal}");
                Rolled::Retry
            }
            Err(AppError::Rollout(RolloutError::Refused(refusal)))
                if !refusal.unreachable.is_empty() =>
            {
                // More clusters than maxUnavailable cannot be reached:
                // nothing was written; each is reported and the rollout is
                // retried when the longest of their backoffs has passed.
                warn!(
                    revision = %short,
                    unreachable = refusal.unreachable.len(),
                    max_unavailable = refusal.max_unavailable,
                    "rollout not started: more clusters than maxUnavailable cannot be reached (nothing was written)"
                );
                let wait = refusal
                    .unreachable
                    .iter()
                    .map(|(cluster, why)| self.cluster_unreachable(cluster, why))
                    .max()
                    .unwrap_or(Duration::from_secs(1));
                Rolled::Unreachable(wait)
            }
            Err(AppError::Rollout(e @ RolloutError::Interrupted { .. })) => {
                info!(revision = %short, "{e}");
                Rolled::Retry
            }
            Err(AppError::Rollout(RolloutError::Invalid(problems))) => {
                error!(revision = %short, "rollout refused: {problems}");
                Rolled::Skipped(Skip::UntilNewerCommit)
            }
            Err(e) => {
                warn!(revision = %short, error = %e, "rollout could not run; retrying");
                Rolled::Retry
            }
        }
    }
}

/// How long an environment's loop waits for new watch caches to be listed
/// before going on without them.
const WATCH_READY_WAIT: Duration = Duration::from_secs(10);

/// The audit action of a cluster the controller cannot reach (once per episode).
pub const CLUSTER_UNREACHABLE: &str = "cluster-unreachable";
/// The audit action of a cluster reached again after [`CLUSTER_UNREACHABLE`].
pub const CLUSTER_REACHABLE: &str = "cluster-reachable";
impl<A: Application> EnvironmentLoop<A> {
    /// Tells the observers how a rollout ended (its outcome, each cluster's
    /// apply, its requests); no rollout is under way any more (wave 0).
    fn observe_rollout(
        &self,
        result: &Result<tidegate_fleet::RolloutReport, AppError>,
        shared: &BTreeSet<String>,
    ) {
        let observers = &self.options.observers;
        let outcome = match result {
            Ok(report) => {
                observers.report(&self.name, report, shared);
                if let Outcome::RolledBack { failure, .. } | Outcome::Halted { failure } =
                    &report.outcome
                {
                    observers.emit(Event::RolloutFailed {
                        environment: self.name.clone(),
                        failure: failure.to_string(),
                    });
                }
                match report.outcome {
                    Outcome::Succeeded => RolloutOutcome::Succeeded,
                    Outcome::RolledBack { .. } => RolloutOutcome::RolledBack,
                    Outcome::Halted { .. } => RolloutOutcome::Halted,
                }
            }
            Err(AppError::Rollout(RolloutError::Refused(r))) if !r.problems.is_empty() => {
                RolloutOutcome::Refused
            }
            Err(AppError::Rollout(RolloutError::Invalid(_))) => RolloutOutcome::Refused,
            Err(_) => RolloutOutcome::Error,
        };
        observers.emit(Event::Rollout {
            environment: self.name.clone(),
            outcome,
        });
        observers.emit(Event::Wave {
            environment: self.name.clone(),
            wave: 0,
        });
    }
}

/// How many objects of `app` the plan would apply or prune.
fn drifted_objects(plan: &tidegate_sync::Plan, app: &str) -> u64 {
    let applied = plan
        .objects
        .iter()
        .filter(|o| o.app == app && o.needs_apply())
        .count();
    let pruned = plan.prune.iter().filter(|p| p.app == app).count();
    (applied + pruned) as u64
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The sum of some request counts.
pub fn sum(
    counts: impl Iterator<Item = tidegate_cluster::RequestCounts>,
) -> tidegate_cluster::RequestCounts {
    counts.fold(tidegate_cluster::RequestCounts::default(), |a, b| {
        tidegate_cluster::RequestCounts {
            reads: a.reads + b.reads,
            watches: a.watches + b.watches,
            dry_runs: a.dry_runs + b.dry_runs,
            writes: a.writes + b.writes,
            answers: a.answers.plus(b.answers),
        }
    })
}
