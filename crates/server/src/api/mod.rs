//! The API for the CLI (`tidegate --server URL ...`): `POST /api/v1/run`
//! runs one of the allowed commands in the controller and streams its
//! output back; `GET /api/v1/whoami` names the caller.
//!
//! Every request needs `Authorization: Bearer tgt_...` ([`Authenticator`]:
//! 401 otherwise). The command line is untrusted: the [`Runner`] (given by
//! the binary that starts the controller; the server does not know the
//! CLI) parses it, accepts only the commands of the API and refuses any
//! flag that names a file, kubeconfig, context, repository or audit
//! database (400), and says which [`Action`] in which environment it is.
//! The server then checks the caller's role there ([`authorize`], 403
//! naming the role and the environment) and, for an approval, the approval
//! rule against whoever started the rollout ([`authorize_approval`]).
//! Only then does the runner run the command, with the controller's own
//! repository, clusters and audit trail and the caller's identity as the
//! audit actor, sending its stdout and stderr as they are written.
//!
//! The response to `run` is `application/x-ndjson`: one JSON object per
//! line, `{"stdout": "..."}`, `{"stderr": "..."}`, and last
//! `{"exit": N}`, the command's exit code.

#[cfg(test)]
mod tests;

use crate::auth::Authenticator;
use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tidegate_auth::{
    ALL_ENVIRONMENTS, Action, ApprovalRule, Denied, Identity, Principal, authorize,
    authorize_approval,
};

/// Largest request body (a command line).
pub const MAX_REQUEST: usize = 64 * 1024;

/// A checked command line: what it does, where, and the arguments to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The action, for the role check.
    pub action: Action,
    /// The environment (`None`: every environment, e.g. `audit log`
    /// without `--env`, which needs a role on `*`).
    pub env: Option<String>,
    /// The arguments, as sent (the runner parses them again to run).
    pub args: Vec<String>,
}

/// One piece of a running command's output, or its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frame {
    /// Text the command wrote to its standard output.
    Stdout(String),
    /// Text the command wrote to its standard error.
    Stderr(String),
    /// The command ended with this exit code.
    Exit(u8),
}

/// Where a running command sends its [`Frame`]s.
pub type Output = tokio::sync::mpsc::UnboundedSender<Frame>;

/// Runs CLI commands in the controller: implemented by the binary (the CLI)
/// with the controller's own repository, kubeconfig and audit store.
pub trait Runner: Send + Sync {
    /// Parses `args` (`["sync", "--env", "prod"]`): `Err` with a message
    /// for the caller when it is not an API command or carries a flag the
    /// API refuses.
    fn prepare(&self, args: &[String]) -> Result<Command, String>;

    /// For an approval: who started the rollout being approved (`None`: no
    /// rollout of that revision was started). May block (reads the audit
    /// trail).
    fn started_by(&self, command: &Command) -> Result<Option<Identity>, String>;

    /// Runs `command` as `who`, with colours when `color`, sending its
    /// output to `out` and ending with [`Frame::Exit`]. Returns at once (the
    /// command runs on its own thread).
    fn run(&self, command: Command, who: Identity, color: bool, out: Output);
}

/// What the API needs: token checks, the runner and the approval rule.
pub struct Api {
    /// Checks bearer tokens.
    pub authenticator: Arc<Authenticator>,
    /// Runs the commands.
    pub runner: Arc<dyn Runner>,
    /// Where self-approval is allowed (`--allow-self-approval`).
    pub approvals: ApprovalRule,
}

/// The body of `POST /api/v1/run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    /// The command line after `tidegate` (global `--color` included).
    pub args: Vec<String>,
    /// Colour the output (the client's terminal decides).
    #[serde(default)]
    pub color: bool,
}

/// The answer of `GET /api/v1/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The identity's issuer.
    pub issuer: String,
    /// The identity's subject.
    pub subject: String,
    /// Roles, `ENV=ROLE`.
    pub roles: Vec<String>,
}

/// The API's routes (under `/api/v1`).
pub fn routes(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v1/run", post(run))
        .route("/api/v1/whoami", get(whoami))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST))
        .with_state(api)
}

/// A refusal before the command runs.
#[derive(Debug)]
pub enum Refusal {
    /// Not authenticated (401/503).
    Unauthenticated(crate::auth::Unauthenticated),
    /// Not an API command, or a refused flag (400).
    BadRequest(String),
    /// The role (or the approval rule) does not allow it (403).
    Forbidden(Denied),
    /// The audit trail could not be read to check an approval (503).
    Unavailable(String),
    /// Not now: an approval of a rollout that has not started (409).
    Conflict(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated(u) => u.into_response(),
            Refusal::BadRequest(m) => {
                (StatusCode::BAD_REQUEST, format!("refused: {m}\n")).into_response()
            }
            Refusal::Forbidden(d) => {
                (StatusCode::FORBIDDEN, format!("forbidden: {d}\n")).into_response()
            }
            Refusal::Conflict(m) => {
                (StatusCode::CONFLICT, format!("refused: {m}\n")).into_response()
            }
            Refusal::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("unavailable: {m}\n"),
            )
                .into_response(),
        }
    }
}

/// Authenticates, checks and authorizes a run request: the command to run
/// and who asks.
pub async fn admit(
    api: &Api,
    headers: &HeaderMap,
    request: &RunRequest,
) -> Result<(Command, Principal), Refusal> {
    let principal = api
        .authenticator
        .authenticate(headers)
        .await
        .map_err(Refusal::Unauthenticated)?;
    let command = api
        .runner
        .prepare(&request.args)
        .map_err(Refusal::BadRequest)?;
    let env = command.env.as_deref().unwrap_or(ALL_ENVIRONMENTS);
    if command.action == Action::Approve {
        let runner = api.runner.clone();
        let asked = command.clone();
        let started_by = tokio::task::spawn_blocking(move || runner.started_by(&asked))
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?
            .map_err(Refusal::Unavailable)?;
        match started_by {
            Some(starter) => authorize_approval(&principal, env, &starter, &api.approvals)
                .map_err(Refusal::Forbidden)?,
            None => {
                authorize(&principal, env, Action::Approve).map_err(Refusal::Forbidden)?;
                // An approval given before the rollout starts could not be
                // checked against whoever starts it: a way round the rule.
                if !api.approvals.self_approval_allowed(env) {
                    return Err(Refusal::Conflict(format!(
                        "no rollout of that revision has started in environment {env}: \
                         approve once its wave waits for approval (an approval given before \
                         the rollout starts could not be checked against whoever starts it; \
                         `tidegate controller --allow-self-approval={env}` lifts the rule)"
                    )));
                }
            }
        }
    } else {
        authorize(&principal, env, command.action).map_err(Refusal::Forbidden)?;
    }
    Ok((command, principal))
}

async fn run(State(api): State<Arc<Api>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let request: RunRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return Refusal::BadRequest(format!(
                "the body must be JSON {{\"args\": [...], \"color\": false}}: {e}"
            ))
            .into_response();
        }
    };
    let (command, principal) = match admit(&api, &headers, &request).await {
        Ok(admitted) => admitted,
        Err(refusal) => {
            if let Refusal::Forbidden(d) = &refusal {
                tracing::info!(refused = %d, "API request forbidden");
            }
            return refusal.into_response();
        }
    };
    tracing::info!(
        who = %principal.identity,
        action = %command.action,
        env = command.env.as_deref().unwrap_or(ALL_ENVIRONMENTS),
        "running an API command"
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    api.runner
        .run(command, principal.identity, request.color, tx);
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        let frame = rx.recv().await?;
        let mut line = serde_json::to_vec(&frame).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::convert::Infallible>(line), rx))
    });
    let mut response = Body::from_stream(lines).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

async fn whoami(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    match api.authenticator.authenticate(&headers).await {
        Ok(p) => json(&WhoAmI {
            issuer: p.identity.issuer,
            subject: p.identity.subject,
            roles: p
                .roles
                .iter()
                .map(|(env, role)| format!("{env}={role}"))
                .collect(),
        }),
        Err(u) => u.into_response(),
    }
}

fn json(value: &impl Serialize) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}
