//! The live fleet page, served under `/fleet` by the controller's HTTP
//! server, read-only:
//!
//! - `GET /fleet`: environments × clusters (cloud, region, wave, revision,
//!   sync state, health, drifted objects, active blue-green colour),
//!   filtered by `?env=&cloud=&label=key=value`;
//! - `GET /fleet/rollouts/{env}` (`?revision=` picks one): the waves as
//!   columns, gates, limits and outcome; `/fleet/rollouts/{env}/events`
//!   streams its live part as server-sent events while it changes;
//! - `GET /fleet/clusters/{env}/{cluster}`: each app's objects with their
//!   drift and diff (Secret values masked inside the controller);
//! - `GET /fleet/timeline`: audit entries (`?env=&cluster=&action=&actor=`),
//!   the chain's verification state, links to the rollout and the commit;
//! - `GET|POST /fleet/login`, `POST /fleet/logout`: the token cookie.
//!
//! [`model`] is fed by the controller's events (the server still reads
//! nothing from clusters or Git); [`render`] turns it into HTML with askama
//! templates; [`access`] checks tokens and roles.

pub mod access;
#[doc(hidden)]
pub mod fixture;
pub mod model;
pub mod render;

use access::{Access, Reader, Refusal};
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Redirect, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
    routing::get,
};
use model::FleetModel;
use render::{GridFilter, TimelineFilter};
use std::{convert::Infallible, sync::Arc, time::Duration};
use tidegate_audit::{Filter, Record};

/// How many audit entries the timeline shows at most.
pub const TIMELINE_LIMIT: usize = 500;

/// Reads the audit trail for the timeline.
pub trait AuditReader: Send + Sync {
    /// The records `filter` selects, oldest first.
    fn records(&self, filter: &Filter) -> Result<Vec<Record>, String>;
}

impl AuditReader for tidegate_audit::AuditStore {
    fn records(&self, filter: &Filter) -> Result<Vec<Record>, String> {
        tidegate_audit::AuditStore::records(self, filter).map_err(|e| e.to_string())
    }
}

/// The audit trail at a location (`--audit-db`: an SQLite file or a
/// PostgreSQL URL), opened read-only at the first read that finds it (the
/// controller creates it) and kept open.
pub struct AuditAt {
    location: std::path::PathBuf,
    store: std::sync::Mutex<Option<Arc<tidegate_audit::AuditStore>>>,
}

impl AuditAt {
    /// The trail at `location`.
    pub fn new(location: std::path::PathBuf) -> AuditAt {
        AuditAt {
            location,
            store: std::sync::Mutex::new(None),
        }
    }
}

impl AuditReader for AuditAt {
    fn records(&self, filter: &Filter) -> Result<Vec<Record>, String> {
        let mut slot = self
            .store
            .lock()
            .map_err(|_| "audit reader poisoned".to_string())?;
        let store = match &*slot {
            Some(store) => store.clone(),
            None => {
                let store = Arc::new(
                    tidegate_audit::AuditStore::open_read_only(&self.location)
                        .map_err(|e| e.to_string())?,
                );
                *slot = Some(store.clone());
                store
            }
        };
        drop(slot);
        store.records(filter).map_err(|e| e.to_string())
    }
}

/// What the page serves from.
#[derive(Clone)]
pub struct Page {
    /// The read model.
    pub model: Arc<FleetModel>,
    /// Who may read it.
    pub access: Access,
    /// The audit trail, for the timeline (`None`: not configured).
    pub audit: Option<Arc<dyn AuditReader>>,
}

/// The page's routes.
pub fn router(page: Page) -> Router {
    Router::new()
        .route("/fleet", get(fleet))
        .route("/fleet/", get(fleet))
        .route("/fleet/rollouts/{env}", get(rollout))
        .route("/fleet/rollouts/{env}/events", get(rollout_events))
        .route("/fleet/clusters/{env}/{cluster}", get(cluster))
        .route("/fleet/timeline", get(timeline))
        .route("/fleet/login", get(login_form).post(login))
        .route("/fleet/logout", axum::routing::post(logout))
        .route("/fleet/static/page.css", get(css))
        .route("/fleet/static/live.js", get(js))
        .with_state(Arc::new(page))
}

type Shared = State<Arc<Page>>;

/// The security headers of every page: no framing, no other origin's
/// scripts, styles or connections, no referrer leaving the site.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn rendered(result: Result<String, render::RenderError>) -> Response {
    match result {
        Ok(body) => html(StatusCode::OK, body),
        Err(e) => {
            tracing::error!(error = %e, "rendering the fleet page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response()
        }
    }
}

/// The reader, or the response that refuses the request (the login form,
/// status 401; 503 when the token records cannot be read).
async fn reader(page: &Page, headers: &HeaderMap) -> Result<Reader, Response> {
    page.access.reader(headers).await.map_err(|refusal| {
        let message = match refusal {
            Refusal::NoToken => None,
            Refusal::BadToken => Some("That token is not valid (unknown, revoked or expired)."),
            Refusal::Unavailable => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable: the API tokens cannot be read now; try again\n",
                )
                    .into_response();
            }
        };
        let mut r = match render::login_page(message) {
            Ok(body) => html(StatusCode::UNAUTHORIZED, body),
            Err(_) => StatusCode::UNAUTHORIZED.into_response(),
        };
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tidegate\""),
        );
        r
    })
}

/// The reader, when it may see environment `env` (else the answer to send).
async fn reader_of(page: &Page, headers: &HeaderMap, env: &str) -> Result<Reader, Response> {
    let who = reader(page, headers).await?;
    if !who.sees(env) {
        return Err(not_shown("No such environment, or no role in it."));
    }
    Ok(who)
}

fn not_shown(what: &str) -> Response {
    rendered(render::message_page("Not found", what)).map_status(StatusCode::NOT_FOUND)
}

trait MapStatus {
    fn map_status(self, status: StatusCode) -> Response;
}

impl MapStatus for Response {
    fn map_status(mut self, status: StatusCode) -> Response {
        *self.status_mut() = status;
        self
    }
}

async fn fleet(
    State(page): Shared,
    headers: HeaderMap,
    Query(filter): Query<GridFilter>,
) -> Response {
    let who = match reader(&page, &headers).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let fleet = page.model.snapshot();
    rendered(render::fleet_page(&fleet, &filter, &|e| who.sees(e)))
}

/// `?revision=`: which rollout of the environment.
#[derive(Debug, Default, serde::Deserialize)]
struct Which {
    #[serde(default)]
    revision: Option<String>,
}

async fn rollout(
    State(page): Shared,
    headers: HeaderMap,
    Path(env): Path<String>,
    Query(which): Query<Which>,
) -> Response {
    if let Err(r) = reader_of(&page, &headers, &env).await {
        return r;
    }
    let state = page.model.environment(&env);
    rendered(render::rollout_page(
        &env,
        state.as_ref(),
        which.revision.as_deref(),
    ))
}

/// The live part of the rollout view, sent again whenever the model
/// changes (at most every 250 ms), with a keep-alive comment.
async fn rollout_events(
    State(page): Shared,
    headers: HeaderMap,
    Path(env): Path<String>,
    Query(which): Query<Which>,
) -> Response {
    if let Err(r) = reader_of(&page, &headers, &env).await {
        return r;
    }
    let changes = page.model.changes();
    let state = (page, env, which.revision, changes, String::new());
    let stream = futures::stream::unfold(
        state,
        |(page, env, revision, mut changes, last)| async move {
            loop {
                let state = page.model.environment(&env);
                let body =
                    render::rollout_fragment(&env, state.as_ref(), revision.as_deref()).ok()?;
                if body != last {
                    let event = SseEvent::default().event("rollout").data(body.clone());
                    return Some((
                        Ok::<_, Infallible>(event),
                        (page, env, revision, changes, body),
                    ));
                }
                changes.changed().await.ok()?;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        },
    );
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn cluster(
    State(page): Shared,
    headers: HeaderMap,
    Path((env, cluster)): Path<(String, String)>,
) -> Response {
    let who = match reader(&page, &headers).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let state = page.model.environment(&env);
    let known = state
        .as_ref()
        .is_some_and(|s| s.clusters.contains_key(&cluster));
    if !who.sees(&env) || !known {
        return not_shown("No such cluster, or no role in its environment.");
    }
    rendered(render::cluster_page(&env, &cluster, state.as_ref()))
}

async fn timeline(
    State(page): Shared,
    headers: HeaderMap,
    Query(filter): Query<TimelineFilter>,
) -> Response {
    let who = match reader(&page, &headers).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let verified = page.model.audit_verified();
    let Some(audit) = page.audit.clone() else {
        return rendered(render::timeline_page(
            &[],
            &filter,
            verified,
            Some("The controller has no audit trail to read."),
        ));
    };
    let query = Filter {
        environment: filter.env.clone().filter(|e| !e.is_empty()),
        cluster: filter.cluster.clone().filter(|c| !c.is_empty()),
        actions: filter
            .action
            .iter()
            .filter(|a| !a.is_empty())
            .cloned()
            .collect(),
        ..Filter::default()
    };
    // SQLite and PostgreSQL reads block: off the async workers.
    let records = match tokio::task::spawn_blocking(move || audit.records(&query)).await {
        Ok(Ok(records)) => records,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e,
                Err(e) => e.to_string(),
                Ok(Ok(_)) => String::new(),
            };
            tracing::warn!(error = %why, "reading the audit trail for the timeline failed");
            let note = "Reading the audit trail failed; see the controller's log.";
            return rendered(render::timeline_page(&[], &filter, verified, Some(note)));
        }
    };
    let fleet = page.model.snapshot();
    let commit_url = |env: &str, sha: &str| {
        fleet
            .environments
            .get(env)
            .and_then(|e| e.source.as_deref())
            .and_then(|repo| commit_link(repo, sha))
    };
    let rows = render::timeline_rows(
        &records,
        &filter,
        &commit_url,
        &|e| who.sees(e),
        TIMELINE_LIMIT,
    );
    rendered(render::timeline_page(&rows, &filter, verified, None))
}

/// A link to `sha` on the web page of `repo`, when it is an HTTPS URL of a
/// known forge layout (`/commit/<sha>`: GitHub, GitLab, Gitea, Bitbucket use
/// `/commits/`).
pub fn commit_link(repo: &str, sha: &str) -> Option<String> {
    let base = repo
        .strip_suffix(".git")
        .unwrap_or(repo)
        .trim_end_matches('/');
    if !base.starts_with("https://") || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    if base.starts_with("https://bitbucket.org/") {
        Some(format!("{base}/commits/{sha}"))
    } else if base.starts_with("https://gitlab.") {
        Some(format!("{base}/-/commit/{sha}"))
    } else {
        Some(format!("{base}/commit/{sha}"))
    }
}

async fn login_form() -> Response {
    rendered(render::login_page(None))
}

/// The login form's body.
#[derive(serde::Deserialize)]
struct Login {
    token: String,
}

async fn login(State(page): Shared, headers: HeaderMap, Form(form): Form<Login>) -> Response {
    let token = form.token.trim();
    if let Err(refusal) = page.access.check(token).await {
        let (status, message) = match refusal {
            Refusal::NoToken | Refusal::BadToken => (
                StatusCode::UNAUTHORIZED,
                "That token is not valid (unknown, revoked or expired).",
            ),
            Refusal::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The API tokens cannot be read now; try again.",
            ),
        };
        return rendered(render::login_page(Some(message))).map_status(status);
    }
    // Only characters a token has reach the cookie.
    if !token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return rendered(render::login_page(Some("That is not a Tidegate token.")))
            .map_status(StatusCode::UNAUTHORIZED);
    }
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https");
    let mut r = Redirect::to("/fleet").into_response();
    if let Ok(v) = HeaderValue::from_str(&access::cookie(token, secure)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout() -> Response {
    let mut r = Redirect::to("/fleet/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&access::cleared()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn css() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../static/page.css"),
    )
}

async fn js() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../static/live.js"),
    )
}

fn static_file(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
