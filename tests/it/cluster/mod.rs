//! Tests against real local Kubernetes control planes (kube-apiserver,
//! kube-controller-manager, kube-scheduler, etcd and kwok; see
//! docs/local-clusters.md).
//!
//! They start a fleet of 3 clusters for the test process, or reuse the one
//! named by `TIDEGATE_TEST_KUBECONFIG` (`make clusters-up`). `cargo test --
//! --skip cluster::` leaves them out.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use tidegate_testkit::{FAIL_READINESS_LABEL, Fleet, TestNamespace, shared_fleet};

/// Generous bound for anything the clusters do; never a performance check.
const WAIT: Duration = Duration::from_secs(180);
/// progressDeadlineSeconds of the Deployment that never becomes ready.
const PROGRESS_DEADLINE_SECONDS: i32 = 10;
const FIELD_MANAGER: &str = "tidegate-tests";

/// Installs rustls' aws-lc-rs provider (once per process).
pub(crate) fn install_crypto_provider() {
    // Fails when another test installed it first: that is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The clusters of this test process (reused or started; see the module docs).
pub(crate) async fn fleet() -> &'static Fleet {
    install_crypto_provider();
    shared_fleet()
        .await
        .expect("local clusters (see docs/local-clusters.md)")
}

/// A kube client for one cluster of `fleet` (build one per test: a client is
/// bound to the runtime that made it).
pub(crate) async fn client(fleet: &Fleet, context: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(fleet.kubeconfig()).expect("reading the kubeconfig");
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kubeconfig context");
    Client::try_from(config).expect("kube client")
}

/// Reaches the test clusters through the fleet's kubeconfig, given as the
/// operator gives it (`--kubeconfig`): environments only name its contexts.
pub(crate) fn kubeconfig_factory(fleet: &Fleet) -> tidegate_cluster::KubeconfigFactory {
    tidegate_cluster::KubeconfigFactory {
        force: false,
        file: Some(fleet.kubeconfig().to_path_buf()),
    }
}

/// Polls `check` every `every` until it holds (up to the generous
/// [`WAIT`]); on failure prints the files `logs` (controller logs) and
/// panics naming `what`.
pub(crate) async fn eventually_logged<F, Fut>(
    what: &str,
    logs: &[&std::path::Path],
    every: Duration,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        if Instant::now() > deadline {
            for log in logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                eprintln!("--- {}:\n{text}", log.display());
            }
            panic!("never: {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Where the rollout of `env` journaled in `<namespace>/tidegate-journal-<env>`
/// of the cluster `management` says `cluster` stands (None: no journal).
pub(crate) async fn journaled_progress(
    fleet: &Fleet,
    management: &str,
    namespace: &str,
    env: &str,
    cluster: &str,
) -> Option<tidegate_rollout::machine::ClusterProgress> {
    use tidegate_fleet::JournalStore;
    let journal = tidegate_fleet::ConfigMapJournal::new(
        client(fleet, management).await,
        management,
        namespace,
        env,
        "test-reader",
    );
    let j = journal.load().await.expect("journal")?;
    j.machine
        .clusters()
        .find(|c| c.name == cluster)
        .map(|c| c.progress)
}

/// The `tidegate` binary next to this test binary (`make test` builds it).
pub(crate) fn tidegate_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("tidegate");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p tidegate-cli` (make test does)",
        bin.display()
    );
    bin
}

/// A `tidegate` command with nothing of this process's environment but
/// `PATH`, and a temporary `home` holding its cache, state and audit trail.
pub(crate) fn isolated_command(home: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(tidegate_bin());
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("TIDEGATE_AUDIT_DB", home.join("audit.db"));
    command
}

/// A `tidegate` command that gets nothing of this process's environment but
/// `PATH`: a temporary `home` (with the cache, state and audit trail),
/// cloud access (`TIDEGATE_ACCESS=auto`), plain output, and `--repo repo`.
/// Add the cloud's settings with `.env(...)` and the subcommand with `.args(...)`.
pub(crate) fn tidegate_command(
    repo: &std::path::Path,
    home: &std::path::Path,
) -> std::process::Command {
    let mut command = isolated_command(home);
    command
        .env("TIDEGATE_ACCESS", "auto")
        .arg("--repo")
        .arg(repo)
        // The most verbose logs, so that every run checks that no
        // credential reaches them (see `assert_no_credentials`).
        .args(["--color", "never", "-vvv"]);
    command
}

/// Markers of credential material in HTTP traffic: signed AWS requests and
/// presigned URLs, EKS tokens, `Authorization` headers.
const CREDENTIAL_MARKERS: [&str; 7] = [
    "x-amz-signature=",
    "x-amz-security-token=",
    "x-amz-credential=",
    "aws4-hmac-sha256 credential",
    "k8s-aws-v1.",
    "authorization: bearer",
    "authorization: basic",
];

/// Asserts that a `tidegate` run at `-vvv` logged (Tidegate's own debug
/// events are there) and that neither its output nor its logs hold any of
/// `secrets` (keys and tokens the test handed out) or credential material.
pub(crate) fn assert_no_credentials(output: &std::process::Output, secrets: &[&str]) {
    let all = output_text(output);
    let lower = all.to_ascii_lowercase();
    assert!(
        lower.contains("debug tidegate"),
        "no debug log: was the run at -vvv?\n{all}"
    );
    for marker in CREDENTIAL_MARKERS {
        assert!(
            !lower.contains(marker),
            "credential material {marker:?} in:\n{all}"
        );
    }
    for secret in secrets {
        assert!(!all.contains(secret), "secret {secret:?} in:\n{all}");
    }
}

/// A repository with one environment, named after a fresh test namespace
/// (`prefix-…`, on every cluster): `spec.clusters` is `clusters` (list items
/// indented by 4), and its one app `app`, deployed to that namespace with the
/// app settings `app_extra` (indented by 6, e.g. overlays), is a ConfigMap
/// `settings` whose `data.mode` is `mode`. Returns the namespace (its name
/// is the environment's) and the committed repository.
pub(crate) fn one_app_environment(
    fleet: &Fleet,
    prefix: &str,
    clusters: &str,
    app_extra: &str,
    mode: &str,
) -> (TestNamespace, tidegate_tests::GitFixture) {
    let ns = TestNamespace::create(fleet, prefix).expect("test namespace");
    let env = ns.name();
    let mut git = tidegate_tests::GitFixture::new();
    git.write(
        &format!("environments/{env}.yaml"),
        format!(
            "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n{app_extra}"
        ),
    );
    git.write(
        "manifests/app/config.yaml",
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: {mode}\n"
        ),
    );
    git.commit("environment");
    (ns, git)
}

/// A field of the inventory of app `app` of environment `env` in one
/// cluster (empty when there is none).
pub(crate) fn inventory_field(fleet: &Fleet, cluster: &str, env: &str, field: &str) -> String {
    let name = format!("tidegate.{env}.app");
    fleet
        .kubectl(
            cluster,
            &[
                "get",
                "configmap",
                &name,
                "-n",
                "tidegate-system",
                "-o",
                &format!("jsonpath={{.data.{field}}}"),
                "--ignore-not-found",
            ],
        )
        .unwrap_or_default()
}

/// The file of one cluster's CA certificate (PEM).
pub(crate) fn cluster_ca_file(fleet: &Fleet, context: &str) -> std::path::PathBuf {
    fleet.state_dir().join(context).join("pki/ca.crt")
}

/// The CA certificate (PEM) of one cluster of `fleet`, as a cloud's API
/// would describe it.
pub(crate) fn cluster_ca(fleet: &Fleet, context: &str) -> String {
    std::fs::read_to_string(cluster_ca_file(fleet, context)).expect("the cluster's CA")
}

/// A field of a ConfigMap in one cluster (`jsonpath`, e.g. `{.data.mode}`).
pub(crate) fn configmap_field(
    fleet: &Fleet,
    context: &str,
    namespace: &str,
    name: &str,
    jsonpath: &str,
) -> String {
    fleet
        .kubectl(
            context,
            &[
                "get",
                "configmap",
                name,
                "-n",
                namespace,
                "-o",
                &format!("jsonpath={jsonpath}"),
            ],
        )
        .unwrap_or_else(|e| panic!("ConfigMap {namespace}/{name} in {context}: {e}"))
}

/// The image of the Deployment `web` in one cluster.
pub(crate) fn web_image(fleet: &Fleet, context: &str, namespace: &str) -> String {
    fleet
        .kubectl(
            context,
            &[
                "get",
                "deployment",
                "web",
                "-n",
                namespace,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
        )
        .unwrap_or_else(|e| panic!("Deployment {namespace}/web in {context}: {e}"))
}

/// What a finished process printed, with its exit status, for assertion messages.
pub(crate) fn output_text(output: &std::process::Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn deployment(name: &str, image: &str, replicas: i32, fail_readiness: bool) -> serde_json::Value {
    let mut labels = json!({ "app": name });
    if fail_readiness {
        labels[FAIL_READINESS_LABEL] = json!("true");
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": image,
                        "ports": [{ "containerPort": 8080 }],
                    }],
                },
            },
        },
    })
}

async fn apply(api: &Api<Deployment>, name: &str, manifest: &serde_json::Value) -> Deployment {
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(manifest),
    )
    .await
    .unwrap_or_else(|e| panic!("server-side apply of {name}: {e}"))
}

fn condition<'a>(d: &'a Deployment, kind: &str) -> Option<(&'a str, Option<&'a str>)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(kind))
        .map(|c| (c.status.as_deref().unwrap_or(""), c.reason.as_deref()))
}

/// Polls the Deployment until `done` holds; panics with its last status
/// after [`WAIT`].
async fn wait_for(
    api: &Api<Deployment>,
    name: &str,
    what: &str,
    done: impl Fn(&Deployment) -> bool,
) -> Deployment {
    let deadline = Instant::now() + WAIT;
    loop {
        let d = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get {name}: {e}"));
        if done(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: not {what} after {}s; status: {:?}",
            WAIT.as_secs(),
            d.status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every replica of the current generation is updated, ready and available.
fn rolled_out(d: &Deployment, replicas: i32) -> bool {
    let (Some(generation), Some(status)) = (d.metadata.generation, d.status.as_ref()) else {
        return false;
    };
    status.observed_generation >= Some(generation)
        && status.replicas == Some(replicas)
        && status.updated_replicas == Some(replicas)
        && status.ready_replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && condition(d, "Available") == Some(("True", Some("MinimumReplicasAvailable")))
}

fn image(d: &Deployment) -> Option<&str> {
    d.spec
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .as_deref()
}

async fn rollouts_on(fleet: &'static Fleet, context: String, namespace: String) {
    let client = client(fleet, &context).await;
    let api: Api<Deployment> = Api::namespaced(client, &namespace);

    // A new Deployment becomes Available with 3 ready replicas.
    let web = deployment("web", "registry.example/web:1.0.0", 3, false);
    apply(&api, "web", &web).await;
    let first = wait_for(&api, "web", "available with 3 ready replicas", |d| {
        rolled_out(d, 3)
    })
    .await;
    assert_eq!(
        image(&first),
        Some("registry.example/web:1.0.0"),
        "{context}"
    );

    // A new image rolls out: a new generation, observed, every replica updated.
    let web = deployment("web", "registry.example/web:1.1.0", 3, false);
    let applied = apply(&api, "web", &web).await;
    let generation = applied.metadata.generation.expect("generation");
    assert!(generation > first.metadata.generation.unwrap_or_default());
    let second = wait_for(&api, "web", "rolled out to 1.1.0", |d| {
        d.status.as_ref().and_then(|s| s.observed_generation) >= Some(generation)
            && rolled_out(d, 3)
            && condition(d, "Progressing").map(|c| c.1) == Some(Some("NewReplicaSetAvailable"))
    })
    .await;
    assert_eq!(
        image(&second),
        Some("registry.example/web:1.1.0"),
        "{context}"
    );

    // A release whose pods never become ready stays unavailable until the
    // progress deadline marks it failed.
    let bad = deployment("bad", "registry.example/bad:6.6.6", 2, true);
    apply(&api, "bad", &bad).await;
    let failed = wait_for(&api, "bad", "ProgressDeadlineExceeded", |d| {
        condition(d, "Progressing") == Some(("False", Some("ProgressDeadlineExceeded")))
    })
    .await;
    let status = failed.status.as_ref().expect("status");
    assert_eq!(
        status.ready_replicas.unwrap_or(0),
        0,
        "{context}: {status:?}"
    );
    assert_eq!(
        status.available_replicas.unwrap_or(0),
        0,
        "{context}: {status:?}"
    );
    assert_eq!(
        condition(&failed, "Available").map(|c| c.0),
        Some("False"),
        "{context}: {status:?}"
    );
    // Its pods exist and were scheduled: they run, but are not ready.
    assert_eq!(status.updated_replicas, Some(2), "{context}: {status:?}");
    assert_eq!(
        status.unavailable_replicas,
        Some(2),
        "{context}: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_roll_out_and_bad_releases_stall_on_every_cluster() {
    let fleet = fleet().await;
    let contexts: Vec<String> = fleet.contexts().iter().map(|c| c.to_string()).collect();
    assert!(
        contexts.len() >= 3,
        "expected at least 3 clusters: {contexts:?}"
    );
    assert_eq!(
        &contexts[..3],
        ["eks-us-east-1", "aks-westeurope", "gke-us-central1"]
    );
    let ns = TestNamespace::create(fleet, "rollouts").expect("test namespace");
    let mut tasks = Vec::new();
    for context in contexts {
        tasks.push(tokio::spawn(rollouts_on(
            fleet,
            context,
            ns.name().to_string(),
        )));
    }
    for task in tasks {
        task.await.expect("cluster task");
    }
}

#[tokio::test]
async fn every_cluster_serves_kubernetes_1_37_with_a_ready_node() {
    let fleet = fleet().await;
    for cluster in fleet.clusters() {
        let client = client(fleet, &cluster.context).await;
        let version = client.apiserver_version().await.expect("version");
        assert_eq!(
            (version.major.as_str(), version.minor.as_str()),
            ("1", "37"),
            "{}",
            cluster.context
        );
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
        let node = nodes.get(&cluster.node).await.expect("the fake node");
        let ready = node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(
            ready,
            "{}: node {} not Ready",
            cluster.context, cluster.node
        );
    }
}
mod aks;
mod analysis;
mod api;
mod cloud;
mod controller;
mod controller_caches;
mod deploy;
mod discover;
mod eks;
mod fleetpath;
mod ha;
mod health;
mod helm;
mod hooks;
mod live;
mod notify;
mod page;
mod rollout;
mod safety;
mod server;
mod shard;
mod switch;
mod sync;
mod tokens;
mod verdicts;
mod windows;
