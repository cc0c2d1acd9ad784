//! Metric analysis: judging measurements and tallying them per cluster.
//!
//! Pure: the engine queries Prometheus (crates/analysis) and feeds each
//! round of values to an [`AnalysisRun`]; this module decides what a value
//! means. A round measures the query in every cluster of the wave being
//! judged and in the **baseline**: the clusters still on the old revision.
//! The success condition sees the judged cluster's value as `result` and the
//! baseline's values through `median(baseline)`, `mean(baseline)`, ... — the
//! cross-cluster judgement (see `tidegate_core::condition`).
//!
//! Per analysis and cluster, each measurement is
//! - **passed** or **failed** by the condition,
//! - **inconclusive** when there is no value (Prometheus unreachable, no
//!   data, several series, not a finite number) or, for a condition that
//!   uses the baseline, when no baseline cluster gave a value,
//! - **no baseline** when the condition needs the baseline but no cluster is
//!   on the old revision any more (the last wave): it counts as passed and
//!   is reported so; guard the condition with `count(baseline) == 0 || ...`
//!   to give that case an absolute limit.
//!
//! A cluster fails the analysis once more than `failureLimit` measurements
//! failed, or more than `inconclusiveLimit` were inconclusive (so an
//! unreachable Prometheus fails the wave after its limit, never passes it);
//! it passes once `count` measurements were taken without that. The
//! analysis fails as soon as one cluster fails (the engine stops measuring)
//! and passes when every cluster passed.

use serde::{Deserialize, Serialize};
use std::fmt;
use tidegate_core::{
    condition::{Condition, EvalError, median},
    environment::Analysis,
};

/// One raw measurement of a query in one cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Measurement {
    /// The query's value.
    Value(f64),
    /// No usable value, and why.
    Inconclusive(String),
}

/// The verdict on one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// The condition held.
    Passed,
    /// The condition did not hold.
    Failed,
    /// No verdict: no value, or no baseline value to compare with.
    Inconclusive,
    /// The condition needs clusters on the old revision and none is left;
    /// counted as passed.
    NoBaseline,
}

/// One judged measurement, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// The cluster's value (as text, e.g. `0.0123`), or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The median of the baseline clusters' values in the same round, when
    /// the condition compares with them and there were some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_median: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it is inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where one analysis stands in one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// More measurements to take.
    Running,
    /// `count` measurements within the limits.
    Passed,
    /// More failed measurements than `failureLimit`.
    Failed,
    /// More inconclusive measurements than `inconclusiveLimit`.
    Inconclusive,
}

/// One analysis in one cluster: every measurement and the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterResult {
    /// The analysis.
    pub analysis: String,
    /// The judged cluster.
    pub cluster: String,
    /// Every measurement, oldest first.
    pub samples: Vec<Sample>,
    /// Where it stands.
    pub status: Status,
}

/// The analyses of one wave: what was measured where and the verdict. Sent
/// by the engine with [`crate::Event::Analyzed`], recorded in the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisReport {
    /// Per analysis and judged cluster, in analysis then cluster order.
    pub results: Vec<ClusterResult>,
    /// The clusters on the old revision the wave was compared with.
    pub baseline: Vec<String>,
}

impl AnalysisReport {
    /// The first failure: `(analysis, cluster, why)`; `None` when every
    /// analysis passed in every cluster.
    pub fn failure(&self) -> Option<(String, String, String)> {
        // A failed cluster is the cause; one stopped undecided (because
        // another failed, or cut short) only when none failed.
        let failed = |r: &&ClusterResult| matches!(r.status, Status::Failed | Status::Inconclusive);
        self.results
            .iter()
            .find(failed)
            .or_else(|| self.results.iter().find(|r| r.status == Status::Running))
            .map(|r| (r.analysis.clone(), r.cluster.clone(), r.why()))
    }

    /// True when every analysis passed in every cluster.
    pub fn passed(&self) -> bool {
        self.failure().is_none()
    }
}

impl ClusterResult {
    fn count(&self, verdict: Verdict) -> usize {
        self.samples.iter().filter(|s| s.verdict == verdict).count()
    }

    /// Why it ended as it did, in a sentence.
    pub fn why(&self) -> String {
        let n = self.samples.len();
        match self.status {
            Status::Failed => format!(
                "{} of {n} measurements failed the condition",
                self.count(Verdict::Failed)
            ),
            Status::Inconclusive => {
                let reason = self
                    .samples
                    .iter()
                    .rev()
                    .find_map(|s| s.reason.clone())
                    .unwrap_or_default();
                format!(
                    "{} of {n} measurements were inconclusive (last: {reason}); inconclusive counts as failure after inconclusiveLimit",
                    self.count(Verdict::Inconclusive)
                )
            }
            Status::Running => format!("stopped after {n} measurement(s)"),
            Status::Passed if self.count(Verdict::NoBaseline) > 0 => format!(
                "{n} measurements passed ({} with no cluster on the old revision to compare with)",
                self.count(Verdict::NoBaseline)
            ),
            Status::Passed => format!("{n} measurements passed"),
        }
    }
}

impl fmt::Display for ClusterResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values: Vec<String> = self
            .samples
            .iter()
            .map(|s| {
                let mark = match s.verdict {
                    Verdict::Passed => "ok",
                    Verdict::Failed => "FAIL",
                    Verdict::Inconclusive => "?",
                    Verdict::NoBaseline => "ok, no baseline",
                };
                match (&s.value, &s.baseline_median) {
                    (Some(v), Some(b)) => format!("{v} vs median {b} {mark}"),
                    (Some(v), None) => format!("{v} {mark}"),
                    (None, _) => mark.to_string(),
                }
            })
            .collect();
        write!(
            f,
            "analysis {} in {}: {} [{}]",
            self.analysis,
            self.cluster,
            self.why(),
            values.join(", ")
        )
    }
}

/// Numbers as recorded: short, without float noise (`0.0123`, `1.5e-7`).
pub fn format_value(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let text = format!("{v:.4e}");
    // Parse back and print the shortest form.
    text.parse::<f64>().map_or(text, |p| p.to_string())
}

/// Judges one round: each judged cluster's measurement against the
/// baseline clusters' measurements of the same round.
pub fn judge(
    condition: &Condition,
    judged: &[(String, Measurement)],
    baseline: &[(String, Measurement)],
) -> Vec<(String, Sample)> {
    let base: Vec<f64> = baseline
        .iter()
        .filter_map(|(_, m)| match m {
            Measurement::Value(v) => Some(*v),
            Measurement::Inconclusive(_) => None,
        })
        .collect();
    let mut sorted = base.clone();
    sorted.sort_by(f64::total_cmp);
    let base_median = (condition.uses_baseline())
        .then(|| median(&sorted))
        .flatten()
        .map(format_value);
    judged
        .iter()
        .map(|(cluster, m)| {
            let sample = match m {
                Measurement::Inconclusive(reason) => Sample {
                    value: None,
                    baseline_median: base_median.clone(),
                    verdict: Verdict::Inconclusive,
                    reason: Some(reason.clone()),
                },
                Measurement::Value(v) => {
                    let value = Some(format_value(*v));
                    if condition.uses_baseline() && !baseline.is_empty() && base.is_empty() {
                        Sample {
                            value,
                            baseline_median: None,
                            verdict: Verdict::Inconclusive,
                            reason: Some(format!(
                                "none of the {} cluster(s) on the old revision gave a value",
                                baseline.len()
                            )),
                        }
                    } else {
                        let verdict = match condition.eval(*v, &base) {
                            Ok(true) => Verdict::Passed,
                            Ok(false) => Verdict::Failed,
                            Err(EvalError::NoBaseline) => Verdict::NoBaseline,
                        };
                        Sample {
                            value,
                            baseline_median: base_median.clone(),
                            verdict,
                            reason: None,
                        }
                    }
                }
            };
            (cluster.clone(), sample)
        })
        .collect()
}

/// One analysis running in the clusters of a wave.
#[derive(Debug, Clone)]
pub struct AnalysisRun {
    analysis: Analysis,
    condition: Condition,
    results: Vec<ClusterResult>,
}

impl AnalysisRun {
    /// A run of `analysis` judging `clusters`.
    pub fn new(analysis: Analysis, condition: Condition, clusters: &[String]) -> Self {
        let results = clusters
            .iter()
            .map(|c| ClusterResult {
                analysis: analysis.name.clone(),
                cluster: c.clone(),
                samples: Vec::new(),
                status: Status::Running,
            })
            .collect();
        AnalysisRun {
            analysis,
            condition,
            results,
        }
    }

    /// True when the condition compares with the baseline clusters.
    pub fn uses_baseline(&self) -> bool {
        self.condition.uses_baseline()
    }

    /// The analysis.
    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    /// Records one round (see [`judge`]); clusters whose result is decided
    /// take no more samples.
    pub fn record(&mut self, judged: &[(String, Measurement)], baseline: &[(String, Measurement)]) {
        let running: Vec<(String, Measurement)> = judged
            .iter()
            .filter(|(c, _)| {
                self.results
                    .iter()
                    .any(|r| r.cluster == *c && r.status == Status::Running)
            })
            .cloned()
            .collect();
        for (cluster, sample) in judge(&self.condition, &running, baseline) {
            let Some(r) = self.results.iter_mut().find(|r| r.cluster == cluster) else {
                continue;
            };
            r.samples.push(sample);
            let failed = r.count(Verdict::Failed);
            let inconclusive = r.count(Verdict::Inconclusive);
            r.status = if failed > self.analysis.failure_limit as usize {
                Status::Failed
            } else if inconclusive > self.analysis.inconclusive_limit as usize {
                Status::Inconclusive
            } else if r.samples.len() >= self.analysis.count as usize {
                Status::Passed
            } else {
                Status::Running
            };
        }
    }

    /// Clusters still measured.
    pub fn running(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.status == Status::Running)
            .map(|r| r.cluster.clone())
            .collect()
    }

    /// True once some cluster failed or every cluster passed.
    pub fn is_decided(&self) -> bool {
        self.failed() || self.results.iter().all(|r| r.status == Status::Passed)
    }

    /// True once some cluster failed.
    pub fn failed(&self) -> bool {
        self.results
            .iter()
            .any(|r| matches!(r.status, Status::Failed | Status::Inconclusive))
    }

    /// Every cluster's result so far.
    pub fn results(&self) -> &[ClusterResult] {
        &self.results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_core::duration::GoDuration;

    fn analysis(
        condition: &str,
        count: u32,
        failure_limit: u32,
        inconclusive_limit: u32,
    ) -> (Analysis, Condition) {
        let a = Analysis {
            name: "error-rate".into(),
            query: "q".into(),
            success_condition: condition.into(),
            interval: GoDuration(std::time::Duration::from_secs(1)),
            count,
            failure_limit,
            inconclusive_limit,
        };
        let c = a.condition().unwrap_or_else(|e| panic!("{e}"));
        (a, c)
    }

    fn values(v: &[(&str, f64)]) -> Vec<(String, Measurement)> {
        v.iter()
            .map(|(c, v)| (c.to_string(), Measurement::Value(*v)))
            .collect()
    }

    fn down(clusters: &[&str]) -> Vec<(String, Measurement)> {
        clusters
            .iter()
            .map(|c| {
                (
                    c.to_string(),
                    Measurement::Inconclusive("connection refused".into()),
                )
            })
            .collect()
    }

    const CROSS: &str = "result <= 1.2 * median(baseline)";

    #[test]
    fn wave_one_worse_than_the_clusters_on_the_old_revision_fails() {
        let (a, c) = analysis(CROSS, 3, 1, 1);
        let mut run = AnalysisRun::new(a, c, &["canary".into()]);
        let baseline = values(&[("west", 0.010), ("central", 0.011), ("south", 0.5)]);
        // Median of the baseline is 0.011: 0.013 passes, 0.2 fails.
        run.record(&values(&[("canary", 0.013)]), &baseline);
        assert!(!run.is_decided());
        run.record(&values(&[("canary", 0.2)]), &baseline);
        assert!(!run.is_decided(), "one failure is within failureLimit 1");
        run.record(&values(&[("canary", 0.2)]), &baseline);
        assert!(run.failed());
        let report = AnalysisReport {
            results: run.results().to_vec(),
            baseline: vec!["west".into(), "central".into(), "south".into()],
        };
        let (analysis, cluster, why) = report.failure().unwrap_or_default();
        assert_eq!(
            (analysis.as_str(), cluster.as_str()),
            ("error-rate", "canary")
        );
        assert_eq!(why, "2 of 3 measurements failed the condition");
        let shown = run.results()[0].to_string();
        assert!(
            shown.contains("0.013 vs median 0.011 ok")
                && shown.contains("0.2 vs median 0.011 FAIL"),
            "{shown}"
        );
    }

    #[test]
    fn the_same_error_rate_everywhere_passes_after_count_measurements() {
        let (a, c) = analysis(CROSS, 3, 0, 0);
        let mut run = AnalysisRun::new(a, c, &["canary".into(), "other".into()]);
        let baseline = values(&[("west", 0.01)]);
        for _ in 0..3 {
            assert!(!run.is_decided());
            run.record(&values(&[("canary", 0.01), ("other", 0.0119)]), &baseline);
        }
        assert!(run.is_decided() && !run.failed());
        assert!(
            run.results()
                .iter()
                .all(|r| r.status == Status::Passed && r.samples.len() == 3)
        );
    }

    #[test]
    fn an_unreachable_prometheus_is_inconclusive_and_fails_after_the_limit() {
        let (a, c) = analysis("result < 0.01", 5, 0, 1);
        let mut run = AnalysisRun::new(a, c, &["canary".into()]);
        run.record(&down(&["canary"]), &[]);
        assert!(
            !run.is_decided(),
            "one inconclusive measurement is within the limit"
        );
        run.record(&down(&["canary"]), &[]);
        assert!(run.failed());
        assert_eq!(run.results()[0].status, Status::Inconclusive);
        let why = run.results()[0].why();
        assert!(
            why.contains("2 of 2 measurements were inconclusive (last: connection refused)"),
            "{why}"
        );
        // A decided cluster takes no more samples.
        run.record(&values(&[("canary", 0.0)]), &[]);
        assert_eq!(run.results()[0].samples.len(), 2);
    }

    #[test]
    fn an_unreadable_baseline_is_inconclusive_but_a_missing_one_is_reported_and_passes() {
        let (a, c) = analysis(CROSS, 1, 0, 0);
        let mut unreadable = AnalysisRun::new(a.clone(), c.clone(), &["canary".into()]);
        unreadable.record(&values(&[("canary", 0.0)]), &down(&["west"]));
        assert_eq!(unreadable.results()[0].status, Status::Inconclusive);
        assert!(
            unreadable.results()[0]
                .why()
                .contains("none of the 1 cluster(s) on the old revision gave a value")
        );

        let mut last_wave = AnalysisRun::new(a, c, &["canary".into()]);
        last_wave.record(&values(&[("canary", 0.9)]), &[]);
        assert_eq!(last_wave.results()[0].status, Status::Passed);
        assert_eq!(
            last_wave.results()[0].samples[0].verdict,
            Verdict::NoBaseline
        );
        assert!(
            last_wave.results()[0]
                .why()
                .contains("no cluster on the old revision")
        );

        // Guarded: an absolute limit applies when nothing is left to compare with.
        let (a, c) = analysis(
            "result < 0.05 && (count(baseline) == 0 || result <= 1.2 * median(baseline))",
            1,
            0,
            0,
        );
        let mut guarded = AnalysisRun::new(a, c, &["canary".into()]);
        guarded.record(&values(&[("canary", 0.9)]), &[]);
        assert_eq!(guarded.results()[0].status, Status::Failed);
    }

    #[test]
    fn the_cause_is_the_failed_cluster_not_one_stopped_undecided() {
        let (a, c) = analysis("result < 1", 3, 0, 0);
        let stopped = AnalysisRun::new(a, c, &["west".into()]);
        let (b, c) = analysis("result < 1", 3, 0, 0);
        let mut failed = AnalysisRun::new(
            Analysis {
                name: "latency".into(),
                ..b
            },
            c,
            &["canary".into()],
        );
        failed.record(&values(&[("canary", 5.0)]), &[]);
        let report = AnalysisReport {
            results: [stopped.results(), failed.results()].concat(),
            baseline: Vec::new(),
        };
        let (analysis, cluster, _) = report.failure().unwrap_or_default();
        assert_eq!((analysis.as_str(), cluster.as_str()), ("latency", "canary"));
    }

    #[test]
    fn a_report_with_an_undecided_cluster_did_not_pass() {
        let (a, c) = analysis("result < 1", 3, 0, 0);
        let run = AnalysisRun::new(a, c, &["canary".into()]);
        let report = AnalysisReport {
            results: run.results().to_vec(),
            baseline: Vec::new(),
        };
        assert!(!report.passed());
        assert!(AnalysisReport::default().passed());
    }

    #[test]
    fn values_are_recorded_without_float_noise() {
        assert_eq!(format_value(0.1 + 0.2), "0.3");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(1.5e-7), "0.00000015");
        assert_eq!(format_value(12345.678), "12346");
    }
}
