//! A Helm chart on the local clusters: rolled out wave by wave, `tidegate
//! diff` clean right after (no false drift from Helm's output), and a value
//! change rolled out in waves again.

use super::{configmap_field, fleet, output_text, tidegate_command};
use crate::pipeline::roll_out;
use crate::template::tool;
use std::time::Duration;
use tidegate_fleet::{DriverOptions, Outcome, RolloutReport};
use tidegate_template::Tool;
use tidegate_testkit::TestNamespace;
use tidegate_tests::{GitFixture, workspace_root};

const CLUSTERS: [(&str, &str, u32); 3] = [
    ("eks-us-east-1", "aws", 1),
    ("aks-westeurope", "azure", 2),
    ("gke-us-central1", "gcp", 2),
];

fn environment(env: &str, log_level: &str) -> String {
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
    - name: web
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
  rollout:
    maxSurge: 1
    # 1, not 0: the fleet driver may poll a cluster of a fresh install
    # before its apply returns and count it unavailable (seen once here).
    maxUnavailable: 1
    progressDeadline: 60s
    bakeTime: 1s
"#
    )
}

fn at(report: &RolloutReport, cluster: &str, what: &str) -> Duration {
    report
        .timeline
        .iter()
        .find(|(c, w, _)| c == cluster && w == what)
        .map(|(_, _, t)| *t)
        .unwrap_or_else(|| panic!("{cluster} {what}: {:?}", report.timeline))
}

/// Wave 2 starts only once wave 1 is healthy.
fn assert_in_waves(report: &RolloutReport) {
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    let wave1 = at(report, "eks-us-east-1", "healthy");
    for c in ["aks-westeurope", "gke-us-central1"] {
        assert!(
            at(report, c, "apply") >= wave1,
            "{c} before wave 1: {:?}",
            report.timeline
        );
    }
}

/// `tidegate diff --env` through the real binary: exit 0, no drift.
fn assert_no_drift(git: &GitFixture, env: &str, kubeconfig: &std::path::Path) {
    let home = tempfile::tempdir().expect("home");
    let out = tidegate_command(git.path(), home.path())
        .env("KUBECONFIG", kubeconfig)
        .env("TIDEGATE_HELM", tool(Tool::Helm))
        .args(["diff", "--env", env])
        .output()
        .expect("tidegate diff");
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
    let mut git = GitFixture::new();
    git.copy_dir(
        &workspace_root().join("tests/data/charts/web"),
        "manifests/web",
    )
    .write(
        &format!("environments/{env}.yaml"),
        environment(&env, "info"),
    );
    git.commit("the web chart");
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
    let out = tidegate_command(git.path(), home.path())
        .env("KUBECONFIG", fleet.kubeconfig())
        .env("TIDEGATE_HELM", tool(Tool::Helm))
        .args(["sync", "--env", &env])
        .output()
        .expect("tidegate sync");
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
