//! Bearer-token authentication for every route that needs an identity (the
//! API, and pages that need a viewer).
//!
//! [`Authenticator::authenticate`] reads `Authorization: Bearer tgt_...`
//! from a request's headers and returns the [`Principal`] the token proves
//! (identity and roles), or [`Unauthenticated`], which answers 401 (no,
//! malformed, unknown, wrong, expired or revoked token: one answer for all,
//! the reason only in the log) or 503 (the token store could not be read).
//!
//! The token records come from the Secret `tidegate-api-tokens` of the
//! management cluster ([`TokenStore`]), kept in memory and read again when
//! older than [`REFRESH`] (a revocation takes effect within it). An unknown
//! token id makes one early re-read, at most once per [`MIN_REREAD`], so a
//! token created a moment ago works at once while a stream of made-up ids
//! costs one read per second at most. Neither the presented token nor a
//! digest is ever logged.

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use std::time::{Duration, Instant};
use tidegate_auth::{AuthFailure, Principal, TokenSet, TokenStore};

/// How long the token records are used before they are read again.
pub const REFRESH: Duration = Duration::from_secs(5);
/// The shortest time between two reads of the token records.
pub const MIN_REREAD: Duration = Duration::from_secs(1);

/// Where the token records come from.
enum Source {
    /// The management cluster's Secret.
    Store(Box<TokenStore>),
    /// A fixed set (tests).
    Fixed,
    /// No management cluster to read them from (every request: 503).
    Unavailable(String),
}

struct Cached {
    set: TokenSet,
    read_at: Instant,
}

/// Checks bearer tokens against the token records.
pub struct Authenticator {
    source: Source,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum Unauthenticated {
    /// No `Authorization: Bearer` header.
    #[error("no API token: send Authorization: Bearer tgt_...")]
    Missing,
    /// The token does not authenticate (the reason is for the log only).
    #[error("the API token was refused: {0}")]
    Refused(AuthFailure),
    /// The token records could not be read.
    #[error("the API tokens could not be read from the management cluster: {0}")]
    Unavailable(String),
}

impl Unauthenticated {
    /// 401, or 503 when the token records could not be read.
    pub fn status(&self) -> StatusCode {
        match self {
            Unauthenticated::Missing | Unauthenticated::Refused(_) => StatusCode::UNAUTHORIZED,
            Unauthenticated::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for Unauthenticated {
    /// One body for every refused token (no hint whether the id exists, or
    /// the token was revoked or expired); the reason goes to the log.
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Unauthenticated::Missing => "unauthenticated: send Authorization: Bearer tgt_... (an API token from `tidegate token create`)\n".to_string(),
            Unauthenticated::Refused(_) => "unauthenticated: the API token is not valid (unknown, wrong, expired or revoked)\n".to_string(),
            Unauthenticated::Unavailable(_) => "unavailable: the API tokens cannot be read now; try again\n".to_string(),
        };
        let mut response = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tidegate\""),
            );
        }
        response
    }
}

impl Authenticator {
    /// Token records read from `store` (the management cluster's Secret).
    pub fn new(store: TokenStore) -> Authenticator {
        Authenticator {
            source: Source::Store(Box::new(store)),
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// No token records can be read (`why`: e.g. no management cluster is
    /// configured): every authentication answers 503 saying so.
    pub fn unavailable(why: impl Into<String>) -> Authenticator {
        Authenticator {
            source: Source::Unavailable(why.into()),
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// A fixed set of token records, never re-read (tests).
    pub fn fixed(set: TokenSet) -> Authenticator {
        Authenticator {
            source: Source::Fixed,
            cache: tokio::sync::Mutex::new(Some(Cached {
                set,
                read_at: Instant::now(),
            })),
        }
    }

    /// The principal a request's `Authorization: Bearer` token proves.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Unauthenticated> {
        let token = bearer(headers).ok_or(Unauthenticated::Missing)?;
        self.authenticate_token(token).await
    }

    /// The principal `token` (`tgt_<id>_<secret>`) proves now.
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal, Unauthenticated> {
        let now = unix_now();
        let mut cache = self.cache.lock().await;
        self.refresh(&mut cache, REFRESH).await?;
        let set = &cache.as_ref().map(|c| &c.set);
        let result = match set {
            Some(set) => set.authenticate(token, now),
            None => return Err(Unauthenticated::Unavailable("no token records".into())),
        };
        let result = match result {
            // Perhaps created since the last read: read once more, soon.
            Err(AuthFailure::Unknown(_)) => {
                self.refresh(&mut cache, MIN_REREAD).await?;
                match cache.as_ref() {
                    Some(c) => c.set.authenticate(token, now),
                    None => return Err(Unauthenticated::Unavailable("no token records".into())),
                }
            }
            other => other,
        };
        result.map_err(|failure| {
            tracing::info!(reason = %failure, "refused an API token");
            Unauthenticated::Refused(failure)
        })
    }

    /// Reads the records again when the cached ones are older than `age`.
    async fn refresh(
        &self,
        cache: &mut Option<Cached>,
        age: Duration,
    ) -> Result<(), Unauthenticated> {
        let store = match &self.source {
            Source::Store(store) => store,
            Source::Fixed => return Ok(()),
            Source::Unavailable(why) => return Err(Unauthenticated::Unavailable(why.clone())),
        };
        if cache.as_ref().is_some_and(|c| c.read_at.elapsed() < age) {
            return Ok(());
        }
        match store.load().await {
            Ok(set) => {
                *cache = Some(Cached {
                    set,
                    read_at: Instant::now(),
                });
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the API token records");
                Err(Unauthenticated::Unavailable(e.to_string()))
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Token records for tests.
#[cfg(test)]
pub(crate) mod testing {
    use tidegate_auth::{Roles, TokenRecord, token};

    /// A record named `name` with `grants` (revoked when `revoked`), and its token.
    pub(crate) fn minted(name: &str, grants: &[&str], revoked: bool) -> (TokenRecord, String) {
        let (value, hash) = token::generate().expect("token");
        let record = TokenRecord {
            id: value.id().clone(),
            name: name.into(),
            roles: Roles::parse(grants.iter().copied()).expect("roles"),
            hash,
            created_at: 1,
            created_by: "root@host".into(),
            expires_at: None,
            revoked_at: revoked.then_some(2),
            revoked_by: revoked.then(|| "root@host".into()),
        };
        (record, value.expose().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::minted;
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().expect("header"));
        h
    }

    #[tokio::test]
    async fn a_valid_token_proves_its_identity_and_anything_else_is_401() {
        let (alice, alice_token) = minted("alice", &["prod=deployer"], false);
        let (bob, bob_token) = minted("bob", &["*=viewer"], true);
        let auth = Authenticator::fixed(TokenSet::new([alice, bob]));
        let principal = auth
            .authenticate(&headers(&format!("Bearer {alice_token}")))
            .await
            .expect("alice");
        assert_eq!(principal.identity.subject, "alice");
        for refused in [
            HeaderMap::new(),
            headers("Basic YWxpY2U6eA=="),
            headers("Bearer "),
            headers("Bearer tgt_nonsense"),
            headers(&format!("Bearer {bob_token}")),
            headers(&format!(
                "Bearer {}x",
                &alice_token[..alice_token.len() - 1]
            )),
        ] {
            let err = auth.authenticate(&refused).await.expect_err("refused");
            assert_eq!(err.status(), StatusCode::UNAUTHORIZED, "{err}");
            let response = err.into_response();
            assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }

    #[tokio::test]
    async fn without_a_token_store_every_request_is_503() {
        let (_, token) = minted("alice", &["*=admin"], false);
        let auth = Authenticator::unavailable("no management cluster");
        let err = auth
            .authenticate(&headers(&format!("Bearer {token}")))
            .await
            .expect_err("unavailable");
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(&headers("bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("Bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&headers("Token abc")), None);
    }
}
