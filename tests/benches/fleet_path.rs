//! The fleet path at N local clusters × 200 objects (10 when the machine
//! holds it: `tidegate-testkit up --clusters 10`): what a fleet rollout of a
//! one-object change costs each cluster in requests, and how long a
//! one-object rollout, a no-op `sync --env` and `diff --env` take.
//!
//! - In process, with the fleet driver of this build (requests counted by
//!   each engine's request counter, as `RolloutReport::requests`): fresh
//!   engines (as every CLI run: the dry-run cache starts empty) and engines
//!   whose dry-run answers are kept across rollouts
//!   (`DriverOptions::dry_run_caches`, as a long-running controller).
//! - Through the `tidegate` binary of this build and, when
//!   `TIDEGATE_BASELINE_BIN` names one (a build of main), through that one
//!   in the same run, last (its syncs rewrite the objects without the
//!   environment label this build adds, so one unmeasured sync converges
//!   them first). Requests of the baseline are not visible from outside;
//!   the issue measured ~28,000 for a one-ConfigMap change at 10 clusters.
//!
//! Per in-process run it prints each cluster's requests by verb and
//! resource (every client made through the factory, medians over runs and
//! clusters), and for `diff --env` the requests the binary reports in
//! `diff -o json`.
//!
//! Run: `make bench-fleet-path` (`TIDEGATE_BENCH_KUBECONFIG` or
//! `TIDEGATE_TEST_KUBECONFIG`: running clusters to use, otherwise 3 are
//! started). Prints medians of `RUNS` runs.

use futures::future::BoxFuture;
use std::sync::Mutex;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};
use tidegate_cluster::{
    ClientFactory, ClusterError, KubeconfigFactory, RequestCounter, RequestCounts,
};
use tidegate_core::environment::Cluster;
use tidegate_fleet::{Approvals, Driver, DriverOptions, Outcome, Revisions, RolloutReport};
use tidegate_sync::DryRunCache;
use tidegate_testkit::{Fleet, TestNamespace, shared_fleet};
use tidegate_tests::{GitFixture, workspace_root};

#[path = "shared/mod.rs"]
mod shared;

const OBJECTS: usize = 200;
const RUNS: usize = 3;

struct NoRollback;

impl Revisions for NoRollback {
    fn render<'a>(
        &'a self,
        revision: &'a str,
    ) -> BoxFuture<
        'a,
        Result<std::sync::Arc<tidegate_fleet::RevisionRendering>, tidegate_fleet::RevisionError>,
    > {
        // Never asked: the benchmark's rollouts succeed.
        Box::pin(async move {
            Err(tidegate_fleet::RevisionError::Invalid {
                revision: revision.to_string(),
                problems: tidegate_core::Diagnostics::default(),
            })
        })
    }
}

/// A kubeconfig factory that keeps every request counter it was handed,
/// by cluster: the per-cluster breakdown covers every client made for a
/// rollout (engines, and anything else connecting through the factory).
struct CountingFactory {
    inner: KubeconfigFactory,
    counters: Mutex<Vec<(String, RequestCounter)>>,
}

impl ClientFactory for CountingFactory {
    async fn client(
        &self,
        cluster: &Cluster,
        counter: &RequestCounter,
    ) -> Result<kube::Client, ClusterError> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((cluster.name.clone(), counter.clone()));
        self.inner.client(cluster, counter).await
    }
}

impl CountingFactory {
    /// Per cluster: requests by verb and resource.
    fn breakdowns(&self) -> Vec<BTreeMap<String, u64>> {
        let mut by: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (cluster, counter) in self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let entry = by.entry(cluster.clone()).or_default();
            for (what, n) in counter.breakdown() {
                *entry.entry(what).or_default() += n;
            }
        }
        by.into_values().collect()
    }
}

struct NoApprovals;

impl Approvals for NoApprovals {
    fn approved(&self, _wave: u32) -> BoxFuture<'_, Result<bool, tidegate_fleet::ApprovalError>> {
        Box::pin(async { Ok(false) })
    }
}

fn manifests(count: usize, change: usize) -> String {
    let mut out = String::new();
    for i in 0..count {
        match i % 3 {
            0 => out.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  LOG_LEVEL: info\n  CHANGE: \"{}\"\n",
                if i == 0 { change } else { 0 }
            )),
            1 => out.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\nspec:\n  selector:\n    app: dep-{i}\n  ports:\n    - port: 80\n"
            )),
            _ => out.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dep-{i}\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      app: dep-{i}\n  template:\n    metadata:\n      labels:\n        app: dep-{i}\n    spec:\n      containers:\n        - name: app\n          image: registry.example/app:1\n"
            )),
        }
    }
    out
}

fn environment(env: &str, contexts: &[&str]) -> String {
    let clusters: String = contexts
        .iter()
        .map(|c| {
            format!(
                "    - name: {c}\n      provider:\n        kubeconfig:\n          context: {c}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: bench\n      namespace: {env}\n  rollout:\n    maxSurge: 25%\n    maxUnavailable: 0\n    progressDeadline: 300s\n    bakeTime: 0s\n"
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The runs of one measured operation.
#[derive(Default)]
struct Runs {
    times: Vec<Duration>,
    /// Per run, the requests of every cluster.
    requests: Vec<Vec<RequestCounts>>,
    /// Per run and cluster, every request by verb and resource.
    breakdowns: Vec<BTreeMap<String, u64>>,
}

impl Runs {
    fn push(&mut self, time: Duration, report: Option<&RolloutReport>) {
        self.times.push(time);
        if let Some(r) = report {
            self.requests.push(r.requests.values().copied().collect());
        }
    }

    fn push_counted(
        &mut self,
        (time, report, breakdowns): (Duration, RolloutReport, Vec<BTreeMap<String, u64>>),
    ) {
        self.push(time, Some(&report));
        self.breakdowns.extend(breakdowns);
    }

    /// Median per cluster of every verb/resource, and of their sum.
    fn breakdown(&self) -> String {
        if self.breakdowns.is_empty() {
            return String::new();
        }
        let med = |mut v: Vec<u64>| {
            v.sort_unstable();
            v.get(v.len() / 2).copied().unwrap_or(0)
        };
        let kinds: std::collections::BTreeSet<&String> =
            self.breakdowns.iter().flat_map(|b| b.keys()).collect();
        let total = med(self.breakdowns.iter().map(|b| b.values().sum()).collect());
        let watches = med(self
            .breakdowns
            .iter()
            .map(|b| {
                b.iter()
                    .filter(|(k, _)| k.starts_with("watch "))
                    .map(|(_, n)| n)
                    .sum()
            })
            .collect());
        let mut out = format!(
            "\n{:<52} every client of the factory, per cluster: {total} requests median ({watches} watches); by verb and resource (median):",
            ""
        );
        for k in kinds {
            let m = med(self
                .breakdowns
                .iter()
                .map(|b| b.get(k).copied().unwrap_or(0))
                .collect());
            if m > 0 {
                out.push_str(&format!("\n{:<56} {m:>4}  {k}", ""));
            }
        }
        out
    }

    fn line(&self, what: &str) -> String {
        let mut out = format!(
            "{what:<52} {:>8.0} ms  runs {:?}",
            ms(median(self.times.clone())),
            self.times
                .iter()
                .map(|d| ms(*d).round() as u64)
                .collect::<Vec<_>>()
        );
        if !self.requests.is_empty() {
            let per_cluster = |f: fn(&RequestCounts) -> u64| {
                let mut all: Vec<u64> = self.requests.iter().flatten().map(f).collect();
                all.sort_unstable();
                (
                    all.get(all.len() / 2).copied().unwrap_or(0),
                    all.last().copied().unwrap_or(0),
                )
            };
            let total = per_cluster(|r| r.reads + r.dry_runs + r.writes);
            let (reads, dry, writes) = (
                per_cluster(|r| r.reads),
                per_cluster(|r| r.dry_runs),
                per_cluster(|r| r.writes),
            );
            out.push_str(&format!(
                "\n{:<52} per cluster: {} requests median (max {}): {} reads, {} dry runs, {} writes (medians)",
                "", total.0, total.1, reads.0, dry.0, writes.0
            ));
        }
        out.push_str(&self.breakdown());
        out
    }
}

struct Bench {
    fleet: &'static Fleet,
    git: GitFixture,
    env: String,
    home: tempfile::TempDir,
    change: usize,
}

impl Bench {
    fn commit_change(&mut self) {
        self.change += 1;
        self.git.write(
            "manifests/bench/objects.yaml",
            manifests(OBJECTS, self.change),
        );
        self.git.commit(&format!("change {}", self.change));
    }

    async fn drive(&self, options: DriverOptions) -> (Duration, RolloutReport) {
        let (t, r, _) = self.drive_counted(options).await;
        (t, r)
    }

    async fn drive_counted(
        &self,
        options: DriverOptions,
    ) -> (Duration, RolloutReport, Vec<BTreeMap<String, u64>>) {
        let factory = CountingFactory {
            inner: KubeconfigFactory {
                force: false,
                file: Some(self.fleet.kubeconfig().to_path_buf()),
            },
            counters: Mutex::new(Vec::new()),
        };
        let start = Instant::now();
        let (desired, rendered) = shared::load(&self.git, &self.env);
        let driver = Driver {
            factory: &factory,
            environment: &desired.environment,
            rendered: &rendered,
            revision: &desired.commit.sha,
            revisions: &NoRollback,
            approvals: &NoApprovals,
            audit: None,
            check: None,
            journal: None,
            options,
        };
        let report = driver.run(&|_| {}).await.expect("rollout");
        assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
        (start.elapsed(), report, factory.breakdowns())
    }

    /// Runs `tidegate <args>` (this build's, or `bin`); its wall time.
    fn cli(&self, bin: &Path, args: &[&str], ok: &[i32]) -> Duration {
        self.cli_output(bin, args, ok).0
    }

    /// Runs `tidegate <args>`; its wall time and standard output.
    fn cli_output(&self, bin: &Path, args: &[&str], ok: &[i32]) -> (Duration, String) {
        let start = Instant::now();
        let out = Command::new(bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("XDG_STATE_HOME", self.home.path().join("state"))
            .env("TIDEGATE_AUDIT_DB", self.home.path().join("audit.db"))
            .env("KUBECONFIG", self.fleet.kubeconfig())
            .arg("--repo")
            .arg(self.git.path())
            .args(["--color", "never"])
            .args(args)
            .output()
            .expect("run tidegate");
        let took = start.elapsed();
        let code = out.status.code().unwrap_or(-1);
        assert!(
            ok.contains(&code),
            "{} {args:?} exited {code}:\n{}\n{}",
            bin.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (took, String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// One-object rollout, no-op sync and diff through a `tidegate` binary.
    fn cli_runs(&mut self, bin: &Path) -> (Runs, Runs, Runs) {
        let (mut change, mut noop, mut diff) = (Runs::default(), Runs::default(), Runs::default());
        let env = self.env.clone();
        for _ in 0..RUNS {
            self.commit_change();
            change.push(self.cli(bin, &["sync", "--env", &env], &[0]), None);
            noop.push(self.cli(bin, &["sync", "--env", &env], &[0]), None);
            let (took, out) = self.cli_output(bin, &["diff", "--env", &env, "-o", "json"], &[0]);
            diff.push(took, None);
            // This build reports each cluster's requests (`diff -o json`).
            if let Ok(serde_json::Value::Array(clusters)) = serde_json::from_str(&out) {
                let counted: Vec<RequestCounts> = clusters
                    .iter()
                    .filter_map(|c| {
                        let r = c.get("requests")?;
                        Some(RequestCounts {
                            reads: r["reads"].as_u64()?,
                            dry_runs: r["dryRuns"].as_u64()?,
                            writes: r["writes"].as_u64()?,
                            watches: 0,
                            answers: Default::default(),
                        })
                    })
                    .collect();
                if !counted.is_empty() {
                    diff.requests.push(counted);
                }
            }
        }
        (change, noop, diff)
    }
}

#[tokio::main]
async fn main() {
    tidegate_cluster::install_crypto_provider();
    let fleet: &'static Fleet = match std::env::var_os("TIDEGATE_BENCH_KUBECONFIG") {
        Some(k) => Box::leak(Box::new(Fleet::attach(Path::new(&k)).expect("attach"))),
        None => shared_fleet().await.expect("local clusters"),
    };
    let contexts = fleet.contexts();
    let ns = TestNamespace::create(fleet, "bench-fleet").expect("namespace");
    let env = ns.name().to_string();
    let git = GitFixture::new();
    git.write(
        &format!("environments/{env}.yaml"),
        environment(&env, &contexts),
    );
    let mut bench = Bench {
        fleet,
        git,
        env,
        home: tempfile::tempdir().expect("home"),
        change: 0,
    };
    bench.commit_change();
    let bin = std::env::var_os("TIDEGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/tidegate"));
    assert!(
        bin.exists(),
        "{} is missing: cargo build -p tidegate-cli",
        bin.display()
    );
    println!(
        "fleet path: {} clusters × {OBJECTS} objects (ConfigMaps, Services, Deployments), waves of 25%, bakeTime 0s; {RUNS} runs, medians",
        contexts.len()
    );

    // First deploy, then wait for the Deployments' status to settle.
    bench.drive(DriverOptions::default()).await;
    let options = || DriverOptions {
        poll: Duration::from_millis(500),
        ..DriverOptions::default()
    };
    bench.drive(options()).await;

    // In process: fresh engines (the CLI's case) and kept dry-run answers.
    let caches: BTreeMap<String, DryRunCache> = contexts
        .iter()
        .map(|c| (c.to_string(), DryRunCache::new()))
        .collect();
    let kept = || DriverOptions {
        dry_run_caches: caches.clone(),
        ..options()
    };
    bench.drive(kept()).await; // fills the caches
    let (mut change, mut change_kept, mut noop, mut noop_kept) = (
        Runs::default(),
        Runs::default(),
        Runs::default(),
        Runs::default(),
    );
    for _ in 0..RUNS {
        bench.commit_change();
        change.push_counted(bench.drive_counted(options()).await);
        let counted = bench.drive_counted(options()).await;
        assert!(counted.1.nothing_to_do, "{:?}", counted.1);
        noop.push_counted(counted);
        bench.commit_change();
        change_kept.push_counted(bench.drive_counted(kept()).await);
        noop_kept.push_counted(bench.drive_counted(kept()).await);
    }
    println!("in process (the fleet driver of this build):");
    println!("{}", change.line("  one-object rollout, fresh engines"));
    println!(
        "{}",
        change_kept.line("  one-object rollout, dry-run answers kept")
    );
    println!("{}", noop.line("  no-op sync, fresh engines"));
    println!("{}", noop_kept.line("  no-op sync, dry-run answers kept"));

    let (c, n, d) = bench.cli_runs(&bin);
    println!("tidegate binary of this build ({}):", bin.display());
    println!("{}", c.line("  sync --env, one-object change"));
    println!("{}", n.line("  sync --env, no-op"));
    println!("{}", d.line("  diff --env"));

    if let Some(base) = std::env::var_os("TIDEGATE_BASELINE_BIN").map(PathBuf::from) {
        let env = bench.env.clone();
        bench.commit_change();
        bench.cli(&base, &["sync", "--env", &env], &[0]); // converge to its rendering
        let (bc, bn, bd) = bench.cli_runs(&base);
        println!("baseline tidegate binary ({}):", base.display());
        println!("{}", bc.line("  sync --env, one-object change"));
        println!("{}", bn.line("  sync --env, no-op"));
        println!("{}", bd.line("  diff --env"));
        let ratio = |a: &Runs, b: &Runs| {
            median(a.times.clone()).as_secs_f64() / median(b.times.clone()).as_secs_f64()
        };
        println!(
            "ratios this/baseline: one-object sync {:.2}, no-op sync {:.2}, diff {:.2}",
            ratio(&c, &bc),
            ratio(&n, &bn),
            ratio(&d, &bd)
        );
    }
}
