//! Maintenance windows at the command line: the `--ignore-windows --reason`
//! override, the check before a single-cluster sync, and what `plan` says
//! about each cluster's window.

use crate::{args::SyncArgs, output::Style};
use anyhow::{Context, bail};
use std::time::Duration;
use tidegate_audit::{Action, AuditSink, AuditStore, Entry, Revision, Trigger};
use tidegate_core::{Environment, duration::GoDuration};
use tidegate_rollout::windows::{Windows, format_ms};

/// `--ignore-windows` needs `--reason`, and `--reason` needs a flag it
/// explains. `Ok(None)`: refused (the message was printed); `Ok(Some(r))`:
/// `r` is the override's reason when windows are ignored.
pub(crate) fn windows_override(
    args: &SyncArgs,
    style: &Style,
) -> anyhow::Result<Option<Option<String>>> {
    if args.reason.is_some() && !args.allow_quarantined && !args.ignore_windows {
        bail!("--reason explains --allow-quarantined or --ignore-windows; give one of them");
    }
    if !args.ignore_windows {
        return Ok(Some(None));
    }
    match args.reason.as_deref().map(str::trim) {
        Some(reason) if !reason.is_empty() => Ok(Some(Some(reason.to_string()))),
        _ => {
            errln!(
                "{} --ignore-windows needs --reason \"...\" (it is recorded in the audit trail)",
                style.error("refused:")
            );
            Ok(None)
        }
    }
}

/// The windows of `env` as they stand now.
fn windows_now(env: &Environment) -> anyhow::Result<Windows> {
    Windows::from_environment(env, tidegate_audit::now_ms())
        .map_err(|e| anyhow::anyhow!("environment {}: {e}", env.metadata.name))
}

/// Before a single-cluster sync writes: the cluster's window must be open,
/// unless `--ignore-windows --reason` (then audited). Returns false after
/// printing the refusal.
pub(crate) fn admit_cluster(
    args: &SyncArgs,
    env: &Environment,
    cluster: &str,
    revision: &str,
    style: &Style,
) -> anyhow::Result<bool> {
    let Some(ignore) = windows_override(args, style)? else {
        return Ok(false);
    };
    let windows = windows_now(env)?;
    let Some(closed) = windows.closed(cluster, Duration::ZERO) else {
        return Ok(true);
    };
    let Some(reason) = ignore else {
        errln!(
            "{} cluster {cluster} is {closed}; it opens at {}. Nothing was changed. Sync it then, or pass --ignore-windows --reason \"...\" (audited)",
            style.error("sync refused:"),
            format_ms(windows.next_open_ms(cluster, Duration::ZERO)),
        );
        return Ok(false);
    };
    let path = args.audit.path();
    let store = AuditStore::open(&path).with_context(|| {
        format!(
            "opening the audit trail {}",
            tidegate_audit::location::describe(&path)
        )
    })?;
    let entry = Entry::new(
        crate::sink::actor(Trigger::Cli),
        Action::Other("windows-ignored".into()),
    )
    .env(&env.metadata.name)
    .cluster(cluster)
    .revisions(None, Some(Revision::sha(revision)))
    .message(format!(
        "maintenance windows and freezes ignored (--ignore-windows; the cluster is {closed}): {reason}"
    ));
    let seq = store.append(entry)?;
    errln!("warning: cluster {cluster} is {closed}; syncing anyway as asked (audit entry #{seq})");
    Ok(true)
}

/// What `plan` says about each cluster that has a window or freeze: open
/// now (until when) or closed (why, and when it opens). Text per cluster
/// and the same as JSON.
pub(crate) fn plan_notes(
    env: &Environment,
) -> anyhow::Result<std::collections::BTreeMap<String, (String, serde_json::Value)>> {
    let windows = windows_now(env)?;
    let now_ms = tidegate_audit::now_ms();
    let mut notes = std::collections::BTreeMap::new();
    for (cluster, schedule) in &windows.clusters {
        let now = windows.wall_clock(Duration::ZERO);
        let names = schedule.window_names().join(", ");
        let (text, json) = match schedule.closed_at(now) {
            None => {
                let until = schedule.open_until(now).map(|t| t.as_millisecond());
                (
                    format!(
                        "window open now{}{}: touched when its wave comes",
                        if names.is_empty() {
                            String::new()
                        } else {
                            format!(" ({names})")
                        },
                        until.map_or(String::new(), |u| format!(" until {}", format_ms(Some(u))))
                    ),
                    serde_json::json!({"open": true, "windows": schedule.window_names(), "openUntil": until.map(|u| format_ms(Some(u)))}),
                )
            }
            Some(closed) => {
                let opens = windows.next_open_ms(cluster, Duration::ZERO);
                let wait = opens.map(|o| {
                    GoDuration(Duration::from_secs(
                        u64::try_from(o.saturating_sub(now_ms) / 1000).unwrap_or(0),
                    ))
                });
                let policy = match windows.policy {
                    tidegate_core::environment::WindowPolicy::Wait => "its wave waits for it",
                    tidegate_core::environment::WindowPolicy::SkipAndReturn => {
                        "its wave goes on; the rollout comes back for it"
                    }
                };
                (
                    format!(
                        "WINDOW CLOSED ({closed}): touched not before {}{} ({policy})",
                        format_ms(opens),
                        wait.map_or(String::new(), |w| format!(", in {w}"))
                    ),
                    serde_json::json!({"open": false, "reason": closed.to_string(), "opensAt": format_ms(opens), "windows": schedule.window_names()}),
                )
            }
        };
        notes.insert(cluster.clone(), (text, json));
    }
    Ok(notes)
}
