//! Running a wave's analyses: one round of queries per interval until
//! every analysis is decided.

use crate::prometheus::Prometheus;
use futures::future::join_all;
use std::sync::atomic::{AtomicBool, Ordering};
use tidegate_core::environment::{Analysis, Rollout};
use tidegate_rollout::analysis::{AnalysisReport, AnalysisRun, Measurement};
use tracing::info;

/// Runs every analysis of `rollout` for the clusters of a baking wave
/// (`clusters`) against those still on the old revision (`baseline`), and
/// returns what was measured and the verdicts. Analyses run side by side,
/// each at its own interval; as soon as one fails, the others stop.
/// Never fails: an unreachable Prometheus gives inconclusive measurements.
pub async fn analyze_wave(
    rollout: &Rollout,
    clusters: &[String],
    baseline: &[String],
) -> AnalysisReport {
    let client = Prometheus::new();
    let stop = AtomicBool::new(false);
    let runs = rollout.analyses.iter().map(|a| {
        let (client, stop) = (&client, &stop);
        async move {
            let mut run = match a.condition() {
                Ok(condition) => AnalysisRun::new(a.value.clone(), condition, clusters),
                // Checked when the environment was parsed; kept total.
                Err(_) => return None,
            };
            loop {
                let judged = run.running();
                let compared: &[String] = if run.uses_baseline() { baseline } else { &[] };
                let (now, base) = futures::join!(
                    measure(client, rollout, run.analysis(), &judged),
                    measure(client, rollout, run.analysis(), compared),
                );
                run.record(&now, &base);
                for r in run.results().iter().filter(|r| judged.contains(&r.cluster)) {
                    if let Some(sample) = r.samples.last() {
                        info!(
                            analysis = %r.analysis,
                            cluster = %r.cluster,
                            value = sample.value.as_deref().unwrap_or("-"),
                            baseline_median = sample.baseline_median.as_deref().unwrap_or("-"),
                            verdict = ?sample.verdict,
                            "analysis measurement"
                        );
                    }
                }
                if run.failed() {
                    stop.store(true, Ordering::SeqCst);
                }
                if run.is_decided() || stop.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(a.interval.0).await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            Some(run.results().to_vec())
        }
    });
    let results = join_all(runs)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    AnalysisReport {
        results,
        baseline: baseline.to_vec(),
    }
}

/// The analysis's query in each of `clusters`, at once.
async fn measure(
    client: &Result<Prometheus, crate::prometheus::ClientError>,
    rollout: &Rollout,
    analysis: &Analysis,
    clusters: &[String],
) -> Vec<(String, Measurement)> {
    join_all(clusters.iter().map(|cluster| async move {
        let url = rollout.prometheus.as_ref().and_then(|p| p.url_for(cluster));
        let m = match (client, url) {
            (Err(e), _) => Measurement::Inconclusive(e.to_string()),
            (Ok(_), None) => Measurement::Inconclusive(format!(
                "no Prometheus for cluster {cluster} (spec.rollout.prometheus)"
            )),
            (Ok(client), Some(url)) => client.query(url, &analysis.query_for(cluster)).await,
        };
        (cluster.clone(), m)
    }))
    .await
}
