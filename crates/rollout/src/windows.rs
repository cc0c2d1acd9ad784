//! Maintenance windows and freezes as the rollout machine sees them: each
//! cluster's [`ClusterSchedule`] (from `spec.rollout.windows` and
//! `spec.rollout.freezes`), the wall-clock time at which the rollout's clock
//! reads zero, and the policy for a cluster whose window is closed.
//!
//! The machine asks [`Windows::closed`] before every apply; time stays an
//! argument (the rollout's `now` plus the journaled epoch), so the property
//! tests drive windows with a simulated clock.

use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Duration};
use tidegate_core::{
    Environment,
    environment::{Closed, ClusterSchedule, WindowPolicy},
};

/// The windows of a rollout. The default has none: every cluster may
/// change at any time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Windows {
    /// Wall-clock time (Unix milliseconds) at which the rollout's clock
    /// reads zero.
    pub epoch_ms: i64,
    /// What a wave does with a cluster whose window is closed.
    #[serde(default)]
    pub policy: WindowPolicy,
    /// The schedule of every cluster some window or freeze selects
    /// (absent: always open).
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterSchedule>,
    /// Set by `--ignore-windows --reason TEXT`: windows and freezes are
    /// not consulted; the reason goes to the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

impl Windows {
    /// The windows and freezes of every cluster of `environment`, for a
    /// rollout whose clock reads zero at `epoch_ms`. The error names the
    /// window that does not compile ([`Environment::parse`] reports it
    /// first, at its line).
    pub fn from_environment(environment: &Environment, epoch_ms: i64) -> Result<Windows, String> {
        let mut clusters = BTreeMap::new();
        for cluster in &environment.spec.clusters {
            let schedule = ClusterSchedule::for_cluster(environment, cluster)?;
            if !schedule.is_always_open() {
                clusters.insert(cluster.name.clone(), schedule);
            }
        }
        Ok(Windows {
            epoch_ms,
            policy: environment.spec.rollout.window_policy,
            clusters,
            ignored: None,
        })
    }

    /// Windows and freezes overridden with a reason (audited).
    pub fn ignoring(mut self, reason: impl Into<String>) -> Windows {
        self.ignored = Some(reason.into());
        self
    }

    /// True when no cluster has a window or freeze and nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty() && self.ignored.is_none()
    }

    /// The wall-clock time of the rollout's `now`.
    pub fn wall_clock(&self, now: Duration) -> jiff::Timestamp {
        let ms = i64::try_from(now.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(self.epoch_ms);
        jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::MAX)
    }

    /// `None` when `cluster` may change at `now` (always, when windows are
    /// ignored), otherwise why not.
    pub fn closed(&self, cluster: &str, now: Duration) -> Option<Closed> {
        if self.ignored.is_some() {
            return None;
        }
        self.clusters.get(cluster)?.closed_at(self.wall_clock(now))
    }

    /// When `cluster` next opens, in Unix milliseconds (`now`'s when it is
    /// open); `None` when it never does within the schedule's horizon.
    pub fn next_open_ms(&self, cluster: &str, now: Duration) -> Option<i64> {
        let t = self.wall_clock(now);
        match (&self.ignored, self.clusters.get(cluster)) {
            (None, Some(s)) => s.next_open(t).map(|t| t.as_millisecond()),
            _ => Some(t.as_millisecond()),
        }
    }
}

/// A time in Unix milliseconds as RFC 3339 in UTC, e.g.
/// `2026-12-01T22:00:00Z`; `None` (a window that never opens) as `never`.
pub fn format_ms(ms: Option<i64>) -> String {
    match ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()) {
        Some(t) => t
            .round(jiff::Unit::Second)
            .map_or_else(|_| t.to_string(), |t| t.to_string()),
        None => "never".into(),
    }
}
