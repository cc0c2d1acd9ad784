//! Who may read the fleet page: the API's tokens and roles (`viewer` of an
//! environment is enough to see it). A browser presents its token in an
//! `Authorization: Bearer` header or in the HttpOnly, SameSite=Strict
//! cookie the login form sets; a token is never put in a URL or a log.

use crate::auth::{Authenticator, Unauthenticated};
use axum::http::{HeaderMap, header};
use std::sync::Arc;
use tidegate_auth::{Action, Principal, authorize};

/// The cookie that carries a browser's token.
pub const COOKIE: &str = "tidegate_fleet";
/// How long the cookie lasts (seconds): a working day.
pub const COOKIE_MAX_AGE: u64 = 12 * 3600;

/// How the page checks its readers.
#[derive(Clone, Default)]
pub enum Access {
    /// No tokens configured: every environment is shown to anyone who can
    /// reach the server (a controller on a private network, local runs).
    #[default]
    Open,
    /// Every request proves an API token (checked by the API's
    /// [`Authenticator`]); each caller sees the environments it holds a
    /// role in.
    Tokens(Arc<Authenticator>),
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
    BadToken,
    /// The token records could not be read now.
    Unavailable,
}

impl From<Unauthenticated> for Refusal {
    fn from(u: Unauthenticated) -> Refusal {
        match u {
            Unauthenticated::Missing => Refusal::NoToken,
            Unauthenticated::Refused(_) => Refusal::BadToken,
            Unauthenticated::Unavailable(_) => Refusal::Unavailable,
        }
    }
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
    pub async fn reader(&self, headers: &HeaderMap) -> Result<Reader, Refusal> {
        let Access::Tokens(auth) = self else {
            return Ok(Reader::Anyone);
        };
        let token = presented(headers).ok_or(Refusal::NoToken)?;
        Ok(Reader::Principal(auth.authenticate_token(&token).await?))
    }

    /// Checks a token typed into the login form.
    pub async fn check(&self, token: &str) -> Result<(), Refusal> {
        match self {
            Access::Open => Ok(()),
            Access::Tokens(auth) => Ok(auth.authenticate_token(token).await.map(|_| ())?),
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
