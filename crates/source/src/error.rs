//! Errors of the Git source.

use std::path::PathBuf;

/// Why desired state could not be read from Git.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The repository could not be opened.
    #[error("cannot open Git repository {location}: {}", .cause.message())]
    Open {
        /// Where we looked.
        location: String,
        /// libgit2's reason (part of the message, so not also a `source`).
        cause: git2::Error,
    },
    /// Cloning or fetching failed.
    #[error(
        "cannot fetch {url}: {} (check the URL; credentials: TIDEGATE_GIT_TOKEN and TIDEGATE_GIT_TOKEN_HOSTS for https, an SSH agent or TIDEGATE_GIT_SSH_KEY for ssh)",
        .cause.message()
    )]
    Fetch {
        /// The remote URL (credentials removed).
        url: String,
        /// libgit2's reason (part of the message, so not also a `source`).
        cause: git2::Error,
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
    /// A hexadecimal ref that names more than one thing.
    #[error("ref {git_ref:?} is ambiguous in {location}: {reason}")]
    AmbiguousRef {
        /// The ref asked for.
        git_ref: String,
        /// The repository.
        location: String,
        /// What it matches, and how to say which.
        reason: String,
    },
    /// A file or directory name that is not UTF-8 (Kubernetes and Tidegate
    /// paths are text).
    #[error("{path}: the name is not valid UTF-8 (shown with \\x escapes); rename it in Git")]
    NonUtf8Path {
        /// The path, bad bytes escaped.
        path: String,
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
    #[error("cache directory {path}: {cause}")]
    Cache {
        /// The directory.
        path: PathBuf,
        /// The I/O error (part of the message, so not also a `source`).
        cause: std::io::Error,
    },
    /// Any other libgit2 failure while reading objects.
    #[error("reading Git objects in {location}: {}", .cause.message())]
    Git {
        /// The repository.
        location: String,
        /// libgit2's reason (part of the message, so not also a `source`).
        cause: git2::Error,
    },
}
