//! Health of live Kubernetes objects, one rule set per kind.
//!
//! [`assess`] turns an object as the API server returns it (a
//! [`serde_json::Value`]) into a [`Health`]: a [`HealthStatus`] and a reason a
//! person can act on. Rollout gates and cluster summaries take the
//! [`worst`] of many.
//!
//! Architecture invariant: no I/O, no clock, no client. Everything is a pure
//! function of the object, so every rule is tested from fixtures
//! (`tests/fixtures/<kind>/<case>.json`).
//!
//! # Status order
//!
//! `Healthy < Suspended < Progressing < Missing < Degraded < Unknown`, as in
//! Argo CD. The worst of a set is its maximum, so one Degraded object makes
//! a cluster Degraded, and a Missing object outweighs one still rolling out.
//!
//! # Rules
//!
//! Before any kind-specific rule: no object → **Missing**; an object with
//! `metadata.deletionTimestamp` → **Progressing** ("Pending deletion", as in
//! Argo CD), except Namespace and CustomResourceDefinition, whose own rules
//! say what blocks the deletion. Absent status integers count as 0 (the API
//! server omits zero values); an absent `spec.replicas` counts as 1.
//!
//! | Kind | Rules, first match wins |
//! |------|-------------------------|
//! | `apps` Deployment | `spec.paused` → Suspended; `status.observedGeneration` < `metadata.generation` → Progressing; condition `Progressing` with reason `ProgressDeadlineExceeded` → Degraded; `updatedReplicas` < `spec.replicas` → Progressing; `status.replicas` > `updatedReplicas` (old replicas terminating) → Progressing; `availableReplicas` < `updatedReplicas` → Progressing; else Healthy. Same as `kubectl rollout status` and Argo CD. |
//! | `apps` StatefulSet | generation not observed → Progressing; `readyReplicas` < `spec.replicas` → Progressing; `OnDelete` strategy → Healthy; `RollingUpdate` with `partition` > 0: `updatedReplicas` < replicas − partition → Progressing, else Healthy; otherwise `updatedReplicas` < replicas or `currentRevision` ≠ `updateRevision` → Progressing; else Healthy. |
//! | `apps` DaemonSet | generation not observed → Progressing; `OnDelete` strategy → Healthy; `updatedNumberScheduled` or `numberAvailable` < `desiredNumberScheduled` → Progressing; else Healthy. |
//! | `apps` ReplicaSet | generation not observed → Progressing; condition `ReplicaFailure=True` → Degraded; `availableReplicas` < `spec.replicas` → Progressing; else Healthy. |
//! | Pod | `restartPolicy: Always` and a container (init or app) waiting with reason `CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`, `CreateContainerConfigError` (any `Err*`, `*Error`, `*BackOff`) → Degraded; phase `Pending` → Progressing (unschedulable message included); `Succeeded` → Healthy; `Failed` → Degraded; `Running` with `restartPolicy: Always`: Ready → Healthy, not ready after a container terminated → Degraded, else Progressing; `Running` with `Never` / `OnFailure` (hooks, batch) → Progressing; else Unknown. |
//! | `batch` Job | condition `Failed=True` → Degraded; `Complete=True` → Healthy; `Suspended=True` or `spec.suspend` → Suspended; else (including the interim `FailureTarget` / `SuccessCriteriaMet`) Progressing. |
//! | `batch` CronJob | `spec.suspend` → Suspended; else Healthy (a failed last Job is that Job's health). |
//! | Service | `type: LoadBalancer` without `status.loadBalancer.ingress` → Progressing; else Healthy. |
//! | `networking.k8s.io` Ingress | `status.loadBalancer.ingress` non-empty → Healthy; else Progressing (as Argo CD) — unless the Ingress has no class (`spec.ingressClassName` or the legacy annotation), which the API server fills in from the cluster's default IngressClass: then no controller will ever assign an address, and it is Healthy; except where [`Context::ingress_without_class`] is `Wait` (GKE clusters, whose built-in controller serves class-less Ingresses), where it is Progressing. |
//! | PersistentVolumeClaim | phase `Bound` → Healthy; `Pending` → Progressing (also while a `WaitForFirstConsumer` class waits for a pod); `Lost` → Degraded; else Unknown. |
//! | Namespace | phase `Active` → Healthy; `Terminating` → Progressing (with what remains); else Unknown. |
//! | `autoscaling` HorizontalPodAutoscaler | `AbleToScale=False` with a `Failed*` reason → Degraded (other reasons Progressing); `ScalingActive=False` → Degraded, except reason `ScalingDisabled` (target at 0 replicas) → Healthy; no conditions yet → Progressing; else Healthy. autoscaling/v1 objects are read from their conditions annotation. |
//! | `apiextensions.k8s.io` CustomResourceDefinition | `Terminating=True` or being deleted → Progressing; `NamesAccepted=False` → Degraded; `NonStructuralSchema=True` → Degraded; `Established=True` → Healthy; `Established=False` with a reason other than `Installing` → Degraded; else Progressing. |
//! | `apiregistration.k8s.io` APIService | `Available=True` → Healthy; `Available=False` or absent → Progressing (an aggregated API is unavailable while its Service starts; the rollout's progress deadline turns a lasting one into a failure). |
//! | other built-in kinds (ConfigMap, Secret, RBAC, ...) | no status → Healthy; otherwise the custom-resource rules below. |
//! | `argoproj.io` Rollout, `promoter.argoproj.io` (GitOps Promoter), `karpenter.sh` NodeClaim, `opentelemetry.io` OpenTelemetryCollector, `source.toolkit.fluxcd.io` HelmRepository, `operators.coreos.com` Subscription, `elasticsearch.k8s.elastic.co` Elasticsearch, `cluster.x-k8s.io` MachineHealthCheck, `metrics.keptn.sh` KeptnMetric, `flink.apache.org` FlinkDeployment | their own rules (`argo_rollouts`, `gitops_promoter`, `crd_kinds`): see the table of CRD families in `docs/health.md`. |
//! | custom resources | see [Custom resources](#custom-resources). |
//!
//! # Custom resources
//!
//! Kinds of API groups other than the Kubernetes API server's follow the
//! conventions of kstatus and of Argo CD's health scripts (`generic`):
//! suspended by spec; no status → Progressing (Healthy for a kind without
//! status subresource, Unknown after [`Context::status_grace`]); generation
//! lag → Progressing; then every signal of the status is gathered —
//! failures (failure conditions, failure reasons, failed phases, error
//! fields) win over deliberate stops, which win over work in progress
//! (in-progress reasons and phases, `Reconciling=True`, `Ready=Unknown`),
//! which wins over a `Ready=False` without a telling reason (Degraded), which
//! wins over readiness (`Ready=True`, healthy phases); a status that says
//! none of these is Progressing, never an early pass. The full table, with
//! every reason and phase word, is in `docs/health.md`; `tests/custom_resources.rs`
//! has a case per row.
//!
//! # Custom checks
//!
//! [`HealthChecks`] holds Lua scripts (Argo CD's contract) and CEL
//! expressions (Flux's) per group/kind, which replace the built-in rules of
//! the kinds they match. Evaluating them is pure computation over the
//! object: the scripts' text is passed in, never read here.

mod apps;
mod argo_rollouts;
mod autoscaling;
mod batch;
mod cel;
mod checks;
mod configure;
mod context;
mod core;
mod crd;
mod crd_kinds;
mod field;
mod generic;
mod gitops_promoter;
mod lua;
mod members;
mod network;
mod pod;
pub mod pods;
mod reasons;
mod replicas;
mod status;

pub use cel::{CelCheck, CelCompileError, CelExprs};
pub use checks::{CheckError, CheckSource, HealthChecks, LUA_FILE_NAME, Verdict};
pub use context::{Context, DEFAULT_STATUS_GRACE, IngressWithoutClass};
pub use jiff::Timestamp;
pub use lua::{INSTRUCTION_LIMIT, LuaScript, LuaSyntaxError, MEMORY_LIMIT, TIME_LIMIT};
pub use status::{Health, HealthStatus, worst};

use serde_json::Value;

/// The health of the live object of `group` / `kind` (`""` for the core
/// group) by the built-in rules, or [`HealthStatus::Missing`] when it does
/// not exist; with a default [`Context`] (time unknown).
///
/// `live` is the object as the API server returns it. Never fails: fields it
/// cannot read count as absent.
pub fn assess(group: &str, kind: &str, live: Option<&Value>) -> Health {
    assess_with(&Context::default(), group, kind, live)
}

/// [`assess`] with what the caller knows beyond the object.
pub fn assess_with(ctx: &Context, group: &str, kind: &str, live: Option<&Value>) -> Health {
    let Some(obj) = live else {
        return Health::missing();
    };
    if let Some(h) = being_deleted(group, kind, obj) {
        return h;
    }
    match (group, kind) {
        ("apps", "Deployment") => apps::deployment(obj),
        ("apps", "StatefulSet") => apps::stateful_set(obj),
        ("apps", "DaemonSet") => apps::daemon_set(obj),
        ("apps", "ReplicaSet") => apps::replica_set(obj),
        ("", "Pod") => pod::pod(obj),
        ("batch", "Job") => batch::job(obj),
        ("batch", "CronJob") => batch::cron_job(obj),
        ("", "Service") => network::service(obj),
        ("networking.k8s.io", "Ingress") => network::ingress(obj, ctx),
        ("apiregistration.k8s.io", "APIService") => network::api_service(obj),
        ("", "PersistentVolumeClaim") => core::persistent_volume_claim(obj),
        ("", "Namespace") => core::namespace(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaling::horizontal_pod_autoscaler(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            crd::custom_resource_definition(obj)
        }
        ("argoproj.io", "Rollout") => argo_rollouts::rollout(obj),
        (gitops_promoter::GROUP, kind) => gitops_promoter::assess(kind, obj, ctx),
        _ => crd_kinds::assess(group, kind, obj)
            .unwrap_or_else(|| generic::standard(group, obj, ctx)),
    }
}

/// Progressing "Pending deletion" for an object with a
/// `metadata.deletionTimestamp`, as Argo CD, except for the kinds whose own
/// rules say what blocks the deletion (Namespace, CRD).
pub(crate) fn being_deleted(group: &str, kind: &str, obj: &Value) -> Option<Health> {
    let own_deletion_rule = matches!(
        (group, kind),
        ("", "Namespace") | ("apiextensions.k8s.io", "CustomResourceDefinition")
    );
    if own_deletion_rule {
        return None;
    }
    let when = obj
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .and_then(Value::as_str)?;
    Some(Health::progressing(format!(
        "Pending deletion (since {when})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_objects_are_missing() {
        let h = assess("apps", "Deployment", None);
        assert_eq!(h.status, HealthStatus::Missing);
        assert!(!h.reason.is_empty());
    }

    #[test]
    fn objects_being_deleted_are_progressing() {
        let cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "deletionTimestamp": "2026-11-25T12:00:00Z", "finalizers": ["example.com/hold"]},
        });
        let h = assess("", "ConfigMap", Some(&cm));
        assert_eq!(h.status, HealthStatus::Progressing);
        assert!(h.reason.contains("Pending deletion"), "{h}");
    }

    #[test]
    fn kinds_are_matched_with_their_group() {
        // A CRD kind named Deployment in another group gets the generic rules.
        let widget = json!({
            "apiVersion": "example.com/v1",
            "kind": "Deployment",
            "metadata": {"name": "x", "generation": 1},
            "spec": {"replicas": 3},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        });
        assert_eq!(
            assess("example.com", "Deployment", Some(&widget)).status,
            HealthStatus::Healthy
        );
        assert_eq!(
            assess("apps", "Deployment", Some(&widget)).status,
            HealthStatus::Progressing
        );
    }
}
