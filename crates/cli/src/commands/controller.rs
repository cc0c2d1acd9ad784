//! `tidegate controller`: the continuous controller, until SIGTERM or Ctrl-C.

use super::{
    fleet,
    rollout::{AuditApprovals, GitRevisions, quarantine_list},
};
use crate::{
    args::{ControllerArgs, Global},
    workspace::Workspace,
};
use anyhow::Context;
use futures::future::BoxFuture;
use std::{collections::BTreeSet, path::PathBuf, process::ExitCode, sync::Arc};
use tidegate_audit::{Actor, AuditSink, SqliteStore, Trigger};
use tidegate_cloud::CloudFactory;
use tidegate_cluster::FactsCache;
use tidegate_controller::{
    AppError, Application, Controller, ControllerOptions, LoadFailure, Loaded,
};
use tidegate_fleet::{Approvals, Revisions};
use tidegate_source::LoadError;

/// The CLI's application layer, as the controller uses it.
struct CliApplication {
    repo: Option<String>,
    git_ref: Option<String>,
    factory: CloudFactory,
    /// Cluster facts for Helm apps: asked once, not at every fetch.
    facts: FactsCache,
    audit_path: PathBuf,
    audit: Arc<SqliteStore>,
}

impl Application for CliApplication {
    type Factory = CloudFactory;

    fn factory(&self) -> &CloudFactory {
        &self.factory
    }

    fn environment_names(&self) -> Result<Vec<String>, AppError> {
        let ws = Workspace::open_at(self.repo.as_deref(), self.git_ref.as_deref())?;
        Ok(ws.environment_names()?)
    }

    fn load_head<'a>(&'a self, env: &'a str) -> BoxFuture<'a, Result<Loaded, LoadFailure>> {
        Box::pin(async move {
            // Opening a remote repository fetches it.
            let loading = Workspace::open_at(self.repo.as_deref(), self.git_ref.as_deref())
                .map_err(|e| LoadFailure::Unavailable(e.into()))?
                .load_discovered(env, &self.factory, Some(&self.facts));
            let desired = loading.await.map_err(|e| match e {
                LoadError::Invalid(problems) => LoadFailure::Invalid(problems),
                LoadError::Source(e) => LoadFailure::Unavailable(e.into()),
            })?;
            let rendered = tidegate_render::render_environment(
                &desired.environment,
                &desired.env_file,
                &desired.commit.sha,
                &desired.apps,
            )
            .map_err(LoadFailure::Invalid)?;
            let health_checks = fleet::health_checks(&desired).map_err(LoadFailure::Invalid)?;
            Ok(Loaded {
                revision: desired.commit.sha.clone(),
                environment: desired.environment,
                rendered,
                health_checks,
            })
        })
    }

    fn revisions<'a>(&'a self, env: &'a str) -> Box<dyn Revisions + 'a> {
        Box::new(GitRevisions {
            repo: self.repo.clone(),
            env: env.to_string(),
            factory: &self.factory,
            facts: &self.facts,
        })
    }

    fn approvals(&self, env: &str, revision: &str) -> Box<dyn Approvals> {
        Box::new(AuditApprovals {
            path: self.audit_path.clone(),
            env: env.to_string(),
            revision: revision.to_string(),
        })
    }

    fn quarantined(&self, env: &str) -> Result<BTreeSet<String>, AppError> {
        Ok(quarantine_list(&self.audit_path, env)?)
    }

    fn audit(&self) -> Option<Arc<dyn AuditSink>> {
        Some(self.audit.clone())
    }
}

/// `tidegate controller`.
pub async fn run(global: &Global, args: &ControllerArgs) -> anyhow::Result<ExitCode> {
    let audit_path = args.audit.path();
    let audit = SqliteStore::open(&audit_path)
        .with_context(|| format!("opening the audit trail {}", audit_path.display()))?;
    let app = CliApplication {
        repo: global.repo.clone(),
        git_ref: global.git_ref.clone(),
        factory: fleet::client_factory(global, &args.kubeconfig),
        facts: FactsCache::default(),
        audit_path,
        audit: Arc::new(audit),
    };
    let identity = format!(
        "tidegate-controller/{}",
        Actor::local_user(Trigger::ControllerPoll).identity
    );
    let options = ControllerOptions {
        environments: args.env.clone(),
        debounce: std::time::Duration::from_millis(args.debounce_ms),
        identity,
        ..ControllerOptions::default()
    };
    let controller = Controller::new(app, options);
    controller.run(stop_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("stopping");
}
