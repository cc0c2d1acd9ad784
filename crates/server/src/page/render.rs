//! The fleet page's HTML, rendered from the read model by askama templates
//! (`crates/server/templates/page/`, auto-escaped: names from Git and
//! clusters are always text, never markup).

use super::model::{EnvironmentState, Fleet, Rollout};
use askama::Template;
use std::time::Duration;
use tidegate_audit::Record;
use tidegate_controller::{RolloutOutcome, view::ObjectState};

/// The filters of the fleet overview (`?env=&cloud=&label=key=value`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct GridFilter {
    /// Only this environment.
    #[serde(default)]
    pub env: Option<String>,
    /// Only this cloud.
    #[serde(default)]
    pub cloud: Option<String>,
    /// Only clusters with this label (`key=value`, or `key` for any value).
    #[serde(default)]
    pub label: Option<String>,
}

/// One row of the fleet grid.
#[derive(Debug, Clone)]
pub struct GridRow {
    /// The environment.
    pub env: String,
    /// The cluster.
    pub cluster: String,
    /// Its cloud.
    pub cloud: String,
    /// Its region.
    pub region: String,
    /// Its wave (`auto` when partitioned automatically).
    pub wave: String,
    /// The revision it runs (12 characters; empty when unknown).
    pub revision: String,
    /// `Synced`, `OutOfSync`, `Syncing` or `Unknown`.
    pub sync: &'static str,
    /// Its health (`Unknown` until seen).
    pub health: &'static str,
    /// Drifted objects, all apps together.
    pub drifted: u64,
    /// Active blue-green colours, `app=colour` joined by spaces.
    pub colors: String,
}

#[derive(Template)]
#[template(path = "page/fleet.html")]
struct FleetPage<'a> {
    rows: &'a [GridRow],
    filter: &'a GridFilter,
    environments: Vec<&'a str>,
    running: Vec<(&'a str, u64)>,
    audit: &'static str,
}

/// A wave of a rollout: its clusters and its state.
#[derive(Debug, Clone)]
pub struct WaveColumn {
    /// The wave number.
    pub wave: u32,
    /// `pending`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// Its clusters.
    pub clusters: Vec<WaveCluster>,
}

/// One cluster in a wave column.
#[derive(Debug, Clone)]
pub struct WaveCluster {
    /// The cluster.
    pub cluster: String,
    /// Its state in the rollout.
    pub state: String,
    /// `pending`, `running`, `done` or `failed` (the CSS class).
    pub class: &'static str,
    /// Its health.
    pub health: &'static str,
    /// Time since its apply or rollback was issued.
    pub elapsed: String,
}

/// A gate of a rollout and where it stands.
#[derive(Debug, Clone)]
pub struct Gate {
    /// `bake`, `approval` or `analysis <name>`.
    pub gate: String,
    /// The wave it guards (after which it runs).
    pub wave: u32,
    /// `pending`, `running`, `waiting`, `passed`, `given` or `not reached`.
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "page/rollout.html")]
struct RolloutPage<'a> {
    env: &'a str,
    live: RolloutLive<'a>,
}

/// The part of the rollout view that live updates replace.
#[derive(Template)]
#[template(path = "page/rollout_live.html")]
struct RolloutLive<'a> {
    env: &'a str,
    rollout: Option<RolloutFacts<'a>>,
}

struct RolloutFacts<'a> {
    number: u64,
    revision: &'a str,
    trigger: &'a str,
    running: bool,
    outcome: &'static str,
    failure: Option<&'a str>,
    duration: String,
    waves: Vec<WaveColumn>,
    gates: Vec<Gate>,
    max_surge: String,
    in_flight: usize,
    max_unavailable: String,
    unavailable: usize,
    failure_policy: String,
}

#[derive(Template)]
#[template(path = "page/cluster.html")]
struct ClusterPage<'a> {
    env: &'a str,
    cluster: &'a str,
    revision: String,
    health: &'static str,
    /// Each app, when its last drift check was received, its objects.
    apps: Vec<(&'a str, &'a str, &'a [ObjectState])>,
}

/// One audit entry on the timeline.
#[derive(Debug, Clone)]
pub struct TimelineRow {
    /// Its sequence number.
    pub seq: u64,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// The environment.
    pub env: String,
    /// The cluster.
    pub cluster: String,
    /// The action.
    pub action: String,
    /// Who (identity and trigger).
    pub actor: String,
    /// The outcome, if any.
    pub outcome: String,
    /// The revision it went to (full SHA; empty when none).
    pub revision: String,
    /// Its first 12 characters.
    pub short: String,
    /// A link to the commit, when the source is a web repository.
    pub commit_url: Option<String>,
    /// The message.
    pub message: String,
}

/// The timeline's filters (`?env=&cluster=&action=&actor=`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TimelineFilter {
    /// Only this environment.
    #[serde(default)]
    pub env: Option<String>,
    /// Only this cluster.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Only this action.
    #[serde(default)]
    pub action: Option<String>,
    /// Only actors whose identity contains this.
    #[serde(default)]
    pub actor: Option<String>,
}

#[derive(Template)]
#[template(path = "page/timeline.html")]
struct TimelinePage<'a> {
    rows: &'a [TimelineRow],
    filter: &'a TimelineFilter,
    audit: &'static str,
    note: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "page/login.html")]
struct LoginPage<'a> {
    message: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "page/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

/// A rendering failure (templates are compiled in: only writing fails).
#[derive(Debug, thiserror::Error)]
#[error("rendering the fleet page failed: {0}")]
pub struct RenderError(#[from] askama::Error);

/// Whether `env` is shown to the caller.
pub type Visible<'a> = &'a dyn Fn(&str) -> bool;

/// The grid's rows: every cluster of every visible environment that the
/// filter keeps, in environment then declaration order.
pub fn grid(fleet: &Fleet, filter: &GridFilter, visible: Visible<'_>) -> Vec<GridRow> {
    let label = filter
        .label
        .as_deref()
        .filter(|l| !l.is_empty())
        .map(|l| l.split_once('=').map_or((l, None), |(k, v)| (k, Some(v))));
    let mut rows = Vec::new();
    for (env, state) in &fleet.environments {
        if !visible(env)
            || filter
                .env
                .as_deref()
                .is_some_and(|f| !f.is_empty() && f != env)
        {
            continue;
        }
        let Some(view) = &state.view else { continue };
        let waves = current_waves(state);
        let colors = view
            .active_colors
            .iter()
            .map(|(app, color)| format!("{app}={color}"))
            .collect::<Vec<_>>()
            .join(" ");
        let running = state.rollouts.last().filter(|r| r.ended.is_none());
        for c in &view.clusters {
            if filter
                .cloud
                .as_deref()
                .is_some_and(|f| !f.is_empty() && f != c.cloud)
            {
                continue;
            }
            if let Some((k, v)) = label
                && c.labels
                    .get(k)
                    .is_none_or(|have| v.is_some_and(|v| v != have))
            {
                continue;
            }
            let live = state.clusters.get(&c.name).cloned().unwrap_or_default();
            let drifted: u64 = live.drift.values().sum();
            let in_rollout = running.and_then(|r| r.clusters.iter().find(|s| s.cluster == c.name));
            let sync = match (&live.revision, in_rollout) {
                (_, Some(s))
                    if matches!(s.state.as_str(), "Applying" | "Progressing" | "RollingBack") =>
                {
                    "Syncing"
                }
                (None, _) => "Unknown",
                (Some(rev), _) if *rev == view.revision && drifted == 0 => "Synced",
                (Some(_), _) => "OutOfSync",
            };
            rows.push(GridRow {
                env: env.clone(),
                cluster: c.name.clone(),
                cloud: c.cloud.clone(),
                region: c.region.clone(),
                wave: waves
                    .iter()
                    .find(|(n, _)| *n == c.name)
                    .map(|(_, w)| w.to_string())
                    .or_else(|| c.wave.map(|w| w.to_string()))
                    .unwrap_or_else(|| "auto".into()),
                revision: live
                    .revision
                    .as_deref()
                    .map(short)
                    .unwrap_or_default()
                    .to_string(),
                sync,
                health: live.health.map_or("Unknown", |h| h.as_str()),
                drifted,
                colors: colors.clone(),
            });
        }
    }
    rows
}

/// The waves the last rollout placed each cluster in.
fn current_waves(state: &EnvironmentState) -> Vec<(&str, u32)> {
    state
        .rollouts
        .last()
        .map(|r| {
            r.clusters
                .iter()
                .map(|c| (c.cluster.as_str(), c.wave))
                .collect()
        })
        .unwrap_or_default()
}

/// The fleet overview.
pub fn fleet_page(
    fleet: &Fleet,
    filter: &GridFilter,
    visible: Visible<'_>,
) -> Result<String, RenderError> {
    let rows = grid(fleet, filter, visible);
    let environments = fleet
        .environments
        .keys()
        .filter(|e| visible(e))
        .map(String::as_str)
        .collect();
    let running = fleet
        .environments
        .iter()
        .filter(|(e, _)| visible(e))
        .filter_map(|(e, s)| {
            s.rollouts
                .last()
                .filter(|r| r.ended.is_none())
                .map(|r| (e.as_str(), r.number))
        })
        .collect();
    Ok(FleetPage {
        rows: &rows,
        filter,
        environments,
        running,
        audit: audit_state(fleet.audit_verified),
    }
    .render()?)
}

fn audit_state(verified: Option<bool>) -> &'static str {
    match verified {
        Some(true) => "verified",
        Some(false) => "FAILED",
        None => "not verified yet",
    }
}

/// The rollout view of `env`: its rollout of `revision` (the latest one
/// when `None`), or a page saying there was none.
pub fn rollout_page(
    env: &str,
    state: Option<&EnvironmentState>,
    revision: Option<&str>,
) -> Result<String, RenderError> {
    Ok(RolloutPage {
        env,
        live: rollout_live(env, state, revision),
    }
    .render()?)
}

/// Just the live part of the rollout view (what an update replaces).
pub fn rollout_fragment(
    env: &str,
    state: Option<&EnvironmentState>,
    revision: Option<&str>,
) -> Result<String, RenderError> {
    Ok(rollout_live(env, state, revision).render()?)
}

fn rollout_live<'a>(
    env: &'a str,
    state: Option<&'a EnvironmentState>,
    revision: Option<&str>,
) -> RolloutLive<'a> {
    let rollout = state.and_then(|s| {
        let r =
            s.rollouts.iter().rev().find(|r| {
                revision.is_none_or(|rev| !rev.is_empty() && r.revision.starts_with(rev))
            })?;
        Some(facts(s, r))
    });
    RolloutLive { env, rollout }
}

/// What the rollout view shows of `r`.
fn facts<'a>(state: &'a EnvironmentState, r: &'a Rollout) -> RolloutFacts<'a> {
    let running = r.ended.is_none();
    let mut waves: Vec<WaveColumn> = Vec::new();
    for c in &r.clusters {
        let class = class_of(&c.state);
        let cluster = WaveCluster {
            cluster: c.cluster.clone(),
            state: c.state.clone(),
            class,
            health: c.health.as_str(),
            elapsed: c.elapsed.map(seconds).unwrap_or_default(),
        };
        match waves.iter_mut().find(|w| w.wave == c.wave) {
            Some(w) => w.clusters.push(cluster),
            None => waves.push(WaveColumn {
                wave: c.wave,
                state: "pending",
                clusters: vec![cluster],
            }),
        }
    }
    waves.sort_by_key(|w| w.wave);
    for w in &mut waves {
        let classes: Vec<&str> = w.clusters.iter().map(|c| c.class).collect();
        w.state = if classes.contains(&"failed") {
            "failed"
        } else if classes.iter().all(|c| *c == "done") {
            "done"
        } else if classes.iter().all(|c| *c == "pending") {
            "pending"
        } else {
            "running"
        };
    }
    let limits = state.view.as_ref().map(|v| &v.limits);
    let succeeded = r.outcome == Some(RolloutOutcome::Succeeded);
    let mut gates = Vec::new();
    for (i, w) in waves.iter().enumerate() {
        let next = waves.get(i + 1);
        let passed = succeeded || next.is_some_and(|n| n.state != "pending");
        let at_gate = running && w.state == "done" && next.is_none_or(|n| n.state == "pending");
        if let Some(l) = limits {
            if !l.bake_time.is_zero() {
                gates.push(Gate {
                    gate: format!("bake {}", seconds(l.bake_time)),
                    wave: w.wave,
                    state: gate_state(passed, at_gate, running),
                });
            }
            for a in &l.analyses {
                gates.push(Gate {
                    gate: format!("analysis {a}"),
                    wave: w.wave,
                    state: gate_state(passed, at_gate, running),
                });
            }
            if let Some(n) = next
                && l.approval_waves.contains(&n.wave)
            {
                gates.push(Gate {
                    gate: format!("approval of wave {}", n.wave),
                    wave: w.wave,
                    state: if n.state != "pending" {
                        "given"
                    } else if at_gate {
                        "waiting"
                    } else if running {
                        "pending"
                    } else {
                        "not reached"
                    },
                });
            }
        }
    }
    let in_flight = r
        .clusters
        .iter()
        .filter(|c| matches!(c.state.as_str(), "Applying" | "Progressing"))
        .count();
    let unavailable = r
        .clusters
        .iter()
        .filter(|c| class_of(&c.state) == "failed" || c.state == "RollingBack")
        .count();
    RolloutFacts {
        number: r.number,
        revision: &r.revision,
        trigger: &r.trigger,
        running,
        outcome: r.outcome.map_or("running", RolloutOutcome::as_str),
        failure: r.failure.as_deref(),
        duration: seconds(r.duration()),
        waves,
        gates,
        max_surge: limits.map(|l| l.max_surge.clone()).unwrap_or_default(),
        in_flight,
        max_unavailable: limits
            .map(|l| l.max_unavailable.clone())
            .unwrap_or_default(),
        unavailable,
        failure_policy: limits.map(|l| l.failure_policy.clone()).unwrap_or_default(),
    }
}

fn gate_state(passed: bool, at_gate: bool, running: bool) -> &'static str {
    if passed {
        "passed"
    } else if at_gate {
        "running"
    } else if running {
        "pending"
    } else {
        "not reached"
    }
}

/// The CSS class of a cluster's state in a rollout.
fn class_of(state: &str) -> &'static str {
    match state {
        "Pending" | "WaitingForWindow" => "pending",
        "Updated" | "Skipped" => "done",
        "Failed" | "RollbackQueued" | "RollingBack" | "RolledBack" | "NotRestored" => "failed",
        _ => "running",
    }
}

/// The cluster/app view: each app's objects with their drift and diffs.
pub fn cluster_page(
    env: &str,
    cluster: &str,
    state: Option<&EnvironmentState>,
) -> Result<String, RenderError> {
    let live = state.and_then(|s| s.clusters.get(cluster));
    Ok(ClusterPage {
        env,
        cluster,
        revision: live.and_then(|l| l.revision.clone()).unwrap_or_default(),
        health: live
            .and_then(|l| l.health)
            .map_or("Unknown", |h| h.as_str()),
        apps: live
            .map(|l| {
                l.objects
                    .iter()
                    .map(|(app, objects)| {
                        let checked = l.objects_checked.get(app).map_or("", String::as_str);
                        (app.as_str(), checked, objects.as_slice())
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
    .render()?)
}

/// The timeline's rows: `records` (oldest first) that the filter keeps,
/// newest first, at most `limit`.
pub fn timeline_rows(
    records: &[Record],
    filter: &TimelineFilter,
    commit_url: &dyn Fn(&str, &str) -> Option<String>,
    visible: Visible<'_>,
    limit: usize,
) -> Vec<TimelineRow> {
    let keep = |f: &Option<String>, v: Option<&str>| {
        f.as_deref().is_none_or(|f| f.is_empty() || v == Some(f))
    };
    records
        .iter()
        .rev()
        .filter(|r| {
            let e = &r.entry;
            e.environment.as_deref().is_none_or(visible)
                && keep(&filter.env, e.environment.as_deref())
                && keep(&filter.cluster, e.cluster.as_deref())
                && keep(&filter.action, Some(e.action.as_str()))
                && filter
                    .actor
                    .as_deref()
                    .is_none_or(|a| a.is_empty() || e.actor.identity.contains(a))
        })
        .take(limit)
        .map(|r| {
            let e = &r.entry;
            let env = e.environment.clone().unwrap_or_default();
            let revision = e.to.as_ref().map(|t| t.sha.clone()).unwrap_or_default();
            TimelineRow {
                seq: r.seq,
                time: tidegate_audit::time::format_ms(r.time_ms),
                commit_url: if revision.is_empty() {
                    None
                } else {
                    commit_url(&env, &revision)
                },
                env,
                cluster: e.cluster.clone().unwrap_or_default(),
                action: e.action.as_str().to_string(),
                actor: format!("{} ({})", e.actor.identity, e.actor.trigger.as_str()),
                outcome: e
                    .outcome
                    .map(|o| o.as_str().to_string())
                    .unwrap_or_default(),
                short: short(&revision).to_string(),
                revision,
                message: e.message.clone().unwrap_or_default(),
            }
        })
        .collect()
}

/// The timeline page.
pub fn timeline_page(
    rows: &[TimelineRow],
    filter: &TimelineFilter,
    verified: Option<bool>,
    note: Option<&str>,
) -> Result<String, RenderError> {
    Ok(TimelinePage {
        rows,
        filter,
        audit: audit_state(verified),
        note,
    }
    .render()?)
}

/// The login form (`message`: why it is shown again).
pub fn login_page(message: Option<&str>) -> Result<String, RenderError> {
    Ok(LoginPage { message }.render()?)
}

/// A page with one message (not found, refused...).
pub fn message_page(title: &str, message: &str) -> Result<String, RenderError> {
    Ok(MessagePage { title, message }.render()?)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}.{}s", s, d.subsec_millis() / 100)
    }
}
