//! Errors of cluster access.

/// Why a cluster could not be reached or read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be read or has no such context.
    // The kube errors are written out in full by the messages (see
    // `kube_error_text`) and not chained as sources, so that printing the
    // whole chain does not repeat them.
    #[error("cluster {cluster}: kubeconfig context {context:?}: {}", chain_text(.error))]
    Kubeconfig {
        /// Cluster name.
        cluster: String,
        /// The context asked for.
        context: String,
        /// kube's reason.
        error: kube::config::KubeconfigError,
    },
    /// The client could not be built (TLS set-up, proxy, cloud access, ...).
    #[error("cluster {cluster}: cannot build a client: {}", kube_error_text(.error))]
    Client {
        /// Cluster name.
        cluster: String,
        /// kube's reason.
        error: kube::Error,
    },
    /// A request to the API server failed.
    #[error("cluster {cluster}: {what}: {}", kube_error_text(.error))]
    Api {
        /// Cluster name.
        cluster: String,
        /// What was being done.
        what: String,
        /// kube's reason.
        error: kube::Error,
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

/// A kube error as one line a person can act on: `HTTP 401 Unauthorized:
/// <message>` and what to do for an API server's answer (no debug dump of
/// the Status object); otherwise the error and its causes, each said once.
pub fn kube_error_text(error: &kube::Error) -> String {
    let kube::Error::Api(status) = error else {
        return chain_text(error);
    };
    let mut text = format!("HTTP {}", status.code);
    if !status.reason.is_empty() {
        text.push(' ');
        text.push_str(&status.reason);
    }
    if !status.message.is_empty() && status.message != status.reason {
        text.push_str(": ");
        text.push_str(&status.message);
    }
    match status.code {
        401 => text.push_str(
            " (the API server rejected the credentials: check the kubeconfig user, or the cloud identity and its access entry / role assignment for this cluster)",
        ),
        403 => match crate::Forbidden::of(error) {
            Some(f) if f.verb.is_some() => {
                text.push_str(&format!(" ({f}; to fix: {})", f.fix()));
            }
            _ => text.push_str(" (the identity lacks an RBAC permission: grant it in the cluster)"),
        },
        _ => {}
    }
    text
}

/// An error and its sources, each said once (`Display` only).
pub(crate) fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn api_errors_read_as_one_line_with_what_to_do() {
        let unauthorized = kube_error_text(&api(401, "Unauthorized", "Unauthorized"));
        assert!(
            unauthorized
                .starts_with("HTTP 401 Unauthorized (the API server rejected the credentials"),
            "{unauthorized}"
        );
        assert!(!unauthorized.contains("Status {"), "{unauthorized}");
        let forbidden = kube_error_text(&api(
            403,
            "Forbidden",
            "configmaps is forbidden: User \"ci\" cannot list resource \"configmaps\"",
        ));
        assert!(
            forbidden.starts_with("HTTP 403 Forbidden: configmaps is forbidden: User \"ci\""),
            "{forbidden}"
        );
        assert!(forbidden.contains("RBAC"), "{forbidden}");
        let named = kube_error_text(&api(
            403,
            "Forbidden",
            "configmaps is forbidden: User \"ci\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"shop\"",
        ));
        assert!(
            named.ends_with("(user ci lacks `list` on configmaps in namespace shop; to fix: add the rule {apiGroups: [\"\"], resources: [\"configmaps\"], verbs: [\"list\"]} to a Role in namespace shop bound to user ci (or to its ClusterRole, deploy/managed/rbac.yaml for the shipped one))"),
            "{named}"
        );
        let error = ClusterError::Api {
            cluster: "c1".into(),
            what: "discovering v1".into(),
            error: api(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        };
        assert_eq!(
            error.to_string(),
            "cluster c1: discovering v1: HTTP 404 NotFound: the server could not find the requested resource"
        );
        assert!(
            std::error::Error::source(&error).is_none(),
            "not repeated by a chain"
        );
    }
}
