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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{payload::Header, secret::Secret};
    use axum::{Router, http::StatusCode, response::Redirect, routing::post};
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    /// A local server: `/ok` 204, `/busy` 503, `/gone` 404, `/moved` 307
    /// to `/ok` (counting what reaches `/ok`).
    async fn server(reached: Arc<AtomicUsize>) -> String {
        let app = Router::new()
            .route(
                "/ok",
                post(move || {
                    let reached = reached.clone();
                    async move {
                        reached.fetch_add(1, Ordering::SeqCst);
                        StatusCode::NO_CONTENT
                    }
                }),
            )
            .route("/busy", post(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .route("/gone", post(|| async { StatusCode::NOT_FOUND }))
            .route("/moved", post(|| async { Redirect::temporary("/ok") }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{address}")
    }

    fn request(url: String) -> Request {
        Request {
            url: Secret::new(url),
            headers: vec![
                ("Content-Type", Header::Plain("application/json".into())),
                ("Authorization", Header::Secret(Secret::new("Bearer t0ken"))),
            ],
            body: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn answers_decide_retries_and_redirects_are_not_followed() {
        let reached = Arc::new(AtomicUsize::new(0));
        let base = server(reached.clone()).await;
        let http = Http::new(Duration::from_secs(5)).expect("client");
        assert_eq!(http.send(&request(format!("{base}/ok"))).await, Ok(()));
        let busy = http
            .send(&request(format!("{base}/busy")))
            .await
            .expect_err("503");
        assert!(busy.retry, "{busy:?}");
        let gone = http
            .send(&request(format!("{base}/gone")))
            .await
            .expect_err("404");
        assert!(!gone.retry, "{gone:?}");
        let moved = http
            .send(&request(format!("{base}/moved")))
            .await
            .expect_err("307");
        assert!(
            !moved.retry && moved.reason.contains("not followed"),
            "{moved:?}"
        );
        assert_eq!(
            reached.load(Ordering::SeqCst),
            1,
            "the redirect was not followed"
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("address").port();
        drop(closed);
        let refused = http
            .send(&request(format!("http://127.0.0.1:{port}/secret-path")))
            .await
            .expect_err("refused");
        assert!(refused.retry, "{refused:?}");
        assert!(
            !refused.reason.contains("secret-path") && !refused.reason.contains("t0ken"),
            "no URL or credential in the error: {refused:?}"
        );
    }
}
