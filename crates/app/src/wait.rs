//! After a single-cluster sync: wait for health, run the PostSync hooks,
//! then record the revision as the cluster's last healthy one.

use std::collections::BTreeSet;
use tidegate_core::sync_hooks::HookPhase;
use tidegate_sync::{
    Action, Engine, HealthReport, HookRun, Progress, SyncError, SyncReport, Target,
};

/// What waiting after a single-cluster sync found.
#[derive(Debug)]
pub struct Waited {
    /// The objects' health.
    pub health: HealthReport,
    /// The PostSync hooks that ran (once Healthy; they stop at the first
    /// failure).
    pub post_sync: Vec<HookRun>,
}

impl Waited {
    /// The PostSync hook that did not succeed, if any.
    pub fn failed_hook(&self) -> Option<&HookRun> {
        self.post_sync.iter().find(|r| !r.succeeded())
    }

    /// Healthy, and every PostSync hook succeeded.
    pub fn succeeded(&self) -> bool {
        self.health.healthy && self.failed_hook().is_none()
    }
}

/// Waits until the objects `report` applied are Healthy (or the
/// environment's progress deadline passes), then runs the PostSync hooks of
/// the apps the sync changed (recorded in the engine's audit trail), and
/// when they all succeeded and the revision was never quarantined, records
/// it as the last healthy revision of every app of the target (the
/// rollback target).
pub async fn wait_and_mark_healthy(
    engine: &Engine,
    target: &Target<'_>,
    report: &SyncReport,
    quarantined: &BTreeSet<String>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Waited, SyncError> {
    let objects: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.action != Action::Pruned && r.action != Action::PruneSkipped)
        .filter_map(|r| {
            let o = target
                .rendered
                .apps
                .iter()
                .flat_map(|a| &a.objects)
                .find(|o| o.key == r.key)?;
            Some((
                r.key.clone(),
                o.manifest["apiVersion"].as_str()?.to_string(),
            ))
        })
        .collect();
    let resolved = engine.resolve_all(&objects).await?;
    let deadline = target.environment.spec.rollout.progress_deadline.0;
    let health = engine.wait_healthy(&resolved, deadline, progress).await?;
    let mut waited = Waited {
        health,
        post_sync: Vec::new(),
    };
    if !waited.health.healthy {
        return Ok(waited);
    }
    // Like PreSync hooks: those of the apps this sync changed.
    let changed = changed_apps(report);
    if !changed.is_empty() {
        waited.post_sync = engine
            .run_hooks_audited(target, HookPhase::PostSync, &changed, deadline)
            .await?;
    }
    // Only a revision that was never quarantined becomes the cluster's
    // last good revision (the rollback target).
    if waited.succeeded()
        && tidegate_rollout::quarantine::records_healthy(target.revision, quarantined)
    {
        let apps: Vec<String> = target.rendered.apps.iter().map(|a| a.app.clone()).collect();
        engine
            .mark_healthy(&target.environment.metadata.name, &apps, target.revision)
            .await?;
    }
    Ok(waited)
}

/// The apps a sync created, changed or pruned objects of.
fn changed_apps(report: &SyncReport) -> Vec<String> {
    let apps: BTreeSet<String> = report
        .results
        .iter()
        .filter(|r| {
            matches!(
                r.action,
                Action::Created | Action::Configured | Action::Pruned
            )
        })
        .map(|r| r.app.clone())
        .collect();
    apps.into_iter().collect()
}
