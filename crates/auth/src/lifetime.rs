//! How long a token lives: `--expires 30d`.

/// The longest lifetime a token may be given (10 years).
pub const MAX_SECONDS: i64 = 3650 * 86_400;

/// Reads a lifetime: a whole number and a unit (`d`ays, `h`ours,
/// `m`inutes, `s`econds), e.g. `30d`, `12h`; or `never`. Returns seconds,
/// `None` for `never`.
pub fn parse(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text == "never" {
        return Ok(None);
    }
    let bad = || {
        format!(
            "`{text}` is not a lifetime: use a whole number and d, h, m or s (e.g. 30d, 12h), or `never`"
        )
    };
    let unit = text.chars().last().ok_or_else(bad)?;
    let scale: i64 = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(bad()),
    };
    let number: i64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    let seconds = number.checked_mul(scale).ok_or_else(bad)?;
    if seconds <= 0 {
        return Err(format!("`{text}`: a lifetime must be positive"));
    }
    if seconds > MAX_SECONDS {
        return Err(format!(
            "`{text}`: at most 3650d; use `never` for no expiry"
        ));
    }
    Ok(Some(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_in_days_hours_minutes_seconds_or_never() {
        assert_eq!(parse("30d"), Ok(Some(30 * 86_400)));
        assert_eq!(parse("12h"), Ok(Some(43_200)));
        assert_eq!(parse("90m"), Ok(Some(5_400)));
        assert_eq!(parse("1s"), Ok(Some(1)));
        assert_eq!(parse("never"), Ok(None));
    }

    #[test]
    fn bad_lifetimes_say_how_to_write_one() {
        for text in [
            "",
            "30",
            "d",
            "-1d",
            "0d",
            "1.5d",
            "1w",
            "99999999999999999d",
            "3651d",
        ] {
            let err = parse(text).expect_err(text);
            assert!(
                err.contains("lifetime") || err.contains("3650d"),
                "{text}: {err}"
            );
        }
    }
}
