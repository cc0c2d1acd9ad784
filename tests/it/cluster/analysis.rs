//! Metric analysis gates (issue 15, item 2) through the `tidegate` binary on
//! the three local clusters, judged by a real Prometheus (Debian's
//! `/usr/bin/prometheus`, started here on 127.0.0.1 with a throw-away
//! configuration and data directory) that scrapes one small exporter per
//! cluster, served from this process. Each exporter's error rate is the
//! `data.errorRate` of the app's ConfigMap `settings` in its cluster, so a
//! release raises the error rate exactly where it is applied — while its
//! pods stay Ready.

use super::{client, configmap_field, fleet, output_text, rollout::deployment, tidegate_command};
use k8s_openapi::api::core::v1::ConfigMap;
use std::{
    net::{Ipv4Addr, TcpListener},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tidegate_audit::{Filter, SqliteStore};
use tidegate_rollout::analysis::Measurement;
use tidegate_testkit::{
    Fleet, TestNamespace,
    http::{Response, StubServer, serve_stub},
};
use tidegate_tests::GitFixture;

const EKS: &str = "eks-us-east-1";
const AKS: &str = "aks-westeurope";
const GKE: &str = "gke-us-central1";
const CLUSTERS: [(&str, u32); 3] = [(EKS, 1), (AKS, 2), (GKE, 2)];
const PROMETHEUS: &str = "/usr/bin/prometheus";
/// Requests per second each exporter counts.
const REQUESTS_PER_SECOND: f64 = 100.0;

/// The error ratio of one cluster over the last 5 s.
const ERROR_RATIO: &str = "sum(rate(http_requests_total{cluster=\\\"{{cluster}}\\\",code=\\\"500\\\"}[5s])) / sum(rate(http_requests_total{cluster=\\\"{{cluster}}\\\"}[5s]))";

/// Debian's prometheus must be installed (`make test-deps` does it).
fn assert_prometheus_installed() {
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: run `make test-deps` (as root on Debian it installs the prometheus package) or `sudo apt-get install prometheus`"
    );
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One exporter per cluster: counters of requests by status code, the
/// errors growing at the cluster's current error rate.
struct Exporters {
    servers: Vec<(String, StubServer)>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
struct Counters {
    rate: f64,
    last: Instant,
    total: f64,
    errors: f64,
}

impl Exporters {
    /// Starts the exporters and a watcher per cluster that reads
    /// `data.errorRate` of ConfigMap `settings` in `namespace` (0.02 while
    /// there is none).
    async fn start(fleet: &'static Fleet, namespace: &str) -> Exporters {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut servers = Vec::new();
        for (cluster, _) in CLUSTERS {
            let counters = Arc::new(Mutex::new(Counters {
                rate: 0.02,
                last: Instant::now(),
                total: 0.0,
                errors: 0.0,
            }));
            let served = counters.clone();
            let server = serve_stub(move |_| {
                let mut c = served.lock().expect("counters");
                let dt = c.last.elapsed().as_secs_f64();
                c.last = Instant::now();
                c.total += REQUESTS_PER_SECOND * dt;
                c.errors += REQUESTS_PER_SECOND * dt * c.rate;
                Response::text(
                    200,
                    format!(
                        "# TYPE http_requests_total counter\nhttp_requests_total{{code=\"200\"}} {}\nhttp_requests_total{{code=\"500\"}} {}\n",
                        c.total - c.errors,
                        c.errors
                    ),
                )
            })
            .expect("exporter");
            let api: kube::Api<ConfigMap> =
                kube::Api::namespaced(client(fleet, cluster).await, namespace);
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(Some(cm)) = api.get_opt("settings").await {
                        let rate = cm
                            .data
                            .and_then(|d| d.get("errorRate").and_then(|r| r.parse::<f64>().ok()));
                        if let (Some(rate), Ok(mut c)) = (rate, counters.lock()) {
                            // Count what went by at the old rate first.
                            let dt = c.last.elapsed().as_secs_f64();
                            c.last = Instant::now();
                            c.total += REQUESTS_PER_SECOND * dt;
                            let old = c.rate;
                            c.errors += REQUESTS_PER_SECOND * dt * old;
                            c.rate = rate;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            });
            servers.push((cluster.to_string(), server));
        }
        Exporters { servers, stop }
    }
}

impl Drop for Exporters {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A Prometheus scraping every exporter each second, labelled by cluster
/// (also used by the controller's metrics test, `cluster::server`).
pub(super) struct Prometheus {
    child: Child,
    pub(super) url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(exporters: &Exporters) -> Prometheus {
        let mut targets = String::new();
        for (cluster, server) in &exporters.servers {
            let host = server.url().trim_start_matches("http://");
            targets.push_str(&format!(
                "      - targets: ['{host}']\n        labels: {{cluster: {cluster}}}\n"
            ));
        }
        let p = Prometheus::launch(&targets);
        // Ready, and every exporter scraped at least twice (rate() needs two samples).
        let deadline = Instant::now() + Duration::from_secs(120);
        let client = tidegate_analysis::Prometheus::new().expect("client");
        let query = "count(count_over_time(http_requests_total{code=\"500\"}[30s]) >= 2)";
        while client.query(&p.url, query).await != Measurement::Value(3.0) {
            assert!(
                Instant::now() < deadline,
                "prometheus did not scrape the exporters in time"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        p
    }

    /// Starts Debian's prometheus on a free loopback port, scraping the
    /// `static_configs` entries `targets` (YAML lines) every second; does
    /// not wait for it.
    pub(super) fn launch(targets: &str) -> Prometheus {
        assert_prometheus_installed();
        let dir = tempfile::tempdir().expect("prometheus dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n{targets}"
            ),
        )
        .expect("prometheus config");
        let port = free_port();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An environment (named after its test namespace) in a fresh repository,
/// the clusters in waves 1 (eks) and 2 (aks, gke).
struct Env {
    fleet: &'static Fleet,
    git: GitFixture,
    ns: TestNamespace,
    home: tempfile::TempDir,
}

impl Env {
    async fn new(prefix: &str) -> Env {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        Env {
            fleet,
            git: GitFixture::new(),
            ns,
            home: tempfile::tempdir().expect("home"),
        }
    }

    fn name(&self) -> &str {
        self.ns.name()
    }

    /// Commits the environment with `rollout` (the `spec.rollout` fields,
    /// indented by 4) and the app: Deployment `web` with `image` and
    /// ConfigMap `settings` with `errorRate`. Returns the SHA.
    fn commit(&mut self, rollout: &str, image: &str, error_rate: &str) -> String {
        let env = self.name().to_string();
        let mut clusters = String::new();
        for (name, wave) in CLUSTERS {
            clusters.push_str(&format!(
                "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      wave: {wave}\n"
            ));
        }
        self.git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: 2\n    progressDeadline: 60s\n    bakeTime: 1s\n{rollout}"
            ),
        );
        self.git
            .write("manifests/app/web.yaml", deployment(image, false));
        self.git.write(
            "manifests/app/settings.yaml",
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  errorRate: \"{error_rate}\"\n"
            ),
        );
        self.git.commit(image)
    }

    fn run(&self, args: &[&str]) -> Output {
        tidegate_command(self.git.path(), self.home.path())
            .env("KUBECONFIG", self.fleet.kubeconfig())
            .args(args)
            .output()
            .expect("tidegate runs")
    }

    fn sync(&self, code: i32) -> Output {
        let out = self.run(&["sync", "--env", self.name()]);
        assert_eq!(out.status.code(), Some(code), "{}", output_text(&out));
        out
    }

    /// A field of the app's inventory in one cluster.
    fn inventory(&self, cluster: &str, field: &str) -> String {
        super::inventory_field(self.fleet, cluster, self.name(), field)
    }

    fn error_rate(&self, cluster: &str) -> String {
        configmap_field(
            self.fleet,
            cluster,
            self.name(),
            "settings",
            "{.data.errorRate}",
        )
    }

    /// The `analysis` audit entries: (cluster, outcome, values, message).
    fn analysis_records(&self) -> Vec<(String, String, String, String)> {
        let store = SqliteStore::open_read_only(&self.home.path().join("audit.db")).expect("audit");
        store
            .records(&Filter {
                environment: Some(self.name().to_string()),
                actions: vec!["analysis".into()],
                ..Filter::default()
            })
            .expect("records")
            .into_iter()
            .map(|r| {
                (
                    r.entry.cluster.unwrap_or_default(),
                    r.entry
                        .outcome
                        .map(|o| o.as_str().to_string())
                        .unwrap_or_default(),
                    r.entry.details.get("values").cloned().unwrap_or_default(),
                    r.entry.message.unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// `spec.rollout` with the cross-cluster error-rate analysis against `url`.
fn cross_cluster(url: &str) -> String {
    format!(
        "    prometheus:\n      url: {url}\n    analyses:\n      - name: error-rate\n        query: \"{ERROR_RATIO}\"\n        successCondition: result <= 1.2 * median(baseline)\n        interval: 2s\n        count: 4\n        failureLimit: 1\n        inconclusiveLimit: 1\n"
    )
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An environment judged by the cross-cluster analysis, its Prometheus and
/// exporters running, and v1 (error rate 0.02 everywhere) rolled out.
/// Returns the environment, what keeps the metrics going, `spec.rollout`
/// and v1's SHA.
async fn rolled_out_v1(prefix: &str) -> (Env, (Exporters, Prometheus), String, String) {
    assert_prometheus_installed();
    let mut env = Env::new(prefix).await;
    let exporters = Exporters::start(env.fleet, env.name()).await;
    let prometheus = Prometheus::start(&exporters).await;
    let rollout = cross_cluster(&prometheus.url);
    let v1 = env.commit(&rollout, "registry.example/web:1", "0.02");
    env.sync(0);
    (env, (exporters, prometheus), rollout, v1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_release_passes_the_cross_cluster_analysis() {
    let (mut env, _metrics, rollout, _) = rolled_out_v1("analysis-good").await;
    let plan = env.run(&["plan", "--env", env.name()]);
    assert!(
        text(&plan).contains("analysis error-rate during each bake: every 2s, 4 measurements per cluster, failureLimit 1, inconclusiveLimit 1; passes when result <= 1.2 * median(baseline)"),
        "{}",
        output_text(&plan)
    );
    let v2 = env.commit(&rollout, "registry.example/web:2", "0.02");
    let out = env.sync(0);
    let shown = text(&out);
    assert!(
        shown.contains(&format!(
            "wave 1 analysis passed (compared with {AKS}, {GKE}):"
        )),
        "{}",
        output_text(&out)
    );
    assert!(
        shown.contains(&format!(
            "analysis error-rate in {EKS}: 4 measurements passed [0.02 vs median 0.02 ok"
        )),
        "{}",
        output_text(&out)
    );
    // The last wave has no cluster left on the old revision: said so.
    assert!(
        shown.contains("wave 2 analysis passed (no cluster left on the old revision):"),
        "{shown}"
    );
    assert!(shown.contains("rollout succeeded"), "{shown}");
    // In the audit trail: each cluster's values; and in `history`.
    let records = env.analysis_records();
    let eks: Vec<_> = records.iter().filter(|r| r.0 == EKS).collect();
    assert_eq!(eks.len(), 2, "{records:?}");
    assert!(
        eks.iter()
            .all(|r| r.1 == "success" && r.2.split(' ').count() == 4),
        "{records:?}"
    );
    let history = env.run(&["history", "--env", env.name()]);
    let history = text(&history);
    assert!(history.contains(&v2[..12]), "{history}");
    assert!(
        history.contains(&format!(
            "wave 1: analysis error-rate in {EKS}: 4 measurements passed"
        )),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_whose_error_rate_rises_only_in_wave_1_is_rolled_back_while_its_pods_are_ready() {
    let (mut env, _metrics, rollout, v1) = rolled_out_v1("analysis-bad").await;
    // v2 errs on 20% of requests: its pods are Ready all the same.
    env.commit(&rollout, "registry.example/web:2", "0.2");
    let out = env.sync(1);
    let shown = text(&out);
    eprintln!("{shown}");
    assert!(
        shown.contains(&format!(
            "rollout FAILED (analysis error-rate failed in cluster {EKS}: 2 of"
        )),
        "{}",
        output_text(&out)
    );
    assert!(shown.contains("wave 1 analysis FAILED"), "{shown}");
    assert!(shown.contains("FAIL"), "{shown}");
    // Wave 1 is back on v1, wave 2 never saw v2.
    for (cluster, _) in CLUSTERS {
        assert_eq!(env.error_rate(cluster), "0.02", "{cluster}\n{shown}");
    }
    for (cluster, _) in CLUSTERS {
        assert_eq!(env.inventory(cluster, "revision"), v1, "{cluster}");
    }
    // The gate failed on the analysis, not on health: wave 1 was Healthy.
    let records = env.analysis_records();
    let failed: Vec<_> = records.iter().filter(|r| r.1 == "failure").collect();
    assert_eq!(failed.len(), 1, "{records:?}");
    assert_eq!(failed[0].0, EKS);
    assert!(
        failed[0].3.contains("measurements failed the condition"),
        "{records:?}"
    );
    let store = SqliteStore::open_read_only(&env.home.path().join("audit.db")).expect("audit");
    let gate = store
        .records(&Filter {
            environment: Some(env.name().to_string()),
            actions: vec!["gate-failed".into()],
            ..Filter::default()
        })
        .expect("records");
    assert_eq!(gate.len(), 1);
    let message = gate[0].entry.message.clone().unwrap_or_default();
    assert!(
        message.contains("analysis error-rate failed in cluster eks-us-east-1"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_prometheus_is_inconclusive_and_fails_the_wave_after_its_limit() {
    let mut env = Env::new("analysis-down").await;
    let v1 = env.commit("", "registry.example/web:1", "0.02");
    env.sync(0);
    // Nothing listens there (per-cluster URLs, this time).
    let down = format!("http://127.0.0.1:{}", free_port());
    let rollout = format!(
        "    prometheus:\n      clusters:\n        {EKS}: {down}\n        {AKS}: {down}\n        {GKE}: {down}\n    analyses:\n      - name: error-rate\n        query: \"{ERROR_RATIO}\"\n        successCondition: result < 0.05\n        interval: 1s\n        count: 5\n        inconclusiveLimit: 1\n"
    );
    env.commit(&rollout, "registry.example/web:2", "0.02");
    let out = env.sync(1);
    let shown = text(&out);
    assert!(
        shown.contains(&format!("rollout FAILED (analysis error-rate failed in cluster {EKS}: 2 of 2 measurements were inconclusive")),
        "{}",
        output_text(&out)
    );
    assert!(shown.contains("unreachable"), "{shown}");
    assert!(
        shown.contains("inconclusive counts as failure after inconclusiveLimit"),
        "{shown}"
    );
    assert_eq!(env.inventory(EKS, "revision"), v1, "wave 1 rolled back");
}
