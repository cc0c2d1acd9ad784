//! Secret values never leave this crate: they are masked on both sides.

use serde_json::Value;
use tidegate_core::ObjectKey;

/// What a Secret value is shown as.
pub const MASK: &str = "********";
/// What a Secret value that will change is shown as on the desired side.
const CHANGED: &str = "******** (changed)";

/// Replaces every value of a Secret's `data` and `stringData` with a mask.
/// Where the two sides differ, the desired side says `(changed)`: users see
/// that a value changes, never what it is.
pub fn mask(key: &ObjectKey, before: Option<&mut Value>, after: Option<&mut Value>) {
    if !(key.group.is_empty() && key.kind == "Secret") {
        return;
    }
    let before_data = before.as_deref().map(values);
    if let Some(after) = after {
        for field in ["data", "stringData"] {
            if let Some(map) = after.get_mut(field).and_then(Value::as_object_mut) {
                for (k, v) in map.iter_mut() {
                    // A new Secret has no "before": nothing to compare with.
                    let same = before_data.as_ref().is_none_or(|data| {
                        data.iter()
                            .any(|(bf, bk, bv)| *bf == field && bk == k && bv == v)
                    });
                    *v = Value::String(if same { MASK } else { CHANGED }.into());
                }
            }
        }
    }
    if let Some(before) = before {
        for field in ["data", "stringData"] {
            if let Some(map) = before.get_mut(field).and_then(Value::as_object_mut) {
                for v in map.values_mut() {
                    *v = Value::String(MASK.into());
                }
            }
        }
    }
}

fn values(object: &Value) -> Vec<(&'static str, String, Value)> {
    let mut out = Vec::new();
    for field in ["data", "stringData"] {
        if let Some(map) = object.get(field).and_then(Value::as_object) {
            out.extend(map.iter().map(|(k, v)| (field, k.clone(), v.clone())));
        }
    }
    out
}
