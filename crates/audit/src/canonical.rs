//! Canonical JSON and the hash chain.
//!
//! A record's *body* is its JSON object without `prev_hash` and `hash`,
//! written canonically:
//! - object keys sorted by their UTF-8 bytes, at every level;
//! - no insignificant whitespace;
//! - strings escaped as serde_json does (`"`, `\`, and control characters;
//!   everything else, non-ASCII included, as raw UTF-8);
//! - integers only (the log has no floating-point fields);
//! - absent optional fields omitted, never `null`.
//!
//! `hash = hex(sha256(prev_hash_hex || body))`, where `prev_hash_hex` is the
//! previous record's hash as 64 lowercase hex characters ([`GENESIS`] for the
//! first record).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Writes `value` as canonical JSON.
pub fn to_canonical(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(key, out);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, out);
            }
            out.push(']');
        }
        Value::String(s) => write_str(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_str(s: &str, out: &mut String) {
    // serde_json's string escaping is the reference; a String never fails.
    out.push_str(&Value::String(s.to_string()).to_string());
}

/// `hex(sha256(prev_hash_hex || body))`.
pub fn chain_hash(prev_hash: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(body.as_bytes());
    hex(&h.finalize())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Parses lowercase or uppercase hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sorted_no_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"d": [1, "x\n"], "c": "é"}}"#).expect("json");
        assert_eq!(to_canonical(&v), r#"{"a":{"c":"é","d":[1,"x\n"]},"b":1}"#);
    }

    #[test]
    fn hash_is_sha256_of_prev_and_body() {
        // sha256("0"*64 + "{}")
        let h = chain_hash(GENESIS, "{}");
        assert_eq!(h.len(), 64);
        assert_ne!(h, chain_hash(GENESIS, "{ }"));
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
    }
}
