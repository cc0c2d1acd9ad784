//! Opening repositories, resolving refs and reading trees at a commit.

use crate::{
    FileContent, Limits, RepoLocation, SourceError, SourceFile, auth, location::redact_url,
};
use git2::{FetchOptions, ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tidegate_core::paths;
use tracing::{debug, info_span};

/// Opens repositories, keeping bare cache clones of remote ones.
#[derive(Debug, Clone)]
pub struct GitSource {
    cache_dir: PathBuf,
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
    /// A source whose remote clones live under `cache_dir/repos`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        GitSource {
            cache_dir: cache_dir.into(),
        }
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
        let dir = self.cache_dir.join("repos").join(cache_key(url));
        let repo = if dir.join("HEAD").exists() {
            Repository::open_bare(&dir).map_err(|source| SourceError::Open {
                location: dir.display().to_string(),
                source,
            })?
        } else {
            std::fs::create_dir_all(&dir).map_err(|source| SourceError::Cache {
                path: dir.clone(),
                source,
            })?;
            let repo = Repository::init_bare(&dir).map_err(|source| SourceError::Open {
                location: dir.display().to_string(),
                source,
            })?;
            repo.remote("origin", url)
                .map_err(|source| fetch_error(url, source))?;
            repo
        };
        fetch(&repo, url)?;
        Ok(Repo {
            repo,
            location: redact_url(url),
        })
    }
}

/// Fetches every branch and tag (force-updating moved tags) and the remote's HEAD.
fn fetch(repo: &Repository, url: &str) -> Result<(), SourceError> {
    let mut remote = repo
        .find_remote("origin")
        .map_err(|source| fetch_error(url, source))?;
    let mut options = FetchOptions::new();
    options.remote_callbacks(auth::callbacks());
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
        source,
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
            source,
        })?;
        Ok(Repo {
            location: path.display().to_string(),
            repo,
        })
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
        let object = self.repo.revparse_single(spec).map_err(|_| unknown())?;
        let commit = object.peel_to_commit().map_err(|_| unknown())?;
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
        if names.is_empty() {
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
        Ok(tree
            .iter()
            .filter(|e| e.kind() == Some(ObjectType::Blob))
            .filter_map(|e| e.name().ok().map(str::to_string))
            .collect())
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
        self.read_matching(commit, dir, limits, is_manifest_name)
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
        self.read_matching(commit, dir, limits, |n| n == name)
    }

    fn read_matching(
        &self,
        commit: &str,
        dir: &str,
        limits: Limits,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<SourceFile>, SourceError> {
        let dir = paths::normalize(dir).map_err(|_| SourceError::NoSuchPath {
            path: dir.to_string(),
            commit: commit.to_string(),
        })?;
        let root = self.tree(commit)?;
        let tree = self.subtree(commit, &dir)?;
        let odb = self.repo.odb().map_err(|source| self.git_error(source))?;
        let mut entries: Vec<(String, Oid, i32)> = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
            if entry.kind() == Some(ObjectType::Blob)
                && let Ok(name) = entry.name()
                && keep(name)
            {
                let path = if dir.is_empty() {
                    format!("{parent}{name}")
                } else {
                    format!("{dir}/{parent}{name}")
                };
                entries.push((path, entry.id(), entry.filemode()));
            }
            TreeWalkResult::Ok
        })
        .map_err(|source| self.git_error(source))?;
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
            source,
        }
    }
}

fn is_manifest_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
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
