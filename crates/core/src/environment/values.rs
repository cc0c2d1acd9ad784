//! Names and values in an environment file that the API server would refuse
//! later, or that would reach it in a form it misreads: checked here so
//! `validate` reports them with their line before anything is applied.

use super::Environment;
use crate::{Diagnostic, Diagnostics, names};
use crate::{
    intorpercent::IntOrPercent,
    selector::{LabelOperator, LabelSelector},
};

/// Every such problem of `env`, read from `text` (for lines the parsed
/// types do not keep) in `file`.
pub(super) fn check(env: &Environment, text: &str, file: &str) -> Diagnostics {
    let mut out = Diagnostics::default();
    let mut problem = |line: Option<u64>, message: String, help: &str| {
        out.push(Diagnostic::new(message).at(file, line).help(help));
    };
    let name = &env.metadata.name;
    if !names::is_dns_label(name) {
        problem(
            line_of(text, "metadata", "name"),
            format!(
                "environment name {name:?} is not a DNS label; it names the in-cluster inventory (tidegate.{name}.<app>) and labels every object"
            ),
            &format!(
                "rename it and its file to lower-case letters, digits and '-' (at most 63), e.g. environments/{}.yaml",
                suggest_label(name)
            ),
        );
    }
    if env.spec.sync.interval.0.is_zero() {
        problem(
            line_of(text, "sync", "interval"),
            "spec.sync.interval is 0, which would reconcile in a busy loop".into(),
            "give a positive interval such as 3m",
        );
    }
    if let Some(strategy) = &env.spec.rollout.deployment_strategy {
        for (what, value) in [
            ("maxSurge", strategy.max_surge),
            ("maxUnavailable", strategy.max_unavailable),
        ] {
            if let IntOrPercent::Int(n) = value
                && i32::try_from(n).is_err()
            {
                problem(
                    line_of(text, "deploymentStrategy", what),
                    format!(
                        "spec.rollout.deploymentStrategy.{what} is {n}, above the int32 range of a Deployment's field"
                    ),
                    "give at most 2147483647 (or a percentage)",
                );
            }
        }
    }
    for app in &env.spec.apps {
        if let Some(ns) = &app.namespace
            && !names::is_dns_label(ns)
        {
            problem(
                app.line(),
                format!("app {}: namespace {ns:?} is not a DNS label", app.name),
                "use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit",
            );
        }
        for overlay in &app.overlays {
            if let Some(selector) = &overlay.cluster_selector {
                for message in selector_problems(selector) {
                    problem(
                        overlay.line(),
                        format!("app {}: clusterSelector: {message}", app.name),
                        "label keys are [prefix/]name and values at most 63 letters, digits, '-', '_' and '.'; In/NotIn need values, Exists/DoesNotExist none",
                    );
                }
            }
            for image in &overlay.images {
                let mut bad = Vec::new();
                if !names::is_image_name(&image.name) {
                    bad.push(format!("name {:?}", image.name));
                }
                if let Some(n) = image.new_name.as_ref().filter(|n| !names::is_image_name(n)) {
                    bad.push(format!("newName {n:?}"));
                }
                if let Some(t) = image.new_tag.as_ref().filter(|t| !names::is_image_tag(t)) {
                    bad.push(format!("newTag {t:?}"));
                }
                if let Some(d) = image.digest.as_ref().filter(|d| !names::is_image_digest(d)) {
                    bad.push(format!("digest {d:?}"));
                }
                if !bad.is_empty() {
                    problem(
                        image.line(),
                        format!(
                            "app {}: image override: {} not valid",
                            app.name,
                            bad.join(", ")
                        ),
                        "write names as registry/repository (lower case), tags of at most 128 letters, digits, '_', '.', '-', digests as sha256:<64 hex digits>",
                    );
                }
            }
            for replicas in &overlay.replicas {
                if i32::try_from(replicas.count).is_err() {
                    problem(
                        replicas.line(),
                        format!(
                            "app {}: replica count {} is above the int32 range of spec.replicas",
                            app.name, replicas.count
                        ),
                        "give at most 2147483647",
                    );
                }
                if let Some(why) = names::object_name_problem(&replicas.kind, &replicas.name) {
                    problem(
                        replicas.line(),
                        format!(
                            "app {}: replica override name {:?} is not {why}",
                            app.name, replicas.name
                        ),
                        "name the workload as its manifest does",
                    );
                }
            }
        }
    }
    for cluster in &env.spec.clusters {
        for (key, value) in &cluster.labels {
            if !names::is_label_key(key) || !names::is_label_value(value) {
                problem(
                    Some(cluster.line).filter(|l| *l > 0),
                    format!(
                        "cluster {}: label {key:?}: {value:?} is not a valid label",
                        cluster.name
                    ),
                    "label keys are [prefix/]name and values at most 63 letters, digits, '-', '_' and '.'",
                );
            }
        }
    }
    out
}

/// What is wrong with a label selector, one message per problem.
fn selector_problems(selector: &LabelSelector) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in &selector.match_labels {
        if !names::is_label_key(key) {
            out.push(format!("{key:?} is not a label key"));
        }
        if !names::is_label_value(value) {
            out.push(format!("{value:?} is not a label value"));
        }
    }
    for r in &selector.match_expressions {
        if !names::is_label_key(&r.key) {
            out.push(format!("{:?} is not a label key", r.key));
        }
        match r.operator {
            LabelOperator::In | LabelOperator::NotIn if r.values.is_empty() => {
                out.push(format!("{:?} with {:?} needs values", r.key, r.operator));
            }
            LabelOperator::Exists | LabelOperator::DoesNotExist if !r.values.is_empty() => {
                out.push(format!("{:?} with {:?} takes no values", r.key, r.operator));
            }
            _ => {}
        }
        for v in r.values.iter().filter(|v| !names::is_label_value(v)) {
            out.push(format!("{v:?} is not a label value"));
        }
    }
    out
}

/// The line of `key:` in the first block that follows a `parent:` line;
/// `None` when not found.
fn line_of(text: &str, parent: &str, key: &str) -> Option<u64> {
    let mut in_parent = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        if trimmed.starts_with(&format!("{parent}:")) {
            in_parent = true;
        } else if in_parent && trimmed.starts_with(&format!("{key}:")) {
            return u64::try_from(i + 1).ok();
        }
    }
    None
}

/// A DNS label close to `name`, for the hint.
fn suggest_label(name: &str) -> String {
    let mapped: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let mut s: String = trimmed.chars().take(63).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() { "env".into() } else { s }
}

#[cfg(test)]
mod tests {
    use crate::Environment;

    fn env(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {name}\nspec:\n  source:\n    repoURL: .\n  clusters:\n    - name: local\n      provider:\n        kubeconfig: {{}}\n  apps:\n    - name: web\n{extra}"
        )
    }

    fn errors(name: &str, extra: &str) -> String {
        Environment::parse(&env(name, extra), &format!("environments/{name}.yaml"))
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn the_suggested_environment_name_is_a_dns_label() {
        for (name, want) in [
            ("Prod_EU", "prod-eu"),
            ("__staging__", "staging"),
            ("a.b c", "a-b-c"),
            ("ÄÖ", "env"),
        ] {
            assert_eq!(super::suggest_label(name), want, "{name}");
            assert!(crate::names::is_dns_label(want));
        }
        assert!(errors("Prod_EU", "").contains("is not a DNS label"));
    }

    #[test]
    fn zero_interval_namespaces_images_replicas_and_selectors() {
        let all = errors(
            "dev",
            "      namespace: Web_NS\n      overlays:\n        - clusterSelector:\n            matchLabels: {\"bad key\": x}\n            matchExpressions: [{key: tier, operator: In}]\n          images:\n            - {name: ghcr.io/x/app, newTag: \"1 2\"}\n          replicas:\n            - {name: \"ok?dryRun=All&x=\", count: 3000000000}\n  sync:\n    interval: 0s\n",
        );
        for want in [
            "dev.yaml:13: app web: namespace \"Web_NS\" is not a DNS label",
            "dev.yaml:16: app web: clusterSelector: \"bad key\" is not a label key",
            "\"tier\" with In needs values",
            "dev.yaml:20: app web: image override: newTag \"1 2\" not valid",
            "dev.yaml:22: app web: replica count 3000000000 is above the int32 range",
            "replica override name \"ok?dryRun=All&x=\" is not",
            "dev.yaml:24: spec.sync.interval is 0",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
    }
}

#[cfg(test)]
mod patch_numbers {
    #[test]
    fn patch_values_read_numbers_like_kubernetes() {
        let text = "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: dev\nspec:\n  source:\n    repoURL: .\n  clusters:\n    - name: local\n      provider:\n        kubeconfig: {}\n  apps:\n    - name: web\n      overlays:\n        - patches:\n            - target: {kind: X}\n              json: [{op: add, path: /a, value: 0400}, {op: add, path: /b, value: 08}, {op: add, path: /c, value: 1.0}, {op: add, path: /e, value: 0x1F}]\n            - target: {kind: Y}\n              merge: {spec: {replicas: 010, mode: 0644}}\n";
        let env = crate::Environment::parse(text, "environments/dev.yaml").expect("valid");
        let patches = &env.spec.apps[0].overlays[0].patches;
        assert_eq!(
            patches[0].json.as_ref().map(ToString::to_string).as_deref(),
            Some(
                r#"[{"op":"add","path":"/a","value":256},{"op":"add","path":"/b","value":8},{"op":"add","path":"/c","value":1},{"op":"add","path":"/e","value":31}]"#
            )
        );
        assert_eq!(
            patches[1]
                .merge
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some(r#"{"spec":{"replicas":8,"mode":420}}"#)
        );
    }
}
