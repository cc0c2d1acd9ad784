//! Maintenance windows and freezes (`spec.rollout.windows`,
//! `spec.rollout.freezes`): when a rollout may change a cluster.
//!
//! A window or freeze is a recurring period: it starts each time its cron
//! `schedule` fires in its `timeZone` and lasts `duration`. A cluster that
//! some window selects may change only while one of its windows is open; a
//! cluster no window selects may change at any time. No cluster a freeze
//! selects changes while the freeze is on. [`ClusterSchedule`] answers "is
//! cluster C open at time T, and when does it next open" — pure functions
//! of the environment and the time.

use super::{Cluster, Environment, Located};
use crate::{Diagnostic, Diagnostics, cron::Cron, duration::GoDuration, selector::LabelSelector};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The longest window or freeze: a year.
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// How many times [`ClusterSchedule::next_open`] jumps (past a freeze, to a
/// window's start) before it gives up.
const MAX_JUMPS: usize = 1000;

/// A recurring period in `spec.rollout.windows` or `spec.rollout.freezes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Shown in `plan`, messages and the audit trail.
    pub name: String,
    /// When each period starts: a five-field cron expression.
    pub schedule: String,
    /// How long each period lasts.
    pub duration: GoDuration,
    /// IANA time zone of `schedule`, e.g. `Europe/Berlin`; UTC by default.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// The clusters it applies to, by name (with `clusterSelector`: both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
    /// The clusters it applies to, by label. Neither this nor `clusters`:
    /// every cluster of the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<LabelSelector>,
}

fn default_time_zone() -> String {
    "UTC".into()
}

/// What a wave does with a cluster whose window is closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WindowPolicy {
    /// The wave's other clusters go ahead; the wave's gate (and so the next
    /// wave) waits until the cluster's window opens and it is done.
    #[default]
    Wait,
    /// The wave's gate passes without the cluster and later waves go ahead;
    /// the rollout comes back for it when its window opens and ends only
    /// once it is done.
    SkipAndReturn,
}

impl MaintenanceWindow {
    /// True when the window applies to `cluster`.
    pub fn selects(&self, cluster: &Cluster) -> bool {
        let by_name = self.clusters.contains(&cluster.name);
        let by_label = self
            .cluster_selector
            .as_ref()
            .map(|s| s.matches(&cluster.selector_labels()));
        match (self.clusters.is_empty(), by_label) {
            (true, None) => true,
            (true, Some(l)) => l,
            (false, None) => by_name,
            (false, Some(l)) => by_name && l,
        }
    }

    /// The window ready to evaluate, or why it is not.
    pub fn compile(&self) -> Result<Period, String> {
        let cron: Cron = self.schedule.parse().map_err(|e| format!("{e}"))?;
        let tz = TimeZone::get(&self.time_zone).map_err(|_| {
            format!(
                "time zone {:?} is not in the IANA time zone database",
                self.time_zone
            )
        })?;
        if self.duration.0.is_zero() || self.duration.0 > MAX_DURATION {
            return Err(format!(
                "duration {} must be more than 0 and at most 8784h (a year)",
                self.duration
            ));
        }
        let duration = SignedDuration::try_from(self.duration.0)
            .map_err(|_| format!("duration {} is too long", self.duration))?;
        Ok(Period {
            spec: self.clone(),
            cron,
            tz,
            duration,
        })
    }
}

/// A compiled [`MaintenanceWindow`].
#[derive(Debug, Clone)]
pub struct Period {
    spec: MaintenanceWindow,
    cron: Cron,
    tz: TimeZone,
    duration: SignedDuration,
}

impl PartialEq for Period {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Eq for Period {}

impl Period {
    /// The window's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The period that covers `t` (`start <= t < start + duration`) and ends
    /// last, as `(start, end)`; `None` when none does.
    pub fn covering(&self, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let mut from = t.checked_sub(self.duration).ok()?;
        let mut found = None;
        while let Some(start) = self.cron.next_after(from, &self.tz) {
            if start > t {
                break;
            }
            found = Some((start, start.checked_add(self.duration).ok()?));
            from = start;
        }
        found
    }

    /// The first start strictly after `t`.
    pub fn next_start_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron.next_after(t, &self.tz)
    }

    /// The time zone's name.
    pub fn time_zone(&self) -> &str {
        &self.spec.time_zone
    }
}

/// The windows and freezes that apply to one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScheduleSpec", into = "ScheduleSpec")]
pub struct ClusterSchedule {
    windows: Vec<Period>,
    freezes: Vec<Period>,
}

/// How a [`ClusterSchedule`] is written in the rollout journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleSpec {
    #[serde(default)]
    windows: Vec<MaintenanceWindow>,
    #[serde(default)]
    freezes: Vec<MaintenanceWindow>,
}

impl TryFrom<ScheduleSpec> for ClusterSchedule {
    type Error = String;
    fn try_from(spec: ScheduleSpec) -> Result<Self, String> {
        Ok(ClusterSchedule {
            windows: spec
                .windows
                .iter()
                .map(MaintenanceWindow::compile)
                .collect::<Result<_, _>>()?,
            freezes: spec
                .freezes
                .iter()
                .map(MaintenanceWindow::compile)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl From<ClusterSchedule> for ScheduleSpec {
    fn from(s: ClusterSchedule) -> Self {
        ScheduleSpec {
            windows: s.windows.into_iter().map(|p| p.spec).collect(),
            freezes: s.freezes.into_iter().map(|p| p.spec).collect(),
        }
    }
}

/// Why a cluster may not change at some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// None of its windows is open.
    OutsideWindows {
        /// The names of its windows.
        windows: Vec<String>,
    },
    /// A freeze is on.
    Frozen {
        /// The freeze's name.
        freeze: String,
        /// When it ends.
        until: Timestamp,
    },
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::OutsideWindows { windows } => {
                write!(f, "outside its window {}", windows.join(", "))
            }
            Closed::Frozen { freeze, until } => write!(f, "frozen by {freeze} until {until}"),
        }
    }
}

impl ClusterSchedule {
    /// A schedule with no window and no freeze: always open.
    pub fn always() -> ClusterSchedule {
        ClusterSchedule {
            windows: Vec::new(),
            freezes: Vec::new(),
        }
    }

    /// A schedule of these windows and freezes (their selectors are not
    /// consulted); the error names the one that does not compile.
    pub fn new(
        windows: &[MaintenanceWindow],
        freezes: &[MaintenanceWindow],
    ) -> Result<ClusterSchedule, String> {
        ClusterSchedule::try_from(ScheduleSpec {
            windows: windows.to_vec(),
            freezes: freezes.to_vec(),
        })
    }

    /// The windows and freezes of `environment` that select `cluster`.
    /// Errors name the window whose schedule, zone or duration is invalid
    /// ([`Environment::parse`] reports them at their line first).
    pub fn for_cluster(
        environment: &Environment,
        cluster: &Cluster,
    ) -> Result<ClusterSchedule, String> {
        let rollout = &environment.spec.rollout;
        let compile = |list: &[Located<MaintenanceWindow>]| {
            list.iter()
                .filter(|w| w.selects(cluster))
                .map(|w| w.compile().map_err(|e| format!("window {}: {e}", w.name)))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(ClusterSchedule {
            windows: compile(&rollout.windows)?,
            freezes: compile(&rollout.freezes)?,
        })
    }

    /// True when no window and no freeze applies.
    pub fn is_always_open(&self) -> bool {
        self.windows.is_empty() && self.freezes.is_empty()
    }

    /// The names of the windows that apply.
    pub fn window_names(&self) -> Vec<String> {
        self.windows.iter().map(|w| w.name().to_string()).collect()
    }

    /// `None` when the cluster may change at `t`, otherwise why not.
    pub fn closed_at(&self, t: Timestamp) -> Option<Closed> {
        let frozen = self
            .freezes
            .iter()
            .filter_map(|f| f.covering(t).map(|(_, end)| (f, end)))
            .max_by_key(|(_, end)| *end);
        if let Some((freeze, until)) = frozen {
            return Some(Closed::Frozen {
                freeze: freeze.name().to_string(),
                until,
            });
        }
        if self.windows.is_empty() || self.windows.iter().any(|w| w.covering(t).is_some()) {
            return None;
        }
        Some(Closed::OutsideWindows {
            windows: self.window_names(),
        })
    }

    /// True when the cluster may change at `t`.
    pub fn is_open(&self, t: Timestamp) -> bool {
        self.closed_at(t).is_none()
    }

    /// When the cluster may change next: `t` itself when it is open, the
    /// end of a freeze or the start of a window otherwise; `None` when that
    /// is not found within the windows' horizon (a schedule that never
    /// fires, or a freeze that never ends).
    pub fn next_open(&self, t: Timestamp) -> Option<Timestamp> {
        let mut at = t;
        for _ in 0..MAX_JUMPS {
            match self.closed_at(at) {
                None => return Some(at),
                Some(Closed::Frozen { until, .. }) => at = until,
                Some(Closed::OutsideWindows { .. }) => {
                    // A window that starts exactly at `at` is open there;
                    // `next_start_after` looks strictly later, so start
                    // one nanosecond earlier.
                    let from = at.checked_sub(SignedDuration::from_nanos(1)).ok()?;
                    at = self
                        .windows
                        .iter()
                        .filter_map(|w| w.next_start_after(from))
                        .min()?;
                }
            }
        }
        None
    }

    /// When the window open at `t` closes (the latest end of the windows
    /// covering `t`, or the next freeze's start if earlier); `None` when the
    /// cluster is closed at `t` or has no window and no freeze.
    pub fn open_until(&self, t: Timestamp) -> Option<Timestamp> {
        if !self.is_open(t) || self.is_always_open() {
            return None;
        }
        let window_end = self
            .windows
            .iter()
            .filter_map(|w| w.covering(t).map(|(_, end)| end))
            .max();
        let freeze_start = self
            .freezes
            .iter()
            .filter_map(|f| f.next_start_after(t))
            .min();
        match (window_end, freeze_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Checks `spec.rollout.windows` and `spec.rollout.freezes`: names,
/// schedules, zones, durations, selectors. Cluster names are checked by
/// [`check_cluster_names`] once every cluster is known.
pub(super) fn check(env: &Environment, problem: &mut impl FnMut(u64, String, &str)) {
    let rollout = &env.spec.rollout;
    for (field, list) in [("windows", &rollout.windows), ("freezes", &rollout.freezes)] {
        let mut seen = BTreeSet::new();
        for w in list {
            if w.name.trim().is_empty() {
                problem(
                    w.line,
                    format!("spec.rollout.{field}: an entry has no name"),
                    "give it a name (shown by `tidegate plan` and in the audit trail)",
                );
            } else if !seen.insert(w.name.as_str()) {
                problem(
                    w.line,
                    format!("spec.rollout.{field}: {:?} is named twice", w.name),
                    "give every entry its own name",
                );
            }
            if let Err(e) = w.compile() {
                problem(
                    w.line,
                    format!("spec.rollout.{field} {}: {e}", w.name),
                    "write the schedule as five cron fields (minute hour day-of-month month day-of-week, e.g. \"0 22 * * 1-5\"), the duration like 4h or 90m, and timeZone as an IANA name such as Europe/Berlin",
                );
            }
        }
    }
}

/// Every cluster a window or freeze names exists.
pub(super) fn check_cluster_names(env: &Environment, file: &str) -> Diagnostics {
    let mut out = Diagnostics::default();
    let rollout = &env.spec.rollout;
    for (field, list) in [("windows", &rollout.windows), ("freezes", &rollout.freezes)] {
        for w in list {
            for name in w.clusters.iter().filter(|n| env.cluster(n).is_none()) {
                out.push(
                    Diagnostic::new(format!(
                        "spec.rollout.{field} {}: cluster {name:?} is not in spec.clusters",
                        w.name
                    ))
                    .at(file, w.line())
                    .help("name a cluster of this environment, or select clusters by label with clusterSelector"),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(schedule: &str, duration: u64, tz: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            name: "w".into(),
            schedule: schedule.into(),
            duration: GoDuration(std::time::Duration::from_secs(duration)),
            time_zone: tz.into(),
            clusters: Vec::new(),
            cluster_selector: None,
        }
    }

    fn schedule(windows: &[MaintenanceWindow], freezes: &[MaintenanceWindow]) -> ClusterSchedule {
        ClusterSchedule::try_from(ScheduleSpec {
            windows: windows.to_vec(),
            freezes: freezes.to_vec(),
        })
        .expect("valid")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn open_inside_a_window_and_closed_outside() {
        // 22:00-02:00 Berlin time, weekdays.
        let s = schedule(&[window("0 22 * * 1-5", 4 * 3600, "Europe/Berlin")], &[]);
        // Tuesday 2026-12-01 21:30 UTC = 22:30 CET: open.
        assert!(s.is_open(at("2026-12-01T21:30:00Z")));
        assert_eq!(
            s.open_until(at("2026-12-01T21:30:00Z")),
            Some(at("2026-12-02T01:00:00Z"))
        );
        // The window that started Tuesday 22:00 is still open at 01:59 CET.
        assert!(s.is_open(at("2026-12-02T00:59:00Z")));
        // 02:00 CET: closed; it next opens Wednesday 22:00 CET.
        let t = at("2026-12-02T01:00:00Z");
        assert_eq!(
            s.closed_at(t),
            Some(Closed::OutsideWindows {
                windows: vec!["w".into()]
            })
        );
        assert_eq!(s.next_open(t), Some(at("2026-12-02T21:00:00Z")));
        // Friday's window runs into Saturday; Saturday night has none.
        assert!(s.is_open(at("2026-12-05T00:30:00Z")));
        assert_eq!(
            s.next_open(at("2026-12-05T22:00:00Z")),
            Some(at("2026-12-07T21:00:00Z"))
        );
        // Exactly at the start it is open.
        assert_eq!(
            s.next_open(at("2026-12-02T21:00:00Z")),
            Some(at("2026-12-02T21:00:00Z"))
        );
    }

    #[test]
    fn a_freeze_wins_over_a_window_and_next_open_jumps_past_it() {
        let s = schedule(
            &[window("0 * * * *", 1800, "UTC")],
            &[window("0 0 20 12 *", 14 * 24 * 3600, "UTC")],
        );
        assert!(s.is_open(at("2026-12-19T10:10:00Z")));
        let t = at("2026-12-24T10:10:00Z");
        assert_eq!(
            s.closed_at(t),
            Some(Closed::Frozen {
                freeze: "w".into(),
                until: at("2027-01-03T00:00:00Z")
            })
        );
        assert_eq!(s.next_open(t), Some(at("2027-01-03T00:00:00Z")));
        // Open until the window's end.
        assert_eq!(
            s.open_until(at("2026-12-19T23:10:00Z")),
            Some(at("2026-12-19T23:30:00Z"))
        );
        // Without a window of its own: open until the freeze starts.
        let only_freeze = schedule(&[], &[window("0 0 20 12 *", 3600, "UTC")]);
        assert_eq!(
            only_freeze.open_until(at("2026-12-19T23:10:00Z")),
            Some(at("2026-12-20T00:00:00Z"))
        );
    }

    #[test]
    fn no_window_is_always_open_but_freezes_still_hold() {
        let s = schedule(&[], &[window("0 9 * * *", 3600, "UTC")]);
        assert!(s.is_open(at("2026-12-01T08:59:59Z")));
        assert!(!s.is_open(at("2026-12-01T09:00:00Z")));
        assert_eq!(
            s.next_open(at("2026-12-01T09:30:00Z")),
            Some(at("2026-12-01T10:00:00Z"))
        );
        assert!(ClusterSchedule::always().is_open(at("2026-12-01T09:00:00Z")));
    }

    #[test]
    fn a_window_that_never_opens_has_no_next_open() {
        let s = schedule(&[window("0 0 31 2 *", 3600, "UTC")], &[]);
        assert_eq!(s.next_open(at("2026-12-01T00:00:00Z")), None);
    }

    #[test]
    fn the_journal_form_round_trips() {
        let s = schedule(
            &[window("*/5 * * * *", 60, "America/New_York")],
            &[window("@yearly", 3600, "UTC")],
        );
        let json = serde_json::to_string(&s).expect("json");
        let back: ClusterSchedule = serde_json::from_str(&json).expect("read");
        assert_eq!(back, s);
        let bad = json.replace("America/New_York", "Mars/Olympus");
        assert!(serde_json::from_str::<ClusterSchedule>(&bad).is_err());
    }

    #[test]
    fn the_environment_file_reports_bad_windows_at_their_line() {
        let text = "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: prod\nspec:\n  source:\n    repoURL: .\n  clusters:\n    - name: a\n      provider:\n        kubeconfig: {}\n  apps: []\n  rollout:\n    windowPolicy: skipAndReturn\n    windows:\n      - name: nights\n        schedule: \"0 25 * * *\"\n        duration: 4h\n      - name: eu\n        schedule: \"0 22 * * *\"\n        duration: 4h\n        timeZone: Europe/Nowhere\n        clusters: [b]\n    freezes:\n      - name: year-end\n        schedule: \"0 0 20 12 *\"\n        duration: 0s\n";
        let problems = Environment::parse(text, "environments/prod.yaml")
            .expect_err("invalid")
            .to_string();
        for expected in [
            "environments/prod.yaml:16: spec.rollout.windows nights: cron expression \"0 25 * * *\": hour 25 is outside 0-23",
            "environments/prod.yaml:19: spec.rollout.windows eu: time zone \"Europe/Nowhere\" is not in the IANA time zone database",
            "environments/prod.yaml:19: spec.rollout.windows eu: cluster \"b\" is not in spec.clusters",
            "environments/prod.yaml:25: spec.rollout.freezes year-end: duration 0s must be more than 0",
        ] {
            assert!(problems.contains(expected), "{expected}\nin\n{problems}");
        }
        let good = text
            .replace("0 25 * * *", "0 23 * * *")
            .replace("Europe/Nowhere", "Europe/Berlin")
            .replace("[b]", "[a]")
            .replace("0s", "336h");
        let env = Environment::parse(&good, "environments/prod.yaml").expect("valid");
        assert_eq!(env.spec.rollout.window_policy, WindowPolicy::SkipAndReturn);
        let a = env.cluster("a").expect("a");
        let schedule = ClusterSchedule::for_cluster(&env, a).expect("compiles");
        assert_eq!(schedule.window_names(), ["nights", "eu"]);
    }
}
