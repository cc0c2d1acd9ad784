//! Errors of cloud access: which cluster, which cloud call, what to fix.

/// Why a cloud cluster could not be found or authenticated to.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// A cloud API call failed.
    #[error("{cluster}: {call} failed: {message}{}", help_suffix(.help))]
    Call {
        /// Cluster (or discovery scope) concerned.
        cluster: String,
        /// The cloud call, e.g. `eks:DescribeCluster`.
        call: String,
        /// What the cloud answered (HTTP status and error code when known).
        message: String,
        /// What to do about it.
        help: Option<String>,
        /// HTTP status, when the cloud answered.
        status: Option<u16>,
    },
    /// Credentials could not be obtained.
    #[error("{cluster}: no {cloud} credentials: {message}{}", help_suffix(.help))]
    Credentials {
        /// Cluster concerned.
        cluster: String,
        /// `aws`, `azure` or `google`.
        cloud: &'static str,
        /// The credential chain's reason.
        message: String,
        /// What to do about it.
        help: Option<String>,
    },
    /// The cloud described the cluster, but not usably.
    #[error("{cluster}: {message}")]
    Invalid {
        /// Cluster concerned.
        cluster: String,
        /// What is wrong.
        message: String,
    },
}

fn help_suffix(help: &Option<String>) -> String {
    help.as_deref()
        .map(|h| format!(" (help: {h})"))
        .unwrap_or_default()
}

impl CloudError {
    /// The HTTP status the cloud answered, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            CloudError::Call { status, .. } => *status,
            _ => None,
        }
    }

    /// Names the environment's cluster in front of the cloud's name for it.
    pub fn for_cluster(mut self, name: &str) -> CloudError {
        let (CloudError::Call { cluster, .. }
        | CloudError::Credentials { cluster, .. }
        | CloudError::Invalid { cluster, .. }) = &mut self;
        if cluster != name {
            *cluster = format!("cluster {name} ({cluster})");
        } else {
            *cluster = format!("cluster {name}");
        }
        self
    }

    /// Helpful advice for a failed call, from its HTTP status.
    pub(crate) fn advice(status: Option<u16>, permission: &str) -> Option<String> {
        match status {
            Some(401) => {
                Some("the credentials were rejected: check they are valid and not expired".into())
            }
            Some(403) => Some(format!("the identity lacks permission: grant {permission}")),
            Some(404) => {
                Some("not found: check the name, region/location, project or subscription".into())
            }
            Some(429) => {
                Some("throttled by the cloud API: retry later or lower the request rate".into())
            }
            Some(s) if s >= 500 => Some("the cloud API failed: retry later".into()),
            _ => None,
        }
    }
}
