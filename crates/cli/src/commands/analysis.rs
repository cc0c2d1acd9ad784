//! Metric analysis results in `tidegate sync` and `tidegate history` output.

use tidegate_audit::{Action, Record};
use tidegate_core::environment::Rollout;
use tidegate_report::escape_control;
use tidegate_rollout::{Transition, TransitionKind};

/// Prints the metric analyses every wave's bake will run (`tidegate plan`).
pub fn print_plan(rollout: &Rollout) {
    for a in &rollout.analyses {
        outln!(
            "analysis {} during each bake: every {}, {} measurements per cluster, failureLimit {}, inconclusiveLimit {}; passes when {}",
            a.name,
            a.interval,
            a.count,
            a.failure_limit,
            a.inconclusive_limit,
            escape_control(&a.success_condition)
        );
    }
}

/// Prints each wave's analysis results of a rollout, one line per analysis
/// and cluster, with every measured value.
pub fn print_results(transitions: &[Transition]) {
    for t in transitions {
        let TransitionKind::Analysis { wave, report } = &t.kind else {
            continue;
        };
        let against = if report.baseline.is_empty() {
            "no cluster left on the old revision".to_string()
        } else {
            format!("compared with {}", report.baseline.join(", "))
        };
        let verdict = if report.passed() { "passed" } else { "FAILED" };
        outln!("wave {wave} analysis {verdict} ({against}):");
        for r in &report.results {
            outln!("  {}", escape_control(&r.to_string()));
        }
    }
}

/// The analysis records of the rollout operation `operation`.
pub fn of_operation(records: &[Record], operation: u64) -> Vec<serde_json::Value> {
    records
        .iter()
        .filter(|r| {
            r.operation == Some(operation)
                && r.entry.action == Action::Other(tidegate_fleet::analysis::ACTION.into())
        })
        .map(|r| {
            serde_json::json!({
                "cluster": r.entry.cluster,
                "analysis": r.entry.details.get("analysis"),
                "outcome": r.entry.outcome.map(|o| o.as_str()),
                "values": r.entry.details.get("values"),
                "message": r.entry.message,
            })
        })
        .collect()
}

/// Prints the analysis lines of one `history` row (under it, indented).
pub fn print_history(analyses: &[serde_json::Value]) {
    for a in analyses {
        outln!(
            "       {}",
            escape_control(a["message"].as_str().unwrap_or_default())
        );
    }
}
