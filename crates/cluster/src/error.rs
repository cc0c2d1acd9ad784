//! Errors of cluster access.

/// Why a cluster could not be reached or read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be read or has no such context.
    #[error("cluster {cluster}: kubeconfig context {context:?}: {source}")]
    Kubeconfig {
        /// Cluster name.
        cluster: String,
        /// The context asked for.
        context: String,
        /// kube's reason.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built (TLS set-up, proxy, ...).
    #[error("cluster {cluster}: cannot build a client: {source}")]
    Client {
        /// Cluster name.
        cluster: String,
        /// kube's reason.
        #[source]
        source: kube::Error,
    },
    /// A request to the API server failed.
    #[error("cluster {cluster}: {what}: {source}")]
    Api {
        /// Cluster name.
        cluster: String,
        /// What was being done.
        what: String,
        /// kube's reason.
        #[source]
        source: kube::Error,
    },
    /// This provider cannot be reached yet (cloud access arrives in its own issue).
    #[error(
        "cluster {cluster}: provider {provider} needs cloud access, which this build does not have yet; run with --access kubeconfig (TIDEGATE_ACCESS=kubeconfig) to use the cluster's kubeconfig context"
    )]
    Unsupported {
        /// Cluster name.
        cluster: String,
        /// Provider name.
        provider: String,
    },
}

/// True for errors worth retrying: throttling (429), server errors (5xx),
/// timeouts and connection failures. Never for other 4xx (validation, conflicts).
pub fn is_retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}
