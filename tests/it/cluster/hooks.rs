//! Sync hooks and the fail-fast gate, through the `tidegate` binary on the
//! three local clusters: a failing PreSync Job stops the apply and rolls the
//! wave back, PostSync smoke tests gate the wave, and a crash-looping
//! release fails fast instead of at `progressDeadline` (the two durations
//! are measured from the audit trail and printed, never asserted).

use super::{fleet, kubeconfig_factory, tidegate_bin};
use crate::pipeline::load_env_at;
use std::collections::BTreeMap;
use tidegate_audit::{Filter, Record, SqliteStore};
use tidegate_sync::Engine;
use tidegate_testkit::{
    CRASHLOOP_LABEL, EXIT_CODE_ANNOTATION, Fleet, JOB_FAIL_LABEL, TERMINATION_MESSAGE_ANNOTATION,
    TestNamespace,
};
use tidegate_tests::GitFixture;

const CLUSTERS: [(&str, u32); 3] = [
    ("eks-us-east-1", 1),
    ("aks-westeurope", 2),
    ("gke-us-central1", 2),
];

struct Fixture {
    fleet: &'static Fleet,
    git: GitFixture,
    _ns: TestNamespace,
    env: String,
    state: tempfile::TempDir,
}

/// A Deployment `web` (2 replicas) at `image`; its pods crash-loop when `crash`.
fn deployment(image: &str, crash: bool) -> String {
    let extra = if crash {
        format!("        {CRASHLOOP_LABEL}: \"true\"\n")
    } else {
        String::new()
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n{extra}    spec:\n      containers:\n        - name: app\n          image: {image}\n"
    )
}

/// A hook Job of `phase` whose pod exits `exit` with `message`.
pub(crate) fn hook_job(name: &str, phase: &str, exit: u8, message: &str) -> String {
    let fail = if exit != 0 {
        format!("        {JOB_FAIL_LABEL}: \"true\"\n")
    } else {
        String::new()
    };
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  annotations:\n    tidegate.dev/hook: {phase}\n    tidegate.dev/hook-delete-policy: BeforeHookCreation\nspec:\n  backoffLimit: 0\n  template:\n    metadata:\n      labels:\n        app: {name}\n{fail}      annotations:\n        {TERMINATION_MESSAGE_ANNOTATION}: \"{message}\"\n        {EXIT_CODE_ANNOTATION}: \"{exit}\"\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: run\n          image: registry.example/{name}:1\n"
    )
}

impl Fixture {
    /// An environment of one app, wave 1 = eks, wave 2 = aks and gke, with
    /// v1 (a good Deployment) rolled out everywhere.
    async fn new(prefix: &str) -> Fixture {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        let env = ns.name().to_string();
        let mut clusters = String::new();
        for (name, wave) in CLUSTERS {
            clusters.push_str(&format!(
                "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      wave: {wave}\n"
            ));
        }
        let mut git = GitFixture::new();
        // progressDeadline is long: only fail fast or a hook can end a bad
        // release before it.
        git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: 2\n    maxUnavailable: 1\n    progressDeadline: 10m\n    bakeTime: 1s\n    failurePolicy: rollback\n    failFast:\n      grace: 3s\n"
            ),
        );
        git.write(
            "manifests/app/web.yaml",
            deployment("registry.example/web:1", false),
        );
        git.commit("v1");
        let fx = Fixture {
            fleet,
            git,
            _ns: ns,
            env,
            state: tempfile::tempdir().expect("state"),
        };
        let (ok, out) = fx.sync();
        assert!(ok, "v1 rollout failed:\n{out}");
        fx
    }

    /// `tidegate sync --env` through the binary: success, and its output.
    fn sync(&self) -> (bool, String) {
        self.sync_with(&[])
    }

    /// `tidegate sync --env <env> <extra>` through the binary.
    fn sync_with(&self, extra: &[&str]) -> (bool, String) {
        let output = std::process::Command::new(tidegate_bin())
            .args([
                "--repo",
                &self.git.path().display().to_string(),
                "sync",
                "--env",
                &self.env,
            ])
            .args(extra)
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .env("KUBECONFIG", self.fleet.kubeconfig())
            .env("TIDEGATE_AUDIT_DB", self.state.path().join("audit.db"))
            .env("XDG_STATE_HOME", self.state.path())
            .env("HOME", self.state.path())
            .output()
            .expect("tidegate sync");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    fn records(&self, actions: &[&str]) -> Vec<Record> {
        let store = SqliteStore::open_existing(&self.state.path().join("audit.db")).expect("audit");
        store
            .records(&Filter {
                environment: Some(self.env.clone()),
                actions: actions.iter().map(|a| a.to_string()).collect(),
                ..Default::default()
            })
            .expect("records")
    }

    /// Revision recorded in each cluster's inventory.
    async fn revisions(&self) -> BTreeMap<String, Option<String>> {
        let (desired, _) = load_env_at(self.git.path(), &self.env, "HEAD").expect("valid");
        let mut out = BTreeMap::new();
        for cluster in &desired.environment.spec.clusters {
            let engine = Engine::connect(&kubeconfig_factory(self.fleet), cluster)
                .await
                .expect("connect");
            let inv = engine.inventories(&self.env).await.expect("inventories");
            out.insert(
                cluster.name.clone(),
                inv.first().map(|i| i.revision.clone()),
            );
        }
        out
    }

    /// Commits a release: `web` at `image` and the hook Jobs `(file, yaml)`.
    fn release(&mut self, image: &str, hooks: &[(&str, String)], message: &str) {
        self.git
            .write("manifests/app/web.yaml", deployment(image, false));
        for (file, job) in hooks {
            self.git.write(&format!("manifests/app/{file}.yaml"), job);
        }
        self.git.commit(message);
    }

    /// The last healthy revision recorded in `cluster` (the rollback target).
    async fn healthy_revision(&self, cluster: &str) -> Option<String> {
        let (desired, _) = load_env_at(self.git.path(), &self.env, "HEAD").expect("valid");
        let definition = desired.environment.cluster(cluster).expect("cluster");
        let engine = Engine::connect(&kubeconfig_factory(self.fleet), definition)
            .await
            .expect("connect");
        let inv = engine.inventories(&self.env).await.expect("inventories");
        inv.first().and_then(|i| i.healthy_revision.clone())
    }
}

fn at_v1(revisions: &BTreeMap<String, Option<String>>, v1: &str) -> bool {
    revisions.values().all(|r| r.as_deref() == Some(v1))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_presync_job_stops_the_apply_and_the_wave_rolls_back() {
    let mut fx = Fixture::new("hook-pre").await;
    let v1 = fx.git.head();
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    fx.git.write(
        "manifests/app/migrate.yaml",
        hook_job(
            "migrate",
            "PreSync",
            3,
            "ERROR: migration 0042 failed: column email already exists",
        ),
    );
    fx.git.commit("v2 with a failing migration");

    let (ok, out) = fx.sync();
    assert!(!ok, "the rollout should fail:\n{out}");
    assert!(at_v1(&fx.revisions().await, &v1), "{out}");
    // The migration ran in wave 1 only, and its output is in the audit trail.
    let hooks = fx.records(&["hook"]);
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    let hook = &hooks[0].entry;
    assert_eq!(hook.cluster.as_deref(), Some("eks-us-east-1"));
    assert_eq!(hook.details.get("exit_code").map(String::as_str), Some("3"));
    assert_eq!(
        hook.details.get("phase").map(String::as_str),
        Some("PreSync")
    );
    let output = hook.details.get("output").cloned().unwrap_or_default();
    assert!(output.contains("migration 0042 failed"), "{output}");
    // Nothing of v2 was applied: no apply entry names v2.
    let v2 = fx.git.head();
    let applied_v2 = fx
        .records(&["apply"])
        .into_iter()
        .filter(|r| r.entry.to.as_ref().is_some_and(|t| t.sha == v2))
        .count();
    assert_eq!(applied_v2, 0, "v2 objects were applied");
    let end = fx.records(&["rollout-end"]);
    let last = end.last().expect("rollout-end");
    let message = last.entry.message.clone().unwrap_or_default();
    assert!(message.contains("PreSync hook Job"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postsync_smoke_tests_gate_the_wave() {
    let mut fx = Fixture::new("hook-post").await;
    let v1 = fx.git.head();
    fx.release(
        "registry.example/web:2",
        &[(
            "smoke",
            hook_job("smoke", "PostSync", 1, "GET /health: 503"),
        )],
        "v2 whose smoke test fails",
    );
    let (ok, out) = fx.sync();
    assert!(!ok, "a failing smoke test fails the rollout:\n{out}");
    assert!(at_v1(&fx.revisions().await, &v1), "{out}");
    let failed: Vec<Record> = fx
        .records(&["hook"])
        .into_iter()
        .filter(|r| r.entry.details.get("phase").map(String::as_str) == Some("PostSync"))
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "only wave 1 ran its smoke test: {failed:#?}"
    );
    assert!(
        failed[0]
            .entry
            .details
            .get("output")
            .is_some_and(|o| o.contains("GET /health: 503"))
    );
    let gate = fx.records(&["gate-failed"]);
    let message = gate
        .last()
        .and_then(|r| r.entry.message.clone())
        .unwrap_or_default();
    assert!(message.contains("PostSync hook Job"), "{message}");

    fx.git.write(
        "manifests/app/smoke.yaml",
        hook_job("smoke", "PostSync", 0, "all green"),
    );
    fx.git.commit("v3 whose smoke test passes");
    let v3 = fx.git.head();
    let (ok, out) = fx.sync();
    assert!(ok, "a passing smoke test lets the rollout pass:\n{out}");
    assert!(
        fx.revisions()
            .await
            .values()
            .all(|r| r.as_deref() == Some(v3.as_str()))
    );
    let passed = fx
        .records(&["hook"])
        .into_iter()
        .filter(|r| {
            r.entry
                .details
                .get("output")
                .is_some_and(|o| o.contains("all green"))
        })
        .count();
    assert_eq!(passed, 3, "one smoke test per cluster");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_looping_release_fails_fast_and_is_rolled_back() {
    let mut fx = Fixture::new("failfast").await;
    let v1 = fx.git.head();
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", true),
    );
    fx.git.commit("v2 crash-loops");
    let (ok, out) = fx.sync();
    assert!(!ok, "a crash-looping release fails:\n{out}");
    assert!(at_v1(&fx.revisions().await, &v1), "{out}");
    let gate = fx.records(&["gate-failed"]);
    let gate = gate.last().expect("gate-failed");
    let message = gate.entry.message.clone().unwrap_or_default();
    assert!(
        message.contains("fail fast") && message.contains("CrashLoopBackOff"),
        "{message}"
    );
    assert!(!message.contains("progress deadline"), "{message}");
    // Measured, not asserted: first crash report → failure, failure → rollback done.
    let reported = message
        .split("first reported at ")
        .nth(1)
        .and_then(|t| t.trim().parse::<tidegate_health::Timestamp>().ok())
        .expect("the pod's report time");
    let end = fx.records(&["rollout-end"]);
    let end = end.last().expect("rollout-end");
    let detection_ms = gate.time_ms - reported.as_millisecond();
    let rollback_ms = end.time_ms - gate.time_ms;
    println!(
        "fail-fast measurement: detected {:.1}s after the pods' first crash report; rollback complete {:.1}s after detection",
        detection_ms as f64 / 1000.0,
        rollback_ms as f64 / 1000.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_cluster_sync_runs_postsync_and_syncfail_hooks() {
    let mut fx = Fixture::new("hook-single").await;
    let cluster = "eks-us-east-1";
    let v1 = fx.git.head();
    fx.release(
        "registry.example/web:2",
        &[
            (
                "smoke",
                hook_job("smoke", "PostSync", 1, "GET /health: 503"),
            ),
            ("page", hook_job("page", "SyncFail", 0, "paged the on-call")),
        ],
        "v2 whose smoke test fails",
    );
    let (ok, out) = fx.sync_with(&["--cluster", cluster, "--wait"]);
    assert!(!ok, "a failing PostSync hook fails the sync:\n{out}");
    assert!(out.contains("PostSync hook Job"), "{out}");
    assert!(out.contains("(exit 1)"), "{out}");
    assert!(out.contains("GET /health: 503"), "{out}");
    assert!(out.contains("paged the on-call"), "SyncFail ran:\n{out}");
    let hooks = fx.records(&["hook"]);
    let phase = |r: &Record| r.entry.details.get("phase").cloned().unwrap_or_default();
    let post: Vec<&Record> = hooks.iter().filter(|r| phase(r) == "PostSync").collect();
    assert_eq!(post.len(), 1, "{hooks:#?}");
    assert_eq!(post[0].entry.cluster.as_deref(), Some(cluster));
    assert_eq!(
        post[0].entry.details.get("exit_code").map(String::as_str),
        Some("1")
    );
    let fail: Vec<&Record> = hooks.iter().filter(|r| phase(r) == "SyncFail").collect();
    assert_eq!(fail.len(), 1, "{hooks:#?}");
    assert_eq!(
        fail[0].entry.details.get("outcome").map(String::as_str),
        Some("succeeded")
    );
    // v2 is applied but not recorded as healthy: a rollback returns to v1.
    assert_eq!(fx.healthy_revision(cluster).await, Some(v1.clone()));

    fx.release(
        "registry.example/web:3",
        &[("smoke", hook_job("smoke", "PostSync", 0, "all green"))],
        "v3 whose smoke test passes",
    );
    let v3 = fx.git.head();
    let (ok, out) = fx.sync_with(&["--cluster", cluster, "--wait"]);
    assert!(ok, "a passing PostSync hook lets the sync pass:\n{out}");
    assert_eq!(fx.healthy_revision(cluster).await, Some(v3));
    let hooks = fx.records(&["hook"]);
    assert!(
        hooks.iter().any(|r| phase(r) == "PostSync"
            && r.entry
                .details
                .get("output")
                .is_some_and(|o| o.contains("all green"))),
        "{hooks:#?}"
    );
    assert_eq!(
        hooks.iter().filter(|r| phase(r) == "SyncFail").count(),
        1,
        "no SyncFail hook after a good sync"
    );

    // Without --wait the PostSync hooks do not run, and the output says so.
    fx.release("registry.example/web:4", &[], "v4");
    let (ok, out) = fx.sync_with(&["--cluster", cluster]);
    assert!(ok, "{out}");
    assert!(out.contains("PostSync hooks run only with --wait"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_single_cluster_sync_runs_its_syncfail_hooks() {
    let mut fx = Fixture::new("hook-syncfail").await;
    let cluster = "eks-us-east-1";
    fx.release(
        "registry.example/web:2",
        &[
            (
                "migrate",
                hook_job("migrate", "PreSync", 3, "migration failed"),
            ),
            ("page", hook_job("page", "SyncFail", 2, "pager unreachable")),
        ],
        "v2 whose migration fails",
    );
    let (ok, out) = fx.sync_with(&["--cluster", cluster]);
    assert!(!ok, "a failing PreSync hook fails the sync:\n{out}");
    // The SyncFail hook ran (and its own failure is only reported).
    assert!(out.contains("pager unreachable"), "{out}");
    let phases: Vec<(String, String)> = fx
        .records(&["hook"])
        .iter()
        .map(|r| {
            let d = |k: &str| r.entry.details.get(k).cloned().unwrap_or_default();
            (d("phase"), d("exit_code"))
        })
        .collect();
    assert_eq!(
        phases,
        [
            ("PreSync".to_string(), "3".to_string()),
            ("SyncFail".to_string(), "2".to_string())
        ],
        "{out}"
    );
}
