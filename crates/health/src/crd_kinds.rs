//! Small built-in rules for single CRD kinds whose status the generic rules
//! misread. Each returns `None` to fall through to the generic rules.

use crate::field::{array, condition, get, int, str_at};
use crate::status::Health;
use serde_json::Value;

/// The rule for `group` / `kind`, if it decides.
pub(crate) fn assess(group: &str, kind: &str, obj: &Value) -> Option<Health> {
    match (group, kind) {
        ("karpenter.sh", "NodeClaim") => node_claim(obj),
        ("opentelemetry.io", "OpenTelemetryCollector") => otel_collector(obj),
        ("source.toolkit.fluxcd.io", "HelmRepository") => flux_oci_helm_repository(obj),
        ("operators.coreos.com", "Subscription") => olm_subscription(obj),
        ("elasticsearch.k8s.elastic.co", "Elasticsearch") => elasticsearch(obj),
        ("cluster.x-k8s.io", "MachineHealthCheck") => machine_health_check(obj),
        ("metrics.keptn.sh", "KeptnMetric") => keptn_metric(obj),
        ("flink.apache.org", "FlinkDeployment") => flink_deployment(obj),
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

/// An OLM Subscription: failures (`CatalogSourcesUnhealthy`,
/// `ResolutionFailed`, `InstallPlanFailed`) are left to the generic rules;
/// `AtLatestKnown` is done (its `InstallPlanMissing` only says the finished
/// plan was garbage-collected); an upgrade waiting for a person's approval
/// (`UpgradePending`, `InstallPlanPending=True (RequiresApproval)`) leaves
/// the installed version running, so it is Healthy once a version is
/// installed; without a state, OLM has not resolved it yet.
fn olm_subscription(obj: &Value) -> Option<Health> {
    let failed = [
        "CatalogSourcesUnhealthy",
        "ResolutionFailed",
        "InstallPlanFailed",
    ]
    .iter()
    .any(|t| condition(obj, t).is_some_and(|c| c.is_true()));
    if failed {
        return None;
    }
    let installed = str_at(obj, &["status", "installedCSV"]);
    match str_at(obj, &["status", "state"]) {
        "" => Some(Health::progressing(
            "Waiting for OLM to resolve the subscription",
        )),
        "AtLatestKnown" => Some(Health::healthy(format!(
            "{installed} is the latest known version"
        ))),
        "UpgradePending"
            if !installed.is_empty()
                && condition(obj, "InstallPlanPending")
                    .is_some_and(|c| c.is_true() && c.reason == "RequiresApproval") =>
        {
            Some(Health::healthy(format!(
                "{installed} runs; the upgrade to {} waits for a person to approve its InstallPlan",
                str_at(obj, &["status", "currentCSV"])
            )))
        }
        _ => None,
    }
}

/// ECK's Elasticsearch: fewer `availableNodes` than the node sets ask for
/// (`spec.nodeSets[].count`) is a cluster still growing, whatever the
/// phase and health say; else the generic rules (`phase`, `health`).
fn elasticsearch(obj: &Value) -> Option<Health> {
    let wanted: i64 = array(obj, &["spec", "nodeSets"])
        .iter()
        .map(|set| int(set, &["count"]).unwrap_or(0))
        .sum();
    let available = int(obj, &["status", "availableNodes"])?;
    (available < wanted).then(|| {
        Health::progressing(format!(
            "{available} of {wanted} Elasticsearch nodes are available"
        ))
    })
}

/// Cluster API's MachineHealthCheck reports the machines it watches: fewer
/// healthy than expected means machines are failing (and being remediated).
fn machine_health_check(obj: &Value) -> Option<Health> {
    let expected = int(obj, &["status", "expectedMachines"])?;
    let healthy = int(obj, &["status", "currentHealthy"]).unwrap_or(0);
    (healthy < expected).then(|| {
        Health::degraded(format!(
            "{} of {expected} machines are unhealthy",
            expected - healthy
        ))
    })
}

/// Keptn's KeptnMetric: a fetched `status.value` and no `errMsg` is a
/// working metric (an error falls through to the generic rules).
fn keptn_metric(obj: &Value) -> Option<Health> {
    let value = match get(obj, &["status", "value"])? {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    str_at(obj, &["status", "errMsg"])
        .is_empty()
        .then(|| Health::healthy(format!("The metric's value is {value}")))
}

/// Apache Flink's FlinkDeployment with `spec.job.state: suspended` is
/// stopped on purpose: its job manager is gone (`MISSING`) by design.
fn flink_deployment(obj: &Value) -> Option<Health> {
    (str_at(obj, &["spec", "job", "state"]) == "suspended")
        .then(|| Health::suspended("The Flink job is suspended (spec.job.state)"))
}
