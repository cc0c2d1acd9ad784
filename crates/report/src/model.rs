//! What a report says, computed from audit records. No formatting here
//! beyond times and durations as strings.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tidegate_audit::time::{format_date, format_duration, format_ms};
use tidegate_audit::{Action, Outcome, Phase, Record, Seq};

/// The window and scope of a report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Start, Unix ms (inclusive).
    pub since_ms: i64,
    /// End, Unix ms (exclusive); also the report's "now".
    pub until_ms: i64,
    /// Only this environment.
    pub environment: Option<String>,
}

/// Counts over the window.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Entries in the window.
    pub entries: u64,
    /// Rollouts started.
    pub rollouts: u64,
    /// Rollouts that ended in success.
    pub rollouts_succeeded: u64,
    /// Rollouts that ended otherwise.
    pub rollouts_failed: u64,
    /// Blue/green switches.
    pub switches: u64,
    /// Rollbacks (including reverted switches).
    pub rollbacks: u64,
    /// Operations and events whose outcome is failure or partial.
    pub failures: u64,
    /// Drift corrections.
    pub drift_corrections: u64,
    /// Operations with an intent but no outcome.
    pub interrupted: u64,
}

/// An operation (intent + outcome) or a stand-alone event, as one line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TimelineItem {
    /// Sequence number of the intent or event.
    pub seq: Seq,
    /// Start time (RFC 3339).
    pub time: String,
    /// Start time, Unix ms.
    #[serde(skip)]
    pub time_ms: i64,
    /// Action of the intent or event.
    pub action: String,
    /// Cluster, `-` for environment-wide.
    pub cluster: String,
    /// App, `-` when none.
    pub app: String,
    /// Target revision (short SHA), `-` when none.
    pub revision: String,
    /// `success`, `failure`, ..., `interrupted`, or `-` for events without one.
    pub outcome: String,
    /// Duration, when finished.
    pub duration: String,
    /// Who and how.
    pub actor: String,
    /// Message of the outcome (or the event).
    pub message: String,
}

/// One environment's timeline.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EnvironmentTimeline {
    /// Environment name.
    pub environment: String,
    /// Operations and events, oldest first.
    pub items: Vec<TimelineItem>,
}

/// A revision that ran on a cluster for a while.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RevisionSpan {
    /// App, `-` when none.
    pub app: String,
    /// Full commit SHA.
    pub revision: String,
    /// Since (RFC 3339).
    pub since: String,
    /// Until (RFC 3339), `-` while current.
    pub until: String,
    /// The action that put it there.
    pub via: String,
    /// Sequence number of that entry.
    pub seq: Seq,
}

/// What ran on one cluster, over time.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterHistory {
    /// Environment.
    pub environment: String,
    /// Cluster.
    pub cluster: String,
    /// Revisions, oldest first.
    pub spans: Vec<RevisionSpan>,
}

/// What ran where at one point in time.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunningAt {
    /// Environment.
    pub environment: String,
    /// Cluster.
    pub cluster: String,
    /// App, `-` when none.
    pub app: String,
    /// Full commit SHA.
    pub revision: String,
    /// Since when (RFC 3339).
    pub since: String,
    /// The action that put it there.
    pub via: String,
    /// Sequence number of that entry.
    pub seq: Seq,
}

/// The four DORA metrics over the window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dora {
    /// Successful rollouts in the window.
    pub deployments: u64,
    /// Window length in days.
    pub window_days: f64,
    /// Successful rollouts per day.
    pub deployments_per_day: f64,
    /// Median of (rollout end − commit time) over successful rollouts, ms.
    pub lead_time_median_ms: Option<i64>,
    /// 90th percentile of the same, ms.
    pub lead_time_p90_ms: Option<i64>,
    /// Finished rollouts.
    pub changes: u64,
    /// Finished rollouts that failed or were rolled back.
    pub failed_changes: u64,
    /// failed_changes / changes, 0..=1 (None without changes).
    pub change_failure_rate: Option<f64>,
    /// Failures followed by a restore.
    pub restores: u64,
    /// Median of (restore − failure), ms.
    pub time_to_restore_median_ms: Option<i64>,
}

/// A rollout, for the timeline chart.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RolloutMark {
    /// Sequence number of the intent.
    pub seq: Seq,
    /// Environment.
    pub environment: String,
    /// Start, Unix ms.
    pub time_ms: i64,
    /// Clusters it touched (`env/cluster`); the environment alone when none.
    pub lanes: Vec<String>,
    /// Outcome or `interrupted`.
    pub outcome: String,
}

/// Rollbacks in one ISO-less week (7-day buckets from the window start).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WeekCount {
    /// First day of the bucket.
    pub week_of: String,
    /// Rollbacks started in it.
    pub rollbacks: u64,
}

/// A whole report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Window start (RFC 3339).
    pub since: String,
    /// Window end (RFC 3339).
    pub until: String,
    /// Environment filter, if any.
    pub environment: Option<String>,
    /// Counts.
    pub summary: Summary,
    /// DORA metrics.
    pub dora: Dora,
    /// Per-environment timelines.
    pub environments: Vec<EnvironmentTimeline>,
    /// Per-cluster revision history.
    pub clusters: Vec<ClusterHistory>,
    /// Operations without an outcome.
    pub interrupted: Vec<TimelineItem>,
    /// Rollouts (chart data).
    pub rollouts: Vec<RolloutMark>,
    /// Rollbacks per week (chart data).
    pub rollbacks_per_week: Vec<WeekCount>,
    /// Window start, Unix ms.
    #[serde(skip)]
    pub since_ms: i64,
    /// Window end, Unix ms.
    #[serde(skip)]
    pub until_ms: i64,
}

fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

fn dash(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

fn is_rollback(a: &Action) -> bool {
    matches!(a, Action::Rollback | Action::SwitchReverted)
}

/// Entries that put a revision on a cluster: a cluster, a `to` revision and
/// a successful outcome (steps may leave the outcome unset).
fn places_revision(r: &Record) -> bool {
    r.entry.cluster.is_some()
        && r.entry.to.is_some()
        && match r.entry.outcome {
            Some(o) => o == Outcome::Success,
            None => r.phase == Phase::Event,
        }
        && !matches!(r.entry.action, Action::DriftDetected | Action::GateFailed)
}

/// Median and p90 (nearest rank) of `v`.
fn percentile(v: &mut [i64], p: f64) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v.get(rank - 1).copied()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct Op<'a> {
    intent: &'a Record,
    outcome: Option<&'a Record>,
    clusters: BTreeSet<String>,
}

/// What ran where at `at_ms`: for each (environment, cluster, app), the
/// newest entry at or before `at_ms` that put a revision there. `records`
/// must be in sequence order and may start anywhere before `at_ms`.
pub fn running_at(records: &[Record], at_ms: i64) -> Vec<RunningAt> {
    let mut latest: BTreeMap<(String, String, String), &Record> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.time_ms <= at_ms && places_revision(r))
    {
        let key = (
            dash(r.entry.environment.as_deref()),
            dash(r.entry.cluster.as_deref()),
            dash(r.entry.app.as_deref()),
        );
        latest.insert(key, r);
    }
    latest
        .into_iter()
        .map(|((environment, cluster, app), r)| RunningAt {
            environment,
            cluster,
            app,
            revision: r
                .entry
                .to
                .as_ref()
                .map(|t| t.sha.clone())
                .unwrap_or_default(),
            since: format_ms(r.time_ms),
            via: r.entry.action.to_string(),
            seq: r.seq,
        })
        .collect()
}

/// Builds the report from the records of the window (in sequence order,
/// already filtered by environment when one is asked for).
pub fn build(records: &[Record], opts: &ReportOptions) -> Report {
    let in_window: Vec<&Record> = records
        .iter()
        .filter(|r| r.time_ms >= opts.since_ms && r.time_ms < opts.until_ms)
        .filter(|r| opts.environment.is_none() || r.entry.environment == opts.environment)
        .collect();

    // Operations.
    let mut ops: BTreeMap<Seq, Op<'_>> = BTreeMap::new();
    for r in &in_window {
        match (r.phase, r.operation) {
            (Phase::Intent, _) => {
                ops.insert(
                    r.seq,
                    Op {
                        intent: r,
                        outcome: None,
                        clusters: r.entry.cluster.iter().cloned().collect(),
                    },
                );
            }
            (Phase::Outcome, Some(op)) => {
                if let Some(o) = ops.get_mut(&op) {
                    o.outcome = Some(r);
                }
            }
            (Phase::Event, Some(op)) => {
                if let (Some(o), Some(c)) = (ops.get_mut(&op), &r.entry.cluster) {
                    o.clusters.insert(c.clone());
                }
            }
            _ => {}
        }
    }

    let mut summary = Summary {
        entries: in_window.len() as u64,
        ..Summary::default()
    };
    for r in &in_window {
        if r.phase == Phase::Outcome {
            if matches!(r.entry.outcome, Some(Outcome::Failure | Outcome::Partial)) {
                summary.failures += 1;
            }
            continue;
        }
        match r.entry.action {
            Action::RolloutStart if r.phase == Phase::Intent => summary.rollouts += 1,
            Action::Switch => summary.switches += 1,
            ref a if is_rollback(a) => summary.rollbacks += 1,
            Action::DriftCorrected => summary.drift_corrections += 1,
            _ => {}
        }
        if r.operation.is_none()
            && matches!(r.entry.outcome, Some(Outcome::Failure | Outcome::Partial))
        {
            summary.failures += 1;
        }
    }

    // Timelines.
    let item = |first: &Record, last: Option<&Record>, interrupted: bool| -> TimelineItem {
        let e = &first.entry;
        let outcome = if interrupted {
            "interrupted".to_string()
        } else {
            last.and_then(|l| l.entry.outcome)
                .or(e.outcome)
                .map(|o| o.as_str().to_string())
                .unwrap_or_else(|| "-".into())
        };
        TimelineItem {
            seq: first.seq,
            time: format_ms(first.time_ms),
            time_ms: first.time_ms,
            action: e.action.to_string(),
            cluster: dash(e.cluster.as_deref()),
            app: dash(e.app.as_deref()),
            revision: e
                .to
                .as_ref()
                .or(last.and_then(|l| l.entry.to.as_ref()))
                .map(|t| short(&t.sha))
                .unwrap_or_else(|| "-".into()),
            outcome,
            duration: last
                .and_then(|l| l.entry.duration_ms)
                .or(e.duration_ms)
                .map(|d| format_duration(d as i64))
                .unwrap_or_else(|| "-".into()),
            actor: format!("{} ({})", e.actor.identity, e.actor.trigger.as_str()),
            message: last
                .and_then(|l| l.entry.message.clone())
                .or_else(|| e.message.clone())
                .unwrap_or_default(),
        }
    };
    let mut timelines: BTreeMap<String, Vec<TimelineItem>> = BTreeMap::new();
    let mut interrupted = Vec::new();
    for r in &in_window {
        let env = dash(r.entry.environment.as_deref());
        match (r.phase, r.operation) {
            (Phase::Intent, _) => {
                let op = ops.get(&r.seq);
                let outcome = op.and_then(|o| o.outcome);
                let it = item(r, outcome, outcome.is_none());
                if outcome.is_none() {
                    interrupted.push(it.clone());
                }
                timelines.entry(env).or_default().push(it);
            }
            (Phase::Event, None) => timelines.entry(env).or_default().push(item(r, None, false)),
            _ => {}
        }
    }
    summary.interrupted = interrupted.len() as u64;

    // Revision history per cluster.
    let mut per_cluster: BTreeMap<(String, String), Vec<RevisionSpan>> = BTreeMap::new();
    let mut current: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for r in in_window.iter().filter(|r| places_revision(r)) {
        let env = dash(r.entry.environment.as_deref());
        let cluster = dash(r.entry.cluster.as_deref());
        let app = dash(r.entry.app.as_deref());
        let sha = r
            .entry
            .to
            .as_ref()
            .map(|t| t.sha.clone())
            .unwrap_or_default();
        let spans = per_cluster
            .entry((env.clone(), cluster.clone()))
            .or_default();
        let key = (env, cluster, app.clone());
        if let Some(&i) = current.get(&key) {
            if spans.get(i).is_some_and(|s| s.revision == sha) {
                continue;
            }
            if let Some(s) = spans.get_mut(i) {
                s.until = format_ms(r.time_ms);
            }
        }
        current.insert(key, spans.len());
        spans.push(RevisionSpan {
            app,
            revision: sha,
            since: format_ms(r.time_ms),
            until: "-".into(),
            via: r.entry.action.to_string(),
            seq: r.seq,
        });
    }

    // DORA.
    let rollouts: Vec<&Op<'_>> = ops
        .values()
        .filter(|o| o.intent.entry.action == Action::RolloutStart)
        .collect();
    let rollbacks: Vec<&Record> = in_window
        .iter()
        .copied()
        .filter(|r| is_rollback(&r.entry.action) && r.phase != Phase::Outcome)
        .collect();
    let same_scope = |a: &Record, b: &Record| {
        a.entry.environment == b.entry.environment
            && (a.entry.app.is_none() || b.entry.app.is_none() || a.entry.app == b.entry.app)
    };
    let mut lead_times = Vec::new();
    let mut changes = 0u64;
    let mut failed = 0u64;
    let mut restore_times = Vec::new();
    for (i, op) in rollouts.iter().enumerate() {
        let Some(out) = op.outcome else { continue };
        changes += 1;
        let next_start = rollouts[i + 1..]
            .iter()
            .find(|n| same_scope(n.intent, op.intent))
            .map(|n| n.intent.time_ms)
            .unwrap_or(i64::MAX);
        let rolled_back = rollbacks.iter().find(|rb| {
            rb.time_ms >= out.time_ms && rb.time_ms < next_start && same_scope(rb, op.intent)
        });
        let success = out.entry.outcome == Some(Outcome::Success);
        if success && let Some(commit) = out.entry.to.as_ref().and_then(|t| t.time_ms) {
            lead_times.push(out.time_ms - commit);
        }
        if !success || rolled_back.is_some() {
            failed += 1;
            // Failure time: the failed outcome, or the rollback's start for a
            // rollout that ended well but was rolled back.
            let failed_at = if success {
                rolled_back.map(|r| r.time_ms).unwrap_or(out.time_ms)
            } else {
                out.time_ms
            };
            // Restored: the next successful rollout or rollback outcome.
            let restored = ops.values().filter_map(|o| o.outcome).find(|o| {
                o.time_ms > failed_at
                    && o.entry.outcome == Some(Outcome::Success)
                    && (o.entry.action == Action::RolloutEnd || is_rollback(&o.entry.action))
                    && same_scope(o, op.intent)
            });
            if let Some(r) = restored {
                restore_times.push(r.time_ms - failed_at);
            }
        }
    }
    let deployments = rollouts
        .iter()
        .filter(|o| {
            o.outcome
                .is_some_and(|r| r.entry.outcome == Some(Outcome::Success))
        })
        .count() as u64;
    let window_days = ((opts.until_ms - opts.since_ms).max(1) as f64) / 86_400_000.0;
    let dora = Dora {
        deployments,
        window_days: round2(window_days),
        deployments_per_day: round2(deployments as f64 / window_days),
        lead_time_median_ms: percentile(&mut lead_times.clone(), 0.5),
        lead_time_p90_ms: percentile(&mut lead_times, 0.9),
        changes,
        failed_changes: failed,
        change_failure_rate: (changes > 0).then(|| round2(failed as f64 / changes as f64)),
        restores: restore_times.len() as u64,
        time_to_restore_median_ms: percentile(&mut restore_times, 0.5),
    };
    summary.rollouts_succeeded = deployments;
    summary.rollouts_failed = rollouts
        .iter()
        .filter(|o| {
            o.outcome
                .is_some_and(|r| r.entry.outcome != Some(Outcome::Success))
        })
        .count() as u64;

    // Chart data.
    let marks = rollouts
        .iter()
        .map(|o| {
            let env = dash(o.intent.entry.environment.as_deref());
            let lanes = if o.clusters.is_empty() {
                vec![env.clone()]
            } else {
                o.clusters.iter().map(|c| format!("{env}/{c}")).collect()
            };
            RolloutMark {
                seq: o.intent.seq,
                environment: env,
                time_ms: o.intent.time_ms,
                lanes,
                outcome: o
                    .outcome
                    .and_then(|r| r.entry.outcome)
                    .map(|x| x.as_str().to_string())
                    .unwrap_or_else(|| "interrupted".into()),
            }
        })
        .collect();
    let week_ms = 7 * 86_400_000;
    let weeks = ((opts.until_ms - opts.since_ms).max(1) + week_ms - 1) / week_ms;
    let mut per_week: Vec<WeekCount> = (0..weeks)
        .map(|w| WeekCount {
            week_of: format_date(opts.since_ms + w * week_ms),
            rollbacks: 0,
        })
        .collect();
    for rb in &rollbacks {
        let w = ((rb.time_ms - opts.since_ms) / week_ms) as usize;
        if let Some(b) = per_week.get_mut(w) {
            b.rollbacks += 1;
        }
    }

    Report {
        since: format_ms(opts.since_ms),
        until: format_ms(opts.until_ms),
        environment: opts.environment.clone(),
        summary,
        dora,
        environments: timelines
            .into_iter()
            .map(|(environment, items)| EnvironmentTimeline { environment, items })
            .collect(),
        clusters: per_cluster
            .into_iter()
            .map(|((environment, cluster), spans)| ClusterHistory {
                environment,
                cluster,
                spans,
            })
            .collect(),
        interrupted,
        rollouts: marks,
        rollbacks_per_week: per_week,
        since_ms: opts.since_ms,
        until_ms: opts.until_ms,
    }
}
