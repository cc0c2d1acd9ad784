//! Who owns a field: reading `metadata.managedFields` (fieldsV1).
//!
//! fieldsV1 is a tree keyed by `f:<field>` for map fields, `k:<json>` for list
//! items identified by their merge keys, `v:<json>` for set items and
//! `i:<index>` for atomic-list items; `.` marks the node itself.

use serde_json::Value;

/// Field managers that own the field at `pointer` (RFC 6901) in `live`.
pub fn owners_of(live: &Value, pointer: &str) -> Vec<String> {
    let segments = segments(pointer);
    let mut owners: Vec<String> = Vec::new();
    for entry in managed_fields(live) {
        let Some(manager) = entry.get("manager").and_then(Value::as_str) else {
            continue;
        };
        let Some(fields) = entry.get("fieldsV1") else {
            continue;
        };
        if owns(fields, Some(live), &segments) && !owners.iter().any(|o| o == manager) {
            owners.push(manager.to_string());
        }
    }
    owners
}

/// The `managedFields` entries of an object.
pub(crate) fn managed_fields(live: &Value) -> impl Iterator<Item = &Value> {
    live.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Splits a JSON pointer into unescaped segments.
pub(crate) fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn owns(fields: &Value, node: Option<&Value>, segments: &[String]) -> bool {
    let Some((segment, rest)) = segments.split_first() else {
        return true;
    };
    match node {
        Some(Value::Array(items)) => {
            let Ok(index) = segment.parse::<usize>() else {
                return false;
            };
            let item = items.get(index);
            match item.and_then(|item| list_entry(fields, item, index)) {
                Some(sub) => owns(sub, item, rest),
                None => false,
            }
        }
        _ => fields
            .get(format!("f:{segment}"))
            .is_some_and(|sub| owns(sub, node.and_then(|n| n.get(segment)), rest)),
    }
}

/// The fieldsV1 entry describing list item `item` at `index`.
pub(crate) fn list_entry<'a>(fields: &'a Value, item: &Value, index: usize) -> Option<&'a Value> {
    let map = fields.as_object()?;
    map.iter().find_map(|(k, sub)| {
        let hit = if let Some(json) = k.strip_prefix("k:") {
            serde_json::from_str::<serde_json::Map<String, Value>>(json)
                .is_ok_and(|keys| keys.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))
        } else if let Some(json) = k.strip_prefix("v:") {
            serde_json::from_str::<Value>(json).is_ok_and(|v| v == *item)
        } else if let Some(i) = k.strip_prefix("i:") {
            i.parse::<usize>() == Ok(index)
        } else {
            false
        };
        hit.then_some(sub)
    })
}
