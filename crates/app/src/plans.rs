//! Planning (dry-running) the sync of every selected cluster at once.

use crate::{AppError, Loaded, status::CLUSTER_CONCURRENCY};
use futures::{StreamExt, stream};
use tidegate_sync::{Plan, SyncError, SyncOptions};

/// Why a cluster's plan is missing.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The cluster could not be connected to (or is not loaded).
    #[error(transparent)]
    Connect(AppError),
    /// The plan failed (the cluster could not be read).
    #[error(transparent)]
    Plan(SyncError),
}

/// One cluster's plan.
#[derive(Debug)]
pub struct ClusterPlan {
    /// The cluster.
    pub cluster: String,
    /// Its plan, or why there is none.
    pub result: Result<Plan, PlanError>,
    /// The requests sent to the cluster for it (discovery, reads, dry runs).
    pub requests: tidegate_cluster::RequestCounts,
}

/// Connects to every selected cluster and plans its sync of the loaded
/// revision with `options` (dry runs, no writes), at most
/// [`CLUSTER_CONCURRENCY`] clusters at once; the plans come back in the
/// environment's cluster order.
pub async fn plan_clusters(loaded: &Loaded, options: &SyncOptions) -> Vec<ClusterPlan> {
    let planning: Vec<_> = loaded
        .clusters
        .iter()
        .map(|name| plan_one(loaded, name, options))
        .collect();
    stream::iter(planning)
        .buffered(CLUSTER_CONCURRENCY)
        .collect()
        .await
}

async fn plan_one(loaded: &Loaded, name: &str, options: &SyncOptions) -> ClusterPlan {
    let mut requests = tidegate_cluster::RequestCounts::default();
    let result = async {
        let engine = loaded.connect(name).await.map_err(PlanError::Connect)?;
        let target = loaded.target(name).map_err(PlanError::Connect)?;
        let plan = engine.plan(&target, options).await.map_err(PlanError::Plan);
        requests = engine.requests();
        plan
    }
    .await;
    ClusterPlan {
        cluster: name.to_string(),
        result,
        requests,
    }
}
