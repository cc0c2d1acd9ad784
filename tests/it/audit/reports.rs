//! Reports on a fixed log: golden Markdown and JSON, CSV, exports, the
//! "what ran where" query, and the HTML report in headless Chromium.

use super::{DAY, T0, temp_db};
use tidegate_audit::{MemorySink, Record, fixture};
use tidegate_report::{Format, ReportOptions, build, log, render, running_at};

fn fixed_log() -> (Vec<Record>, fixture::FleetLog) {
    let sink = MemorySink::new();
    let written = fixture::fleet_log(&sink, T0 + 3_600_000, DAY, 12, true).expect("fixture");
    (sink.records(), written)
}

fn options() -> ReportOptions {
    ReportOptions {
        since_ms: T0,
        until_ms: T0 + 14 * DAY,
        environment: Some("prod".into()),
    }
}

#[test]
fn markdown_report_golden() {
    let (records, _) = fixed_log();
    let report = build(&records, &options());
    let md = render(&report, &records, Format::Markdown).expect("render");
    insta::assert_snapshot!("audit_report_md", md);
}

#[test]
fn json_report_golden() {
    let (records, written) = fixed_log();
    let report = build(&records, &options());
    assert_eq!(report.summary.rollouts, written.rollouts);
    assert_eq!(report.summary.rollbacks, written.rollbacks);
    assert_eq!(report.summary.interrupted, 1);
    let json = render(&report, &records, Format::Json).expect("render");
    insta::assert_snapshot!("audit_report_json", json);
}

#[test]
fn csv_has_one_row_per_entry() {
    let (records, written) = fixed_log();
    let csv = render(&build(&records, &options()), &records, Format::Csv).expect("csv");
    assert_eq!(csv.lines().count() as u64, written.entries + 1);
    assert!(csv.starts_with("seq,time,phase"));
}

#[test]
fn what_ran_where_at_a_time() {
    let (records, _) = fixed_log();
    // Before anything: nothing known.
    assert!(running_at(&records, T0).is_empty());
    // After rollout 0 (day 0) every cluster runs its target revision.
    let at = running_at(&records, T0 + 12 * 3_600_000);
    assert_eq!(at.len(), 3, "{at:#?}");
    let rollout0 = records
        .iter()
        .find(|r| r.entry.action == tidegate_audit::Action::RolloutStart)
        .and_then(|r| r.entry.to.clone())
        .expect("rollout");
    assert!(at.iter().all(|r| r.revision == rollout0.sha), "{at:#?}");
    // Rollout 3 failed on the canary and was rolled back there.
    let day3 = running_at(&records, T0 + 3 * DAY + 20 * 3_600_000);
    let eks = day3
        .iter()
        .find(|r| r.cluster == "eks-us-east-1")
        .expect("eks");
    assert_eq!(eks.via, "rollback");
}

#[test]
fn exports_jsonl_and_cdevents() {
    let (records, written) = fixed_log();
    let lines: Vec<String> = records.iter().map(log::jsonl_line).collect();
    assert_eq!(lines.len() as u64, written.entries);
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert!(v["@timestamp"].as_str().expect("ts").ends_with('Z'));
        assert!(v["hash"].as_str().is_some());
    }
    let events: Vec<serde_json::Value> = records
        .iter()
        .filter_map(|r| log::cdevent(r, "/tidegate/test"))
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["context"]["type"].as_str().expect("type"))
        .collect();
    assert!(types.contains(&"dev.cdevents.service.deployed.0.2.0"));
    assert!(types.contains(&"dev.cdevents.service.rolledback.0.2.0"));
    assert!(types.contains(&"dev.cdevents.service.upgraded.0.2.0"));
    for e in &events {
        assert_eq!(e["context"]["specversion"], "0.4.1");
        assert_eq!(e["subject"]["type"], "service");
        assert!(e["subject"]["content"]["environment"]["id"].is_string());
        assert!(
            e["subject"]["content"]["artifactId"]
                .as_str()
                .expect("artifact")
                .starts_with("pkg:generic/")
        );
    }
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let (records, written) = fixed_log();
    let report = build(&records, &options());
    let html = render(&report, &records, Format::Html).expect("html");
    // Self-contained: no scripts, no external references.
    assert!(!html.contains("<script"), "scripts in the report");
    let external = html
        .replace("http://www.w3.org/2000/svg", "")
        .contains("http");
    assert!(!external, "external reference in the report");

    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(chromium) = chromium else {
        if std::env::var("TIDEGATE_SKIP_CHROMIUM").as_deref() == Ok("1") {
            eprintln!("chromium not installed; skipped (TIDEGATE_SKIP_CHROMIUM=1)");
            return;
        }
        panic!(
            "chromium is not installed: `apt-get install chromium` (Debian), or set TIDEGATE_SKIP_CHROMIUM=1 to skip this test"
        );
    };
    let (dir, _) = temp_db();
    let file = dir.path().join("report.html");
    std::fs::write(&file, &html).expect("write");
    let profile = dir.path().join("profile");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    for bad in ["Uncaught", "Failed to load resource", "ERR_FILE_NOT_FOUND"] {
        assert!(!stderr.contains(bad), "browser error {bad}: {stderr}");
    }
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("id=\"rollout-timeline\""),
        "no timeline in the DOM"
    );
    assert!(
        dom.contains("id=\"rollbacks-per-week\""),
        "no bar chart in the DOM"
    );
    let marks = dom.matches("<g class=\"rollout\"").count() as u64;
    assert_eq!(marks, written.rollouts, "one mark per rollout");
    assert!(dom.matches("<rect class=\"bar\"").count() >= 2);
}
