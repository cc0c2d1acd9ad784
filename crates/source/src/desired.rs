//! Loading an environment and its apps' manifests from a commit.

use crate::{GitSource, Repo, RepoLocation, SourceError, repo::CommitInfo};
use std::path::Path;
use tidegate_core::{
    Diagnostic, Diagnostics, Environment,
    files::{AppSource, Limits, SourceFile},
    paths,
};

/// Directory of environment files in the configuration repository.
pub const ENVIRONMENTS_DIR: &str = "environments";

/// What a command asked for instead of the environment's own source.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Read manifests from the configuration repository itself.
    pub same_repo: bool,
    /// Read manifests at this ref.
    pub git_ref: Option<String>,
}

/// An environment and every app's manifest files, read from Git.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The parsed environment.
    pub environment: Environment,
    /// Path of the environment file in the configuration repository.
    pub env_file: String,
    /// The commit the manifests were read at.
    pub commit: CommitInfo,
    /// Each app's files, in environment order.
    pub apps: Vec<AppSource>,
    /// The `health.lua` files of `spec.health.checksPath`, read from the
    /// configuration repository at the environment file's commit.
    pub health_scripts: Vec<SourceFile>,
}

/// Why an environment could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The user's files have problems (all of them listed).
    #[error("{0}")]
    Invalid(Diagnostics),
    /// Git could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Names of the environments (`environments/*.yaml`) at `commit`, sorted.
pub fn environment_names(repo: &Repo, commit: &CommitInfo) -> Result<Vec<String>, SourceError> {
    let mut names: Vec<String> = repo
        .list_dir(&commit.sha, ENVIRONMENTS_DIR)?
        .into_iter()
        .filter_map(|f| {
            f.strip_suffix(".yaml")
                .or_else(|| f.strip_suffix(".yml"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Reads and parses `environments/<name>.yaml` at `commit`.
pub fn load_environment(
    repo: &Repo,
    commit: &CommitInfo,
    name: &str,
) -> Result<(Environment, String), LoadError> {
    let mut available = None;
    for ext in ["yaml", "yml"] {
        let file = format!("{ENVIRONMENTS_DIR}/{name}.{ext}");
        if let Some(bytes) = repo.read_file(&commit.sha, &file)? {
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                LoadError::Invalid(
                    Diagnostic::new("environment file is not valid UTF-8")
                        .at(&file, None)
                        .into(),
                )
            })?;
            let env = Environment::parse(text, &file).map_err(LoadError::Invalid)?;
            return Ok((env, file));
        }
        if available.is_none() {
            available = Some(environment_names(repo, commit).unwrap_or_default());
        }
    }
    let names = available.unwrap_or_default();
    Err(LoadError::Invalid(
        Diagnostic::new(format!(
            "no environment {name:?} at commit {} in {}",
            short(&commit.sha),
            repo.location()
        ))
        .help(if names.is_empty() {
            format!("add {ENVIRONMENTS_DIR}/{name}.yaml and commit it")
        } else {
            format!("known environments: {}", names.join(", "))
        })
        .into(),
    ))
}

/// Reads every app's manifests for `env`, from the environment's source or
/// from the configuration repository when the source is `.` or overridden.
pub fn load_desired(
    git: &GitSource,
    config: &Repo,
    config_commit: &CommitInfo,
    environment: Environment,
    env_file: String,
    overrides: &Overrides,
) -> Result<Desired, LoadError> {
    let source = &environment.spec.source;
    let same_repo = overrides.same_repo || source.repo_url == "." || source.repo_url.is_empty();
    let opened;
    let (repo, commit) = if same_repo {
        let commit = match &overrides.git_ref {
            Some(r) => config.resolve(r)?,
            None => config_commit.clone(),
        };
        (config, commit)
    } else {
        let base = config.workdir().unwrap_or(Path::new("."));
        opened = git.open(&RepoLocation::parse(&source.repo_url, base))?;
        let commit = opened.resolve(overrides.git_ref.as_deref().unwrap_or(&source.git_ref))?;
        (&opened, commit)
    };
    let root = paths::normalize(&source.path).map_err(|e| {
        LoadError::Invalid(
            Diagnostic::new(format!("spec.source.path: {e}"))
                .at(&env_file, None)
                .into(),
        )
    })?;
    let mut problems = Diagnostics::default();
    let mut apps = Vec::new();
    for app in &environment.spec.apps {
        let dir = match paths::join_within(&root, app.manifests_dir()) {
            Ok(dir) => dir,
            Err(e) => {
                problems.push(
                    Diagnostic::new(format!("app {}: path: {e}", app.name))
                        .at(&env_file, app.line())
                        .help("keep the app's directory inside spec.source.path"),
                );
                continue;
            }
        };
        match repo.read_manifests(&commit.sha, &dir, Limits::default()) {
            Ok(files) => apps.push(AppSource {
                app: app.name.clone(),
                files,
            }),
            Err(SourceError::NoSuchPath { .. }) => problems.push(
                Diagnostic::new(format!(
                    "app {}: directory {dir:?} does not exist at commit {}",
                    app.name,
                    short(&commit.sha)
                ))
                .at(&env_file, app.line())
                .help(
                    "set the app's `path` (relative to spec.source.path) or commit the directory",
                ),
            ),
            Err(e) => return Err(e.into()),
        }
    }
    let mut health_scripts = Vec::new();
    if let Some(dir) = &environment.spec.health.checks_path {
        match config.read_named(&config_commit.sha, dir, "health.lua", Limits::default()) {
            Ok(files) => health_scripts = files,
            Err(SourceError::NoSuchPath { .. }) => problems.push(
                Diagnostic::new(format!(
                    "spec.health.checksPath: directory {:?} does not exist at commit {}",
                    dir.value,
                    short(&config_commit.sha)
                ))
                .at(&env_file, dir.line())
                .help("commit the checks directory (<dir>/<group>/<kind>/health.lua) or remove checksPath"),
            ),
            Err(e) => return Err(e.into()),
        }
    }
    if !problems.is_empty() {
        return Err(LoadError::Invalid(problems.sorted()));
    }
    Ok(Desired {
        environment,
        env_file,
        commit,
        apps,
        health_scripts,
    })
}

/// The first 12 characters of a SHA.
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
