//! The engine: a connected cluster, and applying a plan to it.

use crate::{
    Action, ObjectResult, Plan, Progress, SyncError, SyncOptions, SyncReport,
    dryrun::DryRunCache,
    inventory::{self, Inventory},
    live::{ApiLiveState, LiveState},
    verdicts::Verdicts,
};
use futures::{StreamExt, stream};
use kube::{
    Client,
    api::{DeleteParams, Patch, PatchParams},
};
use std::time::Duration;
use tidegate_cluster::{
    ClientFactory, RequestCounter, RequestCounts, Resolver, dynamic_api, get_object,
    kube_error_text, with_retries,
};
use tidegate_core::{
    Environment,
    environment::Cluster,
    object::apply_phase,
    tracking::{FIELD_MANAGER, SYNC_WAVE_ANNOTATION},
};
use tidegate_diff::DiffStatus;
use tidegate_render::RenderedCluster;
use tracing::{Instrument, info, info_span};

/// Dry runs in flight to one cluster, by default.
const DRY_RUN_CONCURRENCY: usize = 16;

/// What to sync: one environment's rendered objects for one cluster.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The environment.
    pub environment: &'a Environment,
    /// The cluster (must be one of the environment's).
    pub cluster: &'a Cluster,
    /// Its rendered objects.
    pub rendered: &'a RenderedCluster,
    /// The commit SHA they were rendered from.
    pub revision: &'a str,
}

/// A connected cluster. Cheap to keep for many syncs (discovery is cached).
pub struct Engine {
    pub(crate) client: Client,
    pub(crate) resolver: std::sync::Arc<Resolver>,
    pub(crate) cluster: String,
    pub(crate) concurrency: usize,
    counter: RequestCounter,
    pub(crate) audit: Option<crate::Audit>,
    pub(crate) health_checks: std::sync::Arc<tidegate_health::HealthChecks>,
    pub(crate) provider: &'static str,
    pub(crate) live: std::sync::Arc<dyn LiveState>,
    pub(crate) environment: Option<String>,
    pub(crate) dry_run_cache: DryRunCache,
    pub(crate) dry_run_concurrency: usize,
    /// Bounds the dry runs in flight to this cluster across every plan of
    /// this engine (concurrent plans of several apps included).
    pub(crate) dry_run_permits: std::sync::Arc<tokio::sync::Semaphore>,
    /// What this engine (and the engines [shared](Engine::share) with it)
    /// applied while its live state is a cache: reads of these objects are
    /// checked against the API server until the cache has caught up
    /// ([`crate::fresh`]). `None`: the live state is the API server itself.
    pub(crate) written: Option<crate::fresh::Written>,
}

impl Engine {
    /// Connects to a cluster through `factory`.
    pub async fn connect<F: ClientFactory>(
        factory: &F,
        cluster: &Cluster,
    ) -> Result<Engine, SyncError> {
        let counter = RequestCounter::default();
        let client = factory.client(cluster, &counter).await?;
        Ok(Engine {
            resolver: std::sync::Arc::new(Resolver::new(client.clone(), &cluster.name)),
            live: std::sync::Arc::new(ApiLiveState::new(client.clone(), &cluster.name)),
            environment: None,
            dry_run_cache: DryRunCache::new(),
            dry_run_concurrency: DRY_RUN_CONCURRENCY,
            dry_run_permits: std::sync::Arc::new(tokio::sync::Semaphore::new(DRY_RUN_CONCURRENCY)),
            client,
            cluster: cluster.name.clone(),
            concurrency: 16,
            counter,
            audit: None,
            health_checks: std::sync::Arc::default(),
            provider: cluster.provider.name(),
            written: None,
        })
    }

    /// Another engine over the same connection: the same client and request
    /// counter, discovery cache, live state (a watch cache, say), dry-run
    /// answers, dry-run bound and record of what was applied, with this
    /// engine's health checks and environment but no audit. A long-running
    /// caller (the controller) hands its engines to each rollout, which
    /// configures its shares for itself (its audit, its checks) and sends
    /// nothing to connect.
    pub fn share(&self) -> Engine {
        Engine {
            client: self.client.clone(),
            resolver: self.resolver.clone(),
            cluster: self.cluster.clone(),
            concurrency: self.concurrency,
            counter: self.counter.clone(),
            audit: None,
            health_checks: self.health_checks.clone(),
            provider: self.provider,
            live: self.live.clone(),
            environment: self.environment.clone(),
            dry_run_cache: self.dry_run_cache.clone(),
            dry_run_concurrency: self.dry_run_concurrency,
            dry_run_permits: self.dry_run_permits.clone(),
            written: self.written.clone(),
        }
    }

    /// Assesses health with `checks` (the environment's custom checks)
    /// instead of the built-in rules alone.
    pub fn with_health_checks(
        mut self,
        checks: std::sync::Arc<tidegate_health::HealthChecks>,
    ) -> Self {
        self.health_checks = checks;
        self
    }

    /// Reads live state through `live` (a watch cache, say) instead of
    /// LIST/GET requests to the API server.
    ///
    /// A cache may not have seen this engine's own writes yet: every object
    /// this engine applies is then read from the API server (a GET) until
    /// the cache holds the version applied or a later one, so health after
    /// an apply is never judged on an object older than what was applied.
    pub fn with_live_state(mut self, live: std::sync::Arc<dyn LiveState>) -> Self {
        self.live = live;
        // Writes recorded before (with another cache) stay recorded.
        self.written
            .get_or_insert_with(crate::fresh::Written::default);
        self
    }

    /// The environment this engine works for: health reads
    /// ([`Engine::health_of`]) then list only its objects (by the
    /// `tidegate.dev/environment` label). Plans always know theirs.
    pub fn with_environment(mut self, environment: &str) -> Self {
        self.environment = Some(environment.to_string());
        self
    }

    /// Reuses dry-run answers from `cache` (shared with other engines, or
    /// kept across reconnects) instead of this engine's own. A dry run is
    /// sent again whenever the object sent or the live object's
    /// `resourceVersion` changed.
    pub fn with_dry_run_cache(mut self, cache: DryRunCache) -> Self {
        self.dry_run_cache = cache;
        self
    }

    /// The dry-run answers this engine reuses.
    pub fn dry_run_cache(&self) -> &DryRunCache {
        &self.dry_run_cache
    }

    /// Sends at most `n` (at least 1) dry runs at a time to this cluster,
    /// across all of this engine's plans (16 by default, as applies); answers are used in
    /// object order whatever the limit.
    pub fn with_dry_run_concurrency(mut self, n: usize) -> Self {
        self.dry_run_concurrency = n.max(1);
        self.dry_run_permits = std::sync::Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        self
    }

    /// Records every sync that changes the cluster in `audit`.
    pub fn with_audit(mut self, audit: crate::Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The kube client (for callers that need to read more).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// How many objects this engine (or one it shares with) applied or
    /// pruned that its live-state cache has not been seen to hold yet
    /// (always 0 without a cache).
    pub fn writes_not_yet_cached(&self) -> usize {
        self.written
            .as_ref()
            .map_or(0, crate::fresh::Written::pending)
    }

    /// Requests sent so far.
    pub fn requests(&self) -> RequestCounts {
        self.counter.get()
    }

    /// Plans, then applies (unless `dry_run`): the whole sync of one cluster.
    pub async fn sync(
        &self,
        target: &Target<'_>,
        options: &SyncOptions,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<SyncReport, SyncError> {
        let span = info_span!("sync", cluster = %self.cluster, environment = %target.environment.metadata.name, revision = %target.revision);
        async {
            let start = self.requests();
            let began = std::time::Instant::now();
            let plan = self.plan(target, options).await?;
            let prune = options.prune || target.environment.spec.sync.prune;
            // The intent is committed before the first write; a no-op or a
            // refused plan changes nothing and is not recorded.
            let writes = !options.dry_run && plan.problems.is_empty() && plan.changes() > 0;
            let audit = match (&self.audit, writes) {
                (Some(audit), true) => Some((audit, audit.begin(&plan)?, summary_of(&plan))),
                _ => None,
            };
            // PreSync hooks of the apps that change run (and must succeed)
            // before their first object is applied.
            let pre = if writes {
                self.pre_sync(target, &plan, audit.as_ref().map(|(a, op, _)| (*a, *op)))
                    .await
            } else {
                Ok(Vec::new())
            };
            let outcome = match pre {
                Ok(hooks) => self
                    .apply(plan, options, prune, progress)
                    .await
                    .map(|mut report| {
                        report.hooks = hooks;
                        report
                    }),
                Err(e) => Err(e),
            };
            if let Some((audit, operation, summary)) = audit {
                let elapsed = began.elapsed().as_millis() as u64;
                match &outcome {
                    Ok(report) => audit.finish(operation, &summary, Some(report), None, elapsed)?,
                    Err(SyncError::Apply {
                        report,
                        message,
                        key,
                        ..
                    }) => audit.finish(
                        operation,
                        &summary,
                        Some(report),
                        Some(format!("applying {key} failed: {message}")),
                        elapsed,
                    )?,
                    Err(e) => {
                        audit.finish(operation, &summary, None, Some(e.to_string()), elapsed)?
                    }
                }
            }
            let mut report = outcome?;
            report.requests = self.requests().since(start);
            info!(writes = report.requests.writes, "sync finished");
            Ok(report)
        }
        .instrument(span)
        .await
    }

    /// Runs the PreSync hooks of the apps a plan changes, recording each run
    /// in the sync's audit operation. A hook that does not succeed stops
    /// the sync with [`SyncError::Hook`].
    async fn pre_sync(
        &self,
        target: &Target<'_>,
        plan: &Plan,
        audit: Option<(&crate::Audit, tidegate_audit::OperationId)>,
    ) -> Result<Vec<crate::HookRun>, SyncError> {
        let apps: std::collections::BTreeSet<String> = plan
            .objects
            .iter()
            .filter(|o| o.needs_apply())
            .map(|o| o.app.clone())
            .chain(plan.prune.iter().map(|p| p.app.clone()))
            .collect();
        let apps: Vec<String> = apps.into_iter().collect();
        let deadline = target.environment.spec.rollout.progress_deadline.0;
        self.create_hook_namespaces(target, plan, &apps).await?;
        let runs = self
            .run_hooks(
                target,
                tidegate_core::sync_hooks::HookPhase::PreSync,
                &apps,
                deadline,
            )
            .await?;
        if let Some((audit, operation)) = audit {
            let entries = runs
                .iter()
                .map(|r| audit.hook_entry(&plan.environment, &self.cluster, &plan.revision, r))
                .collect();
            audit.sink.record_batch(operation, entries)?;
        }
        if let Some(failed) = runs.iter().find(|r| !r.succeeded()) {
            return Err(SyncError::Hook {
                cluster: self.cluster.clone(),
                run: Box::new(failed.clone()),
                report: Box::new(SyncReport {
                    cluster: self.cluster.clone(),
                    revision: plan.revision.clone(),
                    dry_run: false,
                    results: Vec::new(),
                    requests: RequestCounts::default(),
                    hooks: runs.clone(),
                }),
            });
        }
        Ok(runs)
    }

    /// A PreSync hook in a namespace this sync creates (a first deploy)
    /// needs the Namespace first: it is applied before the hooks run (and
    /// again, unchanged, with the other objects).
    async fn create_hook_namespaces(
        &self,
        target: &Target<'_>,
        plan: &Plan,
        apps: &[String],
    ) -> Result<(), SyncError> {
        let hooks = crate::hooks_of(target, tidegate_core::sync_hooks::HookPhase::PreSync, apps);
        let params = PatchParams::apply(FIELD_MANAGER);
        for o in plan.objects.iter().filter(|o| {
            o.object.key.group.is_empty()
                && o.object.key.kind == "Namespace"
                && o.needs_apply()
                && hooks
                    .iter()
                    .any(|(_, _, h)| h.key.namespace.as_deref() == Some(&o.object.key.name))
        }) {
            let Some(resolved) = &o.resolved else {
                continue;
            };
            let api = dynamic_api(&self.client, resolved, None);
            let patch = Patch::Apply(&*o.object.manifest);
            with_retries("apply a hook's Namespace", || {
                api.patch(&o.object.key.name, &params, &patch)
            })
            .await
            .map_err(|e| SyncError::Apply {
                cluster: self.cluster.clone(),
                key: o.object.key.clone(),
                message: e.to_string(),
                report: Box::new(SyncReport {
                    cluster: self.cluster.clone(),
                    revision: plan.revision.clone(),
                    dry_run: false,
                    results: Vec::new(),
                    requests: RequestCounts::default(),
                    hooks: Vec::new(),
                }),
            })?;
        }
        Ok(())
    }

    /// Applies a plan: nothing at all when it has problems; otherwise only
    /// what differs, in order, then prunes (when `prune`) and records the inventory.
    pub async fn apply(
        &self,
        plan: Plan,
        options: &SyncOptions,
        prune: bool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<SyncReport, SyncError> {
        if !plan.problems.is_empty() {
            return Err(SyncError::Invalid {
                cluster: self.cluster.clone(),
                problems: plan.problems,
            });
        }
        progress(Progress::Planned {
            total: plan.objects.len(),
            changes: plan.changes(),
        });
        let mut report = SyncReport {
            cluster: self.cluster.clone(),
            revision: plan.revision.clone(),
            dry_run: options.dry_run,
            results: Vec::new(),
            requests: RequestCounts::default(),
            hooks: Vec::new(),
        };
        let params = {
            let mut p = PatchParams::apply(FIELD_MANAGER);
            p.force = options.force_conflicts;
            p
        };
        // Before the first write: the inventory says which revision is being
        // applied, so a sync that stops part-way (a cluster gone, a killed
        // process) never leaves an inventory naming the old revision over
        // new objects.
        let mut marked = std::collections::BTreeSet::new();
        let mut marks = Vec::new();
        let writes = !options.dry_run && plan.changes() > 0;
        // In-sync verdicts per app, stored with the inventories if this sync writes.
        let mut verdicts: std::collections::BTreeMap<String, Verdicts> = plan
            .inventories
            .iter()
            .map(|i| (i.app.clone(), Verdicts::new()))
            .collect();
        if writes {
            let changed_apps: std::collections::BTreeSet<&str> = plan
                .objects
                .iter()
                .filter(|o| o.needs_apply())
                .map(|o| o.app.as_str())
                .chain(plan.prune.iter().map(|p| p.app.as_str()))
                .collect();
            for inv in plan
                .inventories
                .iter()
                .filter(|i| changed_apps.contains(i.app.as_str()))
            {
                let old = plan.previous.iter().find(|p| p.app == inv.app);
                // Drift corrected at the revision the inventory already
                // names, with the same objects: nothing to mark.
                let same = old.is_some_and(|o| {
                    o.revision == inv.revision && !o.incomplete() && o.objects == inv.objects
                });
                if same {
                    continue;
                }
                marked.insert(inv.app.clone());
                marks.push(inv.applying(old));
            }
            // Every mark is written (apps side by side) before the first object.
            self.write_inventories(&marks).await?;
        }
        // Apply group by group: (hook phase, kind phase, sync-wave); objects inside a group in parallel.
        let mut groups: Vec<Vec<crate::PlannedObject>> = Vec::new();
        let mut last = None;
        for o in plan.objects {
            let k = &o.object.key;
            let wave: i64 = o.object.manifest["metadata"]["annotations"][SYNC_WAVE_ANNOTATION]
                .as_str()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let group = (
                tidegate_core::hooks::sync_phase(&o.object.manifest),
                apply_phase(&k.group, &k.kind),
                wave,
            );
            if last != Some(group) {
                groups.push(Vec::new());
                last = Some(group);
            }
            if let Some(g) = groups.last_mut() {
                g.push(o);
            }
        }
        for group in groups {
            let mut crds = Vec::new();
            let mut to_apply = Vec::new();
            for mut o in group {
                let status = o.diff.as_ref().map_or(DiffStatus::Missing, |d| d.status);
                let changes = o
                    .diff
                    .as_ref()
                    .map(|d| d.changes.clone())
                    .unwrap_or_default();
                let action = match (o.needs_apply(), options.dry_run, status) {
                    (false, _, _) => Action::Unchanged,
                    (true, true, DiffStatus::Missing) => Action::WouldCreate,
                    (true, true, _) => Action::WouldConfigure,
                    (true, false, DiffStatus::Missing) => Action::Created,
                    (true, false, _) => Action::Configured,
                };
                if action == Action::Unchanged || options.dry_run {
                    if action == Action::Unchanged
                        && let (Some(at), Some(v)) = (&o.no_op_at, verdicts.get_mut(&o.app))
                    {
                        v.record(&o.object.key, &o.object.manifest, at);
                    }
                    report.record(
                        ObjectResult {
                            app: o.app,
                            key: o.object.key,
                            status,
                            action,
                            changes,
                        },
                        progress,
                    );
                    continue;
                }
                if o.resolved.is_none() {
                    // A custom resource whose CRD was applied in an earlier group.
                    let api_version = o.object.manifest["apiVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    self.resolver.forget(&api_version).await;
                    o.resolved = self
                        .resolver
                        .resolve(&api_version, &o.object.key.kind)
                        .await?;
                }
                if o.object.key.group == "apiextensions.k8s.io"
                    && o.object.key.kind == "CustomResourceDefinition"
                {
                    crds.push(o.object.key.name.clone());
                }
                to_apply.push((o, status, action, changes));
            }
            let outcomes: Vec<_> = stream::iter(to_apply)
                .map(|(o, status, action, changes)| {
                    let params = &params;
                    async move {
                        let outcome = match &o.resolved {
                            Some(resolved) => {
                                let api = dynamic_api(&self.client, resolved, o.object.key.namespace.as_deref());
                                let patch = Patch::Apply(&*o.object.manifest);
                                let forced;
                                let params = if o.force {
                                    forced = PatchParams { force: true, ..params.clone() };
                                    &forced
                                } else {
                                    params
                                };
                                // The answer's resourceVersion: applying the same object over it changes nothing.
                                with_retries("apply", || api.patch(&o.object.key.name, params, &patch))
                                    .await
                                    .map(|applied| applied.metadata.resource_version)
                                    .map_err(|e| kube_error_text(&e))
                            }
                            None => Err("the cluster does not serve this kind even after its CRD was applied".into()),
                        };
                        (o, status, action, changes, outcome)
                    }
                })
                .buffered(self.concurrency)
                .collect()
                .await;
            for (o, status, action, changes, outcome) in outcomes {
                let version = match outcome {
                    Ok(version) => version,
                    Err(message) => {
                        return Err(SyncError::Apply {
                            cluster: self.cluster.clone(),
                            key: o.object.key,
                            message,
                            report: Box::new(report),
                        });
                    }
                };
                if let (Some(written), Some(at)) = (&self.written, &version) {
                    written.applied(&o.object.key, at);
                }
                if let (Some(at), Some(v)) = (version, verdicts.get_mut(&o.app)) {
                    v.record(&o.object.key, &o.object.manifest, &at);
                }
                report.record(
                    ObjectResult {
                        app: o.app,
                        key: o.object.key,
                        status,
                        action,
                        changes,
                    },
                    progress,
                );
            }
            for crd in crds {
                self.wait_established(&crd).await?;
            }
        }
        // Prune in reverse apply order.
        for candidate in plan.prune.into_iter().rev() {
            let action = match (prune, options.dry_run) {
                (false, _) => Action::PruneSkipped,
                (true, true) => Action::WouldPrune,
                (true, false) => {
                    let key = &candidate.diff.key;
                    let api =
                        dynamic_api(&self.client, &candidate.resolved, key.namespace.as_deref());
                    let delete = DeleteParams::foreground();
                    match with_retries("prune", || api.delete(&key.name, &delete)).await {
                        Ok(_) => {
                            if let Some(written) = &self.written {
                                written.deleted(key);
                            }
                        }
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => {
                            return Err(SyncError::Apply {
                                cluster: self.cluster.clone(),
                                key: key.clone(),
                                message: format!("delete failed: {}", kube_error_text(&e)),
                                report: Box::new(report),
                            });
                        }
                    }
                    Action::Pruned
                }
            };
            report.record(
                ObjectResult {
                    app: candidate.app,
                    key: candidate.diff.key,
                    status: DiffStatus::ToPrune,
                    action,
                    changes: Vec::new(),
                },
                progress,
            );
        }
        if !options.dry_run {
            self.record_inventories(
                &plan.inventories,
                &plan.departed,
                &plan.previous,
                prune,
                &marked,
                writes.then_some(verdicts),
            )
            .await?;
        }
        Ok(report)
    }

    /// Writes the inventories that changed (none for a no-op sync), with
    /// `verdicts` when the sync wrote (new verdicts alone are written only
    /// then: a sync that changes nothing writes nothing).
    async fn record_inventories(
        &self,
        plan_inventories: &[Inventory],
        departed: &[Inventory],
        previous: &[Inventory],
        pruned: bool,
        marked: &std::collections::BTreeSet<String>,
        mut verdicts: Option<std::collections::BTreeMap<String, Verdicts>>,
    ) -> Result<(), SyncError> {
        let mut records = Vec::new();
        for inv in plan_inventories {
            let old = previous.iter().find(|p| p.app == inv.app);
            let mut next = inv.clone();
            let new_verdicts = verdicts.as_mut().and_then(|v| v.remove(&inv.app));
            let verdicts_changed = match (&new_verdicts, old) {
                (Some(v), Some(old)) => !v.same_as(&old.verdicts),
                (Some(v), None) => !v.is_empty(),
                (None, _) => false,
            };
            next.verdicts = match (new_verdicts, old) {
                (Some(v), _) => v,
                (None, Some(old)) => old.verdicts.clone(),
                (None, None) => Verdicts::default(),
            };
            if !pruned && let Some(old) = old {
                // Unpruned objects stay in the inventory so a later prune finds them.
                for r in &old.objects {
                    if !next.objects.contains(r) {
                        next.objects.push(r.clone());
                    }
                }
                next.objects.sort();
            }
            if !old.is_some_and(|o| o.same_record(&next))
                || marked.contains(&inv.app)
                || verdicts_changed
            {
                records.push(next);
            }
        }
        self.write_inventories(&records).await?;
        if pruned {
            for inv in departed {
                inventory::delete(&self.client, &self.cluster, &inv.environment, &inv.app).await?;
            }
        }
        Ok(())
    }

    /// Writes inventories, several apps at once (as many as applies); the
    /// first failure is returned once the writes in flight have ended.
    pub(crate) async fn write_inventories(&self, all: &[Inventory]) -> Result<(), SyncError> {
        let writes: Vec<_> = all
            .iter()
            .map(|inv| inventory::write(&self.client, &self.cluster, inv))
            .collect();
        let done: Vec<Result<(), tidegate_cluster::ClusterError>> = stream::iter(writes)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        done.into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
            .map_err(SyncError::from)
    }

    /// Waits until a CRD is Established (at most 60 s), so its custom resources can be applied.
    async fn wait_established(&self, name: &str) -> Result<(), SyncError> {
        let crd = tidegate_cluster::Resolved {
            resource: kube::discovery::ApiResource {
                group: "apiextensions.k8s.io".into(),
                version: "v1".into(),
                api_version: "apiextensions.k8s.io/v1".into(),
                kind: "CustomResourceDefinition".into(),
                plural: "customresourcedefinitions".into(),
            },
            namespaced: false,
            status_subresource: true,
        };
        let key = tidegate_core::ObjectKey::new(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            None,
            name,
        );
        for _ in 0..120 {
            let live = get_object(&self.client, &self.cluster, &crd, &key).await?;
            let established = live.as_ref().is_some_and(|v| {
                v["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                })
            });
            if established {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(SyncError::CrdNotEstablished {
            cluster: self.cluster.clone(),
            name: name.to_string(),
            seconds: 60,
        })
    }
}

/// The parts of a plan the audit trail needs after the plan is consumed.
fn summary_of(plan: &Plan) -> Plan {
    Plan {
        cluster: plan.cluster.clone(),
        environment: plan.environment.clone(),
        revision: plan.revision.clone(),
        previous: plan.previous.clone(),
        objects: Vec::new(),
        prune: Vec::new(),
        inventories: Vec::new(),
        departed: Vec::new(),
        problems: Vec::new(),
        verdicts_used: plan.verdicts_used,
        read: Default::default(),
        live: Default::default(),
    }
}
