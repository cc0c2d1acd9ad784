//! Every fixture under `tests/fixtures/<kind>/<case>.json` is a live object
//! as a Kubernetes v1.37 API server returns it, with the health we expect:
//!
//! ```json
//! {"expect": {"status": "Degraded", "reason": "ProgressDeadlineExceeded"}, "object": {...}}
//! ```
//!
//! `reason` is a substring of the reason [`assess`] must give. Group and kind
//! come from the object's `apiVersion` and `kind`.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use tidegate_health::{HealthStatus, assess};

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = Vec::new();
    for dir in fs::read_dir(&root).expect("fixtures directory") {
        let dir = dir.expect("directory entry").path();
        assert!(dir.is_dir(), "{} should be a kind directory", dir.display());
        for file in fs::read_dir(&dir).expect("kind directory") {
            let file = file.expect("directory entry").path();
            assert_eq!(
                file.extension().and_then(|e| e.to_str()),
                Some("json"),
                "{} should be a .json fixture",
                file.display()
            );
            files.push(file);
        }
    }
    files.sort();
    files
}

#[test]
fn every_fixture_gets_its_expected_health() {
    let files = fixtures();
    assert!(files.len() >= 60, "only {} fixtures found", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(file)
            .display()
            .to_string();
        let text = fs::read_to_string(file).expect("readable fixture");
        let fixture: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        let expected: HealthStatus = serde_json::from_value(fixture["expect"]["status"].clone())
            .unwrap_or_else(|e| panic!("{name}: bad expect.status: {e}"));
        let reason = fixture["expect"]["reason"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: expect.reason must be a string"));
        let object = &fixture["object"];
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let kind = object["kind"].as_str().expect("kind");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);

        let health = assess(group, kind, Some(object));
        // Shown with `cargo test -p tidegate-health -- --nocapture`.
        println!("{name}: {health}");
        if health.status != expected || !health.reason.contains(reason) {
            failures.push(format!(
                "{name}: expected {expected} with reason containing {reason:?}, got {health}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn every_documented_kind_has_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for kind in [
        "deployment",
        "statefulset",
        "daemonset",
        "replicaset",
        "pod",
        "job",
        "cronjob",
        "service",
        "ingress",
        "pvc",
        "namespace",
        "hpa",
        "crd",
        "custom",
    ] {
        let dir = root.join(kind);
        let count = fs::read_dir(&dir)
            .map(|d| d.count())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(count >= 2, "{kind}: at least two cases expected");
    }
}
