//! The router, driven with tower's `oneshot`: probes, metrics and every
//! webhook check.

use super::*;
use axum::{body::Body, http::Request};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use sha2::Sha256;
use tidegate_controller::TriggerReceiver;
use tower::ServiceExt;

const CONFIG: &str = "https://github.com/acme/config.git";
const APPS: &str = "https://github.com/acme/apps.git";

/// A server whose configuration repository is CONFIG (HEAD), with `prod`
/// following APPS at `main`, and every webhook configured.
fn server() -> (Server, Arc<Monitor>, TriggerReceiver) {
    let monitor = Arc::new(Monitor::new(Some((CONFIG.into(), "HEAD".into()))));
    monitor.observe(Event::Following {
        environment: "prod".into(),
        repo_url: APPS.into(),
        git_ref: "main".into(),
    });
    let (trigger, receiver) = Trigger::new();
    let secrets = WebhookSecrets {
        github: Some(Secret::new("gh-secret")),
        gitlab: Some(Secret::new("gl-token")),
        bitbucket: Some(Secret::new("bb-secret")),
        bearer: Some(Secret::new("bearer-token")),
    };
    (
        Server::new(monitor.clone(), trigger, secrets),
        monitor,
        receiver,
    )
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn github_push(r: &str) -> Vec<u8> {
    serde_json::json!({
        "ref": r,
        "after": "1111111111111111111111111111111111111111",
        "repository": {"clone_url": APPS, "ssh_url": "git@github.com:acme/apps.git", "default_branch": "main"}
    })
    .to_string()
    .into_bytes()
}

async fn send(server: &Server, request: Request<Body>) -> (StatusCode, String) {
    let response = server.router().oneshot(request).await.expect("a response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn github(body: Vec<u8>, signature: Option<&str>, delivery: &str) -> Request<Body> {
    let mut r = Request::post("/webhooks/github")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("content-type", "application/json");
    if let Some(s) = signature {
        r = r.header("x-hub-signature-256", s);
    }
    r.body(Body::from(body)).expect("a request")
}

#[tokio::test]
async fn healthz_answers_and_readyz_waits_for_git_audit_and_leadership() {
    let (server, monitor, _r) = server();
    let get = |path: &str| Request::get(path).body(Body::empty()).expect("a request");
    assert_eq!(send(&server, get("/healthz")).await.0, StatusCode::OK);
    let (status, body) = send(&server, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("audit: the audit store is not open yet"),
        "{body}"
    );
    assert!(body.contains("leader: not known yet"), "{body}");
    monitor.observe(Event::Audit { open: true });
    monitor.observe(Event::Leading(true));
    let (status, body) = send(&server, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "not ready:\n- git: no environment's source was fetched yet\n"
    );
    // A failed fetch is not a fetch.
    monitor.observe(Event::Fetched {
        environment: "prod".into(),
        duration: std::time::Duration::from_millis(5),
        ok: false,
    });
    assert_eq!(
        send(&server, get("/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    monitor.observe(Event::Fetched {
        environment: "prod".into(),
        duration: std::time::Duration::from_millis(5),
        ok: true,
    });
    assert_eq!(
        send(&server, get("/readyz")).await,
        (StatusCode::OK, "ready\n".into())
    );
    // A standby is ready without fetching.
    let (standby, monitor, _r) = self::server();
    monitor.observe(Event::Audit { open: true });
    monitor.observe(Event::Leading(false));
    assert_eq!(send(&standby, get("/readyz")).await.0, StatusCode::OK);
    // The metrics are OpenMetrics text.
    let response = server
        .router()
        .oneshot(get("/metrics"))
        .await
        .expect("metrics");
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text")
    );
    let (_, text) = send(&server, get("/metrics")).await;
    assert!(text.contains("tidegate_leader 1"), "{text}");
    assert!(
        text.contains("tidegate_git_fetch_duration_seconds_count{env=\"prod\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_signed_github_push_to_the_followed_branch_triggers_a_fetch_once() {
    let (server, _, mut fetches) = server();
    let body = github_push("refs/heads/main");
    let signature = sign("gh-secret", &body);
    let (status, text) = send(&server, github(body.clone(), Some(&signature), "d-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_eq!(fetches.drain(), [Some("prod".to_string())]);
    // The same delivery again: ignored.
    let (status, text) = send(&server, github(body, Some(&signature), "d-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("delivery already handled"), "{text}");
    assert!(fetches.drain().is_empty());
}

#[tokio::test]
async fn bad_or_missing_signatures_are_401_and_trigger_nothing() {
    let (server, _, mut fetches) = server();
    let body = github_push("refs/heads/main");
    let wrong = sign("not-the-secret", &body);
    let (status, _) = send(&server, github(body.clone(), Some(&wrong), "d-1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&server, github(body.clone(), None, "d-2")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A signature of another body.
    let other = sign("gh-secret", b"{}");
    let (status, _) = send(&server, github(body.clone(), Some(&other), "d-3")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(fetches.drain().is_empty());
    // A refused delivery id is not remembered: the genuine delivery still works.
    let good = sign("gh-secret", &body);
    let (status, _) = send(&server, github(body, Some(&good), "d-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(fetches.drain().len(), 1);
}

#[tokio::test]
async fn oversized_bodies_are_413_and_other_branches_or_repositories_are_ignored() {
    let (server, _, mut fetches) = server();
    let mut big = github_push("refs/heads/main");
    big.resize(MAX_BODY + 1, b' ');
    let signature = sign("gh-secret", &big);
    let (status, _) = send(&server, github(big, Some(&signature), "d-1")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body = github_push("refs/heads/feature");
    let signature = sign("gh-secret", &body);
    let (status, text) = send(&server, github(body, Some(&signature), "d-2")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("no environment follows"), "{text}");
    let body = serde_json::json!({"ref": "refs/heads/main", "repository": {"clone_url": "https://github.com/other/apps.git"}}).to_string().into_bytes();
    let signature = sign("gh-secret", &body);
    assert_eq!(
        send(&server, github(body, Some(&signature), "d-3")).await.0,
        StatusCode::OK
    );
    // Not a push.
    let body = b"{\"zen\": \"hi\"}".to_vec();
    let signature = sign("gh-secret", &body);
    let request = Request::post("/webhooks/github")
        .header("x-github-event", "ping")
        .header("x-hub-signature-256", signature)
        .body(Body::from(body))
        .expect("a request");
    assert_eq!(send(&server, request).await.0, StatusCode::OK);
    assert!(fetches.drain().is_empty());
    // A push to the configuration repository's default branch: every environment.
    let body = serde_json::json!({"ref": "refs/heads/main", "repository": {"clone_url": CONFIG, "default_branch": "main"}}).to_string().into_bytes();
    let signature = sign("gh-secret", &body);
    assert_eq!(
        send(&server, github(body, Some(&signature), "d-4")).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(fetches.drain(), [None]);
}

#[tokio::test]
async fn gitlab_bitbucket_and_generic_endpoints_check_their_secrets() {
    let (server, monitor, mut fetches) = server();
    monitor.observe(Event::Following {
        environment: "bb".into(),
        repo_url: "git@bitbucket.org:acme/apps.git".into(),
        git_ref: "main".into(),
    });
    let gitlab = serde_json::json!({"ref": "refs/heads/main", "after": "2222222222222222222222222222222222222222", "project": {"git_http_url": APPS}}).to_string();
    let gl = |token: &str| {
        Request::post("/webhooks/gitlab")
            .header("x-gitlab-event", "Push Hook")
            .header("x-gitlab-token", token)
            .body(Body::from(gitlab.clone()))
            .expect("a request")
    };
    assert_eq!(send(&server, gl("wrong")).await.0, StatusCode::UNAUTHORIZED);
    assert!(fetches.drain().is_empty());
    assert_eq!(send(&server, gl("gl-token")).await.0, StatusCode::ACCEPTED);
    assert_eq!(fetches.drain(), [Some("prod".to_string())]);

    let bitbucket = serde_json::json!({"repository": {"full_name": "acme/apps"}, "push": {"changes": [{"new": {"type": "branch", "name": "main"}}]}}).to_string();
    let bb = |signature: String| {
        Request::post("/webhooks/bitbucket")
            .header("x-event-key", "repo:push")
            .header("x-hub-signature", signature)
            .body(Body::from(bitbucket.clone()))
            .expect("a request")
    };
    assert_eq!(
        send(&server, bb(sign("gh-secret", bitbucket.as_bytes())))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert!(fetches.drain().is_empty());
    assert_eq!(
        send(&server, bb(sign("bb-secret", bitbucket.as_bytes())))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    assert_eq!(fetches.drain(), [Some("bb".to_string())]);

    let generic = |auth: &str, body: &str| {
        Request::post("/webhooks/generic")
            .header("authorization", auth)
            .body(Body::from(body.to_string()))
            .expect("a request")
    };
    assert_eq!(
        send(&server, generic("Bearer nope", "")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(fetches.drain().is_empty());
    assert_eq!(
        send(&server, generic("Bearer bearer-token", "")).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(fetches.drain(), [None]);
    let body = format!("{{\"repository\": \"{APPS}\", \"ref\": \"refs/heads/main\"}}");
    assert_eq!(
        send(&server, generic("Bearer bearer-token", &body)).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(fetches.drain(), [Some("prod".to_string())]);
    assert_eq!(
        send(&server, generic("Bearer bearer-token", "not json"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn an_endpoint_without_a_secret_is_off() {
    let monitor = Arc::new(Monitor::new(None));
    let (trigger, mut fetches) = Trigger::new();
    let server = Server::new(monitor, trigger, WebhookSecrets::default());
    let body = github_push("refs/heads/main");
    let signature = sign("", &body);
    assert_eq!(
        send(&server, github(body, Some(&signature), "d-1")).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(fetches.drain().is_empty());
    assert_eq!(
        format!("{:?}", Secret::new("hunter2")),
        "Secret(<redacted>)"
    );
}
