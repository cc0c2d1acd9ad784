//! Who may do what through the controller's API.
//!
//! - [`token`]: API tokens (`tgt_<id>_<secret>`, 256 random bits), of which
//!   only a SHA-256 digest is stored; the id is not secret and finds the
//!   record without a scan; digests are compared in constant time.
//! - [`record`]: what is stored per token (name, roles, expiry, revocation)
//!   and [`TokenSet::authenticate`], which turns a presented token into a
//!   [`Principal`].
//! - [`store`]: where the records live: one Secret in the management
//!   cluster's namespace ([`TokenStore`]), holding digests only, so every
//!   controller replica and every CLI with the right Kubernetes RBAC sees
//!   the same tokens.
//! - [`identity`]: [`Identity`] (issuer, subject, display), what the audit
//!   trail records as the actor; an OIDC issuer will map to the same type.
//! - [`roles`] and [`authorize()`]: roles per environment (`viewer` <
//!   `deployer` < `approver` < `admin`, `*` for every environment), the
//!   action each API call needs, and the approval rule (no self-approval by
//!   default).
//!
//! No HTTP framework: the server calls these functions with what it read
//! from a request. Nothing here is read from repository content.
//! See docs/auth.md.

pub mod authorize;
mod error;
pub mod identity;
pub mod lifetime;
pub mod record;
pub mod roles;
pub mod store;
pub mod token;

pub use authorize::{
    Action, ApprovalRule, DenialReason, Denied, Principal, authorize, authorize_approval,
};
pub use error::{AuthError, AuthFailure, StoreError};
pub use identity::{Identity, LOCAL_ISSUER, TOKEN_ISSUER};
pub use record::{TokenRecord, TokenSet, TokenState};
pub use roles::{ALL_ENVIRONMENTS, Role, Roles};
pub use store::{DEFAULT_NAMESPACE, NewToken, SECRET_NAME, TokenStore};
pub use token::{TokenHash, TokenId, TokenValue};
