//! The controller: one reconcile loop per environment, each its own task.

use crate::{
    Application, Backoff, ControllerError, Observers, Trigger, TriggerReceiver,
    reconcile::{Engines, EnvironmentLoop, sum},
    split::{Role, Split},
};
use std::{sync::Arc, time::Duration};
use tidegate_cluster::RequestCounts;
use tokio::{sync::watch, task::JoinSet};
use tracing::{error, info};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// The environments to follow; every environment of the repository when empty.
    pub environments: Vec<String>,
    /// Watch events of one app in one cluster closer together than this
    /// are checked once.
    pub debounce: Duration,
    /// Who the controller is in locks and the audit trail.
    pub identity: String,
    /// Locks held by this identity are taken over even while live: set only
    /// with leader election, where a holder with this controller's identity
    /// is a replica that no longer leads.
    pub take_over_identity: Option<String>,
    /// On shutdown, how long a rollout's steps in flight may take to finish.
    pub stop_grace: Duration,
    /// Who hears what the controller does (metrics, readiness); nobody by default.
    pub observers: Observers,
    /// The trigger webhooks pull; the controller makes its own when `None`.
    pub trigger: Option<Trigger>,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            environments: Vec::new(),
            debounce: Duration::from_millis(200),
            identity: "tidegate-controller".into(),
            take_over_identity: None,
            stop_grace: Duration::from_secs(15),
            observers: Observers::default(),
            trigger: None,
        }
    }
}

/// Keeps environments matching Git until stopped.
pub struct Controller<A: Application> {
    app: Arc<A>,
    options: Arc<ControllerOptions>,
    trigger: Trigger,
    receiver: std::sync::Mutex<Option<TriggerReceiver>>,
    engines: Engines,
    /// The connections of the read-only watcher loops of environments
    /// split by cluster (`--shard-clusters-above`), apart from the
    /// owners' (one replica may run both for one environment).
    watcher_engines: Engines,
}

impl<A: Application> Controller<A> {
    /// A controller over the application layer `app`.
    pub fn new(app: A, options: ControllerOptions) -> Controller<A> {
        let (trigger, receiver) = match options.trigger.clone() {
            Some(trigger) => {
                let receiver = trigger.subscribe();
                (trigger, receiver)
            }
            None => Trigger::new(),
        };
        Controller {
            app: Arc::new(app),
            options: Arc::new(options),
            trigger,
            receiver: std::sync::Mutex::new(Some(receiver)),
            engines: Engines::default(),
            watcher_engines: Engines::default(),
        }
    }

    /// A handle that makes the controller fetch now (webhooks, tests).
    pub fn trigger(&self) -> Trigger {
        self.trigger.clone()
    }

    /// Requests sent so far by the watch caches and drift checks of every
    /// environment (rollouts count theirs in their own clients).
    pub fn requests(&self) -> RequestCounts {
        let engines: Vec<_> = [&self.engines, &self.watcher_engines]
            .into_iter()
            .flat_map(|m| {
                m.lock()
                    .map(|e| e.values().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect();
        sum(engines.iter().map(|e| e.requests()))
    }

    /// Runs every environment's loop until `stop` resolves. Each
    /// environment is a task of its own on the runtime: a slow rollout, a
    /// stuck call or an unreachable cluster in one never delays another,
    /// and a loop that panics is reported and restarted after a backoff
    /// while the others go on.
    pub async fn run(&self, stop: impl Future<Output = ()>) -> Result<(), ControllerError>
    where
        A: 'static,
    {
        let names = self.environment_names()?;
        info!(environments = ?names, "controller started");
        // The first receiver exists so no trigger is lost before the loops subscribe.
        let _first = self.first_receiver();
        let (stopped, stopping) = watch::channel(false);
        let mut loops = JoinSet::new();
        for name in names {
            loops.spawn(self.environment(name, stopping.clone()));
        }
        tokio::select! {
            () = async { while loops.join_next().await.is_some() {} } => {}
            () = stop => {
                let _ = stopped.send(true);
                while loops.join_next().await.is_some() {}
            }
        }
        let r = self.requests();
        info!(
            reads = r.reads,
            watches = r.watches,
            dry_runs = r.dry_runs,
            writes = r.writes,
            "controller stopped (requests of the watch caches and drift checks)"
        );
        Ok(())
    }
}

impl<A: Application + 'static> Controller<A> {
    /// The environments to follow: `options.environments`, else every
    /// environment of the repository (none is an error).
    pub(crate) fn environment_names(&self) -> Result<Vec<String>, ControllerError> {
        let names = if self.options.environments.is_empty() {
            self.app
                .environment_names()
                .map_err(ControllerError::Environments)?
        } else {
            self.options.environments.clone()
        };
        if names.is_empty() {
            return Err(ControllerError::NoEnvironments);
        }
        Ok(names)
    }

    /// The trigger's first receiver, to hold while the loops subscribe
    /// (so no trigger is lost before they do).
    pub(crate) fn first_receiver(&self) -> Option<TriggerReceiver> {
        self.receiver.lock().ok().and_then(|mut r| r.take())
    }

    /// One environment's loop (supervised: restarted after a panic) until
    /// `stopping` turns true. Dropping the future stops the loop at once.
    pub(crate) fn environment(
        &self,
        name: String,
        stopping: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        supervise(
            self.app.clone(),
            name,
            self.options.clone(),
            self.engines.clone(),
            self.trigger.clone(),
            stopping,
            None,
        )
    }

    /// [`Controller::environment`] with its part in sharding: the owner's
    /// loop, or a read-only watcher of this replica's clusters of a split
    /// environment ([`crate::split`]).
    pub(crate) fn environment_in(
        &self,
        name: String,
        stopping: watch::Receiver<bool>,
        split: Split,
    ) -> impl Future<Output = ()> + Send + 'static {
        let engines = match split.role {
            Role::Owner => self.engines.clone(),
            Role::Watcher => self.watcher_engines.clone(),
        };
        supervise(
            self.app.clone(),
            name,
            self.options.clone(),
            engines,
            self.trigger.clone(),
            stopping,
            Some(split),
        )
    }

    /// Drops the connections of environment `name`'s watcher loop, once it ended.
    pub(crate) fn forget_watcher(&self, name: &str) {
        forget_engines(&self.watcher_engines, name);
    }

    /// Drops the engines (and so the watch caches) of environment `name`,
    /// once its loop ended here (another replica owns it now).
    pub(crate) fn forget(&self, name: &str) {
        forget_engines(&self.engines, name);
    }
}

/// Runs one environment's loop as a task until `stopping` turns true; a
/// loop that panics is reported (`error` log naming the environment and the
/// panic) and started afresh after a backoff (1 s up to 5 min), its cluster
/// connections and watch caches made anew.
async fn supervise<A: Application + 'static>(
    app: Arc<A>,
    name: String,
    options: Arc<ControllerOptions>,
    engines: Engines,
    trigger: Trigger,
    stopping: watch::Receiver<bool>,
    split: Option<Split>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        let (environment, changes) =
            EnvironmentLoop::new(app.clone(), &name, options.clone(), engines.clone());
        let mut environment = environment.with_stop(stopping.clone());
        if let Some(split) = split.clone() {
            environment = environment.with_split(split);
        }
        let mut until = stopping.clone();
        let stop = async move {
            // Err: the sender is gone, which also means stop.
            let _ = until.wait_for(|s| *s).await;
        };
        // Aborted with this future, so dropping it stops the loop at once.
        let mut task = AbortOnDrop(tokio::spawn(environment.run(
            changes,
            trigger.subscribe(),
            stop,
        )));
        let panic = match (&mut task.0).await {
            Ok(()) => return,
            Err(e) if e.is_panic() => panic_message(e.into_panic()),
            // Cancelled: the runtime is shutting down.
            Err(_) => return,
        };
        // The panicked loop's watch caches are gone with it: its engines
        // (which read them) are connected again by the next loop.
        forget_engines(&engines, &name);
        let wait = backoff.failed();
        error!(environment = %name, %panic, restart_in = ?wait, "the environment's loop panicked; restarting it (other environments go on)");
        let mut until = stopping.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = until.wait_for(|s| *s) => return,
        }
    }
}

/// Drops the engines (and so the watch caches) of environment `name`.
fn forget_engines(engines: &Engines, name: &str) {
    if let Ok(mut all) = engines.lock() {
        all.retain(|(env, _), _| env != name);
    }
}

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of a panic's payload.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Loaded, RollOutControl};
    use futures::future::BoxFuture;
    use std::{
        collections::{BTreeMap, BTreeSet},
        sync::{
            Mutex,
            atomic::{AtomicBool, Ordering},
        },
    };
    use tidegate_app::AppError;
    use tidegate_audit::{Actor, AuditSink};
    use tidegate_cluster::KubeconfigFactory;
    use tidegate_core::Environment;
    use tidegate_fleet::{ClusterLine, RolloutReport};

    /// Three environments: `stuck` blocks its thread in `load_head` until
    /// released, `panics` panics at its first fetch, `good` fails to fetch
    /// (so it retries with backoff). Counts the fetches of each.
    struct Fake {
        factory: KubeconfigFactory,
        fetches: Mutex<BTreeMap<String, u32>>,
        released: AtomicBool,
    }

    impl Fake {
        fn fetches(&self, env: &str) -> u32 {
            self.fetches
                .lock()
                .expect("lock")
                .get(env)
                .copied()
                .unwrap_or(0)
        }
    }

    impl Application for Fake {
        type Factory = KubeconfigFactory;

        fn factory(&self) -> &KubeconfigFactory {
            &self.factory
        }

        fn environment_names(&self) -> Result<Vec<String>, AppError> {
            Ok(vec!["stuck".into(), "panics".into(), "good".into()])
        }

        fn load_head<'a>(&'a self, env: &'a str) -> BoxFuture<'a, Result<Loaded, AppError>> {
            let n = {
                let mut fetches = self.fetches.lock().expect("lock");
                let n = fetches.entry(env.to_string()).or_default();
                *n += 1;
                *n
            };
            match env {
                // Blocks the worker thread that runs this environment
                // (for at most 90 s, so the test ends even when it fails).
                "stuck" => {
                    let until = std::time::Instant::now() + Duration::from_secs(90);
                    while !self.released.load(Ordering::SeqCst) && std::time::Instant::now() < until
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                "panics" if n == 1 => panic!("a bug in one environment's loop"),
                _ => {}
            }
            Box::pin(async move { Err(AppError::NotLoaded(env.to_string())) })
        }

        fn load_revision<'a>(
            &'a self,
            env: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Loaded, AppError>> {
            Box::pin(async move { Err(AppError::NotLoaded(env.to_string())) })
        }

        fn quarantined<'a>(
            &'a self,
            _: &'a Environment,
        ) -> BoxFuture<'a, Result<BTreeSet<String>, AppError>> {
            Box::pin(async { Ok(BTreeSet::new()) })
        }

        fn roll_out<'a>(
            &'a self,
            _: &'a Loaded,
            _: Actor,
            _: BTreeSet<String>,
            _: RollOutControl,
            _: &'a (dyn Fn(&[ClusterLine]) + Sync),
        ) -> BoxFuture<'a, Result<RolloutReport, AppError>> {
            Box::pin(async { Err(AppError::NotLoaded("never loaded".into())) })
        }

        fn audit(&self) -> Option<Arc<dyn AuditSink>> {
            None
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_stuck_or_panicking_environment_holds_up_no_other() {
        let fake = Fake {
            factory: KubeconfigFactory {
                force: false,
                file: None,
            },
            fetches: Mutex::new(BTreeMap::new()),
            released: AtomicBool::new(false),
        };
        let controller = Arc::new(Controller::new(fake, ControllerOptions::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = {
            let controller = controller.clone();
            tokio::spawn(async move {
                controller
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
            })
        };
        // Generous bound, not a timing check: without a task per
        // environment, `good` never fetches again while `stuck` blocks.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while (controller.app.fetches("good") < 3 || controller.app.fetches("panics") < 2)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (good, panics) = (
            controller.app.fetches("good"),
            controller.app.fetches("panics"),
        );
        controller.app.released.store(true, Ordering::SeqCst);
        let _ = stop.send(());
        running.await.expect("joined").expect("stopped");
        assert!(
            good >= 3,
            "`good` retried while `stuck` blocked: {good} fetches"
        );
        assert!(
            panics >= 2,
            "the panicked loop was restarted: {panics} fetches"
        );
    }
}
