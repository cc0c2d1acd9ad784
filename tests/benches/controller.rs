//! The controller's targets on the three local clusters, with the real
//! `tidegate controller` process (the debug build next to this bench when
//! run by `make bench-controller`):
//!
//! 1. drift to correction: `kubectl scale` in the wave-1 cluster to the
//!    Deployment restored (`selfHeal: true`), median of 7;
//! 2. new commit to the first apply in wave 1, after the fetch (from the
//!    controller's "new revision" log line to the wave-1 cluster's "sync
//!    finished"), median of 5;
//! 3. memory: RSS with 3 clusters × 1,000 managed objects in the watch
//!    caches, and bytes per cached object (against the same controller with
//!    3 × 2 objects);
//! 4. steady state: the requests other than watches in a quiet period
//!    (`TIDEGATE_BENCH_QUIET_SECS`, default 300).
//!
//! Run: `make bench-controller` (uses the clusters of
//! `TIDEGATE_TEST_KUBECONFIG` when set, otherwise starts its own). Exits
//! non-zero when the steady state sent any request but watches.

#[path = "shared/logs.rs"]
mod logs;

use logs::{median, time_ms};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tidegate_testkit::{Fleet, TestNamespace, shared_fleet};
use tidegate_tests::{GitFixture, configmaps};

const CLUSTERS: [&str; 3] = ["eks-us-east-1", "aks-westeurope", "gke-us-central1"];
const WAIT: Duration = Duration::from_secs(600);

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: app\n          image: {image}\n"
    )
}

/// An environment over the three clusters (one per wave) followed by a
/// controller process.
struct Run {
    fleet: &'static Fleet,
    git: GitFixture,
    _ns: TestNamespace,
    env: String,
    state: tempfile::TempDir,
    child: Child,
}

impl Run {
    fn start(fleet: &'static Fleet, prefix: &str, objects: usize) -> Run {
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        let env = ns.name().to_string();
        let clusters: String = CLUSTERS
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "    - name: {c}\n      provider:\n        kubeconfig:\n          context: {c}\n      wave: {}\n",
                    i + 1
                )
            })
            .collect();
        let mut git = GitFixture::new();
        git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 60s\n    bakeTime: 0s\n  sync:\n    selfHeal: true\n    interval: 1s\n"
            ),
        );
        git.write(
            "manifests/app/web.yaml",
            deployment("registry.example/web:0"),
        );
        git.write("manifests/app/many.yaml", configmaps(objects));
        git.commit("v0");
        let state = tempfile::tempdir().expect("state");
        let log = std::fs::File::create(state.path().join("controller.log")).expect("log");
        let exe = std::env::current_exe().expect("bench path");
        let bin: PathBuf = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target dir")
            .join("tidegate");
        if objects > 100 {
            // Many objects: put them in place with one sync per cluster first
            // (the controller then follows what runs and starts watching).
            for c in CLUSTERS {
                let status = Command::new(&bin)
                    .args(["--repo", &git.path().display().to_string()])
                    .args(["sync", "--env", &env, "--cluster", c])
                    .env("TIDEGATE_ACCESS", "kubeconfig")
                    .env("KUBECONFIG", fleet.kubeconfig())
                    .env("TIDEGATE_AUDIT_DB", state.path().join("audit.db"))
                    .env("XDG_STATE_HOME", state.path())
                    .env("XDG_CACHE_HOME", state.path().join("cache"))
                    .stdout(Stdio::null())
                    .status()
                    .expect("tidegate sync");
                assert!(status.success(), "sync of {c}");
            }
        }
        let child = Command::new(&bin)
            .args(["--repo", &git.path().display().to_string()])
            .args(["--log-format", "json", "controller", "--env", &env])
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .env("KUBECONFIG", fleet.kubeconfig())
            .env("TIDEGATE_AUDIT_DB", state.path().join("audit.db"))
            .env("XDG_STATE_HOME", state.path())
            .env("XDG_CACHE_HOME", state.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (make bench-controller builds it)", bin.display()));
        let run = Run {
            fleet,
            git,
            _ns: ns,
            env,
            state,
            child,
        };
        run.wait_for("watching", 1);
        run
    }

    fn lines(&self, message: &str) -> Vec<serde_json::Value> {
        logs::lines(&self.state.path().join("controller.log"), message)
    }

    fn wait_for(&self, message: &str, count: usize) -> Vec<serde_json::Value> {
        logs::wait_for(
            &self.state.path().join("controller.log"),
            message,
            count,
            WAIT,
        )
    }

    fn kubectl(&self, context: &str, args: &[&str]) -> String {
        self.fleet
            .kubectl(context, args)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }

    fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn counts(line: &serde_json::Value) -> [u64; 4] {
    ["reads", "watches", "dry_runs", "writes"]
        .map(|k| line["fields"][k].as_u64().unwrap_or(u64::MAX))
}

fn drift_to_correction(run: &Run) -> Vec<f64> {
    let get = |run: &Run| {
        run.kubectl(
            CLUSTERS[0],
            &[
                "get",
                "deployment",
                "web",
                "-n",
                &run.env,
                "-o",
                "jsonpath={.spec.replicas}",
            ],
        )
    };
    (0..7)
        .map(|i| {
            let start = Instant::now();
            run.kubectl(
                CLUSTERS[0],
                &[
                    "scale",
                    "deployment",
                    "web",
                    "-n",
                    &run.env,
                    &format!("--replicas={}", 5 + i),
                ],
            );
            while get(run) != "2" {
                assert!(start.elapsed() < WAIT, "drift never corrected");
                std::thread::sleep(Duration::from_millis(20));
            }
            let took = start.elapsed().as_secs_f64() * 1000.0;
            // Let the rollout that corrected it finish before the next one.
            run.wait_for(
                "rollout succeeded: every cluster is Healthy at the revision",
                i + 2,
            );
            took
        })
        .collect()
}

fn commit_to_first_apply(run: &mut Run) -> Vec<f64> {
    const SUCCEEDED: &str = "rollout succeeded: every cluster is Healthy at the revision";
    (1..=5)
        .map(|i| {
            let done = run.lines(SUCCEEDED).len();
            let seen = run.lines("new revision: rolling it out").len();
            run.git.write(
                "manifests/app/web.yaml",
                deployment(&format!("registry.example/web:{i}")),
            );
            run.git.commit(&format!("v{i}"));
            let new = run.wait_for("new revision: rolling it out", seen + 1)[seen].clone();
            let deadline = Instant::now() + WAIT;
            let first = loop {
                let found = run
                    .lines("sync finished")
                    .into_iter()
                    .find(|l| time_ms(l) >= time_ms(&new) && l["span"]["cluster"] == CLUSTERS[0]);
                if let Some(found) = found {
                    break found;
                }
                assert!(Instant::now() < deadline, "wave 1 never applied");
                std::thread::sleep(Duration::from_millis(50));
            };
            run.wait_for(SUCCEEDED, done + 1);
            time_ms(&first) - time_ms(&new)
        })
        .collect()
}

fn main() {
    tidegate_cluster::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let fleet = runtime.block_on(shared_fleet()).expect("local clusters");
    let quiet = std::env::var("TIDEGATE_BENCH_QUIET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300u64);

    // Small: drift and new-commit latency, and the memory baseline.
    let mut small = Run::start(fleet, "bench-ctl-small", 1);
    let small_objects = small.lines("watching")[0]["fields"]["objects"]
        .as_u64()
        .unwrap_or(0);
    let small_rss = small.rss_bytes();
    let drift = drift_to_correction(&small);
    let commit = commit_to_first_apply(&mut small);
    small.stop();
    println!(
        "drift to correction (kubectl scale → restored), ms: {:?}; median {:.0} ms (target < 2000)",
        drift.iter().map(|d| d.round()).collect::<Vec<_>>(),
        median(drift.clone())
    );
    println!(
        "new commit → wave-1 sync finished (after the fetch), ms: {:?}; median {:.0} ms (target < 1000)",
        commit.iter().map(|d| d.round()).collect::<Vec<_>>(),
        median(commit.clone())
    );

    // Large: 3 clusters × 1,000 managed objects.
    let mut large = Run::start(fleet, "bench-ctl-large", 999);
    let watching = large.lines("watching").remove(0);
    let objects = watching["fields"]["objects"].as_u64().unwrap_or(0);
    // The quiet period starts after the start-up drift check of every app.
    let watching = large.wait_for("start-up drift check done", 1).remove(0);
    let rss = large.rss_bytes();
    let per_object = (rss.saturating_sub(small_rss)) as f64 / (objects - small_objects) as f64;
    println!(
        "RSS with {objects} cached objects: {:.1} MiB (target < 150 MiB); with {small_objects}: {:.1} MiB; {per_object:.0} bytes per cached object",
        rss as f64 / 1048576.0,
        small_rss as f64 / 1048576.0
    );
    std::thread::sleep(Duration::from_secs(quiet));
    large.stop();
    let stopped = large
        .lines("controller stopped (requests of the watch caches and drift checks)")
        .pop()
        .expect("final counts");
    let (a, b) = (counts(&watching), counts(&stopped));
    println!(
        "steady state {quiet} s with {objects} objects: reads {}, dry runs {}, writes {}, watch (re)opens {}",
        b[0] - a[0],
        b[2] - a[2],
        b[3] - a[3],
        b[1] - a[1]
    );
    if (b[0] - a[0], b[2] - a[2], b[3] - a[3]) != (0, 0, 0) {
        eprintln!("FAIL: the steady state sent requests other than watches");
        std::process::exit(1);
    }
}
