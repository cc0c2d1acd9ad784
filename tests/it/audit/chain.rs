//! `verify` finds each kind of tampering, and names the first entry hit;
//! on SQLite and on PostgreSQL alike (tampering goes around the store:
//! rusqlite or psql, with the append-only triggers bypassed).

use super::{Backend, TestDb, event, temp_db};
use tidegate_audit::{AuditSink, ChainProblem, SqliteStore, signing};

fn fill(db: &TestDb, n: u64) {
    let store = db.open();
    for i in 0..n {
        store.append(event(i)).expect("append");
    }
}

fn verify(db: &TestDb) -> tidegate_audit::VerifyReport {
    db.open_existing().verify(None).expect("verify")
}

on_both_backends! {
    fn untouched_log_verifies(db) {
        fill(&db, 20);
        let report = verify(&db);
        assert!(report.ok(), "{:?}", report.problem);
        assert_eq!(report.entries, 20);
    }
}

on_both_backends! {
    fn triggers_refuse_update_and_delete(db) {
        fill(&db, 3);
        let err = db
            .sql("UPDATE entries SET cluster = 'x' WHERE seq = 2", false)
            .expect_err("update must fail");
        assert!(err.contains("append-only"), "{err}");
        let err = db
            .sql("DELETE FROM entries WHERE seq = 3", false)
            .expect_err("delete must fail");
        assert!(err.contains("append-only"), "{err}");
        assert!(verify(&db).ok());
    }
}

on_both_backends! {
    fn edited_body_is_found(db) {
        fill(&db, 10);
        db.sql(
            "UPDATE entries SET body = replace(body, 'step 6', 'step 666') WHERE seq = 7",
            true,
        )
        .expect("tamper");
        let report = verify(&db);
        assert!(
            matches!(report.problem, Some(ChainProblem::Altered { seq: 7, .. })),
            "{:?}",
            report.problem
        );
        assert_eq!(report.entries, 6);
    }
}

on_both_backends! {
    fn edited_column_is_found(db) {
        fill(&db, 10);
        db.sql(
            "UPDATE entries SET cluster = 'gke-us-central1' WHERE seq = 4",
            true,
        )
        .expect("tamper");
        let report = verify(&db);
        match report.problem {
            Some(ChainProblem::Altered { seq: 4, detail }) => {
                assert!(detail.contains("cluster"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
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
    let db = TestDb::new(Backend::Sqlite, "sqlite3_cli");
    fill(&db, 5);
    let status = std::process::Command::new("sqlite3")
        .arg(&db.location)
        .arg("DROP TRIGGER entries_no_update; UPDATE entries SET body = replace(body, '\"apply\"', '\"prune\"'), action = 'prune' WHERE seq = 2;")
        .status()
        .expect("sqlite3");
    assert!(status.success());
    let report = verify(&db);
    assert!(
        matches!(report.problem, Some(ChainProblem::Altered { seq: 2, .. })),
        "{:?}",
        report.problem
    );
}

on_both_backends! {
    fn deleted_row_is_found(db) {
        fill(&db, 10);
        db.sql("DELETE FROM entries WHERE seq = 5", true)
            .expect("tamper");
        let report = verify(&db);
        assert_eq!(
            report.problem,
            Some(ChainProblem::Removed { from: 5, to: 5 })
        );
        assert_eq!(report.entries, 4);
    }
}

on_both_backends! {
    fn deleted_and_renumbered_rows_are_found(db) {
        fill(&db, 10);
        db.sql_batch(
            "DELETE FROM entries WHERE seq IN (5, 6);
             UPDATE entries SET seq = seq + 100 WHERE seq > 6;
             UPDATE entries SET seq = seq - 102 WHERE seq > 100;",
            true,
        )
        .expect("tamper");
        let report = verify(&db);
        assert_eq!(
            report.problem,
            Some(ChainProblem::Removed { from: 5, to: 6 })
        );
    }
}

on_both_backends! {
    fn swapped_rows_are_found(db) {
        fill(&db, 10);
        // Exchange the contents of rows 3 and 4, keeping their positions
        // (prev_hash is unique on PostgreSQL: park row 3's first).
        db.sql_batch(
            "CREATE TEMP TABLE t AS SELECT * FROM entries WHERE seq IN (3, 4);
             UPDATE entries SET prev_hash = 'parked' WHERE seq = 3;
             UPDATE entries SET body = (SELECT body FROM t WHERE seq = 3), prev_hash = (SELECT prev_hash FROM t WHERE seq = 3), hash = (SELECT hash FROM t WHERE seq = 3) WHERE seq = 4;
             UPDATE entries SET body = (SELECT body FROM t WHERE seq = 4), prev_hash = (SELECT prev_hash FROM t WHERE seq = 4), hash = (SELECT hash FROM t WHERE seq = 4) WHERE seq = 3;",
            true,
        )
        .expect("swap");
        let report = verify(&db);
        assert_eq!(
            report.problem,
            Some(ChainProblem::Reordered { seq: 3, holds: 4 })
        );
    }
}

on_both_backends! {
    fn inserted_row_is_found(db) {
        fill(&db, 6);
        // Renumber 4.. up by one and forge a well-formed entry at 4, chained
        // to entry 3: only the entries after it betray the insertion.
        db.sql_batch(
            "UPDATE entries SET seq = seq + 100 WHERE seq >= 4;
             UPDATE entries SET seq = seq - 99 WHERE seq >= 100;",
            true,
        )
        .expect("renumber");
        let prev = db
            .sql("SELECT hash FROM entries WHERE seq = 3", false)
            .expect("hash 3");
        let forged_body = r#"{"action":"apply","actor":{"identity":"mallory@host","trigger":"cli"},"phase":"event","seq":4,"time_ms":1}"#;
        let forged_hash = tidegate_audit::canonical::chain_hash(&prev, forged_body);
        if db.backend == Backend::Postgres {
            // prev_hash is unique there: the forger (a superuser) drops that too.
            db.sql(
                "ALTER TABLE entries DROP CONSTRAINT tidegate_audit_entries_prev_hash_key",
                false,
            )
            .expect("drop the constraint");
        }
        db.sql(
            &format!(
                "INSERT INTO entries (seq, time_ms, phase, actor, action, body, prev_hash, hash) VALUES (4, 1, 'event', 'mallory@host', 'apply', '{forged_body}', '{prev}', '{forged_hash}')"
            ),
            true,
        )
        .expect("insert");
        let report = verify(&db);
        assert_eq!(report.problem, Some(ChainProblem::Inserted { seq: 4 }));
        assert_eq!(
            report.entries, 4,
            "the forged entry itself links, so 4 pass"
        );
    }
}

on_both_backends! {
    fn truncated_tail_is_found_when_a_head_is_signed(db) {
        fill(&db, 10);
        let key = signing::generate_key(&db.dir.path().join("key")).expect("keygen");
        let store = db.open_existing();
        let head = store.sign_head(&key).expect("sign").expect("head");
        assert_eq!(head.seq, 10);
        drop(store);
        // Without a signature the cut is invisible: the rest is a valid chain.
        db.sql("DELETE FROM entries WHERE seq > 7", true)
            .expect("truncate");
        let report = verify(&db);
        assert_eq!(
            report.problem,
            Some(ChainProblem::Truncated {
                signed_seq: 10,
                last_seq: 7
            })
        );
    }
}

on_both_backends! {
    fn rewritten_log_fails_against_the_public_key(db) {
        fill(&db, 5);
        let key = signing::generate_key(&db.dir.path().join("key")).expect("keygen");
        let public = key.verifying_key();
        let store = db.open_existing();
        store.sign_head(&key).expect("sign");
        assert!(store.verify(Some(&public)).expect("verify").ok());
        drop(store);
        // A forger rebuilds the whole log: same entries, their own key.
        let forged = TestDb::new(db.backend, "forged");
        fill(&forged, 6);
        let other = signing::generate_key(&db.dir.path().join("other")).expect("keygen");
        forged.open_existing().sign_head(&other).expect("sign");
        let report = forged
            .open_existing()
            .verify(Some(&public))
            .expect("verify");
        assert_eq!(report.problem, Some(ChainProblem::NoSignedHead));
        // And a forged signature row is caught as well.
        forged
            .sql(
                &format!(
                    "INSERT INTO signed_heads (seq, hash, public_key, signature, signed_at_ms) VALUES (6, 'x', '{}', '{}', 0)",
                    signing::public_key_hex(&public),
                    "00".repeat(64)
                ),
                false,
            )
            .expect("insert");
        let report = forged
            .open_existing()
            .verify(Some(&public))
            .expect("verify");
        assert_eq!(report.problem, Some(ChainProblem::BadSignature { seq: 6 }));
    }
}

on_both_backends! {
    fn memory_sink_has_the_same_chain(db) {
        let mem = tidegate_audit::MemorySink::new();
        for i in 0..5 {
            mem.append(event(i).at(1_000 + i as i64)).expect("append");
        }
        assert_eq!(mem.verify(), Ok(5));
        let store = db.open();
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
}

/// The SQLite store itself (not through AuditStore) keeps its API.
#[test]
fn sqlite_store_direct_api_still_verifies() {
    let (_d, path) = temp_db();
    let store = SqliteStore::open(&path).expect("open");
    store.append(event(1)).expect("append");
    assert!(store.verify(None).expect("verify").ok());
}
