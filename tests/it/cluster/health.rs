//! Health gates on custom resources, on a real cluster: a CRD with a status
//! subresource and a custom resource whose status the test writes (as its
//! controller would), rolled out by the fleet driver.
//!
//! - no status → `Ready=False` (`Reconciling`) → `Ready=True`: the wave
//!   waits through the first two and passes after the third;
//! - a new revision whose resource goes `Stalled=True`: the wave fails and
//!   is rolled back;
//! - a custom resource of a kind without status subresource (configuration)
//!   is Healthy without any status, read from discovery;
//! - `tidegate status` names the check that decided a custom resource that
//!   is not Healthy;
//! - `tidegate health -f`, `tidegate validate` and `tidegate plan` with Lua
//!   and CEL checks committed to the repository (no cluster needed, but the
//!   binary).

use super::fleet;
use crate::pipeline::{load_env_at, roll_out};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tidegate_fleet::{DriverOptions, Outcome, RolloutReport};
use tidegate_health::{CheckSource, HealthStatus};
use tidegate_sync::Engine;
use tidegate_testkit::{Fleet, TestNamespace};
use tidegate_tests::GitFixture;

const CLUSTER: &str = "eks-us-east-1";

struct Fixture {
    fleet: &'static Fleet,
    git: GitFixture,
    ns: TestNamespace,
    env: String,
    group: String,
}

impl Fixture {
    async fn new(prefix: &str) -> Fixture {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        let env = ns.name().to_string();
        // CRDs are cluster-wide: one group per test.
        let group = format!("{env}.tidegate.test");
        let git = GitFixture::new();
        git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: {CLUSTER}\n      provider:\n        kubeconfig:\n          context: {CLUSTER}\n      wave: 1\n  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 90s\n    bakeTime: 1s\n    failurePolicy: rollback\n"
            ),
        );
        git.write(
            "manifests/app/crd.yaml",
            format!(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n  names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}\n  scope: Namespaced\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      subresources: {{status: {{}}}}\n      schema:\n        openAPIV3Schema:\n          type: object\n          x-kubernetes-preserve-unknown-fields: true\n"
            ),
        );
        // A plain configuration kind: no status subresource, so no status
        // to wait for.
        git.write(
            "manifests/app/settings-crd.yaml",
            format!(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: settings.{group}\nspec:\n  group: {group}\n  names: {{kind: Setting, plural: settings, singular: setting, listKind: SettingList}}\n  scope: Namespaced\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          x-kubernetes-preserve-unknown-fields: true\n"
            ),
        );
        git.write(
            "manifests/app/setting.yaml",
            format!(
                "apiVersion: {group}/v1\nkind: Setting\nmetadata:\n  name: s\nspec:\n  level: 3\n"
            ),
        );
        let mut fx = Fixture {
            fleet,
            git,
            ns,
            env,
            group,
        };
        fx.write_widget(1);
        fx.git.commit("v1");
        fx
    }

    /// Writes the Widget manifest with `spec.size`.
    fn write_widget(&mut self, size: u32) {
        self.git.write(
            "manifests/app/widget.yaml",
            format!(
                "apiVersion: {}/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: {size}\n",
                self.group
            ),
        );
    }

    async fn rollout(&self) -> RolloutReport {
        let options = DriverOptions {
            poll: Duration::from_millis(300),
            identity: "tests".into(),
            ..DriverOptions::default()
        };
        roll_out(self.git.path(), &self.env, options, None, None)
            .await
            .expect("rollout runs")
    }

    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.fleet
            .kubectl(CLUSTER, args)
            .map_err(|e| format!("{e:#}"))
    }

    /// `kubectl <verb> widgets.<group> w -n <ns> <args>`.
    fn widget(&self, verb: &str, args: &[&str]) -> Result<String, String> {
        let resource = format!("widgets.{}", self.group);
        let mut all = vec![verb, resource.as_str(), "w", "-n", self.ns.name()];
        all.extend_from_slice(args);
        self.kubectl(&all)
    }

    /// Waits until the Widget exists (the rollout applied it); its generation.
    async fn wait_for_widget(&self) -> i64 {
        for _ in 0..600 {
            if let Ok(out) = self.widget("get", &["-o", "jsonpath={.metadata.generation}"])
                && let Ok(generation) = out.trim().parse()
            {
                return generation;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the rollout never applied the Widget");
    }

    /// Writes the Widget's status through the status subresource, as its
    /// controller would.
    fn set_status(&self, status: serde_json::Value) {
        let patch = json!({ "status": status }).to_string();
        self.widget(
            "patch",
            &["--subresource=status", "--type=merge", "-p", &patch],
        )
        .expect("status patch");
    }

    /// The Widget's health as the sync engine assesses it.
    async fn widget_health(&self) -> (HealthStatus, String, CheckSource) {
        self.health_of("Widget", "w").await
    }

    /// The health of a custom resource of this test's group, as the sync
    /// engine assesses it.
    async fn health_of(&self, kind: &str, name: &str) -> (HealthStatus, String, CheckSource) {
        let (desired, _) = load_env_at(self.git.path(), &self.env, "HEAD").expect("valid");
        let cluster = desired.environment.cluster(CLUSTER).expect("cluster");
        let engine = Engine::connect(&super::kubeconfig_factory(fleet().await), cluster)
            .await
            .expect("connect");
        let key = tidegate_core::ObjectKey::new(&self.group, kind, Some(self.ns.name()), name);
        let resolved = engine
            .resolve_all(&[(key, format!("{}/v1", self.group))])
            .await
            .expect("resolve");
        let health = engine.health(&resolved).await.expect("health");
        let h = &health[0];
        (h.health.status, h.health.reason.clone(), h.check.clone())
    }

    /// Waits until the engine sees the Widget as `status`.
    async fn wait_for_health(&self, status: HealthStatus) -> String {
        let mut last = None;
        for _ in 0..100 {
            let (s, reason, check) = self.widget_health().await;
            assert_eq!(check, CheckSource::BuiltIn);
            if s == status {
                return reason;
            }
            last = Some((s, reason));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Widget never became {status}: last {last:?}");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.kubectl(&[
            "delete",
            "crd",
            &format!("widgets.{}", self.group),
            &format!("settings.{}", self.group),
            "--wait=false",
        ]);
    }
}

fn ready(status: &str, reason: &str, generation: i64) -> serde_json::Value {
    json!({
        "observedGeneration": generation,
        "conditions": [{
            "type": "Ready", "status": status, "reason": reason, "message": "test controller",
            "lastTransitionTime": "2026-12-01T10:00:00Z", "observedGeneration": generation,
        }]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wave_waits_for_a_custom_resource_until_it_is_ready() {
    let fx = Fixture::new("health-wait").await;
    let ready_written = Arc::new(AtomicBool::new(false));
    let controller = async {
        let generation = fx.wait_for_widget().await;
        // No status yet: waiting, not a pass.
        let reason = fx.wait_for_health(HealthStatus::Progressing).await;
        assert!(reason.contains("Waiting for the controller"), "{reason}");
        fx.set_status(json!({
            "observedGeneration": generation,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "Reconciling", "message": "creating widgets",
                 "lastTransitionTime": "2026-12-01T10:00:00Z"},
                {"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "creating widgets",
                 "lastTransitionTime": "2026-12-01T10:00:00Z"},
            ]
        }));
        let reason = fx.wait_for_health(HealthStatus::Progressing).await;
        assert!(reason.contains("Reconciling"), "{reason}");
        // Several polls of the driver see it in progress before it is ready.
        tokio::time::sleep(Duration::from_secs(2)).await;
        ready_written.store(true, Ordering::SeqCst);
        fx.set_status(ready("True", "Succeeded", generation));
    };
    let (report, ()) = tokio::join!(fx.rollout(), controller);
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    assert!(
        ready_written.load(Ordering::SeqCst),
        "the wave passed before the Widget was Ready"
    );
    assert_eq!(fx.widget_health().await.0, HealthStatus::Healthy);
    // The configuration kind never had a status and never held the wave.
    let (status, reason, _) = fx.health_of("Setting", "s").await;
    assert_eq!(status, HealthStatus::Healthy, "{reason}");
    assert!(reason.contains("no status subresource"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_resource_that_stalls_fails_the_wave_and_is_rolled_back() {
    let mut fx = Fixture::new("health-stall").await;
    let first = async {
        let generation = fx.wait_for_widget().await;
        fx.set_status(ready("True", "Succeeded", generation));
    };
    let (report, ()) = tokio::join!(fx.rollout(), first);
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let good = fx.git.head();

    fx.write_widget(5);
    fx.git.write(
        "manifests/app/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: added-by-bad\ndata:\n  A: b\n",
    );
    fx.git.commit("v2: the controller gives up on it");
    let stall = async {
        // Generation 2 is the new spec; the controller reports it stalled.
        for _ in 0..600 {
            if fx.wait_for_widget().await >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        fx.set_status(json!({
            "observedGeneration": 2,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "InvalidSize", "message": "size 5 is not allowed",
                 "lastTransitionTime": "2026-12-01T10:00:00Z", "observedGeneration": 2},
                {"type": "Stalled", "status": "True", "reason": "InvalidSize", "message": "size 5 is not allowed",
                 "lastTransitionTime": "2026-12-01T10:00:00Z", "observedGeneration": 2},
            ]
        }));
    };
    let (report, ()) = tokio::join!(fx.rollout(), stall);
    assert!(
        matches!(report.outcome, Outcome::RolledBack { .. }),
        "{:?} {:?}",
        report.outcome,
        report.timeline
    );
    assert!(
        report
            .timeline
            .iter()
            .any(|(c, what, _)| c == CLUSTER && *what == tidegate_fleet::ClusterStep::RolledBack),
        "{:?} {:?}",
        report.outcome,
        report.timeline
    );
    // Back at the good revision: the Widget's spec and no extra ConfigMap.
    let size = fx
        .widget("get", &["-o", "jsonpath={.spec.size}"])
        .expect("widget");
    assert_eq!(size.trim(), "1");
    assert!(
        fx.kubectl(&["get", "configmap", "added-by-bad", "-n", fx.ns.name()])
            .is_err(),
        "the rollback pruned what the bad revision added"
    );
    let _ = good;
}

/// A repository with environment `dev` whose health checks are the Lua
/// scripts of `crates/health/tests/checks` (Argo CD's layout, committed
/// under `health/`) and the CEL check `cel` (YAML lines, indented by 8).
fn checks_repo(cel: &str) -> GitFixture {
    let mut git = GitFixture::new();
    git.copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/health/tests/checks"),
        "health",
    );
    git.write(
        "manifests/app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n",
    );
    git.write(
        "environments/dev.yaml",
        format!(
            "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: dev\nspec:\n  source:\n    repoURL: .\n  clusters:\n    - name: dev\n      provider: {{kubeconfig: {{}}}}\n  apps:\n    - name: app\n  health:\n    checksPath: health\n    checks:\n      - group: parts.tidegate.dev\n        kind: Gadget\n        cel:\n{cel}"
        ),
    );
    git.commit("checks");
    git
}

const GOOD_CEL: &str = "          current: \"status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')\"\n          failed: \"status.conditions.exists(c, c.type == 'Broken' && c.status == 'True')\"\n";

#[test]
fn tidegate_health_runs_the_environments_checks_on_a_file() {
    let git = checks_repo(GOOD_CEL);
    let home = tempfile::tempdir().expect("home");
    let objects = home.path().join("objects.yaml");
    std::fs::write(
        &objects,
        "apiVersion: example.tidegate.dev/v1\nkind: Widget\nmetadata: {name: w, namespace: shop}\nspec: {widgets: 3}\nstatus: {widgetsReady: 1}\n---\napiVersion: parts.tidegate.dev/v1\nkind: Gadget\nmetadata: {name: g, namespace: shop}\nstatus:\n  conditions: [{type: Broken, status: \"True\"}]\n---\napiVersion: other.tidegate.dev/v1\nkind: Gizmo\nmetadata: {name: z}\nstatus:\n  conditions: [{type: Ready, status: \"True\", message: fine}]\n---\napiVersion: example.com/v1\nkind: Thing\nmetadata: {name: t}\n",
    )
    .expect("objects");
    let out = super::tidegate_command(git.path(), home.path())
        .args(["health", "-f"])
        .arg(&objects)
        .args(["--env", "dev"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "Widget shop/w: Progressing: 1 of 3 widgets ready  [Lua health/example.tidegate.dev/Widget/health.lua]",
            "Gadget shop/g: Degraded: failed is true: status.conditions.exists(c, c.type == 'Broken' && c.status == 'True')  [CEL environments/dev.yaml:16]",
            "Gizmo z: Healthy: fine  [Lua health/_.tidegate.dev/_/health.lua]",
            "Thing t: Progressing: Waiting for the controller to report a status  [built-in]",
        ],
        "{stdout}"
    );
}

#[test]
fn validate_refuses_invalid_cel_and_lua_at_their_lines() {
    let mut git = checks_repo(
        "          current: \"status.ready ==\"\n          inProgress: \"has(status.x)\"\n",
    );
    git.write(
        "health/example.tidegate.dev/Broken/health.lua",
        "local hs = {}\nif obj.status then\nreturn hs\n",
    );
    git.commit("broken checks");
    let home = tempfile::tempdir().expect("home");
    let out = super::tidegate_command(git.path(), home.path())
        .args(["validate", "--env", "dev", "--offline"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("environments/dev.yaml:19: spec.health.checks: CEL for parts.tidegate.dev/Gadget: current:"),
        "{all}"
    );
    assert!(
        all.contains("error: health/example.tidegate.dev/Broken/health.lua:4: 'end' expected (to close 'if' at line 2)"),
        "{all}"
    );
    assert!(
        !all.contains("inProgress:"),
        "the valid expression is not reported: {all}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_names_the_check_that_decided_an_object_that_is_not_healthy() {
    let mut fx = Fixture::new("health-status").await;
    // The environment decides Widgets with a CEL check.
    let env_file = format!("environments/{}.yaml", fx.env);
    let text = std::fs::read_to_string(fx.git.path().join(&env_file)).expect("environment");
    let check_line = text.lines().count() + 3;
    fx.git.write(
        &env_file,
        format!(
            "{text}  health:\n    checks:\n      - group: {}\n        kind: Widget\n        cel:\n          current: \"status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')\"\n          failed: \"status.conditions.exists(c, c.type == 'Broken' && c.status == 'True')\"\n",
            fx.group
        ),
    );
    fx.git.commit("a CEL check for Widgets");
    // What a sync would have applied, applied here directly.
    let manifests = fx.git.path().join("manifests/app");
    for crd in ["crd.yaml", "settings-crd.yaml"] {
        fx.kubectl(&["apply", "-f", &manifests.join(crd).display().to_string()])
            .expect("CRD applied");
    }
    fx.kubectl(&[
        "wait",
        "--for=condition=established",
        &format!("crd/widgets.{}", fx.group),
        &format!("crd/settings.{}", fx.group),
    ])
    .expect("CRDs established");
    for manifest in ["widget.yaml", "setting.yaml"] {
        fx.kubectl(&[
            "apply",
            "-n",
            fx.ns.name(),
            "-f",
            &manifests.join(manifest).display().to_string(),
        ])
        .expect("applied");
    }
    fx.set_status(json!({"conditions": [
        {"type": "Broken", "status": "True", "reason": "OutOfParts", "message": "test controller"}
    ]}));
    let home = tempfile::tempdir().expect("home");
    let status = || {
        let out = super::tidegate_command(fx.git.path(), home.path())
            .env("KUBECONFIG", fx.fleet.kubeconfig())
            .args(["status", "--env", &fx.env, "--cluster", CLUSTER])
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        (
            out.status.code(),
            stdout,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, stderr) = status();
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let expected = format!(
        "  {}/Widget {}/w: Degraded: failed is true: status.conditions.exists(c, c.type == 'Broken' && c.status == 'True') [check: CEL {env_file}:{check_line}]",
        fx.group,
        fx.ns.name()
    );
    assert!(
        stdout.lines().any(|l| l == expected),
        "expected the line\n{expected}\nin\n{stdout}{stderr}"
    );
    // Healthy by the same check: no worst-object line.
    fx.set_status(json!({"conditions": [
        {"type": "Broken", "status": "False", "reason": "Repaired"},
        {"type": "Ready", "status": "True", "reason": "Ready"}
    ]}));
    let (_, stdout, stderr) = status();
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(CLUSTER) && l.contains(" Healthy ")),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains("[check:"), "{stdout}{stderr}");
}

#[test]
fn plan_lists_the_kinds_a_custom_check_decides() {
    let mut git = checks_repo(GOOD_CEL);
    git.write(
        "manifests/app/parts.yaml",
        "apiVersion: example.tidegate.dev/v1\nkind: Widget\nmetadata: {name: w}\nspec: {widgets: 3}\n---\napiVersion: parts.tidegate.dev/v1\nkind: Gadget\nmetadata: {name: g}\n---\napiVersion: example.com/v1\nkind: Thing\nmetadata: {name: t}\n",
    );
    git.commit("objects of checked and unchecked kinds");
    let home = tempfile::tempdir().expect("home");
    let run = |output: &str| {
        let out = super::tidegate_command(git.path(), home.path())
            .args(["plan", "--env", "dev", "--offline", "-o", output])
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let text = run("text");
    let listed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("health of "))
        .collect();
    assert_eq!(
        listed,
        [
            "health of example.tidegate.dev/Widget: Lua health/example.tidegate.dev/Widget/health.lua",
            "health of parts.tidegate.dev/Gadget: CEL environments/dev.yaml:16",
        ],
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&run("json")).expect("JSON plan");
    assert_eq!(
        json["healthChecks"],
        json!({
            "example.tidegate.dev/Widget": "Lua health/example.tidegate.dev/Widget/health.lua",
            "parts.tidegate.dev/Gadget": "CEL environments/dev.yaml:16",
        })
    );
}
