//! The shipped deployment files (deploy/): Prometheus' own `promtool`
//! checks the scrape configuration and the alerting rules and runs the
//! alerts' unit tests on synthetic series; the Grafana dashboard parses and
//! queries only the controller's metrics (issue #17's list), in PromQL that
//! promtool accepts; the controller's Deployment is locked down. The
//! manifests against a real API server, and the RBAC rules by a real sync,
//! are in `cluster::deploy`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Debian's prometheus package ships it (`make test-deps` installs it).
const PROMTOOL: &str = "/usr/bin/promtool";

/// The controller's metrics (issue #17), as Prometheus names them: counters
/// end in `_total`, histograms add `_bucket`, `_sum` and `_count`.
/// `tidegate_audit_verify_ok` (1 when the audit trail verified, 0 when not)
/// is not in the issue's list: the "audit verify failing" alert needs it.
const METRICS: [(&str, Kind); 13] = [
    ("tidegate_sync_total", Kind::Plain),
    ("tidegate_sync_duration_seconds", Kind::Histogram),
    ("tidegate_drift_objects", Kind::Plain),
    ("tidegate_cluster_health", Kind::Plain),
    ("tidegate_rollouts_total", Kind::Plain),
    ("tidegate_rollbacks_total", Kind::Plain),
    ("tidegate_switches_total", Kind::Plain),
    ("tidegate_wave", Kind::Plain),
    ("tidegate_git_fetch_duration_seconds", Kind::Histogram),
    ("tidegate_api_requests_total", Kind::Plain),
    ("tidegate_last_applied_revision_info", Kind::Plain),
    ("tidegate_leader", Kind::Plain),
    ("tidegate_audit_verify_ok", Kind::Plain),
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Histogram,
}

fn deploy_dir() -> PathBuf {
    tidegate_tests::workspace_root().join("deploy")
}

/// Runs promtool and returns its output; panics with it unless it succeeded.
fn promtool(args: &[&str], dir: &Path) -> String {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: run `make test-deps` (as root on Debian it installs the prometheus package, which ships promtool) or `sudo apt-get install prometheus`"
    );
    let output = Command::new(PROMTOOL)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The metric names an expression uses: every identifier that starts with
/// `tidegate_` (labels and functions never do).
fn tidegate_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    // A string literal ('...' or "...") holds label values, not names.
    let mut quote: Option<char> = None;
    for c in expr.chars().chain([' ']) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => {
                word.clear();
                quote = Some(c);
            }
            None if c.is_ascii_alphanumeric() || c == '_' || c == ':' => word.push(c),
            None => {
                if word.starts_with("tidegate_") {
                    names.insert(std::mem::take(&mut word));
                }
                word.clear();
            }
        }
    }
    names
}

/// The metric of the list a series name belongs to (`_bucket` of a
/// histogram belongs to the histogram), or None.
fn known_metric(name: &str) -> Option<&'static str> {
    METRICS.iter().find_map(|&(metric, kind)| {
        let matches = name == metric
            || (kind == Kind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(metric)));
        matches.then_some(metric)
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `expr` of the dashboard's panels and every variable query.
fn dashboard_queries(dashboard: &Value) -> (Vec<String>, Vec<String>) {
    let mut exprs = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = panels.pop() {
        // Rows nest their panels.
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push(expr.to_string());
            }
        }
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .expect("a query variable's query")
                .to_string()
        })
        .collect();
    (exprs, variables)
}

#[test]
fn promtool_accepts_the_shipped_rules_and_scrape_config() {
    let dir = deploy_dir().join("prometheus");
    let rules = promtool(&["check", "rules", "tidegate-alerts.yml"], &dir);
    assert!(rules.contains("SUCCESS: 7 rules found"), "{rules}");
    // The configuration check also checks the rule files it names.
    let config = promtool(&["check", "config", "prometheus.yml"], &dir);
    assert!(
        config.contains("SUCCESS: 1 rule files found")
            && config.contains("valid prometheus config file syntax"),
        "{config}"
    );
}

#[test]
fn the_shipped_alerts_fire_on_synthetic_series() {
    // Rollout failed, cluster unreachable, drift persisting, audit verify
    // failing, no leader, down: each fires when due and not before
    // (deploy/prometheus/tidegate-alerts.test.yml).
    let dir = deploy_dir().join("prometheus");
    let text = promtool(&["test", "rules", "tidegate-alerts.test.yml"], &dir);
    assert!(text.contains("SUCCESS"), "{text}");
    let tests = read(&dir.join("tidegate-alerts.test.yml"));
    for alert in [
        "TidegateRolloutFailed",
        "TidegateClusterUnreachable",
        "TidegateDriftPersisting",
        "TidegateAuditVerifyFailing",
        "TidegateNoLeader",
        "TidegateDown",
    ] {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} has no unit test"
        );
    }
}

#[test]
fn the_alert_rules_use_only_the_controllers_metrics() {
    let rules = read(&deploy_dir().join("prometheus/tidegate-alerts.yml"));
    let rules: Value = serde_saphyr::from_str(&rules).expect("alert rules parse");
    let mut used = 0;
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            for name in tidegate_names(expr) {
                assert!(
                    known_metric(&name).is_some(),
                    "alert {}: {name} is not a metric of the controller",
                    rule["alert"]
                );
                used += 1;
            }
        }
    }
    assert!(used >= 5, "the alerts name {used} metrics");
}

#[test]
fn the_dashboard_queries_only_the_controllers_metrics_in_valid_promql() {
    let path = deploy_dir().join("grafana/tidegate-dashboard.json");
    let dashboard: Value = serde_json::from_str(&read(&path)).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "tidegate");
    let (exprs, variables) = dashboard_queries(&dashboard);
    assert!(exprs.len() >= 12, "{} panel queries", exprs.len());

    let mut covered = BTreeSet::new();
    for expr in exprs.iter().chain(&variables) {
        let names = tidegate_names(expr);
        assert!(
            !names.is_empty(),
            "{expr:?} names no metric of the controller"
        );
        for name in names {
            let metric = known_metric(&name)
                .unwrap_or_else(|| panic!("{expr:?}: {name} is not a metric of the controller"));
            covered.insert(metric);
        }
    }
    let missing: Vec<_> = METRICS
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| !covered.contains(m))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard shows nothing of {missing:?}"
    );

    // promtool parses every panel query as a recording rule, with
    // Grafana's variables replaced as Grafana would.
    let temp = tempfile::tempdir().expect("temp dir");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$env", ".*")
            .replace("$cluster", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&expr).expect("a JSON string is a YAML string")
        ));
    }
    std::fs::write(temp.path().join("dashboard.yml"), rules).expect("write rules");
    let text = promtool(&["check", "rules", "dashboard.yml"], temp.path());
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{text}"
    );
}

#[test]
fn the_metric_name_scanner_finds_names_and_skips_label_values() {
    let names = tidegate_names(
        r#"histogram_quantile(0.9, sum by (le) (rate(tidegate_sync_duration_seconds_bucket{env="tidegate_x"}[5m]))) / tidegate_wave"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["tidegate_sync_duration_seconds_bucket", "tidegate_wave"]
    );
    assert_eq!(
        known_metric("tidegate_sync_duration_seconds_bucket"),
        Some("tidegate_sync_duration_seconds")
    );
    assert_eq!(known_metric("tidegate_wave_bucket"), None);
    assert_eq!(known_metric("tidegate_sync_objects"), None);
}

#[test]
fn the_controller_deployment_is_locked_down_and_probed() {
    let text = read(&deploy_dir().join("management/deployment.yaml"));
    let deployment: Value = serde_saphyr::from_str(&text).expect("deployment parses");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    assert_eq!(pod["serviceAccountName"], "tidegate-controller");
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let controller = args.iter().position(|a| *a == "controller");
    assert!(controller.is_some(), "{args:?}");
    assert!(args.iter().any(|a| a.starts_with("--listen=")), "{args:?}");
    // Every path the controller writes is a mounted volume.
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for env in c["env"].as_array().expect("env") {
        if let Some(value) = env["value"].as_str()
            && value.starts_with('/')
        {
            assert!(
                mounts.iter().any(|m| value.starts_with(m)),
                "{} = {value} is on the read-only root filesystem",
                env["name"]
            );
        }
    }
}

#[test]
fn the_images_entry_point_runs_with_an_empty_environment() {
    // As a FROM scratch container starts it: no environment at all, a
    // working directory that is no repository.
    let empty = tempfile::tempdir().expect("temp dir");
    let mut binaries = vec![crate::cluster::tidegate_bin()];
    // The statically linked binary the image holds, when `make
    // image-binary` (or `make image`) built it: a second full release
    // build, too slow for make test.
    let static_bin = tidegate_tests::workspace_root()
        .join("target/static/x86_64-unknown-linux-gnu/release/tidegate");
    if static_bin.exists() {
        // A static-pie binary is ELF type DYN and `ldd` calls it
        // "statically linked": what matters is that it names no shared
        // library.
        let dynamic = Command::new("readelf")
            .arg("-d")
            .arg(&static_bin)
            .output()
            .expect("readelf");
        let dynamic = String::from_utf8_lossy(&dynamic.stdout);
        assert!(
            !dynamic.contains("(NEEDED)"),
            "{} is dynamically linked: {dynamic}",
            static_bin.display()
        );
        binaries.push(static_bin);
    }
    for bin in binaries {
        for args in [&["--version"][..], &["controller", "--help"]] {
            let output = Command::new(&bin)
                .args(args)
                .env_clear()
                .current_dir(empty.path())
                .output()
                .expect("run tidegate");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{} {args:?}: {}{}",
                bin.display(),
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
            let expected = if args[0] == "--version" {
                format!("tidegate {}", env!("CARGO_PKG_VERSION"))
            } else {
                "--leader-elect".to_string()
            };
            assert!(stdout.contains(&expected), "{}: {stdout}", bin.display());
        }
    }
}
