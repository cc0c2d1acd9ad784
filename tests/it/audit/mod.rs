//! The audit trail and its reports (crates/audit, crates/report): tampering,
//! concurrency, crashes, migrations, golden reports, the HTML report in a
//! headless browser.

/// Defines one test per backend: `name::sqlite` and `name::postgres`, each
/// calling the body with a fresh [`TestDb`].
macro_rules! on_both_backends {
    ($(#[doc = $doc:literal])* fn $name:ident($db:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run($db: crate::audit::TestDb) $body
            #[test]
            fn sqlite() {
                run(crate::audit::TestDb::new(crate::audit::Backend::Sqlite, stringify!($name)))
            }
            #[test]
            fn postgres() {
                run(crate::audit::TestDb::new(crate::audit::Backend::Postgres, stringify!($name)))
            }
        }
    };
}

mod chain;
mod child;
mod migration;
pub(crate) mod pg;
mod postgres;
mod reports;
mod store;

use std::path::{Path, PathBuf};
use tidegate_audit::{Action, Actor, AuditStore, Entry, Trigger};

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

/// Which database a parametrised test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (the default store).
    Sqlite,
    /// A database on the test process's PostgreSQL server.
    Postgres,
}

/// A fresh, empty audit database on `backend`, and ways to reach it
/// behind the store's back (for tampering).
pub struct TestDb {
    /// The backend.
    pub backend: Backend,
    /// The `--audit-db` value: a file path or a `postgres://` URL.
    pub location: PathBuf,
    /// The temporary folder (the SQLite file, keys, copies).
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// A new database; `hint` names it on PostgreSQL.
    pub fn new(backend: Backend, hint: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = match backend {
            Backend::Sqlite => dir.path().join("audit.db"),
            Backend::Postgres => PathBuf::from(pg::new_database(hint)),
        };
        TestDb {
            backend,
            location,
            dir,
        }
    }

    /// Opens (creating) the store.
    pub fn open(&self) -> AuditStore {
        AuditStore::open(&self.location).expect("open")
    }

    /// Opens the existing store.
    pub fn open_existing(&self) -> AuditStore {
        AuditStore::open_existing(&self.location).expect("open existing")
    }

    /// Runs SQL behind the store's back, table names as in the SQLite file
    /// (`entries`, `signed_heads`); with `bypass_triggers`, the append-only
    /// triggers do not fire. On PostgreSQL this is `psql`.
    pub fn sql(&self, sql: &str, bypass_triggers: bool) -> Result<String, String> {
        match self.backend {
            Backend::Sqlite => {
                let conn = raw(&self.location, bypass_triggers);
                let mut out = Vec::new();
                let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
                let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
                while let Some(row) = rows.next().map_err(|e| e.to_string())? {
                    let v: rusqlite::types::Value = row.get(0).map_err(|e| e.to_string())?;
                    out.push(match v {
                        rusqlite::types::Value::Text(t) => t,
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        other => format!("{other:?}"),
                    });
                }
                Ok(out.join("\n"))
            }
            Backend::Postgres => {
                let url = self.location.to_str().expect("url");
                let db = url.rsplit('/').next().expect("db name");
                let mut script = String::new();
                if bypass_triggers {
                    // As superuser: triggers do not fire in this session.
                    script.push_str("SET session_replication_role = replica; ");
                }
                script.push_str(&pg_tables(sql));
                pg::server().psql(db, &script)
            }
        }
    }

    /// Like [`TestDb::sql`] for several `;`-separated statements run one by one.
    pub fn sql_batch(&self, sql: &str, bypass_triggers: bool) -> Result<(), String> {
        match self.backend {
            Backend::Sqlite => raw(&self.location, bypass_triggers)
                .execute_batch(sql)
                .map_err(|e| e.to_string()),
            Backend::Postgres => self.sql(sql, bypass_triggers).map(drop),
        }
    }
}

/// The SQLite table names in `sql` renamed to the PostgreSQL store's.
fn pg_tables(sql: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match word.as_str() {
            "entries" => out.push_str("tidegate_audit_entries"),
            "signed_heads" => out.push_str("tidegate_audit_signed_heads"),
            w => out.push_str(w),
        }
        word.clear();
    };
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}
