//! The application layer's errors.

use tidegate_core::Diagnostics;

/// Why an application-layer operation failed.
///
/// `Invalid` is the user's input (every problem at its file and line, for
/// the front end to print); the others name what could not be done.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The environment's files have problems (every one listed).
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The current directory could not be read.
    #[error("reading the current directory")]
    CurrentDir(#[source] std::io::Error),
    /// No repository was named and the current directory is not in one.
    #[error("not inside a Git repository: run tidegate from your fleet repository or pass --repo")]
    NotARepository(#[source] tidegate_source::SourceError),
    /// Git could not be read.
    #[error(transparent)]
    Source(#[from] tidegate_source::SourceError),
    /// `--cluster` names no cluster of the environment.
    #[error("environment {env} has no cluster {cluster:?} (clusters: {known})")]
    NoSuchCluster {
        /// The environment.
        env: String,
        /// The cluster asked for.
        cluster: String,
        /// The environment's clusters, comma-separated.
        known: String,
    },
    /// `--app` names no app of the environment.
    #[error("environment {env} has no app {app:?} (apps: {known})")]
    NoSuchApp {
        /// The environment.
        env: String,
        /// The app asked for.
        app: String,
        /// The environment's apps, comma-separated.
        known: String,
    },
    /// A cluster that was selected is missing from the loaded environment
    /// or its rendering.
    #[error("cluster {0} is not in the loaded environment or was not rendered")]
    NotLoaded(String),
    /// A cluster could not be reached or read, or a sync failed.
    #[error(transparent)]
    Sync(#[from] tidegate_sync::SyncError),
    /// The audit trail could not be read or written.
    #[error(transparent)]
    Audit(#[from] tidegate_audit::AuditError),
    /// The audit trail could not be opened.
    #[error("opening the audit trail {path}")]
    AuditOpen {
        /// The database file.
        path: String,
        /// Why.
        #[source]
        source: tidegate_audit::AuditError,
    },
    /// A fleet rollout could not run.
    #[error(transparent)]
    Rollout(#[from] tidegate_fleet::RolloutError),
    /// Another revision of the environment could not be loaded or rendered.
    #[error(transparent)]
    Revision(#[from] tidegate_fleet::RevisionError),
}

impl From<tidegate_source::LoadError> for AppError {
    fn from(e: tidegate_source::LoadError) -> Self {
        match e {
            tidegate_source::LoadError::Invalid(d) => AppError::Invalid(d),
            tidegate_source::LoadError::Source(e) => AppError::Source(e),
        }
    }
}

/// An error and its causes on one line, `outer: cause: root cause` (for
/// rows and reports that carry an error as text).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}
