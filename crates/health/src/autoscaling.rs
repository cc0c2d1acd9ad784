//! HorizontalPodAutoscaler.

use crate::field::{Condition, conditions, conditions_in, get, int_or, str_at};
use crate::status::Health;
use serde_json::Value;

/// autoscaling/v1 objects carry the v2 conditions as a JSON string in this
/// annotation.
const V1_CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";

/// HorizontalPodAutoscaler: see the crate documentation's table.
pub(crate) fn horizontal_pod_autoscaler(obj: &Value) -> Health {
    let from_annotation: Vec<Value> =
        get(obj, &["metadata", "annotations", V1_CONDITIONS_ANNOTATION])
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
    let mut all: Vec<Condition<'_>> = conditions(obj).collect();
    if all.is_empty() {
        all = conditions_in(&from_annotation).collect();
    }
    if all.is_empty() {
        return Health::progressing("Waiting for the autoscaler to report its conditions");
    }
    let find = |t: &str| all.iter().find(|c| c.type_ == t);
    if let Some(c) = find("AbleToScale")
        && c.is_false()
    {
        // FailedGetScale, FailedUpdateScale: the target cannot be read or
        // resized. Anything else (older back-off reasons) is temporary.
        if c.reason.starts_with("Failed") {
            return Health::degraded(c.describe());
        }
        return Health::progressing(c.describe());
    }
    if let Some(c) = find("ScalingActive")
        && c.is_false()
    {
        if c.reason == "ScalingDisabled" {
            return Health::healthy(format!(
                "Autoscaling is off while the target has 0 replicas: {}",
                c.message_or_reason()
            ));
        }
        // FailedGet*Metric, FailedComputeMetricsReplicas, InvalidSelector,
        // InvalidMetricSourceType, ...
        return Health::degraded(c.describe());
    }
    let current = int_or(obj, &["status", "currentReplicas"], 0);
    let desired = int_or(obj, &["status", "desiredReplicas"], 0);
    let limited = find("ScalingLimited")
        .filter(|c| c.is_true())
        .map(|c| format!(", limited: {}", c.message_or_reason()))
        .unwrap_or_default();
    let target = str_at(obj, &["spec", "scaleTargetRef", "name"]);
    Health::healthy(format!(
        "Autoscaling {target}: {current} current, {desired} desired replicas{limited}"
    ))
}
