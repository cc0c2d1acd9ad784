//! Running a fleet rollout: the driver set up from plain parameters.

use crate::{AppError, AuditApprovals, ClusterApprovals, GatesWritten, write_gates};
use std::{collections::BTreeSet, path::Path, sync::Arc, time::Duration};
use tidegate_audit::{Actor, AuditStore};
use tidegate_cloud::CloudFactory;
use tidegate_cluster::{GateChange, GateRecord};
use tidegate_core::Environment;
use tidegate_fleet::{
    Approvals, ClusterLine, ConnectedEngines, Driver, DriverOptions, Journal, JournalStore,
    Revisions, RolloutReport,
};
use tidegate_health::HealthChecks;
use tidegate_render::Rendered;
use tidegate_rollout::machine::TransitionKind;
use tidegate_sync::{Audit, Engine};

/// Everything a fleet rollout needs, as plain values.
pub struct RolloutRun<'a> {
    /// Makes clients.
    pub factory: &'a CloudFactory,
    /// The environment at the target revision.
    pub environment: &'a Environment,
    /// Its rendering.
    pub rendered: &'a Rendered,
    /// The environment's custom health checks.
    pub health_checks: Arc<HealthChecks>,
    /// The target revision (commit SHA).
    pub revision: &'a str,
    /// Renders rollback targets.
    pub revisions: &'a dyn Revisions,
    /// Approvals; `None`: those recorded in the environment's clusters or
    /// in the audit trail at `audit_path`.
    pub approvals: Option<&'a dyn Approvals>,
    /// The audit database.
    pub audit_path: &'a Path,
    /// Who runs the rollout (audit actor, lock holder).
    pub actor: Actor,
    /// Take the environment's lock even if someone holds it.
    pub break_lock: bool,
    /// Continue the journaled rollout.
    pub resume: bool,
    /// Delete objects that left Git (the environment's `sync.prune` also turns it on).
    pub prune: bool,
    /// Take ownership of fields other appliers own.
    pub force_conflicts: bool,
    /// Revisions quarantined now (never a rollback target).
    pub quarantined: BTreeSet<String>,
    /// `--ignore-windows --reason`: apply outside maintenance windows and
    /// during freezes, for this reason (audited).
    pub ignore_windows: Option<String>,
    /// Where the rollout is journaled; `None`: the file [`journal`] of
    /// this machine (the CLI's). The controller's replicas pass theirs.
    pub journal: Option<Arc<dyn JournalStore>>,
    /// When this turns true the rollout stops safely (SIGTERM, lost
    /// leadership) and returns `RolloutError::Interrupted`.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// How long steps in flight may take to finish after a stop; `None`:
    /// the driver's default.
    pub stop_grace: Option<Duration>,
    /// Locks held by this identity are taken over even while live (a
    /// deposed controller replica's).
    pub take_over_identity: Option<String>,
    /// Engines the caller holds per cluster (the controller's, reading its
    /// watch caches); empty: every cluster is connected afresh (the CLI).
    pub engines: ConnectedEngines,
}

/// What a rollout did, and where its quarantine was recorded.
#[derive(Debug)]
pub struct RolloutDone {
    /// The driver's report.
    pub report: RolloutReport,
    /// The revisions the rollout quarantined, each with the clusters that
    /// record it now (and those that could not be written).
    pub quarantined: Vec<(String, GatesWritten)>,
}

/// The journal of `env`'s rollout on this machine (what `--resume` continues).
pub fn journal(env: &str) -> Journal {
    Journal::new(&Journal::default_dir(), env)
}

impl RolloutRun<'_> {
    /// Runs the rollout to its end; `progress` gets one line per cluster
    /// after every poll. On an error, [`journal`] tells whether the rollout
    /// can be resumed.
    pub async fn run(
        self,
        progress: &(dyn Fn(&[ClusterLine]) + Sync),
    ) -> Result<RolloutDone, AppError> {
        let store = AuditStore::open(self.audit_path).map_err(|source| AppError::AuditOpen {
            path: tidegate_audit::location::describe(self.audit_path),
            source,
        })?;
        let env = &self.environment.metadata.name;
        let audit_approvals = AuditApprovals {
            path: self.audit_path.to_path_buf(),
            env: env.clone(),
            revision: self.revision.to_string(),
        };
        let cluster_approvals = ClusterApprovals {
            factory: self.factory,
            environment: self.environment,
            audit: audit_approvals,
        };
        let approvals = self.approvals.unwrap_or(&cluster_approvals);
        let driver = Driver {
            factory: self.factory,
            environment: self.environment,
            rendered: self.rendered,
            revision: self.revision,
            revisions: self.revisions,
            approvals,
            audit: Some(Audit {
                sink: Arc::new(store),
                actor: self.actor.clone(),
            }),
            check: None,
            journal: Some(
                self.journal
                    .unwrap_or_else(|| Arc::new(journal(env)) as Arc<dyn JournalStore>),
            ),
            options: DriverOptions {
                force_conflicts: self.force_conflicts,
                prune: self.prune || self.environment.spec.sync.prune,
                break_lock: self.break_lock,
                resume: self.resume,
                identity: self.actor.identity.clone(),
                quarantined: self.quarantined,
                ignore_windows: self.ignore_windows,
                poll: Duration::from_millis(500),
                health_checks: self.health_checks,
                stop: self.stop,
                stop_grace: self
                    .stop_grace
                    .unwrap_or(DriverOptions::default().stop_grace),
                take_over_identity: self.take_over_identity,
                engines: self.engines,
                ..DriverOptions::default()
            },
        };
        let report = driver.run(progress).await?;
        // A quarantine is kept with the clusters too, so that every CLI and
        // controller managing the environment sees it.
        let mut quarantined = Vec::new();
        for t in &report.transitions {
            if let TransitionKind::Quarantine { revision, failure } = &t.kind {
                let change = GateChange::Quarantine {
                    revision: revision.clone(),
                    record: GateRecord::now(&self.actor.identity, &failure.to_string()),
                };
                let written = write_gates(self.factory, self.environment, &change).await;
                quarantined.push((revision.clone(), written));
            }
        }
        Ok(RolloutDone {
            report,
            quarantined,
        })
    }
}

/// The last healthy revision recorded in the first cluster of `environment`
/// that can be reached and records one (what `tidegate rollback` without
/// `--to` returns to).
pub async fn last_healthy_revision(
    factory: &CloudFactory,
    environment: &Environment,
) -> Option<String> {
    let env = &environment.metadata.name;
    for cluster in &environment.spec.clusters {
        if let Ok(engine) = Engine::connect(factory, cluster).await
            && let Ok(inv) = engine.inventories(env).await
            && let Some(rev) = inv.first().and_then(|i| i.healthy_revision.clone())
        {
            return Some(rev);
        }
    }
    None
}
