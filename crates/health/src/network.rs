//! Service and Ingress: both wait for an address from outside the cluster.

use crate::context::{Context, IngressWithoutClass};
use crate::field::{array, str_at};
use crate::status::Health;
use serde_json::Value;

/// The IPs or hostnames in `status.loadBalancer.ingress`.
fn addresses(obj: &Value) -> Vec<&str> {
    array(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .map(|i| match str_at(i, &["ip"]) {
            "" => str_at(i, &["hostname"]),
            ip => ip,
        })
        .collect()
}

/// Service: see the crate documentation's table.
pub(crate) fn service(obj: &Value) -> Health {
    let type_ = match str_at(obj, &["spec", "type"]) {
        "" => "ClusterIP",
        other => other,
    };
    if type_ != "LoadBalancer" {
        return Health::healthy(format!("{type_} service"));
    }
    let addresses = addresses(obj);
    if addresses.is_empty() {
        Health::progressing("Waiting for the load balancer to be assigned an address")
    } else {
        Health::healthy(format!("Load balancer address: {}", addresses.join(", ")))
    }
}

/// Ingress: see the crate documentation's table.
pub(crate) fn ingress(obj: &Value, ctx: &Context) -> Health {
    let addresses = addresses(obj);
    let class = obj["spec"]["ingressClassName"]
        .as_str()
        .or_else(|| obj["metadata"]["annotations"]["kubernetes.io/ingress.class"].as_str());
    if addresses.is_empty()
        && class.is_none()
        && ctx.ingress_without_class == IngressWithoutClass::Healthy
    {
        // The API server gives new Ingresses the default IngressClass when a
        // cluster has one; without a class no controller will ever serve it,
        // so waiting for an address would block rollouts forever. (GKE is
        // the exception: its built-in controller serves class-less ones.)
        Health::healthy("No ingress class, so no controller will assign an address")
    } else if addresses.is_empty() {
        Health::progressing("Waiting for the ingress controller to assign an address")
    } else {
        Health::healthy(format!("Ingress address: {}", addresses.join(", ")))
    }
}

/// `apiregistration.k8s.io` APIService: see the crate documentation's table.
pub(crate) fn api_service(obj: &Value) -> Health {
    match crate::field::condition(obj, "Available") {
        Some(c) if c.is_true() => Health::healthy(c.describe()),
        // While its backing Service starts (`MissingEndpoints`,
        // `FailedDiscoveryCheck`) an APIService is unavailable; the wait's
        // deadline, not this rule, decides when that is a failure.
        Some(c) => Health::progressing(format!(
            "Waiting for the API service to become available: {}",
            c.describe()
        )),
        None => Health::progressing("Waiting for the API service to report availability"),
    }
}
