//! What only PostgreSQL has: `tidegate audit migrate` from SQLite (run as
//! the real binary), the unique sequence number as the last line of
//! defence, clear errors for bad URLs and unreachable servers, and the CLI
//! reading and verifying a trail in PostgreSQL.

use super::{Backend, TestDb, event};
use crate::trust::{run, text};
use std::path::{Path, PathBuf};
use tidegate_audit::{AuditError, AuditSink, AuditStore, SqliteStore, signing};

/// `tidegate …` with TIDEGATE_AUDIT_DB = `db`.
fn tidegate(home: &Path, db: &Path, args: &[&str]) -> std::process::Output {
    let db = db.to_str().expect("utf-8");
    run(home, home, &[("TIDEGATE_AUDIT_DB", db)], args)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An SQLite trail with rollouts, rollbacks, an interrupted operation and
/// a signed head; and the file holding the signer's public key.
fn sqlite_trail() -> (TestDb, PathBuf) {
    let db = TestDb::new(Backend::Sqlite, "source");
    let key = signing::generate_key(&db.dir.path().join("key")).expect("keygen");
    let public = db.dir.path().join("key.pub");
    std::fs::write(&public, signing::public_key_hex(&key.verifying_key())).expect("pub");
    let store = SqliteStore::open(&db.location).expect("open");
    tidegate_audit::fixture::fleet_log(&store, 1_767_225_600_000, 3_600_000, 6, true).expect("log");
    store.sign_head(&key).expect("sign");
    (db, public)
}

#[test]
fn migrate_round_trips_sqlite_to_postgres() {
    let home = tempfile::tempdir().expect("home");
    let (source, public) = sqlite_trail();
    let target = TestDb::new(Backend::Postgres, "migrate_target");
    let to = target.location.to_str().expect("url").to_string();
    let entries = SqliteStore::open_existing(&source.location)
        .expect("open")
        .len()
        .expect("len");
    assert!(entries > 50, "a real trail: {entries} entries");

    let out = tidegate(
        home.path(),
        &source.location,
        &["audit", "migrate", "--to", &to],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!(
            "copied {entries} of {entries} entries (0 already there) and 1 signed heads"
        )),
        "{}",
        text(&out)
    );

    // The copy verifies against the same key and ends at the same head.
    let verify = |db: &Path| {
        let out = tidegate(
            home.path(),
            db,
            &[
                "audit",
                "verify",
                "-o",
                "json",
                "--public-key",
                public.to_str().expect("utf-8"),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v.as_object_mut().expect("object").remove("database");
        v
    };
    let (a, b) = (verify(&source.location), verify(&target.location));
    assert_eq!(a, b, "same verification result on both");
    assert_eq!(b["ok"], true);
    assert_eq!(b["entries"], entries);
    assert_eq!(b["signedHead"], entries);

    // log, report and export read the same entries from both.
    for args in [
        &["audit", "log", "-o", "json"][..],
        &["audit", "export", "--format", "jsonl"],
        &["audit", "export", "--format", "cdevents"],
        &[
            "audit",
            "report",
            "--format",
            "json",
            "--since",
            "2025-01-01",
            "--until",
            "2026-06-01",
        ],
    ] {
        let (x, y) = (
            tidegate(home.path(), &source.location, args),
            tidegate(home.path(), &target.location, args),
        );
        assert!(
            x.status.success() && y.status.success(),
            "{args:?}\n{}\n{}",
            text(&x),
            text(&y)
        );
        assert!(!x.stdout.is_empty());
        assert_eq!(
            stdout(&x),
            stdout(&y),
            "{args:?} differs between SQLite and PostgreSQL"
        );
    }

    // Again: nothing to copy, the target is the same chain.
    let out = tidegate(
        home.path(),
        &source.location,
        &["audit", "migrate", "--to", &to],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!(
            "copied 0 of {entries} entries ({entries} already there) and 0 signed heads"
        )),
        "{}",
        text(&out)
    );

    // New entries in the source: only they are copied.
    SqliteStore::open_existing(&source.location)
        .expect("open")
        .append(event(1))
        .expect("append");
    let out = tidegate(
        home.path(),
        &source.location,
        &["audit", "migrate", "--to", &to],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("copied 1 of {} entries", entries + 1)),
        "{}",
        text(&out)
    );
}

#[test]
fn migrate_refuses_a_target_with_another_chain() {
    let home = tempfile::tempdir().expect("home");
    let (source, _) = sqlite_trail();
    let target = TestDb::new(Backend::Postgres, "other_chain");
    let store = target.open();
    for i in 0..3 {
        store.append(event(i)).expect("append");
    }
    drop(store);
    let to = target.location.to_str().expect("url");
    let out = tidegate(
        home.path(),
        &source.location,
        &["audit", "migrate", "--to", to],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("already holds another audit chain"),
        "{}",
        text(&out)
    );
    assert_eq!(
        target.open_existing().len().expect("len"),
        3,
        "the target was left as it was"
    );
}

#[test]
fn migrate_refuses_a_tampered_source() {
    let home = tempfile::tempdir().expect("home");
    let (source, _) = sqlite_trail();
    source
        .sql(
            "UPDATE entries SET body = replace(body, 'prod', 'dev') WHERE seq = 3",
            true,
        )
        .expect("tamper");
    let target = TestDb::new(Backend::Postgres, "tampered_source");
    let to = target.location.to_str().expect("url");
    let out = tidegate(
        home.path(),
        &source.location,
        &["audit", "migrate", "--to", to],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("fails verification"), "{}", text(&out));
    assert_eq!(target.open_existing().len().expect("len"), 0);
}

#[test]
fn psql_edit_is_reported_by_tidegate_audit_verify() {
    let home = tempfile::tempdir().expect("home");
    let db = TestDb::new(Backend::Postgres, "cli_tamper");
    let store = db.open();
    for i in 0..5 {
        store.append(event(i)).expect("append");
    }
    drop(store);
    let out = tidegate(home.path(), &db.location, &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    // An operator with database rights rewrites an entry's payload.
    db.sql(
        "UPDATE entries SET body = replace(body, '\"apply\"', '\"prune\"'), action = 'prune' WHERE seq = 2",
        true,
    )
    .expect("psql update");
    let out = tidegate(home.path(), &db.location, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout(&out).contains("TAMPERED"), "{}", text(&out));
    assert!(
        stdout(&out).contains("entry 2 was altered"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_second_row_at_the_same_place_is_refused_by_the_schema() {
    let db = TestDb::new(Backend::Postgres, "unique_seq");
    let store = db.open();
    store.append(event(1)).expect("append");
    drop(store);
    let forged = "INSERT INTO entries (seq, time_ms, phase, actor, action, body, prev_hash, hash) VALUES (1, 1, 'event', 'x', 'apply', '{}', 'p', 'h')";
    let err = db.sql(forged, true).expect_err("duplicate seq");
    assert!(err.contains("duplicate key"), "{err}");
    let fork = "INSERT INTO entries (seq, time_ms, phase, actor, action, body, prev_hash, hash) \
                SELECT 2, 1, 'event', 'x', 'apply', '{}', prev_hash, 'h' FROM entries WHERE seq = 1";
    let err = db.sql(fork, true).expect_err("same parent twice");
    assert!(err.contains("duplicate key"), "{err}");
}

#[test]
fn missing_tables_bad_urls_and_unreachable_servers_are_clear() {
    let empty = TestDb::new(Backend::Postgres, "empty");
    assert!(matches!(
        AuditStore::open_existing(&empty.location),
        Err(AuditError::Missing(_))
    ));
    assert!(matches!(
        AuditStore::open_read_only(&empty.location),
        Err(AuditError::Missing(_))
    ));
    let err = AuditStore::open(Path::new("postgres://tide:hunter2@127.0.0.1:1/audit"))
        .expect_err("nothing listens on port 1");
    let msg = err.to_string();
    assert!(
        msg.contains("PostgreSQL") && !msg.contains("hunter2"),
        "{msg}"
    );
    let err = AuditStore::open(Path::new("postgres://tide:hunter2@h/db?sslmode=maybe"))
        .expect_err("bad sslmode");
    let msg = err.to_string();
    assert!(
        msg.contains("sslmode=maybe") && !msg.contains("hunter2"),
        "{msg}"
    );
    let home = tempfile::tempdir().expect("home");
    let out = tidegate(
        home.path(),
        Path::new("postgres://u:hunter2@127.0.0.1:1/x"),
        &["audit", "log"],
    );
    assert!(!out.status.success());
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
}

#[test]
fn tls_with_verify_full_against_the_servers_ca() {
    let db = TestDb::new(Backend::Postgres, "tls");
    let server = super::pg::server();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.location.display(),
        server.ca_file().display()
    );
    let store = AuditStore::open(Path::new(&url)).expect("open over TLS");
    store.append(event(1)).expect("append over TLS");
    assert!(store.verify(None).expect("verify").ok());
    // The store's pooled connection is still open: the server says it is TLS.
    let name = db
        .location
        .to_str()
        .and_then(|u| u.rsplit('/').next())
        .expect("db");
    let tls = server
        .psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.datname = '{name}'"
            ),
        )
        .expect("pg_stat_ssl");
    assert_ne!(tls, "0", "no TLS connection from the store");
    drop(store);
    // Another CA: the server's certificate is refused.
    let other = db.dir.path().join("other-ca.pem");
    let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("ca");
    std::fs::write(&other, ca.cert.pem()).expect("write");
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.location.display(),
        other.display()
    );
    let err = AuditStore::open_existing(Path::new(&url)).expect_err("unknown CA");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}
