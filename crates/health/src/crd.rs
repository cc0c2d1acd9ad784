//! CustomResourceDefinition.

use crate::field::{condition, get};
use crate::status::Health;
use serde_json::Value;

/// CustomResourceDefinition: see the crate documentation's table.
pub(crate) fn custom_resource_definition(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Terminating")
        && c.is_true()
    {
        return Health::progressing(format!("CRD is terminating: {}", c.message_or_reason()));
    }
    if get(obj, &["metadata", "deletionTimestamp"]).is_some() {
        return Health::progressing("CRD is terminating");
    }
    if let Some(c) = condition(obj, "NamesAccepted")
        && c.is_false()
    {
        return Health::degraded(format!("CRD names were not accepted: {}", c.describe()));
    }
    if let Some(c) = condition(obj, "NonStructuralSchema")
        && c.is_true()
    {
        return Health::degraded(format!("CRD schema is not structural: {}", c.describe()));
    }
    match condition(obj, "Established") {
        Some(c) if c.is_true() => Health::healthy("CRD is established"),
        // The API server sets reason `Installing` while it sets the CRD's
        // API up; any other False reason means it will not serve it.
        Some(c) if c.is_false() && c.reason != "Installing" => {
            Health::degraded(format!("CRD is not established: {}", c.describe()))
        }
        Some(c) => Health::progressing(format!(
            "Waiting for the CRD to be established: {}",
            c.describe()
        )),
        None => Health::progressing("Waiting for the CRD to be established"),
    }
}
