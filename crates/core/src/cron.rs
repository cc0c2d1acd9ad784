//! Cron expressions (the five fields of crontab(5)) and when they fire, in a
//! time zone.
//!
//! `minute hour day-of-month month day-of-week`, each `*`, a number, a range
//! `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a list of those separated by
//! commas; months `JAN`–`DEC` and days `SUN`–`SAT` by name too, Sunday as 0
//! or 7. The macros `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/
//! `@midnight` and `@hourly` stand for their usual expressions. As in Vixie
//! cron, when both day fields are restricted a day matches either of them.
//!
//! Times are wall-clock times of the zone: a time that does not exist (the
//! hour skipped when clocks go forward) fires at the same offset after the
//! gap (02:30 becomes 03:30); a time that happens twice (when clocks go back)
//! fires the first time only.

use jiff::{
    Timestamp, ToSpan,
    civil::{Date, DateTime},
    tz::TimeZone,
};
use std::{fmt, str::FromStr};

/// Why a cron expression could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron expression {input:?}: {reason}")]
pub struct CronError {
    input: String,
    reason: String,
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Day-of-month was `*` (or a step over the whole range).
    days_any: bool,
    /// Day-of-week was `*`.
    weekdays_any: bool,
}

/// How far ahead [`Cron::next_after`] looks: 28 years covers every
/// combination of leap day and weekday.
const HORIZON_DAYS: i32 = 28 * 366;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One field's allowed range and names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        names_from: 0,
    },
];

impl Field {
    fn value(&self, s: &str) -> Result<u32, String> {
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(self.names_from + i as u32);
        }
        let v: u32 = s.parse().map_err(|_| {
            format!(
                "{} {s:?} is not a number{}",
                self.name,
                if self.names.is_empty() {
                    String::new()
                } else {
                    format!(" or a name ({}…)", self.names[..3].join(", "))
                }
            )
        })?;
        if v < self.min || v > self.max {
            return Err(format!(
                "{} {v} is outside {}-{}",
                self.name, self.min, self.max
            ));
        }
        Ok(v)
    }

    /// The set of values as a bit mask, and whether it was `*`.
    fn parse(&self, text: &str) -> Result<(u64, bool), String> {
        let mut bits = 0u64;
        let mut any = false;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("{} step {s:?} is not a positive number", self.name)
                    })?;
                    (r, step)
                }
                None => (part, 1),
            };
            let (lo, hi) = if range == "*" {
                if step == 1 {
                    any = true;
                }
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!("{} range {range:?} goes backwards", self.name));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                // `a/n` means from a to the end, every n.
                (a, if part.contains('/') { self.max } else { a })
            };
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok((bits, any))
    }
}

impl FromStr for Cron {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| CronError {
            input: s.to_string(),
            reason,
        };
        let expanded = match s.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(err(
                    "unknown macro (use @yearly, @monthly, @weekly, @daily or @hourly)".into(),
                ));
            }
            other => other,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = parts[..] else {
            return Err(err(format!(
                "{} fields; write five: minute hour day-of-month month day-of-week",
                parts.len()
            )));
        };
        let [f_min, f_hour, f_day, f_month, f_weekday] = &FIELDS;
        let (minutes, _) = f_min.parse(minute).map_err(err)?;
        let (hours, _) = f_hour.parse(hour).map_err(err)?;
        let (days, days_any) = f_day.parse(day).map_err(err)?;
        let (months, _) = f_month.parse(month).map_err(err)?;
        let (mut weekdays, weekdays_any) = f_weekday.parse(weekday).map_err(err)?;
        // Sunday is 0 and 7.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Cron {
            text: s.trim().to_string(),
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_any,
            weekdays_any,
        })
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Cron {
    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let day = self.days & (1 << date.day()) != 0;
        let weekday = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_any, self.weekdays_any) {
            (true, true) => true,
            (true, false) => weekday,
            (false, true) => day,
            (false, false) => day || weekday,
        }
    }

    /// The first time strictly after `after` at which the expression fires
    /// in `tz`; `None` when it never fires within 28 years (e.g. `0 0 31 2 *`).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(tz.clone()).datetime();
        let start_minute = DateTime::from_parts(
            start.date(),
            jiff::civil::time(start.hour(), start.minute(), 0, 0),
        );
        let mut date = start.date();
        for _ in 0..HORIZON_DAYS {
            if self.day_matches(date) {
                for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                    for minute in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                        let civil = date.at(hour, minute, 0, 0);
                        if civil <= start_minute {
                            continue;
                        }
                        let Ok(zoned) = tz.to_ambiguous_zoned(civil).compatible() else {
                            continue;
                        };
                        if zoned.timestamp() > after {
                            return Some(zoned.timestamp());
                        }
                    }
                }
            }
            date = date.checked_add(1.day()).ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn next(cron: &str, after: &str, tz: &str) -> String {
        let tz = TimeZone::get(tz).expect("zone");
        cron.parse::<Cron>()
            .expect("cron")
            .next_after(at(after), &tz)
            .map(|t| t.to_zoned(tz).to_string())
            .unwrap_or_default()
    }

    #[test]
    fn fires_at_the_next_matching_minute() {
        assert_eq!(
            next("* * * * *", "2026-12-01T10:00:00Z", "UTC"),
            "2026-12-01T10:01:00+00:00[UTC]"
        );
        assert_eq!(
            next("* * * * *", "2026-12-01T10:00:30Z", "UTC"),
            "2026-12-01T10:01:00+00:00[UTC]"
        );
        assert_eq!(
            next("30 22 * * 1-5", "2026-12-04T23:00:00Z", "Europe/Berlin"),
            "2026-12-07T22:30:00+01:00[Europe/Berlin]"
        );
        assert_eq!(
            next("*/15 9-17 * * *", "2026-12-01T17:50:00Z", "UTC"),
            "2026-12-02T09:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 0 29 FEB *", "2026-03-01T00:00:00Z", "UTC"),
            "2028-02-29T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("@weekly", "2026-12-01T00:00:00Z", "UTC"),
            "2026-12-06T00:00:00+00:00[UTC]"
        );
    }

    #[test]
    fn either_day_field_matches_when_both_are_restricted() {
        // The 15th or a Monday, as Vixie cron reads it.
        assert_eq!(
            next("0 0 15 * MON", "2026-12-01T00:00:00Z", "UTC"),
            "2026-12-07T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 0 15 * 7", "2026-12-08T00:00:00Z", "UTC"),
            "2026-12-13T00:00:00+00:00[UTC]"
        );
    }

    #[test]
    fn wall_clock_times_across_daylight_saving_changes() {
        // 2026-03-29 02:30 does not exist in Berlin: it fires at 03:30 CEST.
        assert_eq!(
            next("30 2 * * *", "2026-03-28T12:00:00Z", "Europe/Berlin"),
            "2026-03-29T03:30:00+02:00[Europe/Berlin]"
        );
        // 2026-10-25 02:30 happens twice: only the first (CEST) counts.
        assert_eq!(
            next("30 2 * * *", "2026-10-24T12:00:00Z", "Europe/Berlin"),
            "2026-10-25T02:30:00+02:00[Europe/Berlin]"
        );
        assert_eq!(
            next("30 2 * * *", "2026-10-25T00:31:00Z", "Europe/Berlin"),
            "2026-10-26T02:30:00+01:00[Europe/Berlin]"
        );
    }

    #[test]
    fn never_is_none() {
        assert_eq!(next("0 0 31 2 *", "2026-01-01T00:00:00Z", "UTC"), "");
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (text, says) in [
            ("* * * *", "4 fields"),
            ("60 * * * *", "minute 60 is outside 0-59"),
            ("* 24 * * *", "hour 24"),
            ("* * 0 * *", "day of month 0"),
            ("* * * FOO *", "month \"FOO\" is not a number or a name"),
            ("*/0 * * * *", "step \"0\""),
            ("5-1 * * * *", "goes backwards"),
            ("@often", "unknown macro"),
            ("* * * * 8", "day of week 8"),
        ] {
            let e = text.parse::<Cron>().expect_err(text).to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
