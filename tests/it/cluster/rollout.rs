//! Fleet rollouts on the three local clusters: order and surge limits from
//! the recorded timeline, a bad revision rolled back in wave 1 with waves 2–3
//! untouched, an interrupted rollout resumed from its journal, and two
//! rollouts of one environment at once.

use super::{fleet, kubeconfig_factory, tidegate_bin};
use crate::pipeline::{load_env_at, roll_out};
use std::{collections::BTreeMap, sync::Arc, time::Duration};
use tidegate_audit::{Action as AuditAction, Actor, MemorySink, Trigger};
use tidegate_cluster::LeaseError;
use tidegate_fleet::{ClusterStep, DriverOptions, Journal, Outcome, RolloutError, RolloutReport};
use tidegate_sync::{Audit, Engine};
use tidegate_testkit::{FAIL_READINESS_LABEL, Fleet, TestNamespace};
use tidegate_tests::GitFixture;

const CLUSTERS: [(&str, u32); 3] = [
    ("eks-us-east-1", 1),
    ("aks-westeurope", 2),
    ("gke-us-central1", 3),
];

struct Fixture {
    fleet: &'static Fleet,
    git: GitFixture,
    ns: TestNamespace,
    env: String,
    audit: Arc<MemorySink>,
    state: tempfile::TempDir,
}

/// A Deployment `web` (2 replicas) whose pods never become ready when `fail`.
pub(crate) fn deployment(image: &str, fail: bool) -> String {
    let extra = if fail {
        format!("        {FAIL_READINESS_LABEL}: \"true\"\n")
    } else {
        String::new()
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  progressDeadlineSeconds: 600\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n{extra}    spec:\n      containers:\n        - name: app\n          image: {image}\n"
    )
}

impl Fixture {
    async fn new(prefix: &str, max_surge: &str, waves: [u32; 3]) -> Fixture {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        let env = ns.name().to_string();
        let mut clusters = String::new();
        for ((name, _), wave) in CLUSTERS.iter().zip(waves) {
            clusters.push_str(&format!(
                "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      wave: {wave}\n"
            ));
        }
        let mut git = GitFixture::new();
        git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: {max_surge}\n    maxUnavailable: 0\n    progressDeadline: 25s\n    bakeTime: 1s\n    failurePolicy: rollback\n"
            ),
        );
        git.write(
            "manifests/app/web.yaml",
            deployment("registry.example/web:1", false),
        );
        git.commit("v1");
        Fixture {
            fleet,
            git,
            ns,
            env,
            audit: Arc::new(MemorySink::new()),
            state: tempfile::tempdir().expect("state"),
        }
    }

    fn driver_options(&self, identity: &str) -> DriverOptions {
        DriverOptions {
            poll: Duration::from_millis(300),
            identity: identity.into(),
            ..DriverOptions::default()
        }
    }

    async fn rollout(&self, options: DriverOptions) -> Result<RolloutReport, RolloutError> {
        let audit = Audit {
            sink: self.audit.clone(),
            actor: Actor::new("tests@local", Trigger::Cli),
        };
        let journal = Journal::new(self.state.path(), &self.env);
        roll_out(
            self.git.path(),
            &self.env,
            options,
            Some(audit),
            Some(Arc::new(journal)),
        )
        .await
    }

    /// Revision recorded in each cluster's inventory.
    async fn revisions(&self) -> BTreeMap<String, Option<String>> {
        let (desired, _) = load_env_at(self.git.path(), &self.env, "HEAD").expect("valid");
        let mut out = BTreeMap::new();
        for cluster in &desired.environment.spec.clusters {
            let engine = Engine::connect(&kubeconfig_factory(fleet().await), cluster)
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
}

fn at(report: &RolloutReport, cluster: &str, what: ClusterStep) -> Option<Duration> {
    report
        .timeline
        .iter()
        .find(|(c, w, _)| c == cluster && *w == what)
        .map(|(_, _, t)| *t)
}

/// The most clusters in flight (apply issued, not yet healthy) at any moment.
fn max_in_flight(report: &RolloutReport) -> usize {
    let mut events: Vec<(Duration, i32)> = Vec::new();
    for (c, _) in CLUSTERS {
        if let (Some(start), Some(end)) = (
            at(report, c, ClusterStep::Apply),
            at(report, c, ClusterStep::Healthy),
        ) {
            events.push((start, 1));
            events.push((end, -1));
        }
    }
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_revision_rolls_out_wave_by_wave_within_the_surge_limit() {
    let fx = Fixture::new("roll-good", "1", [1, 2, 2]).await;
    let report = fx
        .rollout(fx.driver_options("tests"))
        .await
        .expect("rollout");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let wave1_healthy = at(&report, "eks-us-east-1", ClusterStep::Healthy).expect("wave 1 healthy");
    for c in ["aks-westeurope", "gke-us-central1"] {
        let applied = at(&report, c, ClusterStep::Apply).expect("applied");
        assert!(
            applied >= wave1_healthy,
            "{c} started before wave 1 was healthy: {:?}",
            report.timeline
        );
    }
    assert_eq!(
        max_in_flight(&report),
        1,
        "maxSurge 1: {:?}",
        report.timeline
    );
    // Wave transition overhead: wave 1 healthy → first apply of wave 2, less the 1 s bake.
    let wave2 = at(&report, "aks-westeurope", ClusterStep::Apply).expect("wave 2");
    eprintln!(
        "wave transition overhead: {} ms (health poll every {} ms)",
        wave2
            .saturating_sub(wave1_healthy)
            .saturating_sub(Duration::from_secs(1))
            .as_millis(),
        fx.driver_options("tests").poll.as_millis()
    );
    let wave2_written =
        at(&report, "aks-westeurope", ClusterStep::Applied).expect("wave 2 applied");
    eprintln!(
        "wave 1 healthy → wave 2 sync finished (plan, dry runs, writes): {} ms less the bake",
        wave2_written
            .saturating_sub(wave1_healthy)
            .saturating_sub(Duration::from_secs(1))
            .as_millis()
    );
    let head = fx.git.head();
    assert!(
        fx.revisions()
            .await
            .values()
            .all(|r| r.as_deref() == Some(head.as_str()))
    );
    let actions: Vec<String> = fx
        .audit
        .records()
        .iter()
        .map(|r| r.entry.action.as_str().to_string())
        .collect();
    for want in ["rollout-start", "wave-start", "gate-passed", "rollout-end"] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing: {actions:?}"
        );
    }
    // A second rollout of the same revision changes nothing.
    let again = fx.rollout(fx.driver_options("tests")).await.expect("again");
    assert_eq!(again.outcome, Outcome::Succeeded);
    assert!(
        at(&again, "eks-us-east-1", ClusterStep::Apply).is_none(),
        "{:?}",
        again.timeline
    );
    let _ = &fx.fleet;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_revision_fails_in_wave_1_and_is_rolled_back_there_only() {
    let mut fx = Fixture::new("roll-bad", "1", [1, 2, 3]).await;
    let good = fx
        .rollout(fx.driver_options("tests"))
        .await
        .expect("good rollout");
    assert_eq!(good.outcome, Outcome::Succeeded);
    let before = fx.revisions().await;
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2-broken", true),
    );
    fx.git.write(
        "manifests/app/new.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: added-by-bad\ndata:\n  A: b\n",
    );
    fx.git.commit("v2: never becomes ready");
    let report = fx
        .rollout(fx.driver_options("tests"))
        .await
        .expect("rollout runs");
    assert!(
        matches!(report.outcome, Outcome::RolledBack { .. }),
        "{:?}",
        report.outcome
    );
    assert!(at(&report, "eks-us-east-1", ClusterStep::Apply).is_some());
    assert!(
        at(&report, "eks-us-east-1", ClusterStep::RolledBack).is_some(),
        "{:?}",
        report.timeline
    );
    for untouched in ["aks-westeurope", "gke-us-central1"] {
        assert!(
            at(&report, untouched, ClusterStep::Apply).is_none(),
            "{untouched} touched: {:?}",
            report.timeline
        );
        assert!(at(&report, untouched, ClusterStep::Rollback).is_none());
    }
    assert_eq!(
        fx.revisions().await,
        before,
        "every cluster back at the good revision"
    );
    let added = fx.fleet.kubectl(
        "eks-us-east-1",
        &["get", "configmap", "added-by-bad", "-n", fx.ns.name()],
    );
    assert!(
        added.is_err(),
        "the object the bad revision added was pruned by the rollback"
    );
    let actions: Vec<String> = fx
        .audit
        .records()
        .iter()
        .map(|r| r.entry.action.as_str().to_string())
        .collect();
    for want in ["gate-failed", "rollback", "quarantine"] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing: {actions:?}"
        );
    }
    assert!(
        fx.audit
            .records()
            .iter()
            .any(|r| r.entry.action == AuditAction::Quarantine)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_rollout_resumes_from_its_journal() {
    let mut fx = Fixture::new("roll-resume", "1", [1, 2, 3]).await;
    fx.rollout(fx.driver_options("tests")).await.expect("v1");
    fx.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    fx.git.commit("v2");
    // Stop the run abruptly once wave 1 is done (the future is dropped, as a
    // killed process would stop; the journal is what survives).
    let interrupted = tokio::time::timeout(
        Duration::from_secs(4),
        fx.rollout(fx.driver_options("tests")),
    )
    .await;
    assert!(interrupted.is_err(), "the rollout was still running");
    let journal = Journal::new(fx.state.path(), &fx.env);
    assert!(
        journal.load().expect("journal").is_some(),
        "journal left behind"
    );
    let mut options = fx.driver_options("tests");
    options.resume = true;
    options.break_lock = true; // the interrupted run could not release its lock
    let report = fx.rollout(options).await.expect("resumed");
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert!(
        at(&report, "eks-us-east-1", ClusterStep::Apply).is_none(),
        "wave 1 was not re-applied: {:?}",
        report.timeline
    );
    assert!(
        journal.load().expect("journal").is_none(),
        "journal removed at the end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_rollout_of_the_same_environment_fails_cleanly() {
    let fx = Fixture::new("roll-lock", "1", [1, 2, 3]).await;
    let first = fx.rollout(fx.driver_options("alice@laptop"));
    let second = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        fx.rollout(fx.driver_options("controller")).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.expect("first").outcome, Outcome::Succeeded);
    let err = second.expect_err("locked");
    assert!(
        matches!(err, RolloutError::Locked(LeaseError::Held { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("alice@laptop"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_killed_mid_rollout_resumes_without_reapplying_a_finished_wave() {
    let mut fx = Fixture::new("roll-kill", "1", [1, 2, 3]).await;
    // A longer bake so the kill lands between waves.
    let env_file = format!("environments/{}.yaml", fx.env);
    let text = std::fs::read_to_string(fx.git.path().join(&env_file)).expect("env");
    fx.git
        .write(&env_file, text.replace("bakeTime: 1s", "bakeTime: 4s"));
    fx.git.commit("longer bake");
    let audit_db = fx.state.path().join("audit.db");
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(tidegate_bin());
        cmd.args([
            "--repo",
            &fx.git.path().display().to_string(),
            "sync",
            "--env",
            &fx.env,
        ])
        .args(extra)
        .env("TIDEGATE_ACCESS", "kubeconfig")
        .env("KUBECONFIG", fx.fleet.kubeconfig())
        .env("TIDEGATE_AUDIT_DB", &audit_db)
        .env("XDG_STATE_HOME", fx.state.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        cmd
    };
    let mut child = run(&[]).spawn().expect("tidegate sync");
    // Kill it (SIGKILL) once wave 1 is applied, during its bake.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let revisions = fx.revisions().await;
        if revisions.get("eks-us-east-1").is_some_and(Option::is_some) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "wave 1 never applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let journal = Journal::new(&fx.state.path().join("tidegate/rollouts"), &fx.env);
    assert!(
        journal.load().expect("journal").is_some(),
        "the killed run left its journal"
    );

    let status = run(&["--resume", "--break-lock"]).status().expect("resume");
    assert!(status.success(), "resumed rollout failed: {status}");
    let sha = fx.git.head();
    assert!(
        fx.revisions()
            .await
            .values()
            .all(|r| r.as_deref() == Some(sha.as_str()))
    );
    // Wave 1 changed its cluster once: one sync operation recorded for it.
    let store = tidegate_audit::SqliteStore::open_existing(&audit_db).expect("audit");
    let syncs = store
        .records(&tidegate_audit::Filter {
            cluster: Some("eks-us-east-1".into()),
            actions: vec!["sync".into()],
            ..Default::default()
        })
        .expect("records")
        .into_iter()
        .filter(|r| r.entry.outcome.is_none())
        .count();
    assert_eq!(syncs, 1, "eks-us-east-1 was changed once");
    let history = std::process::Command::new(tidegate_bin())
        .args(["history", "--env", &fx.env, "-o", "json"])
        .env("TIDEGATE_AUDIT_DB", &audit_db)
        .output()
        .expect("history");
    let rows: serde_json::Value = serde_json::from_slice(&history.stdout).expect("json");
    let outcomes: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["interrupted", "success"], "{rows}");
    assert!(journal.load().expect("journal").is_none());
}
