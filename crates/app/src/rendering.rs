//! The one path from Git to what is applied: an environment loaded at a
//! commit (its `discover:` entries expanded), rendered for every cluster,
//! with its custom health checks. The CLI's commands ([`crate::load`]),
//! rollback targets ([`crate::GitRevisions`]) and the controller's fetch
//! all go through [`load_rendered`].

use std::sync::Arc;
use tidegate_core::Diagnostics;
use tidegate_health::HealthChecks;
use tidegate_render::Rendered;
use tidegate_source::{Desired, LoadError};

/// An environment at one commit, rendered.
#[derive(Debug)]
pub struct Rendering {
    /// What Git says (the environment, its apps, the commit).
    pub desired: Desired,
    /// Its objects per cluster.
    pub rendered: Rendered,
    /// The environment's custom health checks, or every problem with them
    /// at its file and line (a caller decides whether they stop it: a
    /// rollback target still renders when they are broken).
    pub health_checks: Result<Arc<HealthChecks>, Diagnostics>,
}

/// Awaits `loading` (a [`crate::Workspace::load_discovered`] future: Git is
/// read before it is made, so it holds no repository handle) and renders the
/// environment for every cluster. Problems with the user's files, loading
/// or rendering, are [`LoadError::Invalid`].
pub async fn load_rendered(
    loading: impl Future<Output = Result<Desired, LoadError>>,
) -> Result<Rendering, LoadError> {
    let desired = loading.await?;
    let rendered = tidegate_render::render_environment(
        &desired.environment,
        &desired.env_file,
        &desired.commit.sha,
        &desired.apps,
    )
    .map_err(LoadError::Invalid)?;
    let health_checks = health_checks(&desired);
    Ok(Rendering {
        desired,
        rendered,
        health_checks,
    })
}

/// The environment's custom health checks (`spec.health`), or every
/// problem with them at its file and line.
pub fn health_checks(desired: &Desired) -> Result<Arc<HealthChecks>, Diagnostics> {
    checks_of(
        &desired.environment,
        &desired.env_file,
        &desired.health_scripts,
    )
}

/// [`health_checks`] from the parts of a [`Desired`] it reads.
pub(crate) fn checks_of(
    environment: &tidegate_core::Environment,
    env_file: &str,
    scripts: &[tidegate_core::files::SourceFile],
) -> Result<Arc<HealthChecks>, Diagnostics> {
    let (checks, problems) = HealthChecks::for_environment(environment, env_file, scripts);
    if problems.is_empty() {
        Ok(Arc::new(checks))
    } else {
        Err(problems.sorted())
    }
}
