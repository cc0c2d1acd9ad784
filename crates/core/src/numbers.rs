//! Numbers as JSON carries them to the API server.
//!
//! Kubernetes' YAML reader (go-yaml v2 via `sigs.k8s.io/yaml`) turns `08` or
//! `1.0` into a float, and Go's JSON encoder then prints it as `8` or `1`,
//! so an `int32` field accepts it. Tidegate does the same: an integral float
//! is an integer, never `8.0`.

use serde_json::{Number, Value};

/// `f` as a JSON number: integral values within 64 bits as integers;
/// `None` for NaN and infinity.
pub fn json_float(f: f64) -> Option<Number> {
    if f.fract() == 0.0 {
        if f >= -(2f64.powi(63)) && f < 2f64.powi(63) {
            return Some((f as i64).into());
        }
        if f >= 0.0 && f < 2f64.powi(64) {
            return Some((f as u64).into());
        }
    }
    Number::from_f64(f)
}

/// Rewrites every integral float in `value` as an integer ([`json_float`]).
pub fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(int) = n.as_f64().filter(|_| n.is_f64()).and_then(json_float) {
                *n = int;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integral_floats_become_integers() {
        let mut v = json!({"a": 400.0, "b": [8.0, 1.5, -3.0], "c": "x", "d": 1e20});
        integral_floats_as_integers(&mut v);
        assert!(v["a"].is_u64() && v["b"][0].is_u64() && v["b"][2].is_i64());
        assert_eq!(v["a"], json!(400));
        assert_eq!(v["b"], json!([8, 1.5, -3]));
        assert!(v["d"].is_f64(), "beyond 64 bits stays a float");
    }
}
