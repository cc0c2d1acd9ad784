//! `verify` finds each kind of tampering, and names the first entry hit.

use super::{event, raw, temp_db};
use tidegate_audit::{AuditSink, ChainProblem, SqliteStore, signing};

fn store_with(n: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, path) = temp_db();
    let store = SqliteStore::open(&path).expect("open");
    for i in 0..n {
        store.append(event(i)).expect("append");
    }
    (dir, path)
}

fn verify(path: &std::path::Path) -> tidegate_audit::VerifyReport {
    SqliteStore::open_existing(path)
        .expect("open")
        .verify(None)
        .expect("verify")
}

#[test]
fn untouched_log_verifies() {
    let (_d, path) = store_with(20);
    let report = verify(&path);
    assert!(report.ok(), "{:?}", report.problem);
    assert_eq!(report.entries, 20);
}

#[test]
fn triggers_refuse_update_and_delete() {
    let (_d, path) = store_with(3);
    let conn = raw(&path, false);
    let err = conn
        .execute("UPDATE entries SET cluster = 'x' WHERE seq = 2", [])
        .expect_err("update must fail");
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = conn
        .execute("DELETE FROM entries WHERE seq = 3", [])
        .expect_err("delete must fail");
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[test]
fn edited_body_is_found() {
    let (_d, path) = store_with(10);
    let conn = raw(&path, true);
    conn.execute(
        "UPDATE entries SET body = replace(body, 'step 6', 'step 666') WHERE seq = 7",
        [],
    )
    .expect("tamper");
    let report = verify(&path);
    assert!(
        matches!(report.problem, Some(ChainProblem::Altered { seq: 7, .. })),
        "{:?}",
        report.problem
    );
    assert_eq!(report.entries, 6);
}

#[test]
fn edited_column_is_found() {
    let (_d, path) = store_with(10);
    raw(&path, true)
        .execute(
            "UPDATE entries SET cluster = 'gke-us-central1' WHERE seq = 4",
            [],
        )
        .expect("tamper");
    let report = verify(&path);
    match report.problem {
        Some(ChainProblem::Altered { seq: 4, detail }) => {
            assert!(detail.contains("cluster"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn edit_with_sqlite3_cli_is_found() {
    if std::process::Command::new("sqlite3")
        .arg("-version")
        .output()
        .is_err()
    {
        eprintln!("sqlite3 CLI not installed: covered by the rusqlite tamper tests");
        return;
    }
    let (_d, path) = store_with(5);
    let status = std::process::Command::new("sqlite3")
        .arg(&path)
        .arg("DROP TRIGGER entries_no_update; UPDATE entries SET body = replace(body, '\"apply\"', '\"prune\"'), action = 'prune' WHERE seq = 2;")
        .status()
        .expect("sqlite3");
    assert!(status.success());
    let report = verify(&path);
    assert!(
        matches!(report.problem, Some(ChainProblem::Altered { seq: 2, .. })),
        "{:?}",
        report.problem
    );
}

#[test]
fn deleted_row_is_found() {
    let (_d, path) = store_with(10);
    raw(&path, true)
        .execute("DELETE FROM entries WHERE seq = 5", [])
        .expect("tamper");
    let report = verify(&path);
    assert_eq!(
        report.problem,
        Some(ChainProblem::Removed { from: 5, to: 5 })
    );
    assert_eq!(report.entries, 4);
}

#[test]
fn deleted_and_renumbered_rows_are_found() {
    let (_d, path) = store_with(10);
    raw(&path, true)
        .execute_batch(
            "DELETE FROM entries WHERE seq IN (5, 6);
             UPDATE entries SET seq = seq + 100 WHERE seq > 6;
             UPDATE entries SET seq = seq - 102 WHERE seq > 100;",
        )
        .expect("tamper");
    let report = verify(&path);
    assert_eq!(
        report.problem,
        Some(ChainProblem::Removed { from: 5, to: 6 })
    );
}

#[test]
fn swapped_rows_are_found() {
    let (_d, path) = store_with(10);
    let conn = raw(&path, true);
    // Exchange the contents of rows 3 and 4, keeping their positions.
    conn.execute_batch(
        "CREATE TEMP TABLE t AS SELECT * FROM entries WHERE seq IN (3, 4);
         UPDATE entries SET body = (SELECT body FROM t WHERE seq = 4), prev_hash = (SELECT prev_hash FROM t WHERE seq = 4), hash = (SELECT hash FROM t WHERE seq = 4) WHERE seq = 3;
         UPDATE entries SET body = (SELECT body FROM t WHERE seq = 3), prev_hash = (SELECT prev_hash FROM t WHERE seq = 3), hash = (SELECT hash FROM t WHERE seq = 3) WHERE seq = 4;",
    )
    .expect("swap");
    let report = verify(&path);
    assert_eq!(
        report.problem,
        Some(ChainProblem::Reordered { seq: 3, holds: 4 })
    );
}

#[test]
fn inserted_row_is_found() {
    let (_d, path) = store_with(6);
    let conn = raw(&path, true);
    // Renumber 4.. up by one and forge a well-formed entry at 4, chained
    // to entry 3: only the entries after it betray the insertion.
    conn.execute_batch(
        "UPDATE entries SET seq = seq + 100 WHERE seq >= 4;
         UPDATE entries SET seq = seq - 99 WHERE seq >= 100;",
    )
    .expect("renumber");
    let prev: String = conn
        .query_row("SELECT hash FROM entries WHERE seq = 3", [], |r| r.get(0))
        .expect("hash 3");
    let forged_body = r#"{"action":"apply","actor":{"identity":"mallory@host","trigger":"cli"},"phase":"event","seq":4,"time_ms":1}"#;
    let forged_hash = tidegate_audit::canonical::chain_hash(&prev, forged_body);
    conn.execute(
        "INSERT INTO entries (seq, time_ms, phase, actor, action, body, prev_hash, hash) VALUES (4, 1, 'event', 'mallory@host', 'apply', ?1, ?2, ?3)",
        rusqlite::params![forged_body, prev, forged_hash],
    )
    .expect("insert");
    let report = verify(&path);
    assert_eq!(report.problem, Some(ChainProblem::Inserted { seq: 4 }));
    assert_eq!(
        report.entries, 4,
        "the forged entry itself links, so 4 pass"
    );
}

#[test]
fn truncated_tail_is_found_when_a_head_is_signed() {
    let (dir, path) = store_with(10);
    let key_path = dir.path().join("key");
    let key = signing::generate_key(&key_path).expect("keygen");
    let store = SqliteStore::open_existing(&path).expect("open");
    let head = store.sign_head(&key).expect("sign").expect("head");
    assert_eq!(head.seq, 10);
    drop(store);
    // Without a signature the cut is invisible: the rest is a valid chain.
    raw(&path, true)
        .execute("DELETE FROM entries WHERE seq > 7", [])
        .expect("truncate");
    let report = verify(&path);
    assert_eq!(
        report.problem,
        Some(ChainProblem::Truncated {
            signed_seq: 10,
            last_seq: 7
        })
    );
}

#[test]
fn rewritten_file_fails_against_the_public_key() {
    let (dir, path) = store_with(5);
    let key = signing::generate_key(&dir.path().join("key")).expect("keygen");
    let public = key.verifying_key();
    let store = SqliteStore::open_existing(&path).expect("open");
    store.sign_head(&key).expect("sign");
    assert!(store.verify(Some(&public)).expect("verify").ok());
    drop(store);
    // A forger rebuilds the whole file: same entries, their own key.
    let (_d2, forged) = store_with(6);
    let other = signing::generate_key(&dir.path().join("other")).expect("keygen");
    SqliteStore::open_existing(&forged)
        .expect("open")
        .sign_head(&other)
        .expect("sign");
    let report = SqliteStore::open_existing(&forged)
        .expect("open")
        .verify(Some(&public))
        .expect("verify");
    assert_eq!(report.problem, Some(ChainProblem::NoSignedHead));
    // And a forged signature row is caught as well.
    let conn = raw(&forged, false);
    conn.execute(
        "INSERT INTO signed_heads (seq, hash, public_key, signature, signed_at_ms) VALUES (6, 'x', ?1, ?2, 0)",
        rusqlite::params![signing::public_key_hex(&public), "00".repeat(64)],
    )
    .expect("insert");
    let report = SqliteStore::open_existing(&forged)
        .expect("open")
        .verify(Some(&public))
        .expect("verify");
    assert_eq!(report.problem, Some(ChainProblem::BadSignature { seq: 6 }));
}

#[test]
fn memory_sink_has_the_same_chain() {
    let mem = tidegate_audit::MemorySink::new();
    for i in 0..5 {
        mem.append(event(i).at(1_000 + i as i64)).expect("append");
    }
    assert_eq!(mem.verify(), Ok(5));
    let (_d, path) = temp_db();
    let store = SqliteStore::open(&path).expect("open");
    for i in 0..5 {
        store.append(event(i).at(1_000 + i as i64)).expect("append");
    }
    let a: Vec<String> = mem.records().into_iter().map(|r| r.hash).collect();
    let b: Vec<String> = store
        .records(&Default::default())
        .expect("records")
        .into_iter()
        .map(|r| r.hash)
        .collect();
    assert_eq!(a, b, "same entries, same times: same hashes in both sinks");
}
