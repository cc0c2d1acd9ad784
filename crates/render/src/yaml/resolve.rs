//! Plain YAML scalars read exactly as Kubernetes reads them.
//!
//! `kubectl` and the API server turn YAML into JSON with `sigs.k8s.io/yaml`,
//! which resolves plain (unquoted) scalars with go-yaml v2's YAML 1.1 rules
//! (`resolve.go` of `go.yaml.in/yaml/v2`): `0400` is octal (256), `0x1F`,
//! `0o17` and `0b101` are integers, `_` separates digits, `08` is the float 8,
//! `y`/`yes`/`on` are booleans, `1e400` and `0x` overflowing 64 bits stay
//! strings. Base-60 numbers (`1:30`) are strings (go-yaml never read them).
//! JSON then prints every integral float as an integer (`8`, not `8.0`).
//! Reading numbers any other way would apply different values than
//! `kubectl apply` of the same file.

/// What a plain scalar resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    /// `~`, `null`, `Null`, `NULL` or nothing.
    Null,
    /// A YAML 1.1 boolean.
    Bool(bool),
    /// An integer.
    Int(IntValue),
    /// A float (see [`json_float`] for how JSON carries it).
    Float(f64),
    /// `.nan`, `.inf`, `-.inf`: not representable in JSON.
    NotFinite,
    /// Anything else.
    Str,
}

/// A 64-bit integer, signed or unsigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntValue {
    /// Fits an `i64`.
    Signed(i64),
    /// Above `i64::MAX`.
    Unsigned(u64),
}

impl IntValue {
    /// The JSON number.
    pub fn to_json(self) -> serde_json::Number {
        match self {
            IntValue::Signed(v) => v.into(),
            IntValue::Unsigned(v) => v.into(),
        }
    }
}

/// Resolves the text of a plain scalar like go-yaml v2's `resolve("", in)`.
pub fn resolve(text: &str) -> Plain {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Plain::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Plain::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => return Plain::NotFinite,
        _ => {}
    }
    match text.as_bytes()[0] {
        // go-yaml: strconv.ParseFloat(in) — underscores not removed here.
        b'.' => match parse_float(text) {
            Some(f) => float(f),
            None => Plain::Str,
        },
        b'0'..=b'9' | b'+' | b'-' => {
            let plain: String = text.chars().filter(|c| *c != '_').collect();
            if let Some(v) = go_parse_int(&plain) {
                return Plain::Int(IntValue::Signed(v));
            }
            if let Some(v) = go_parse_uint(&plain) {
                return Plain::Int(IntValue::Unsigned(v));
            }
            if yaml_style_float(&plain)
                && let Some(f) = parse_float(&plain)
            {
                return float(f);
            }
            if let Some(digits) = plain.strip_prefix("0b") {
                if let Some(v) = parse_radix(digits, 2).and_then(|v| i64::try_from(v).ok()) {
                    return Plain::Int(IntValue::Signed(v));
                }
                if let Some(v) = parse_radix(digits, 2) {
                    return Plain::Int(IntValue::Unsigned(v));
                }
            } else if let Some(digits) = plain.strip_prefix("-0b")
                && let Some(v) = parse_radix(digits, 2)
                && v <= 1 << 63
            {
                return Plain::Int(IntValue::Signed((v as i64).wrapping_neg()));
            }
            Plain::Str
        }
        _ => Plain::Str,
    }
}

fn float(f: f64) -> Plain {
    Plain::Float(f)
}

pub use tidegate_core::numbers::json_float;

/// Go's `strconv.ParseFloat` for decimal text: `None` on syntax errors and
/// on overflow (Go returns ±Inf with `ErrRange`, which go-yaml treats as "not
/// a float").
fn parse_float(text: &str) -> Option<f64> {
    let ok = text
        .bytes()
        .all(|b| b.is_ascii_digit() || b".+-eE".contains(&b));
    ok.then(|| text.parse::<f64>().ok())
        .flatten()
        .filter(|f| f.is_finite())
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_style_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// Go's `strconv.ParseUint(s, 0, 64)`: prefixes `0x`, `0o`, `0b` (either
/// case), a leading `0` for octal, no sign.
fn go_parse_uint(s: &str) -> Option<u64> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    let (radix, digits) = if bytes[0] == b'0' {
        match bytes.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if bytes.len() >= 3 => (2, &s[2..]),
            Some(b'o') if bytes.len() >= 3 => (8, &s[2..]),
            Some(b'x') if bytes.len() >= 3 => (16, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    if digits.is_empty() && radix == 8 && s == "0" {
        return Some(0);
    }
    parse_radix(digits, radix)
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then [`go_parse_uint`].
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let magnitude = go_parse_uint(body)?;
    if negative {
        (magnitude <= 1 << 63).then(|| (magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Digits in `radix`, at least one, no sign, checked against 64 bits.
fn parse_radix(digits: &str, radix: u32) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.chars().try_fold(0u64, |acc, c| {
        let d = u64::from(c.to_digit(radix)?);
        acc.checked_mul(u64::from(radix))?.checked_add(d)
    })
}

/// A mapping key as `sigs.k8s.io/yaml` turns it into a JSON key: integers
/// in decimal, floats with Go's `FormatFloat(f, 'g', -1, 32)`, booleans as
/// `true`/`false`; `None` for keys JSON cannot have (null, NaN, infinity).
pub fn key_text(text: &str) -> Option<String> {
    Some(match resolve(text) {
        Plain::Str => text.to_string(),
        Plain::Bool(b) => b.to_string(),
        Plain::Int(IntValue::Signed(v)) => v.to_string(),
        Plain::Int(IntValue::Unsigned(v)) => v.to_string(),
        Plain::Float(f) => go_format_g32(f),
        Plain::Null | Plain::NotFinite => return None,
    })
}

/// `strconv.FormatFloat(f, 'g', -1, 32)`: the shortest float32 digits, in
/// exponent form when the exponent is below -4 or at least 6.
fn go_format_g32(f: f64) -> String {
    let short = format!("{:e}", f as f32);
    let Some((mantissa, exp)) = short.split_once('e') else {
        return short;
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return short;
    };
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{}", f as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> Plain {
        Plain::Int(IntValue::Signed(v))
    }

    #[test]
    fn integers_follow_go_yaml_v2() {
        for (text, want) in [
            ("0400", int(256)),
            ("0644", int(420)),
            ("010", int(8)),
            ("0", int(0)),
            ("-010", int(-8)),
            ("+12", int(12)),
            ("0x1F", int(31)),
            ("0X1f", int(31)),
            ("0o17", int(15)),
            ("0O17", int(15)),
            ("0b101", int(5)),
            ("-0b101", int(-5)),
            ("1_000", int(1000)),
            ("0x_1F", int(31)),
            ("0_400", int(256)),
            ("9223372036854775807", int(i64::MAX)),
            ("-9223372036854775808", int(i64::MIN)),
            (
                "18446744073709551615",
                Plain::Int(IntValue::Unsigned(u64::MAX)),
            ),
        ] {
            assert_eq!(resolve(text), want, "{text}");
        }
    }

    #[test]
    fn floats_with_integral_values_are_json_integers() {
        for (text, want) in [
            ("08", "8"),
            ("09", "9"),
            ("1.0", "1"),
            ("1e3", "1000"),
            ("1.", "1"),
            ("0400.0", "400"),
            ("-.5e1", "-5"),
            ("1.5", "1.5"),
            (".5", "0.5"),
            ("1e20", "1e+20"),
        ] {
            let Plain::Float(f) = resolve(text) else {
                panic!("{text} is not a float");
            };
            assert_eq!(
                json_float(f).map(|n| n.to_string()).as_deref(),
                Some(want),
                "{text}"
            );
        }
    }

    #[test]
    fn strings_stay_strings() {
        for text in [
            "1:30",
            "190:20:30",
            "2001-12-14",
            "1e400",
            "0x",
            "0xFFFFFFFFFFFFFFFFFF",
            "_1",
            "1.2.3",
            "v1",
            "abc",
            "0x1G",
            "1e",
            "<<",
            ".",
            "._5",
            "inf",
            "NaN",
            "-",
            "+",
        ] {
            assert_eq!(resolve(text), Plain::Str, "{text}");
        }
    }

    #[test]
    fn booleans_and_nulls_are_yaml_1_1() {
        for t in ["y", "Y", "yes", "On", "TRUE"] {
            assert_eq!(resolve(t), Plain::Bool(true), "{t}");
        }
        for f in ["n", "NO", "off", "False"] {
            assert_eq!(resolve(f), Plain::Bool(false), "{f}");
        }
        for n in ["", "~", "null", "NULL"] {
            assert_eq!(resolve(n), Plain::Null, "{n}");
        }
        assert_eq!(resolve("nULL"), Plain::Str);
        assert_eq!(resolve(".inf"), Plain::NotFinite);
        assert_eq!(resolve("-.Inf"), Plain::NotFinite);
    }

    #[test]
    fn keys_are_written_as_sigs_k8s_io_yaml_writes_them() {
        assert_eq!(key_text("0400").as_deref(), Some("256"));
        assert_eq!(key_text("yes").as_deref(), Some("true"));
        assert_eq!(key_text("1.50").as_deref(), Some("1.5"));
        assert_eq!(key_text("0.00001").as_deref(), Some("1e-05"));
        assert_eq!(key_text("1e7").as_deref(), Some("1e+07"));
        assert_eq!(key_text("08").as_deref(), Some("8"));
        assert_eq!(key_text("name").as_deref(), Some("name"));
        assert_eq!(key_text("~"), None);
    }
}
