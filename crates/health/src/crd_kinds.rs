//! Small built-in rules for single CRD kinds whose status the generic rules
//! misread. Each returns `None` to fall through to the generic rules.

use crate::field::{condition, get, str_at};
use crate::status::Health;
use serde_json::Value;

/// The rule for `group` / `kind`, if it decides.
pub(crate) fn assess(group: &str, kind: &str, obj: &Value) -> Option<Health> {
    match (group, kind) {
        ("karpenter.sh", "NodeClaim") => node_claim(obj),
        ("opentelemetry.io", "OpenTelemetryCollector") => otel_collector(obj),
        ("source.toolkit.fluxcd.io", "HelmRepository") => flux_oci_helm_repository(obj),
        _ => None,
    }
}

/// Karpenter's NodeClaim walks `Launched` → `Registered` → `Initialized` →
/// `Ready`; the steps are all `True` long before the node is ready, so
/// without `Ready` it waits for the next step. `Disrupting=True`: Karpenter
/// is replacing the node on purpose (expiry, drift, consolidation).
fn node_claim(obj: &Value) -> Option<Health> {
    if let Some(c) = condition(obj, "Disrupting")
        && c.is_true()
    {
        return Some(Health::suspended(format!(
            "Karpenter is disrupting the node: {}",
            c.message_or_reason()
        )));
    }
    if condition(obj, "Ready").is_some() {
        return None;
    }
    let next = ["Launched", "Registered", "Initialized"]
        .into_iter()
        .find(|step| !condition(obj, step).is_some_and(|c| c.is_true()))
        .unwrap_or("Ready");
    Some(Health::progressing(format!(
        "Waiting for the node to be {next}"
    )))
}

/// An OpenTelemetryCollector in `sidecar` mode is a template the operator
/// injects into pods: nothing runs on its own, so nothing to wait for.
fn otel_collector(obj: &Value) -> Option<Health> {
    (str_at(obj, &["spec", "mode"]) == "sidecar")
        .then(|| Health::healthy("Sidecar collector: injected into the pods that ask for it"))
}

/// Flux does not reconcile a HelmRepository of `type: oci` (charts are
/// pulled by the HelmRelease), so it never gets a status.
fn flux_oci_helm_repository(obj: &Value) -> Option<Health> {
    let no_status =
        get(obj, &["status"]).is_none_or(|s| s.as_object().is_none_or(|m| m.is_empty()));
    (str_at(obj, &["spec", "type"]) == "oci" && no_status)
        .then(|| Health::healthy("OCI Helm repository: Flux keeps no status for it"))
}
