use super::*;
use crate::environment::Provider;

const MINIMAL: &str = "\
apiVersion: tidegate.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  source:
    repoURL: .
    ref: main
    path: manifests
  clusters:
    - name: local
      provider:
        kubeconfig:
          context: kind-local
      wave: 1
  apps:
    - name: gin-app
      namespace: gin-app
";

fn parse(text: &str) -> Result<Environment, Diagnostics> {
    Environment::parse(text, "environments/dev.yaml")
}

fn only_error(text: &str) -> Diagnostic {
    let errs = parse(text).expect_err("must be rejected");
    assert_eq!(errs.len(), 1, "{errs}");
    errs.0.into_iter().next().expect("one")
}

#[test]
fn reads_a_minimal_environment_with_defaults() {
    let env = parse(MINIMAL).expect("valid");
    assert_eq!(env.metadata.name, "dev");
    let cluster = env.cluster("local").expect("cluster");
    assert!(matches!(cluster.provider, Provider::Kubeconfig(_)));
    assert_eq!(cluster.kubeconfig_context(), "kind-local");
    assert_eq!(env.spec.clusters[0].line, 11);
    assert_eq!(env.spec.apps[0].manifests_dir(), "gin-app");
    assert_eq!(env.spec.rollout.max_surge.to_string(), "1");
    assert_eq!(env.spec.sync.interval.to_string(), "3m");
}

#[test]
fn unknown_field_names_line_and_valid_fields() {
    let text = MINIMAL.replace("      wave: 1", "      wave: 1\n      wavee: 2");
    let d = only_error(&text);
    assert_eq!(d.file.as_deref(), Some("environments/dev.yaml"));
    assert_eq!(d.line, Some(16), "{d}");
    assert!(d.message.contains("wavee"), "{d}");
    assert!(
        d.message.contains("provider") && d.message.contains("labels"),
        "valid fields listed: {d}"
    );
}

#[test]
fn yaml_syntax_error_has_a_line() {
    let text = MINIMAL.replace("    ref: main", "    ref: [main");
    let d = only_error(&text);
    assert!(d.line.is_some(), "{d}");
}

#[test]
fn yaml11_booleans_are_refused_for_booleans() {
    let text = format!("{MINIMAL}  sync:\n    prune: yes\n");
    let d = only_error(&text);
    assert_eq!(d.line, Some(20), "{d}");
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("true or false")),
        "{d}"
    );
}

#[test]
fn semantic_problems_are_all_reported() {
    let text = MINIMAL.replace("metadata:\n  name: dev", "metadata:\n  name: prod")
        + "  rollout:\n    maxSurge: 0\n    maxUnavailable: 0%\n"
        + "  blueGreen:\n    - app: nope\n      services: [web]\n      colors: {blue: {deployment: a}, green: {deployment: b}}\n      activeColor: red\n";
    let errs = parse(&text).expect_err("invalid");
    let all = errs.to_string();
    assert!(all.contains("file is named \"dev\""), "{all}");
    assert!(all.contains("both 0"), "{all}");
    assert!(all.contains("app \"nope\""), "{all}");
    assert!(all.contains("activeColor \"red\""), "{all}");
    assert_eq!(errs.len(), 4, "{all}");
}

#[test]
fn duplicate_clusters_and_escaping_paths() {
    let text = MINIMAL.replace(
        "      wave: 1\n",
        "      wave: 1\n    - name: local\n      provider: {eks: {region: us-east-1, clusterName: x}}\n",
    )
    .replace("path: manifests", "path: ../outside");
    let errs = parse(&text).expect_err("invalid");
    let all = errs.to_string();
    assert!(
        all.contains("listed twice") && all.contains(":16:"),
        "{all}"
    );
    assert!(all.contains("leaves the repository"), "{all}");
}
