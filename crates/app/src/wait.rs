//! After a single-cluster sync: wait for health, then record the revision
//! as the cluster's last healthy one.

use std::collections::BTreeSet;
use tidegate_sync::{Action, Engine, HealthReport, Progress, SyncError, SyncReport, Target};

/// Waits until the objects `report` applied are Healthy (or the
/// environment's progress deadline passes), then, when healthy and the
/// revision was never quarantined, records it as the last healthy revision
/// of every app of the target (the rollback target).
pub async fn wait_and_mark_healthy(
    engine: &Engine,
    target: &Target<'_>,
    report: &SyncReport,
    quarantined: &BTreeSet<String>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<HealthReport, SyncError> {
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
    // Only a revision that was never quarantined becomes the cluster's
    // last good revision (the rollback target).
    if health.healthy && tidegate_rollout::quarantine::records_healthy(target.revision, quarantined)
    {
        let apps: Vec<String> = target.rendered.apps.iter().map(|a| a.app.clone()).collect();
        engine
            .mark_healthy(&target.environment.metadata.name, &apps, target.revision)
            .await?;
    }
    Ok(health)
}
