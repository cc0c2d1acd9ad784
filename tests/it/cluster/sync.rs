//! The sync engine against a real cluster: apply from scratch, no-op syncs
//! that write nothing, drift by other field managers, conflicts, prune, CRDs
//! with their custom resources, Secrets, health, and bad input that leaves
//! the cluster untouched.

use super::fleet;
use crate::pipeline::load_env;
use std::time::{Duration, Instant};
use tidegate_audit::{Action as AuditAction, Actor, MemorySink, Outcome, Trigger};
use tidegate_cluster::KubeconfigFactory;
use tidegate_diff::{DiffStatus, unified};
use tidegate_health::HealthStatus;
use tidegate_render::Rendered;
use tidegate_source::Desired;
use tidegate_sync::{
    Action, Audit, Engine, Plan, Progress, SyncError, SyncOptions, SyncReport, Target,
};
use tidegate_testkit::{FAIL_READINESS_LABEL, Fleet, TestNamespace};
use tidegate_tests::{GitFixture, workspace_root};

const CONTEXT: &str = "eks-us-east-1";

/// A Git repository with one environment (`env`) of one cluster and one app
/// (`app`) whose namespace is a fresh test namespace.
struct Fixture {
    fleet: &'static Fleet,
    git: GitFixture,
    ns: TestNamespace,
    env: String,
    /// Every sync of the fixture records here.
    audit: std::sync::Arc<MemorySink>,
}

impl Fixture {
    async fn new(prefix: &str) -> Fixture {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("test namespace");
        let env = ns.name().to_string();
        let mut git = GitFixture::new();
        git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: {CONTEXT}\n      provider:\n        kubeconfig:\n          context: {CONTEXT}\n          file: {}\n  apps:\n    - name: app\n      namespace: {env}\n",
                fleet.kubeconfig().display()
            ),
        );
        git.write("manifests/app/.keep.yaml", "# placeholder\n");
        git.commit("environment");
        Fixture {
            fleet,
            git,
            ns,
            env,
            audit: std::sync::Arc::new(MemorySink::new()),
        }
    }

    fn write(&self, path: &str, text: &str) -> &Self {
        self.git.write(
            &format!("manifests/app/{path}"),
            text.replace("${NS}", self.ns.name()),
        );
        self
    }

    fn commit(&mut self, message: &str) {
        self.git.commit(message);
    }

    async fn engine(&self) -> Engine {
        let (desired, _) = load_env(self.git.path(), &self.env).expect("valid");
        connect(&desired).await
    }

    async fn plan(&self) -> Plan {
        let (desired, rendered) = load_env(self.git.path(), &self.env).expect("valid");
        connect(&desired)
            .await
            .plan(&target(&desired, &rendered), &SyncOptions::default())
            .await
            .expect("plan")
    }

    async fn sync(&self, options: SyncOptions) -> Result<SyncReport, SyncError> {
        let (desired, rendered) = load_env(self.git.path(), &self.env).expect("valid");
        let engine = connect(&desired).await.with_audit(Audit {
            sink: self.audit.clone(),
            actor: Actor::new("tests@local", Trigger::Cli),
        });
        engine
            .sync(&target(&desired, &rendered), &options, &|_| {})
            .await
    }

    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.fleet.kubectl(CONTEXT, args).map_err(|e| e.to_string())
    }

    /// A field of an object in the test namespace (`jsonpath`, e.g. `{.spec.replicas}`).
    fn field(&self, kind: &str, name: &str, jsonpath: &str) -> String {
        self.kubectl(&[
            "get",
            kind,
            name,
            "-n",
            self.ns.name(),
            "-o",
            &format!("jsonpath={jsonpath}"),
        ])
        .expect("kubectl get")
    }

    fn exists(&self, kind: &str, name: &str) -> bool {
        self.kubectl(&["get", kind, name, "-n", self.ns.name(), "-o", "name"])
            .is_ok()
    }
}

/// An engine for the fixture's one cluster.
async fn connect(desired: &Desired) -> Engine {
    tidegate_cluster::install_crypto_provider();
    let cluster = desired.environment.cluster(CONTEXT).expect("cluster");
    Engine::connect(&KubeconfigFactory::default(), cluster)
        .await
        .expect("connect")
}

/// The fixture's one cluster as a sync target.
fn target<'a>(desired: &'a Desired, rendered: &'a Rendered) -> Target<'a> {
    Target {
        environment: &desired.environment,
        cluster: desired.environment.cluster(CONTEXT).expect("cluster"),
        rendered: &rendered.clusters[0],
        revision: &desired.commit.sha,
    }
}

fn statuses(plan: &Plan) -> Vec<(String, DiffStatus)> {
    plan.objects
        .iter()
        .map(|o| {
            (
                o.object.key.to_string(),
                o.diff.as_ref().map_or(DiffStatus::Missing, |d| d.status),
            )
        })
        .collect()
}

fn drifted(plan: &Plan) -> Vec<String> {
    plan.objects
        .iter()
        .filter(|o| o.needs_apply())
        .map(|o| {
            format!(
                "{}: {}",
                o.object.key,
                o.diff
                    .as_ref()
                    .map(|d| unified(d, false))
                    .unwrap_or_else(|| "not diffed".into())
            )
        })
        .collect()
}

const CONFIGMAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  MODE: release\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n    - port: 80\n      targetPort: 8080\n";

fn deployment(name: &str, image: &str, replicas: u32, extra_labels: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  progressDeadlineSeconds: 10\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n{extra_labels}    spec:\n      containers:\n        - name: app\n          image: {image}\n          resources:\n            requests:\n              cpu: 100m\n              memory: 64Mi\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn applies_from_scratch_then_a_second_sync_writes_nothing() {
    let mut fx = Fixture::new("sync-scratch").await;
    fx.write("config.yaml", CONFIGMAP)
        .write("service.yaml", SERVICE)
        .write(
            "web.yaml",
            &deployment("web", "registry.example/web:1", 2, ""),
        );
    fx.commit("app");
    let first = fx.sync(SyncOptions::default()).await.expect("first sync");
    assert_eq!(first.count(Action::Created), 3, "{:?}", first.results);
    assert!(fx.exists("deployment", "web") && fx.exists("configmap", "settings"));

    let second = fx.sync(SyncOptions::default()).await.expect("second sync");
    assert_eq!(second.count(Action::Unchanged), 3, "{:?}", second.results);
    assert_eq!(
        second.requests.writes, 0,
        "a no-op sync sends no write request: {:?}",
        second.requests
    );
    assert!(second.requests.reads > 0);
    let plan = fx.plan().await;
    assert!(drifted(&plan).is_empty(), "{:#?}", drifted(&plan));
    // The first sync is in the audit trail (intent, apply, outcome); the no-op is not.
    let actions: Vec<String> = fx
        .audit
        .records()
        .iter()
        .map(|r| r.entry.action.as_str().to_string())
        .collect();
    assert_eq!(actions, ["sync", "apply", "sync"], "{actions:?}");
    let records = fx.audit.records();
    assert_eq!(records[2].entry.outcome, Some(Outcome::Success));
    assert_eq!(
        records[1].entry.objects.as_ref().map(|o| o.created),
        Some(3)
    );
    assert_eq!(fx.audit.verify().expect("chain"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_by_another_manager_is_named_and_corrected() {
    let mut fx = Fixture::new("sync-drift").await;
    fx.write(
        "web.yaml",
        &deployment("web", "registry.example/web:1", 2, ""),
    )
    .write("config.yaml", CONFIGMAP);
    fx.commit("app");
    fx.sync(SyncOptions::default()).await.expect("sync");

    let ns = fx.ns.name().to_string();
    fx.kubectl(&["scale", "deployment", "web", "--replicas=5", "-n", &ns])
        .expect("kubectl scale");
    fx.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"data":{"MODE":"debug"}}"#,
    ])
    .expect("kubectl patch");
    let plan = fx.plan().await;
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    for (name, path) in [("web", "/spec/replicas"), ("settings", "/data/MODE")] {
        let diff = plan
            .objects
            .iter()
            .find(|o| o.object.key.name == name)
            .and_then(|o| o.diff.clone())
            .expect(name);
        assert_eq!(diff.status, DiffStatus::OutOfSync, "{name}");
        let change = diff
            .changes
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("{name}: {path} differs"));
        assert!(
            change.owners.iter().any(|o| o.starts_with("kubectl")),
            "{name} {path}: owner named: {:?}",
            change.owners
        );
    }

    let report = fx
        .sync(SyncOptions::default())
        .await
        .expect("correcting sync");
    assert_eq!(report.count(Action::Configured), 2, "{:?}", report.results);
    let plan = fx.plan().await;
    assert!(drifted(&plan).is_empty(), "{:#?}", drifted(&plan));
    assert_eq!(fx.field("deployment", "web", "{.spec.replicas}"), "2");
    let corrected = fx
        .audit
        .records()
        .into_iter()
        .find(|r| r.entry.action == AuditAction::DriftCorrected)
        .expect("drift-corrected entry");
    let message = corrected.entry.message.unwrap_or_default();
    assert!(
        message.contains("/spec/replicas (changed by kubectl"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conflict_is_reported_with_fields_and_manager_and_force_takes_over() {
    let mut fx = Fixture::new("sync-conflict").await;
    fx.write(
        "web.yaml",
        &deployment("web", "registry.example/web:1", 2, ""),
    );
    fx.commit("app");
    fx.sync(SyncOptions::default()).await.expect("sync");
    let ns = fx.ns.name().to_string();
    let other = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: 7\n"
    );
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), other).expect("write");
    fx.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=other-team",
        "-f",
        &file.path().display().to_string(),
    ])
    .expect("other manager applies");

    let err = fx.sync(SyncOptions::default()).await.expect_err("conflict");
    let SyncError::Invalid { problems, .. } = &err else {
        panic!("{err}")
    };
    let text = err.to_string();
    assert_eq!(problems.len(), 1, "{text}");
    assert!(
        text.contains("spec.replicas") && text.contains("other-team"),
        "{text}"
    );
    assert!(text.contains("--force-conflicts"), "{text}");
    assert_eq!(
        fx.field("deployment", "web", "{.spec.replicas}"),
        "7",
        "nothing was written"
    );
    let forced = fx
        .sync(SyncOptions {
            force_conflicts: true,
            ..SyncOptions::default()
        })
        .await
        .expect("forced");
    assert_eq!(forced.count(Action::Configured), 1);
    assert_eq!(fx.field("deployment", "web", "{.spec.replicas}"), "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_file_is_pruned_only_when_asked_and_only_if_tracked() {
    let mut fx = Fixture::new("sync-prune").await;
    fx.write("config.yaml", CONFIGMAP)
        .write(
            "other.yaml",
            &CONFIGMAP.replace("name: settings", "name: untracked"),
        )
        .write("service.yaml", SERVICE);
    fx.commit("app");
    fx.sync(SyncOptions::default()).await.expect("sync");
    let ns = fx.ns.name().to_string();
    // Someone removes the tracking annotation: that object must never be pruned.
    fx.kubectl(&[
        "annotate",
        "configmap",
        "untracked",
        "-n",
        &ns,
        "tidegate.dev/tracking-id-",
    ])
    .expect("annotate");

    fx.git.remove("manifests/app/config.yaml");
    fx.git.remove("manifests/app/other.yaml");
    fx.commit("drop the ConfigMaps");
    let plan = fx.plan().await;
    assert_eq!(plan.prune.len(), 1, "only the tracked one is a candidate");
    let kept = fx
        .sync(SyncOptions::default())
        .await
        .expect("sync without prune");
    assert_eq!(kept.count(Action::PruneSkipped), 1, "{:?}", kept.results);
    assert!(
        fx.exists("configmap", "settings"),
        "not pruned without --prune"
    );

    let pruned = fx
        .sync(SyncOptions {
            prune: true,
            ..SyncOptions::default()
        })
        .await
        .expect("prune");
    assert_eq!(pruned.count(Action::Pruned), 1, "{:?}", pruned.results);
    let deadline = Instant::now() + Duration::from_secs(60);
    while fx.exists("configmap", "settings") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!fx.exists("configmap", "settings"), "pruned");
    assert!(fx.exists("configmap", "untracked"), "untracked object kept");
    assert!(fx.exists("service", "web"));
    assert!(
        fx.audit
            .records()
            .iter()
            .any(|r| r.entry.action == AuditAction::Prune
                && r.entry.objects.as_ref().is_some_and(|o| o.deleted == 1)),
        "prune recorded"
    );
    let again = fx
        .sync(SyncOptions {
            prune: true,
            ..SyncOptions::default()
        })
        .await
        .expect("again");
    assert_eq!(again.requests.writes, 0, "{:?}", again.results);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_that_renders_nothing_is_refused_unless_allowed() {
    let mut fx = Fixture::new("sync-empty").await;
    fx.write("config.yaml", CONFIGMAP);
    fx.commit("app");
    fx.sync(SyncOptions::default()).await.expect("sync");
    fx.git.remove("manifests/app/config.yaml");
    fx.commit("empty");
    let err = fx
        .sync(SyncOptions {
            prune: true,
            ..SyncOptions::default()
        })
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("--allow-empty"), "{err}");
    assert!(fx.exists("configmap", "settings"));
    let ok = fx
        .sync(SyncOptions {
            prune: true,
            allow_empty: true,
            ..SyncOptions::default()
        })
        .await
        .expect("allowed");
    assert_eq!(ok.count(Action::Pruned), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crd_and_its_custom_resource_sync_together() {
    let mut fx = Fixture::new("sync-crd").await;
    let group = format!("{}.tidegate.dev", fx.ns.name());
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names:\n    plural: widgets\n    singular: widget\n    kind: Widget\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          properties:\n            spec:\n              type: object\n              properties:\n                size:\n                  type: integer\n                  default: 1\n                color:\n                  type: string\n"
    );
    fx.write("crd.yaml", &crd).write(
        "widget.yaml",
        &format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: blue\nspec:\n  color: blue\n"
        ),
    );
    fx.commit("crd");
    let report = fx.sync(SyncOptions::default()).await.expect("sync");
    assert_eq!(report.count(Action::Created), 2, "{:?}", report.results);
    assert!(fx.exists(&format!("widgets.{group}"), "blue"));
    let second = fx.sync(SyncOptions::default()).await.expect("again");
    assert_eq!(
        second.requests.writes, 0,
        "defaulted CR fields are not drift: {:?}",
        second.results
    );
    let _ = fx.kubectl(&["delete", "crd", &format!("widgets.{group}"), "--wait=false"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_values_never_appear_in_a_diff() {
    let mut fx = Fixture::new("sync-secret").await;
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\nstringData:\n  user: admin\n  password: hunter2-first\n";
    fx.write("secret.yaml", secret);
    fx.commit("secret");
    fx.sync(SyncOptions::default()).await.expect("sync");
    assert!(
        drifted(&fx.plan().await).is_empty(),
        "stringData is not drift once applied"
    );
    fx.write(
        "secret.yaml",
        &secret.replace("hunter2-first", "hunter3-second"),
    );
    fx.commit("rotate");
    let plan = fx.plan().await;
    let diff = plan.objects[0].diff.clone().expect("diff");
    assert_eq!(diff.status, DiffStatus::OutOfSync);
    let everything = format!(
        "{}{}",
        unified(&diff, false),
        serde_json::to_string(&diff).expect("json")
    );
    for leaked in [
        "hunter2-first",
        "hunter3-second",
        "aHVudGVyMi1maXJzdA",
        "aHVudGVyMy1zZWNvbmQ",
        "YWRtaW4",
    ] {
        assert!(
            !everything.contains(leaked),
            "{leaked} leaked:\n{everything}"
        );
    }
    assert_eq!(diff.changes.len(), 1, "{:?}", diff.changes);
    assert_eq!(diff.changes[0].path, "/data/password");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_is_seen_progressing_then_healthy_and_a_bad_release_degraded() {
    let mut fx = Fixture::new("sync-health").await;
    // minReadySeconds keeps the rollout Progressing for 10 s after pods are ready.
    let web = deployment("web", "registry.example/web:1", 3, "")
        .replace("  replicas: 3\n", "  replicas: 3\n  minReadySeconds: 10\n")
        .replace("progressDeadlineSeconds: 10", "progressDeadlineSeconds: 60");
    assert!(web.contains("minReadySeconds"));
    fx.write("web.yaml", &web).write(
        "bad.yaml",
        &deployment(
            "bad",
            "registry.example/bad:6",
            1,
            &format!("        {FAIL_READINESS_LABEL}: \"true\"\n"),
        ),
    );
    fx.commit("app");
    fx.sync(SyncOptions::default()).await.expect("sync");
    let engine = fx.engine().await;
    let keys: Vec<_> = fx
        .plan()
        .await
        .objects
        .iter()
        .map(|o| (o.object.key.clone(), "apps/v1".to_string()))
        .collect();
    let resolved = engine.resolve_all(&keys).await.expect("resolve");
    let (web, bad): (Vec<_>, Vec<_>) = resolved.into_iter().partition(|(k, _)| k.name == "web");
    let first = engine.health(&web).await.expect("health");
    assert_eq!(
        first[0].health.status,
        HealthStatus::Progressing,
        "{:?}",
        first[0].health
    );
    let seen = std::sync::Mutex::new(Vec::new());
    let report = engine
        .wait_healthy(&web, Duration::from_secs(180), &|p| {
            if let Progress::Waiting { healthy, total } = p {
                seen.lock().expect("lock").push((healthy, total));
            }
        })
        .await
        .expect("wait");
    assert!(report.healthy, "{:?}", report.objects);
    assert_eq!(seen.lock().expect("lock").last(), Some(&(1, 1)));

    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        let h = engine.health(&bad).await.expect("health");
        if h[0].health.status == HealthStatus::Degraded || Instant::now() > deadline {
            break h[0].health.clone();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(status.status, HealthStatus::Degraded, "{status:?}");
    assert!(
        status.reason.contains("ProgressDeadlineExceeded")
            || status.reason.contains("progress deadline"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_the_server_rejects_leaves_the_cluster_untouched() {
    let mut fx = Fixture::new("sync-bad").await;
    fx.write("config.yaml", CONFIGMAP)
        .write("service.yaml", &SERVICE.replace("port: 80", "port: 99999"));
    fx.commit("bad port");
    let engine = fx.engine().await;
    let before = engine.requests();
    let err = fx.sync(SyncOptions::default()).await.expect_err("rejected");
    let text = err.to_string();
    assert!(
        text.contains("Service") && text.contains("99999") && text.contains("service.yaml"),
        "{text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
    assert_eq!(engine.requests().since(before).writes, 0);
    assert!(
        !fx.exists("configmap", "settings"),
        "the valid ConfigMap was not applied either"
    );
}

/// The tricky manifests of tests/data/drift: after a sync, diff must find no drift.
#[tokio::test(flavor = "multi_thread")]
async fn no_false_drift_on_tricky_manifests() {
    let mut fx = Fixture::new("sync-nodrift").await;
    let dir = workspace_root().join("tests/data/drift");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 8, "corpus");
    for f in &files {
        let name = f.file_name().expect("name").to_string_lossy().to_string();
        fx.write(&name, &std::fs::read_to_string(f).expect("read"));
    }
    fx.commit("tricky");
    let report = fx.sync(SyncOptions::default()).await.expect("sync");
    assert!(report.results.len() >= 20, "{}", report.results.len());
    let plan = fx.plan().await;
    let drift = drifted(&plan);
    assert!(drift.is_empty(), "false drift:\n{}", drift.join("\n"));
    assert!(
        statuses(&plan)
            .iter()
            .all(|(_, s)| *s == DiffStatus::InSync)
    );
    let again = fx.sync(SyncOptions::default()).await.expect("again");
    assert_eq!(again.requests.writes, 0);
    // Cluster-scoped objects are named after the namespace; remove them.
    for kind in ["clusterrole", "clusterrolebinding", "priorityclass"] {
        let _ = fx.kubectl(&[
            "delete",
            kind,
            &format!("{}-reader", fx.ns.name()),
            "--ignore-not-found",
        ]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rollout_lock_names_its_holder_and_can_be_broken() {
    use tidegate_cluster::{Holder, LeaseError, acquire_lease, release_lease};
    let fx = Fixture::new("lock").await;
    let client = fx.engine().await.client().clone();
    let name = format!("lock-{}", fx.ns.name());
    let ttl = Duration::from_secs(60);
    let a = Holder::this_process("alice@laptop");
    let mut b = Holder::this_process("controller");
    b.pid += 1;
    acquire_lease(&client, CONTEXT, &name, &a, ttl, false)
        .await
        .expect("alice takes it");
    acquire_lease(&client, CONTEXT, &name, &a, ttl, false)
        .await
        .expect("alice renews it");
    let err = acquire_lease(&client, CONTEXT, &name, &b, ttl, false)
        .await
        .expect_err("held");
    assert!(matches!(err, LeaseError::Held { .. }));
    let text = err.to_string();
    assert!(
        text.contains("alice@laptop") && text.contains("--break-lock"),
        "{text}"
    );
    acquire_lease(&client, CONTEXT, &name, &b, ttl, true)
        .await
        .expect("broken");
    release_lease(&client, CONTEXT, &name, &a)
        .await
        .expect("not alice's any more: no-op");
    let err = acquire_lease(&client, CONTEXT, &name, &a, ttl, false)
        .await
        .expect_err("controller holds it");
    assert!(err.to_string().contains("controller"), "{err}");
    release_lease(&client, CONTEXT, &name, &b)
        .await
        .expect("release");
    acquire_lease(&client, CONTEXT, &name, &a, ttl, false)
        .await
        .expect("free again");
    release_lease(&client, CONTEXT, &name, &a)
        .await
        .expect("release");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_deleted_from_git_is_pruned_with_its_inventory() {
    let mut fx = Fixture::new("sync-app-gone").await;
    let env_file = format!("environments/{}.yaml", fx.env);
    let with_app = std::fs::read_to_string(fx.git.path().join(&env_file)).expect("env");
    let two_apps = format!(
        "{with_app}    - name: extra\n      namespace: {}\n",
        fx.ns.name()
    );
    fx.git.write(&env_file, &two_apps);
    fx.write("config.yaml", CONFIGMAP);
    fx.git.write(
        "manifests/extra/extra.yaml",
        CONFIGMAP.replace("name: settings", "name: extra-settings"),
    );
    fx.commit("two apps");
    fx.sync(SyncOptions::default()).await.expect("sync");
    assert!(fx.exists("configmap", "extra-settings"));
    let inventory = |fx: &Fixture| {
        fx.kubectl(&[
            "get",
            "configmap",
            "-n",
            "tidegate-system",
            &format!("tidegate.{}.extra", fx.env),
        ])
        .is_ok()
    };
    assert!(inventory(&fx), "the extra app has an inventory");

    fx.git.write(&env_file, &with_app);
    fx.commit("drop the extra app");
    let report = fx
        .sync(SyncOptions {
            prune: true,
            ..SyncOptions::default()
        })
        .await
        .expect("prune");
    assert_eq!(report.count(Action::Pruned), 1, "{:?}", report.results);
    let deadline = Instant::now() + Duration::from_secs(60);
    while fx.exists("configmap", "extra-settings") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !fx.exists("configmap", "extra-settings"),
        "the departed app's objects are pruned"
    );
    assert!(
        fx.exists("configmap", "settings"),
        "the remaining app is untouched"
    );
    assert!(!inventory(&fx), "the departed app's inventory is deleted");
}

/// The server's message echoes repository content: a label value "dry run"
/// makes the 422 message say "dry run", which must not be taken for a
/// server that cannot dry-run (that fell back to a client-side diff and
/// applied the valid ConfigMap before the Service failed).
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_object_whose_error_says_dry_run_leaves_every_sibling_unapplied() {
    let mut fx = Fixture::new("sync-dryrun-text").await;
    fx.write("config.yaml", CONFIGMAP).write(
        "service.yaml",
        &SERVICE.replace(
            "name: web\n",
            "name: web\n  labels:\n    note: \"dry run\"\n",
        ),
    );
    fx.commit("a label value the server refuses, quoting it");
    let engine = fx.engine().await;
    let before = engine.requests();
    let err = fx.sync(SyncOptions::default()).await.expect_err("rejected");
    let text = err.to_string();
    assert!(text.contains("dry run") && text.contains("422"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert_eq!(engine.requests().since(before).writes, 0);
    assert!(
        !fx.exists("configmap", "settings"),
        "the ConfigMap was applied"
    );
    assert!(!fx.exists("service", "web"));
}

/// YAML 1.1 numbers reach the cluster as `kubectl apply` sends them:
/// `defaultMode: 0400` is 256 (octal) and `replicas: 010` is 8, for Tidegate
/// and for kubectl alike.
#[tokio::test(flavor = "multi_thread")]
async fn yaml11_octal_numbers_are_applied_as_kubectl_applies_them() {
    let mut fx = Fixture::new("sync-octal").await;
    let manifest = |name: &str| {
        deployment(name, "registry.example/web:1", 1, "")
            .replace("  replicas: 1\n", "  replicas: 010\n")
            .replace(
                "      containers:\n",
                "      volumes:\n        - name: config\n          configMap:\n            name: settings\n            defaultMode: 0400\n        - name: secret\n          secret:\n            secretName: creds\n            defaultMode: 0644\n      containers:\n",
            )
    };
    fx.write("web.yaml", &manifest("web"));
    fx.commit("octal modes");
    fx.sync(SyncOptions::default()).await.expect("sync");
    let by_kubectl = std::env::temp_dir().join(format!("{}-kubectl.yaml", fx.ns.name()));
    std::fs::write(&by_kubectl, manifest("web-kubectl")).expect("write");
    fx.kubectl(&[
        "apply",
        "-n",
        fx.ns.name(),
        "-f",
        &by_kubectl.display().to_string(),
    ])
    .expect("kubectl apply");
    let _ = std::fs::remove_file(&by_kubectl);
    for name in ["web", "web-kubectl"] {
        assert_eq!(
            fx.field("deployment", name, "{.spec.replicas}"),
            "8",
            "{name}"
        );
        assert_eq!(
            fx.field(
                "deployment",
                name,
                "{.spec.template.spec.volumes[0].configMap.defaultMode}"
            ),
            "256",
            "{name}"
        );
        assert_eq!(
            fx.field(
                "deployment",
                name,
                "{.spec.template.spec.volumes[1].secret.defaultMode}"
            ),
            "420",
            "{name}"
        );
    }
    let plan = fx.plan().await;
    assert!(drifted(&plan).is_empty(), "{:#?}", drifted(&plan));
}

/// An environment name that cannot name the inventory (validate refuses it;
/// here it is forced past validation) stops the sync before its first
/// write: objects applied without an inventory could never be pruned.
#[tokio::test(flavor = "multi_thread")]
async fn an_inventory_name_the_server_would_refuse_stops_the_sync_before_any_write() {
    let mut fx = Fixture::new("sync-invname").await;
    fx.write("config.yaml", CONFIGMAP);
    fx.commit("app");
    let (mut desired, _) = load_env(fx.git.path(), &fx.env).expect("valid");
    desired.environment.metadata.name = "Prod_EU".into();
    let rendered = tidegate_render::render_environment(
        &desired.environment,
        &desired.env_file,
        &desired.commit.sha,
        &desired.apps,
    )
    .expect("renders");
    let engine = connect(&desired).await;
    let before = engine.requests();
    let err = engine
        .sync(
            &target(&desired, &rendered),
            &SyncOptions::default(),
            &|_| {},
        )
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("tidegate.Prod_EU.app"), "{text}");
    assert_eq!(engine.requests().since(before).writes, 0);
    assert!(!fx.exists("configmap", "settings"));
}

/// An invalid object in a namespace the same sync creates cannot be dry-run
/// where it goes; a dry-run create in `default` still finds it, so neither
/// the namespace nor its valid sibling is applied.
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_object_in_a_namespace_the_sync_creates_leaves_the_cluster_untouched() {
    let mut fx = Fixture::new("sync-newns").await;
    let new_ns = format!("{}-new", fx.ns.name());
    fx.write(
        "namespace.yaml",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {new_ns}\n"),
    )
    .write(
        "config.yaml",
        &CONFIGMAP.replace(
            "name: settings\n",
            &format!("name: settings\n  namespace: {new_ns}\n"),
        ),
    )
    .write(
        "service.yaml",
        &SERVICE
            .replace(
                "name: web\n",
                &format!("name: web\n  namespace: {new_ns}\n"),
            )
            .replace("port: 80", "port: 99999"),
    );
    fx.commit("a bad Service in a new namespace");
    let engine = fx.engine().await;
    let before = engine.requests();
    let err = fx.sync(SyncOptions::default()).await.expect_err("rejected");
    let text = err.to_string();
    assert!(
        text.contains("99999") && text.contains("service.yaml"),
        "{text}"
    );
    assert_eq!(engine.requests().since(before).writes, 0);
    assert!(
        fx.kubectl(&["get", "namespace", &new_ns, "-o", "name"])
            .is_err(),
        "the namespace was created"
    );
}
