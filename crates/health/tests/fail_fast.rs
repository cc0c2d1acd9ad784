//! The fail-fast verdict against fixtures of real pod and Deployment statuses.

use serde_json::Value;
use std::path::Path;
use tidegate_health::pods::{fail_fast, fatal_pod};

fn object(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    let text = std::fs::read_to_string(&file).expect("fixture");
    let fixture: Value = serde_json::from_str(&text).expect("fixture JSON");
    fixture["object"].clone()
}

#[test]
fn fatal_waiting_reasons_fail_fast() {
    let healthy = object("deployment/healthy.json");
    for (fixture, reason) in [
        ("pod/crashloop.json", "CrashLoopBackOff"),
        ("pod/image-pull-backoff.json", "ImagePullBackOff"),
        ("pod/init-container-crashloop.json", "CrashLoopBackOff"),
        (
            "pod/create-container-config-error.json",
            "CreateContainerConfigError",
        ),
    ] {
        let pods = [object("pod/running-ready.json"), object(fixture)];
        let verdict = fail_fast(&healthy, &pods).unwrap_or_else(|| panic!("{fixture}"));
        assert_eq!(verdict.reason, reason, "{fixture}");
        assert!(verdict.pod.is_some() && verdict.container.is_some());
        assert!(verdict.to_string().contains(reason));
    }
}

#[test]
fn pods_that_may_still_work_do_not_fail_fast() {
    let healthy = object("deployment/healthy.json");
    for fixture in [
        "pod/running-ready.json",
        "pod/running-not-ready.json",
        "pod/pending-container-creating.json",
        "pod/pending-unschedulable.json",
    ] {
        assert_eq!(fail_fast(&healthy, &[object(fixture)]), None, "{fixture}");
    }
    // A crash-looping pod that is being deleted (an old one) says nothing.
    let mut old = object("pod/crashloop.json");
    old["metadata"]["deletionTimestamp"] = "2026-11-25T09:20:00Z".into();
    assert_eq!(fatal_pod(&old), None);
}

#[test]
fn progress_deadline_exceeded_fails_fast_without_pods() {
    let d = object("deployment/progress-deadline-exceeded.json");
    let verdict = fail_fast(&d, &[]).expect("verdict");
    assert_eq!(verdict.reason, "ProgressDeadlineExceeded");
    assert_eq!(verdict.pod, None);
    assert_eq!(
        fail_fast(&object("deployment/updated-less-than-replicas.json"), &[]),
        None
    );
}
