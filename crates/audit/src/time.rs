//! Times as the log and its commands spell them.

/// Parses a point in time for `--since`, `--until`, `--at`: RFC 3339
/// (`2026-11-25T12:00:00Z`), a date (`2026-11-25`, midnight UTC), `now`, or
/// an age before `now_ms` (`30d`, `12h`, `90m`, `45s`, `2w`).
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    if let Some(unit) = t.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        let digits = &t[..t.len() - 1];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = digits
                .parse()
                .map_err(|_| format!("`{t}`: number too large"))?;
            let unit_ms: i64 = match unit {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 7 * 86_400_000,
                _ => {
                    return Err(format!(
                        "`{t}`: unknown unit `{unit}` (use s, m, h, d or w)"
                    ));
                }
            };
            return Ok(now_ms.saturating_sub(n.saturating_mul(unit_ms)));
        }
    }
    let full = if t.len() == 10 && t.as_bytes().get(4) == Some(&b'-') {
        format!("{t}T00:00:00Z")
    } else {
        t.to_string()
    };
    full.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_millisecond())
        .map_err(|e| {
            format!("`{t}` is neither RFC 3339 (2026-11-25T12:00:00Z), a date, nor an age like 30d or 12h: {e}")
        })
}

/// `2026-11-25T12:00:00Z` (UTC, seconds).
pub fn format_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => ms.to_string(),
    }
}

/// `2026-11-25` (UTC).
pub fn format_date(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%d").to_string(),
        Err(_) => ms.to_string(),
    }
}

/// `1h 02m`, `3m 05s`, `850ms`.
pub fn format_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let s = ms / 1_000;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m {:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h {:02}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("30d", now), Ok(now - 30 * 86_400_000));
        assert_eq!(parse_time("12h", now), Ok(now - 12 * 3_600_000));
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(
            parse_time("2026-11-25T12:00:00Z", now).map(format_ms),
            Ok("2026-11-25T12:00:00Z".to_string())
        );
        assert_eq!(
            parse_time("2026-11-25", now).map(format_ms),
            Ok("2026-11-25T00:00:00Z".to_string())
        );
        assert!(parse_time("3y", now).is_err());
        assert!(parse_time("yesterday", now).is_err());
        assert_eq!(format_duration(62_000), "1m 02s");
    }
}
