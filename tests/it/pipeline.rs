//! The read → parse → render pipeline the CLI runs, for tests.

use std::path::Path;
use tidegate_core::Diagnostics;
use tidegate_render::Rendered;
use tidegate_source::{GitSource, LoadError, Overrides, Repo, desired};

/// Loads `env` from the repository at `repo_dir` (HEAD) and renders it, as
/// `tidegate validate` does. Diagnostics for user errors; panics on Git errors.
pub fn render_env(repo_dir: &Path, env: &str) -> Result<Rendered, Diagnostics> {
    load_env(repo_dir, env).map(|(_, r)| r)
}

/// Like [`render_env`], also returning what was read from Git.
pub fn load_env(
    repo_dir: &Path,
    env: &str,
) -> Result<(tidegate_source::Desired, Rendered), Diagnostics> {
    load_env_at(repo_dir, env, "HEAD")
}

/// Like [`load_env`], at another revision (environment file and manifests).
pub fn load_env_at(
    repo_dir: &Path,
    env: &str,
    revision: &str,
) -> Result<(tidegate_source::Desired, Rendered), Diagnostics> {
    let cache = tempfile::tempdir().expect("cache");
    // Helm and Kustomize apps, with a cache of this run's own.
    let templater =
        tidegate_template::Templater::from_env().with_cache_dir(cache.path().join("template"));
    load_with(repo_dir, env, revision, &templater)
}

/// Like [`load_env_at`], with Helm and Kustomize apps rendered by `templater`.
pub fn load_with(
    repo_dir: &Path,
    env: &str,
    revision: &str,
    templater: &tidegate_template::Templater,
) -> Result<(tidegate_source::Desired, Rendered), Diagnostics> {
    load_with_facts(
        repo_dir,
        env,
        revision,
        templater,
        &tidegate_template::ClusterFacts::new(),
    )
}

/// Like [`load_with`], with Helm apps seeing what the clusters reported
/// (`facts`), as the commands that talk to clusters do.
pub fn load_with_facts(
    repo_dir: &Path,
    env: &str,
    revision: &str,
    templater: &tidegate_template::Templater,
    facts: &tidegate_template::ClusterFacts,
) -> Result<(tidegate_source::Desired, Rendered), Diagnostics> {
    let cache = tempfile::tempdir().expect("cache");
    let git = GitSource::new(cache.path());
    let repo = Repo::open_local(repo_dir).expect("open");
    let commit = repo.resolve(revision).expect("revision");
    let loaded = desired::load_environment(&repo, &commit, env).and_then(|(e, file)| {
        desired::load_desired(&git, &repo, &commit, e, file, &Overrides::default())
    });
    let mut desired = match loaded {
        Ok(d) => d,
        Err(LoadError::Invalid(problems)) => return Err(problems),
        Err(LoadError::Source(e)) => panic!("git error: {e}"),
    };
    templater.expand_blocking_with_facts(&mut desired, facts);
    let rendered = tidegate_render::render_environment(
        &desired.environment,
        &desired.env_file,
        &desired.commit.sha,
        &desired.apps,
    )?;
    Ok((desired, rendered))
}

/// No wave is ever approved (for rollouts without `approval: required`).
pub struct NoApprovals;

impl tidegate_fleet::Approvals for NoApprovals {
    fn approved(
        &self,
        _wave: u32,
    ) -> futures::future::BoxFuture<'_, Result<bool, tidegate_fleet::ApprovalError>> {
        Box::pin(std::future::ready(Ok(false)))
    }
}

/// Renders a fixture repository's environment at a revision (rollback and
/// switch targets), as the CLI does.
pub struct At(pub std::path::PathBuf, pub String);

impl tidegate_fleet::Revisions for At {
    fn render<'a>(
        &'a self,
        revision: &'a str,
    ) -> futures::future::BoxFuture<
        'a,
        Result<std::sync::Arc<tidegate_fleet::RevisionRendering>, tidegate_fleet::RevisionError>,
    > {
        let result = load_env_at(&self.0, &self.1, revision)
            .map(|(d, r)| {
                std::sync::Arc::new(tidegate_fleet::RevisionRendering {
                    commit: d.commit.sha,
                    environment: d.environment,
                    rendered: r,
                })
            })
            .map_err(|problems| tidegate_fleet::RevisionError::Invalid {
                revision: revision.to_string(),
                problems,
            });
        Box::pin(std::future::ready(result))
    }
}

/// Rolls the repository's HEAD out across the environment with the fleet
/// driver, as `tidegate sync --env` does (kubeconfig access, no approvals).
pub async fn roll_out(
    repo_dir: &Path,
    env: &str,
    options: tidegate_fleet::DriverOptions,
    audit: Option<tidegate_sync::Audit>,
    journal: Option<std::sync::Arc<dyn tidegate_fleet::JournalStore>>,
) -> Result<tidegate_fleet::RolloutReport, tidegate_fleet::RolloutError> {
    tidegate_cluster::install_crypto_provider();
    let factory = crate::cluster::kubeconfig_factory(crate::cluster::fleet().await);
    // Helm apps see the clusters' own version and API versions, as with
    // the CLI (no requests at all for an environment without Helm apps).
    let (loaded, _) = load_env_at(repo_dir, env, "HEAD").expect("valid");
    let facts = tidegate_cluster::FactsCache::default()
        .gather(&factory, &loaded.environment)
        .await;
    let cache = tempfile::tempdir().expect("cache");
    let templater =
        tidegate_template::Templater::from_env().with_cache_dir(cache.path().join("template"));
    let (desired, rendered) =
        load_with_facts(repo_dir, env, "HEAD", &templater, &facts).expect("valid");
    let driver = tidegate_fleet::Driver {
        factory: &factory,
        environment: &desired.environment,
        rendered: &rendered,
        revision: &desired.commit.sha,
        revisions: &At(repo_dir.to_path_buf(), env.to_string()),
        approvals: &NoApprovals,
        audit,
        check: None,
        journal,
        options,
    };
    driver.run(&|_| {}).await
}
