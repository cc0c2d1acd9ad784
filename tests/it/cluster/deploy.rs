//! deploy/ against a real API server (its kube-apiserver authorizes with
//! RBAC): the manifests pass a server-side dry run, and the shipped
//! managed-cluster role is proven least-privilege by real rollouts run *as
//! its ServiceAccount* (a kubeconfig holding a `kubectl create token`
//! token): it is enough to apply, run a PreSync hook Job and prune; a kind
//! outside it is refused clearly before any write; and taking one rule away
//! makes a rollout fail.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use tidegate_testkit::{Fleet, TestNamespace};
use tidegate_tests::GitFixture;

use super::{fleet, output_text, tidegate_bin};

/// The cluster the tests install the roles in and sync to.
const CLUSTER: &str = "eks-us-east-1";
/// The shipped ServiceAccount, in the shipped namespace.
const NAMESPACE: &str = "tidegate-system";
const SERVICE_ACCOUNT: &str = "tidegate-controller";

fn deploy_dir() -> PathBuf {
    tidegate_tests::workspace_root().join("deploy")
}

fn kubectl(fleet: &Fleet, args: &[&str]) -> String {
    fleet
        .kubectl(CLUSTER, args)
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
}

/// Installs deploy/managed/ as an administrator would.
fn install_shipped_managed_role(fleet: &Fleet) {
    apply_shipped(fleet, CLUSTER, "managed");
}

/// `kubectl apply -f deploy/<path>` in `context`, one at a time in this
/// process (tests running side by side would otherwise race to create the
/// same objects, and one of them would see AlreadyExists).
fn apply_shipped(fleet: &Fleet, context: &str, path: &str) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let file = deploy_dir().join(path).display().to_string();
    fleet
        .kubectl(context, &["apply", "-f", &file])
        .unwrap_or_else(|e| panic!("deploy/{path} in {context}: {e}"));
}

/// A kubeconfig for `CLUSTER` (context of the same name) that authenticates
/// with a token of ServiceAccount `tidegate-system/<account>` and nothing
/// else: every request it sends is authorized by that account's bindings.
fn service_account_kubeconfig(fleet: &Fleet, account: &str, dir: &Path) -> PathBuf {
    let config = service_account_config(fleet, CLUSTER, account);
    let path = dir.join(format!("{account}.kubeconfig"));
    std::fs::write(&path, config.to_string()).expect("write kubeconfig");
    path
}

/// The kubeconfig (JSON) of one context, `context`, authenticating as
/// ServiceAccount `tidegate-system/<account>` of that cluster.
fn service_account_config(fleet: &Fleet, context: &str, account: &str) -> Value {
    let run = |args: &[&str]| {
        fleet
            .kubectl(context, args)
            .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    };
    let token = run(&["create", "token", account, "-n", NAMESPACE, "--duration=1h"]);
    let admin = run(&[
        "config",
        "view",
        "--raw",
        "--minify",
        "--flatten",
        "-o",
        "json",
    ]);
    let mut config: Value = serde_json::from_str(&admin).expect("kubeconfig JSON");
    let user = format!("{context}-{account}");
    config["users"] = json!([{ "name": user, "user": { "token": token.trim() } }]);
    config["contexts"][0]["context"]["user"] = json!(user);
    assert_eq!(config["contexts"][0]["name"], context);
    config
}

/// The app: a ConfigMap whose `mode` is `mode`, a Service, a Deployment, an
/// Ingress (when `ingress`), a PreSync hook Job, and `extra` documents.
fn manifests(mode: &str, ingress: bool, extra: &str) -> String {
    let mut docs = vec![
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: {mode}\n"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n    - port: 80\n      targetPort: 8080\n".to_string(),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: app\n          image: registry.example/web:1\n".to_string(),
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    tidegate.dev/hook: PreSync\n    tidegate.dev/hook-delete-policy: BeforeHookCreation\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: run\n          image: registry.example/migrate:1\n".to_string(),
    ];
    if ingress {
        docs.push("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\nspec:\n  rules:\n    - host: web.example\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n              service:\n                name: web\n                port:\n                  number: 80\n".to_string());
    }
    if !extra.is_empty() {
        docs.push(extra.to_string());
    }
    docs.join("---\n")
}

/// One environment (named after a fresh namespace) with one cluster and
/// one app in that namespace, pruning, synced with a kubeconfig.
struct Scenario {
    fleet: &'static Fleet,
    ns: TestNamespace,
    git: GitFixture,
    state: tempfile::TempDir,
}

impl Scenario {
    async fn new(prefix: &str) -> Scenario {
        Scenario::with_sync(prefix, "    prune: true\n").await
    }

    /// An environment whose `spec.sync` is `sync` (indented by 4).
    async fn with_sync(prefix: &str, sync: &str) -> Scenario {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("test namespace");
        let env = ns.name().to_string();
        let git = GitFixture::new();
        git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: {CLUSTER}\n      provider:\n        kubeconfig:\n          context: {CLUSTER}\n      wave: 1\n  apps:\n    - name: app\n      namespace: {env}\n  sync:\n{sync}  rollout:\n    bakeTime: 1s\n"
            ),
        );
        Scenario {
            fleet,
            ns,
            git,
            state: tempfile::tempdir().expect("state dir"),
        }
    }

    fn env(&self) -> &str {
        self.ns.name()
    }

    fn commit(&mut self, manifests: &str, message: &str) {
        self.git.write("manifests/app/app.yaml", manifests);
        self.git.commit(message);
    }

    /// `tidegate sync --env <env>` (a fleet rollout: lock, waves, hooks,
    /// health) with `kubeconfig` as the only credentials.
    fn sync(&self, kubeconfig: &Path) -> Output {
        self.tidegate(kubeconfig, "sync")
    }

    /// `tidegate <command> --env <env>` with `kubeconfig` as the only credentials.
    fn tidegate(&self, kubeconfig: &Path, command: &str) -> Output {
        std::process::Command::new(tidegate_bin())
            .args(["--color", "never", "--repo"])
            .arg(self.git.path())
            .args([command, "--env", self.env()])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", self.state.path())
            .env("XDG_STATE_HOME", self.state.path())
            .env("XDG_CACHE_HOME", self.state.path().join("cache"))
            .env("TIDEGATE_AUDIT_DB", self.state.path().join("audit.db"))
            .output()
            .expect("tidegate sync")
    }

    /// A field of an object in the scenario's namespace, read as the
    /// administrator ("" when the object does not exist).
    fn field(&self, kind: &str, name: &str, jsonpath: &str) -> String {
        kubectl(
            self.fleet,
            &[
                "get",
                kind,
                name,
                "-n",
                self.env(),
                "--ignore-not-found",
                "-o",
                &format!("jsonpath={jsonpath}"),
            ],
        )
    }
}

/// A failed run that is a clear refusal, not a crash.
fn assert_refused(output: &Output, what: &str) -> String {
    let text = output_text(output);
    assert!(!output.status.success(), "{what}: succeeded\n{text}");
    assert_ne!(output.status.code(), Some(101), "{what}: crashed\n{text}");
    assert!(!text.contains("panicked"), "{what}: crashed\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deploy_manifests_pass_a_server_side_dry_run() {
    let fleet = fleet().await;
    // A dry run creates nothing, so the namespaced objects need their
    // namespace first (the same file an install applies first).
    apply_shipped(fleet, CLUSTER, "managed/namespace.yaml");
    let mut args = vec!["apply", "--dry-run=server", "--validate=strict"];
    let dirs: Vec<String> = ["management", "management/shard", "managed", "examples"]
        .iter()
        .map(|d| deploy_dir().join(d).display().to_string())
        .collect();
    for dir in &dirs {
        args.extend(["-f", dir.as_str()]);
    }
    let out = kubectl(fleet, &args);
    for object in [
        "deployment.apps/tidegate-controller",
        "persistentvolumeclaim/tidegate-audit",
        "service/tidegate-controller",
        "service/tidegate-controller-pods",
        "poddisruptionbudget.policy/tidegate-controller",
        "networkpolicy.networking.k8s.io/tidegate-controller",
        "role.rbac.authorization.k8s.io/tidegate-controller",
        "rolebinding.rbac.authorization.k8s.io/tidegate-controller",
        "clusterrole.rbac.authorization.k8s.io/tidegate-controller-namespace",
        "clusterrolebinding.rbac.authorization.k8s.io/tidegate-controller-namespace",
        "clusterrole.rbac.authorization.k8s.io/tidegate-token-admin",
        "rolebinding.rbac.authorization.k8s.io/tidegate-token-admin",
        "clusterrole.rbac.authorization.k8s.io/tidegate-managed",
        "clusterrolebinding.rbac.authorization.k8s.io/tidegate-managed",
        "role.rbac.authorization.k8s.io/tidegate-system",
        "rolebinding.rbac.authorization.k8s.io/tidegate-system",
        "clusterrole.rbac.authorization.k8s.io/tidegate-managed-extra",
        "role.rbac.authorization.k8s.io/tidegate-controller-shard",
        "rolebinding.rbac.authorization.k8s.io/tidegate-controller-shard",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{object} ")) && l.ends_with("(server dry run)")),
            "{object} not accepted:\n{out}"
        );
    }

    // The same dry run refuses a field the API does not know (so the check
    // above can fail).
    let broken = std::fs::read_to_string(deploy_dir().join("management/deployment.yaml"))
        .expect("deployment.yaml")
        .replace("readOnlyRootFilesystem", "readOnlyRootFileSystem");
    let temp = tempfile::tempdir().expect("temp");
    let file = temp.path().join("deployment.yaml");
    std::fs::write(&file, broken).expect("write");
    let refused = fleet
        .kubectl(
            CLUSTER,
            &[
                "apply",
                "--dry-run=server",
                "--validate=strict",
                "-f",
                &file.display().to_string(),
            ],
        )
        .expect_err("a misspelled field must be refused");
    assert!(
        refused.to_string().contains("readOnlyRootFileSystem"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_managed_role_is_enough_to_sync_run_hooks_and_prune() {
    let mut s = Scenario::new("rbac-ok").await;
    install_shipped_managed_role(s.fleet);
    let kubeconfig = service_account_kubeconfig(s.fleet, SERVICE_ACCOUNT, s.state.path());

    // v1: first deploy, with its PreSync hook Job.
    s.commit(&manifests("one", true, ""), "v1");
    let v1 = s.sync(&kubeconfig);
    assert!(v1.status.success(), "v1:\n{}", output_text(&v1));
    assert_eq!(s.field("configmap", "settings", "{.data.mode}"), "one");
    assert_eq!(s.field("ingress", "web", "{.metadata.name}"), "web");
    assert_eq!(s.field("deployment", "web", "{.status.readyReplicas}"), "1");
    let jobs = kubectl(
        s.fleet,
        &[
            "get",
            "jobs",
            "-n",
            s.env(),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.succeeded}{\"\\n\"}{end}",
        ],
    );
    assert!(
        jobs.lines()
            .any(|l| l.starts_with("migrate-") && l.ends_with("=1")),
        "the PreSync hook did not run: {jobs:?}"
    );

    // v2: the Ingress leaves Git and is pruned; the ConfigMap changes.
    s.commit(&manifests("two", false, ""), "v2");
    let v2 = s.sync(&kubeconfig);
    assert!(v2.status.success(), "v2:\n{}", output_text(&v2));
    assert_eq!(s.field("configmap", "settings", "{.data.mode}"), "two");
    assert_eq!(s.field("ingress", "web", "{.metadata.name}"), "");

    // v3: a kind the role does not grant (a ServiceAccount) is refused by
    // the pre-flight dry run, clearly, and nothing is written.
    let extra = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: worker\n";
    s.commit(&manifests("three", false, extra), "v3");
    let v3 = s.sync(&kubeconfig);
    let text = assert_refused(&v3, "v3 with a ServiceAccount");
    assert!(
        text.contains("lacks `get` on serviceaccounts in namespace")
            && text.contains("add the rule {apiGroups: [\"\"], resources: [\"serviceaccounts\"]"),
        "the refusal does not say which permission is missing:\n{text}"
    );
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(s.field("configmap", "settings", "{.data.mode}"), "two");
    assert_eq!(s.field("serviceaccount", "worker", "{.metadata.name}"), "");
}

/// A copy of deploy/managed/rbac.yaml for ServiceAccount `account` (roles
/// and bindings renamed after it), with `remove` applied to the rules of
/// each role (`kind`, rules); returns the applied objects for clean-up.
fn install_modified_role(
    fleet: &Fleet,
    account: &str,
    dir: &Path,
    remove: &dyn Fn(&str, &mut Vec<Value>),
) -> Vec<(String, Option<String>)> {
    kubectl(
        fleet,
        &["create", "serviceaccount", account, "-n", NAMESPACE],
    );
    let text = std::fs::read_to_string(deploy_dir().join("managed/rbac.yaml")).expect("rbac.yaml");
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("rbac.yaml parses");
    let mut applied = vec![(
        format!("serviceaccount/{account}"),
        Some(NAMESPACE.to_string()),
    )];
    for doc in &mut docs {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        let name = format!(
            "{}-{account}",
            doc["metadata"]["name"].as_str().expect("name")
        );
        doc["metadata"]["name"] = json!(name);
        match kind.as_str() {
            "ClusterRole" | "Role" => {
                let mut rules: Vec<Value> = doc["rules"].as_array().expect("rules").clone();
                remove(&kind, &mut rules);
                doc["rules"] = json!(rules);
            }
            _ => {
                let role = doc["roleRef"]["name"]
                    .as_str()
                    .expect("roleRef")
                    .to_string();
                doc["roleRef"]["name"] = json!(format!("{role}-{account}"));
                doc["subjects"][0]["name"] = json!(account);
            }
        }
        let namespace = doc["metadata"]["namespace"].as_str().map(str::to_string);
        applied.push((format!("{kind}/{name}"), namespace));
    }
    let file = dir.join(format!("{account}-rbac.json"));
    std::fs::write(
        &file,
        json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string(),
    )
    .expect("write rbac");
    kubectl(fleet, &["apply", "-f", &file.display().to_string()]);
    applied
}

/// Removes `verb` from the rules of `resource`, or the whole rule when
/// `verb` is None.
fn without(rules: &mut Vec<Value>, resource: &str, verb: Option<&str>) {
    let has = |r: &Value| {
        r["resources"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|x| x == resource))
    };
    let before = serde_json::to_string(rules).unwrap_or_default();
    match verb {
        None => rules.retain(|r| !has(r)),
        Some(verb) => {
            for rule in rules.iter_mut().filter(|r| has(r)) {
                let verbs = rule["verbs"].as_array_mut().expect("verbs");
                verbs.retain(|v| v != verb);
            }
        }
    }
    assert_ne!(
        before,
        serde_json::to_string(rules).unwrap_or_default(),
        "no rule grants {verb:?} on {resource}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_rule_from_the_managed_role_makes_the_rollout_fail() {
    struct Case {
        name: &'static str,
        kind: &'static str,
        resource: &'static str,
        verb: Option<&'static str>,
        /// Fails at v1 (first deploy) or only at v2 (the prune).
        fails_at_v2: bool,
        /// What the refusal says (the permission missing and the fix).
        says: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "no-delete",
            kind: "ClusterRole",
            resource: "ingresses",
            verb: Some("delete"),
            fails_at_v2: true,
            // Refused by the pre-flight's dry-run delete: before any write,
            // so nothing is rolled back or quarantined.
            says: &[
                "lacks `delete` on ingresses.networking.k8s.io in namespace",
                "add the rule {apiGroups: [\"networking.k8s.io\"], resources: [\"ingresses\"], verbs: [\"delete\"]}",
                "nothing was written",
            ],
        },
        Case {
            name: "no-leases",
            kind: "Role",
            resource: "leases",
            verb: None,
            fails_at_v2: false,
            says: &["leases"],
        },
        Case {
            name: "no-jobs",
            kind: "ClusterRole",
            resource: "jobs",
            verb: None,
            fails_at_v2: false,
            says: &["lacks `", "on jobs.batch", "add the rule"],
        },
        Case {
            name: "no-patch",
            kind: "ClusterRole",
            resource: "deployments",
            verb: Some("patch"),
            fails_at_v2: false,
            says: &[
                "lacks `patch` on deployments.apps in namespace",
                "add the rule",
            ],
        },
        // A live read refused (the plan GETs each object its LIST did not
        // return): the cluster answers, so it is not "unreachable"; the
        // refusal names the permission.
        Case {
            name: "no-get",
            kind: "ClusterRole",
            resource: "configmaps",
            verb: Some("get"),
            fails_at_v2: false,
            says: &[
                "refuse a read the rollout needs",
                "lacks `get` on",
                "to fix: add the rule",
            ],
        },
    ];
    for case in cases {
        let mut s = Scenario::new(&format!("rbac-{}", case.name)).await;
        let account = s.env().to_string();
        let objects = install_modified_role(s.fleet, &account, s.state.path(), &|kind, rules| {
            if kind == case.kind {
                without(rules, case.resource, case.verb);
            }
        });
        let kubeconfig = service_account_kubeconfig(s.fleet, &account, s.state.path());

        s.commit(&manifests("one", true, ""), "v1");
        let v1 = s.sync(&kubeconfig);
        let failed = if case.fails_at_v2 {
            assert!(
                v1.status.success(),
                "{}: v1:\n{}",
                case.name,
                output_text(&v1)
            );
            s.commit(&manifests("two", false, ""), "v2");
            s.sync(&kubeconfig)
        } else {
            v1
        };
        let text = assert_refused(&failed, case.name);
        if case.name == "no-get" {
            // `tidegate plan` says the same, as a problem (exit 1), not "UNREACHABLE".
            let plan = s.tidegate(&kubeconfig, "plan");
            let planned = output_text(&plan);
            assert_eq!(plan.status.code(), Some(1), "plan:\n{planned}");
            assert!(
                planned.contains("FORBIDDEN: ServiceAccount") && planned.contains("lacks `get` on"),
                "plan:\n{planned}"
            );
            assert!(!planned.contains("UNREACHABLE"), "plan:\n{planned}");
        }
        for says in case.says {
            assert!(
                text.contains(says),
                "{}: the failure does not say {says:?}:\n{text}",
                case.name,
            );
        }
        for never in [
            "Status {",
            "cannot be reached",
            "fix the hook Job's manifest",
            "quarantined",
        ] {
            assert!(
                !text.contains(never),
                "{}: the failure says {never:?}:\n{text}",
                case.name
            );
        }
        if case.fails_at_v2 {
            assert_eq!(
                s.field("ingress", "web", "{.metadata.name}"),
                "web",
                "{}",
                case.name
            );
        }
        // Clean-up (the roles are cluster-wide): best effort.
        for (object, namespace) in objects {
            let mut args = vec![
                "delete",
                object.as_str(),
                "--ignore-not-found",
                "--wait=false",
            ];
            if let Some(namespace) = &namespace {
                args.extend(["-n", namespace.as_str()]);
            }
            let _ = s.fleet.kubectl(CLUSTER, &args);
        }
    }
}

/// The cluster playing the management cluster in the controller test.
const MANAGEMENT: &str = "aks-westeurope";

/// Polls `check` (a kubectl read as the administrator) until it holds, up
/// to the generous cluster bound; the controller's log on failure.
/// A child process killed when dropped (a failed test leaves nothing
/// running).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tidegate controller --env <env> <mode>` whose only credentials are in
/// `kubeconfig` (the management cluster's context `MANAGEMENT`); its log file.
fn start_controller(s: &Scenario, kubeconfig: &Path, mode: &[&str]) -> (KillOnDrop, PathBuf) {
    let log = s.state.path().join("controller.log");
    let home = s.state.path().join("controller");
    std::fs::create_dir_all(&home).expect("home");
    let child = super::isolated_command(&home)
        .env("TIDEGATE_ACCESS", "kubeconfig")
        .args(["--repo", &s.git.path().display().to_string()])
        .args(["controller", "--env", s.env()])
        .args(mode)
        .args(["--kubeconfig", &kubeconfig.display().to_string()])
        .args(["--leader-election-context", MANAGEMENT])
        .args(["--shutdown-grace", "5s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("tidegate controller");
    (KillOnDrop(child), log)
}

/// SIGTERM: the controller exits 0 and no request of it was refused (not a
/// watch, not a read); its log.
fn stop_cleanly(controller: &mut KillOnDrop, log: &Path) -> String {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &controller.0.id().to_string()])
        .status();
    let status = controller.0.wait().expect("controller exit");
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "controller: {status}\n{text}");
    assert!(
        !text.contains("Forbidden") && !text.contains("forbidden"),
        "a request was refused:\n{text}"
    );
    text
}

/// Stops at once when the controller exits.
async fn eventually(what: &str, controller: &mut KillOnDrop, log: &Path, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + super::WAIT;
    while !check() {
        let exited = controller.0.try_wait().expect("controller status");
        assert!(
            exited.is_none() && std::time::Instant::now() < deadline,
            "never: {what} (controller exit: {exited:?})\n--- controller log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Installs deploy/managed/ in the managed cluster and, in the management
/// cluster, deploy/management/'s Namespace and Role plus `extra` files; a
/// kubeconfig whose only credentials are the two ServiceAccounts' tokens.
fn controller_kubeconfig(s: &Scenario, extra: &[&str]) -> PathBuf {
    install_shipped_managed_role(s.fleet);
    for file in ["management/namespace.yaml", "management/rbac.yaml"]
        .iter()
        .chain(extra)
    {
        apply_shipped(s.fleet, MANAGEMENT, file);
    }
    let managed = service_account_config(s.fleet, CLUSTER, SERVICE_ACCOUNT);
    let management = service_account_config(s.fleet, MANAGEMENT, SERVICE_ACCOUNT);
    let mut kubeconfig = managed.clone();
    for list in ["clusters", "users", "contexts"] {
        let items = kubeconfig[list].as_array_mut().expect("kubeconfig list");
        items.extend(
            management[list]
                .as_array()
                .expect("kubeconfig list")
                .iter()
                .cloned(),
        );
    }
    let kubeconfig_file = s.state.path().join("controller.kubeconfig");
    std::fs::write(&kubeconfig_file, kubeconfig.to_string()).expect("write kubeconfig");
    kubeconfig_file
}

#[tokio::test(flavor = "multi_thread")]
async fn a_controller_with_only_the_shipped_roles_rolls_out_corrects_drift_and_prunes() {
    // The managed cluster gets deploy/managed/, the management cluster
    // deploy/management/'s Namespace, ServiceAccount and Role; the
    // controller's only credentials are the two ServiceAccounts' tokens.
    let mut s = Scenario::with_sync(
        "rbac-controller",
        "    prune: true\n    selfHeal: true\n    interval: 1s\n",
    )
    .await;
    let kubeconfig_file = controller_kubeconfig(&s, &[]);

    s.commit(&manifests("one", true, ""), "v1");
    // The default lease timings: a loaded machine must not make it step
    // down. The Lease is the shipped Role's `tidegate-controller`.
    let (mut controller, log) = start_controller(&s, &kubeconfig_file, &["--leader-elect"]);

    // v1 rolled out (with its PreSync hook).
    eventually("v1 applied", &mut controller, &log, || {
        s.field("configmap", "settings", "{.data.mode}") == "one"
            && s.field("ingress", "web", "{.metadata.name}") == "web"
    })
    .await;
    // Drift by kubectl, corrected through the fleet path (lock, journal in
    // the management cluster, watch caches).
    // Drift is watched for once the rollout ended and the watch caches
    // listed (a change before that is not a watch event).
    eventually("watching", &mut controller, &log, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("reconcile: watching"))
    })
    .await;
    kubectl(
        s.fleet,
        &["scale", "deployment", "web", "-n", s.env(), "--replicas=3"],
    );
    eventually("drift corrected", &mut controller, &log, || {
        s.field("deployment", "web", "{.spec.replicas}") == "1"
    })
    .await;
    // v2: the Ingress is pruned.
    s.commit(&manifests("two", false, ""), "v2");
    eventually(
        "v2 applied and the Ingress pruned",
        &mut controller,
        &log,
        || {
            s.field("configmap", "settings", "{.data.mode}") == "two"
                && s.field("ingress", "web", "{.metadata.name}").is_empty()
        },
    )
    .await;

    let text = stop_cleanly(&mut controller, &log);
    assert!(
        text.contains("leading") || text.contains("leader"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sharded_controller_with_only_the_shipped_roles_owns_and_rolls_out_its_environment() {
    // deploy/management/shard/rbac.yaml beside the leader-election Role:
    // member and ownership Leases in tidegate-system, listed; with
    // `--shard-clusters-above 0` the environment is split by cluster, so
    // drift goes through a drift record (a ConfigMap there: patched by the
    // watcher, watched and deleted by the owner).
    let mut s = Scenario::with_sync("rbac-shard", "    interval: 1s\n    selfHeal: true\n").await;
    let kubeconfig_file = controller_kubeconfig(&s, &["management/shard/rbac.yaml"]);
    s.commit(&manifests("one", false, ""), "v1");
    let replica = format!("rbac-shard-{}", std::process::id());
    let (mut controller, log) = start_controller(
        &s,
        &kubeconfig_file,
        &[
            "--shard",
            "--replica-id",
            &replica,
            "--shard-clusters-above",
            "0",
        ],
    );
    eventually("v1 applied by the owner", &mut controller, &log, || {
        s.field("configmap", "settings", "{.data.mode}") == "one"
            && std::fs::read_to_string(&log).is_ok_and(|l| {
                l.contains("environments owned by this replica")
                    && l.contains("count=1")
                    && l.contains("rollout succeeded")
                    && l.contains("clusters watched by this replica")
            })
    })
    .await;
    kubectl(
        s.fleet,
        &[
            "patch",
            "configmap",
            "settings",
            "-n",
            s.env(),
            "--type=merge",
            "-p",
            r#"{"data":{"mode":"drifted"}}"#,
        ],
    );
    eventually(
        "the drift recorded and corrected by the owner",
        &mut controller,
        &log,
        || {
            s.field("configmap", "settings", "{.data.mode}") == "one"
                && std::fs::read_to_string(&log).is_ok_and(|l| {
                    l.contains("drift: recorded for the environment's owner")
                        && l.contains("drift recorded by the watching replicas: correcting it")
                })
        },
    )
    .await;
    let text = stop_cleanly(&mut controller, &log);
    assert!(
        !text.contains("drift records failed")
            && !text.contains("recording drift for the environment's owner failed")
            && !text.contains("deleting a handled drift record failed"),
        "{text}"
    );
    assert!(
        text.contains("released the environment's ownership Lease"),
        "{text}"
    );
}

/// A client of `context` impersonating `user` (with `groups`): every
/// request is authorized by that identity's bindings, as the API server
/// would for its own token.
async fn client_impersonating(
    fleet: &Fleet,
    context: &str,
    user: &str,
    groups: &[&str],
) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(fleet.kubeconfig()).expect("reading the kubeconfig");
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kubeconfig context");
    config.auth_info.impersonate = Some(user.to_string());
    if !groups.is_empty() {
        config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    }
    kube::Client::try_from(config).expect("kube client")
}

/// The status code of a refused kube request (panics when it succeeded).
fn refused_code<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_management_role_reads_only_the_token_secret_and_token_admins_mint() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, ListParams, PostParams};
    use tidegate_auth::{Identity, NewToken, Roles, StoreError, TokenStore};

    let fleet = fleet().await;
    for file in ["management/namespace.yaml", "management/rbac.yaml"] {
        apply_shipped(fleet, MANAGEMENT, file);
    }
    let ns = TestNamespace::create(fleet, "tokrole").expect("namespace");
    let name = ns.name().to_string();
    // Another Secret beside the token Secret, which nobody here may read.
    let admin = super::client(fleet, MANAGEMENT).await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NAMESPACE);
    let other = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{name}-other")),
            ..Default::default()
        },
        string_data: Some([("password".to_string(), "hunter2".to_string())].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &other)
        .await
        .expect("the other Secret");
    let now = jiff::Timestamp::now().as_second();
    let new = |who: &str| NewToken {
        name: who.to_string(),
        roles: Roles::parse([format!("{name}=viewer").as_str()]).expect("roles"),
        lifetime: Some(3600),
        created_by: "deploy-test".into(),
    };

    // A token administrator (the shipped binding's group) mints a token
    // (creating the Secret if this is the cluster's first).
    let token_admin = client_impersonating(
        fleet,
        MANAGEMENT,
        &format!("{name}-admin"),
        &["tidegate-token-admins"],
    )
    .await;
    let (record, token) = TokenStore::new(token_admin.clone(), NAMESPACE)
        .create(new(&format!("{name}-ci")), now)
        .await
        .expect("a token admin mints a token");

    // The controller's ServiceAccount authenticates it with the shipped Role...
    let sa = format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}");
    let controller = client_impersonating(fleet, MANAGEMENT, &sa, &[]).await;
    let store = TokenStore::new(controller.clone(), NAMESPACE);
    let who = store
        .authenticate(token.expose(), now)
        .await
        .expect("the shipped Role lets the controller check tokens");
    assert_eq!(who.identity, Identity::token(&format!("{name}-ci")));
    // ... and can neither mint one nor read, list or create another Secret.
    match store.create(new("sneaky"), now).await {
        Err(StoreError::Kube {
            source: kube::Error::Api(status),
            ..
        }) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("the controller minted a token: {other:?}"),
    }
    let as_controller: Api<Secret> = Api::namespaced(controller.clone(), NAMESPACE);
    let other_name = format!("{name}-other");
    assert_eq!(
        refused_code("get another Secret", as_controller.get(&other_name).await),
        403
    );
    assert_eq!(
        refused_code(
            "list Secrets",
            as_controller.list(&ListParams::default()).await
        ),
        403
    );
    let in_default: Api<Secret> = Api::namespaced(controller, "default");
    assert_eq!(
        refused_code(
            "list Secrets in default",
            in_default.list(&ListParams::default()).await
        ),
        403
    );
    // The token admin cannot read the other Secret either.
    let as_admin: Api<Secret> = Api::namespaced(token_admin, NAMESPACE);
    assert_eq!(
        refused_code(
            "a token admin reads another Secret",
            as_admin.get(&other_name).await
        ),
        403
    );

    // Clean-up: the token revoked-and-gone is not needed; remove the
    // record and the other Secret (best effort).
    let _ = TokenStore::new(admin.clone(), NAMESPACE)
        .revoke(&record.id, "deploy-test", now)
        .await;
    let _ = secrets.delete(&other_name, &Default::default()).await;
}
