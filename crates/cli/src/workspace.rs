//! The configuration repository a command works on, and loading environments from it.

use crate::args::Global;
use anyhow::{Context, Result};
use tidegate_source::{
    CommitInfo, GitSource, LoadError, Overrides, Repo, RepoLocation,
    desired::{self, Desired},
};

/// The repository holding `environments/`, at the commit being read.
pub struct Workspace {
    git: GitSource,
    repo: Repo,
    commit: CommitInfo,
    overrides: Overrides,
}

impl Workspace {
    /// Opens `--repo` (or the repository containing the current directory)
    /// and resolves `--ref` (or HEAD).
    pub fn open(global: &Global) -> Result<Workspace> {
        let git = GitSource::new(GitSource::default_cache_dir());
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let repo = match &global.repo {
            None => Repo::open_local(&cwd).context(
                "not inside a Git repository: run tidegate from your fleet repository or pass --repo",
            )?,
            Some(r) => git.open(&RepoLocation::parse(r, &cwd))?,
        };
        let commit = repo.resolve(global.git_ref.as_deref().unwrap_or("HEAD"))?;
        tracing::debug!(repo = repo.location(), commit = %commit.sha, "configuration repository");
        Ok(Workspace {
            git,
            repo,
            commit,
            overrides: Overrides {
                same_repo: global.repo.is_some(),
                git_ref: global.git_ref.clone(),
            },
        })
    }

    /// Every environment in `environments/`.
    pub fn environment_names(&self) -> Result<Vec<String>> {
        Ok(desired::environment_names(&self.repo, &self.commit)?)
    }

    /// Loads one environment and its apps' manifests.
    pub fn load(&self, name: &str) -> Result<Desired, LoadError> {
        let (env, file) = desired::load_environment(&self.repo, &self.commit, name)?;
        desired::load_desired(
            &self.git,
            &self.repo,
            &self.commit,
            env,
            file,
            &self.overrides,
        )
    }
}
