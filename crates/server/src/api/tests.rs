//! Routing and authorization of the API, with a runner that records what it
//! was asked to run.

use super::*;
use crate::auth::testing::minted;
use axum::body::to_bytes;
use std::sync::Mutex;
use tidegate_auth::TokenSet;
use tower::ServiceExt as _;

/// Accepts `sync|approve|status|audit --env E`, refuses anything with
/// `--kubeconfig`; records what it runs and answers with one line.
#[derive(Default)]
struct Recorder {
    ran: Mutex<Vec<(Vec<String>, Identity)>>,
    starter: Option<Identity>,
}

impl Runner for Recorder {
    fn prepare(&self, args: &[String]) -> Result<Command, String> {
        if args.iter().any(|a| a.starts_with("--kubeconfig")) {
            return Err("--kubeconfig is not accepted through the API".into());
        }
        let action = match args.first().map(String::as_str) {
            Some("sync") => Action::Sync,
            Some("approve") => Action::Approve,
            Some("status") => Action::Status,
            Some("audit") => Action::Read,
            other => return Err(format!("{other:?} is not an API command")),
        };
        let env = args
            .iter()
            .position(|a| a == "--env")
            .and_then(|i| args.get(i + 1))
            .cloned();
        Ok(Command {
            action,
            env,
            args: args.to_vec(),
        })
    }

    fn started_by(&self, _: &Command) -> Result<Option<Identity>, String> {
        Ok(self.starter.clone())
    }

    fn run(&self, command: Command, who: Identity, _color: bool, out: Output) {
        self.ran
            .lock()
            .expect("lock")
            .push((command.args.clone(), who.clone()));
        let _ = out.send(Frame::Stdout(format!(
            "{} as {}\n",
            command.args[0], who.subject
        )));
        let _ = out.send(Frame::Stderr("note\n".into()));
        let _ = out.send(Frame::Exit(3));
    }
}

struct Fixture {
    runner: Arc<Recorder>,
    router: Router,
    tokens: std::collections::BTreeMap<&'static str, String>,
}

fn fixture(starter: Option<Identity>, rule: ApprovalRule) -> Fixture {
    let mut records = Vec::new();
    let mut tokens = std::collections::BTreeMap::new();
    for (name, grants) in [
        ("viewer", &["prod=viewer"][..]),
        ("deployer", &["prod=deployer", "*=viewer"][..]),
        ("alice", &["prod=approver"][..]),
        ("bob", &["prod=approver"][..]),
    ] {
        let (r, t) = minted(name, grants, false);
        records.push(r);
        tokens.insert(name, t);
    }
    let runner = Arc::new(Recorder {
        starter,
        ..Recorder::default()
    });
    let api = Api {
        authenticator: Arc::new(Authenticator::fixed(TokenSet::new(records))),
        runner: runner.clone(),
        approvals: rule,
    };
    Fixture {
        runner,
        router: routes(Arc::new(api)),
        tokens,
    }
}

async fn call(router: &Router, token: Option<&str>, args: &[&str]) -> (StatusCode, String) {
    let mut request = axum::http::Request::post("/api/v1/run");
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = serde_json::json!({ "args": args, "color": false }).to_string();
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body)).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_deployer_runs_a_sync_and_gets_its_output_and_exit_code_as_json_lines() {
    let f = fixture(None, ApprovalRule::new());
    let (status, body) = call(
        &f.router,
        Some(&f.tokens["deployer"]),
        &["sync", "--env", "prod"],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let frames: Vec<Frame> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("frame"))
        .collect();
    assert_eq!(
        frames,
        [
            Frame::Stdout("sync as deployer\n".into()),
            Frame::Stderr("note\n".into()),
            Frame::Exit(3)
        ]
    );
    let ran = f.runner.ran.lock().expect("lock");
    assert_eq!(ran[0].1, Identity::token("deployer"));
}

#[tokio::test]
async fn no_or_a_bad_token_is_401_and_runs_nothing() {
    let f = fixture(None, ApprovalRule::new());
    for token in [None, Some("tgt_0000000000000000_00"), Some("nonsense")] {
        let (status, body) = call(&f.router, token, &["status", "--env", "prod"]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    assert!(f.runner.ran.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_role_too_low_is_403_naming_the_role_and_environment_and_runs_nothing() {
    let f = fixture(None, ApprovalRule::new());
    let (status, body) = call(
        &f.router,
        Some(&f.tokens["viewer"]),
        &["sync", "--env", "prod"],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("may not sync in environment prod") && body.contains("needs role deployer"),
        "{body}"
    );
    // A viewer may read prod, but not another environment.
    let (status, _) = call(
        &f.router,
        Some(&f.tokens["viewer"]),
        &["status", "--env", "prod"],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &f.router,
        Some(&f.tokens["viewer"]),
        &["status", "--env", "dev"],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // `audit log` without --env needs a role on `*`.
    let (status, body) = call(&f.router, Some(&f.tokens["viewer"]), &["audit", "log"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("every environment"), "{body}");
    let (status, _) = call(&f.router, Some(&f.tokens["deployer"]), &["audit", "log"]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(f.runner.ran.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn a_refused_command_line_is_400_with_the_runners_reason() {
    let f = fixture(None, ApprovalRule::new());
    let token = f.tokens["deployer"].clone();
    let (status, body) = call(
        &f.router,
        Some(&token),
        &["sync", "--env", "prod", "--kubeconfig", "/x"],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("--kubeconfig is not accepted"), "{body}");
    let (status, _) = call(&f.router, Some(&token), &["token", "create"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(f.runner.ran.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn an_approval_by_whoever_started_the_rollout_is_refused_unless_allowed() {
    let f = fixture(Some(Identity::token("alice")), ApprovalRule::new());
    let args = ["approve", "--env", "prod", "--wave", "2"];
    let (status, body) = call(&f.router, Some(&f.tokens["alice"]), &args).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("it started this rollout"), "{body}");
    let (status, _) = call(&f.router, Some(&f.tokens["bob"]), &args).await;
    assert_eq!(status, StatusCode::OK);
    // A deployer is not an approver, whoever started the rollout.
    let (status, _) = call(&f.router, Some(&f.tokens["deployer"]), &args).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let allowed = fixture(
        Some(Identity::token("alice")),
        ApprovalRule::new().allow_self_approval_in("prod"),
    );
    let (status, _) = call(&allowed.router, Some(&allowed.tokens["alice"]), &args).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_approval_before_any_rollout_started_is_refused_unless_self_approval_is_allowed() {
    // Nobody started a rollout of the revision: whoever approves now could
    // start it later and so approve their own rollout.
    let f = fixture(None, ApprovalRule::new());
    let args = ["approve", "--env", "prod", "--wave", "2"];
    let (status, body) = call(&f.router, Some(&f.tokens["alice"]), &args).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body.contains("no rollout of that revision has started"),
        "{body}"
    );
    // The role is checked first: a viewer hears it lacks the role.
    let (status, _) = call(&f.router, Some(&f.tokens["viewer"]), &args).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(f.runner.ran.lock().expect("lock").is_empty());
    let allowed = fixture(None, ApprovalRule::new().allow_self_approval_in("prod"));
    let (status, _) = call(&allowed.router, Some(&allowed.tokens["alice"]), &args).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn whoami_names_the_identity_and_roles() {
    let f = fixture(None, ApprovalRule::new());
    let response = f
        .router
        .clone()
        .oneshot(
            axum::http::Request::get("/api/v1/whoami")
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", f.tokens["deployer"]),
                )
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    let who: WhoAmI = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(who.subject, "deployer");
    assert!(
        who.roles.contains(&"prod=deployer".to_string()),
        "{:?}",
        who.roles
    );
}
