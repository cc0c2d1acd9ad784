//! Sync benchmark on a real local cluster: apply, then diff, 1,000 objects
//! (ConfigMaps, Services and Deployments), beside `kubectl apply
//! --server-side` and `kubectl diff --server-side` on the same objects (in a
//! namespace of their own) in the same run.
//!
//! Run: `cargo bench -p tidegate-tests --bench sync` (uses the clusters of
//! `TIDEGATE_TEST_KUBECONFIG` when set, otherwise starts its own).
//! Prints medians and ratios; exits non-zero if a no-op sync writes anything.

use std::{
    process::Command,
    time::{Duration, Instant},
};
use tidegate_cluster::KubeconfigFactory;
use tidegate_sync::{Action, Engine, SyncOptions, Target};
use tidegate_testkit::{Fleet, TestNamespace, shared_fleet};
use tidegate_tests::GitFixture;

#[path = "shared/mod.rs"]
mod shared;

const OBJECTS: usize = 1000;
const RUNS: usize = 5;
const CONTEXT: &str = "eks-us-east-1";

fn manifests(ns_note: &str) -> String {
    let mut out = format!("# {ns_note}\n");
    for i in 0..OBJECTS {
        match i % 3 {
            0 => out.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  LOG_LEVEL: info\n  PORT: \"8080\"\n"
            )),
            1 => out.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\nspec:\n  selector:\n    app: dep-{i}\n  ports:\n    - port: 80\n      targetPort: 8080\n"
            )),
            _ => out.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dep-{i}\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      app: dep-{i}\n  template:\n    metadata:\n      labels:\n        app: dep-{i}\n    spec:\n      containers:\n        - name: app\n          image: registry.example/app:1\n          resources:\n            requests:\n              cpu: 10m\n              memory: 16Mi\n"
            )),
        }
    }
    out
}

/// Each run in seconds, 3 decimals.
fn seconds(runs: &[Duration]) -> Vec<String> {
    runs.iter()
        .map(|d| format!("{:.3}", d.as_secs_f64()))
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn kubectl(fleet: &Fleet, args: &[&str]) -> (Duration, i32) {
    let start = Instant::now();
    let status = Command::new(fleet.kubectl_path())
        .arg("--kubeconfig")
        .arg(fleet.kubeconfig())
        .arg("--context")
        .arg(CONTEXT)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("kubectl runs");
    (start.elapsed(), status.code().unwrap_or(-1))
}

async fn tidegate_run(
    fleet: &Fleet,
    git: &GitFixture,
    env: &str,
    dry_run: bool,
) -> (Duration, tidegate_sync::SyncReport) {
    let start = Instant::now();
    let (desired, rendered) = shared::load(git, env);
    let cluster = desired.environment.cluster(CONTEXT).expect("cluster");
    let factory = KubeconfigFactory {
        force: false,
        file: Some(fleet.kubeconfig().to_path_buf()),
    };
    let engine = Engine::connect(&factory, cluster).await.expect("connect");
    let target = Target {
        environment: &desired.environment,
        cluster,
        rendered: &rendered.clusters[0],
        revision: &desired.commit.sha,
    };
    let options = SyncOptions {
        dry_run,
        ..SyncOptions::default()
    };
    let report = engine.sync(&target, &options, &|_| {}).await.expect("sync");
    (start.elapsed(), report)
}

#[tokio::main]
async fn main() {
    tidegate_cluster::install_crypto_provider();
    let fleet = shared_fleet().await.expect("local clusters");
    let ours = TestNamespace::create(fleet, "bench-tidegate").expect("ns");
    let theirs = TestNamespace::create(fleet, "bench-kubectl").expect("ns");
    let env = ours.name().to_string();

    // Tidegate's repository.
    let mut git = GitFixture::new();
    git.write(
        &format!("environments/{env}.yaml"),
        format!(
            "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: {CONTEXT}\n      provider:\n        kubeconfig:\n          context: {CONTEXT}\n  apps:\n    - name: bench\n      namespace: {env}\n"
        ),
    );
    git.write("manifests/bench/objects.yaml", manifests("tidegate"));
    git.commit("1000 objects");
    // kubectl's file: the same objects in its own namespace.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, manifests("kubectl")).expect("write");
    let file = file.display().to_string();

    let (t_apply, first) = tidegate_run(fleet, &git, &env, false).await;
    assert_eq!(first.count(Action::Created), OBJECTS);
    let (k_apply, code) = kubectl(
        fleet,
        &[
            "apply",
            "--server-side",
            "--field-manager=bench",
            "-n",
            theirs.name(),
            "-f",
            &file,
        ],
    );
    assert_eq!(code, 0, "kubectl apply");

    let mut ours_diff = Vec::new();
    let mut theirs_diff = Vec::new();
    let mut writes = 0;
    for _ in 0..RUNS {
        let (t, report) = tidegate_run(fleet, &git, &env, true).await;
        assert_eq!(
            report.count(Action::Unchanged),
            OBJECTS,
            "steady state: no drift"
        );
        ours_diff.push(t);
        let (k, code) = kubectl(
            fleet,
            &[
                "diff",
                "--server-side",
                "--field-manager=bench",
                "-n",
                theirs.name(),
                "-f",
                &file,
            ],
        );
        assert_eq!(code, 0, "kubectl diff finds no drift");
        theirs_diff.push(k);
    }
    let (noop, report) = tidegate_run(fleet, &git, &env, false).await;
    writes += report.requests.writes;

    let (ours_med, theirs_med) = (median(ours_diff.clone()), median(theirs_diff.clone()));
    println!("objects: {OBJECTS} (ConfigMaps, Services, Deployments), runs: {RUNS}");
    println!(
        "initial apply:   tidegate {:>8.3}s   kubectl apply --server-side {:>8.3}s   ratio {:.1}x",
        t_apply.as_secs_f64(),
        k_apply.as_secs_f64(),
        k_apply.as_secs_f64() / t_apply.as_secs_f64()
    );
    println!(
        "steady diff:     tidegate {:>8.3}s   kubectl diff --server-side  {:>8.3}s   ratio {:.1}x (medians)",
        ours_med.as_secs_f64(),
        theirs_med.as_secs_f64(),
        theirs_med.as_secs_f64() / ours_med.as_secs_f64()
    );
    println!("all diff runs:   tidegate {:?}", seconds(&ours_diff));
    println!("                 kubectl  {:?}", seconds(&theirs_diff));
    println!(
        "no-op sync:      {:.3}s, {} reads, {} dry runs, {} writes",
        noop.as_secs_f64(),
        report.requests.reads,
        report.requests.dry_runs,
        writes
    );
    if writes != 0 {
        eprintln!("a no-op sync wrote {writes} times");
        std::process::exit(1);
    }
}
