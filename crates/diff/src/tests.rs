use super::*;
use serde_json::json;
use tidegate_core::environment::IgnoreDifference;

fn deployment_key() -> ObjectKey {
    ObjectKey::new("apps", "Deployment", Some("web"), "api")
}

/// A live Deployment as the API server returns it: defaults, status,
/// bookkeeping, and fields owned by tidegate, kubectl and the controller.
fn live_deployment(replicas: u64, scaled_by_kubectl: bool) -> Value {
    let mut managed = vec![json!({
        "manager": "tidegate", "operation": "Apply", "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {},
            "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}
    })];
    if scaled_by_kubectl {
        managed.push(json!({
            "manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "subresource": "scale",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}
        }));
    }
    managed.push(json!({
        "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1", "subresource": "status",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}}}
    }));
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "web", "uid": "u-1", "resourceVersion": "812",
            "generation": 3, "creationTimestamp": "2026-11-25T10:00:00Z", "labels": {"app": "api"},
            "annotations": {"deployment.kubernetes.io/revision": "2"}, "managedFields": managed},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"spec": {"containers": [{"name": "app", "image": "app:1",
                "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas}
    })
}

/// What a dry run of Git's version (3 replicas, app:1) returns against `live`.
fn predicted(live: &Value, replicas: u64, image: &str) -> Value {
    let mut p = live.clone();
    p["spec"]["replicas"] = json!(replicas);
    p["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    p["metadata"]["resourceVersion"] = json!("813");
    p["metadata"]["generation"] = json!(4);
    p
}

fn desired(replicas: u64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "web",
        "labels": {"app": "api"}}, "spec": {"replicas": replicas,
        "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
}

fn run(live: &Value, prediction: Prediction<'_>, ignore: &[IgnoreRule]) -> ObjectDiff {
    let key = deployment_key();
    diff_object(DiffInput {
        key: &key,
        desired: &desired(3, "app:1"),
        live: Some(live),
        prediction,
        ignore,
    })
}

#[test]
fn server_defaults_and_bookkeeping_are_not_drift() {
    let live = live_deployment(3, false);
    let d = run(
        &live,
        Prediction::DryRun(&predicted(&live, 3, "app:1")),
        &[],
    );
    assert_eq!(d.status, DiffStatus::InSync, "{:?}", d.changes);
    assert_eq!(d.mode, DiffMode::ServerSide);
    assert!(d.patch.0.is_empty());
}

#[test]
fn drift_names_the_field_and_its_owner() {
    let live = live_deployment(5, true);
    let d = run(
        &live,
        Prediction::DryRun(&predicted(&live, 3, "app:1")),
        &[],
    );
    assert_eq!(d.status, DiffStatus::OutOfSync);
    assert_eq!(
        d.changes,
        vec![FieldChange {
            op: "replace".into(),
            path: "/spec/replicas".into(),
            owners: vec!["tidegate".into(), "kubectl".into()],
        }]
    );
    let text = unified(&d, false);
    assert!(
        text.contains("-  replicas: 5") && text.contains("+  replicas: 3"),
        "{text}"
    );
}

#[test]
fn owners_of_list_items_follow_merge_keys() {
    let live = live_deployment(3, false);
    let d = run(
        &live,
        Prediction::DryRun(&predicted(&live, 3, "app:2")),
        &[],
    );
    assert_eq!(d.changes.len(), 1);
    assert_eq!(d.changes[0].path, "/spec/template/spec/containers/0/image");
    assert_eq!(d.changes[0].owners, vec!["tidegate".to_string()]);
}

#[test]
fn ignore_differences_by_pointer_and_by_manager() {
    let live = live_deployment(5, true);
    let prediction = predicted(&live, 3, "app:1");
    let by_pointer = IgnoreRule(IgnoreDifference {
        group: Some("apps".into()),
        kind: "Deployment".into(),
        name: None,
        namespace: None,
        json_pointers: vec!["/spec/replicas".into()],
        managed_fields_managers: vec![],
    });
    assert_eq!(
        run(&live, Prediction::DryRun(&prediction), &[by_pointer]).status,
        DiffStatus::InSync
    );
    let by_manager = IgnoreRule(IgnoreDifference {
        group: None,
        kind: "Deployment".into(),
        name: Some("api".into()),
        namespace: None,
        json_pointers: vec![],
        managed_fields_managers: vec!["kubectl".into()],
    });
    assert_eq!(
        run(&live, Prediction::DryRun(&prediction), &[by_manager]).status,
        DiffStatus::InSync
    );
    let other_kind = IgnoreRule(IgnoreDifference {
        group: None,
        kind: "StatefulSet".into(),
        name: None,
        namespace: None,
        json_pointers: vec!["/spec/replicas".into()],
        managed_fields_managers: vec![],
    });
    assert_eq!(
        run(&live, Prediction::DryRun(&prediction), &[other_kind]).status,
        DiffStatus::OutOfSync
    );
}

#[test]
fn client_side_fallback_compares_only_fields_tidegate_sets() {
    let live = live_deployment(3, false);
    let d = run(&live, Prediction::Refused("dry run forbidden"), &[]);
    assert_eq!(d.status, DiffStatus::InSync, "{:?}", d.changes);
    assert_eq!(
        d.mode,
        DiffMode::ClientSide {
            reason: "dry run forbidden".into()
        }
    );
    let live = live_deployment(5, false);
    let d = run(&live, Prediction::Refused("dry run forbidden"), &[]);
    assert_eq!(d.status, DiffStatus::OutOfSync);
}

#[test]
fn secret_values_are_never_shown() {
    let key = ObjectKey::new("", "Secret", Some("web"), "db");
    let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "web"},
        "type": "Opaque", "data": {"user": "YWRtaW4=", "password": "aHVudGVyMg=="}});
    let mut prediction = live.clone();
    prediction["data"]["password"] = json!("czNjcjN0");
    let d = diff_object(DiffInput {
        key: &key,
        desired: &prediction,
        live: Some(&live),
        prediction: Prediction::DryRun(&prediction),
        ignore: &[],
    });
    assert_eq!(d.status, DiffStatus::OutOfSync);
    let everything = format!(
        "{}{}",
        unified(&d, false),
        serde_json::to_string(&d).expect("json")
    );
    for secret in ["YWRtaW4=", "aHVudGVyMg==", "czNjcjN0", "admin", "hunter2"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    assert!(everything.contains("******** (changed)"), "{everything}");
    assert_eq!(
        d.changes.len(),
        1,
        "only the password changes: {:?}",
        d.changes
    );
    assert_eq!(d.changes[0].path, "/data/password");
    let missing = diff_object(DiffInput {
        key: &key,
        desired: &prediction,
        live: None,
        prediction: Prediction::DryRun(&prediction),
        ignore: &[],
    });
    assert_eq!(missing.status, DiffStatus::Missing);
    assert!(
        !serde_json::to_string(&missing.after)
            .expect("json")
            .contains("czNjcjN0")
    );
}

#[test]
fn missing_and_to_prune() {
    let key = deployment_key();
    let want = desired(3, "app:1");
    let d = diff_object(DiffInput {
        key: &key,
        desired: &want,
        live: None,
        prediction: Prediction::DryRun(&want),
        ignore: &[],
    });
    assert_eq!(d.status, DiffStatus::Missing);
    assert!(unified(&d, false).contains("+  replicas: 3"));
    let p = to_prune(&key, &live_deployment(3, false));
    assert_eq!(p.status, DiffStatus::ToPrune);
    assert!(p.after.is_none());
}

#[test]
fn empty_and_absent_label_maps_are_the_same() {
    let a = normalize(json!({"metadata": {"name": "x", "labels": {}, "annotations": null}}));
    assert_eq!(a, json!({"metadata": {"name": "x"}}));
}

/// Objects that differ from a live Deployment only in what normalizing
/// drops, and some that really differ.
fn variants() -> Vec<Value> {
    let live = live_deployment(3, true);
    let mut out = vec![
        live.clone(),
        predicted(&live, 3, "app:1"),
        desired(3, "app:1"),
    ];
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = live.clone();
        f(&mut v);
        v
    };
    out.extend([
        edit(&|v| v["status"] = json!({"replicas": 1})),
        edit(&|v| {
            v.as_object_mut().map(|m| m.remove("status"));
        }),
        edit(&|v| v["metadata"]["resourceVersion"] = json!("999")),
        edit(&|v| {
            v["metadata"]
                .as_object_mut()
                .map(|m| m.remove("managedFields"));
        }),
        edit(&|v| v["metadata"]["annotations"] = json!({})),
        edit(&|v| v["metadata"]["annotations"] = Value::Null),
        edit(&|v| {
            v["metadata"]
                .as_object_mut()
                .map(|m| m.remove("annotations"));
        }),
        edit(&|v| v["metadata"]["annotations"]["team"] = json!("a")),
        edit(&|v| {
            v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
                json!("{}")
        }),
        edit(&|v| v["metadata"]["labels"] = json!({})),
        edit(&|v| v["metadata"]["labels"] = Value::Null),
        edit(&|v| {
            v["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }),
        edit(&|v| v["metadata"]["labels"]["app"] = json!("other")),
        edit(&|v| v["metadata"]["labels"] = json!("not a map")),
        edit(&|v| v["metadata"]["name"] = json!("other")),
        edit(&|v| v["metadata"] = json!("not a map")),
        edit(&|v| v["spec"]["replicas"] = json!(4)),
        edit(&|v| v["spec"]["paused"] = json!(false)),
        edit(&|v| v["extra"] = Value::Null),
        edit(&|v| {
            // The same content in another key order.
            let m = v.as_object_mut().map(std::mem::take).unwrap_or_default();
            *v = Value::Object(m.into_iter().rev().collect());
        }),
        json!({"kind": "Deployment"}),
        json!({"kind": "Deployment", "metadata": {}}),
        json!({"kind": "Deployment", "metadata": {"labels": {}}}),
        json!({"kind": "Deployment", "status": {}}),
        json!([1, 2]),
        json!("text"),
        Value::Null,
    ]);
    out
}

#[test]
fn normalized_eq_agrees_with_comparing_normalized_copies() {
    let all = variants();
    let (mut same, mut differ) = (0, 0);
    for a in &all {
        for b in &all {
            let slow = normalize(a.clone()) == normalize(b.clone());
            assert_eq!(normalized_eq(a, b), slow, "{a}\n{b}");
            if slow { same += 1 } else { differ += 1 }
        }
    }
    // Both answers occur beyond comparing each object with itself.
    assert!(same > all.len() + 20 && differ > 100, "{same} / {differ}");
}

/// Everything a diff says, before and after included.
fn all_of(d: &ObjectDiff) -> Value {
    json!({"diff": d, "key": d.key.to_string(), "before": d.before, "after": d.after})
}

#[test]
fn the_in_sync_shortcut_gives_the_full_diffs_answer() {
    let live = live_deployment(3, true);
    let secret_key = ObjectKey::new("", "Secret", Some("web"), "s");
    let secret = |v: &str, rv: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "web",
            "resourceVersion": rv}, "data": {"password": v}})
    };
    let rule = IgnoreRule(IgnoreDifference {
        group: Some("apps".into()),
        kind: "Deployment".into(),
        name: None,
        namespace: None,
        json_pointers: vec!["/spec/replicas".into()],
        managed_fields_managers: vec!["kubectl".into()],
    });
    let key = deployment_key();
    let cases: Vec<(&ObjectKey, Value, Value, Vec<IgnoreRule>, DiffStatus)> = vec![
        // In sync: only bookkeeping differs (with and without ignore rules).
        (
            &key,
            live.clone(),
            predicted(&live, 3, "app:1"),
            vec![],
            DiffStatus::InSync,
        ),
        (
            &key,
            live.clone(),
            predicted(&live, 3, "app:1"),
            vec![rule.clone()],
            DiffStatus::InSync,
        ),
        (
            &secret_key,
            secret("YQ==", "1"),
            secret("YQ==", "2"),
            vec![],
            DiffStatus::InSync,
        ),
        // Different: the full diff runs either way.
        (
            &key,
            live.clone(),
            predicted(&live, 4, "app:1"),
            vec![],
            DiffStatus::OutOfSync,
        ),
        (
            &key,
            live.clone(),
            predicted(&live, 3, "app:2"),
            vec![rule.clone()],
            DiffStatus::OutOfSync,
        ),
        (
            &secret_key,
            secret("YQ==", "1"),
            secret("Yg==", "1"),
            vec![],
            DiffStatus::OutOfSync,
        ),
        // Different, but only in ignored fields: in sync by the full diff.
        (
            &key,
            live.clone(),
            predicted(&live, 4, "app:1"),
            vec![rule],
            DiffStatus::InSync,
        ),
    ];
    for (key, live, predicted, ignore, status) in cases {
        let input = DiffInput {
            key,
            desired: &predicted,
            live: Some(&live),
            prediction: Prediction::DryRun(&predicted),
            ignore: &ignore,
        };
        let (fast, full) = (diff_object(input), full_diff(input));
        assert_eq!(fast.status, status, "{key}");
        assert_eq!(all_of(&fast), all_of(&full), "{key}");
        if status == DiffStatus::InSync {
            assert!(fast.before.is_none() && fast.after.is_none());
            assert_eq!(unified(&fast, false), "");
        } else {
            assert!(fast.before.is_some() && fast.after.is_some());
            assert!(!unified(&fast, false).is_empty());
        }
    }
}
