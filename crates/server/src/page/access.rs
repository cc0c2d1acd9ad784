//! Who may read the fleet page: the API's tokens and roles (`viewer` of an
//! environment is enough to see it). A browser presents its token in an
//! `Authorization: Bearer` header or in the HttpOnly, SameSite=Strict
//! cookie the login form sets; a token is never put in a URL or a log.

use axum::http::{HeaderMap, header};
use std::sync::Arc;
use tidegate_auth::{Action, AuthFailure, Principal, TokenSet, authorize};

/// The cookie that carries a browser's token.
pub const COOKIE: &str = "tidegate_fleet";
/// How long the cookie lasts (seconds): a working day.
pub const COOKIE_MAX_AGE: u64 = 12 * 3600;

/// Turns a presented token into the caller it proves.
pub trait Authenticator: Send + Sync {
    /// The principal `presented` proves, or why not.
    fn authenticate(&self, presented: &str) -> Result<Principal, AuthFailure>;
}

impl<F> Authenticator for F
where
    F: Fn(&str) -> Result<Principal, AuthFailure> + Send + Sync,
{
    fn authenticate(&self, presented: &str) -> Result<Principal, AuthFailure> {
        self(presented)
    }
}

impl Authenticator for TokenSet {
    fn authenticate(&self, presented: &str) -> Result<Principal, AuthFailure> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        TokenSet::authenticate(self, presented, now)
    }
}

/// How the page checks its readers.
#[derive(Clone, Default)]
pub enum Access {
    /// No tokens configured: every environment is shown to anyone who can
    /// reach the server (a controller on a private network, local runs).
    #[default]
    Open,
    /// Every request proves a token; each caller sees the environments it
    /// holds a role in.
    Tokens(Arc<dyn Authenticator>),
}

/// Who is reading.
#[derive(Debug, Clone)]
pub enum Reader {
    /// Anyone ([`Access::Open`]).
    Anyone,
    /// An authenticated caller.
    Principal(Principal),
}

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No token was presented.
    NoToken,
    /// The token did not prove anything (unknown, wrong, revoked, expired).
    BadToken(String),
}

impl Reader {
    /// Whether this reader may see `env` (`viewer` there is enough).
    pub fn sees(&self, env: &str) -> bool {
        match self {
            Reader::Anyone => true,
            Reader::Principal(p) => authorize(p, env, Action::Read).is_ok(),
        }
    }
}

impl Access {
    /// Whether readers must present a token.
    pub fn needs_token(&self) -> bool {
        matches!(self, Access::Tokens(_))
    }

    /// The reader of a request with these headers.
    pub fn reader(&self, headers: &HeaderMap) -> Result<Reader, Refusal> {
        let Access::Tokens(auth) = self else {
            return Ok(Reader::Anyone);
        };
        let token = presented(headers).ok_or(Refusal::NoToken)?;
        auth.authenticate(&token)
            .map(Reader::Principal)
            .map_err(|e| Refusal::BadToken(e.to_string()))
    }

    /// Checks a token typed into the login form.
    pub fn check(&self, token: &str) -> Result<(), Refusal> {
        match self {
            Access::Open => Ok(()),
            Access::Tokens(auth) => auth
                .authenticate(token)
                .map(|_| ())
                .map_err(|e| Refusal::BadToken(e.to_string())),
        }
    }
}

/// The token a request presents: `Authorization: Bearer`, else the cookie.
pub fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(token) = auth.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value that keeps `token` for the page's paths:
/// HttpOnly (no script reads it), SameSite=Strict (no other site sends
/// it), Secure when the request came over HTTPS (`secure`).
pub fn cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/fleet; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub fn cleared() -> String {
    format!("{COOKIE}=; Path=/fleet; HttpOnly; SameSite=Strict; Max-Age=0")
}
