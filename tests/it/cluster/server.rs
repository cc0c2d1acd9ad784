//! The controller's HTTP server (`tidegate controller --listen`) on the
//! three local clusters: a real Prometheus (Debian's `/usr/bin/prometheus`,
//! started here on 127.0.0.1) scrapes `/metrics`, and PromQL sees the syncs
//! of a rollout and the drift of a `kubectl scale`; a GitHub-signed push
//! makes the controller roll a new commit out long before its interval,
//! and a push with a bad signature is refused (401).

use super::{
    analysis::Prometheus,
    controller::{inventory_revisions, json_log_lines},
    fleet,
    rollout::deployment,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tidegate_rollout::analysis::Measurement;
use tidegate_testkit::{Fleet, TestNamespace};
use tidegate_tests::GitFixture;

pub(super) const CLUSTERS: [&str; 3] = ["eks-us-east-1", "aks-westeurope", "gke-us-central1"];
/// Generous bound for anything the clusters and the controller do; never a
/// performance check.
pub(super) const WAIT: Duration = Duration::from_secs(150);
const SECRET: &str = "webhook-secret-for-tests";

/// An environment over the three clusters and a controller serving HTTP.
pub(super) struct Served {
    pub(super) fleet: &'static Fleet,
    pub(super) git: GitFixture,
    _ns: TestNamespace,
    pub(super) env: String,
    pub(super) state: tempfile::TempDir,
    controller: Option<Child>,
}

impl Served {
    /// Commits the environment (fetched every `interval`, `selfHeal: false`)
    /// with the Deployment `web` at image `web:1`.
    pub(super) async fn new(prefix: &str, interval: &str) -> Served {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        let env = ns.name().to_string();
        let mut clusters = String::new();
        for (wave, name) in CLUSTERS.iter().enumerate() {
            clusters.push_str(&format!(
                "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      wave: {}\n",
                wave + 1
            ));
        }
        let mut git = GitFixture::new();
        git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: 3\n    maxUnavailable: 0\n    progressDeadline: 20s\n    bakeTime: 1s\n    failurePolicy: rollback\n  sync:\n    selfHeal: false\n    interval: {interval}\n"
            ),
        );
        git.write(
            "manifests/app/web.yaml",
            deployment("registry.example/web:1", false),
        );
        git.commit("v1");
        Served {
            fleet,
            git,
            _ns: ns,
            env,
            state: tempfile::tempdir().expect("state"),
            controller: None,
        }
    }

    fn log(&self) -> PathBuf {
        self.state.path().join("controller.log")
    }

    pub(super) fn logs(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// The JSON log lines whose message is `message`.
    fn log_lines(&self, message: &str) -> Vec<serde_json::Value> {
        json_log_lines(&self.logs(), message)
    }

    /// Starts `tidegate controller --env E --listen 127.0.0.1:0` with the
    /// GitHub webhook secret in its environment; returns the address it serves on.
    pub(super) async fn start(&mut self) -> String {
        let log = std::fs::File::create(self.log()).expect("log file");
        let child = Command::new(super::tidegate_bin())
            .args(["--repo", &self.git.path().display().to_string()])
            .args(["--log-format", "json", "controller", "--env", &self.env])
            .args(["--listen", "127.0.0.1:0"])
            // The page tests read /fleet with Chromium, which sends no token.
            .arg("--fleet-page-anonymous")
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .env("KUBECONFIG", self.fleet.kubeconfig())
            .env("TIDEGATE_AUDIT_DB", self.state.path().join("audit.db"))
            .env("XDG_STATE_HOME", self.state.path())
            .env("XDG_CACHE_HOME", self.state.path().join("cache"))
            .env("TIDEGATE_WEBHOOK_GITHUB_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tidegate controller");
        self.controller = Some(child);
        let message = "serving /healthz, /readyz, /metrics and webhooks";
        self.wait(message, |s| !s.log_lines(message).is_empty())
            .await;
        let line = &self.log_lines(message)[0];
        line["fields"]["address"]
            .as_str()
            .expect("the address served")
            .to_string()
    }

    /// The revision each cluster's inventory records as applied.
    pub(super) fn revisions(&self) -> BTreeMap<String, String> {
        inventory_revisions(self.fleet, &self.env, &CLUSTERS)
    }

    pub(super) fn all_at(&self, sha: &str) -> bool {
        self.revisions().values().all(|r| r == sha)
    }

    /// Waits until `done` holds, showing the controller's log if it never does.
    pub(super) async fn wait(&self, what: &str, mut done: impl FnMut(&Served) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}\n--- controller log\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.controller.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// One HTTP/1.1 request to `address`; the status code and body.
pub(crate) use tidegate_tests::http_request as http;

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// A PromQL query's single value (or what Prometheus answered instead).
async fn promql(prometheus: &Prometheus, query: &str) -> Measurement {
    tidegate_analysis::Prometheus::new()
        .expect("client")
        .query(&prometheus.url, query)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_sees_the_syncs_of_a_rollout_and_the_drift_of_a_kubectl_scale() {
    let mut s = Served::new("srv-metrics", "2s").await;
    let address = s.start().await;
    let v1 = s.git.head();
    s.wait("every cluster at v1", |s| s.all_at(&v1)).await;
    let prometheus = Prometheus::launch(&format!("      - targets: ['{address}']\n"));
    let env = s.env.clone();

    // One successful sync per cluster.
    let syncs = format!("sum(tidegate_sync_total{{env=\"{env}\",result=\"succeeded\"}})");
    let deadline = Instant::now() + WAIT;
    loop {
        let m = promql(&prometheus, &syncs).await;
        if m == Measurement::Value(3.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{syncs} = {m:?}\n{}", s.logs());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let eks = CLUSTERS[0];
    let drift = format!("tidegate_drift_objects{{env=\"{env}\",cluster=\"{eks}\",app=\"app\"}}");
    assert_eq!(promql(&prometheus, &drift).await, Measurement::Value(0.0));
    assert_eq!(
        promql(&prometheus, &format!("tidegate_last_applied_revision_info{{env=\"{env}\",cluster=\"{eks}\",revision=\"{v1}\"}}")).await,
        Measurement::Value(1.0)
    );
    assert_eq!(
        promql(&prometheus, "tidegate_leader").await,
        Measurement::Value(1.0)
    );
    // API server answers are counted with their status code: the rollout's
    // writes were answered 200/201, every series has a `code`.
    let written = format!(
        "sum(tidegate_api_requests_total{{cluster=\"{eks}\",verb=\"write\",code=~\"200|201\"}})"
    );
    match promql(&prometheus, &written).await {
        Measurement::Value(n) if n > 0.0 => {}
        other => panic!("{written} = {other:?}\n{}", s.logs()),
    }
    let without_code =
        "count(tidegate_api_requests_total) - count(tidegate_api_requests_total{code=~\".+\"})";
    assert_eq!(
        promql(&prometheus, without_code).await,
        Measurement::Value(0.0)
    );

    // A `kubectl scale` is drift of one object (selfHeal is off: left as it is).
    s.fleet
        .kubectl(
            eks,
            &["scale", "deployment", "web", "-n", &env, "--replicas=5"],
        )
        .expect("kubectl scale");
    let deadline = Instant::now() + WAIT;
    loop {
        let m = promql(&prometheus, &drift).await;
        if m == Measurement::Value(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{drift} = {m:?}\n{}", s.logs());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The other clusters have none, and no rollout ran for it.
    let others = format!("sum(tidegate_drift_objects{{env=\"{env}\",cluster!=\"{eks}\"}})");
    assert_eq!(promql(&prometheus, &others).await, Measurement::Value(0.0));
    assert_eq!(promql(&prometheus, &syncs).await, Measurement::Value(3.0));
    let (status, body) = http(&address, "GET", "/readyz", &[], b"");
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    assert_eq!(http(&address, "GET", "/healthz", &[], b"").0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_github_push_rolls_a_new_commit_out_before_the_interval_and_a_bad_signature_does_not()
 {
    // Fetched every hour: only a webhook can make it fetch within the test.
    let mut s = Served::new("srv-hook", "1h").await;
    let address = s.start().await;
    let v1 = s.git.head();
    s.wait("every cluster at v1", |s| s.all_at(&v1)).await;

    s.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    let v2 = s.git.commit("v2");
    let push = serde_json::json!({
        "ref": "refs/heads/main",
        "after": v2,
        "repository": {"clone_url": s.git.path().display().to_string(), "default_branch": "main"}
    })
    .to_string()
    .into_bytes();
    let headers = |signature: String, delivery: &str| {
        vec![
            ("X-GitHub-Event", "push".to_string()),
            ("X-GitHub-Delivery", delivery.to_string()),
            ("Content-Type", "application/json".to_string()),
            ("X-Hub-Signature-256", signature),
        ]
    };
    // A bad signature: 401, nothing fetched.
    let (status, _) = http(
        &address,
        "POST",
        "/webhooks/github",
        &headers(sign("not-the-secret", &push), "delivery-1"),
        &push,
    );
    assert_eq!(status, 401);
    assert!(s.log_lines("fetch asked for").is_empty(), "{}", s.logs());
    assert!(s.all_at(&v1));

    // A good one: the new commit rolls out now, not in an hour.
    let (status, body) = http(
        &address,
        "POST",
        "/webhooks/github",
        &headers(sign(SECRET, &push), "delivery-2"),
        &push,
    );
    assert_eq!(status, 202, "{body}");
    s.wait("every cluster at v2", |s| s.all_at(&v2)).await;
    s.wait("the rollout done", |s| {
        s.log_lines("rollout succeeded: every cluster is Healthy at the revision")
            .len()
            >= 2
    })
    .await;
    // Exactly one fetch was asked for: the signed push's.
    assert_eq!(s.log_lines("fetch asked for").len(), 1, "{}", s.logs());
}
