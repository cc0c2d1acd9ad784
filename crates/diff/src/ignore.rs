//! `ignoreDifferences`: fields that are not drift.

use crate::owners::{list_entry, managed_fields, segments};
use serde_json::Value;
use tidegate_core::{ObjectKey, environment::IgnoreDifference};

/// One rule, from `spec.sync.ignoreDifferences`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreRule(pub IgnoreDifference);

impl IgnoreRule {
    /// True when the rule is about `key`.
    pub fn matches(&self, key: &ObjectKey) -> bool {
        let r = &self.0;
        r.kind == key.kind
            && r.group.as_ref().is_none_or(|g| *g == key.group)
            && r.name.as_ref().is_none_or(|n| *n == key.name)
            && r.namespace
                .as_ref()
                .is_none_or(|n| key.namespace.as_ref() == Some(n))
    }

    /// Removes the ignored fields from `object`: every JSON pointer, and
    /// every field that the named managers own in `live`.
    pub fn apply(&self, live: &Value, object: &mut Value) {
        for pointer in &self.0.json_pointers {
            remove_pointer(object, pointer);
        }
        for entry in managed_fields(live) {
            let manager = entry.get("manager").and_then(Value::as_str);
            if manager.is_some_and(|m| self.0.managed_fields_managers.iter().any(|x| x == m))
                && let Some(fields) = entry.get("fieldsV1")
            {
                remove_owned(object, fields);
            }
        }
    }
}

fn remove_pointer(object: &mut Value, pointer: &str) {
    let segs = segments(pointer);
    let Some((last, parents)) = segs.split_last() else {
        return;
    };
    let mut node = object;
    for s in parents {
        node = match node {
            Value::Object(m) => match m.get_mut(s) {
                Some(n) => n,
                None => return,
            },
            Value::Array(a) => match s.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(n) => n,
                None => return,
            },
            _ => return,
        };
    }
    match node {
        Value::Object(m) => {
            m.remove(last);
        }
        Value::Array(a) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// Removes from `object` every leaf field listed in a fieldsV1 tree.
fn remove_owned(object: &mut Value, fields: &Value) {
    let Some(entries) = fields.as_object() else {
        return;
    };
    match object {
        Value::Object(map) => {
            for (k, sub) in entries {
                let Some(name) = k.strip_prefix("f:") else {
                    continue;
                };
                let leaf = sub.as_object().is_none_or(|m| m.is_empty());
                if leaf {
                    map.remove(name);
                } else if let Some(child) = map.get_mut(name) {
                    remove_owned(child, sub);
                }
            }
        }
        Value::Array(items) => {
            let mut remove = Vec::new();
            for (i, item) in items.iter_mut().enumerate() {
                let snapshot = item.clone();
                if let Some(sub) = list_entry(fields, &snapshot, i) {
                    if sub
                        .as_object()
                        .is_none_or(|m| m.is_empty() || m.len() == 1 && m.contains_key("."))
                    {
                        remove.push(i);
                    } else {
                        remove_owned(item, sub);
                    }
                }
            }
            for i in remove.into_iter().rev() {
                items.remove(i);
            }
        }
        _ => {}
    }
}
