//! Metric analyses in a rollout: running them when the machine asks
//! ([`Command::Analyze`](tidegate_rollout::Command::Analyze)) and recording
//! their results in the audit trail (one `analysis` entry per analysis and
//! cluster, with every measured value).

use std::{future::Future, pin::Pin};
use tidegate_audit::{Action, Entry, Outcome};
use tidegate_core::Environment;
use tidegate_rollout::{
    Event,
    analysis::{AnalysisReport, Status},
};

/// The audit action of an analysis result.
pub const ACTION: &str = "analysis";

/// A future answering one analysis request.
pub(crate) type Analyzing<'a> = Pin<Box<dyn Future<Output = Event> + Send + 'a>>;

/// Runs the analyses of `environment` for a baking wave.
pub(crate) fn run(
    environment: &Environment,
    wave: u32,
    clusters: Vec<String>,
    baseline: Vec<String>,
) -> Analyzing<'_> {
    Box::pin(async move {
        let report =
            tidegate_analysis::analyze_wave(&environment.spec.rollout, &clusters, &baseline).await;
        Event::Analyzed { wave, report }
    })
}

/// The audit entries of a wave's analysis report, built from `entry` (actor,
/// environment, revision already set).
pub(crate) fn entries(entry: impl Fn() -> Entry, wave: u32, report: &AnalysisReport) -> Vec<Entry> {
    report
        .results
        .iter()
        .map(|r| {
            let outcome = match r.status {
                Status::Passed => Outcome::Success,
                Status::Failed | Status::Inconclusive => Outcome::Failure,
                Status::Running => Outcome::Aborted,
            };
            let mut e = entry()
                .cluster(&r.cluster)
                .outcome(outcome)
                .message(format!("wave {wave}: {r}"));
            e.action = Action::Other(ACTION.into());
            e.details.insert("analysis".into(), r.analysis.clone());
            e.details.insert("wave".into(), wave.to_string());
            let values: Vec<&str> = r
                .samples
                .iter()
                .map(|s| s.value.as_deref().unwrap_or("-"))
                .collect();
            e.details.insert("values".into(), values.join(" "));
            if !report.baseline.is_empty() {
                e.details
                    .insert("baseline".into(), report.baseline.join(" "));
                let medians: Vec<&str> = r
                    .samples
                    .iter()
                    .map(|s| s.baseline_median.as_deref().unwrap_or("-"))
                    .collect();
                e.details
                    .insert("baselineMedians".into(), medians.join(" "));
            }
            e
        })
        .collect()
}
