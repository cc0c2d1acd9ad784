//! The fleet safety holes of issue 12, each closed and tested through the
//! `tidegate` binary on the three local clusters: a failed release never
//! ends up on a cluster after all.

use super::{configmap_field, fleet, output_text, rollout::deployment, tidegate_command};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output},
    time::{Duration, Instant},
};
use tidegate_audit::{Filter, SqliteStore};
use tidegate_testkit::{FAIL_READINESS_LABEL, Fleet, TestNamespace};
use tidegate_tests::GitFixture;

pub(super) const EKS: &str = "eks-us-east-1";
pub(super) const AKS: &str = "aks-westeurope";
pub(super) const GKE: &str = "gke-us-central1";

/// One environment (named after its test namespace) in a fresh repository,
/// with its own state directory (audit trail, journal, cache).
pub(super) struct Env {
    fleet: &'static Fleet,
    git: GitFixture,
    ns: TestNamespace,
    home: tempfile::TempDir,
    clusters: Vec<(&'static str, u32)>,
    /// The operator's kubeconfig given to every run (the fleet's unless a
    /// test reroutes a cluster).
    kubeconfig: PathBuf,
    rollout: String,
    overlays: String,
}

/// A namespaced CRD `<plural>.<group>` of kind `kind`; `schema` is its
/// openAPIV3Schema (flow YAML).
fn crd(group: &str, plural: &str, kind: &str, schema: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: {plural}, singular: {kind_lower}, kind: {kind}, listKind: {kind}List}}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema: {schema}\n",
        kind_lower = kind.to_lowercase()
    )
}

const ANY_SCHEMA: &str = "{type: object, x-kubernetes-preserve-unknown-fields: true}";

impl Env {
    /// `clusters`: (name, wave); `rollout`: the `spec.rollout` fields
    /// (indented by 4).
    pub(super) async fn new(prefix: &str, clusters: &[(&'static str, u32)], rollout: &str) -> Env {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        Env {
            fleet,
            git: GitFixture::new(),
            ns,
            home: tempfile::tempdir().expect("home"),
            clusters: clusters.to_vec(),
            kubeconfig: fleet.kubeconfig().to_path_buf(),
            rollout: rollout.to_string(),
            overlays: String::new(),
        }
    }

    pub(super) fn name(&self) -> &str {
        self.ns.name()
    }

    /// Writes the environment file (not committed).
    fn write_env(&self) {
        let env = self.name();
        let mut clusters = String::new();
        for (name, wave) in &self.clusters {
            clusters.push_str(&format!(
                "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      wave: {wave}\n      labels:\n        name: {name}\n"
            ));
        }
        self.git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n{}  rollout:\n{}",
                self.overlays, self.rollout
            ),
        );
    }

    /// Commits the environment file and `files` (path, content); returns the SHA.
    fn commit(&mut self, message: &str, files: &[(&str, &str)]) -> String {
        self.write_env();
        for (path, content) in files {
            self.git.write(path, *content);
        }
        self.git.commit(message)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = tidegate_command(self.git.path(), self.home.path());
        c.env("KUBECONFIG", &self.kubeconfig).args(args);
        c
    }

    pub(super) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("tidegate runs")
    }

    /// `tidegate sync --env E` (plus `extra`), which must exit with `code`.
    pub(super) fn sync_fleet(&self, extra: &[&str], code: i32) -> Output {
        let mut args = vec!["sync", "--env", self.name()];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert_eq!(out.status.code(), Some(code), "{}", output_text(&out));
        out
    }

    /// Commits the Deployment `web` with `image` (never ready when `fail`).
    pub(super) fn web(&mut self, message: &str, image: &str, fail: bool) -> String {
        self.commit(
            message,
            &[("manifests/app/web.yaml", &deployment(image, fail))],
        )
    }

    /// Starts `tidegate sync --env E` and returns once wave 1 (eks) runs `sha`.
    async fn spawn_until_canary(&self, sha: &str) -> Child {
        let child = self.spawn(&["sync", "--env", self.name()]);
        self.until("wave 1 applied", |e| e.inventory(EKS, "revision") == sha)
            .await;
        child
    }

    pub(super) fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tidegate starts")
    }

    /// A field of the app's inventory in one cluster (empty when there is none).
    pub(super) fn inventory(&self, cluster: &str, field: &str) -> String {
        super::inventory_field(self.fleet, cluster, self.name(), field)
    }

    /// The image of the Deployment `web` in one cluster.
    fn image(&self, cluster: &str) -> String {
        super::web_image(self.fleet, cluster, self.name())
    }

    fn audit(&self) -> SqliteStore {
        SqliteStore::open_existing(&self.home.path().join("audit.db")).expect("audit trail")
    }

    /// Audit entries of these actions, oldest first.
    pub(super) fn entries(&self, actions: &[&str]) -> Vec<tidegate_audit::Record> {
        self.audit()
            .records(&Filter {
                environment: Some(self.name().to_string()),
                actions: actions.iter().map(|a| a.to_string()).collect(),
                ..Filter::default()
            })
            .expect("records")
    }

    /// Waits until `done` holds (at most 3 minutes).
    pub(super) async fn until(&self, what: &str, done: impl Fn(&Env) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The first number under one of `names`, anywhere in `value`.
fn find_key(value: &serde_json::Value, names: &[&str]) -> Option<u64> {
    match value {
        serde_json::Value::Object(map) => names
            .iter()
            .find_map(|n| map.get(*n).and_then(serde_json::Value::as_u64))
            .or_else(|| map.values().find_map(|v| find_key(v, names))),
        serde_json::Value::Array(items) => items.iter().find_map(|v| find_key(v, names)),
        _ => None,
    }
}

pub(super) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(super) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const STRICT: &str =
    "    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 8s\n    bakeTime: 1s\n";

/// Item 1: after a rollout fails in wave 2, the canary's inventory still
/// names the last revision that completed its rollout as its last healthy
/// one; the next failed rollout rolls it back there, never to the
/// quarantined revision; and `tidegate rollback --to` a quarantined
/// revision is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_never_returns_a_cluster_to_a_quarantined_revision() {
    let mut env = Env::new("safe-quarantine", &[(EKS, 1), (AKS, 2), (GKE, 3)], STRICT).await;
    let v1 = env.web("v1", "web:1", false);
    env.sync_fleet(&[], 0);
    assert_eq!(env.inventory(EKS, "healthyRevision"), v1);

    // v2 is Healthy in the canary (through its bake) but never in aks.
    env.overlays = format!(
        "      overlays:\n        - clusterSelector:\n            matchLabels: {{name: {AKS}}}\n          patches:\n            - target: {{kind: Deployment, name: web}}\n              merge:\n                spec: {{template: {{metadata: {{labels: {{{FAIL_READINESS_LABEL}: \"true\"}}}}}}}}\n"
    );
    let v2 = env.web("v2: never ready in aks", "web:2", false);
    let out = env.sync_fleet(&[], 1);
    assert!(
        stdout(&out).contains("quarantined"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.inventory(EKS, "revision"), v1, "eks rolled back");
    assert_eq!(
        env.inventory(EKS, "healthyRevision"),
        v1,
        "a revision that did not complete its rollout is never recorded as the last healthy one"
    );

    // v3 fails in the canary itself: it goes back to v1, not to v2.
    env.overlays.clear();
    let _v3 = env.web("v3: never ready", "web:3", true);
    let out = env.sync_fleet(&[], 1);
    assert_eq!(env.inventory(EKS, "revision"), v1, "{}", output_text(&out));
    assert_eq!(env.image(EKS), "web:1");
    assert!(
        stdout(&out).contains("every rolled-back cluster is Healthy again"),
        "{}",
        output_text(&out)
    );

    // A rollback to the quarantined v2 is refused, saying what to do.
    let out = env.run(&["rollback", "--env", env.name(), "--to", &v2]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("quarantined"),
        "{}",
        output_text(&out)
    );
    assert!(stderr(&out).contains("--to REV"), "{}", output_text(&out));
    assert_eq!(env.inventory(EKS, "revision"), v1);
}

/// Item 2: a single-cluster sync during a rollout is refused naming the
/// rollout's holder (so no cluster escapes the rollback), and a quarantined
/// revision is applied to one cluster only with --allow-quarantined and a
/// reason, which is audited.
#[tokio::test(flavor = "multi_thread")]
async fn a_single_cluster_sync_takes_the_lock_and_respects_quarantine() {
    let rollout =
        "    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 8s\n    bakeTime: 6s\n";
    let mut env = Env::new("safe-single", &[(EKS, 1), (AKS, 2), (GKE, 3)], rollout).await;
    env.web("v1", "web:1", false);
    env.sync_fleet(&[], 0);
    let v2 = env.web("v2", "web:2", false);
    let mut rollout = env.spawn_until_canary(&v2).await;
    // During wave 1's bake.
    let out = env.run(&["sync", "--env", env.name(), "--cluster", AKS]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(stderr(&out).contains("locked by"), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("nothing was changed"),
        "{}",
        output_text(&out)
    );
    assert_ne!(
        env.inventory(AKS, "revision"),
        v2,
        "aks untouched by the refused sync"
    );
    let status = rollout.wait().expect("rollout ends");
    assert!(status.success(), "{status}");

    // v3 fails in wave 1 and is quarantined.
    let v3 = env.web("v3", "web:3", true);
    env.sync_fleet(&[], 1);
    let single = |extra: &[&str]| {
        let mut args = vec!["sync", "--env", env.name(), "--cluster", GKE];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let out = single(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("quarantined"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.inventory(GKE, "revision"), v2);
    let out = single(&["--allow-quarantined"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(stderr(&out).contains("--reason"), "{}", output_text(&out));
    assert_eq!(env.inventory(GKE, "revision"), v2);
    let out = single(&[
        "--allow-quarantined",
        "--reason",
        "reproducing the bug in gke",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(env.inventory(GKE, "revision"), v3);
    let allowed = env.entries(&["allow-quarantined"]);
    assert_eq!(allowed.len(), 1, "{allowed:?}");
    assert_eq!(allowed[0].entry.cluster.as_deref(), Some(GKE));
    assert_eq!(
        allowed[0].entry.message.as_deref(),
        Some("reproducing the bug in gke")
    );
}

/// Item 3 and the audit item: drift in two clusters at the target revision
/// is shown by `plan`, corrected by `sync --env` in waves (audited as
/// `drift-corrected` naming the field and `kubectl`), while a revision
/// change is audited as `apply` only; a no-op changes nothing and says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_sync_corrects_drift_in_waves_and_says_so() {
    let rollout =
        "    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 30s\n    bakeTime: 1s\n";
    let mut env = Env::new("safe-drift", &[(EKS, 1), (AKS, 2), (GKE, 3)], rollout).await;
    env.web("v1", "web:1", false);
    env.sync_fleet(&[], 0);
    env.web("v2", "web:2", false);
    env.sync_fleet(&[], 0);
    assert!(
        env.entries(&["drift-corrected"]).is_empty(),
        "a revision change is an apply, not a drift correction: {:?}",
        env.entries(&["drift-corrected"])
    );
    assert_eq!(
        env.entries(&["apply"]).len(),
        6,
        "two releases × three clusters"
    );

    for cluster in [EKS, GKE] {
        env.fleet
            .kubectl(
                cluster,
                &[
                    "scale",
                    "deployment",
                    "web",
                    "-n",
                    env.name(),
                    "--replicas=5",
                ],
            )
            .expect("kubectl scale");
    }
    let plan = env.run(&["plan", "--env", env.name()]);
    assert_eq!(plan.status.code(), Some(0), "{}", output_text(&plan));
    let text = stdout(&plan);
    let drift_lines: Vec<&str> = text.lines().filter(|l| l.contains("DRIFT")).collect();
    assert_eq!(drift_lines.len(), 2, "{text}");
    assert!(
        drift_lines.iter().any(|l| l.contains(EKS)) && drift_lines.iter().any(|l| l.contains(GKE))
    );

    let out = env.sync_fleet(&[], 0);
    assert!(
        stdout(&out).contains(&format!("drift corrected in {EKS}, {GKE}")),
        "{}",
        output_text(&out)
    );
    let diff = env.run(&["diff", "--env", env.name()]);
    assert_eq!(diff.status.code(), Some(0), "{}", output_text(&diff));
    let corrected = env.entries(&["drift-corrected"]);
    let clusters: Vec<_> = corrected
        .iter()
        .filter_map(|r| r.entry.cluster.clone())
        .collect();
    assert_eq!(clusters, [EKS, GKE]);
    for r in &corrected {
        let message = r.entry.message.clone().unwrap_or_default();
        assert!(
            message.contains("/spec/replicas") && message.contains("kubectl"),
            "{message}"
        );
    }
    // In waves: one wave-start per wave with the drifted clusters applied.
    let waves = env.entries(&["wave-start"]);
    assert!(waves.len() >= 9, "three rollouts of three waves: {waves:?}");

    let out = env.sync_fleet(&[], 0);
    assert!(
        stdout(&out).contains("nothing to do"),
        "{}",
        output_text(&out)
    );
    let report = env.run(&["audit", "report", "--env", env.name(), "--format", "json"]);
    assert_eq!(report.status.code(), Some(0), "{}", output_text(&report));
    let json: serde_json::Value = serde_json::from_slice(&report.stdout).expect("json");
    assert_eq!(
        find_key(&json, &["driftCorrections", "drift_corrections"]),
        Some(2),
        "{json}"
    );
}

/// Item 6: a revision one cluster of wave 3 rejects (its CRD is missing
/// there) is refused before anything is written anywhere, every problem
/// listed with its cluster, file:line and fix; `plan` exits 1.
#[tokio::test(flavor = "multi_thread")]
async fn a_revision_one_cluster_rejects_is_refused_before_any_write() {
    let mut env = Env::new("safe-preflight", &[(EKS, 1), (AKS, 2), (GKE, 3)], STRICT).await;
    let v1 = env.web("v1", "web:1", false);
    env.sync_fleet(&[], 0);
    // The CRD exists in eks and aks only.
    let group = format!("{}.tidegate.test", env.name());
    let crd = crd(&group, "widgets", "Widget", ANY_SCHEMA);
    let crd_file = env.home.path().join("crd.yaml");
    std::fs::write(&crd_file, &crd).expect("crd file");
    for c in [EKS, AKS] {
        env.fleet
            .kubectl(c, &["apply", "-f", &crd_file.display().to_string()])
            .expect("crd");
        env.fleet
            .kubectl(
                c,
                &[
                    "wait",
                    "--for=condition=Established",
                    &format!("crd/widgets.{group}"),
                    "--timeout=60s",
                ],
            )
            .expect("established");
    }
    let widget =
        format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 1\n");
    env.commit(
        "v2: needs the Widget CRD",
        &[
            ("manifests/app/web.yaml", &deployment("web:2", false)),
            ("manifests/app/widget.yaml", &widget),
        ],
    );
    let plan = env.run(&["plan", "--env", env.name()]);
    assert_eq!(plan.status.code(), Some(1), "{}", output_text(&plan));
    assert!(
        stdout(&plan).contains("manifests/app/widget.yaml:1"),
        "{}",
        output_text(&plan)
    );

    let out = env.sync_fleet(&[], 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("[cluster {GKE}]")),
        "{}",
        output_text(&out)
    );
    assert!(err.contains("manifests/app/widget.yaml:1"), "{err}");
    assert!(err.contains("help:"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!err.contains(&format!("[cluster {EKS}]")), "{err}");
    for c in [EKS, AKS, GKE] {
        assert_eq!(env.inventory(c, "revision"), v1, "{c} untouched");
    }
    assert_eq!(env.image(EKS), "web:1", "wave 1 was not written");
    assert!(
        env.entries(&["rollout-start"]).len() == 1,
        "the refused rollout never started"
    );
    for c in [EKS, AKS] {
        let _ = env.fleet.kubectl(
            c,
            &["delete", "crd", &format!("widgets.{group}"), "--wait=false"],
        );
    }
}

/// Item 7: with maxSurge above maxUnavailable, clusters being applied (their
/// new objects still Missing while a CRD becomes Established) are in
/// flight, not unavailable: a first deploy to the whole fleet succeeds. A
/// first deploy that fails is removed again: no partial app is left.
#[tokio::test(flavor = "multi_thread")]
async fn clusters_being_applied_are_in_flight_and_a_failed_first_deploy_leaves_nothing() {
    let rollout =
        "    maxSurge: 100%\n    maxUnavailable: 0\n    progressDeadline: 20s\n    bakeTime: 1s\n";
    let mut env = Env::new("safe-surge", &[(EKS, 1), (AKS, 1), (GKE, 1)], rollout).await;
    let group = format!("{}.tidegate.test", env.name());
    let crd = crd(&group, "gadgets", "Gadget", ANY_SCHEMA);
    let gadget =
        format!("apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g\nspec:\n  size: 1\n");
    let config =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: one\n";
    env.commit(
        "first deploy",
        &[
            ("manifests/app/crd.yaml", &crd),
            ("manifests/app/gadget.yaml", &gadget),
            ("manifests/app/config.yaml", config),
            ("manifests/app/web.yaml", &deployment("web:1", false)),
        ],
    );
    let out = env.sync_fleet(&[], 0);
    assert!(
        stdout(&out).contains("rollout succeeded"),
        "{}",
        output_text(&out)
    );
    for c in [EKS, AKS, GKE] {
        assert_eq!(
            configmap_field(env.fleet, c, env.name(), "settings", "{.data.mode}"),
            "one"
        );
        let _ = env.fleet.kubectl(
            c,
            &["delete", "crd", &format!("gadgets.{group}"), "--wait=false"],
        );
    }

    // A first deploy (in a fresh environment) that never becomes ready.
    let mut first = Env::new("safe-first", &[(EKS, 1), (AKS, 2), (GKE, 2)], STRICT).await;
    first.commit(
        "first deploy, broken",
        &[
            ("manifests/app/config.yaml", config),
            ("manifests/app/web.yaml", &deployment("web:1", true)),
        ],
    );
    let out = first.sync_fleet(&[], 1);
    assert!(
        !stdout(&out).contains("NOT restored"),
        "{}",
        output_text(&out)
    );
    assert!(
        stdout(&out).contains("every rolled-back cluster is Healthy again"),
        "{}",
        output_text(&out)
    );
    for c in [EKS, AKS, GKE] {
        let left = first
            .fleet
            .kubectl(
                c,
                &[
                    "get",
                    "configmap,deployment",
                    "-n",
                    first.name(),
                    "-o",
                    "name",
                ],
            )
            .expect("list");
        let left: Vec<&str> = left
            .lines()
            .filter(|l| !l.is_empty() && *l != "configmap/kube-root-ca.crt")
            .collect();
        assert!(left.is_empty(), "{c}: partial app left: {left:?}");
        assert_eq!(first.inventory(c, "revision"), "", "{c}: inventory removed");
    }
}

/// A TCP forwarder to one cluster's API server that can be cut, making
/// that cluster unreachable mid-rollout, and restored on the same port.
pub(crate) struct Cut {
    pub(crate) port: u16,
    target: std::net::SocketAddr,
    tasks: tokio::task::JoinSet<()>,
}

impl Cut {
    pub(crate) async fn to(target: std::net::SocketAddr) -> Cut {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut cut = Cut {
            port,
            target,
            tasks: tokio::task::JoinSet::new(),
        };
        cut.forward(listener);
        cut
    }

    fn forward(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target;
        self.tasks.spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                // A failed accept (a connection reset before it was taken,
                // no file descriptor left for a moment) must not close the
                // port: only `cut` does.
                let mut inbound = match listener.accept().await {
                    Ok((inbound, _)) => inbound,
                    Err(e) => {
                        eprintln!("forwarder: accept failed, accepting again: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                conns.spawn(async move {
                    match tokio::net::TcpStream::connect(target).await {
                        Ok(mut outbound) => {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                        Err(e) => eprintln!("forwarder: cannot reach {target}: {e}"),
                    }
                });
            }
        });
    }

    /// Stops accepting and drops every open connection.
    pub(crate) fn cut(&mut self) {
        self.tasks.abort_all();
    }

    /// Forwards again, on the same port.
    pub(crate) async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the forwarder's port again");
        self.forward(listener);
    }
}

/// A copy of the fleet's kubeconfig in which `context`'s server is `port` on 127.0.0.1.
pub(crate) fn kubeconfig_through(
    fleet: &Fleet,
    context: &str,
    port: u16,
    dir: &Path,
) -> (PathBuf, std::net::SocketAddr) {
    let mut config = kube::config::Kubeconfig::read_from(fleet.kubeconfig()).expect("kubeconfig");
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .expect("context");
    let mut real = None;
    for c in &mut config.clusters {
        if c.name == cluster_name
            && let Some(cluster) = c.cluster.as_mut()
        {
            let server = cluster.server.clone().expect("server");
            let addr = server.trim_start_matches("https://").trim_end_matches('/');
            real = Some(addr.parse().expect("ip:port"));
            cluster.server = Some(format!("https://127.0.0.1:{port}"));
        }
    }
    let path = dir.join(format!("{context}.kubeconfig"));
    std::fs::write(&path, serde_json::to_string(&config).expect("json")).expect("write");
    (path, real.expect("cluster found"))
}

/// Item 4: a cluster that becomes unreachable mid-rollout is Unknown (counted
/// against maxUnavailable), the failure policy runs, the rollout ends with
/// exit 1 and says what is left and what to do; unreachable at the start
/// and beyond maxUnavailable, the rollout is refused before any write.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_cluster_is_unknown_and_the_failure_policy_runs() {
    let rollout =
        "    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 20s\n    bakeTime: 4s\n";
    let mut env = Env::new("safe-unreachable", &[(EKS, 1), (AKS, 2), (GKE, 3)], rollout).await;
    // gke is reached through a forwarder the test can cut.
    let (_, real) = kubeconfig_through(env.fleet, GKE, 1, env.home.path());
    let mut cut = Cut::to(real).await;
    let (file, _) = kubeconfig_through(env.fleet, GKE, cut.port, env.home.path());
    env.kubeconfig = file;
    let v1 = env.web("v1", "web:1", false);
    env.sync_fleet(&[], 0);
    let v2 = env.web("v2", "web:2", false);
    let child = env.spawn_until_canary(&v2).await;
    cut.cut(); // during wave 1's bake
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("joined")
        .expect("rollout ends");
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let text = stdout(&out);
    assert!(text.contains("rollout FAILED"), "{}", output_text(&out));
    assert!(text.contains(GKE), "{}", output_text(&out));
    assert!(
        text.contains("next:"),
        "says what to do next: {}",
        output_text(&out)
    );
    assert_eq!(env.inventory(EKS, "revision"), v1, "eks rolled back");
    assert_eq!(env.inventory(AKS, "revision"), v1, "aks never touched");
    let failed = env.entries(&["gate-failed"]);
    assert!(
        failed
            .last()
            .and_then(|r| r.entry.message.clone())
            .is_some_and(|m| m.contains(GKE)),
        "{failed:?}"
    );

    // Still unreachable at the start of the next rollout: refused, nothing written.
    env.web("v3", "web:3", false);
    let out = env.sync_fleet(&[], 1);
    assert!(
        stderr(&out).contains("cannot be reached"),
        "{}",
        output_text(&out)
    );
    assert!(
        stderr(&out).contains("nothing was written"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.inventory(EKS, "revision"), v1);
}

/// Item 5: a rollout killed during wave 1's bake and resumed later bakes
/// again for the time actually watched; `--resume` takes over the lock of
/// the dead process without --break-lock; history links the two runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_bake_counts_only_watched_time_and_history_links_the_runs() {
    let bake = 8;
    let rollout = format!(
        "    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 30s\n    bakeTime: {bake}s\n"
    );
    let mut env = Env::new("safe-resume", &[(EKS, 1), (AKS, 2)], &rollout).await;
    env.web("v1", "web:1", false);
    env.sync_fleet(&[], 0);
    let v2 = env.web("v2", "web:2", false);
    let mut child = env.spawn_until_canary(&v2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // Longer than the bake passes unwatched.
    tokio::time::sleep(Duration::from_secs(bake + 2)).await;
    let out = env.sync_fleet(&["--resume"], 0);
    assert!(
        stdout(&out).contains("resumed the interrupted rollout"),
        "{}",
        output_text(&out)
    );
    let starts = env.entries(&["rollout-start"]);
    let resumed = starts.last().expect("resumed run");
    let gates: Vec<_> = env
        .entries(&["gate-passed"])
        .into_iter()
        .filter(|r| {
            r.operation == Some(resumed.seq) && r.entry.message.as_deref() == Some("wave 1")
        })
        .collect();
    let gate = gates
        .first()
        .expect("wave 1's gate passed in the resumed run");
    let watched = gate.time_ms - resumed.time_ms;
    assert!(
        watched >= (bake as i64) * 1000,
        "wave 1 passed its {bake}s bake {watched} ms after the resume"
    );
    let history = env.run(&["history", "--env", env.name(), "-o", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&history.stdout).expect("json");
    let rows = rows.as_array().expect("rows");
    let interrupted = &rows[rows.len() - 2];
    let last = &rows[rows.len() - 1];
    assert_eq!(interrupted["outcome"], "interrupted", "{rows:?}");
    assert_eq!(interrupted["resumedBy"], last["operation"], "{rows:?}");
    assert_eq!(last["outcome"], "success", "{rows:?}");
    assert!(
        interrupted["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("resumed by #{}", last["operation"]))),
        "{rows:?}"
    );
}

/// Item 4, the inventory: a sync that stops part-way (here a custom
/// resource its new CRD's schema rejects, applied after the CRD and a
/// ConfigMap were written) leaves an inventory that names the revision being
/// applied and says it is incomplete — never the old revision over new
/// objects — so `status` shows it Incomplete and the next rollout applies it.
#[tokio::test(flavor = "multi_thread")]
async fn a_sync_that_stops_part_way_leaves_an_inventory_marked_incomplete() {
    let mut env = Env::new("safe-partial", &[(EKS, 1)], STRICT).await;
    let config =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: one\n";
    let v1 = env.commit("v1", &[("manifests/app/config.yaml", config)]);
    env.sync_fleet(&[], 0);
    let group = format!("{}.tidegate.test", env.name());
    let crd = crd(
        &group,
        "parts",
        "Part",
        "{type: object, properties: {spec: {type: object, properties: {size: {type: integer}}}}}",
    );
    // The dry run cannot check the Part (its CRD comes with it); the API
    // server rejects it once the CRD exists.
    let part =
        format!("apiVersion: {group}/v1\nkind: Part\nmetadata:\n  name: p\nspec:\n  size: large\n");
    let v2 = env.commit(
        "v2",
        &[
            ("manifests/app/config.yaml", &config.replace("one", "two")),
            ("manifests/app/crd.yaml", &crd),
            ("manifests/app/part.yaml", &part),
        ],
    );
    let out = env.run(&["sync", "--env", env.name(), "--cluster", EKS]);
    assert_ne!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        configmap_field(env.fleet, EKS, env.name(), "settings", "{.data.mode}"),
        "two"
    );
    assert_eq!(env.inventory(EKS, "revision"), v2, "{}", output_text(&out));
    assert_eq!(env.inventory(EKS, "applyingFrom"), v1);
    let status = env.run(&["status", "--env", env.name()]);
    assert_eq!(status.status.code(), Some(1), "{}", output_text(&status));
    assert!(
        stdout(&status).contains("Incomplete"),
        "{}",
        output_text(&status)
    );
    let _ = env.fleet.kubectl(
        EKS,
        &["delete", "crd", &format!("parts.{group}"), "--wait=false"],
    );
}

/// The value of a key of the environment's gates ConfigMap in one cluster
/// (empty when there is none).
fn gate(env: &Env, cluster: &str, key: &str) -> String {
    env.fleet
        .kubectl(
            cluster,
            &[
                "get",
                "configmap",
                &format!("tidegate.{}.gates", env.name()),
                "-n",
                "tidegate-system",
                "-o",
                &format!("jsonpath={{.data.{}}}", key.replace('.', "\\.")),
                "--ignore-not-found",
            ],
        )
        .unwrap_or_default()
}

/// Quarantines and approvals live with the clusters: an approval given on
/// another machine (another audit trail) unblocks a waiting wave; a
/// quarantine made by one machine's failed rollout refuses the revision on
/// another; `unquarantine` on that other machine lifts it in every cluster
/// and for the first machine too.
#[tokio::test(flavor = "multi_thread")]
async fn quarantines_and_approvals_are_seen_by_every_machine() {
    let rollout = "    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 8s\n    bakeTime: 1s\n    waves:\n      - wave: 2\n        approval: required\n";
    let mut env = Env::new("gates", &[(EKS, 1), (AKS, 2), (GKE, 2)], rollout).await;
    let other = tempfile::tempdir().expect("home of machine B");
    let on_b = |env: &Env, args: &[&str]| -> Output {
        let mut c = tidegate_command(env.git.path(), other.path());
        c.env("KUBECONFIG", &env.kubeconfig).args(args);
        c.output().expect("tidegate runs")
    };

    // Machine A rolls v1 out; wave 2 waits for an approval given on B.
    let v1 = env.web("v1", "web:1", false);
    let rollout = env.spawn_until_canary(&v1).await;
    let out = on_b(
        &env,
        &[
            "approve",
            "--env",
            env.name(),
            "--wave",
            "2",
            "--revision",
            &v1,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        stdout(&out).contains("recorded in 3 of 3 clusters"),
        "{}",
        output_text(&out)
    );
    let rollout = std::sync::Mutex::new(rollout);
    env.until("the rollout to finish", |_| {
        rollout
            .lock()
            .is_ok_and(|mut r| matches!(r.try_wait(), Ok(Some(_))))
    })
    .await;
    let mut rollout = rollout.into_inner().expect("child");
    let status = rollout.wait().expect("rollout ends");
    assert!(status.success(), "{status}");
    for cluster in [EKS, AKS, GKE] {
        assert_eq!(env.inventory(cluster, "revision"), v1, "{cluster}");
    }
    assert!(
        env.entries(&["approve"]).is_empty(),
        "the approval reached A through the clusters, not its audit trail"
    );
    // The wait was audited once (notifications' `approval-needed`).
    let asked = env.entries(&["approval-requested"]);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        asked[0].entry.details.get("wave").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        asked[0].entry.to.as_ref().map(|t| t.sha.as_str()),
        Some(v1.as_str())
    );

    // A's failed rollout of v2 quarantines it in every cluster...
    let v2 = env.web("v2: never ready", "web:2", true);
    env.sync_fleet(&[], 1);
    for cluster in [EKS, AKS, GKE] {
        assert!(
            gate(&env, cluster, &format!("quarantine.{v2}")).contains("progress deadline"),
            "{cluster}: {}",
            gate(&env, cluster, &format!("quarantine.{v2}"))
        );
    }
    // ...so machine B, whose audit trail knows nothing of it, refuses it.
    let out = on_b(&env, &["sync", "--env", env.name()]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("is quarantined")
            && stderr(&out).contains("recorded in the clusters"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.inventory(EKS, "revision"), v1);

    // B lifts it: gone from every cluster, and A (whose own audit trail
    // still holds the quarantine) may roll it out again.
    let out = on_b(
        &env,
        &["unquarantine", "--env", env.name(), "--revision", &v2],
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    for cluster in [EKS, AKS, GKE] {
        assert_eq!(
            gate(&env, cluster, &format!("quarantine.{v2}")),
            "",
            "{cluster}"
        );
    }
    let out = env.run(&["sync", "--env", env.name(), "--cluster", GKE]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "A sees the lift: {}",
        output_text(&out)
    );
    assert_eq!(env.inventory(GKE, "revision"), v2);
}
