//! What a caller knows beyond the object itself: the time, whether the
//! kind has a status subresource, and the cluster's Ingress convention.
//!
//! Passing these in keeps every rule a pure function: the health crate
//! never reads a clock or asks a cluster.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a custom resource may go without any status before that is
/// no longer "the controller has not got to it yet": the default of
/// [`Context::status_grace`], the same as a rollout's default progress
/// deadline.
pub const DEFAULT_STATUS_GRACE: Duration = Duration::from_secs(600);

/// Facts about an assessment that are not in the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The time of the assessment, for ages; `None` when unknown (a missing
    /// status then always counts as waiting).
    pub now: Option<Timestamp>,
    /// Whether the kind's API has a `status` subresource (from discovery);
    /// `None` when unknown. A custom resource of a kind without one is a
    /// plain configuration object: no controller writes its status.
    pub status_subresource: Option<bool>,
    /// How long after creation a custom resource may have no status and
    /// still count as Progressing; after that it is Unknown.
    pub status_grace: Duration,
    /// What an Ingress without a class and without an address means.
    pub ingress_without_class: IngressWithoutClass,
}

/// What an Ingress with no class (no `spec.ingressClassName` nor the legacy
/// annotation) and no address is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IngressWithoutClass {
    /// Healthy: no controller serves class-less Ingresses (most clusters;
    /// a default IngressClass would have been filled in at creation).
    #[default]
    Healthy,
    /// Progressing until an address appears: the cluster's provider serves
    /// class-less Ingresses (GKE's built-in controller gives them a load
    /// balancer).
    Wait,
}

// === impl Context ===

impl Default for Context {
    fn default() -> Self {
        Context {
            now: None,
            status_subresource: None,
            status_grace: DEFAULT_STATUS_GRACE,
            ingress_without_class: IngressWithoutClass::default(),
        }
    }
}

impl Context {
    /// A context at `now`, with the other facts at their defaults.
    pub fn at(now: Timestamp) -> Self {
        Context {
            now: Some(now),
            ..Context::default()
        }
    }
}

// === impl IngressWithoutClass ===

impl IngressWithoutClass {
    /// The convention of a cluster provider (`kubeconfig`, `eks`, `aks`,
    /// `gke`): GKE serves class-less Ingresses, the others do not.
    pub fn for_provider(provider: &str) -> Self {
        if provider == "gke" {
            IngressWithoutClass::Wait
        } else {
            IngressWithoutClass::Healthy
        }
    }
}
