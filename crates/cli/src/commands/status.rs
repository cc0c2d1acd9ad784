//! `tidegate status`: per cluster and app, what runs and how it is.

use super::fleet::{self, Capabilities};
use crate::{
    args::{Global, StatusArgs, TextOrJson},
    output::Style,
};
use serde::Serialize;
use std::process::ExitCode;
use tidegate_health::HealthStatus;
use tidegate_sync::SyncOptions;

/// One row of the table.
#[derive(Debug, Serialize)]
struct Row {
    cluster: String,
    app: String,
    /// Revision recorded in the cluster's inventory (what was last applied).
    revision: Option<String>,
    /// `Synced` or `OutOfSync` against the commit being read.
    sync: &'static str,
    /// Worst health of the app's objects.
    health: HealthStatus,
    /// Objects that differ from Git (including ones to prune).
    drifted: usize,
    /// When not Healthy: the worst object, why, and the check that decided
    /// (`built-in`, `Lua <file>`, `CEL <file>:<line>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    worst: Option<String>,
    /// For blue-green apps: the colour the live Service selects.
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<String>,
    /// Set when the cluster could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Exit 0 when everything is Synced and Healthy, 1 otherwise.
pub async fn run(global: &Global, args: &StatusArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let Some(loaded) =
        fleet::load(global, &args.selection, Capabilities::FromClusters, style).await?
    else {
        return Ok(ExitCode::from(1));
    };
    let options = SyncOptions {
        dry_run: true,
        apps: args.selection.app.iter().cloned().collect(),
        ..SyncOptions::default()
    };
    let mut rows = Vec::new();
    for name in &loaded.clusters {
        let apps: Vec<String> = loaded
            .rendered(name)?
            .apps
            .iter()
            .filter(|a| args.selection.app.as_ref().is_none_or(|w| *w == a.app))
            .map(|a| a.app.clone())
            .collect();
        let result = async {
            let engine = loaded.connect(name).await?;
            let plan = engine.plan(&loaded.target(name)?, &options).await?;
            let mut out = Vec::new();
            for app in &apps {
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
                out.push(Row {
                    cluster: name.clone(),
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
                        "Incomplete"
                    } else if drifted == 0 {
                        "Synced"
                    } else {
                        "OutOfSync"
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
            anyhow::Ok(out)
        }
        .await;
        match result {
            Ok(r) => rows.extend(r),
            Err(e) => rows.extend(apps.iter().map(|app| Row {
                cluster: name.clone(),
                app: app.clone(),
                revision: None,
                sync: "Unknown",
                health: HealthStatus::Unknown,
                drifted: 0,
                worst: None,
                active: None,
                error: Some(format!("{e:#}")),
            })),
        }
    }
    match args.output {
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        TextOrJson::Text => {
            println!(
                "{:<18} {:<12} {:<14} {:<10} {:<12} {:>7}  ACTIVE",
                "CLUSTER", "APP", "REVISION", "SYNC", "HEALTH", "DRIFTED"
            );
            for r in &rows {
                let revision = r
                    .revision
                    .as_deref()
                    .map_or("-".to_string(), |s| s[..s.len().min(12)].to_string());
                println!(
                    "{:<18} {:<12} {:<14} {:<10} {:<12} {:>7}  {}",
                    r.cluster,
                    r.app,
                    revision,
                    r.sync,
                    format!("{:?}", r.health),
                    r.drifted,
                    r.active.as_deref().unwrap_or("-")
                );
                if let Some(w) = &r.worst {
                    println!("  {w}");
                }
                if let Some(e) = &r.error {
                    println!("  {} {e}", style.error("error:"));
                }
            }
        }
    }
    let all_good = rows
        .iter()
        .all(|r| r.sync == "Synced" && r.health == HealthStatus::Healthy);
    Ok(if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `Widget shop/w: Progressing: reason [check: Lua health/...]` for the
/// worst object, when it is not Healthy.
fn worst_object(health: &[tidegate_sync::ObjectHealth]) -> Option<String> {
    let worst = health.iter().max_by_key(|h| h.health.status)?;
    (worst.health.status != HealthStatus::Healthy)
        .then(|| format!("{}: {} [check: {}]", worst.key, worst.health, worst.check))
}

/// The colour the live Service of a blue-green app selects in this cluster.
async fn active_color(
    engine: &tidegate_sync::Engine,
    environment: &tidegate_core::Environment,
    app: &str,
) -> Option<String> {
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
