//! `tidegate status`: per cluster and app, what runs and how it is.

use super::fleet::{self, Capabilities};
use crate::{
    args::{Global, StatusArgs, TextOrJson},
    output::Style,
};
use std::process::ExitCode;

/// Exit 0 when everything is Synced and Healthy, 1 otherwise.
pub async fn run(global: &Global, args: &StatusArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let Some(loaded) =
        fleet::load(global, &args.selection, Capabilities::FromClusters, style).await?
    else {
        return Ok(ExitCode::from(1));
    };
    let rows = tidegate_app::status_rows(&loaded, args.selection.app.as_deref()).await;
    match args.output {
        TextOrJson::Json => outln!("{}", serde_json::to_string_pretty(&rows)?),
        TextOrJson::Text => {
            outln!(
                "{:<18} {:<12} {:<14} {:<10} {:<12} {:>7}  ACTIVE",
                "CLUSTER",
                "APP",
                "REVISION",
                "SYNC",
                "HEALTH",
                "DRIFTED"
            );
            for r in &rows {
                let revision = r
                    .revision
                    .as_deref()
                    .map_or("-".to_string(), |s| s[..s.len().min(12)].to_string());
                outln!(
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
                    outln!("  {w}");
                }
                if let Some(e) = &r.error {
                    outln!("  {} {e}", style.error("error:"));
                }
            }
        }
    }
    Ok(if rows.iter().all(tidegate_app::StatusRow::is_good) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
