//! `status`: per cluster and app, what runs, whether it matches Git and how
//! healthy it is.

use crate::{AppError, Loaded, error_chain};
use futures::{StreamExt, stream};
use serde::Serialize;
use tidegate_core::Environment;
use tidegate_health::HealthStatus;
use tidegate_sync::{Engine, ObjectHealth, SyncOptions};

/// How many clusters are read at once.
pub const CLUSTER_CONCURRENCY: usize = 8;

/// Whether an app in a cluster matches Git.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SyncState {
    /// Every object matches the commit being read.
    Synced,
    /// Some object differs (or is to be created or pruned).
    OutOfSync,
    /// A sync stopped part-way (never "Synced").
    Incomplete,
    /// The cluster could not be read.
    Unknown,
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            SyncState::Synced => "Synced",
            SyncState::OutOfSync => "OutOfSync",
            SyncState::Incomplete => "Incomplete",
            SyncState::Unknown => "Unknown",
        })
    }
}

/// One row of the status table: an app in a cluster.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    /// The cluster.
    pub cluster: String,
    /// The app.
    pub app: String,
    /// Revision recorded in the cluster's inventory (what was last applied).
    pub revision: Option<String>,
    /// Against the commit being read.
    pub sync: SyncState,
    /// Worst health of the app's objects.
    pub health: HealthStatus,
    /// Objects that differ from Git (including ones to prune).
    pub drifted: usize,
    /// When not Healthy: the worst object, why, and the check that decided
    /// (`built-in`, `Lua <file>`, `CEL <file>:<line>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst: Option<String>,
    /// For blue-green apps: the colour the live Service selects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// Set when the cluster could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StatusRow {
    /// Synced and Healthy.
    pub fn is_good(&self) -> bool {
        self.sync == SyncState::Synced && self.health == HealthStatus::Healthy
    }
}

/// The rows of every selected cluster (clusters read in parallel, at most
/// [`CLUSTER_CONCURRENCY`] at once), in environment order, for every app or
/// only `app`. A cluster that cannot be read gives rows with the error.
pub async fn status_rows(loaded: &Loaded, app: Option<&str>) -> Vec<StatusRow> {
    let per_cluster: Vec<Vec<StatusRow>> = stream::iter(&loaded.clusters)
        .map(|name| cluster_rows(loaded, name, app))
        .buffered(CLUSTER_CONCURRENCY)
        .collect()
        .await;
    per_cluster.into_iter().flatten().collect()
}

async fn cluster_rows(loaded: &Loaded, name: &str, only: Option<&str>) -> Vec<StatusRow> {
    let apps: Vec<String> = match loaded.rendered(name) {
        Ok(r) => r
            .apps
            .iter()
            .filter(|a| only.is_none_or(|w| w == a.app))
            .map(|a| a.app.clone())
            .collect(),
        Err(_) => Vec::new(),
    };
    match read_cluster(loaded, name, &apps, only).await {
        Ok(rows) => rows,
        Err(e) => apps
            .iter()
            .map(|app| StatusRow {
                cluster: name.to_string(),
                app: app.clone(),
                revision: None,
                sync: SyncState::Unknown,
                health: HealthStatus::Unknown,
                drifted: 0,
                worst: None,
                active: None,
                error: Some(error_chain(&e)),
            })
            .collect(),
    }
}

async fn read_cluster(
    loaded: &Loaded,
    name: &str,
    apps: &[String],
    only: Option<&str>,
) -> Result<Vec<StatusRow>, AppError> {
    let options = SyncOptions {
        dry_run: true,
        apps: only.iter().map(|a| a.to_string()).collect(),
        ..SyncOptions::default()
    };
    let engine = loaded.connect(name).await?;
    let plan = engine.plan(&loaded.target(name)?, &options).await?;
    let mut out = Vec::new();
    for app in apps {
        let objects: Vec<_> = plan
            .objects
            .iter()
            .filter(|o| o.app == *app)
            .filter_map(|o| Some((o.object.key.clone(), o.resolved.clone()?)))
            .collect();
        let health = engine.health(&objects).await?;
        let drifted = plan
            .objects
            .iter()
            .filter(|o| o.app == *app && o.needs_apply())
            .count()
            + plan.prune.iter().filter(|p| p.app == *app).count()
            + plan.problems.iter().filter(|p| p.app == *app).count();
        out.push(StatusRow {
            cluster: name.to_string(),
            app: app.clone(),
            revision: plan
                .previous
                .iter()
                .find(|i| i.app == *app)
                .map(|i| i.revision.clone()),
            // A sync that stopped part-way is never "Synced".
            sync: if plan
                .previous
                .iter()
                .any(|i| i.app == *app && i.incomplete())
            {
                SyncState::Incomplete
            } else if drifted == 0 {
                SyncState::Synced
            } else {
                SyncState::OutOfSync
            },
            health: health
                .iter()
                .map(|h| h.health.status)
                .max()
                .unwrap_or(HealthStatus::Healthy),
            drifted,
            worst: worst_object(&health),
            active: active_color(&engine, &loaded.desired.environment, app).await,
            error: None,
        });
    }
    Ok(out)
}

/// `Widget shop/w: Progressing: reason [check: Lua health/...]` for the
/// worst object, when it is not Healthy.
fn worst_object(health: &[ObjectHealth]) -> Option<String> {
    let worst = health.iter().max_by_key(|h| h.health.status)?;
    (worst.health.status != HealthStatus::Healthy)
        .then(|| format!("{}: {} [check: {}]", worst.key, worst.health, worst.check))
}

/// The colour the live Service of a blue-green app selects in this cluster.
async fn active_color(engine: &Engine, environment: &Environment, app: &str) -> Option<String> {
    let bg = environment.spec.blue_green.iter().find(|b| b.app == app)?;
    let namespace = environment
        .app(app)?
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(engine.client().clone(), &namespace);
    let service = services.get_opt(bg.services.first()?).await.ok()??;
    service.spec?.selector?.get(&bg.selector_key).cloned()
}
