//! Client-side fallback: keep only the fields the desired object sets.

use serde_json::{Map, Value};

/// The parts of `live` at the paths `desired` sets: maps keep only desired
/// keys, lists are compared item by item, scalars as they are.
pub fn project(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => Value::Object(
            d.iter()
                .filter_map(|(k, dv)| l.get(k).map(|lv| (k.clone(), project(lv, dv))))
                .collect::<Map<_, _>>(),
        ),
        (Value::Array(l), Value::Array(d)) => Value::Array(
            l.iter()
                .enumerate()
                .map(|(i, lv)| d.get(i).map_or_else(|| lv.clone(), |dv| project(lv, dv)))
                .collect(),
        ),
        (l, _) => l.clone(),
    }
}
