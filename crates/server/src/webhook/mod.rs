//! Git webhooks: a verified push for a followed repository and ref makes
//! the controller fetch now (through its `Trigger`).
//!
//! Order of checks, for every provider: the endpoint is configured (else
//! 404), the body is within the size limit (else 413), the signature or
//! token is valid (else 401, nothing else happens), the event is a push
//! (else 200, ignored), the delivery id was not seen before (else 200,
//! ignored), the payload is JSON (else 400). Secrets are never logged.

pub mod push;
pub mod replay;
pub mod signature;

use crate::{Monitor, Secret};
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use push::{Provider, Push, Wanted};
use replay::{Deliveries, MAX_ID_LEN};
use std::sync::{Arc, Mutex};
use tidegate_controller::Trigger;
use tracing::{info, warn};

/// The largest webhook body accepted (1 MiB); larger ones are refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// The secrets of the webhook endpoints; an endpoint without one is off (404).
#[derive(Debug, Default, Clone)]
pub struct WebhookSecrets {
    /// GitHub's webhook secret (HMAC-SHA256, `X-Hub-Signature-256`).
    pub github: Option<Secret>,
    /// GitLab's secret token (`X-Gitlab-Token`).
    pub gitlab: Option<Secret>,
    /// Bitbucket Cloud's webhook secret (HMAC-SHA256, `X-Hub-Signature`).
    pub bitbucket: Option<Secret>,
    /// The generic endpoint's bearer token (`Authorization: Bearer`).
    pub bearer: Option<Secret>,
}

/// What the webhook handlers share.
pub(crate) struct Webhooks {
    pub(crate) secrets: WebhookSecrets,
    pub(crate) trigger: Trigger,
    pub(crate) deliveries: Mutex<Deliveries>,
    pub(crate) monitor: Arc<Monitor>,
}

pub(crate) async fn github(
    State(w): State<Arc<Webhooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    w.handle(Provider::GitHub, &headers, &body)
}

pub(crate) async fn gitlab(
    State(w): State<Arc<Webhooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    w.handle(Provider::GitLab, &headers, &body)
}

pub(crate) async fn bitbucket(
    State(w): State<Arc<Webhooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    w.handle(Provider::Bitbucket, &headers, &body)
}

pub(crate) async fn generic(
    State(w): State<Arc<Webhooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    w.handle(Provider::Generic, &headers, &body)
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

// === impl Webhooks ===

impl Webhooks {
    fn handle(&self, provider: Provider, headers: &HeaderMap, body: &[u8]) -> Response {
        let p = provider.as_str();
        let secrets = &self.secrets;
        let secret = match provider {
            Provider::GitHub => &secrets.github,
            Provider::GitLab => &secrets.gitlab,
            Provider::Bitbucket => &secrets.bitbucket,
            Provider::Generic => &secrets.bearer,
        };
        let Some(secret) = secret else {
            return json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"error": format!("the {p} webhook is not configured on this controller")}),
            );
        };
        let valid = match provider {
            Provider::GitHub => {
                signature::hmac_sha256_valid(secret, text(headers, "x-hub-signature-256"), body)
            }
            Provider::Bitbucket => {
                signature::hmac_sha256_valid(secret, text(headers, "x-hub-signature"), body)
            }
            Provider::GitLab => signature::token_valid(secret, text(headers, "x-gitlab-token")),
            Provider::Generic => {
                signature::token_valid(secret, signature::bearer(text(headers, "authorization")))
            }
        };
        if !valid {
            warn!(
                provider = p,
                "webhook refused: missing or invalid signature"
            );
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "missing or invalid signature"}),
            );
        }
        let (event, delivery) = match provider {
            Provider::GitHub => (
                text(headers, "x-github-event"),
                text(headers, "x-github-delivery"),
            ),
            Provider::GitLab => (
                text(headers, "x-gitlab-event"),
                text(headers, "x-gitlab-event-uuid"),
            ),
            Provider::Bitbucket => (
                text(headers, "x-event-key"),
                text(headers, "x-request-uuid"),
            ),
            Provider::Generic => (Some("push"), text(headers, "x-delivery-id")),
        };
        let is_push = matches!(
            (provider, event),
            (Provider::GitHub, Some("push"))
                | (Provider::GitLab, Some("Push Hook" | "Tag Push Hook"))
                | (Provider::Bitbucket, Some("repo:push"))
                | (Provider::Generic, _)
        );
        if !is_push {
            info!(
                provider = p,
                event = event.unwrap_or(""),
                "webhook: not a push, ignored"
            );
            return json(
                StatusCode::OK,
                serde_json::json!({"ignored": "not a push event"}),
            );
        }
        if let Some(id) = delivery {
            if id.len() > MAX_ID_LEN {
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "delivery id too long"}),
                );
            }
            let first = self
                .deliveries
                .lock()
                .map(|mut d| d.first_time(id))
                .unwrap_or(true);
            if !first {
                info!(
                    provider = p,
                    delivery = id,
                    "webhook: delivery already handled, ignored"
                );
                return json(
                    StatusCode::OK,
                    serde_json::json!({"ignored": "delivery already handled"}),
                );
            }
        }
        let push = if provider == Provider::Generic && body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(v) => Some(Push::parse(provider, &v)),
                Err(e) => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"error": format!("the body is not JSON: {e}")}),
                    );
                }
            }
        };
        let wanted = match &push {
            // The generic endpoint with no body: fetch everything.
            None => Wanted::All,
            Some(push) => self.monitor.sources().wanted(push),
        };
        match wanted {
            Wanted::All => {
                info!(
                    provider = p,
                    "webhook: push to the configuration repository; fetching every environment"
                );
                self.trigger.fetch_all();
                json(StatusCode::ACCEPTED, serde_json::json!({"fetching": "all"}))
            }
            Wanted::Some(names) if names.is_empty() => {
                info!(
                    provider = p,
                    "webhook: push to a repository or ref no environment follows, ignored"
                );
                json(
                    StatusCode::OK,
                    serde_json::json!({"fetching": [], "ignored": "no environment follows this repository and ref"}),
                )
            }
            Wanted::Some(names) => {
                for n in &names {
                    self.trigger.fetch(n);
                }
                info!(provider = p, environments = ?names, "webhook: push; fetching");
                json(StatusCode::ACCEPTED, serde_json::json!({"fetching": names}))
            }
        }
    }
}
