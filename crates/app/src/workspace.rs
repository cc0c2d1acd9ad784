//! The configuration repository a command works on, and loading
//! environments from it.

use crate::AppError;
use tidegate_cloud::CloudFactory;
use tidegate_cluster::FactsCache;
use tidegate_source::{
    CommitInfo, CredentialScope, GitSource, LoadError, Overrides, Repo, RepoLocation,
    desired::{self, Desired},
};
use tidegate_template::{ClusterFacts, Templater};

/// The repository holding `environments/`, at the commit being read.
pub struct Workspace {
    git: GitSource,
    repo: Repo,
    commit: CommitInfo,
    overrides: Overrides,
}

impl Workspace {
    /// Opens `repo` (a path or URL; `None`: the repository containing the
    /// current directory) at `git_ref` (`None`: HEAD).
    pub fn open(repo: Option<&str>, git_ref: Option<&str>) -> Result<Workspace, AppError> {
        let cwd = std::env::current_dir().map_err(AppError::CurrentDir)?;
        let location = repo.map(|r| RepoLocation::parse(r, &cwd));
        // The Git token goes to the host of the repository the operator
        // named (or of their checkout's origin) and TIDEGATE_GIT_TOKEN_HOSTS,
        // never to a host only an environment file names.
        let mut scope = CredentialScope::from_env();
        if let Some(RepoLocation::Remote(url)) = &location {
            scope.allow_url(url);
        }
        let git =
            GitSource::new(GitSource::default_cache_dir()).with_credential_scope(scope.clone());
        let opened = match &location {
            None => Repo::open_local(&cwd).map_err(AppError::NotARepository)?,
            Some(location) => git.open(location)?,
        };
        let git = match opened.origin_url() {
            Some(origin) if !matches!(location, Some(RepoLocation::Remote(_))) => {
                scope.allow_url(&origin);
                git.with_credential_scope(scope)
            }
            _ => git,
        };
        let commit = opened.resolve(git_ref.unwrap_or("HEAD"))?;
        tracing::debug!(repo = opened.location(), commit = %commit.sha, "configuration repository");
        Ok(Workspace {
            git,
            repo: opened,
            commit,
            overrides: Overrides {
                same_repo: repo.is_some(),
                git_ref: git_ref.map(str::to_string),
            },
        })
    }

    /// The same repository at another revision (no reopening, no fetch).
    pub fn at(&self, git_ref: &str) -> Result<WorkspaceAt<'_>, tidegate_source::SourceError> {
        Ok(WorkspaceAt {
            workspace: self,
            commit: self.repo.resolve(git_ref)?,
            overrides: Overrides {
                same_repo: self.overrides.same_repo,
                git_ref: Some(git_ref.to_string()),
            },
        })
    }

    /// This workspace at the commit it was opened at.
    fn here(&self) -> WorkspaceAt<'_> {
        WorkspaceAt {
            workspace: self,
            commit: self.commit.clone(),
            overrides: self.overrides.clone(),
        }
    }

    /// The work tree of a local repository (where commits are written).
    pub fn workdir(&self) -> Option<&std::path::Path> {
        self.repo.workdir()
    }

    /// A file's content at the commit being read.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, AppError> {
        Ok(self.repo.read_file(&self.commit.sha, path)?)
    }

    /// The commit being read.
    pub fn commit_sha(&self) -> &str {
        &self.commit.sha
    }

    /// Every environment in `environments/`.
    pub fn environment_names(&self) -> Result<Vec<String>, AppError> {
        Ok(desired::environment_names(&self.repo, &self.commit)?)
    }

    /// Loads one environment and its apps' manifests, with its `discover:`
    /// entries replaced by the clusters the clouds report and its Helm and
    /// Kustomize apps rendered for those clusters.
    ///
    /// With `facts`, Helm apps see each cluster's own version and API
    /// versions where the environment declares none (asked of the clusters
    /// once per cache); without, only the declared values (offline).
    /// Git is read before the future is returned, so the future holds no
    /// repository handle and can move between threads.
    pub fn load_discovered<'f>(
        &self,
        name: &str,
        factory: &'f CloudFactory,
        facts: Option<&'f FactsCache>,
    ) -> impl Future<Output = Result<Desired, LoadError>> + Send + use<'f> {
        self.here().load_discovered(name, factory, facts)
    }

    /// Reads and parses one environment file (no manifests, no discovery).
    pub fn environment(&self, name: &str) -> Result<tidegate_core::Environment, LoadError> {
        Ok(desired::load_environment(&self.repo, &self.commit, name)?.0)
    }

    /// Loads one environment and its apps' manifests (`discover:` entries
    /// left as they are).
    pub fn load(&self, name: &str) -> Result<Desired, LoadError> {
        self.here().load(name)
    }

    /// One environment file with its `discover:` entries expanded: its
    /// clusters, without reading or rendering any manifest (for commands
    /// that only reach the clusters, e.g. `approve`, `unquarantine`).
    pub fn environment_discovered<'f>(
        &self,
        name: &str,
        factory: &'f CloudFactory,
    ) -> impl Future<Output = Result<tidegate_core::Environment, LoadError>> + Send + use<'f> {
        let read = desired::load_environment(&self.repo, &self.commit, name);
        async move {
            let (mut environment, file) = read?;
            factory
                .discover(&mut environment, &file)
                .await
                .map_err(LoadError::Invalid)?;
            Ok(environment)
        }
    }
}

/// A [`Workspace`] read at another commit ([`Workspace::at`]).
pub struct WorkspaceAt<'w> {
    workspace: &'w Workspace,
    commit: CommitInfo,
    overrides: Overrides,
}

impl WorkspaceAt<'_> {
    /// The commit the revision resolved to.
    pub fn commit(&self) -> &CommitInfo {
        &self.commit
    }

    /// Loads one environment and its apps' manifests at this commit
    /// (`discover:` entries left as they are).
    pub fn load(&self, name: &str) -> Result<Desired, LoadError> {
        let ws = self.workspace;
        let (env, file) = desired::load_environment(&ws.repo, &self.commit, name)?;
        desired::load_desired(&ws.git, &ws.repo, &self.commit, env, file, &self.overrides)
    }

    /// [`Workspace::load_discovered`] at this commit.
    pub fn load_discovered<'f>(
        &self,
        name: &str,
        factory: &'f CloudFactory,
        facts: Option<&'f FactsCache>,
    ) -> impl Future<Output = Result<Desired, LoadError>> + Send + use<'f> {
        let loaded = self.load(name);
        async move {
            let mut desired = loaded?;
            factory
                .discover(&mut desired.environment, &desired.env_file)
                .await
                .map_err(LoadError::Invalid)?;
            let facts = match facts {
                Some(cache) => cache.gather(factory, &desired.environment).await,
                None => ClusterFacts::new(),
            };
            Templater::from_env()
                .expand_with_facts(&mut desired, &facts)
                .await;
            Ok(desired)
        }
    }
}
