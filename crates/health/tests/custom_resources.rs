//! The generic rules for custom resources, one case (or more) per row of
//! the table in the crate documentation, on objects of a test kind
//! `widgets.example.com/v1 Widget`.

use serde_json::{Value, json};
use std::time::Duration;
use tidegate_health::{Context, HealthStatus, IngressWithoutClass, assess, assess_with};

const GROUP: &str = "example.com";

/// A Widget at generation 2 with `status` (none when null).
fn widget(status: Value) -> Value {
    let mut obj = json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "shop", "generation": 2,
                     "creationTimestamp": "2026-12-01T10:00:00Z"},
        "spec": {"size": 3},
    });
    if !status.is_null() {
        obj["status"] = status;
    }
    obj
}

fn ready(status: &str, reason: &str) -> Value {
    json!({"observedGeneration": 2, "conditions": [
        {"type": "Ready", "status": status, "reason": reason, "message": "m"}
    ]})
}

#[track_caller]
fn expect(obj: &Value, status: HealthStatus, reason_part: &str) {
    let h = assess(GROUP, "Widget", Some(obj));
    assert_eq!(h.status, status, "{h} for {obj}");
    assert!(
        h.reason.contains(reason_part),
        "{h} should mention {reason_part:?}"
    );
}

#[test]
fn rule_1_suspend_and_paused_are_suspended() {
    let mut w = widget(ready("True", "Ready"));
    w["spec"]["suspend"] = json!(true);
    expect(&w, HealthStatus::Suspended, "spec.suspend");
    let mut w = widget(ready("True", "Ready"));
    w["spec"]["paused"] = json!(true);
    expect(&w, HealthStatus::Suspended, "spec.paused");
}

#[test]
fn rule_2_a_kind_without_status_subresource_is_a_configuration_object() {
    let ctx = Context {
        status_subresource: Some(false),
        ..Context::default()
    };
    let h = assess_with(&ctx, GROUP, "Widget", Some(&widget(Value::Null)));
    assert_eq!(h.status, HealthStatus::Healthy, "{h}");
    // Built-in kinds without status (ConfigMap) are Healthy without being told.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(
        assess("", "ConfigMap", Some(&cm)).status,
        HealthStatus::Healthy
    );
}

#[test]
fn rule_3_no_status_yet_is_progressing_not_healthy() {
    expect(
        &widget(Value::Null),
        HealthStatus::Progressing,
        "Waiting for the controller",
    );
    expect(
        &widget(json!({})),
        HealthStatus::Progressing,
        "Waiting for the controller",
    );
    let ctx = Context {
        now: Some("2026-12-01T10:00:30Z".parse().expect("time")),
        status_subresource: Some(true),
        ..Context::default()
    };
    let h = assess_with(&ctx, GROUP, "Widget", Some(&widget(Value::Null)));
    assert_eq!(h.status, HealthStatus::Progressing, "{h}");
}

#[test]
fn rule_4_no_status_after_the_grace_period_is_unknown() {
    let ctx = Context {
        now: Some("2026-12-01T10:20:00Z".parse().expect("time")),
        status_grace: Duration::from_secs(600),
        ..Context::default()
    };
    let h = assess_with(&ctx, GROUP, "Widget", Some(&widget(Value::Null)));
    assert_eq!(h.status, HealthStatus::Unknown, "{h}");
    assert!(h.reason.contains("1200s after creation"), "{h}");
}

#[test]
fn rule_5_observed_generation_lag_is_progressing() {
    let mut status = ready("True", "Ready");
    status["observedGeneration"] = json!(1);
    expect(
        &widget(status),
        HealthStatus::Progressing,
        "observe generation 2 (observed 1)",
    );
}

#[test]
fn rule_6_failure_conditions_are_degraded() {
    for (type_, status) in [
        ("Stalled", "True"),
        ("Failed", "True"),
        ("Degraded", "True"),
        ("InstallPlanFailed", "True"),
    ] {
        let w = widget(json!({"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": type_, "status": status, "reason": "Boom"},
        ]}));
        expect(&w, HealthStatus::Degraded, type_);
    }
    let crossplane = widget(json!({"conditions": [
        {"type": "Synced", "status": "False", "reason": "ReconcileError", "message": "cannot connect"},
        {"type": "Ready", "status": "True"},
    ]}));
    expect(&crossplane, HealthStatus::Degraded, "Synced=False");
}

#[test]
fn rule_6_stalled_wins_over_reconciling() {
    let w = widget(json!({"conditions": [
        {"type": "Reconciling", "status": "True", "reason": "Progressing"},
        {"type": "Stalled", "status": "True", "reason": "InvalidSpec"},
    ]}));
    expect(&w, HealthStatus::Degraded, "Stalled=True");
}

#[test]
fn rule_7_a_condition_for_an_older_generation_is_progressing() {
    let w = widget(json!({"conditions": [
        {"type": "Ready", "status": "True", "observedGeneration": 1}
    ]}));
    expect(
        &w,
        HealthStatus::Progressing,
        "Ready condition is for generation 1",
    );
}

#[test]
fn rule_8_reconciling_progressing_issuing_true_are_progressing() {
    for type_ in ["Reconciling", "Progressing", "Issuing"] {
        let w = widget(json!({"conditions": [
            {"type": "Ready", "status": "Unknown"},
            {"type": type_, "status": "True", "reason": "Working"},
        ]}));
        expect(&w, HealthStatus::Progressing, type_);
    }
    // A Deployment-style Progressing=True that says it is done is not work.
    let done = widget(json!({"conditions": [
        {"type": "Available", "status": "True"},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
    ]}));
    expect(&done, HealthStatus::Healthy, "Available=True");
}

#[test]
fn rule_9_ready_available_succeeded_true_are_healthy() {
    for type_ in ["Ready", "Available", "Succeeded"] {
        let w =
            widget(json!({"conditions": [{"type": type_, "status": "True", "reason": "Done"}]}));
        expect(&w, HealthStatus::Healthy, type_);
    }
}

#[test]
fn rule_10_every_in_progress_reason_is_progressing() {
    for reason in [
        "Progressing",
        "Pending",
        "Reconciling",
        "Creating",
        "Provisioning",
        "InProgress",
        "ReconciliationInProgress",
        "Initializing",
        "Deploying",
        "Updating",
        "Upgrading",
        "Scaling",
        "Starting",
        "WaitingForDependencies",
        "Installing",
        "Issuing",
    ] {
        expect(
            &widget(ready("False", reason)),
            HealthStatus::Progressing,
            reason,
        );
    }
    // Cluster API: an Info-severity False is information, not failure.
    let w = widget(json!({"conditions": [
        {"type": "Ready", "status": "False", "severity": "Info", "reason": "WaitingForInfrastructure"}
    ]}));
    expect(&w, HealthStatus::Progressing, "Ready=False");
}

#[test]
fn rule_10_an_in_progress_reason_with_an_error_message_is_degraded() {
    let w = widget(json!({"conditions": [
        {"type": "Ready", "status": "False", "reason": "Applying", "message": "Error: checksum mismatch"}
    ]}));
    expect(&w, HealthStatus::Degraded, "checksum mismatch");
}

#[test]
fn rule_11_failure_and_other_reasons_are_degraded() {
    for reason in [
        "ReconciliationFailed",
        "ProvisioningFailed",
        "InvalidSpec",
        "ImagePullBackOff",
        "NotReady",
    ] {
        expect(
            &widget(ready("False", reason)),
            HealthStatus::Degraded,
            reason,
        );
    }
    // Failure beats a Reconciling=True that retries (Flux).
    let flux = widget(json!({"conditions": [
        {"type": "Ready", "status": "False", "reason": "GitOperationFailed"},
        {"type": "Reconciling", "status": "True", "reason": "ProgressingWithRetry"},
    ]}));
    expect(&flux, HealthStatus::Degraded, "GitOperationFailed");
}

#[test]
fn rule_12_ready_unknown_is_progressing() {
    expect(
        &widget(ready("Unknown", "RevisionMissing")),
        HealthStatus::Progressing,
        "Ready=Unknown",
    );
}

#[test]
fn rules_13_to_16_phases_are_mapped() {
    for (phase, status) in [
        ("Running", HealthStatus::Healthy),
        ("Succeeded", HealthStatus::Healthy),
        ("Bound", HealthStatus::Healthy),
        ("Pending", HealthStatus::Progressing),
        ("Provisioning", HealthStatus::Progressing),
        ("Failed", HealthStatus::Degraded),
        ("Error", HealthStatus::Degraded),
        ("Paused", HealthStatus::Suspended),
    ] {
        expect(&widget(json!({"phase": phase})), status, phase);
    }
    // Run-to-completion kinds are still at work while Running.
    let run = json!({"apiVersion": "example.com/v1", "kind": "AnalysisRun",
                     "metadata": {"name": "r"}, "status": {"phase": "Running"}});
    assert_eq!(
        assess(GROUP, "AnalysisRun", Some(&run)).status,
        HealthStatus::Progressing
    );
    expect(
        &widget(json!({"state": "Failed"})),
        HealthStatus::Degraded,
        "status.state",
    );
}

#[test]
fn rule_17_nested_argo_cd_health_is_used() {
    let app = widget(json!({"health": {"status": "Degraded", "message": "pods crash"}}));
    expect(&app, HealthStatus::Degraded, "pods crash");
}

#[test]
fn rule_18_a_status_that_says_nothing_is_not_an_early_pass() {
    let w = widget(json!({"observedGeneration": 2, "lastSync": "2026-12-01T10:00:00Z"}));
    expect(&w, HealthStatus::Progressing, "does not say it is ready");
}

#[test]
fn api_services_wait_until_available() {
    let svc = |status: &str| {
        json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
               "metadata": {"name": "v1beta1.metrics.k8s.io"},
               "status": {"conditions": [{"type": "Available", "status": status, "reason": "MissingEndpoints"}]}})
    };
    let h = assess("apiregistration.k8s.io", "APIService", Some(&svc("False")));
    assert_eq!(h.status, HealthStatus::Progressing, "{h}");
    let h = assess("apiregistration.k8s.io", "APIService", Some(&svc("True")));
    assert_eq!(h.status, HealthStatus::Healthy, "{h}");
}

#[test]
fn class_less_ingress_waits_where_the_provider_serves_it() {
    let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                     "metadata": {"name": "i"}, "spec": {"rules": []}, "status": {"loadBalancer": {}}});
    let elsewhere = assess_with(
        &Context::default(),
        "networking.k8s.io",
        "Ingress",
        Some(&ing),
    );
    assert_eq!(elsewhere.status, HealthStatus::Healthy, "{elsewhere}");
    let gke = Context {
        ingress_without_class: IngressWithoutClass::for_provider("gke"),
        ..Context::default()
    };
    let h = assess_with(&gke, "networking.k8s.io", "Ingress", Some(&ing));
    assert_eq!(h.status, HealthStatus::Progressing, "{h}");
}

#[test]
fn extreme_integers_do_not_overflow() {
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "generation": 1},
        "spec": {"replicas": i64::MIN},
        "status": {"observedGeneration": 1, "replicas": i64::MAX, "updatedReplicas": i64::MIN, "readyReplicas": i64::MIN}});
    for kind in ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"] {
        let _ = assess("apps", kind, Some(&d));
    }
    let s = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "s", "generation": 1},
        "spec": {"replicas": i64::MAX, "updateStrategy": {"rollingUpdate": {"partition": i64::MIN}}},
        "status": {"observedGeneration": 1, "readyReplicas": i64::MIN, "updatedReplicas": 0}});
    let h = assess("apps", "StatefulSet", Some(&s));
    assert_eq!(h.status, HealthStatus::Progressing, "{h}");
}

#[test]
fn every_phase_field_counts_and_a_failure_wins() {
    expect(
        &widget(json!({"phase": "Ready", "health": "red"})),
        HealthStatus::Degraded,
        "status.health is red",
    );
    expect(
        &widget(json!({"applicationState": {"state": "FAILED"}})),
        HealthStatus::Degraded,
        "status.applicationState.state is FAILED",
    );
    let job = widget(json!({"conditions": [
        {"type": "Complete", "status": "True", "reason": "JobFailed", "message": "Failed"}
    ]}));
    expect(&job, HealthStatus::Degraded, "JobFailed");
    let partial = widget(json!({"conditions": [{"type": "PartiallyReady", "status": "True"}]}));
    expect(&partial, HealthStatus::Degraded, "PartiallyReady=True");
}

#[test]
fn paused_update_strategies_and_pause_annotations_are_suspended() {
    let mut w = widget(ready("True", "Ready"));
    w["spec"]["updateStrategy"] = json!({"rollingUpdate": {"paused": true}});
    expect(
        &w,
        HealthStatus::Suspended,
        "spec.updateStrategy.rollingUpdate.paused",
    );
    let mut w = widget(ready("True", "Ready"));
    w["metadata"]["annotations"] = json!({"autoscaling.keda.sh/paused": "true"});
    expect(&w, HealthStatus::Suspended, "autoscaling.keda.sh/paused");
}

#[test]
fn all_true_conditions_whose_message_says_work_goes_on_are_progressing() {
    let w = widget(json!({"conditions": [
        {"type": "Running", "status": "True", "reason": "Running", "message": "Creating HorizontalPodAutoscaler Object"}
    ]}));
    expect(&w, HealthStatus::Progressing, "Creating");
    let done = widget(json!({"conditions": [
        {"type": "Running", "status": "True", "reason": "Running", "message": "ScaledObject is ready"}
    ]}));
    expect(&done, HealthStatus::Healthy, "Running=True");
}

#[test]
fn a_not_ready_condition_that_says_nothing_or_waits_for_its_pods_is_progressing() {
    // No reason and no message: the controller has not got there yet.
    let bare = widget(json!({"conditions": [{"type": "Available", "status": "False"}]}));
    expect(&bare, HealthStatus::Progressing, "Available=False");
    // The message says the work goes on.
    let waiting = widget(json!({"conditions": [
        {"type": "Ready", "status": "False", "message": "Scaling up: 2 of 3 members joined, waiting for more"}
    ]}));
    expect(&waiting, HealthStatus::Progressing, "waiting for more");
    // The reason names the pods / workload the object runs.
    for reason in [
        "StatefulSetNotReady",
        "NotAllPodsReady",
        "NoEndpointsAvailable",
    ] {
        let w = widget(json!({"conditions": [
            {"type": "ClusterReady", "status": "False", "reason": reason, "message": "1/3"}
        ]}));
        expect(&w, HealthStatus::Progressing, reason);
    }
    // `Unavailable` (Crossplane: exists, not ready for use yet) waits,
    // unless its message reports an error.
    expect(
        &widget(
            json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Unavailable"}]}),
        ),
        HealthStatus::Progressing,
        "Unavailable",
    );
    expect(
        &widget(
            json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Unavailable", "message": "create failed: quota exceeded"}]}),
        ),
        HealthStatus::Degraded,
        "Unavailable",
    );
    // A verdict on the object itself, or an error in the message, stays Degraded.
    expect(
        &widget(ready("False", "NotReady")),
        HealthStatus::Degraded,
        "NotReady",
    );
    let error = widget(json!({"conditions": [
        {"type": "Ready", "status": "False", "reason": "PodsNotReady", "message": "Error: image pull failed"}
    ]}));
    expect(&error, HealthStatus::Degraded, "PodsNotReady");
}

#[test]
fn activity_conditions_false_are_idle_not_failures() {
    // `rolling=False`, `garbage-collecting=False`: idle, not a failed readiness.
    let idle = widget(json!({"conditions": [
        {"type": "vendor.example/resources-ready", "status": "True", "reason": "ResourcesReady"},
        {"type": "vendor.example/garbage-collecting", "status": "False", "reason": "NotShrunk"},
        {"type": "vendor.example/rolling", "status": "False", "reason": "NotRolling"},
    ]}));
    expect(&idle, HealthStatus::Healthy, "resources-ready=True");
    // `Rolling=True` (an activity named with a progress word) is work under way.
    let rolling = widget(json!({"conditions": [
        {"type": "vendor.example/resources-ready", "status": "True"},
        {"type": "vendor.example/rolling", "status": "True", "reason": "Rolling"},
    ]}));
    expect(&rolling, HealthStatus::Progressing, "rolling=True");
}

#[test]
fn a_true_condition_whose_message_reports_finished_work_is_done() {
    for (reason, message) in [
        ("Initialized", "Installation successful."),
        ("Created", "Application is created"),
        ("Success", "Finish reconciling"),
    ] {
        let w = widget(json!({"conditions": [
            {"type": "Promoted", "status": "True", "reason": reason, "message": message}
        ]}));
        expect(&w, HealthStatus::Healthy, "Promoted=True");
    }
}

#[test]
fn ready_unknown_because_something_failed_is_degraded() {
    expect(
        &widget(ready("Unknown", "PartialTriggerError")),
        HealthStatus::Degraded,
        "PartialTriggerError",
    );
    // Unknown while a child is created still waits.
    expect(
        &widget(ready("Unknown", "RevisionMissing")),
        HealthStatus::Progressing,
        "RevisionMissing",
    );
}

#[test]
fn scheduled_phases_wait_and_not_found_states_are_missing() {
    expect(
        &widget(json!({"phase": "Scheduled"})),
        HealthStatus::Progressing,
        "status.phase is Scheduled",
    );
    expect(
        &widget(json!({"state": "NotFound"})),
        HealthStatus::Missing,
        "status.state is NotFound",
    );
}

#[test]
fn workload_like_replica_counts_are_read_as_the_apps_kinds() {
    let mut w = widget(
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 2, "updatedReadyReplicas": 2}),
    );
    w["spec"]["replicas"] = json!(3);
    expect(&w, HealthStatus::Progressing, "2 of 3 replicas are ready");
    w["status"]["readyReplicas"] = json!(3);
    w["status"]["updatedReadyReplicas"] = json!(3);
    expect(&w, HealthStatus::Healthy, "3 of 3 replicas are ready");
    // A partition holds the update on purpose once the rest is updated.
    w["spec"]["replicas"] = json!(5);
    w["spec"]["updateStrategy"] = json!({"rollingUpdate": {"partition": 2}});
    w["status"] =
        json!({"observedGeneration": 2, "replicas": 5, "readyReplicas": 5, "updatedReplicas": 2});
    expect(
        &w,
        HealthStatus::Progressing,
        "2 of 3 replicas are at the new revision",
    );
    w["status"]["updatedReplicas"] = json!(3);
    expect(&w, HealthStatus::Suspended, "held at partition 2");
    // A condition still wins over the counts.
    w["status"]["conditions"] =
        json!([{"type": "Ready", "status": "False", "reason": "InvalidSpec"}]);
    expect(&w, HealthStatus::Degraded, "InvalidSpec");
}

#[test]
fn per_node_counts_and_ready_fractions_are_read() {
    let nodes = widget(
        json!({"observedGeneration": 2, "desiredNumberScheduled": 4, "numberReady": 4, "updatedNumberScheduled": 3}),
    );
    expect(
        &nodes,
        HealthStatus::Progressing,
        "3 of 4 pods are at the new revision",
    );
    let nodes = widget(
        json!({"observedGeneration": 2, "desiredNumberScheduled": 4, "numberReady": 4, "numberAvailable": 4, "updatedNumberScheduled": 4}),
    );
    expect(&nodes, HealthStatus::Healthy, "4 of 4 pods are ready");
    let short = widget(json!({"scale": {"replicas": 3, "statusReplicas": "1/3"}}));
    expect(
        &short,
        HealthStatus::Progressing,
        "status.scale.statusReplicas is 1/3",
    );
    let all = widget(json!({"tasksReady": "3/3"}));
    expect(&all, HealthStatus::Healthy, "status.tasksReady is 3/3");
}

#[test]
fn per_cluster_member_lists_are_read() {
    let applied = |applied: bool, health: &str| {
        widget(
            json!({"conditions": [{"type": "Scheduled", "status": "True"}],
            "aggregatedStatus": [
                {"clusterName": "eu-1", "applied": true, "health": "Healthy"},
                {"clusterName": "us-1", "applied": applied, "health": health},
            ]}),
        )
    };
    expect(
        &applied(true, "Healthy"),
        HealthStatus::Healthy,
        "Scheduled=True",
    );
    expect(
        &applied(false, "Unknown"),
        HealthStatus::Degraded,
        "not applied on cluster us-1",
    );
    expect(
        &applied(true, "Unhealthy"),
        HealthStatus::Degraded,
        "health is Unhealthy on cluster us-1",
    );
    // Unknown: the controller cannot judge the kind, no verdict.
    expect(
        &applied(true, "Unknown"),
        HealthStatus::Healthy,
        "Scheduled=True",
    );
    let policy = widget(json!({"compliant": "Compliant", "status": [
        {"clustername": "edge-3", "compliant": "NonCompliant"}
    ]}));
    expect(
        &policy,
        HealthStatus::Degraded,
        "compliant is NonCompliant on cluster edge-3",
    );
}

#[test]
fn route_admission_ceph_health_and_schedules_are_read() {
    let route = |status: &str| {
        widget(
            json!({"ingress": [{"host": "shop.apps.example.com", "routerName": "default",
            "conditions": [{"type": "Admitted", "status": status, "reason": "HostAlreadyClaimed"}]}]}),
        )
    };
    expect(&route("True"), HealthStatus::Healthy, "Admitted=True");
    expect(
        &route("False"),
        HealthStatus::Degraded,
        "HostAlreadyClaimed",
    );
    let ceph = widget(json!({"state": "Created", "ceph": {"health": "HEALTH_WARN"}}));
    expect(
        &ceph,
        HealthStatus::Degraded,
        "status.ceph.health is HEALTH_WARN",
    );
    let fired = widget(json!({"lastScheduleTime": "2026-12-01T09:00:00Z"}));
    expect(&fired, HealthStatus::Healthy, "Last scheduled at");
    let running = widget(json!({"lastScheduleTime": "2026-12-01T09:00:00Z",
        "active": [{"kind": "Job", "name": "w-29012345"}]}));
    expect(
        &running,
        HealthStatus::Progressing,
        "1 scheduled run(s) active",
    );
}

#[test]
fn hibernation_and_disabled_reconciliation_annotations_are_suspended() {
    for (key, value) in [
        ("cnpg.io/hibernation", "on"),
        ("cnpg.io/reconciliationLoop", "disabled"),
    ] {
        let mut w = widget(ready("True", "ClusterIsReady"));
        w["metadata"]["annotations"] = json!({key: value});
        expect(&w, HealthStatus::Suspended, key);
    }
}

#[test]
fn fallback_cancel_conflict_and_mismatch_words_are_failures() {
    let fallback = widget(json!({"conditions": [
        {"type": "Ready", "status": "True", "reason": "ScaledObjectReady"},
        {"type": "Fallback", "status": "True", "reason": "FallbackExists"},
    ]}));
    expect(&fallback, HealthStatus::Degraded, "Fallback=True");
    for state in [
        "Canceled",
        "Another tenant already exists in the namespace",
        "Different versions across pools: mismatch",
        "Pool decommissioning not allowed",
    ] {
        expect(
            &widget(json!({"currentState": state})),
            HealthStatus::Degraded,
            state,
        );
    }
}

#[test]
fn a_stopped_activity_that_failed_inconclusive_phases_and_nested_states_are_read() {
    // Progressing=False for a failure reason, beside Available=True.
    let timed_out = widget(json!({"conditions": [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
    ]}));
    expect(
        &timed_out,
        HealthStatus::Degraded,
        "ProgressDeadlineExceeded",
    );
    expect(
        &widget(json!({"phase": "Inconclusive"})),
        HealthStatus::Unknown,
        "status.phase is Inconclusive",
    );
    let nested = widget(json!({"conditions": [{"type": "Ready", "status": "True"}],
        "modelStatus": {"transitionStatus": "BlockedByFailedLoad"}}));
    expect(
        &nested,
        HealthStatus::Degraded,
        "status.modelStatus.transitionStatus is BlockedByFailedLoad",
    );
}

#[test]
fn nested_phases_suspended_or_healthy_by_their_ending_and_item_lists_are_read() {
    // A step paused for a person, inside a status object.
    let paused = widget(json!({"phase": "Progressing",
        "conditions": [{"type": "Progressing", "status": "True", "reason": "InRolling"}],
        "canaryStatus": {"currentStepIndex": 1, "currentStepState": "StepPaused"}}));
    expect(
        &paused,
        HealthStatus::Suspended,
        "currentStepState is StepPaused",
    );
    expect(
        &widget(json!({"state": "ClusterRunning"})),
        HealthStatus::Healthy,
        "status.state is ClusterRunning",
    );
    // Negated endings are no pass.
    expect(
        &widget(json!({"state": "ClusterNotReady"})),
        HealthStatus::Progressing,
        "Waiting",
    );
    let domains = widget(
        json!({"certificateStatus": "Provisioning", "domainStatus": [
            {"domain": "shop.example.com", "status": "Active"},
            {"domain": "api.example.com", "status": "FailedNotVisible"},
        ]}),
    );
    expect(
        &domains,
        HealthStatus::Degraded,
        "status is FailedNotVisible on item api.example.com",
    );
    let early_crossplane = widget(json!({"conditionedStatus": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "Resource is available for use"}
    ]}}));
    expect(&early_crossplane, HealthStatus::Healthy, "Ready=True");
}

#[test]
fn a_progressing_condition_that_cannot_tell_is_progressing() {
    let w = widget(json!({"conditions": [
        {"type": "Available", "status": "True"},
        {"type": "Progressing", "status": "Unknown", "message": "waiting for the deployer pod"},
    ]}));
    expect(&w, HealthStatus::Progressing, "Progressing=Unknown");
}

#[test]
fn failure_named_conditions_and_flags_are_judged_by_their_meaning() {
    // The reason says all is well: not a failure.
    let fine = widget(
        json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
        "conditions": [{"type": "FailedScale", "status": "True", "reason": "MinimumReplicasAvailable"}]}),
    );
    expect(&fine, HealthStatus::Healthy, "2 of 2 replicas are ready");
    let failed = widget(json!({"conditions": [
        {"type": "FailedScale", "status": "True", "reason": "CreatePodsFailed"}
    ]}));
    expect(&failed, HealthStatus::Degraded, "FailedScale=True");
    // A negated done word is no done reason.
    let starting = widget(json!({"conditions": [
        {"type": "Progressing", "status": "True", "reason": "MinimumReplicasUnavailable"}
    ]}));
    expect(&starting, HealthStatus::Progressing, "Progressing=True");
    expect(
        &widget(json!({"state": "Completed", "pass": false})),
        HealthStatus::Degraded,
        "status.pass is false",
    );
    expect(
        &widget(json!({"uid": "927b3c23", "NoMatchingInstances": true})),
        HealthStatus::Degraded,
        "status.NoMatchingInstances is true",
    );
    expect(
        &widget(json!({"NoErrors": true, "phase": "Running"})),
        HealthStatus::Healthy,
        "status.phase is Running",
    );
}

#[test]
fn condition_statuses_other_than_true_false_unknown_are_read() {
    expect(
        &widget(ready("randomstatus", "")),
        HealthStatus::Degraded,
        "not a condition status",
    );
    // The Prometheus operator's `Available=Degraded` while pods come up.
    let partly = widget(json!({"conditions": [
        {"type": "Available", "status": "Degraded", "reason": "SomePodsNotReady"}
    ]}));
    expect(&partly, HealthStatus::Progressing, "SomePodsNotReady");
}

#[test]
fn a_disabled_spec_is_suspended_and_member_counts_are_read() {
    let mut w = widget(Value::Null);
    w["spec"]["enabled"] = json!(false);
    expect(&w, HealthStatus::Suspended, "spec.enabled is false");
    let racks = |ready_b: i64| {
        widget(json!({"racks": {
            "rack-a": {"members": 3, "readyMembers": 3},
            "rack-b": {"members": 3, "readyMembers": ready_b},
        }}))
    };
    expect(
        &racks(1),
        HealthStatus::Progressing,
        "1 of 3 members are ready in racks.rack-b",
    );
    expect(&racks(3), HealthStatus::Healthy, "All members are ready");
}
