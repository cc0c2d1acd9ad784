//! Rendering the environment at other revisions (rollback targets, a
//! switch's commit), cached by commit.

use crate::Workspace;
use futures::future::BoxFuture;
use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};
use tidegate_cloud::CloudFactory;
use tidegate_cluster::FactsCache;
use tidegate_core::Diagnostics;
use tidegate_fleet::{RevisionError, RevisionRendering, Revisions};
use tidegate_health::HealthChecks;
use tidegate_source::LoadError;
use tokio::sync::OnceCell;

/// One revision loaded and rendered.
#[derive(Debug)]
pub struct RevisionEntry {
    /// The commit, environment and rendering.
    pub rendering: Arc<RevisionRendering>,
    /// The environment's custom health checks at that commit, or their problems.
    pub health_checks: Result<Arc<HealthChecks>, Diagnostics>,
}

type Slot = Arc<OnceCell<Arc<RevisionEntry>>>;

/// Renders the environment at another revision from one open repository,
/// discovering its clusters through `factory`. A revision is resolved to
/// its commit first; each commit is loaded, discovered and rendered once
/// (concurrent asks for the same commit wait for the one render).
pub struct GitRevisions<'f> {
    workspace: Arc<Mutex<Workspace>>,
    env: String,
    factory: &'f CloudFactory,
    /// The clusters' facts for Helm apps, asked once for every revision.
    facts: &'f FactsCache,
    cache: Mutex<BTreeMap<String, Slot>>,
    renders: AtomicUsize,
}

impl<'f> GitRevisions<'f> {
    /// Revisions of `env` in `workspace`'s repository.
    pub fn new(
        workspace: Arc<Mutex<Workspace>>,
        env: &str,
        factory: &'f CloudFactory,
        facts: &'f FactsCache,
    ) -> Self {
        GitRevisions {
            workspace,
            env: env.to_string(),
            factory,
            facts,
            cache: Mutex::default(),
            renders: AtomicUsize::new(0),
        }
    }

    /// How many times an environment was loaded and rendered (once per
    /// distinct commit asked for).
    pub fn renders(&self) -> usize {
        self.renders.load(Ordering::Relaxed)
    }

    /// The commit `revision` resolves to (full SHA).
    pub fn resolve(&self, revision: &str) -> Result<String, RevisionError> {
        let workspace = self
            .workspace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        workspace
            .at(revision)
            .map(|at| at.commit().sha.clone())
            .map_err(|e| revision_error(revision, e))
    }

    /// The environment at `revision`, loaded and rendered (from the cache
    /// when its commit was rendered before).
    pub async fn entry(&self, revision: &str) -> Result<Arc<RevisionEntry>, RevisionError> {
        let commit = self.resolve(revision)?;
        let slot: Slot = {
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.entry(commit.clone()).or_default().clone()
        };
        let entry = slot
            .get_or_try_init(|| self.load(revision, &commit))
            .await?;
        Ok(entry.clone())
    }

    async fn load(
        &self,
        revision: &str,
        commit: &str,
    ) -> Result<Arc<RevisionEntry>, RevisionError> {
        let loading = {
            let workspace = self
                .workspace
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // The commit, not the ref: a branch that moves meanwhile does
            // not change what this commit renders to.
            let at = workspace
                .at(commit)
                .map_err(|e| revision_error(revision, e))?;
            at.load_discovered(&self.env, self.factory, Some(self.facts))
        };
        self.renders.fetch_add(1, Ordering::Relaxed);
        let crate::Rendering {
            desired,
            rendered,
            health_checks,
        } = crate::load_rendered(loading).await.map_err(|e| match e {
            LoadError::Invalid(problems) => RevisionError::Invalid {
                revision: revision.to_string(),
                problems,
            },
            LoadError::Source(source) => RevisionError::Git {
                revision: revision.to_string(),
                source,
            },
        })?;
        Ok(Arc::new(RevisionEntry {
            rendering: Arc::new(RevisionRendering {
                commit: commit.to_string(),
                environment: desired.environment,
                rendered,
            }),
            health_checks,
        }))
    }
}

fn revision_error(revision: &str, source: tidegate_source::SourceError) -> RevisionError {
    RevisionError::Git {
        revision: revision.to_string(),
        source,
    }
}

impl Revisions for GitRevisions<'_> {
    fn render<'a>(
        &'a self,
        revision: &'a str,
    ) -> BoxFuture<'a, Result<Arc<RevisionRendering>, RevisionError>> {
        Box::pin(async move { Ok(self.entry(revision).await?.rendering.clone()) })
    }
}
