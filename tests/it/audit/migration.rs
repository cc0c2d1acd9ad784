//! A database written by the schema v1 binary opens, migrates and verifies;
//! the v1 binary still reads and appends to the migrated file.

use super::{DAY, T0, data, temp_db};
use tidegate_audit::{AuditSink, Filter, SqliteStore, fixture};

const FIXTURE: &str = "audit/v1.db";

/// Regenerates tests/data/audit/v1.db with the v1 schema when
/// TIDEGATE_WRITE_FIXTURES=1 (it is committed; normally this does nothing).
#[test]
fn write_v1_fixture() {
    if std::env::var_os("TIDEGATE_WRITE_FIXTURES").is_none() {
        return;
    }
    let path = data(FIXTURE);
    let _ = std::fs::remove_file(&path);
    let store = SqliteStore::open_as_version(&path, 1).expect("create v1");
    assert_eq!(store.schema_version(), 1);
    fixture::fleet_log(&store, T0, DAY, 4, true).expect("fixture");
    store.checkpoint().expect("checkpoint");
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.pragma_update(None, "journal_mode", "DELETE")
        .expect("journal");
}

#[test]
fn v1_database_migrates_to_v2() {
    let (_d, path) = temp_db();
    std::fs::copy(data(FIXTURE), &path).expect("copy fixture");
    {
        let conn = rusqlite::Connection::open(&path).expect("raw");
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, 1, "the fixture is a v1 database");
    }
    let store = SqliteStore::open(&path).expect("open and migrate");
    assert_eq!(store.schema_version(), 2);
    let before = store.verify(None).expect("verify");
    assert!(before.ok(), "{:?}", before.problem);
    let n = before.entries;
    assert!(n > 10);
    // The new column was backfilled from the hashed bodies.
    let filled: i64 = rusqlite::Connection::open(&path)
        .expect("raw")
        .query_row(
            "SELECT count(*) FROM entries WHERE outcome IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(filled > 0);
    assert_eq!(store.interrupted().expect("interrupted").len(), 1);
    store
        .append(super::event(1))
        .expect("append after migration");
    assert_eq!(store.verify(None).expect("verify").entries, n + 1);
    drop(store);

    // The previous binary (v1) keeps reading and appending during an upgrade.
    let old = SqliteStore::open_as_version(&path, 1).expect("v1 opens v2");
    assert_eq!(old.schema_version(), 2);
    assert_eq!(
        old.records(&Filter::default()).expect("read").len() as u64,
        n + 1
    );
    drop(old);
    let new = SqliteStore::open_existing(&path).expect("open");
    let report = new.verify(None).expect("verify");
    assert!(report.ok(), "{:?}", report.problem);
}
