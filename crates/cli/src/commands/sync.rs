//! `tidegate sync`: make one cluster match Git.

use super::fleet::{self, Capabilities};
use crate::{
    args::{Global, SyncArgs, TextOrJson},
    output::Style,
};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::{io::IsTerminal, process::ExitCode, sync::Mutex, time::Duration};
use tidegate_core::sync_hooks::HookPhase;
use tidegate_sync::{Action, Progress, SyncError, SyncOptions};

/// Exit 0 when the cluster matches Git (and is healthy, with --wait); 1 otherwise.
pub async fn run(global: &Global, args: &SyncArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let Some(cluster) = args.selection.cluster.clone() else {
        return super::rollout::fleet_sync(global, args, style).await;
    };
    let Some(loaded) =
        fleet::load(global, &args.selection, Capabilities::FromClusters, style).await?
    else {
        return Ok(ExitCode::from(1));
    };
    let mut engine = loaded.connect(&cluster).await?;
    let env = args.selection.env.clone();
    // Like a rollout: a quarantined revision only with --allow-quarantined
    // --reason (audited), and never while someone holds the environment's lock.
    let mut quarantine = std::collections::BTreeSet::new();
    if !args.dry_run {
        let Some(list) = super::rollout::admit_revision(
            loaded.factory(),
            &loaded.desired.environment,
            &args.audit,
            Some(&cluster),
            &loaded.desired.commit.sha,
            args.allow_quarantined
                .then(|| args.reason.as_deref().unwrap_or("")),
            style,
        )
        .await?
        else {
            return Ok(ExitCode::from(1));
        };
        quarantine = list;
        if !super::windows::admit_cluster(
            args,
            &loaded.desired.environment,
            &cluster,
            &loaded.desired.commit.sha,
            style,
        )? {
            return Ok(ExitCode::from(1));
        }
    }
    let holder = tidegate_cluster::Holder::this_process(
        &crate::sink::actor(tidegate_audit::Trigger::Cli).identity,
    );
    if !args.dry_run {
        let policy = tidegate_fleet::lock::LockPolicy {
            break_lock: args.break_lock,
            take_over_dead: false,
            ttl: Duration::from_secs(60),
        };
        if let Err(e) = tidegate_fleet::lock::take(&engine, &env, &holder, policy).await {
            errln!(
                "{} {e}; nothing was changed in cluster {cluster}",
                style.error("sync refused:")
            );
            return Ok(ExitCode::from(1));
        }
    }
    if !args.dry_run {
        let path = args.audit.path();
        let store = tidegate_audit::AuditStore::open(&path).with_context(|| {
            format!(
                "opening the audit trail {}",
                tidegate_audit::location::describe(&path)
            )
        })?;
        engine = engine.with_audit(tidegate_sync::Audit {
            sink: std::sync::Arc::new(store),
            actor: crate::sink::actor(tidegate_audit::Trigger::Cli),
        });
    }
    let result = run_locked(global, args, style, &loaded, &engine, &cluster, &quarantine).await;
    if !args.dry_run {
        tidegate_fleet::lock::release(&engine, &env, &holder).await;
    }
    result
}

/// The sync of one cluster once its lock is held.
async fn run_locked(
    global: &Global,
    args: &SyncArgs,
    style: &Style,
    loaded: &fleet::Loaded,
    engine: &tidegate_sync::Engine,
    cluster: &str,
    quarantine: &std::collections::BTreeSet<String>,
) -> anyhow::Result<ExitCode> {
    let cluster = cluster.to_string();
    let target = loaded.target(&cluster)?;
    let options = SyncOptions {
        dry_run: args.dry_run,
        prune: args.prune,
        force_conflicts: args.force_conflicts,
        allow_empty: args.allow_empty,
        apps: args.selection.app.iter().cloned().collect(),
    };
    let bar =
        (std::io::stderr().is_terminal() && !global.quiet && !crate::sink::captured()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(cluster.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
    let lines = Mutex::new(Vec::new());
    let progress = |p: Progress| match p {
        Progress::Planned { total, changes } => {
            if let Some(b) = &bar {
                b.set_length(total as u64);
                b.set_message(format!("{changes} to change"));
            }
        }
        Progress::Object(r) => {
            if let Some(b) = &bar {
                b.inc(1);
            }
            if r.action != Action::Unchanged
                && let Ok(mut l) = lines.lock()
            {
                l.push(format!(
                    "{:<16} {}",
                    format!("{:?}", r.action).to_lowercase(),
                    r.key
                ));
            }
        }
        Progress::Waiting { healthy, total } => {
            if let Some(b) = &bar {
                b.set_message(format!("waiting: {healthy}/{total} healthy"));
            }
        }
    };
    let outcome = engine.sync(&target, &options, &progress).await;
    let report = match outcome {
        Ok(report) => report,
        Err(SyncError::Invalid { cluster, problems }) => {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            for p in &problems {
                errln!("{} [cluster {cluster}] {p}", style.error("error:"));
            }
            errln!(
                "{} nothing was changed in cluster {cluster}",
                style.error("sync refused:")
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            if !args.dry_run {
                run_sync_fail(engine, &target, &options.apps, style).await;
            }
            return Err(e.into());
        }
    };
    let mut healthy = true;
    if args.wait && !args.dry_run {
        let waited =
            tidegate_app::wait_and_mark_healthy(engine, &target, &report, quarantine, &progress)
                .await?;
        healthy = waited.succeeded();
        if let Some(failed) = waited.failed_hook() {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            errln!(
                "{} {}",
                style.error("PostSync hook failed:"),
                failed.summary()
            );
            for line in failed.output.lines() {
                errln!("  | {line}");
            }
            errln!(
                "  the revision is not recorded as the cluster's last healthy one; \
                 the objects stay applied (`tidegate rollback` returns to the last healthy revision)"
            );
            run_sync_fail(engine, &target, &options.apps, style).await;
        }
        if !waited.health.healthy {
            for o in waited
                .health
                .objects
                .iter()
                .filter(|o| o.health.status > tidegate_health::HealthStatus::Suspended)
            {
                errln!(
                    "{} {} is {:?}: {}",
                    style.error("unhealthy:"),
                    o.key,
                    o.health.status,
                    o.health.reason
                );
            }
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if !args.wait
        && !args.dry_run
        && !tidegate_sync::hooks_of(&target, HookPhase::PostSync, &options.apps).is_empty()
    {
        errln!(
            "{} PostSync hooks run only with --wait (once the objects are Healthy); they did not run",
            style.dim("note:")
        );
    }
    match args.output {
        TextOrJson::Json => outln!("{}", serde_json::to_string_pretty(&report)?),
        TextOrJson::Text => {
            if let Ok(lines) = lines.lock() {
                for l in lines.iter() {
                    outln!("{l}");
                }
            }
            let n = |a| report.count(a);
            outln!(
                "{} {cluster} at {}: {} created, {} configured, {} unchanged, {} pruned{}{} ({} writes)",
                if args.dry_run { "dry run" } else { "synced" },
                &report.revision[..report.revision.len().min(12)],
                n(Action::Created) + n(Action::WouldCreate),
                n(Action::Configured) + n(Action::WouldConfigure),
                n(Action::Unchanged),
                n(Action::Pruned) + n(Action::WouldPrune),
                if n(Action::PruneSkipped) > 0 {
                    format!(", {} left to prune (pass --prune)", n(Action::PruneSkipped))
                } else {
                    String::new()
                },
                if args.wait && !args.dry_run {
                    if healthy {
                        ", healthy"
                    } else {
                        ", NOT healthy"
                    }
                } else {
                    ""
                },
                report.requests.writes,
            );
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The sync failed (its apply, a PreSync hook or a PostSync hook): runs the
/// selected apps' SyncFail hooks in the cluster, best effort. Each run is
/// audited by the engine; a failure is only reported.
async fn run_sync_fail(
    engine: &tidegate_sync::Engine,
    target: &tidegate_sync::Target<'_>,
    apps: &[String],
    style: &Style,
) {
    if tidegate_sync::hooks_of(target, HookPhase::SyncFail, apps).is_empty() {
        return;
    }
    let deadline = target.environment.spec.rollout.progress_deadline.0;
    match engine
        .run_hooks_audited(target, HookPhase::SyncFail, apps, deadline)
        .await
    {
        Ok(runs) => {
            for run in runs {
                let label = if run.succeeded() {
                    style.ok("SyncFail hook:")
                } else {
                    style.error("SyncFail hook:")
                };
                errln!("{label} {}", run.summary());
            }
        }
        Err(e) => errln!(
            "{} the SyncFail hooks could not run: {e}",
            style.error("SyncFail hook:")
        ),
    }
}
