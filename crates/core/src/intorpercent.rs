//! Integer-or-percentage values such as `maxSurge: 25%` or `maxUnavailable: 1`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A count or a percentage of some total, like Kubernetes' `IntOrString`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntOrPercent {
    /// An absolute count.
    Int(u32),
    /// A percentage (0–100) of a total.
    Percent(u32),
}

/// How a percentage of a total becomes a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Round up (Kubernetes' rule for `maxSurge`).
    Up,
    /// Round down (Kubernetes' rule for `maxUnavailable`).
    Down,
}

impl IntOrPercent {
    /// The count this value stands for out of `total`.
    pub fn resolve(self, total: u32, rounding: Rounding) -> u32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                let scaled = u64::from(p) * u64::from(total);
                let n = match rounding {
                    Rounding::Up => scaled.div_ceil(100),
                    Rounding::Down => scaled / 100,
                };
                u32::try_from(n).unwrap_or(u32::MAX)
            }
        }
    }

    /// True for `0` and `0%`.
    pub fn is_zero(self) -> bool {
        matches!(self, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
    }

    /// The value as Kubernetes writes it: a JSON number or a `"25%"` string.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            IntOrPercent::Int(n) => n.into(),
            IntOrPercent::Percent(p) => format!("{p}%").into(),
        }
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrPercent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = IntOrPercent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or a percentage such as \"25%\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrPercent, E> {
                u32::try_from(v)
                    .map(IntOrPercent::Int)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrPercent, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("must not be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrPercent, E> {
                let bad = || {
                    E::custom(format!(
                        "{v:?} is not an integer or a percentage like \"25%\""
                    ))
                };
                match v.strip_suffix('%') {
                    Some(p) => {
                        let p: u32 = p.trim().parse().map_err(|_| bad())?;
                        if p > 100 {
                            return Err(E::custom(format!("{v:?} is more than 100%")));
                        }
                        Ok(IntOrPercent::Percent(p))
                    }
                    None => v.trim().parse().map(IntOrPercent::Int).map_err(|_| bad()),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for IntOrPercent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrPercent::Int(n) => s.serialize_u32(*n),
            IntOrPercent::Percent(_) => s.collect_str(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_like_kubernetes() {
        let p = IntOrPercent::Percent(25);
        assert_eq!(p.resolve(3, Rounding::Up), 1);
        assert_eq!(p.resolve(3, Rounding::Down), 0);
        assert_eq!(p.resolve(8, Rounding::Up), 2);
        assert_eq!(IntOrPercent::Int(2).resolve(100, Rounding::Down), 2);
    }

    #[test]
    fn reads_ints_and_percent_strings() {
        let v: Vec<IntOrPercent> = serde_json::from_str(r#"[1, "25%", "3"]"#).expect("parse");
        assert_eq!(
            v,
            vec![
                IntOrPercent::Int(1),
                IntOrPercent::Percent(25),
                IntOrPercent::Int(3)
            ]
        );
        assert!(serde_json::from_str::<IntOrPercent>(r#""150%""#).is_err());
        assert!(serde_json::from_str::<IntOrPercent>("-1").is_err());
    }
}
