//! Gates of a changed cluster beyond its objects' health.
//!
//! - **Fail fast**: while a cluster is in flight (applied, not yet Healthy),
//!   the new pods of the Deployments its sync created or changed (all of
//!   them after a resume) are read on every poll; a fatal state
//!   (`tidegate_health::pods::fail_fast`) that lasts `failFast.grace` fails
//!   the cluster at once instead of at `progressDeadline`.
//! - **PostSync hooks**: once its objects are Healthy, the cluster's PostSync
//!   Jobs run; it counts as Progressing until they succeed, and a failure
//!   fails it.
//! - **SyncFail hooks** run (in the background) when its sync or a gate failed.
//!
//! The verdicts go to the rollout machine as `Event::GateFailed`; every
//! hook run is handed back for the audit trail.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tidegate_core::{Environment, ObjectKey, environment::FailFast, sync_hooks::HookPhase};
use tidegate_health::HealthStatus;
use tidegate_render::{Rendered, RenderedCluster};
use tidegate_rollout::machine::ClusterProgress;
use tidegate_sync::{Engine, HookRun, SyncError, Target};
use tokio::task::JoinHandle;
use tracing::warn;

type HookTask = JoinHandle<Result<Vec<HookRun>, SyncError>>;

/// The gate state of every cluster of one rollout.
pub(crate) struct Gates {
    fail_fast: FailFast,
    deadline: Duration,
    environment: Arc<Environment>,
    revision: String,
    /// Per cluster: only the apps' hooks (the objects are not needed).
    hooks: BTreeMap<String, Arc<RenderedCluster>>,
    clusters: Mutex<BTreeMap<String, ClusterGates>>,
    finished: Mutex<Vec<(String, HookRun)>>,
}

#[derive(Default)]
struct ClusterGates {
    /// When the current fatal state was first seen (rollout time).
    fatal_since: Option<Duration>,
    post_sync: Stage,
    sync_fail: Stage,
    /// A failure was reported (once per cluster).
    failed: bool,
    /// The Deployments this run's sync of the cluster created or changed
    /// (`None`: not applied by this run, e.g. resumed: all of them count).
    applied_deployments: Option<Vec<ObjectKey>>,
}

#[derive(Default)]
enum Stage {
    #[default]
    NotStarted,
    Running(HookTask),
    Passed,
    Failed(String),
}

/// What the gates say about a cluster after one poll.
pub(crate) struct Judgement {
    /// Its health for the machine (Progressing while PostSync hooks run).
    pub status: HealthStatus,
    /// A gate failed: the message for `Event::GateFailed`.
    pub failed: Option<String>,
}

impl Gates {
    pub(crate) fn new(environment: &Environment, rendered: &Rendered, revision: &str) -> Gates {
        let hooks = rendered
            .clusters
            .iter()
            .map(|c| {
                let apps = c
                    .apps
                    .iter()
                    .map(|a| tidegate_render::RenderedApp {
                        app: a.app.clone(),
                        objects: Vec::new(),
                        hooks: a.hooks.clone(),
                    })
                    .collect();
                let only_hooks = RenderedCluster {
                    cluster: c.cluster.clone(),
                    apps,
                };
                (c.cluster.clone(), Arc::new(only_hooks))
            })
            .collect();
        Gates {
            fail_fast: environment.spec.rollout.fail_fast,
            deadline: environment.spec.rollout.progress_deadline.0,
            environment: Arc::new(environment.clone()),
            revision: revision.to_string(),
            hooks,
            clusters: Mutex::default(),
            finished: Mutex::default(),
        }
    }

    fn has_hooks(&self, cluster: &str, phase: HookPhase) -> bool {
        self.hooks.get(cluster).is_some_and(|c| {
            c.apps.iter().flat_map(|a| &a.hooks).any(|h| {
                tidegate_core::sync_hooks::hook_of(&h.manifest)
                    .ok()
                    .flatten()
                    .is_some_and(|s| s.phase == phase)
            })
        })
    }

    /// Records what a sync of `cluster` changed: fail fast then reads only
    /// the Deployments it created or configured (only they have new pods
    /// of this revision; an unchanged one is judged by its health).
    pub(crate) fn applied(&self, cluster: &str, report: &tidegate_sync::SyncReport) {
        use tidegate_sync::Action;
        let changed: Vec<ObjectKey> = report
            .results
            .iter()
            .filter(|r| r.key.group == "apps" && r.key.kind == "Deployment")
            .filter(|r| matches!(r.action, Action::Created | Action::Configured))
            .map(|r| r.key.clone())
            .collect();
        self.with(cluster, |g| g.applied_deployments = Some(changed));
    }

    fn with<T>(&self, cluster: &str, f: impl FnOnce(&mut ClusterGates) -> T) -> Option<T> {
        let mut all = self.clusters.lock().ok()?;
        Some(f(all.entry(cluster.to_string()).or_default()))
    }

    /// Judges a cluster after a health poll: `status` is its objects' worst
    /// health, `deployments` the target's Deployments there, `now` the
    /// rollout's time.
    pub(crate) async fn judge(
        &self,
        cluster: &str,
        engine: &Arc<Engine>,
        progress: ClusterProgress,
        status: HealthStatus,
        deployments: &[ObjectKey],
        now: Duration,
    ) -> Judgement {
        let pass = Judgement {
            status,
            failed: None,
        };
        // Only a cluster in flight: applied, not yet Healthy at the target.
        if progress != ClusterProgress::Progressing
            || self.with(cluster, |g| g.failed).unwrap_or(true)
        {
            return pass;
        }
        if let Some(message) = self
            .fail_fast_verdict(cluster, engine, deployments, now)
            .await
        {
            return self.fail(cluster, status, message);
        }
        if status != HealthStatus::Healthy || !self.has_hooks(cluster, HookPhase::PostSync) {
            return pass;
        }
        match self.poll_post_sync(cluster, engine).await {
            Some(Ok(())) => pass,
            Some(Err(message)) => self.fail(cluster, status, message),
            None => Judgement {
                status: HealthStatus::Progressing,
                failed: None,
            },
        }
    }

    fn fail(&self, cluster: &str, status: HealthStatus, message: String) -> Judgement {
        self.with(cluster, |g| g.failed = true);
        Judgement {
            status,
            failed: Some(message),
        }
    }

    /// A fatal state of the new pods that lasted the grace, as a message.
    async fn fail_fast_verdict(
        &self,
        cluster: &str,
        engine: &Engine,
        deployments: &[ObjectKey],
        now: Duration,
    ) -> Option<String> {
        let deployments: Vec<ObjectKey> = match self
            .with(cluster, |g| g.applied_deployments.clone())
            .flatten()
        {
            Some(applied) => deployments
                .iter()
                .filter(|d| applied.contains(d))
                .cloned()
                .collect(),
            None => deployments.to_vec(),
        };
        if !self.fail_fast.enabled || deployments.is_empty() {
            return None;
        }
        let fatal = match engine.fail_fast(&deployments).await {
            Ok(f) => f,
            Err(e) => {
                warn!(%cluster, error = %e, "fail-fast: the new pods could not be read");
                return None;
            }
        };
        let grace = self.fail_fast.grace.0;
        self.with(cluster, |g| match fatal {
            None => {
                g.fatal_since = None;
                None
            }
            Some(fatal) => {
                let since = *g.fatal_since.get_or_insert(now);
                let seen = now.saturating_sub(since);
                (seen >= grace).then(|| {
                    let mut m = format!(
                        "fail fast: {fatal} (seen for {:.1}s, grace {:.1}s)",
                        seen.as_secs_f64(),
                        grace.as_secs_f64()
                    );
                    if let Some(at) = &fatal.reported_at {
                        m.push_str(&format!("; first reported at {at}"));
                    }
                    m
                })
            }
        })
        .flatten()
    }

    /// Starts the PostSync hooks of a cluster, or reads their outcome:
    /// `None` while they run, `Some(Err(summary))` when one failed.
    async fn poll_post_sync(
        &self,
        cluster: &str,
        engine: &Arc<Engine>,
    ) -> Option<Result<(), String>> {
        enum Next {
            Wait,
            Done(Result<(), String>),
            Collect(HookTask),
        }
        let next = self.with(cluster, |g| match std::mem::take(&mut g.post_sync) {
            Stage::NotStarted => {
                g.post_sync = Stage::Running(self.spawn(cluster, engine, HookPhase::PostSync));
                Next::Wait
            }
            Stage::Running(task) if task.is_finished() => Next::Collect(task),
            Stage::Running(task) => {
                g.post_sync = Stage::Running(task);
                Next::Wait
            }
            Stage::Passed => {
                g.post_sync = Stage::Passed;
                Next::Done(Ok(()))
            }
            Stage::Failed(m) => {
                g.post_sync = Stage::Failed(m.clone());
                Next::Done(Err(m))
            }
        })?;
        let result = match next {
            Next::Wait => return None,
            Next::Done(r) => return Some(r),
            Next::Collect(task) => self.collect(cluster, task).await,
        };
        self.with(cluster, |g| {
            g.post_sync = match &result {
                Ok(()) => Stage::Passed,
                Err(m) => Stage::Failed(m.clone()),
            };
        });
        Some(result)
    }

    /// Awaits a finished hook task, keeping its runs for the audit trail.
    async fn collect(&self, cluster: &str, task: HookTask) -> Result<(), String> {
        let runs = match task.await {
            Ok(Ok(runs)) => runs,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(format!("the hook task stopped: {e}")),
        };
        let failed = runs.iter().find(|r| !r.succeeded()).map(HookRun::summary);
        if let Ok(mut f) = self.finished.lock() {
            f.extend(runs.into_iter().map(|r| (cluster.to_string(), r)));
        }
        failed.map_or(Ok(()), Err)
    }

    fn spawn(&self, cluster: &str, engine: &Arc<Engine>, phase: HookPhase) -> HookTask {
        let engine = engine.clone();
        let environment = self.environment.clone();
        let rendered = self.hooks.get(cluster).cloned();
        let revision = self.revision.clone();
        let deadline = self.deadline;
        let name = cluster.to_string();
        tokio::spawn(async move {
            let (Some(rendered), Some(definition)) = (rendered, environment.cluster(&name)) else {
                return Ok(Vec::new());
            };
            let target = Target {
                environment: &environment,
                cluster: definition,
                rendered: &rendered,
                revision: &revision,
            };
            engine.run_hooks(&target, phase, &[], deadline).await
        })
    }

    /// The cluster's sync or a gate failed: start its SyncFail hooks (once).
    pub(crate) fn sync_failed(&self, cluster: &str, engine: Option<&Arc<Engine>>) {
        let Some(engine) = engine else { return };
        if !self.has_hooks(cluster, HookPhase::SyncFail) {
            return;
        }
        self.with(cluster, |g| {
            if matches!(g.sync_fail, Stage::NotStarted) {
                g.sync_fail = Stage::Running(self.spawn(cluster, engine, HookPhase::SyncFail));
            }
        });
    }

    /// Hook runs that finished since the last call, per cluster.
    pub(crate) async fn take_finished(&self) -> Vec<(String, HookRun)> {
        self.collect_sync_fail(false).await;
        self.finished
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    }

    /// Waits for SyncFail hooks still running (at the end of the rollout).
    pub(crate) async fn wait_sync_fail(&self) {
        self.collect_sync_fail(true).await;
    }

    /// Collects the SyncFail runs that finished (all of them, waiting, when
    /// `wait`); a failed SyncFail hook is only logged and recorded.
    async fn collect_sync_fail(&self, wait: bool) {
        let tasks: Vec<(String, HookTask)> =
            self.with_all(|name, g| match std::mem::take(&mut g.sync_fail) {
                Stage::Running(task) if wait || task.is_finished() => {
                    g.sync_fail = Stage::Passed;
                    Some((name.to_string(), task))
                }
                other => {
                    g.sync_fail = other;
                    None
                }
            });
        for (cluster, task) in tasks {
            if let Err(e) = self.collect(&cluster, task).await {
                warn!(%cluster, error = %e, "a SyncFail hook failed");
            }
        }
    }

    fn with_all<T>(&self, mut f: impl FnMut(&str, &mut ClusterGates) -> Option<T>) -> Vec<T> {
        self.clusters
            .lock()
            .map(|mut all| all.iter_mut().filter_map(|(n, g)| f(n, g)).collect())
            .unwrap_or_default()
    }
}
