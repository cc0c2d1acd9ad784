//! Report renderers: Markdown, HTML (one self-contained file), JSON, CSV.

use crate::model::{Report, TimelineItem};
use askama::Template;
use std::fmt::Write as _;
use tidegate_audit::Record;
use tidegate_audit::time::{format_duration, format_ms};

/// A report output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// GitHub-flavoured Markdown.
    Markdown,
    /// One HTML file with inline CSS and SVG, no scripts, no external assets.
    Html,
    /// Pretty JSON of the [`Report`].
    Json,
    /// CSV: one row per log entry of the window.
    Csv,
}

/// A rendering failure (templates are compiled in, so only writing fails).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template engine failed (the cause is part of the message).
    #[error("rendering the report failed: {0}")]
    Template(askama::Error),
    /// JSON serialisation failed (the cause is part of the message).
    #[error("rendering the report failed: {0}")]
    Json(serde_json::Error),
}

impl From<askama::Error> for RenderError {
    fn from(e: askama::Error) -> Self {
        RenderError::Template(e)
    }
}

impl From<serde_json::Error> for RenderError {
    fn from(e: serde_json::Error) -> Self {
        RenderError::Json(e)
    }
}

/// One DORA metric, as shown.
pub struct Metric {
    /// Name.
    pub name: &'static str,
    /// Value.
    pub value: String,
    /// Definition.
    pub definition: &'static str,
}

fn metrics(r: &Report) -> Vec<Metric> {
    let d = &r.dora;
    let dur = |v: Option<i64>| v.map(format_duration).unwrap_or_else(|| "n/a".into());
    vec![
        Metric {
            name: "Deployment frequency",
            value: format!(
                "{:.2}/day ({} in {:.0} days)",
                d.deployments_per_day, d.deployments, d.window_days
            ),
            definition: "rollouts that ended in success, per day of the window",
        },
        Metric {
            name: "Lead time for changes",
            value: format!(
                "{} median, {} p90",
                dur(d.lead_time_median_ms),
                dur(d.lead_time_p90_ms)
            ),
            definition: "from the commit time of the target revision to the successful rollout-end (every cluster Healthy)",
        },
        Metric {
            name: "Change failure rate",
            value: match d.change_failure_rate {
                Some(rate) => format!(
                    "{:.0}% ({} of {})",
                    rate * 100.0,
                    d.failed_changes,
                    d.changes
                ),
                None => "n/a".into(),
            },
            definition: "finished rollouts that failed, or were rolled back before the next rollout, over all finished rollouts",
        },
        Metric {
            name: "Time to restore service",
            value: match d.time_to_restore_median_ms {
                Some(ms) => format!("{} median ({} restores)", format_duration(ms), d.restores),
                None => "n/a (no failure was restored in the window)".into(),
            },
            definition: "from a failed rollout (or the rollback of a bad one) to the next successful rollout or rollback",
        },
    ]
}

fn interrupted_rows(r: &Report) -> Vec<(String, TimelineItem)> {
    let mut out = Vec::new();
    for env in &r.environments {
        for i in &env.items {
            if i.outcome == "interrupted" {
                out.push((env.environment.clone(), i.clone()));
            }
        }
    }
    out
}

#[derive(Template)]
#[template(path = "report.md", escape = "none")]
struct MarkdownTemplate<'a> {
    r: &'a Report,
    metrics: Vec<Metric>,
    interrupted: Vec<(String, TimelineItem)>,
}

#[derive(Template)]
#[template(path = "report.html")]
struct HtmlTemplate<'a> {
    r: &'a Report,
    metrics: Vec<Metric>,
    interrupted: Vec<(String, TimelineItem)>,
    timeline_svg: String,
    rollbacks_svg: String,
}

/// A Markdown table cell from text the log holds (written by whoever ran a
/// command): no pipes or line breaks, no raw HTML, links or code spans, and
/// control characters escaped.
pub fn md_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in crate::log::escape_control(&s.replace(['\n', '\r'], " ")).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' | '[' | ']' | '`' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn md_safe(r: &Report) -> Report {
    let mut r = r.clone();
    for env in &mut r.environments {
        for i in &mut env.items {
            i.message = md_cell(&i.message);
            i.actor = md_cell(&i.actor);
            i.cluster = md_cell(&i.cluster);
            i.app = md_cell(&i.app);
        }
    }
    r
}

/// Renders `report` in `format`; `records` are the window's entries (CSV only).
pub fn render(report: &Report, records: &[Record], format: Format) -> Result<String, RenderError> {
    match format {
        Format::Markdown => {
            let safe = md_safe(report);
            Ok(MarkdownTemplate {
                metrics: metrics(&safe),
                interrupted: interrupted_rows(&safe),
                r: &safe,
            }
            .render()?)
        }
        Format::Html => Ok(HtmlTemplate {
            r: report,
            metrics: metrics(report),
            interrupted: interrupted_rows(report),
            timeline_svg: timeline_svg(report),
            rollbacks_svg: rollbacks_svg(report),
        }
        .render()?),
        Format::Json => Ok(serde_json::to_string_pretty(report)? + "\n"),
        Format::Csv => Ok(csv(records)),
    }
}

/// XML/HTML text escaping for hand-built SVG.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The rollout timeline: one lane per cluster, one `<g class="rollout">`
/// per rollout holding a circle on each lane it touched.
fn timeline_svg(r: &Report) -> String {
    let mut lanes: Vec<&str> = r
        .rollouts
        .iter()
        .flat_map(|m| m.lanes.iter().map(String::as_str))
        .collect();
    lanes.sort_unstable();
    lanes.dedup();
    let (left, width, row) = (190.0, 960.0, 28.0);
    let height = 30.0 + row * lanes.len().max(1) as f64 + 20.0;
    let span = (r.until_ms - r.since_ms).max(1) as f64;
    let x = |t: i64| left + (t - r.since_ms) as f64 / span * (width - left - 10.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="rollout-timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="Rollouts per cluster over time">"#
    );
    let _ = write!(
        s,
        r#"<text x="{left}" y="14">{}</text><text x="{}" y="14" text-anchor="end">{}</text>"#,
        xml_escape(&r.since),
        width - 10.0,
        xml_escape(&r.until)
    );
    for (i, lane) in lanes.iter().enumerate() {
        let y = 30.0 + row * i as f64 + row / 2.0;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><line class="lane" x1="{left}" y1="{y}" x2="{}" y2="{y}"/>"#,
            left - 8.0,
            y + 4.0,
            xml_escape(lane),
            width - 10.0
        );
    }
    if lanes.is_empty() {
        let _ = write!(
            s,
            r#"<text x="{left}" y="48">No rollouts in this window.</text>"#
        );
    }
    for m in &r.rollouts {
        let _ = write!(
            s,
            r#"<g class="rollout" data-seq="{}" data-outcome="{}">"#,
            m.seq,
            xml_escape(&m.outcome)
        );
        for lane in &m.lanes {
            let i = lanes.iter().position(|l| l == lane).unwrap_or(0);
            let y = 30.0 + row * i as f64 + row / 2.0;
            let _ = write!(
                s,
                r#"<circle class="{}" cx="{:.1}" cy="{y}" r="6"><title>rollout {} {} {}: {}</title></circle>"#,
                xml_escape(&m.outcome),
                x(m.time_ms),
                m.seq,
                xml_escape(lane),
                format_ms(m.time_ms),
                xml_escape(&m.outcome)
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

/// Rollbacks per 7-day bucket as bars.
fn rollbacks_svg(r: &Report) -> String {
    let weeks = &r.rollbacks_per_week;
    let max = weeks.iter().map(|w| w.rollbacks).max().unwrap_or(0).max(1) as f64;
    let (bar, gap, chart) = (48.0, 16.0, 140.0);
    let width = 40.0 + (bar + gap) * weeks.len().max(1) as f64;
    let height = chart + 50.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="rollbacks-per-week" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="Rollbacks per week">"#
    );
    let _ = write!(
        s,
        r#"<line class="lane" x1="24" y1="{base}" x2="{}" y2="{base}"/>"#,
        width - 4.0,
        base = 10.0 + chart
    );
    for (i, w) in weeks.iter().enumerate() {
        let h = w.rollbacks as f64 / max * chart;
        let x = 30.0 + (bar + gap) * i as f64;
        let y = 10.0 + chart - h;
        let _ = write!(
            s,
            r#"<rect class="bar" x="{x}" y="{y:.1}" width="{bar}" height="{h:.1}"><title>week of {}: {} rollbacks</title></rect><text x="{}" y="{:.1}" text-anchor="middle">{}</text><text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            xml_escape(&w.week_of),
            w.rollbacks,
            x + bar / 2.0,
            y - 3.0,
            w.rollbacks,
            x + bar / 2.0,
            chart + 28.0,
            xml_escape(w.week_of.get(5..).unwrap_or(&w.week_of))
        );
    }
    s.push_str("</svg>");
    s
}

/// A CSV field, quoted when needed (RFC 4180), control characters escaped
/// (one record per line, nothing for a terminal to obey). A field that a spreadsheet
/// would read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, so opening an export runs nothing.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{}", crate::log::escape_control(s))
    } else {
        crate::log::escape_control(s)
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// CSV: a header, then one row per record.
pub fn csv(records: &[Record]) -> String {
    let mut out = String::from(
        "seq,time,phase,operation,environment,cluster,app,action,outcome,duration_ms,actor,trigger,from,to,manifest_digest,objects_changed,message,hash\n",
    );
    for r in records {
        let e = &r.entry;
        let fields = [
            r.seq.to_string(),
            format_ms(r.time_ms),
            r.phase.as_str().to_string(),
            r.operation.map(|o| o.to_string()).unwrap_or_default(),
            e.environment.clone().unwrap_or_default(),
            e.cluster.clone().unwrap_or_default(),
            e.app.clone().unwrap_or_default(),
            e.action.to_string(),
            e.outcome
                .map(|o| o.as_str().to_string())
                .unwrap_or_default(),
            e.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
            e.actor.identity.clone(),
            e.actor.trigger.as_str().to_string(),
            e.from.as_ref().map(|v| v.sha.clone()).unwrap_or_default(),
            e.to.as_ref().map(|v| v.sha.clone()).unwrap_or_default(),
            e.manifest_digest.clone().unwrap_or_default(),
            e.objects
                .as_ref()
                .map(|o| o.changed().to_string())
                .unwrap_or_default(),
            e.message.clone().unwrap_or_default(),
            r.hash.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{csv_field, md_cell};

    #[test]
    fn csv_cells_that_spreadsheets_would_evaluate_are_neutralised() {
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-2+3"), "'-2+3");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tcmd"), "'\\tcmd");
        assert_eq!(csv_field("\rcmd"), "'\\rcmd");
        assert_eq!(csv_field("two\nlines"), "two\\nlines");
        assert_eq!(csv_field("ok, fine"), "\"ok, fine\"");
        assert_eq!(csv_field("a=b"), "a=b");
    }

    #[test]
    fn markdown_cells_carry_no_html_or_markup() {
        assert_eq!(
            md_cell("<img src=x onerror=alert(1)> & [a](javascript:x) `c` |"),
            "&lt;img src=x onerror=alert(1)&gt; &amp; \\[a\\](javascript:x) \\`c\\` \\|"
        );
        assert_eq!(md_cell("line\nbreak\x1b[2J"), "line break\\\\x1b\\[2J");
    }
}
