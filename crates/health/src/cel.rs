//! CEL health checks, as Flux's `healthCheckExprs`: three expressions over
//! the object's fields (`status`, `spec`, `metadata` are variables):
//! `inProgress` (optional), `failed` (optional) and `current` (required),
//! compiled once and evaluated in that order; the first that is true
//! decides, and when none is, the object is Progressing.
//!
//! An expression that cannot be evaluated (a field that does not exist
//! yet) leaves the object Progressing with the error, as Flux waits in
//! that case; one that gives something other than a boolean is Unknown.

use crate::status::{Health, HealthStatus};
use cel::objects::{Key, Map};
use cel::{Context, Program, Value as CelValue};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The three expressions of a check, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CelExprs {
    /// True when the object is healthy (required).
    pub current: String,
    /// True while the object is still being worked on.
    pub in_progress: Option<String>,
    /// True when the object failed.
    pub failed: Option<String>,
}

/// A compiled CEL check.
pub struct CelCheck {
    steps: Vec<Step>,
}

/// One compiled expression and what it means when true.
struct Step {
    name: &'static str,
    program: Program,
    source: String,
    then: HealthStatus,
}

/// An expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CelCompileError {
    /// `current`, `inProgress` or `failed`.
    pub field: &'static str,
    /// The parser's message.
    pub message: String,
}

// === impl CelCheck ===

impl CelCheck {
    /// Compiles the expressions; every one that does not compile is reported.
    pub fn compile(exprs: &CelExprs) -> Result<CelCheck, Vec<CelCompileError>> {
        let mut steps = Vec::new();
        let mut errors = Vec::new();
        let wanted = [
            (
                "inProgress",
                exprs.in_progress.as_deref(),
                HealthStatus::Progressing,
            ),
            ("failed", exprs.failed.as_deref(), HealthStatus::Degraded),
            (
                "current",
                Some(exprs.current.as_str()),
                HealthStatus::Healthy,
            ),
        ];
        for (name, source, then) in wanted {
            let Some(source) = source else { continue };
            if source.trim().is_empty() {
                errors.push(CelCompileError {
                    field: name,
                    message: "the expression is empty".into(),
                });
                continue;
            }
            match Program::compile(source) {
                Ok(program) => steps.push(Step {
                    name,
                    program,
                    source: source.to_string(),
                    then,
                }),
                Err(e) => errors.push(CelCompileError {
                    field: name,
                    message: e
                        .errors
                        .iter()
                        .map(|p| format!("column {}: {}", p.pos.1 + 1, p.msg))
                        .collect::<Vec<_>>()
                        .join("; "),
                }),
            }
        }
        if errors.is_empty() {
            Ok(CelCheck { steps })
        } else {
            Err(errors)
        }
    }

    /// Evaluates the check over `obj`; never fails.
    pub fn assess(&self, obj: &Value) -> Health {
        let mut context = Context::default();
        if let Value::Object(map) = obj {
            for (k, v) in map {
                if k == "metadata" {
                    context.add_variable_from_value(k.as_str(), metadata(v));
                } else {
                    context.add_variable_from_value(k.as_str(), to_cel(v, 0));
                }
            }
        }
        for step in &self.steps {
            match step.program.execute(&context) {
                Ok(CelValue::Bool(true)) => {
                    return Health::new(
                        step.then,
                        format!("{} is true: {}", step.name, step.source),
                    );
                }
                Ok(CelValue::Bool(false)) => {}
                Ok(other) => {
                    return Health::unknown(format!(
                        "{} gave {:?}, not a boolean: {}",
                        step.name,
                        other.type_of(),
                        step.source
                    ));
                }
                Err(e) => {
                    return Health::progressing(format!(
                        "{} could not be evaluated ({e}): {}",
                        step.name, step.source
                    ));
                }
            }
        }
        Health::progressing("No health expression is true yet")
    }
}

impl std::fmt::Debug for CelCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|s| (s.name, &s.source)))
            .finish()
    }
}

/// `metadata` without `managedFields` (its bulk; no check reads it).
fn metadata(v: &Value) -> CelValue {
    match v {
        Value::Object(map) => {
            let mut out: HashMap<Key, CelValue> = HashMap::with_capacity(map.len());
            for (k, v) in map {
                if k != "managedFields" {
                    out.insert(Key::String(Arc::new(k.clone())), to_cel(v, 1));
                }
            }
            CelValue::Map(Map { map: Arc::new(out) })
        }
        other => to_cel(other, 1),
    }
}

/// Most nesting converted; deeper values become null.
const MAX_DEPTH: usize = 64;

/// A JSON value as a CEL value: integers that fit are `int`, others `uint`
/// or `double`.
fn to_cel(v: &Value, depth: usize) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                CelValue::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        _ if depth >= MAX_DEPTH => CelValue::Null,
        Value::Array(items) => CelValue::List(Arc::new(
            items.iter().map(|i| to_cel(i, depth + 1)).collect(),
        )),
        Value::Object(map) => {
            let out: HashMap<Key, CelValue> = map
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v, depth + 1)))
                .collect();
            CelValue::Map(Map { map: Arc::new(out) })
        }
    }
}
