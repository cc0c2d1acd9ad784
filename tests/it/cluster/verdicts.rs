//! In-sync verdicts kept in the cluster (the inventory's `verdicts`): a
//! fresh `tidegate diff` process after a sync dry-runs only what may have
//! changed, still sees every live edit and Git change, and Secrets are
//! dry-run every time with nothing of them stored.

use super::{fleet, one_app_environment, output_text, tidegate_command};
use std::process::Output;

const SECRET_VALUE: &str = "hunter2-verdict";

fn manifests(mode: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: {mode}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: \"1\"\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: verdict-creds\nstringData:\n  password: {SECRET_VALUE}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: app\n          image: registry.example/web:1\n"
    )
}

/// `diff -o json`'s one cluster: (exit code, its entry).
fn diff(run: &dyn Fn(&[&str]) -> Output) -> (i32, serde_json::Value) {
    let out = run(&["diff", "-o", "json"]);
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("diff -o json ({e}):\n{}", output_text(&out)));
    (code, all[0].clone())
}

fn differing(entry: &serde_json::Value) -> Vec<String> {
    entry["objects"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| o["key"]["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_diff_process_dry_runs_only_what_may_have_changed() {
    let fleet = fleet().await;
    let ctx = fleet.contexts()[0].to_string();
    let (ns, mut git) = one_app_environment(
        fleet,
        "verdicts",
        &format!(
            "    - name: {ctx}\n      provider:\n        kubeconfig:\n          context: {ctx}\n"
        ),
        "",
        "one",
    );
    let env = ns.name().to_string();
    git.write("manifests/app/config.yaml", manifests("one"));
    git.commit("four objects");
    let home = tempfile::tempdir().expect("home");
    let repo = git.path().to_path_buf();
    let run = |args: &[&str]| -> Output {
        let mut c = tidegate_command(&repo, home.path());
        c.env("KUBECONFIG", fleet.kubeconfig())
            .args(args)
            .args(["--env", &env]);
        c.output().expect("tidegate runs")
    };
    let sync = |what: &str| {
        let out = run(&["sync", "--cluster", &ctx]);
        assert!(out.status.success(), "{what}:\n{}", output_text(&out));
    };
    sync("first sync");
    fleet
        .kubectl(
            &ctx,
            &[
                "rollout",
                "status",
                "deployment/web",
                "-n",
                &env,
                "--timeout=120s",
            ],
        )
        .expect("web rolls out");
    // A sync that writes records a verdict for every object but the Secret
    // (the Deployment at the resourceVersion its status settled at).
    git.write("manifests/app/config.yaml", manifests("two"));
    git.commit("mode two");
    sync("second sync");

    let (code, entry) = diff(&run);
    assert_eq!(code, 0, "in sync: {entry}");
    assert_eq!(
        entry["requests"]["dryRuns"], 1,
        "only the Secret is dry-run: {entry}"
    );
    assert_eq!(entry["verdictsUsed"], 3, "{entry}");
    assert_eq!(
        entry["requests"]["writes"], 0,
        "a diff writes nothing: {entry}"
    );
    // Every time: the Secret has no verdict, and nothing of it is stored.
    let (_, again) = diff(&run);
    assert_eq!(again["requests"]["dryRuns"], 1, "{again}");
    let stored = fleet
        .kubectl(
            &ctx,
            &["get", "configmaps", "-n", "tidegate-system", "-o", "json"],
        )
        .expect("inventories");
    let ours = format!("tidegate.{env}.app");
    assert!(stored.contains(&ours), "no inventory {ours}");
    let verdicts = super::inventory_field(fleet, &ctx, &env, "verdicts");
    assert!(
        verdicts.contains("ConfigMap/") && verdicts.contains("/Deployment/"),
        "{verdicts}"
    );
    for absent in ["verdict-creds", "/Secret/", SECRET_VALUE] {
        assert!(
            !verdicts.contains(absent),
            "{absent} in the verdicts: {verdicts}"
        );
    }
    let parsed: serde_json::Value = serde_json::from_str(&verdicts).expect("verdicts are JSON");
    let entries = parsed["objects"].as_object().expect("objects");
    assert_eq!(
        entries.len(),
        3,
        "three verdicts, none for the Secret: {verdicts}"
    );
    assert!(
        !stored.contains(SECRET_VALUE),
        "the Secret's value is in tidegate-system"
    );

    // A live edit changes the resourceVersion: dry-run again, drift shown.
    fleet
        .kubectl(
            &ctx,
            &["scale", "deployment/web", "-n", &env, "--replicas=3"],
        )
        .expect("scale");
    fleet
        .kubectl(
            &ctx,
            &[
                "patch",
                "configmap",
                "extra",
                "-n",
                &env,
                "-p",
                r#"{"data":{"a":"2"}}"#,
            ],
        )
        .expect("patch");
    let (code, entry) = diff(&run);
    assert_eq!(code, 1, "drift: {entry}");
    let mut changed = differing(&entry);
    changed.sort();
    assert_eq!(changed, ["extra", "web"], "{entry}");
    assert_eq!(
        entry["requests"]["dryRuns"].as_u64().map(|n| n >= 3),
        Some(true),
        "{entry}"
    );

    // A Git change changes the hash: dry-run again, the change shown.
    sync("correct the drift");
    git.write("manifests/app/config.yaml", manifests("three"));
    git.commit("mode three");
    let (code, entry) = diff(&run);
    assert_eq!(code, 1, "Git changed: {entry}");
    assert_eq!(differing(&entry), ["settings"], "{entry}");
    // settings and the Secret at least (web too when its status moved on
    // after the correction).
    assert_eq!(
        entry["requests"]["dryRuns"].as_u64().map(|n| n >= 2),
        Some(true),
        "{entry}"
    );
}
