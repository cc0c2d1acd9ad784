//! `tidegate switch --scale-down-after DURATION`: after a successful
//! switch, wait, then scale the old colour to 0 replicas through a commit
//! rolled out like any other (see `tidegate_fleet::scale_down`).

use anyhow::Context;
use std::process::ExitCode;
use tidegate_cloud::CloudFactory;
use tidegate_core::duration::GoDuration;
use tidegate_fleet::{
    ClusterLine, DriverOptions, Revisions,
    scale_down::{ScaleDownOutcome, ScaleDownRequest, scale_down},
    switch::ApprovalsFor,
};
use tidegate_sync::Audit;

/// Waits `after`, then scales `request.idle` down; exit 0 when it runs no
/// replica anywhere (or Git no longer has it idle, said so), 1 when the
/// rollout of the commit failed.
pub(crate) async fn after(
    after: GoDuration,
    request: &ScaleDownRequest<'_>,
    (factory, revisions, approvals): (&CloudFactory, &dyn Revisions, &ApprovalsFor<'_>),
    audit: Option<Audit>,
    options: DriverOptions,
    progress: &(dyn Fn(&[ClusterLine]) + Sync),
) -> anyhow::Result<ExitCode> {
    outln!(
        "waiting {after} before scaling {} {} down (interrupt to keep it running)",
        request.app,
        request.idle
    );
    tokio::time::sleep(after.0).await;
    let outcome = scale_down(
        request, factory, revisions, approvals, audit, options, progress,
    )
    .await
    .context("scaling the old colour down")?;
    match outcome {
        ScaleDownOutcome::ScaledDown { commit, .. } => {
            outln!(
                "{} {} scaled down to 0 replicas in {} (commit {})",
                request.app,
                request.idle,
                request.env,
                commit.get(..12).unwrap_or(&commit)
            );
            Ok(ExitCode::SUCCESS)
        }
        ScaleDownOutcome::Skipped { why } => {
            outln!("not scaled down: {why}");
            Ok(ExitCode::SUCCESS)
        }
        ScaleDownOutcome::Failed { commit, .. } => {
            outln!(
                "scale-down FAILED: the rollout of commit {} did not succeed (see `tidegate history --env {}`)",
                commit.get(..12).unwrap_or(&commit),
                request.env
            );
            Ok(ExitCode::from(1))
        }
    }
}
