//! The example environments render as the golden snapshots say (insta).

use crate::pipeline::render_env;
use tidegate_render::Rendered;
use tidegate_tests::{GitFixture, workspace_root};

/// The examples committed to a fresh repository, exactly as in this one.
fn examples_repo() -> GitFixture {
    let mut fx = GitFixture::new();
    let root = workspace_root();
    fx.copy_dir(&root.join("manifests"), "manifests")
        .copy_dir(&root.join("environments"), "environments");
    fx.commit("examples");
    fx
}

/// YAML with a source line per object; the commit SHA is left out.
fn text(rendered: &Rendered) -> String {
    let mut out = String::new();
    for cluster in &rendered.clusters {
        for app in &cluster.apps {
            for o in &app.objects {
                out.push_str(&format!(
                    "--- # {} / {} / {}\n",
                    cluster.cluster, app.app, o.provenance
                ));
                out.push_str(&serde_saphyr::to_string(&*o.manifest).expect("yaml"));
            }
        }
    }
    out
}

#[test]
fn example_environments_match_their_snapshots() {
    let fx = examples_repo();
    for env in ["dev", "staging", "prod"] {
        let rendered = render_env(fx.path(), env).unwrap_or_else(|e| panic!("{env}: {e}"));
        insta::assert_snapshot!(format!("render_{env}"), text(&rendered));
    }
}

#[test]
fn prod_applies_environment_and_cluster_overlays() {
    let fx = examples_repo();
    let rendered = render_env(fx.path(), "prod").expect("prod renders");
    let object = |cluster: &str, kind: &str, name: &str| {
        rendered
            .clusters
            .iter()
            .find(|c| c.cluster == cluster)
            .and_then(|c| {
                c.apps[0]
                    .objects
                    .iter()
                    .find(|o| o.key.kind == kind && o.key.name == name)
            })
            .map(|o| o.manifest.clone())
            .unwrap_or_else(|| panic!("{cluster} {kind} {name}"))
    };
    for cluster in ["eks-us-east-1", "aks-westeurope", "gke-us-central1"] {
        let d = object(cluster, "Deployment", "gin-app-blue");
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "ghcr.io/example/gin-app:1.4.2"
        );
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "tidegate"
        );
        assert_eq!(d["metadata"]["labels"]["tidegate.dev/environment"], "prod");
        assert_eq!(
            d["metadata"]["annotations"]["tidegate.dev/tracking-id"],
            "prod/gin-app/apps/Deployment/gin-app/gin-app-blue"
        );
        let expected_level = if cluster == "eks-us-east-1" {
            "debug"
        } else {
            "info"
        };
        assert_eq!(
            object(cluster, "ConfigMap", "gin-app-config")["data"]["LOG_LEVEL"],
            expected_level
        );
    }
    assert_eq!(
        object("aks-westeurope", "Ingress", "gin-app")["spec"]["rules"][0]["host"],
        "gin-app.westeurope.example.com"
    );
    assert_eq!(
        object("gke-us-central1", "Ingress", "gin-app")["spec"]["rules"][0]["host"],
        "gin-app.example.com"
    );
    let kinds: Vec<&str> = rendered.clusters[0].apps[0]
        .objects
        .iter()
        .map(|o| o.key.kind.as_str())
        .collect();
    assert_eq!(
        kinds.first(),
        Some(&"Namespace"),
        "namespaces first: {kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"Ingress"), "ingresses last: {kinds:?}");
}

#[test]
fn rendering_is_deterministic() {
    let fx = examples_repo();
    let a = text(&render_env(fx.path(), "prod").expect("prod"));
    let b = text(&render_env(fx.path(), "prod").expect("prod"));
    assert_eq!(a, b);
}

#[test]
fn deployment_strategy_is_injected_where_the_manifest_sets_none() {
    let mut fx = examples_repo();
    let root = workspace_root();
    let deployments =
        std::fs::read_to_string(root.join("manifests/gin-app/deployments.yaml")).expect("read");
    let without = deployments.replacen(
        "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 25%\n      maxUnavailable: 0\n",
        "",
        1,
    );
    assert_ne!(without, deployments, "the example sets a strategy on blue");
    fx.write("manifests/gin-app/deployments.yaml", without);
    fx.commit("blue without strategy");
    let rendered = render_env(fx.path(), "prod").expect("renders");
    let blue = rendered.clusters[0].apps[0]
        .objects
        .iter()
        .find(|o| o.key.kind == "Deployment" && o.key.name == "gin-app-blue")
        .expect("blue");
    assert_eq!(
        blue.manifest["spec"]["strategy"],
        serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}})
    );
}

#[test]
fn the_active_colour_in_git_decides_the_service_selector_and_ingress_backend() {
    let mut fx = examples_repo();
    let root = workspace_root();
    let prod = std::fs::read_to_string(root.join("environments/prod.yaml")).expect("prod");
    let green = prod
        .replace("      activeColor: blue", "      activeColor: green")
        .replace(
            "      selectorKey: version\n",
            "      selectorKey: version\n      ingress: gin-app\n",
        );
    assert_ne!(green, prod);
    fx.write("environments/prod.yaml", green);
    let ingress =
        std::fs::read_to_string(root.join("manifests/gin-app/ingress.yaml")).expect("ingress");
    fx.write(
        "manifests/gin-app/ingress.yaml",
        ingress.replace(
            "                name: gin-app\n                port:",
            "                name: gin-app-blue\n                port:",
        ),
    );
    fx.commit("switch to green");
    let rendered = render_env(fx.path(), "prod").expect("renders");
    for cluster in &rendered.clusters {
        let find = |kind: &str, name: &str| {
            cluster.apps[0]
                .objects
                .iter()
                .find(|o| o.key.kind == kind && o.key.name == name)
                .map(|o| o.manifest.clone())
                .expect(name)
        };
        assert_eq!(
            find("Service", "gin-app")["spec"]["selector"]["version"],
            "green"
        );
        assert_eq!(
            find("Service", "gin-app-blue")["spec"]["selector"]["version"],
            "blue",
            "per-colour Services are not switched"
        );
        assert_eq!(
            find("Ingress", "gin-app")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
                ["name"],
            "gin-app-green"
        );
    }
}

#[test]
fn a_blue_green_entry_naming_a_missing_service_is_an_error() {
    let mut fx = examples_repo();
    let prod =
        std::fs::read_to_string(workspace_root().join("environments/prod.yaml")).expect("prod");
    fx.write(
        "environments/prod.yaml",
        prod.replace("services: [gin-app]", "services: [gin-api]"),
    );
    fx.commit("typo");
    let err = render_env(fx.path(), "prod")
        .expect_err("invalid")
        .to_string();
    assert!(
        err.contains("Service \"gin-api\" is not among the app's objects"),
        "{err}"
    );
    assert!(err.contains("environments/prod.yaml:"), "{err}");
}

#[test]
fn prod_runs_a_presync_migration_of_the_released_image() {
    let fx = examples_repo();
    let rendered = render_env(fx.path(), "prod").expect("prod renders");
    for cluster in &rendered.clusters {
        let app = cluster
            .apps
            .iter()
            .find(|a| a.app == "gin-app")
            .expect("gin-app");
        assert!(
            app.objects.iter().all(|o| o.key.kind != "Job"),
            "a hook is not one of the app's objects"
        );
        let [hook] = app.hooks.as_slice() else {
            panic!("one hook in {}: {:?}", cluster.cluster, app.hooks);
        };
        assert_eq!(hook.key.name, "gin-app-migrate");
        let meta = &hook.manifest["metadata"];
        assert_eq!(meta["annotations"]["tidegate.dev/hook"], "PreSync");
        assert_eq!(meta["labels"]["tidegate.dev/hook"], "PreSync");
        assert_eq!(
            hook.manifest["spec"]["template"]["spec"]["containers"][0]["image"],
            "ghcr.io/example/gin-app:1.4.2",
            "the environment's image override applies to the migration"
        );
    }
}
