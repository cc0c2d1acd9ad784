//! Store behaviour: secrets refused, operations, bad files, concurrency, crashes.

use super::child::{spawn_child, spawn_child_gated, wait_for_line};
use super::{T0, event, temp_db};
use std::collections::BTreeMap;
use tidegate_audit::{
    Action, Actor, AuditError, AuditSink, Change, Entry, ObjectRef, Outcome, SqliteStore, Trigger,
};

on_both_backends! {
fn secret_values_cannot_enter_the_log(db) {
    let store = db.open();
    // Details named data/stringData are refused...
    for key in ["data", "stringData", "StringData"] {
        let mut e = event(1);
        e.details = BTreeMap::from([(key.to_string(), "cGFzc3dvcmQ=".to_string())]);
        let err = store.append(e).expect_err("refused");
        assert!(matches!(err, AuditError::Refused(_)), "{err}");
    }
    // ...object references keep identity only, whatever the manifest holds...
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "gin-app"},
        "data": {"password": "cGFzc3dvcmQ="},
        "stringData": {"token": "hunter2"}
    });
    let r = ObjectRef::from_manifest(&secret, Change::Updated).expect("ref");
    let mut e = event(2);
    e.objects = Some(tidegate_audit::ObjectsChanged::from_refs(vec![r]));
    store.append(e).expect("append");
    // ...and a reference with content is not even deserialisable.
    let with_data = serde_json::json!({"change": "updated", "kind": "Secret", "name": "db", "data": {"a": "b"}});
    assert!(serde_json::from_value::<ObjectRef>(with_data).is_err());
    let all = db.sql("SELECT body FROM entries", false).expect("bodies");
    assert!(all.contains("\"kind\":\"Secret\""));
    assert!(
        !all.contains("cGFzc3dvcmQ") && !all.contains("hunter2"),
        "{all}"
    );
}
}

on_both_backends! {
fn operations_inherit_and_close_once(db) {
    let store = db.open();
    let actor = Actor::new("alice@laptop", Trigger::Cli);
    let op = store
        .begin_operation(
            Entry::new(actor.clone(), Action::Switch)
                .env("prod")
                .cluster("aks-westeurope")
                .at(T0),
        )
        .expect("begin");
    store.record(op, event(1).at(T0 + 10)).expect("step");
    let end = store
        .finish_operation(
            op,
            Entry::new(actor.clone(), Action::Switch)
                .outcome(Outcome::Success)
                .at(T0 + 1_500),
        )
        .expect("finish");
    let rec = store.records(&Default::default()).expect("records");
    let last = rec.iter().find(|r| r.seq == end).expect("outcome");
    assert_eq!(last.entry.environment.as_deref(), Some("prod"));
    assert_eq!(last.entry.cluster.as_deref(), Some("aks-westeurope"));
    assert_eq!(last.entry.duration_ms, Some(1_500));
    assert_eq!(last.operation, Some(op.0));
    assert!(matches!(
        store.finish_operation(op, Entry::new(actor.clone(), Action::Switch)),
        Err(AuditError::UnknownOperation(_))
    ));
    assert!(matches!(
        store.finish_operation(
            tidegate_audit::OperationId(999),
            Entry::new(actor, Action::Switch)
        ),
        Err(AuditError::UnknownOperation(999))
    ));
    assert!(store.interrupted().expect("interrupted").is_empty());
}
}

#[test]
fn corrupt_and_foreign_files_are_refused_and_kept() {
    let (dir, _) = temp_db();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database at all, just text").expect("write");
    let err = SqliteStore::open(&junk).expect_err("corrupt");
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("left as it is"), "{err}");
    assert_eq!(
        std::fs::read(&junk).expect("read"),
        b"this is not a database at all, just text"
    );

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .expect("open")
        .execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('mine');")
        .expect("create");
    let err = SqliteStore::open(&foreign).expect_err("foreign");
    assert!(matches!(err, AuditError::Foreign { .. }), "{err}");

    // A damaged page past the header: SQLite's own error, surfaced.
    let (_d2, good) = temp_db();
    let store = SqliteStore::open(&good).expect("open");
    for i in 0..200 {
        store.append(event(i)).expect("append");
    }
    store.checkpoint().expect("checkpoint");
    drop(store);
    let mut bytes = std::fs::read(&good).expect("read");
    for b in bytes.iter_mut().skip(4096).take(8192) {
        *b = 0xA5;
    }
    std::fs::write(&good, &bytes).expect("write");
    let outcome = SqliteStore::open_existing(&good).and_then(|s| s.verify(None));
    match outcome {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(report) => assert!(!report.ok(), "damaged file verified"),
    }

    let missing = dir.path().join("missing.db");
    assert!(matches!(
        SqliteStore::open_existing(&missing),
        Err(AuditError::Missing(_))
    ));
    assert!(!missing.exists());
}

on_both_backends! {
/// Three OS processes (this test binary run again) append at the same
/// time: one chain, every entry of every writer, no fork, no gap.
fn three_processes_append_concurrently(db) {
    const N: u64 = 200;
    const WRITERS: u64 = 3;
    db.open();
    let go = db.dir.path().join("go");
    let mut children: Vec<_> = (0..WRITERS)
        .map(|i| spawn_child_gated(&format!("append:{N}:{i}"), &db.location, Some(&go)))
        .collect();
    std::fs::write(&go, b"").expect("start the writers");
    for c in &mut children {
        let status = c.wait().expect("wait");
        assert!(
            status.success(),
            "child failed: {status} (its stderr is above)"
        );
    }
    let store = db.open_existing();
    let report = store.verify(None).expect("verify");
    assert!(report.ok(), "{:?}", report.problem);
    assert_eq!(report.entries, WRITERS * N);
    let records = store.records(&Default::default()).expect("records");
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=WRITERS * N).collect::<Vec<_>>(), "gaps or duplicates");
    for w in 0..WRITERS {
        let writer = format!("writer-{w}");
        let mut seen: Vec<u64> = records
            .iter()
            .filter(|r| r.entry.actor.identity == writer)
            .filter_map(|r| r.entry.details.get("n").and_then(|n| n.parse().ok()))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..N).collect::<Vec<_>>(), "{writer} lost entries");
    }
    let switches = records
        .windows(2)
        .filter(|w| w[0].entry.actor.identity != w[1].entry.actor.identity)
        .count();
    eprintln!("{:?}: the writers took turns {switches} times", db.backend);
}
}

on_both_backends! {
fn killed_operation_shows_interrupted(db) {
    db.open();
    let mut child = spawn_child("crash", &db.location);
    wait_for_line(&mut child, "INTENT-COMMITTED");
    child.kill().expect("kill -9");
    let _ = child.wait();
    let store = db.open_existing();
    assert!(store.verify(None).expect("verify").ok());
    let open = store.interrupted().expect("interrupted");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].entry.action, Action::RolloutStart);
    let records = store.records(&Default::default()).expect("records");
    let report = tidegate_report::build(
        &records,
        &tidegate_report::ReportOptions {
            since_ms: 0,
            until_ms: tidegate_audit::now_ms() + 1_000,
            environment: None,
        },
    );
    assert_eq!(report.summary.interrupted, 1);
    assert_eq!(report.interrupted[0].outcome, "interrupted");
    let md = tidegate_report::render(&report, &records, tidegate_report::Format::Markdown)
        .expect("render");
    assert!(md.contains("| interrupted |"), "{md}");
}
}

on_both_backends! {
/// Every filter field narrows what `records` (and so `log`, `report` and
/// `export`) returns, alone and together.
fn filters_select_the_same_entries(db) {
    let store = db.open();
    let actor = Actor::new("tester@host", Trigger::Cli);
    for (i, (env, cluster, action)) in [
        ("prod", "eks-us-east-1", Action::Apply),
        ("prod", "aks-westeurope", Action::Prune),
        ("dev", "eks-us-east-1", Action::Apply),
        ("prod", "eks-us-east-1", Action::Rollback),
    ]
    .into_iter()
    .enumerate()
    {
        store
            .append(Entry::new(actor.clone(), action).env(env).cluster(cluster).app("gin-app").at(T0 + i as i64 * 1_000))
            .expect("append");
    }
    let count = |f: tidegate_audit::Filter| store.records(&f).expect("records").len();
    assert_eq!(count(Default::default()), 4);
    assert_eq!(count(tidegate_audit::Filter { environment: Some("prod".into()), ..Default::default() }), 3);
    assert_eq!(count(tidegate_audit::Filter { cluster: Some("eks-us-east-1".into()), ..Default::default() }), 3);
    assert_eq!(count(tidegate_audit::Filter { app: Some("other".into()), ..Default::default() }), 0);
    assert_eq!(count(tidegate_audit::Filter { actions: vec!["apply".into(), "rollback".into()], ..Default::default() }), 3);
    assert_eq!(count(tidegate_audit::Filter { since_ms: Some(T0 + 1_000), until_ms: Some(T0 + 3_000), ..Default::default() }), 2);
    let all = tidegate_audit::Filter {
        environment: Some("prod".into()),
        cluster: Some("eks-us-east-1".into()),
        app: Some("gin-app".into()),
        actions: vec!["rollback".into()],
        since_ms: Some(T0),
        until_ms: Some(T0 + 10_000),
        after_seq: None,
    };
    let hits = store.records(&all).expect("records");
    assert_eq!(hits.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4]);
}
}
