//! Why the controller could not run.

/// Errors that stop the controller (everything else is logged and retried).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The environments to follow could not be listed.
    #[error("listing the environments of the repository: {0}")]
    Environments(#[source] tidegate_app::AppError),
    /// No environment to follow.
    #[error("no environment to follow: the repository has no environments/*.yaml")]
    NoEnvironments,
    /// Leader election could not start.
    #[error("leader election: {0}")]
    Leader(#[source] crate::leader::LeaderError),
}
