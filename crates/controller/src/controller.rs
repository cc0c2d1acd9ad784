//! The controller: one reconcile loop per environment, all in one task.

use crate::{
    Application, ControllerError, Observers, Trigger, TriggerReceiver,
    reconcile::{Engines, EnvironmentLoop, sum},
};
use std::time::Duration;
use tidegate_cluster::RequestCounts;
use tracing::info;

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
    app: A,
    options: ControllerOptions,
    trigger: Trigger,
    receiver: std::sync::Mutex<Option<TriggerReceiver>>,
    engines: Engines,
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
            app,
            options,
            trigger,
            receiver: std::sync::Mutex::new(Some(receiver)),
            engines: Engines::default(),
        }
    }

    /// A handle that makes the controller fetch now (webhooks, tests).
    pub fn trigger(&self) -> Trigger {
        self.trigger.clone()
    }

    /// Requests sent so far by the watch caches and drift checks of every
    /// environment (rollouts count theirs in their own clients).
    pub fn requests(&self) -> RequestCounts {
        let engines = self
            .engines
            .lock()
            .map(|e| e.values().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        sum(engines.iter().map(|e| e.requests()))
    }

    /// Runs every environment's loop until `stop` resolves. Environments run
    /// side by side: a rollout or an unreachable cluster in one does not
    /// hold up the others.
    pub async fn run(&self, stop: impl Future<Output = ()>) -> Result<(), ControllerError> {
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
        info!(environments = ?names, "controller started");
        // The first receiver exists so no trigger is lost before the loops subscribe.
        let _first = self.receiver.lock().ok().and_then(|mut r| r.take());
        let (stopped, stopping) = tokio::sync::watch::channel(false);
        let loops = names.iter().map(|name| {
            let (environment, changes) =
                EnvironmentLoop::new(&self.app, name, &self.options, self.engines.clone());
            let environment = environment.with_stop(stopping.clone());
            let mut stopping = stopping.clone();
            let stop = async move {
                // Err: the sender is gone, which also means stop.
                let _ = stopping.wait_for(|s| *s).await;
            };
            environment.run(changes, self.trigger.subscribe(), stop)
        });
        let all = futures::future::join_all(loops);
        tokio::pin!(all);
        tokio::select! {
            _ = &mut all => {}
            () = stop => {
                let _ = stopped.send(true);
                all.await;
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
