//! Property: no input makes the assessment panic — arbitrary JSON of any
//! shape, extreme integers, wrong types, deep nesting — for every kind with
//! a rule of its own and for custom resources, with and without a time.

use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};
use tidegate_health::{Context, HealthChecks, assess_with};

const KINDS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("", "Pod"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("", "Service"),
    ("networking.k8s.io", "Ingress"),
    ("", "PersistentVolumeClaim"),
    ("", "Namespace"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("", "ConfigMap"),
    ("example.com", "Widget"),
    ("example.com", "AnalysisRun"),
];

/// Field names the rules read, so arbitrary values land where they look.
const KEYS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "generation",
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "conditions",
    "type",
    "status",
    "reason",
    "message",
    "phase",
    "state",
    "partition",
    "updateStrategy",
    "rollingUpdate",
    "desiredNumberScheduled",
    "numberAvailable",
    "containerStatuses",
    "loadBalancer",
    "ingress",
    "creationTimestamp",
    "deletionTimestamp",
    "suspend",
    "health",
    "parents",
    "statuses",
    "severity",
    "Ready",
    "True",
    "False",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1)].prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(KEYS).prop_map(|s| json!(s)),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn assessment_never_panics(obj in value(), status in value(), kind in prop::sample::select(KINDS), timed in any::<bool>()) {
        let mut obj = obj;
        if let Value::Object(map) = &mut obj {
            map.insert("status".into(), status);
        }
        let ctx = if timed {
            Context::at("2026-12-01T10:00:00Z".parse().expect("time"))
        } else {
            Context::default()
        };
        let h = assess_with(&ctx, kind.0, kind.1, Some(&obj));
        prop_assert!(!h.status.as_str().is_empty());
        let v = HealthChecks::new().assess(&ctx, kind.0, kind.1, Some(&obj));
        prop_assert_eq!(v.health, h);
    }
}
