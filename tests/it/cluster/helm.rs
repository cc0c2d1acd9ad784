//! A Helm chart on the local clusters: rolled out wave by wave, `tidegate
//! diff` clean right after (no false drift from Helm's output), and a value
//! change rolled out in waves again.

use super::{configmap_field, fleet, kubeconfig_factory, output_text, tidegate_command};
use crate::pipeline::roll_out;
use crate::template::tool;
use std::time::Duration;
use tidegate_fleet::{ClusterStep, DriverOptions, Outcome, RolloutReport};
use tidegate_template::Tool;
use tidegate_testkit::TestNamespace;
use tidegate_tests::{GitFixture, workspace_root};

const CLUSTERS: [(&str, &str, u32); 3] = [
    ("eks-us-east-1", "aws", 1),
    ("aks-westeurope", "azure", 2),
    ("gke-us-central1", "gcp", 2),
];

/// An environment file on the three local clusters (by kubeconfig context:
/// the operator gives the kubeconfig, `KUBECONFIG`), rolled out in waves,
/// with `apps` (list items indented by 4) in namespace `env`.
fn environment_file(env: &str, apps: &str) -> String {
    let mut clusters = String::new();
    for (name, cloud, wave) in CLUSTERS {
        clusters.push_str(&format!(
            "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      labels: {{cloud: {cloud}}}\n      wave: {wave}\n"
        ));
    }
    format!(
        r#"apiVersion: tidegate.dev/v1alpha1
kind: Environment
metadata:
  name: {env}
spec:
  source:
    repoURL: .
    path: manifests
  clusters:
{clusters}  apps:
{apps}  rollout:
    maxSurge: 1
    # 1, not 0: the fleet driver may poll a cluster of a fresh install
    # before its apply returns and count it unavailable (seen once here).
    maxUnavailable: 1
    progressDeadline: 60s
    bakeTime: 1s
"#
    )
}

fn environment(env: &str, log_level: &str) -> String {
    environment_file(
        env,
        &format!(
            r#"    - name: web
      namespace: {env}
      helm:
        skipTests: true
        includeCRDs: false
        values:
          logLevel: {log_level}
          widget: {{enabled: false}}
      overlays:
        - clusterSelector: {{matchLabels: {{cloud: aws}}}}
          helm: {{values: {{region: us-east-1}}}}
        - clusterSelector: {{matchLabels: {{cloud: azure}}}}
          helm: {{values: {{region: westeurope}}}}
        - clusterSelector: {{matchLabels: {{cloud: gcp}}}}
          helm: {{values: {{region: us-central1}}}}
"#
        ),
    )
}

/// A repository holding the fixture chart `tests/data/charts/<chart>` as
/// `manifests/<chart>` and `environments/<env>.yaml`, committed.
fn chart_repository(chart: &str, env: &str, environment: String) -> GitFixture {
    let mut git = GitFixture::new();
    git.copy_dir(
        &workspace_root().join(format!("tests/data/charts/{chart}")),
        &format!("manifests/{chart}"),
    )
    .write(&format!("environments/{env}.yaml"), environment);
    git.commit(&format!("the {chart} chart"));
    git
}

fn at(report: &RolloutReport, cluster: &str, what: ClusterStep) -> Duration {
    report
        .timeline
        .iter()
        .find(|(c, w, _)| c == cluster && *w == what)
        .map(|(_, _, t)| *t)
        .unwrap_or_else(|| panic!("{cluster} {what}: {:?}", report.timeline))
}

/// Wave 2 starts only once wave 1 is healthy.
fn assert_in_waves(report: &RolloutReport) {
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let wave1 = at(report, "eks-us-east-1", ClusterStep::Healthy);
    for c in ["aks-westeurope", "gke-us-central1"] {
        assert!(
            at(report, c, ClusterStep::Apply) >= wave1,
            "{c} before wave 1: {:?}",
            report.timeline
        );
    }
}

/// `tidegate <args>` on `git` through the real binary, reaching the
/// clusters through the operator's `kubeconfig`, with the built helm.
fn tidegate(
    git: &GitFixture,
    home: &std::path::Path,
    kubeconfig: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    tidegate_command(git.path(), home)
        .env("KUBECONFIG", kubeconfig)
        .env("TIDEGATE_HELM", tool(Tool::Helm))
        .args(args)
        .output()
        .expect("tidegate")
}

/// `tidegate diff --env` through the real binary: exit 0, no drift.
fn assert_no_drift(git: &GitFixture, env: &str, kubeconfig: &std::path::Path) {
    let home = tempfile::tempdir().expect("home");
    let out = tidegate(git, home.path(), kubeconfig, &["diff", "--env", env]);
    assert!(
        out.status.success(),
        "drift right after the sync:\n{}",
        output_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chart_syncs_without_false_drift_and_a_value_change_rolls_out_in_waves() {
    let fleet = fleet().await;
    let ns = TestNamespace::create(fleet, "helm").expect("namespace");
    let env = ns.name().to_string();
    let mut git = chart_repository("web", &env, environment(&env, "info"));
    let options = || DriverOptions {
        poll: Duration::from_millis(300),
        identity: "tests".into(),
        ..DriverOptions::default()
    };
    let report = roll_out(git.path(), &env, options(), None, None)
        .await
        .expect("rollout");
    assert_in_waves(&report);
    for (cluster, _, _) in CLUSTERS {
        let region = configmap_field(fleet, cluster, &env, "web-config", "{.data.REGION}");
        let expected = cluster.split_once('-').map(|(_, r)| r).unwrap_or_default();
        assert_eq!(region, expected, "{cluster}: the cluster's own value");
        // The pre-install hook was applied too.
        assert_eq!(
            configmap_field(fleet, cluster, &env, "web-schema", "{.data.schema}"),
            "v1"
        );
    }
    assert_no_drift(&git, &env, fleet.kubeconfig());

    // A value change: every cluster gets it, wave by wave.
    git.write(
        &format!("environments/{env}.yaml"),
        environment(&env, "debug"),
    );
    git.commit("debug logs");
    let report = roll_out(git.path(), &env, options(), None, None)
        .await
        .expect("rollout");
    assert_in_waves(&report);
    for (cluster, _, _) in CLUSTERS {
        assert_eq!(
            configmap_field(fleet, cluster, &env, "web-config", "{.data.LOG_LEVEL}"),
            "debug",
            "{cluster}"
        );
    }
    assert_no_drift(&git, &env, fleet.kubeconfig());

    // A template error: `tidegate sync` names the app's line and helm's
    // message, and applies nothing, not even to the clusters it could render.
    git.write(
        &format!("environments/{env}.yaml"),
        environment(&env, "trace"),
    );
    git.write(
        "manifests/web/templates/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  X: {{ .Values.nothing.here }}\n",
    );
    git.commit("a broken template");
    let home = tempfile::tempdir().expect("home");
    let out = tidegate(
        &git,
        home.path(),
        fleet.kubeconfig(),
        &["sync", "--env", &env],
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("environments/{env}.yaml:29: app web: helm template of manifests/web failed: Error: template: web/templates/broken.yaml:6")),
        "{text}"
    );
    assert_eq!(
        text.matches("nil pointer").count(),
        1,
        "one problem, reported once: {text}"
    );
    for (cluster, _, _) in CLUSTERS {
        assert_eq!(
            configmap_field(fleet, cluster, &env, "web-config", "{.data.LOG_LEVEL}"),
            "debug",
            "{cluster}: nothing applied"
        );
    }
}

/// An environment whose one app is the `capabilities` chart: the aws
/// cluster declares its `kubeVersion` and `apiVersions` through an overlay,
/// the others declare nothing.
fn capabilities_environment(env: &str, group: &str) -> String {
    environment_file(
        env,
        &format!(
            r#"    - name: caps
      namespace: {env}
      path: capabilities
      helm:
        values: {{servedGroup: {group}}}
      overlays:
        - clusterSelector: {{matchLabels: {{cloud: aws}}}}
          helm: {{kubeVersion: 1.31.5, apiVersions: [declared.example.com/v1]}}
"#
        ),
    )
}

/// A CRD of API group `group` (kind `Gadget`, version v1) on every
/// cluster, served once this returns; deleted when dropped.
struct ServedGroup<'f> {
    fleet: &'f tidegate_testkit::Fleet,
    group: String,
    _file: tempfile::NamedTempFile,
}

impl<'f> ServedGroup<'f> {
    fn install(fleet: &'f tidegate_testkit::Fleet, group: &str) -> ServedGroup<'f> {
        let file = tempfile::NamedTempFile::new().expect("crd file");
        std::fs::write(
            file.path(),
            format!(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.{group}\nspec:\n  group: {group}\n  names: {{kind: Gadget, plural: gadgets, singular: gadget, listKind: GadgetList}}\n  scope: Namespaced\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n"
            ),
        )
        .expect("write crd");
        let path = file.path().to_string_lossy().to_string();
        for (cluster, _, _) in CLUSTERS {
            fleet
                .kubectl(cluster, &["apply", "-f", &path])
                .expect("apply the CRD");
            fleet
                .kubectl(
                    cluster,
                    &[
                        "wait",
                        "--for=condition=Established",
                        "--timeout=120s",
                        &format!("crd/gadgets.{group}"),
                    ],
                )
                .expect("CRD established");
        }
        ServedGroup {
            fleet,
            group: group.to_string(),
            _file: file,
        }
    }
}

impl Drop for ServedGroup<'_> {
    fn drop(&mut self) {
        for (cluster, _, _) in CLUSTERS {
            let _ = self.fleet.kubectl(
                cluster,
                &[
                    "delete",
                    "crd",
                    &format!("gadgets.{}", self.group),
                    "--wait=false",
                ],
            );
        }
    }
}

/// The `gitVersion` a cluster's API server reports.
async fn server_version(fleet: &tidegate_testkit::Fleet, context: &str) -> String {
    super::client(fleet, context)
        .await
        .apiserver_version()
        .await
        .expect("/version")
        .git_version
}

/// The data of the `caps-capabilities` ConfigMap `tidegate render -o json`
/// prints for `cluster`.
fn rendered_capabilities(rendered: &serde_json::Value, cluster: &str) -> serde_json::Value {
    rendered["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["cluster"] == cluster)
        .and_then(|c| {
            c["apps"][0]["objects"]
                .as_array()?
                .iter()
                .find(|o| o["manifest"]["metadata"]["name"] == "caps-capabilities")
                .map(|o| o["manifest"]["data"].clone())
        })
        .unwrap_or_else(|| panic!("{cluster}: no caps-capabilities in {rendered}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_sees_each_clusters_own_version_and_api_versions_unless_declared() {
    let fleet = fleet().await;
    let ns = TestNamespace::create(fleet, "caps").expect("namespace");
    let env = ns.name().to_string();
    // An API group only the clusters serve: Helm's built-in set lacks it.
    let group = format!("{env}.tidegate.test");
    let _served = ServedGroup::install(fleet, &group);
    let git = chart_repository("capabilities", &env, capabilities_environment(&env, &group));

    // Offline: `tidegate render` uses the declared values, else Helm's defaults.
    let home = tempfile::tempdir().expect("home");
    let out = tidegate(
        &git,
        home.path(),
        fleet.kubeconfig(),
        &["render", "--env", &env, "-o", "json"],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let rendered: serde_json::Value = serde_json::from_slice(&out.stdout).expect("render json");
    let offline = rendered_capabilities(&rendered, "gke-us-central1");
    let helm_default = offline["kubeVersion"]
        .as_str()
        .expect("kubeVersion")
        .to_string();
    assert_eq!(offline["apps"], "true", "{offline}");
    assert_eq!(
        offline["served"], "false",
        "render asks no cluster: {offline}"
    );
    let declared = rendered_capabilities(&rendered, "eks-us-east-1");
    assert_eq!(declared["kubeVersion"], "v1.31.5", "{declared}");
    assert_eq!(declared["declared"], "true", "{declared}");

    // `tidegate sync`: each cluster's own version and served groups.
    let out = tidegate(
        &git,
        home.path(),
        fleet.kubeconfig(),
        &["sync", "--env", &env],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    for cluster in ["aks-westeurope", "gke-us-central1"] {
        let version = server_version(fleet, cluster).await;
        assert!(version.starts_with("v1.37."), "{cluster}: {version}");
        assert_ne!(
            version, helm_default,
            "the local clusters must not run Helm's default version, or this test proves nothing"
        );
        let field = |f: &str| {
            configmap_field(
                fleet,
                cluster,
                &env,
                "caps-capabilities",
                &format!("{{.data.{f}}}"),
            )
        };
        assert_eq!(
            field("kubeVersion"),
            version,
            "{cluster}: the cluster's own version"
        );
        assert_eq!(field("apps"), "true", "{cluster}");
        assert_eq!(field("served"), "true", "{cluster}: a group only it serves");
        assert_eq!(field("servedKind"), "true", "{cluster}: group/version/Kind");
        assert_eq!(field("declared"), "false", "{cluster}");
    }
    // Declared values win over what the cluster reports.
    let field = |f: &str| {
        configmap_field(
            fleet,
            "eks-us-east-1",
            &env,
            "caps-capabilities",
            &format!("{{.data.{f}}}"),
        )
    };
    assert_eq!(field("kubeVersion"), "v1.31.5");
    assert_eq!(field("declared"), "true");
    assert_eq!(
        field("served"),
        "false",
        "declared apiVersions replace discovery"
    );
    // `tidegate diff` renders with the same facts: no false drift.
    assert_no_drift(&git, &env, fleet.kubeconfig());
}

/// A fresh copy of the fleet's kubeconfig with one more context, `dead`,
/// whose server refuses connections.
fn kubeconfig_with_a_dead_cluster(fleet: &tidegate_testkit::Fleet) -> tempfile::NamedTempFile {
    let mut config =
        kube::config::Kubeconfig::read_from(fleet.kubeconfig()).expect("fleet kubeconfig");
    let mut cluster = config.clusters[0].clone();
    cluster.name = "dead".into();
    if let Some(c) = cluster.cluster.as_mut() {
        // Port 9 (discard) is closed on the test machine.
        c.server = Some("https://127.0.0.1:9".into());
    }
    let mut context = config.contexts[0].clone();
    context.name = "dead".into();
    if let Some(c) = context.context.as_mut() {
        c.cluster = "dead".into();
    }
    config.clusters.push(cluster);
    config.contexts.push(context);
    let file = tempfile::NamedTempFile::new().expect("kubeconfig");
    // JSON is YAML.
    std::fs::write(file.path(), serde_json::to_vec(&config).expect("json")).expect("write");
    file
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_facts_are_asked_once_only_for_helm_apps_and_a_dead_cluster_is_skipped() {
    use tidegate_cluster::{FactsCache, KubeconfigFactory, RequestCounter};
    let fleet = fleet().await;
    let kubeconfig = kubeconfig_with_a_dead_cluster(fleet);
    let factory = KubeconfigFactory {
        file: Some(kubeconfig.path().to_path_buf()),
        ..kubeconfig_factory(fleet)
    };
    let parse = |apps: &str| {
        let mut clusters = String::new();
        for name in ["eks-us-east-1", "gke-us-central1", "dead"] {
            clusters.push_str(&format!(
                "    - name: {name}\n      provider: {{kubeconfig: {{context: {name}}}}}\n"
            ));
        }
        tidegate_core::Environment::parse(
            &format!("apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: facts\nspec:\n  source: {{repoURL: .}}\n  clusters:\n{clusters}  apps:\n{apps}"),
            "environments/facts.yaml",
        )
        .expect("environment")
    };

    // Plain YAML and Kustomize apps: no request at all.
    let counter = RequestCounter::default();
    let facts = FactsCache::new(counter.clone())
        .gather(
            &factory,
            &parse("    - name: plain\n    - name: k\n      kustomize: {}\n"),
        )
        .await;
    assert!(facts.is_empty(), "{facts:?}");
    assert_eq!(counter.get().reads, 0);

    // Helm apps that declare everything: no request either.
    let declared =
        parse("    - name: web\n      helm: {kubeVersion: 1.30.0, apiVersions: [x.example/v1]}\n");
    let facts = FactsCache::new(counter.clone())
        .gather(&factory, &declared)
        .await;
    assert!(facts.is_empty(), "{facts:?}");
    assert_eq!(counter.get().reads, 0);

    // A Helm app declaring nothing: one `/version` and one (aggregated)
    // discovery, `/api` + `/apis`, per reachable cluster; the dead one is
    // tried once (its `/version`, refused), not retried, and left out: its
    // apps render with Helm's defaults, nothing is blocked.
    let undeclared = parse("    - name: web\n      helm: {}\n    - name: plain\n");
    let cache = FactsCache::new(counter.clone());
    let facts = cache.gather(&factory, &undeclared).await;
    assert_eq!(
        facts.keys().collect::<Vec<_>>(),
        ["eks-us-east-1", "gke-us-central1"],
        "{facts:?}"
    );
    assert_eq!(counter.get().reads, 2 * 3 + 1, "{:?}", counter.get());
    assert_eq!(counter.get().writes + counter.get().dry_runs, 0);
    let eks = &facts["eks-us-east-1"];
    assert_eq!(
        eks.kube_version.as_deref(),
        Some(server_version(fleet, "eks-us-east-1").await.as_str())
    );
    for want in ["v1", "v1/ConfigMap", "apps/v1", "apps/v1/Deployment"] {
        assert!(
            eks.api_versions.iter().any(|a| a == want),
            "{want} in {:?}",
            eks.api_versions
        );
    }
    // Asked once per command: a second render (another revision) reuses them.
    let again = cache.gather(&factory, &undeclared).await;
    assert_eq!(again, facts);
    assert_eq!(
        counter.get().reads,
        2 * 3 + 1,
        "asked again: {:?}",
        counter.get()
    );

    // Through the CLI: `tidegate diff` warns, naming the dead cluster, and
    // still renders and diffs the others with their own facts.
    let ns = TestNamespace::create(fleet, "facts").expect("namespace");
    let env = ns.name();
    let git = chart_repository(
        "capabilities",
        env,
        format!(
            "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source: {{repoURL: ., path: manifests}}\n  clusters:\n    - name: eks-us-east-1\n      provider: {{kubeconfig: {{context: eks-us-east-1}}}}\n    - name: dead\n      provider: {{kubeconfig: {{context: dead}}}}\n  apps:\n    - name: caps\n      namespace: {env}\n      path: capabilities\n      helm: {{}}\n"
        ),
    );
    let home = tempfile::tempdir().expect("home");
    let out = tidegate(
        &git,
        home.path(),
        kubeconfig.path(),
        &["diff", "--env", env],
    );
    let text = output_text(&out);
    assert!(
        text.contains("cannot read the version and API versions of cluster dead"),
        "{text}"
    );
    let version = server_version(fleet, "eks-us-east-1").await;
    assert!(
        text.contains(&format!("kubeVersion: {version}")),
        "eks-us-east-1 rendered with its own version: {text}"
    );

    // Only the version undeclared: `/version` alone.
    let counter = RequestCounter::default();
    FactsCache::new(counter.clone())
        .only_cluster(Some("gke-us-central1".into()))
        .gather(
            &factory,
            &parse("    - name: web\n      helm: {apiVersions: [x.example/v1]}\n"),
        )
        .await;
    assert_eq!(counter.get().reads, 1, "{:?}", counter.get());
}
