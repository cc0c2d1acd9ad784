//! Loading an environment and its apps' manifests from a commit.

use crate::{GitSource, Repo, RepoLocation, SourceError, repo::CommitInfo};
use std::path::Path;
use tidegate_core::{
    Diagnostic, Diagnostics, Environment,
    files::{AppSource, Budget, FileContent, Limits, SourceFile},
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
    /// Every file below `spec.source.path`, read when an app is a Helm chart
    /// or a Kustomize directory (their inputs: charts, values files, bases).
    pub tree: Option<SourceTree>,
    /// The `health.lua` files of `spec.health.checksPath`, read from the
    /// configuration repository at the environment file's commit.
    pub health_scripts: Vec<SourceFile>,
}

/// Every file below a directory of a commit.
#[derive(Debug, Clone)]
pub struct SourceTree {
    /// The directory (`spec.source.path`), relative to the repository root.
    pub root: String,
    /// Git's id of that directory's tree: equal ids, equal contents.
    pub id: String,
    /// Its files, with repository-relative paths, sorted.
    pub files: Vec<SourceFile>,
}

/// Largest file of a [`SourceTree`] (a chart's packaged dependencies can be big).
const MAX_TREE_FILE_BYTES: u64 = 16 << 20;

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
    let uncommitted = repo.workdir().and_then(|dir| {
        ["yaml", "yml"]
            .map(|ext| format!("{ENVIRONMENTS_DIR}/{name}.{ext}"))
            .into_iter()
            .find(|file| dir.join(file).is_file())
    });
    Err(LoadError::Invalid(
        Diagnostic::new(format!(
            "no environment {name:?} at commit {} in {}",
            short(&commit.sha),
            repo.location()
        ))
        .help(match (uncommitted, names.is_empty()) {
            (Some(file), _) => format!(
                "{file} is in the work tree but not in that commit: commit it (Tidegate reads commits, never the work tree)"
            ),
            (None, true) => format!("add {ENVIRONMENTS_DIR}/{name}.yaml and commit it"),
            (None, false) => format!("known environments: {}", names.join(", ")),
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
                .at(&env_file, source.path.line())
                .into(),
        )
    })?;
    let mut problems = Diagnostics::default();
    let mut apps = Vec::new();
    let budget = Budget::default();
    let mut environment_total = (0u64, 0usize);
    for app in &environment.spec.apps {
        if app.helm.is_some() || app.kustomize.is_some() {
            // Rendered by `tidegate-template` once the clusters are known.
            apps.push(AppSource {
                app: app.name.clone(),
                files: Vec::new(),
                templated: None,
            });
            continue;
        }
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
            Ok(files) => {
                for file in files.iter().filter(|f| is_lfs_pointer(&f.content)) {
                    problems.push(
                        Diagnostic::new(format!(
                            "app {}: this file is a Git LFS pointer, not a manifest",
                            app.name
                        ))
                        .at(&file.path, Some(1))
                        .help("Tidegate reads Git objects and does not fetch LFS content: commit manifests to Git itself (remove them from .gitattributes' LFS patterns)"),
                    );
                }
                match over_budget(&files, &budget, &mut environment_total) {
                    Some(message) => problems.push(
                        Diagnostic::new(format!("app {}: {message}", app.name))
                            .at(&env_file, app.line())
                            .help("split the app or remove files (the limits are in docs/limits.md)"),
                    ),
                    None => apps.push(AppSource {
                        app: app.name.clone(),
                        files,
                        templated: None,
                    }),
                }
            }
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
            Err(SourceError::NonUtf8Path { path }) => problems.push(
                Diagnostic::new(format!(
                    "app {}: this name is not valid UTF-8 (bad bytes shown as \\xNN)",
                    app.name
                ))
                .at(&path, None)
                .help("rename the file or directory in Git: Kubernetes and Tidegate read paths as UTF-8 text"),
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
    let templated = environment
        .spec
        .apps
        .iter()
        .any(|a| a.helm.is_some() || a.kustomize.is_some());
    let tree = if templated {
        let limits = Limits {
            max_file_bytes: MAX_TREE_FILE_BYTES,
        };
        match repo.tree_id(&commit.sha, &root) {
            Ok(id) => Some(SourceTree {
                id,
                files: repo.read_tree(&commit.sha, &root, limits)?,
                root,
            }),
            // The template stage reports each app's missing directory.
            Err(SourceError::NoSuchPath { .. }) => Some(SourceTree {
                id: String::new(),
                files: Vec::new(),
                root,
            }),
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    // The inputs of Helm and Kustomize apps count like one more app.
    if let Some(t) = &tree
        && let Some(message) = over_budget(&t.files, &budget, &mut environment_total)
    {
        return Err(LoadError::Invalid(
            Diagnostic::new(format!(
                "{}: {message} (read for the Helm and Kustomize apps)",
                t.root
            ))
            .at(&env_file, None)
            .help("keep charts and kustomizations in a smaller spec.source.path (the limits are in docs/limits.md)")
            .into(),
        ));
    }
    Ok(Desired {
        environment,
        env_file,
        commit,
        apps,
        tree,
        health_scripts,
    })
}

/// Why one app's files break the [`Budget`] (per app, or the environment's
/// totals of bytes and files counted in `environment`), naming the limit in
/// force.
fn over_budget(
    files: &[SourceFile],
    budget: &Budget,
    environment: &mut (u64, usize),
) -> Option<String> {
    let bytes: u64 = files
        .iter()
        .map(|f| match &f.content {
            FileContent::Bytes(b) => b.len() as u64,
            _ => 0,
        })
        .sum();
    environment.0 = environment.0.saturating_add(bytes);
    environment.1 = environment.1.saturating_add(files.len());
    if files.len() > budget.app_files {
        Some(format!(
            "{} manifest files, over the limit of {} files per app",
            files.len(),
            budget.app_files
        ))
    } else if bytes > budget.app_bytes {
        Some(format!(
            "its manifests are {bytes} bytes, over the limit of {} bytes ({} MiB) per app",
            budget.app_bytes,
            budget.app_bytes >> 20
        ))
    } else if environment.0 > budget.environment_bytes {
        Some(format!(
            "the environment's manifests reach {} bytes with this app, over the limit of {} bytes ({} MiB) per environment",
            environment.0,
            budget.environment_bytes,
            budget.environment_bytes >> 20
        ))
    } else if environment.1 > budget.environment_files {
        Some(format!(
            "the environment reaches {} manifest files with this app, over the limit of {} files per environment",
            environment.1, budget.environment_files
        ))
    } else {
        None
    }
}

/// Whether a file holds a Git LFS pointer instead of its content.
fn is_lfs_pointer(content: &FileContent) -> bool {
    matches!(content, FileContent::Bytes(b) if b.starts_with(b"version https://git-lfs.github.com/spec/"))
}

/// The first 12 characters of a SHA.
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(n: usize, bytes: usize) -> Vec<SourceFile> {
        (0..n)
            .map(|i| SourceFile {
                path: format!("m/{i}.yaml"),
                content: FileContent::Bytes(vec![b'#'; bytes]),
            })
            .collect()
    }

    #[test]
    fn each_budget_names_its_limit() {
        let budget = Budget {
            app_bytes: 100,
            app_files: 3,
            app_objects: 10,
            environment_bytes: 150,
            environment_files: 5,
            environment_objects: 100,
        };
        let mut total = (0, 0);
        let over = |f: &[SourceFile], total: &mut (u64, usize)| over_budget(f, &budget, total);
        assert_eq!(over(&files(2, 40), &mut total), None);
        assert!(
            over(&files(4, 1), &mut (0, 0)).is_some_and(|m| m.contains("limit of 3 files per app"))
        );
        assert!(
            over(&files(1, 101), &mut (0, 0)).is_some_and(|m| m.contains("limit of 100 bytes"))
        );
        assert!(over(&files(2, 40), &mut total).is_some_and(|m| m.contains("reach 160 bytes")));
        let mut total = (0, 0);
        assert_eq!(over(&files(3, 1), &mut total), None);
        assert!(
            over(&files(3, 1), &mut total)
                .is_some_and(|m| m.contains("limit of 5 files per environment"))
        );
    }
}
