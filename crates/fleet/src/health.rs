//! A cluster's health during a rollout, from one read per kind.
//!
//! Which clusters are read at all is decided by [`needs_health`]: only those
//! in flight or in the wave being gated (baking), never waves not started
//! or finished.

use std::collections::BTreeMap;
use tidegate_cluster::{Resolved, list_managed};
use tidegate_core::ObjectKey;
use tidegate_health::{HealthChecks, HealthStatus};
use tidegate_rollout::{ClusterProgress, ClusterView};
use tidegate_sync::{Engine, SyncError};
use tracing::warn;

/// Which objects of a cluster judge its health now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judge {
    /// The target revision's objects (the cluster was changed, or it is
    /// gated as already there).
    Target,
    /// What the cluster ran before the rollout (a rollback restores it).
    Current,
}

/// Whether the machine needs this cluster's health now, and of what.
/// `wave` is the wave being worked on or gated (`FleetRollout::current_wave`).
/// A cluster whose apply or rollback has not been answered yet is not read:
/// its answer triggers a read.
pub(crate) fn needs_health(view: &ClusterView<'_>, wave: Option<u32>) -> Option<Judge> {
    let active = Some(view.wave) == wave;
    match view.progress {
        ClusterProgress::Progressing => Some(Judge::Target),
        ClusterProgress::Updated | ClusterProgress::Skipped if active => Some(Judge::Target),
        ClusterProgress::RollingBack => Some(Judge::Current),
        ClusterProgress::Updated
        | ClusterProgress::Skipped
        | ClusterProgress::Pending
        | ClusterProgress::Applying
        | ClusterProgress::Failed
        | ClusterProgress::RollbackQueued
        | ClusterProgress::RolledBack
        | ClusterProgress::NotRestored => None,
    }
}

/// The worst health of `keys` (Healthy when there are none), from one LIST
/// per kind; Unknown when the cluster cannot be read.
pub(crate) async fn worst(
    engine: &Engine,
    checks: &HealthChecks,
    provider: &str,
    keys: &[(ObjectKey, String)],
) -> HealthStatus {
    if keys.is_empty() {
        return HealthStatus::Healthy;
    }
    match health_of(engine, checks, provider, keys).await {
        Ok(status) => status,
        Err(e) => {
            warn!(cluster = %engine.cluster(), error = %e, "health unknown: the cluster cannot be read");
            HealthStatus::Unknown
        }
    }
}

/// The worst health of `keys`: each kind listed once (by the managed-by
/// label), every object judged from that list; a missing one is Missing.
async fn health_of(
    engine: &Engine,
    checks: &HealthChecks,
    provider: &str,
    keys: &[(ObjectKey, String)],
) -> Result<HealthStatus, SyncError> {
    let resolved = engine.resolve_all(keys).await?;
    let mut kinds: BTreeMap<(String, String), (&Resolved, Vec<&ObjectKey>)> = BTreeMap::new();
    for (key, r) in &resolved {
        kinds
            .entry((r.resource.api_version.clone(), r.resource.plural.clone()))
            .or_insert_with(|| (r, Vec::new()))
            .1
            .push(key);
    }
    let lists = futures::future::join_all(kinds.values().map(|(r, wanted)| async move {
        let live = list_managed(engine.client(), engine.cluster(), r).await?;
        Ok::<_, SyncError>((*r, wanted, live))
    }))
    .await;
    let context = checks.context(provider, Some(tidegate_health::Timestamp::now()));
    let mut worst = HealthStatus::Healthy;
    for list in lists {
        let (r, wanted, live) = list?;
        let context = tidegate_health::Context {
            status_subresource: Some(r.status_subresource),
            ..context.clone()
        };
        for key in wanted {
            let verdict = checks.assess(&context, &key.group, &key.kind, live.get(key));
            worst = worst.max(verdict.health.status);
        }
    }
    Ok(worst)
}
