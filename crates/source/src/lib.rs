//! Desired state from Git.
//!
//! Tidegate reads manifests and environment files straight from a commit's
//! tree with `git2`: never from a work tree, never from uncommitted state.
//! Remote repositories are kept as bare cache clones under
//! `$XDG_CACHE_HOME/tidegate/repos/` and fetched incrementally; local
//! repositories are read in place (object database only).
//!
//! Architecture invariant: this is the only crate that knows Git.

mod auth;
pub mod desired;
mod error;
mod location;
mod repo;

pub use desired::{Desired, LoadError, Overrides};
pub use error::SourceError;
pub use location::RepoLocation;
pub use repo::{CommitInfo, GitSource, Repo};
pub use tidegate_core::files::{AppSource, FileContent, Limits, SourceFile};
