//! Read-only accessors over live objects. Missing fields read as the
//! Kubernetes zero value, because the API server omits zero-valued status
//! fields (`updatedReplicas: 0` is simply absent).

use serde_json::Value;

/// The value at `path`, if every step exists.
pub(crate) fn get<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, key| v.get(key))
}

/// An integer at `path`, or `None`.
pub(crate) fn int(obj: &Value, path: &[&str]) -> Option<i64> {
    get(obj, path).and_then(Value::as_i64)
}

/// An integer at `path`, or `default`.
pub(crate) fn int_or(obj: &Value, path: &[&str], default: i64) -> i64 {
    int(obj, path).unwrap_or(default)
}

/// A string at `path`, or `""`.
pub(crate) fn str_at<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    get(obj, path).and_then(Value::as_str).unwrap_or("")
}

/// A boolean at `path`, or `false`.
pub(crate) fn bool_at(obj: &Value, path: &[&str]) -> bool {
    get(obj, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub(crate) fn array<'a>(obj: &'a Value, path: &[&str]) -> &'a [Value] {
    get(obj, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `metadata.generation`, or 0.
pub(crate) fn generation(obj: &Value) -> i64 {
    int_or(obj, &["metadata", "generation"], 0)
}

/// One entry of `status.conditions` (the `metav1.Condition` shape, also
/// used by the built-in workload conditions).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Condition<'a> {
    /// `type`, e.g. `Ready`.
    pub type_: &'a str,
    /// `True`, `False` or `Unknown`.
    pub status: &'a str,
    /// CamelCase machine reason.
    pub reason: &'a str,
    /// Human message.
    pub message: &'a str,
    /// The generation the condition was computed for, when the writer sets it.
    pub observed_generation: Option<i64>,
    /// Cluster API's `severity` (`Error`, `Warning`, `Info`), or `""`.
    pub severity: &'a str,
}

impl<'a> Condition<'a> {
    /// Reads one condition object.
    pub(crate) fn from_value(v: &'a Value) -> Self {
        Condition {
            type_: str_at(v, &["type"]),
            // A YAML `status: True` left unquoted reads as a boolean.
            status: match v.get("status") {
                Some(Value::Bool(true)) => "True",
                Some(Value::Bool(false)) => "False",
                _ => str_at(v, &["status"]),
            },
            reason: str_at(v, &["reason"]),
            message: str_at(v, &["message"]),
            observed_generation: int(v, &["observedGeneration"]),
            severity: str_at(v, &["severity"]),
        }
    }

    /// `status == "True"`.
    pub(crate) fn is_true(&self) -> bool {
        self.status == "True"
    }

    /// `status == "False"`.
    pub(crate) fn is_false(&self) -> bool {
        self.status == "False"
    }

    /// `Ready=False (ReconcileFailed): the message`, leaving out empty parts.
    pub(crate) fn describe(&self) -> String {
        let mut out = format!("{}={}", self.type_, self.status);
        if !self.reason.is_empty() {
            out.push_str(&format!(" ({})", self.reason));
        }
        if !self.message.is_empty() {
            out.push_str(": ");
            out.push_str(self.message);
        }
        out
    }

    /// The message, else the reason, else `describe()`.
    pub(crate) fn message_or_reason(&self) -> String {
        if !self.message.is_empty() {
            self.message.to_string()
        } else if !self.reason.is_empty() {
            self.reason.to_string()
        } else {
            self.describe()
        }
    }
}

/// Every condition in `conditions` (a JSON array).
pub(crate) fn conditions_in(list: &[Value]) -> impl Iterator<Item = Condition<'_>> {
    list.iter().map(Condition::from_value)
}

/// Every condition in `status.conditions`.
pub(crate) fn conditions(obj: &Value) -> impl Iterator<Item = Condition<'_>> {
    conditions_in(array(obj, &["status", "conditions"]))
}

/// The condition of type `type_` in `status.conditions`, if any.
pub(crate) fn condition<'a>(obj: &'a Value, type_: &str) -> Option<Condition<'a>> {
    conditions(obj).find(|c| c.type_ == type_)
}
