//! Sending a [`Request`]: HTTPS with rustls (certificates verified), a
//! timeout, and no redirects (a redirect could carry a credential header
//! to another host).

use crate::payload::{Header, Request};
use futures::future::BoxFuture;
use std::time::Duration;

/// Why a try failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Try again later (a connection error, a timeout, 408, 429, 5xx).
    pub retry: bool,
    /// What went wrong (no URL, no credential).
    pub reason: String,
}

/// Delivers one request.
pub trait Transport: Send + Sync {
    /// Sends `request`; `Ok` on a 2xx answer.
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<(), SendError>>;
}

/// The real one: reqwest (rustls, the workspace's hyper stack).
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    /// A client with `timeout` per request and redirects off.
    pub fn new(timeout: Duration) -> Result<Http, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Http { client })
    }
}

/// The cause of a reqwest error, without its URL (a Slack or Teams URL is
/// a credential).
fn cause(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}

impl Transport for Http {
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let mut builder = self
                .client
                .post(request.url.expose())
                .body(request.body.clone());
            for (name, value) in &request.headers {
                builder = match value {
                    Header::Plain(v) => builder.header(*name, v.as_str()),
                    Header::Secret(s) => builder.header(*name, s.expose()),
                };
            }
            let response = builder.send().await.map_err(|e| SendError {
                retry: true,
                reason: cause(&e.without_url()),
            })?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let retry = status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT;
            let reason = if status.is_redirection() {
                format!(
                    "answered {status}: redirects are not followed (credentials stay with the configured host)"
                )
            } else {
                format!("answered {status}")
            };
            Err(SendError { retry, reason })
        })
    }
}
