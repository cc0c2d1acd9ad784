//! The controller's HTTP server, kept apart from reconciliation (as
//! linkerd2-proxy keeps its admin server apart): `/healthz`, `/readyz`,
//! `/metrics` and the Git webhooks.
//!
//! - [`Monitor`] is the controller's [`Observer`]: it records the
//!   controller's events as Prometheus metrics ([`metrics`]), remembers what
//!   readiness needs and which repositories and refs are followed.
//! - [`webhook`]: GitHub, GitLab, Bitbucket and generic push webhooks,
//!   verified, de-duplicated and size-limited, pull the controller's
//!   [`Trigger`].
//! - [`page`]: the live fleet page under `/fleet` (read-only, tokens and
//!   roles as the API), fed by the same events through its read model.
//!
//! Architecture invariant: the server reads nothing from clusters or Git
//! and writes nothing: it sees the controller only through its events and
//! acts on it only through its trigger. Webhook secrets come from the
//! operator, never from repository content, and are never logged.

pub mod api;
pub mod auth;
pub mod metrics;
pub mod page;
pub mod webhook;

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use std::{
    collections::BTreeSet,
    fmt,
    sync::{Arc, Mutex},
};
use tidegate_controller::{Event, Observer, Trigger};
use webhook::{
    MAX_BODY, WebhookSecrets, Webhooks,
    push::Sources,
    replay::{Deliveries, REMEMBERED},
};

/// A secret (webhook secret, token): never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A secret file could not be read.
    #[error("cannot read the secret file {path}: {source}")]
    SecretFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A secret is empty.
    #[error("the secret {what} is empty")]
    EmptySecret {
        /// Which one (a flag or variable name).
        what: String,
    },
    /// Serving failed.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// What readiness waits for.
#[derive(Debug, Default)]
struct Readiness {
    /// The audit store is open (`Some(false)`: it could not be opened).
    audit: Option<bool>,
    /// Leading (`true`) or standby (`false`), once known.
    leading: Option<bool>,
    /// Environments whose source was fetched at least once.
    fetched: BTreeSet<String>,
}

/// The controller's observer: metrics, readiness and followed sources.
pub struct Monitor {
    metrics: metrics::Metrics,
    readiness: Mutex<Readiness>,
    sources: Mutex<Sources>,
    page: Arc<page::model::FleetModel>,
}

/// The server: a [`Monitor`] to give the controller, the router to serve.
pub struct Server {
    monitor: Arc<Monitor>,
    webhooks: Arc<Webhooks>,
    page_access: page::access::Access,
    page_audit: Option<Arc<dyn page::AuditReader>>,
    api: Option<Arc<api::Api>>,
}

// === impl Secret ===

impl Secret {
    /// A secret from its text.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret in `path` (one trailing newline removed); empty files are refused.
    pub fn from_file(path: &std::path::Path) -> Result<Secret, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::SecretFile {
            path: path.display().to_string(),
            source,
        })?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        Secret::non_empty(text, &path.display().to_string())
    }

    /// `text` as a secret, refused when empty (`what` names it in the error).
    pub fn non_empty(text: &str, what: &str) -> Result<Secret, ServerError> {
        if text.is_empty() {
            return Err(ServerError::EmptySecret { what: what.into() });
        }
        Ok(Secret(text.to_string()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

// === impl Monitor ===

impl Monitor {
    /// A monitor that knows the configuration repository (`--repo`, its
    /// URL or path) and the ref followed (`--ref`, default `HEAD`).
    pub fn new(config_repo: Option<(String, String)>) -> Monitor {
        Monitor {
            metrics: metrics::Metrics::new(),
            readiness: Mutex::new(Readiness::default()),
            sources: Mutex::new(Sources {
                config: config_repo,
                environments: Default::default(),
            }),
            page: Arc::new(page::model::FleetModel::new()),
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// `Ok` when ready; otherwise every reason it is not.
    pub fn ready(&self) -> Result<(), Vec<&'static str>> {
        let Ok(r) = self.readiness.lock() else {
            return Err(vec!["internal: readiness state unavailable"]);
        };
        let mut not = Vec::new();
        match r.audit {
            Some(true) => {}
            Some(false) => not.push("audit: the audit store could not be opened"),
            None => not.push("audit: the audit store is not open yet"),
        }
        match r.leading {
            None => not.push("leader: not known yet whether this replica leads"),
            // A standby is ready to take over; it fetches nothing until it leads.
            Some(false) => {}
            Some(true) if r.fetched.is_empty() => {
                not.push("git: no environment's source was fetched yet")
            }
            Some(true) => {}
        }
        if not.is_empty() { Ok(()) } else { Err(not) }
    }

    /// The fleet page's read model.
    pub fn page(&self) -> &Arc<page::model::FleetModel> {
        &self.page
    }

    /// The repositories and refs followed, as of the controller's last loads.
    pub fn sources(&self) -> Sources {
        self.sources.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Observer for Monitor {
    fn observe(&self, event: Event) {
        match &event {
            Event::Audit { open } => {
                if let Ok(mut r) = self.readiness.lock() {
                    r.audit = Some(*open);
                }
            }
            Event::Leading(leading) => {
                if let Ok(mut r) = self.readiness.lock() {
                    r.leading = Some(*leading);
                }
            }
            Event::Fetched {
                environment, ok, ..
            } if *ok => {
                if let Ok(mut r) = self.readiness.lock() {
                    r.fetched.insert(environment.clone());
                }
            }
            Event::Following {
                environment,
                repo_url,
                git_ref,
            } => {
                if let Ok(mut s) = self.sources.lock() {
                    s.environments
                        .insert(environment.clone(), (repo_url.clone(), git_ref.clone()));
                }
            }
            _ => {}
        }
        self.page.record(&event);
        self.metrics.record(&event);
    }
}

// === impl Server ===

impl Server {
    /// A server pulling `trigger` for verified pushes, with the webhook
    /// endpoints that have a secret in `secrets`.
    pub fn new(monitor: Arc<Monitor>, trigger: Trigger, secrets: WebhookSecrets) -> Server {
        Server {
            webhooks: Arc::new(Webhooks {
                secrets,
                trigger,
                deliveries: Mutex::new(Deliveries::new(REMEMBERED)),
                monitor: monitor.clone(),
            }),
            monitor,
            page_access: page::access::Access::default(),
            page_audit: None,
            api: None,
        }
    }

    /// The fleet page checks readers with `access` and shows the audit
    /// trail `audit` on its timeline.
    pub fn with_page(
        mut self,
        access: page::access::Access,
        audit: Option<Arc<dyn page::AuditReader>>,
    ) -> Server {
        self.page_access = access;
        self.page_audit = audit;
        self
    }

    /// Also serves the API for the CLI ([`api`], `/api/v1/*`).
    pub fn with_api(mut self, api: api::Api) -> Server {
        self.api = Some(Arc::new(api));
        self
    }

    /// The routes: `GET /healthz`, `GET /readyz`, `GET /metrics`,
    /// `POST /webhooks/{github,gitlab,bitbucket,generic}`, the fleet page
    /// under `/fleet` ([`page`]).
    pub fn router(&self) -> Router {
        let probes = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.monitor.clone());
        let hooks = Router::new()
            .route("/webhooks/github", post(webhook::github))
            .route("/webhooks/gitlab", post(webhook::gitlab))
            .route("/webhooks/bitbucket", post(webhook::bitbucket))
            .route("/webhooks/generic", post(webhook::generic))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.webhooks.clone());
        let routes = probes.merge(hooks).merge(page::router(page::Page {
            model: self.monitor.page.clone(),
            access: self.page_access.clone(),
            audit: self.page_audit.clone(),
        }));
        match &self.api {
            Some(api) => routes.merge(api::routes(api.clone())),
            None => routes,
        }
    }

    /// Serves on `listener` until `stop` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(stop)
            .await
            .map_err(ServerError::Serve)
    }
}

/// Binds `address` (`0.0.0.0:8080`, `127.0.0.1:0`, ...).
pub async fn bind(address: &str) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Bind {
            address: address.to_string(),
            source,
        })
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(monitor): State<Arc<Monitor>>) -> Response {
    match monitor.ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reasons) => {
            let mut body = String::from("not ready:\n");
            for r in reasons {
                body.push_str("- ");
                body.push_str(r);
                body.push('\n');
            }
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

async fn metrics(State(monitor): State<Arc<Monitor>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        monitor.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
