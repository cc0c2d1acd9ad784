//! Errors of the Git source.

use std::path::PathBuf;

/// Why desired state could not be read from Git.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The repository could not be opened.
    #[error("cannot open Git repository {location}: {source}")]
    Open {
        /// Where we looked.
        location: String,
        /// libgit2's reason.
        #[source]
        source: git2::Error,
    },
    /// Cloning or fetching failed.
    #[error(
        "cannot fetch {url}: {source} (check the URL and credentials: TIDEGATE_GIT_TOKEN for https, an SSH agent or TIDEGATE_GIT_SSH_KEY for ssh)"
    )]
    Fetch {
        /// The remote URL (credentials removed).
        url: String,
        /// libgit2's reason.
        #[source]
        source: git2::Error,
    },
    /// The ref names no commit.
    #[error("ref {git_ref:?} not found in {location}{hint}")]
    UnknownRef {
        /// The ref asked for.
        git_ref: String,
        /// The repository.
        location: String,
        /// Names of some refs that do exist.
        hint: String,
    },
    /// A path was asked for that is not in the commit.
    #[error("{path:?} does not exist at commit {commit}")]
    NoSuchPath {
        /// The path.
        path: String,
        /// The commit.
        commit: String,
    },
    /// The cache directory cannot be used.
    #[error("cache directory {path}: {source}")]
    Cache {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Any other libgit2 failure while reading objects.
    #[error("reading Git objects in {location}: {source}")]
    Git {
        /// The repository.
        location: String,
        /// libgit2's reason.
        #[source]
        source: git2::Error,
    },
}
