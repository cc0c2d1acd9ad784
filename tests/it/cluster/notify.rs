//! Notifications from `tidegate controller --notifications FILE` managing
//! the three local clusters, to receivers on 127.0.0.1 (an axum server in
//! the test): a signed JSON webhook that fails at first, a local stub of
//! GitHub's commit status API, and a receiver that is down for good.

use super::controller::{CLUSTERS, Followed, order};
use super::rollout::deployment;
use super::server::{http, sign};
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};
use tidegate_audit::Record;

const KEY: &str = "notification-key-for-tests";
const TOKEN: &str = "gh-token-for-tests";

/// One request the webhook receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Delivery {
    answered: u16,
    event: String,
    id: String,
    signature: String,
    body: Vec<u8>,
}

/// What the receivers got.
#[derive(Clone, Default)]
struct Received {
    hook: Arc<Mutex<Vec<Delivery>>>,
    /// (commit, body) of each commit status the stub accepted.
    statuses: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    /// The webhook answers 500 to this many requests first.
    failing: Arc<AtomicUsize>,
}

impl Received {
    fn accepted(&self) -> Vec<Delivery> {
        let hook = self.hook.lock().expect("lock");
        hook.iter().filter(|d| d.answered == 200).cloned().collect()
    }

    fn delivered(&self, event: &str) -> bool {
        self.accepted().iter().any(|d| d.event == event)
    }

    fn statuses(&self) -> Vec<(String, String, String)> {
        let statuses = self.statuses.lock().expect("lock");
        statuses
            .iter()
            .map(|(sha, body)| {
                (
                    sha.clone(),
                    body["state"].as_str().unwrap_or_default().to_string(),
                    body["context"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

async fn hook(State(r): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let fail = r
        .failing
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let answered = if fail { 500 } else { 200 };
    r.hook.lock().expect("lock").push(Delivery {
        answered,
        event: header("x-tidegate-event"),
        id: header("x-tidegate-delivery"),
        signature: header("x-tidegate-signature-256"),
        body: body.to_vec(),
    });
    StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn status(
    State(r): State<Received>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorized || (owner.as_str(), repo.as_str()) != ("acme", "fleet") {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(body) = serde_json::from_slice(&body) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    r.statuses.lock().expect("lock").push((sha, body));
    StatusCode::CREATED
}

/// Serves the receivers on 127.0.0.1; their address.
async fn receivers(received: Received) -> String {
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/api/v3/repos/{owner}/{repo}/statuses/{sha}", post(status))
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("address").port()
}

/// The audit records that are events of the routes below, in order.
fn expected(f: &Followed) -> Vec<Record> {
    f.records(&["rollout-start", "rollout-end", "rollback", "quarantine"])
}

/// The value of a counter in the OpenMetrics text, 0 when absent.
fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn events_reach_the_receivers_once_in_order_signed_retried_and_a_dead_one_blocks_nothing() {
    let mut f = Followed::new("notify", true, &[]).await;
    let received = Received::default();
    received.failing.store(2, Ordering::SeqCst);
    let address = receivers(received.clone()).await;
    let key = f.state.path().join("hook-key");
    std::fs::write(&key, format!("{KEY}\n")).expect("key");
    let token = f.state.path().join("gh-token");
    std::fs::write(&token, TOKEN).expect("token");
    let down = closed_port();
    let file = f.state.path().join("notifications.yaml");
    std::fs::write(
        &file,
        format!(
            "sinks:\n  hook:\n    type: webhook\n    url: http://{address}/hook\n    secretFrom: {{file: {key}}}\n  gh:\n    type: github-status\n    repository: acme/fleet\n    apiUrl: http://{address}/api/v3\n    tokenFrom: {{file: {token}}}\n  down:\n    type: webhook\n    url: http://127.0.0.1:{down}/hook\n    secretFrom: {{file: {key}}}\nenvironments:\n  {env}:\n    - sink: hook\n      events: [rollout-started, rollout-succeeded, rollout-failed, rollback, quarantine]\n    - sink: gh\n      events: [all]\n    - sink: down\n      events: [rollout-started]\ndelivery:\n  attempts: 4\n  backoff: 100ms\n  maxBackoff: 400ms\n  timeout: 2s\n  poll: 200ms\n",
            key = key.display(),
            token = token.display(),
            env = f.env,
        ),
    )
    .expect("notification file");
    f.args = vec![
        "--notifications".into(),
        file.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    f.start();
    let v1 = f.git.head();
    f.wait_all_at(&v1).await;
    f.wait("rollout-succeeded delivered", |_| {
        received.delivered("rollout-succeeded")
    })
    .await;
    // A revision that never gets ready: rolled back and quarantined.
    f.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:bad", true),
    );
    let bad = f.git.commit("never ready");
    f.wait("rollout-failed delivered", |_| {
        received.delivered("rollout-failed")
    })
    .await;
    f.wait("four commit statuses", |_| received.statuses().len() >= 4)
        .await;
    assert_eq!(
        f.revisions(),
        order().into_iter().map(|c| (c, v1.clone())).collect(),
        "the failed rollout was rolled back everywhere ({CLUSTERS:?})"
    );

    // Each event once, in the audit trail's order, signed.
    let records = expected(&f);
    let accepted = received.accepted();
    let ids: Vec<String> = accepted.iter().map(|d| d.id.clone()).collect();
    let seqs: Vec<String> = records.iter().map(|r| r.seq.to_string()).collect();
    assert_eq!(
        ids, seqs,
        "accepted deliveries = the audited events, in order"
    );
    let events: Vec<&str> = accepted.iter().map(|d| d.event.as_str()).collect();
    assert_eq!(events.first(), Some(&"rollout-started"));
    for wanted in [
        "rollout-succeeded",
        "rollout-failed",
        "rollback",
        "quarantine",
    ] {
        assert!(events.contains(&wanted), "{wanted} in {events:?}");
    }
    for d in &accepted {
        assert_eq!(d.signature, sign(KEY, &d.body), "signature of {}", d.id);
        let body: serde_json::Value = serde_json::from_slice(&d.body).expect("JSON");
        assert_eq!(body["event"], d.event.as_str());
        assert_eq!(body["environment"], f.env.as_str());
        assert_eq!(body["id"], d.id.as_str());
    }
    // The receiver failed twice at first: the first event was retried,
    // then delivered; nothing else was sent twice.
    let all = received.hook.lock().expect("lock").clone();
    let first: Vec<u16> = all
        .iter()
        .filter(|d| d.id == ids[0])
        .map(|d| d.answered)
        .collect();
    assert_eq!(first, [500, 500, 200]);
    assert_eq!(all.len(), accepted.len() + 2);

    // GitHub: pending at each rollout's start, then success or failure.
    let context = format!("tidegate/{}", f.env);
    assert_eq!(
        received.statuses(),
        [
            (v1.clone(), "pending".to_string(), context.clone()),
            (v1.clone(), "success".to_string(), context.clone()),
            (bad.clone(), "pending".to_string(), context.clone()),
            (bad.clone(), "failure".to_string(), context.clone()),
        ]
    );

    // The dead receiver blocked nothing, and its failures are counted.
    let message = "serving /healthz, /readyz, /metrics and webhooks";
    let served = f.log_lines(message)[0]["fields"]["address"]
        .as_str()
        .expect("address")
        .to_string();
    let series =
        "tidegate_notifications_total{sink=\"down\",event=\"rollout-started\",outcome=\"failed\"}";
    f.wait("both failures to the dead receiver counted", |_| {
        counter(&http(&served, "GET", "/metrics", &[], b"").1, series) == 2
    })
    .await;
    let metrics = http(&served, "GET", "/metrics", &[], b"").1;
    assert_eq!(
        counter(
            &metrics,
            "tidegate_notifications_total{sink=\"hook\",event=\"rollout-started\",outcome=\"retried\"}"
        ),
        2
    );
    assert_eq!(
        counter(
            &metrics,
            "tidegate_notifications_total{sink=\"gh\",event=\"rollout-failed\",outcome=\"delivered\"}"
        ),
        1
    );
    let given_up = f.log_lines("notification failed: given up");
    assert_eq!(
        given_up.len(),
        2,
        "one per rollout-started to the dead sink"
    );
    assert!(
        !f.logs().contains(KEY) && !f.logs().contains(TOKEN),
        "no credential in the log"
    );
    assert!(f.stop().success());
}
