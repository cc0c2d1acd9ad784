//! Reusing the rendering of an unchanged head.
//!
//! A long-running caller (the controller) loads the head of every
//! environment at every interval; most of the time it is the commit it
//! already runs. [`RenderMemo`] keeps, per environment, what the last
//! rendering was made from and shares its result while the inputs are the
//! same. The inputs are compared as they are, not assumed from a commit SHA:
//! the environment after its `discover:` entries were expanded (clusters
//! the clouds report can change without a commit), the environment file's
//! path, the commit, every app's files and the Helm/Kustomize output per
//! cluster (charts pulled from a registry can change without a commit),
//! and the custom health checks' scripts. Those are everything
//! [`tidegate_render::render_environment`] and [`crate::health_checks`]
//! read, so a reused rendering is the one rendering again would give.

use crate::rendering::checks_of;
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};
use tidegate_core::{
    Diagnostics, Environment,
    files::{AppSource, SourceFile},
};
use tidegate_health::HealthChecks;
use tidegate_render::Rendered;
use tidegate_source::{CommitInfo, Desired, LoadError};

/// An environment at one commit, rendered; the rendering may be shared with
/// earlier loads of the same inputs.
#[derive(Debug, Clone)]
pub struct SharedRendering {
    /// The environment (its `discover:` entries expanded).
    pub environment: Environment,
    /// The commit the manifests were read at.
    pub commit: CommitInfo,
    /// Its objects per cluster.
    pub rendered: Arc<Rendered>,
    /// The environment's custom health checks, or every problem with them.
    pub health_checks: Result<Arc<HealthChecks>, Diagnostics>,
    /// True when the rendering of an earlier load was reused.
    pub reused: bool,
}

/// What one rendering was made from (everything it reads).
#[derive(Debug, PartialEq)]
struct Inputs {
    environment: Environment,
    env_file: String,
    commit: CommitInfo,
    apps: Vec<AppSource>,
    health_scripts: Vec<SourceFile>,
}

impl Inputs {
    fn of(desired: Desired) -> Inputs {
        Inputs {
            environment: desired.environment,
            env_file: desired.env_file,
            commit: desired.commit,
            apps: desired.apps,
            health_scripts: desired.health_scripts,
        }
    }
}

/// The last rendering of an environment and its inputs.
#[derive(Debug)]
struct Memo {
    inputs: Inputs,
    rendered: Arc<Rendered>,
    health_checks: Result<Arc<HealthChecks>, Diagnostics>,
}

/// The last rendering per environment, reused while its inputs are equal.
/// Send + Sync; one entry per environment (the last head), so it holds at
/// most one rendering per environment besides what its callers keep.
#[derive(Debug, Default)]
pub struct RenderMemo {
    last: Mutex<HashMap<String, Memo>>,
    renders: AtomicUsize,
}

impl RenderMemo {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many renderings were made (not reused) so far.
    pub fn renders(&self) -> usize {
        self.renders.load(Ordering::Relaxed)
    }

    /// Awaits `loading` (see [`crate::load_rendered`]) and renders it, or
    /// reuses the last rendering of the same environment when everything it
    /// was made from is equal. A rendering with problems is not kept.
    pub async fn load_rendered(
        &self,
        loading: impl Future<Output = Result<Desired, LoadError>>,
    ) -> Result<SharedRendering, LoadError> {
        let desired = loading.await?;
        let name = desired.environment.metadata.name.clone();
        let inputs = Inputs::of(desired);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(memo) = last.get(&name)
            && memo.inputs == inputs
        {
            return Ok(SharedRendering {
                environment: inputs.environment,
                commit: inputs.commit,
                rendered: memo.rendered.clone(),
                health_checks: memo.health_checks.clone(),
                reused: true,
            });
        }
        // Rendering is synchronous: the lock is not held across an await.
        last.remove(&name);
        drop(last);
        let rendered = Arc::new(
            tidegate_render::render_environment(
                &inputs.environment,
                &inputs.env_file,
                &inputs.commit.sha,
                &inputs.apps,
            )
            .map_err(LoadError::Invalid)?,
        );
        self.renders.fetch_add(1, Ordering::Relaxed);
        let health_checks = checks_of(
            &inputs.environment,
            &inputs.env_file,
            &inputs.health_scripts,
        );
        let shared = SharedRendering {
            environment: inputs.environment.clone(),
            commit: inputs.commit.clone(),
            rendered: rendered.clone(),
            health_checks: health_checks.clone(),
            reused: false,
        };
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                name,
                Memo {
                    inputs,
                    rendered,
                    health_checks,
                },
            );
        Ok(shared)
    }
}
