//! Durations written the way Kubernetes and Go write them: `90s`, `10m`, `1h30m`, `500ms`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr, time::Duration};

/// A duration parsed from Go syntax (`1h30m`, `45s`, `250ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

/// The longest duration Go can represent (`math.MaxInt64` nanoseconds, about
/// 292 years); longer ones are refused as Go's `time.ParseDuration` does.
const MAX: Duration = Duration::from_nanos(i64::MAX as u64);

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (write it like 30s, 10m, 1h30m or 500ms)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: s.to_string(),
            reason,
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| err("a number needs a unit"))?;
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let number: f64 = rest[..digits].parse().map_err(|_| err("not a number"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let seconds_per_unit = match &rest[..unit_len] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(err("unknown unit (use ms, s, m or h)")),
            };
            let part = Duration::try_from_secs_f64(number * seconds_per_unit)
                .map_err(|_| err("too long (at most 2562047h, as in Go)"))?;
            total = total
                .checked_add(part)
                .filter(|t| *t <= MAX)
                .ok_or_else(|| err("too long (at most 2562047h, as in Go)"))?;
            rest = &rest[unit_len..];
        }
        Ok(GoDuration(total))
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_millis();
        if total == 0 {
            return f.write_str("0s");
        }
        let (h, m, s, ms) = (
            total / 3_600_000,
            total / 60_000 % 60,
            total / 1000 % 60,
            total % 1000,
        );
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let p = |s: &str| s.parse::<GoDuration>().map(|d| d.0);
        assert_eq!(p("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(p("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(p("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(p("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(p("0"), Ok(Duration::ZERO));
        assert!(p("10").is_err());
        assert!(p("10 minutes").is_err());
        assert!(p("").is_err());
        assert!(p("m").is_err());
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        let p = |s: &str| s.parse::<GoDuration>();
        for huge in [
            "99999999999999999999999h",
            "5000000000000000h5000000000000000h",
            "2562048h",
            "9".repeat(400).as_str(),
        ] {
            let input = if huge.ends_with('h') {
                huge.to_string()
            } else {
                format!("{huge}s")
            };
            let err = p(&input).expect_err(&input);
            assert!(err.to_string().contains("too long"), "{err}");
        }
        assert_eq!(p("2562047h").map(|d| d.0.as_secs()), Ok(2_562_047 * 3600));
    }

    #[test]
    fn displays_round_trip() {
        for s in ["1h30m", "10m", "45s", "250ms", "0s"] {
            assert_eq!(s.parse::<GoDuration>().map(|d| d.to_string()), Ok(s.into()));
        }
    }
}
