//! The audit trail and its reports (crates/audit, crates/report): tampering,
//! concurrency, crashes, migrations, golden reports, the HTML report in a
//! headless browser.

mod chain;
mod child;
mod migration;
mod reports;
mod store;

use std::path::{Path, PathBuf};
use tidegate_audit::{Action, Actor, Entry, Trigger};

/// 2026-11-01T00:00:00Z.
pub const T0: i64 = 1_793_491_200_000;
/// One day.
pub const DAY: i64 = 86_400_000;

/// A fresh database path in a new temporary folder (kept alive by the guard).
pub fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    (dir, path)
}

/// A plain event.
pub fn event(n: u64) -> Entry {
    Entry::new(Actor::new("tester@host", Trigger::Cli), Action::Apply)
        .env("prod")
        .cluster("eks-us-east-1")
        .app("gin-app")
        .message(format!("step {n}"))
}

/// Opens a raw connection (for tampering), with the triggers dropped when asked.
pub fn raw(path: &Path, drop_triggers: bool) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    if drop_triggers {
        conn.execute_batch(
            "DROP TRIGGER IF EXISTS entries_no_update; DROP TRIGGER IF EXISTS entries_no_delete;",
        )
        .expect("drop triggers");
    }
    conn
}

/// Repository-relative test data.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(rel)
}
