//! Errors: failed authentications and token store problems.

use crate::token::TokenId;

/// Why a presented token does not authenticate. A server answers every one
/// of them with the same 401; the variants are for its logs. No variant
/// carries the presented text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// Not `tgt_<16 hex>_<64 hex>`.
    #[error("not a Tidegate API token (expected tgt_<id>_<secret>)")]
    Malformed,
    /// No token has this id.
    #[error("no API token has id {0}")]
    Unknown(TokenId),
    /// The id exists but the secret is wrong.
    #[error("the secret of API token {0} does not match")]
    WrongSecret(TokenId),
    /// Revoked (checked only after the secret matched).
    #[error("API token {id} ({name}) was revoked")]
    Revoked {
        /// The token.
        id: TokenId,
        /// Its name.
        name: String,
    },
    /// Past its expiry (checked only after the secret matched).
    #[error("API token {id} ({name}) expired at {at}")]
    Expired {
        /// The token.
        id: TokenId,
        /// Its name.
        name: String,
        /// When it expired (RFC 3339).
        at: String,
    },
}

/// The token store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An API request to the management cluster failed.
    #[error("{what} (Secret {namespace}/{name} in the management cluster): {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The namespace does not exist in the management cluster.
    #[error(
        "namespace {0} does not exist in the management cluster: create it (kubectl create namespace {0}) or choose another with --namespace"
    )]
    NoNamespace(String),
    /// A stored record cannot be read (edited by hand?).
    #[error("the stored record of API token {key} cannot be read: {detail}")]
    Corrupt {
        /// The Secret's data key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// No token has this id.
    #[error("no API token has id {0} (see `tidegate token list`)")]
    NotFound(TokenId),
    /// The token is already revoked.
    #[error("API token {0} is already revoked")]
    AlreadyRevoked(TokenId),
    /// A bad name, role or lifetime.
    #[error("{0}")]
    Invalid(String),
    /// Other writers kept changing the Secret.
    #[error("the token Secret {0} kept changing while being written; try again")]
    Contended(String),
    /// The operating system's random source failed.
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
}

/// Authentication through the store: the token was refused, or the store
/// could not be read (a server answers 401 for the first, 503 for the
/// second).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token does not authenticate.
    #[error(transparent)]
    Failed(#[from] AuthFailure),
    /// The token store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}
