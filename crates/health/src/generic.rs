//! Kinds without a dedicated rule: the conventions most controllers follow
//! (`metav1.Condition` `Ready` / `Available`, kstatus `Stalled` /
//! `Reconciling`, `status.observedGeneration`).

use crate::field::{condition, generation, int};
use crate::status::Health;
use serde_json::Value;

/// Any other kind: see the crate documentation's table.
pub(crate) fn standard(obj: &Value) -> Health {
    let status = match obj.get("status") {
        None | Some(Value::Null) => return Health::healthy("No status to assess"),
        Some(Value::Object(map)) if map.is_empty() => {
            return Health::healthy("No status to assess");
        }
        Some(s) => s,
    };
    let wanted = generation(obj);
    if let Some(observed) = int(status, &["observedGeneration"])
        && observed < wanted
    {
        return Health::progressing(format!(
            "Waiting for the controller to observe generation {wanted} (observed {observed})"
        ));
    }
    // kstatus: Stalled means the controller gave up, Reconciling means it is
    // working on it.
    if let Some(c) = condition(obj, "Stalled")
        && c.is_true()
    {
        return Health::degraded(c.describe());
    }
    if let Some(c) = condition(obj, "Reconciling")
        && c.is_true()
    {
        return Health::progressing(c.describe());
    }
    let Some(c) = condition(obj, "Ready").or_else(|| condition(obj, "Available")) else {
        return Health::healthy("No Ready or Available condition to assess");
    };
    // A condition computed for an older spec says nothing about this one.
    if let Some(observed) = c.observed_generation
        && observed < wanted
    {
        return Health::progressing(format!(
            "Waiting for the controller to observe generation {wanted} ({} condition is for generation {observed})",
            c.type_
        ));
    }
    match c.status {
        "True" => Health::healthy(c.describe()),
        "False" => Health::degraded(c.describe()),
        _ => Health::progressing(c.describe()),
    }
}
