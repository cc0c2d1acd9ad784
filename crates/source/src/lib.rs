//! Desired state from Git.
//!
//! Tidegate reads manifests and environment files straight from a commit's
//! tree with `git2`: never from a work tree, never from uncommitted state.
//! Remote repositories are kept as bare cache clones under
//! `$XDG_CACHE_HOME/tidegate/repos/` and fetched incrementally; local
//! repositories are read in place (object database only).
//!
//! It also commits (blue-green switches write `activeColor` back to Git)
//! and pushes.
//!
//! Architecture invariant: this is the only crate that knows Git.

pub mod auth;
mod commit;
pub mod desired;
mod error;
mod location;
mod repo;

pub use auth::CredentialScope;
pub use commit::{commit_file, push_current_branch};
pub use desired::{Desired, LoadError, Overrides, SourceTree};
pub use error::SourceError;
pub use location::RepoLocation;
pub use repo::{CommitInfo, GitSource, Repo};
pub use tidegate_core::files::{AppSource, FileContent, Limits, SourceFile};
