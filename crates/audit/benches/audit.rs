//! Audit store benchmarks (a plain bench binary: each figure is the median
//! of a few runs, since the data sets are too large for criterion's
//! sampling).
//!
//! `cargo bench -p tidegate-audit --bench audit` runs:
//! - append: operations of 1 intent + 20 steps + 1 outcome, with fsync per
//!   intent and outcome and one transaction for the steps (target ≥ 5,000
//!   entries/s), and single appends (one transaction each) for comparison;
//! - verify: the whole chain of 1,000,000 entries (target < 5 s);
//! - report: a 30-day Markdown and HTML report over 100,000 entries,
//!   reading them from the database (target < 2 s).
//!
//! TIDEGATE_BENCH_VERIFY_ENTRIES changes the 1,000,000 (e.g. for a quick run).

#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Instant;
use tidegate_audit::{
    Action, Actor, AuditSink, Entry, Filter, Outcome, Revision, SqliteStore, Trigger, fixture,
};

const RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn step(i: u64) -> Entry {
    let mut e = Entry::new(
        Actor::new("bench@host", Trigger::ControllerPoll),
        Action::Apply,
    )
    .env("prod")
    .cluster("eks-us-east-1")
    .app("gin-app")
    .outcome(Outcome::Success)
    .revisions(
        Some(Revision::sha("1111111111111111111111111111111111111111")),
        Some(Revision::sha("2222222222222222222222222222222222222222")),
    );
    e.manifest_digest = Some(format!("sha256:{:064x}", i));
    e.duration_ms = Some(1234);
    e
}

fn bench_append(dir: &std::path::Path) {
    let mut rates = Vec::new();
    for run in 0..RUNS {
        let store = SqliteStore::open(&dir.join(format!("append-{run}.db"))).unwrap();
        let ops = 100;
        let start = Instant::now();
        for o in 0..ops {
            let op = store
                .begin_operation(
                    Entry::new(Actor::new("bench@host", Trigger::Cli), Action::RolloutStart)
                        .env("prod"),
                )
                .unwrap();
            store
                .record_batch(op, (0..20).map(|i| step(o * 20 + i)).collect())
                .unwrap();
            store
                .finish_operation(
                    op,
                    Entry::new(Actor::new("bench@host", Trigger::Cli), Action::RolloutEnd)
                        .outcome(Outcome::Success),
                )
                .unwrap();
        }
        let n = ops * 22;
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    println!(
        "append (1 intent + 20 steps + 1 outcome per operation, fsync per intent/outcome): median {:.0} entries/s (target >= 5000)",
        median(rates)
    );
    let mut rates = Vec::new();
    for run in 0..RUNS {
        let store = SqliteStore::open(&dir.join(format!("single-{run}.db"))).unwrap();
        let n = 2_000;
        let start = Instant::now();
        for i in 0..n {
            store.append(step(i)).unwrap();
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    println!(
        "append (single events, one transaction each, synchronous=NORMAL): median {:.0} entries/s",
        median(rates)
    );
}

fn bench_verify(dir: &std::path::Path) {
    let n: u64 = std::env::var("TIDEGATE_BENCH_VERIFY_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let path = dir.join("verify.db");
    let store = SqliteStore::open(&path).unwrap();
    store.set_unsynced(true);
    let load = Instant::now();
    let batch = 10_000;
    let mut written = 0;
    while written < n {
        let k = batch.min(n - written);
        store
            .append_batch((written..written + k).map(step).collect())
            .unwrap();
        written += k;
    }
    eprintln!(
        "  (loaded {n} entries in {:.1} s)",
        load.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let report = store.verify(None).unwrap();
        assert!(report.ok());
        assert_eq!(report.entries, n);
        times.push(start.elapsed().as_secs_f64());
    }
    println!(
        "verify {n} entries: median {:.2} s (target < 5 s for 1,000,000)",
        median(times)
    );
}

fn bench_report(dir: &std::path::Path) {
    let path = dir.join("report.db");
    let store = SqliteStore::open(&path).unwrap();
    store.set_unsynced(true);
    let start_ms = 1_790_000_000_000;
    let day = 86_400_000;
    // About 11.35 entries per rollout: 8,820 rollouts over 30 days ≈ 100,000 entries.
    let rollouts = 8_820;
    let spacing = 30 * day / rollouts;
    let written = fixture::fleet_log(&store, start_ms, spacing, rollouts as u64, true).unwrap();
    let until = start_ms + 30 * day + day;
    let mut times = Vec::new();
    for format in [
        tidegate_report::Format::Markdown,
        tidegate_report::Format::Html,
    ] {
        for _ in 0..RUNS {
            let start = Instant::now();
            let filter = Filter {
                since_ms: Some(until - 31 * day),
                until_ms: Some(until),
                ..Filter::default()
            };
            let records = store.records(&filter).unwrap();
            let report = tidegate_report::build(
                &records,
                &tidegate_report::ReportOptions {
                    since_ms: until - 31 * day,
                    until_ms: until,
                    environment: None,
                },
            );
            let text = tidegate_report::render(&report, &records, format).unwrap();
            assert!(!text.is_empty());
            times.push(start.elapsed().as_secs_f64());
        }
        println!(
            "report ({format:?}, 30 days, {} entries): median {:.2} s (target < 2 s)",
            written.entries,
            median(std::mem::take(&mut times))
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing.
    let quick = !std::env::args().any(|a| a == "--bench");
    let dir = tempfile::tempdir().unwrap();
    if quick {
        // Under `cargo test`: a smoke run only.
        let store = SqliteStore::open(&dir.path().join("smoke.db")).unwrap();
        store.append(step(0)).unwrap();
        assert!(store.verify(None).unwrap().ok());
        return;
    }
    bench_append(dir.path());
    bench_verify(dir.path());
    bench_report(dir.path());
}
