//! Hostile and mistaken input beyond the corpus of tests/data/bad: names
//! that would break the inventory, file names that inject text, YAML 1.1
//! numbers, and one bad environment among good ones.

use crate::pipeline::render_env;
use tidegate_tests::GitFixture;

const ENV: &str = "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: NAME\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: c1\n      provider:\n        kubeconfig:\n          context: c1\n  apps:\n    - name: app\n      namespace: app\n";

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";

fn environment(name: &str) -> String {
    ENV.replace("NAME", name)
}

/// A committed repository of environment `env` with `files`.
fn repository(env: &str, files: &[(&str, &str)]) -> GitFixture {
    let mut fx = GitFixture::new();
    fx.write(&format!("environments/{env}.yaml"), environment(env));
    for (path, text) in files {
        fx.write(path, text);
    }
    fx.commit("fixture");
    fx
}

/// What rendering `env` from `files` reports; it must be refused.
fn refusal(env: &str, files: &[(&str, &str)]) -> String {
    render_env(repository(env, files).path(), env)
        .expect_err("refused")
        .to_string()
}

#[test]
fn an_environment_name_the_inventory_cannot_carry_is_refused_with_its_line() {
    let all = refusal("Prod_EU", &[("manifests/app/cm.yaml", CONFIGMAP)]);
    assert!(
        all.contains(
            "environments/Prod_EU.yaml:4: environment name \"Prod_EU\" is not a DNS label"
        ),
        "{all}"
    );
    assert!(all.contains("environments/prod-eu.yaml"), "{all}");
}

#[test]
fn a_file_name_with_a_newline_is_refused_and_printed_escaped() {
    let all = refusal(
        "test",
        &[(
            "manifests/app/evil\n---\nkind: ClusterRoleBinding\n# .yaml",
            CONFIGMAP,
        )],
    );
    assert!(
        all.contains(
            "manifests/app/evil\\n---\\nkind: ClusterRoleBinding\\n# .yaml:1: the file name contains a control character"
        ),
        "{all}"
    );
    assert_eq!(all.matches("\n---").count(), 0, "{all}");
}

#[test]
fn yaml11_numbers_render_as_kubernetes_reads_them() {
    let fx = repository(
        "test",
        &[(
            "manifests/app/web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 010\n  template:\n    spec:\n      terminationGracePeriodSeconds: 1_000\n      volumes:\n        - name: a\n          configMap:\n            name: a\n            defaultMode: 0400\n        - name: b\n          secret:\n            secretName: b\n            defaultMode: 0644\n        - name: c\n          secret:\n            secretName: c\n            defaultMode: 08\n        - name: d\n          secret:\n            secretName: d\n            defaultMode: \"0400\"\n      containers:\n        - name: app\n          image: x:1\n          ports:\n            - containerPort: 0x1F90\n",
        )],
    );
    let rendered = render_env(fx.path(), "test").expect("valid");
    let m = &rendered.clusters[0].apps[0].objects[0].manifest;
    let spec = &m["spec"]["template"]["spec"];
    assert_eq!(m["spec"]["replicas"], serde_json::json!(8));
    assert_eq!(
        spec["terminationGracePeriodSeconds"],
        serde_json::json!(1000)
    );
    assert_eq!(
        spec["volumes"][0]["configMap"]["defaultMode"],
        serde_json::json!(256)
    );
    assert_eq!(
        spec["volumes"][1]["secret"]["defaultMode"],
        serde_json::json!(420)
    );
    assert_eq!(
        spec["volumes"][2]["secret"]["defaultMode"],
        serde_json::json!(8)
    );
    assert_eq!(
        spec["volumes"][3]["secret"]["defaultMode"],
        serde_json::json!("0400")
    );
    assert_eq!(
        spec["containers"][0]["ports"][0]["containerPort"],
        serde_json::json!(8080)
    );
    // Integers, not floats (`256`, never `256.0` or `400.0`).
    assert!(spec["volumes"][0]["configMap"]["defaultMode"].is_u64());
}

#[test]
fn one_bad_environment_does_not_stop_validate_of_the_others() {
    let mut fx = GitFixture::new();
    fx.write("environments/good.yaml", environment("good"));
    fx.write(
        "environments/crash.yaml",
        format!(
            "{}      overlays:\n        - patches:\n            - target: {{kind: ConfigMap}}\n              json:\n                - {{op: add, path: /metadata/x, value: 1}}\n                - {{op: move, from: /metadata/x, path: /nope/x}}\n  rollout:\n    progressDeadline: 5000000000000000h5000000000000000h\n",
            environment("crash")
        ),
    );
    fx.write(
        "environments/patch.yaml",
        format!(
            "{}      overlays:\n        - patches:\n            - target: {{kind: ConfigMap}}\n              json:\n                - {{op: add, path: /metadata/x, value: 1}}\n                - {{op: move, from: /metadata/x, path: /nope/x}}\n",
            environment("patch")
        ),
    );
    fx.write(
        "manifests/app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
    );
    fx.commit("three environments");
    let home = tempfile::tempdir().expect("home");
    let out = crate::cluster::tidegate_command(fx.path(), home.path())
        .env("TIDEGATE_ACCESS", "kubeconfig")
        .arg("validate")
        .output()
        .expect("run tidegate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok good:"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("invalid crash: 1 problem(s)"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("invalid patch: 1 problem(s)"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("too long"), "{stderr}");
    assert!(stderr.contains("JSON patch failed"), "{stderr}");
}
