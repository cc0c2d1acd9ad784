//! Running the controller as one of several replicas: wait to lead (a
//! Lease in the management cluster), reconcile while leading, and stop
//! safely on a shutdown request.

use crate::{
    Application, Controller, ControllerError, ControllerOptions, Event, GitApplication,
    app::MANAGEMENT,
    controller::AbortOnDrop,
    leader::{LeaderConfig, Leadership},
};
use std::{sync::Arc, time::Duration};
use tidegate_audit::AuditSink;
use tokio::sync::watch;

/// How often a running controller checks its audit trail's hash chain end
/// to end (and at start), for `tidegate_audit_verify_ok`.
pub const AUDIT_VERIFY_EVERY: Duration = Duration::from_secs(600);

/// What a shutdown may take beyond the grace of the step in flight:
/// journal, audit, lock and lease release.
pub const SHUTDOWN_SLACK: Duration = Duration::from_secs(10);

/// Leader election among replicas (`--leader-elect`).
pub struct Election {
    /// A client of the management cluster, where the Lease and the
    /// rollout journals are kept.
    pub client: kube::Client,
    /// The Lease and its timings; `identity` is this replica.
    pub config: LeaderConfig,
}

/// How a controller run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Stopped on request, the rollout under way stopped safely and the
    /// Lease released (exit 0).
    Stopped,
    /// This replica stopped leading: it stopped at once, since another may
    /// lead soon (exit 1; the next leader resumes from the journal).
    NotLeading,
    /// The shutdown took longer than the grace plus [`SHUTDOWN_SLACK`] (exit 1).
    Overdue,
}

/// Runs the controller over `app` until `stop` resolves. With `election`,
/// first waits to lead; while leading, journals go to the management
/// cluster and the locks of deposed replicas (the same controller identity)
/// are taken over. A stop lets the rollout under way finish its steps in
/// flight within `options.stop_grace`.
pub async fn run_replica(
    app: GitApplication,
    mut options: ControllerOptions,
    election: Option<Election>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Ended, ControllerError> {
    let terminating = terminate_on(stop);
    let mut app = app;
    let observers = options.observers.clone();
    let _verifying = watch_audit(&app, &observers);
    observers.emit(Event::Leading(election.is_none()));
    let mut leadership = None;
    if let Some(Election { client, config }) = election {
        let elected = Leadership::start(client.clone(), MANAGEMENT, config.clone())
            .await
            .map_err(ControllerError::Leader)?;
        tracing::info!(replica = %config.identity, lease = %format!("{}/{}", config.namespace, config.name), "waiting to lead");
        tokio::select! {
            _ = elected.leading() => {}
            () = term(terminating.clone()) => {
                elected.release().await;
                return Ok(Ended::Stopped);
            }
        }
        // Every replica locks and audits as the controller; the Holder's
        // host and pid tell them apart.
        let identity = lock_identity(&config);
        options.take_over_identity = Some(identity.clone());
        options.identity = identity;
        app = app.with_management_journals(client, &config.namespace, &config.identity);
        observers.emit(Event::Leading(true));
        leadership = Some(elected);
    }
    let bound = options.stop_grace + SHUTDOWN_SLACK;
    let controller = Controller::new(app, options);
    let lost = async {
        match &leadership {
            Some(l) => {
                let _ = l.watch().wait_for(|s| !s.is_leading()).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let overdue = async {
        term(terminating.clone()).await;
        tokio::time::sleep(bound).await;
    };
    tokio::select! {
        r = controller.run(term(terminating.clone())) => r?,
        () = lost => {
            // Another replica may take the Lease soon: stop writing now.
            observers.emit(Event::Leading(false));
            tracing::error!("no longer the leader: stopping at once; the next leader resumes from the journal");
            return Ok(Ended::NotLeading);
        }
        () = overdue => {
            tracing::error!(bound = ?bound, "shutdown took too long: stopping now; the rollout resumes from its journal");
            return Ok(Ended::Overdue);
        }
    }
    if let Some(l) = leadership {
        l.release().await;
    }
    tracing::info!("stopped");
    Ok(Ended::Stopped)
}

/// Who every replica of one election (or shard group) is in environment
/// locks and the audit trail; the lock's host and pid tell them apart.
pub(crate) fn lock_identity(config: &LeaderConfig) -> String {
    format!("tidegate-controller ({}/{})", config.namespace, config.name)
}

/// A receiver that turns true once `stop` resolves.
pub(crate) fn terminate_on(
    stop: impl Future<Output = ()> + Send + 'static,
) -> watch::Receiver<bool> {
    let (terminate, terminating) = watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = terminate.send(true);
    });
    terminating
}

/// Resolves once `t` turns true.
pub(crate) async fn term(mut t: watch::Receiver<bool>) {
    // Err: the sender is gone, which only happens after a stop.
    let _ = t.wait_for(|s| *s).await;
}

/// Tells the observers whether the audit store is open and verifies it
/// every [`AUDIT_VERIFY_EVERY`] until the returned guard is dropped.
pub(crate) fn watch_audit(
    app: &GitApplication,
    observers: &crate::Observers,
) -> Option<AbortOnDrop<()>> {
    observers.emit(Event::Audit {
        open: app.audit().is_some(),
    });
    app.audit().map(|audit| {
        AbortOnDrop(tokio::spawn(verify_audit(
            audit,
            observers.clone(),
            AUDIT_VERIFY_EVERY,
        )))
    })
}

/// Verifies the audit trail every `every` (first at once) and tells the
/// observers whether it checked out; a failure is logged as an error.
pub async fn verify_audit(audit: Arc<dyn AuditSink>, observers: crate::Observers, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let sink = audit.clone();
        let ok = match tokio::task::spawn_blocking(move || sink.verify_chain()).await {
            Ok(Ok(true)) => true,
            Ok(Ok(false)) => {
                tracing::error!(
                    "the audit trail does not verify: `tidegate audit verify` names the first problem"
                );
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "verifying the audit trail failed");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "verifying the audit trail stopped");
                false
            }
        };
        observers.emit(Event::AuditVerified { ok });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Observer, Observers};
    use std::sync::Mutex;
    use tidegate_audit::MemorySink;

    #[derive(Default)]
    struct Seen(Mutex<Vec<Event>>);

    impl Observer for Seen {
        fn observe(&self, event: Event) {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(event);
            }
        }
    }

    #[tokio::test]
    async fn the_audit_trail_is_verified_at_once_and_then_every_period() {
        let seen = Arc::new(Seen::default());
        let observers = Observers::new(seen.clone());
        let audit: Arc<dyn AuditSink> = Arc::new(MemorySink::new());
        let task = tokio::spawn(verify_audit(audit, observers, Duration::from_millis(20)));
        let verified = || {
            seen.0
                .lock()
                .map(|s| {
                    s.iter()
                        .filter(|e| matches!(e, Event::AuditVerified { ok: true }))
                        .count()
                })
                .unwrap_or(0)
        };
        // Bounded so a broken loop fails instead of hanging.
        for _ in 0..3000 {
            if verified() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        assert!(verified() >= 2, "verified at start and again each period");
    }
}
