//! Opening repositories, resolving refs and reading trees at a commit.

use crate::{
    FileContent, Limits, RepoLocation, SourceError, SourceFile,
    auth::{self, CredentialScope},
    location::{redact_url, strip_credentials},
};
use git2::{FetchOptions, ObjectType, Oid, Repository};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tidegate_core::paths;
use tracing::{debug, info_span};

/// Opens repositories, keeping bare cache clones of remote ones.
#[derive(Debug, Clone)]
pub struct GitSource {
    cache_dir: PathBuf,
    scope: CredentialScope,
}

/// A resolved commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full SHA.
    pub sha: String,
    /// Commit time, seconds since the Unix epoch.
    pub time: i64,
    /// Author as `Name <email>`.
    pub author: String,
    /// First line of the message.
    pub summary: String,
}

/// An open repository.
pub struct Repo {
    repo: Repository,
    location: String,
}

impl GitSource {
    /// A source whose remote clones live under `cache_dir/repos`, sending
    /// `TIDEGATE_GIT_TOKEN` only to the hosts in `TIDEGATE_GIT_TOKEN_HOSTS`
    /// (see [`GitSource::with_credential_scope`]).
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        GitSource {
            cache_dir: cache_dir.into(),
            scope: CredentialScope::from_env(),
        }
    }

    /// The same source sending the token only to the hosts of `scope`.
    pub fn with_credential_scope(self, scope: CredentialScope) -> Self {
        GitSource { scope, ..self }
    }

    /// `$XDG_CACHE_HOME/tidegate`, or `~/.cache/tidegate`.
    pub fn default_cache_dir() -> PathBuf {
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("tidegate")
    }

    /// Opens a repository: a local one in place, a remote one by cloning it
    /// into the cache on first use and fetching on every later use.
    pub fn open(&self, location: &RepoLocation) -> Result<Repo, SourceError> {
        match location {
            RepoLocation::Local(path) => Repo::open_local(path),
            RepoLocation::Remote(url) => self.open_remote(url),
        }
    }

    fn open_remote(&self, url: &str) -> Result<Repo, SourceError> {
        let _span = info_span!("git_fetch", url = %redact_url(url)).entered();
        let stored_url = strip_credentials(url);
        let dir = self.cache_dir.join("repos").join(cache_key(&stored_url));
        let repo = if dir.join("HEAD").exists() {
            Repository::open_bare(&dir).map_err(|source| SourceError::Open {
                location: dir.display().to_string(),
                cause: source,
            })?
        } else {
            std::fs::create_dir_all(&dir).map_err(|source| SourceError::Cache {
                path: dir.clone(),
                cause: source,
            })?;
            Repository::init_bare(&dir).map_err(|source| SourceError::Open {
                location: dir.display().to_string(),
                cause: source,
            })?
        };
        // For people looking at the cache: where it came from, without credentials.
        if repo
            .find_remote("origin")
            .ok()
            .and_then(|r| r.url().ok().map(str::to_string))
            != Some(stored_url.clone())
        {
            let _ = repo.remote_delete("origin");
            repo.remote("origin", &stored_url)
                .map_err(|source| fetch_error(url, source))?;
        }
        fetch(&repo, url, &self.scope)?;
        Ok(Repo {
            repo,
            location: redact_url(url),
        })
    }
}

/// Fetches every branch and tag (force-updating moved tags) and the remote's
/// HEAD, through an in-memory remote (so credentials in `url` stay off disk).
fn fetch(repo: &Repository, url: &str, scope: &CredentialScope) -> Result<(), SourceError> {
    let mut remote = repo
        .remote_anonymous(url)
        .map_err(|source| fetch_error(url, source))?;
    let mut options = FetchOptions::new();
    options.remote_callbacks(auth::callbacks(scope));
    options.prune(git2::FetchPrune::On);
    options.download_tags(git2::AutotagOption::None);
    let refspecs = [
        "+refs/heads/*:refs/heads/*",
        "+refs/tags/*:refs/tags/*",
        "+HEAD:refs/tidegate/remote-head",
    ];
    remote
        .fetch(&refspecs, Some(&mut options), None)
        .map_err(|source| fetch_error(url, source))?;
    let stats = remote.stats();
    debug!(
        objects = stats.received_objects(),
        bytes = stats.received_bytes(),
        "fetched"
    );
    Ok(())
}

fn fetch_error(url: &str, source: git2::Error) -> SourceError {
    SourceError::Fetch {
        url: redact_url(url),
        cause: source,
    }
}

/// Directory name of a remote's cache clone: readable prefix plus a hash of the URL.
fn cache_key(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let tail: String = url
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
    format!("{tail}-{hex}")
}

impl Repo {
    /// Opens the repository containing `path` (a work tree or a bare repository).
    pub fn open_local(path: &Path) -> Result<Repo, SourceError> {
        let repo = Repository::discover(path).map_err(|source| SourceError::Open {
            location: path.display().to_string(),
            cause: source,
        })?;
        Ok(Repo {
            location: path.display().to_string(),
            repo,
        })
    }

    /// The URL of the `origin` remote of a local repository (the operator's
    /// checkout), when it has one: its host may receive the Git token.
    pub fn origin_url(&self) -> Option<String> {
        let remote = self.repo.find_remote("origin").ok()?;
        remote.url().ok().map(str::to_string)
    }

    /// Where this repository is, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The root of the work tree, when there is one.
    pub fn workdir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    /// Resolves a branch, tag (annotated or not), full or short SHA, `HEAD`
    /// or any revision expression to a commit. In a cache clone, `HEAD` is
    /// the remote's default branch.
    pub fn resolve(&self, git_ref: &str) -> Result<CommitInfo, SourceError> {
        let unknown = || SourceError::UnknownRef {
            git_ref: git_ref.to_string(),
            location: self.location.clone(),
            hint: self.ref_hint(),
        };
        let spec = if git_ref == "HEAD" && self.repo.is_bare() {
            match self.repo.find_reference("refs/tidegate/remote-head") {
                Ok(_) => "refs/tidegate/remote-head",
                Err(_) => "HEAD",
            }
        } else {
            git_ref
        };
        let commit = self.lookup(spec).map_err(|e| e.unwrap_or_else(unknown))?;
        let author = commit.author();
        Ok(CommitInfo {
            sha: commit.id().to_string(),
            time: commit.time().seconds(),
            author: format!(
                "{} <{}>",
                author.name().unwrap_or("unknown"),
                author.email().unwrap_or("")
            ),
            summary: commit.summary().ok().flatten().unwrap_or("").to_string(),
        })
    }

    /// The commit `spec` names. Hexadecimal input is a commit first: a
    /// branch or tag spelled like a short SHA never silently wins over the
    /// commit, and when both exist and differ the name is refused as
    /// ambiguous. `Err(None)` when nothing matches.
    fn lookup(&self, spec: &str) -> Result<git2::Commit<'_>, Option<SourceError>> {
        let is_hex = (4..=40).contains(&spec.len()) && spec.bytes().all(|b| b.is_ascii_hexdigit());
        let by_sha = if is_hex {
            match self.repo.find_object_by_prefix(spec, None) {
                Ok(object) => object.peel_to_commit().ok(),
                Err(e) if e.code() == git2::ErrorCode::Ambiguous => {
                    return Err(Some(SourceError::AmbiguousRef {
                        git_ref: spec.to_string(),
                        location: self.location.clone(),
                        reason:
                            "it is the start of several object ids; give more characters of the SHA"
                                .into(),
                    }));
                }
                Err(_) => None,
            }
        } else {
            None
        };
        let by_name = if is_hex {
            self.repo
                .resolve_reference_from_short_name(spec)
                .ok()
                .and_then(|r| {
                    let name = r.name().ok().map(str::to_string);
                    r.peel_to_commit().ok().zip(name)
                })
        } else {
            None
        };
        match (by_sha, by_name) {
            (Some(commit), Some((named, name))) if commit.id() != named.id() => {
                Err(Some(SourceError::AmbiguousRef {
                    git_ref: spec.to_string(),
                    location: self.location.clone(),
                    reason: format!(
                        "it is both commit {} and {name} (at {}); give the full SHA, or {name}",
                        commit.id(),
                        named.id()
                    ),
                }))
            }
            (Some(commit), _) => Ok(commit),
            (None, Some((named, _))) => Ok(named),
            (None, None) => self
                .repo
                .revparse_single(spec)
                .and_then(|o| o.peel_to_commit())
                .map_err(|_| None),
        }
    }

    fn ref_hint(&self) -> String {
        let mut names: Vec<String> = self
            .repo
            .references()
            .map(|refs| {
                refs.filter_map(Result::ok)
                    .filter_map(|r| r.shorthand().ok().map(str::to_string))
                    .filter(|n| !n.starts_with("tidegate/"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.truncate(10);
        let unborn =
            matches!(self.repo.head(), Err(e) if e.code() == git2::ErrorCode::UnbornBranch);
        if unborn && names.is_empty() {
            " (the repository has no commits yet: commit environments/ and the manifests first; Tidegate reads commits, never the work tree)".to_string()
        } else if self.repo.is_shallow() {
            format!(
                " (this is a shallow clone, which may not hold that commit: fetch more history with `git fetch --unshallow`{})",
                if names.is_empty() {
                    String::new()
                } else {
                    format!("; some refs that exist: {}", names.join(", "))
                }
            )
        } else if names.is_empty() {
            String::new()
        } else {
            format!(" (some refs that exist: {})", names.join(", "))
        }
    }

    /// Reads one file at a commit; `Ok(None)` when it does not exist.
    pub fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let tree = self.tree(commit)?;
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(source) => return Err(self.git_error(source)),
        };
        let blob = self
            .repo
            .find_blob(entry.id())
            .map_err(|source| self.git_error(source))?;
        Ok(Some(blob.content().to_vec()))
    }

    /// Names of the files directly under `dir` at a commit (not recursive).
    pub fn list_dir(&self, commit: &str, dir: &str) -> Result<Vec<String>, SourceError> {
        let tree = self.subtree(commit, dir)?;
        tree.iter()
            .filter(|e| e.kind() == Some(ObjectType::Blob))
            .filter(|e| is_manifest_name_bytes(e.name_bytes()))
            .map(|e| {
                std::str::from_utf8(e.name_bytes())
                    .map(str::to_string)
                    .map_err(|_| non_utf8(&format!("{dir}/"), e.name_bytes()))
            })
            .collect()
    }

    /// Every manifest file (`.yaml`, `.yml`, `.json`) below `dir` at a commit,
    /// sorted by path. Symlinks are followed only when their target stays
    /// inside `dir`; files over the size limit are not loaded.
    pub fn read_manifests(
        &self,
        commit: &str,
        dir: &str,
        limits: Limits,
    ) -> Result<Vec<SourceFile>, SourceError> {
        self.read_files(commit, dir, limits, is_manifest_name_bytes)
    }

    /// Every file named `name` below `dir` at `commit` (e.g. the
    /// `health.lua` scripts of a checks directory), with the same symlink
    /// and size rules as [`Repo::read_manifests`].
    pub fn read_named(
        &self,
        commit: &str,
        dir: &str,
        name: &str,
        limits: Limits,
    ) -> Result<Vec<SourceFile>, SourceError> {
        self.read_files(commit, dir, limits, |n| n == name.as_bytes())
    }

    /// Every file below `dir` at a commit, whatever its name (a Helm chart's
    /// templates, `.tgz` dependencies, `.helmignore`...), sorted by path, with
    /// the same symlink and size rules as [`Repo::read_manifests`].
    pub fn read_tree(
        &self,
        commit: &str,
        dir: &str,
        limits: Limits,
    ) -> Result<Vec<SourceFile>, SourceError> {
        self.read_files(commit, dir, limits, |_| true)
    }

    /// The id of the tree at `dir` in a commit: equal ids, equal contents.
    pub fn tree_id(&self, commit: &str, dir: &str) -> Result<String, SourceError> {
        Ok(self.subtree(commit, dir)?.id().to_string())
    }

    fn read_files(
        &self,
        commit: &str,
        dir: &str,
        limits: Limits,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<SourceFile>, SourceError> {
        let dir = paths::normalize(dir).map_err(|_| SourceError::NoSuchPath {
            path: dir.to_string(),
            commit: commit.to_string(),
        })?;
        let root = self.tree(commit)?;
        let tree = self.subtree(commit, &dir)?;
        let odb = self.repo.odb().map_err(|source| self.git_error(source))?;
        let mut entries: Vec<(String, Oid, i32)> = Vec::new();
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        // Depth first with a stack of its own (a deep tree cannot exhaust
        // ours); every name must be UTF-8, or the error names the path.
        let mut pending = vec![(prefix, tree)];
        while let Some((prefix, tree)) = pending.pop() {
            for entry in tree.iter() {
                let bytes = entry.name_bytes();
                let is_tree = entry.kind() == Some(ObjectType::Tree);
                let is_wanted = entry.kind() == Some(ObjectType::Blob) && wanted(bytes);
                if !is_tree && !is_wanted {
                    continue;
                }
                let Ok(name) = std::str::from_utf8(bytes) else {
                    return Err(non_utf8(&prefix, bytes));
                };
                if is_tree {
                    let subtree = self
                        .repo
                        .find_tree(entry.id())
                        .map_err(|source| self.git_error(source))?;
                    pending.push((format!("{prefix}{name}/"), subtree));
                } else {
                    entries.push((format!("{prefix}{name}"), entry.id(), entry.filemode()));
                }
            }
        }
        let mut files = Vec::with_capacity(entries.len());
        for (path, id, mode) in entries {
            let content = if mode == i32::from(git2::FileMode::Link) {
                self.follow_symlink(&root, &odb, &dir, &path, id, limits)?
            } else {
                self.load_blob(&odb, id, limits)?
            };
            files.push(SourceFile { path, content });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    fn follow_symlink(
        &self,
        root: &git2::Tree<'_>,
        odb: &git2::Odb<'_>,
        dir: &str,
        path: &str,
        id: Oid,
        limits: Limits,
    ) -> Result<FileContent, SourceError> {
        let link = self
            .repo
            .find_blob(id)
            .map_err(|source| self.git_error(source))?;
        let target = String::from_utf8_lossy(link.content()).into_owned();
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        let escaping = || FileContent::EscapingSymlink {
            target: target.clone(),
        };
        let Ok(resolved) = paths::join_within("", &format!("{parent}/{target}")) else {
            return Ok(escaping());
        };
        if target.starts_with('/') || !paths::is_within(dir, &resolved) {
            return Ok(escaping());
        }
        match root.get_path(Path::new(&resolved)) {
            Ok(entry)
                if entry.kind() == Some(ObjectType::Blob)
                    && entry.filemode() != i32::from(git2::FileMode::Link) =>
            {
                self.load_blob(odb, entry.id(), limits)
            }
            _ => Ok(escaping()),
        }
    }

    fn load_blob(
        &self,
        odb: &git2::Odb<'_>,
        id: Oid,
        limits: Limits,
    ) -> Result<FileContent, SourceError> {
        let (size, _) = odb
            .read_header(id)
            .map_err(|source| self.git_error(source))?;
        let size = size as u64;
        if size > limits.max_file_bytes {
            return Ok(FileContent::TooLarge { size });
        }
        let blob = self
            .repo
            .find_blob(id)
            .map_err(|source| self.git_error(source))?;
        Ok(FileContent::Bytes(blob.content().to_vec()))
    }

    fn tree(&self, commit: &str) -> Result<git2::Tree<'_>, SourceError> {
        let oid = Oid::from_str(commit).map_err(|source| self.git_error(source))?;
        self.repo
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(|source| self.git_error(source))
    }

    fn subtree(&self, commit: &str, dir: &str) -> Result<git2::Tree<'_>, SourceError> {
        let root = self.tree(commit)?;
        if dir.is_empty() {
            return Ok(root);
        }
        let no_such = || SourceError::NoSuchPath {
            path: dir.to_string(),
            commit: commit.to_string(),
        };
        let entry = root.get_path(Path::new(dir)).map_err(|_| no_such())?;
        if entry.kind() != Some(ObjectType::Tree) {
            return Err(no_such());
        }
        self.repo
            .find_tree(entry.id())
            .map_err(|source| self.git_error(source))
    }

    fn git_error(&self, source: git2::Error) -> SourceError {
        SourceError::Git {
            location: self.location.clone(),
            cause: source,
        }
    }
}

fn is_manifest_name_bytes(name: &[u8]) -> bool {
    name.ends_with(b".yaml") || name.ends_with(b".yml") || name.ends_with(b".json")
}

/// The error for a name that is not UTF-8 under `prefix`, the bad bytes
/// shown as `\xNN`.
fn non_utf8(prefix: &str, name: &[u8]) -> SourceError {
    SourceError::NonUtf8Path {
        path: format!("{prefix}{}", name.escape_ascii()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_are_readable_and_distinct() {
        let a = cache_key("https://github.com/acme/fleet.git");
        let b = cache_key("https://gitlab.com/acme/fleet.git");
        assert!(a.starts_with("fleet-"));
        assert_ne!(a, b);
        assert!(cache_key("git@github.com:acme/fleet.git").starts_with("fleet-"));
    }
}
