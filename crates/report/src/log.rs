//! `tidegate audit log` output and the exports for log pipelines.

use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use tidegate_audit::time::{format_duration, format_ms};
use tidegate_audit::{Action, Outcome, Phase, Record};

/// `s` with every control character (C0, DEL, C1) and bidirectional
/// override shown as an escape (`\n`, `\x1b`, `\u{202e}`), so text from the
/// log cannot move the cursor, recolour the terminal or forge a row.
pub fn escape_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if ('\u{80}'..='\u{9f}').contains(&c)
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A fixed-width table, one line per record; control characters in
/// recorded text are escaped ([`escape_control`]).
pub fn table(records: &[Record]) -> String {
    let rows: Vec<[String; 9]> = records
        .iter()
        .map(|r| {
            let e = &r.entry;
            [
                r.seq.to_string(),
                format_ms(r.time_ms),
                e.environment.clone().unwrap_or_else(|| "-".into()),
                e.cluster.clone().unwrap_or_else(|| "-".into()),
                e.app.clone().unwrap_or_else(|| "-".into()),
                match r.phase {
                    Phase::Intent => format!("{} (intent)", e.action),
                    _ => e.action.to_string(),
                },
                e.outcome
                    .map(|o| o.as_str().to_string())
                    .unwrap_or_else(|| "-".into()),
                e.to.as_ref()
                    .map(|t| t.sha.chars().take(12).collect())
                    .unwrap_or_else(|| "-".into()),
                {
                    let mut tail = format!("{} via {}", e.actor.identity, e.actor.trigger.as_str());
                    if let Some(d) = e.duration_ms {
                        let _ = write!(tail, ", {}", format_duration(d as i64));
                    }
                    if let Some(m) = &e.message {
                        let _ = write!(tail, ": {}", m.replace('\n', " "));
                    }
                    tail
                },
            ]
            .map(|cell| escape_control(&cell))
        })
        .collect();
    let header = [
        "SEQ",
        "TIME",
        "ENV",
        "CLUSTER",
        "APP",
        "ACTION",
        "OUTCOME",
        "REVISION",
        "ACTOR / MESSAGE",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[&str], out: &mut String| {
        let last = cells.len() - 1;
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                let _ = write!(out, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push('\n');
    };
    line(&header, &mut out);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells, &mut out);
    }
    out
}

/// One JSON object per record, with `@timestamp` (RFC 3339, ms) first so
/// Filebeat/Logstash pick up the event time as is.
pub fn jsonl_line(r: &Record) -> String {
    let mut map = Map::new();
    map.insert(
        "@timestamp".into(),
        Value::String(format_ms_millis(r.time_ms)),
    );
    if let Ok(Value::Object(rest)) = serde_json::to_value(r) {
        map.extend(rest);
    }
    Value::Object(map).to_string()
}

fn format_ms_millis(ms: i64) -> String {
    let base = format_ms(ms.div_euclid(1000) * 1000);
    format!("{}.{:03}Z", base.trim_end_matches('Z'), ms.rem_euclid(1000))
}

/// The CDEvents spec version the export follows.
pub const CDEVENTS_SPEC_VERSION: &str = "0.4.1";

/// A CDEvent (spec 0.4.1) for records that change what runs:
/// successful `rollout-end` → `service.deployed`, successful `rollback` or
/// `switch-reverted` outcome → `service.rolledback`, successful `switch`
/// outcome → `service.upgraded`. Other records give `None`.
pub fn cdevent(r: &Record, source: &str) -> Option<Value> {
    if r.phase != Phase::Outcome || r.entry.outcome != Some(Outcome::Success) {
        return None;
    }
    let e = &r.entry;
    let predicate = match e.action {
        Action::RolloutEnd => "deployed",
        Action::Rollback | Action::SwitchReverted => "rolledback",
        Action::Switch => "upgraded",
        _ => return None,
    };
    let env = e.environment.clone().unwrap_or_else(|| "default".into());
    let app = e.app.clone().unwrap_or_else(|| env.clone());
    let service_id = match &e.cluster {
        Some(c) => format!("{env}/{c}/{app}"),
        None => format!("{env}/{app}"),
    };
    let version = e.to.as_ref().map(|t| t.sha.clone()).unwrap_or_default();
    let artifact = if version.is_empty() {
        format!("pkg:generic/{app}")
    } else {
        format!("pkg:generic/{app}@{version}")
    };
    Some(json!({
        "context": {
            "specversion": CDEVENTS_SPEC_VERSION,
            "id": format!("tidegate-audit-{}-{}", r.seq, &r.hash[..r.hash.len().min(16)]),
            "source": source,
            "type": format!("dev.cdevents.service.{predicate}.0.2.0"),
            "timestamp": format_ms_millis(r.time_ms),
        },
        "subject": {
            "id": service_id,
            "source": source,
            "type": "service",
            "content": {
                "environment": { "id": env, "source": source },
                "artifactId": artifact,
            }
        },
        "customDataContentType": "application/json",
        "customData": {
            "tidegate": {
                "seq": r.seq,
                "hash": r.hash,
                "operation": r.operation,
                "cluster": e.cluster,
                "actor": e.actor.identity,
                "trigger": e.actor.trigger.as_str(),
                "durationMs": e.duration_ms,
                "manifestDigest": e.manifest_digest,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::escape_control;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(
            escape_control("ok\r\x1b[2K42  forged row\n\u{202e}x\u{9b}"),
            "ok\\r\\x1b[2K42  forged row\\n\\u{202e}x\\u{9b}"
        );
        assert_eq!(escape_control("plain – text ü"), "plain – text ü");
    }
}
