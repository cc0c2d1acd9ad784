//! `tidegate diff`: how clusters differ from Git, like `kubectl diff`.

use super::fleet::{self, Capabilities};
use crate::{
    args::{DiffArgs, Global, TextOrJson},
    output::Style,
};
use std::process::ExitCode;
use tidegate_diff::{DiffMode, DiffStatus, ObjectDiff, unified};
use tidegate_sync::SyncOptions;

/// Exit 0 when every selected cluster is in sync, 1 on drift, 2 on errors.
pub async fn run(global: &Global, args: &DiffArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let Some(loaded) =
        fleet::load(global, &args.selection, Capabilities::FromClusters, style).await?
    else {
        return Ok(ExitCode::from(2));
    };
    let options = SyncOptions {
        dry_run: true,
        apps: args.selection.app.iter().cloned().collect(),
        ..SyncOptions::default()
    };
    let mut drift = false;
    let mut failed = false;
    let mut json = Vec::new();
    // Every cluster is planned at once (bounded); printed in cluster order,
    // stopping at the first cluster that could not be planned.
    for planned in tidegate_app::plan_clusters(&loaded, &options).await {
        let name = &planned.cluster;
        let plan = planned.result?;
        for p in &plan.problems {
            failed = true;
            errln!("{} [cluster {name}] {p}", style.error("error:"));
        }
        let diffs: Vec<&ObjectDiff> = plan
            .objects
            .iter()
            .filter_map(|o| o.diff.as_ref())
            .chain(plan.prune.iter().map(|p| &p.diff))
            .filter(|d| d.status != DiffStatus::InSync)
            .collect();
        let deferred = plan
            .objects
            .iter()
            .filter(|o| o.diff.is_none() && o.resolved.is_none())
            .count();
        drift |= !diffs.is_empty() || deferred > 0;
        match args.output {
            TextOrJson::Json => json.push(serde_json::json!({
                "cluster": name,
                "revision": plan.revision,
                "objects": diffs,
                "problems": plan.problems,
                "requests": {
                    "reads": planned.requests.reads,
                    "dryRuns": planned.requests.dry_runs,
                    "writes": planned.requests.writes,
                },
                "verdictsUsed": plan.verdicts_used,
            })),
            TextOrJson::Text => {
                for d in &diffs {
                    print_one(name, d, style);
                }
                let fallback = plan
                    .objects
                    .iter()
                    .filter(|o| {
                        matches!(
                            o.diff.as_ref().map(|d| &d.mode),
                            Some(DiffMode::ClientSide { .. })
                        )
                    })
                    .count();
                outln!(
                    "{name}: {} of {} objects differ{}{}{}",
                    diffs.len(),
                    plan.objects.len() + plan.prune.len(),
                    if plan.prune.is_empty() {
                        String::new()
                    } else {
                        format!(", {} to prune", plan.prune.len())
                    },
                    if deferred > 0 {
                        format!(", {deferred} custom resources wait for their CRD")
                    } else {
                        String::new()
                    },
                    if fallback > 0 {
                        format!(" ({fallback} compared client-side: dry run refused)")
                    } else {
                        String::new()
                    },
                );
            }
        }
    }
    if args.output == TextOrJson::Json {
        outln!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(ExitCode::from(if failed {
        2
    } else if drift {
        1
    } else {
        0
    }))
}

fn print_one(cluster: &str, d: &ObjectDiff, style: &Style) {
    let verb = match d.status {
        DiffStatus::Missing => "create",
        DiffStatus::ToPrune => "prune",
        _ => "change",
    };
    outln!("{} {} [{cluster}] ({verb})", style.dim("==="), d.key);
    if let DiffMode::ClientSide { reason } = &d.mode {
        outln!("  client-side diff: {reason}");
    }
    for c in &d.changes {
        let owners = if c.owners.is_empty() {
            "nobody".to_string()
        } else {
            c.owners.join(", ")
        };
        outln!("  {} {} (owned by {owners})", c.op, c.path);
    }
    out!("{}", unified(d, style.enabled()));
}
