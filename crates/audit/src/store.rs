//! The SQLite store: append-only, hash-chained, safe for several writers.

use crate::AuditError;
use crate::append::{self, Columns, Intent, Pending};
use crate::chain::{ChainProblem, StoredRow};
use crate::entry::{Entry, Phase, Record, Seq};
use crate::schema::{self, APPLICATION_ID, LATEST};
use crate::signing;
use crate::sink::{AuditSink, OperationId, now_ms};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params_from_iter};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How long a writer waits for another process's write transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which entries to read. Empty fields match everything; times are Unix ms,
/// `since` inclusive, `until` exclusive.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this environment.
    pub environment: Option<String>,
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this app.
    pub app: Option<String>,
    /// Only these actions (by name).
    pub actions: Vec<String>,
    /// From this time on.
    pub since_ms: Option<i64>,
    /// Before this time.
    pub until_ms: Option<i64>,
    /// Only records after this sequence number (what a reader following
    /// the trail has not seen yet).
    pub after_seq: Option<Seq>,
}

/// A value bound to one of a [`Filter`]'s SQL conditions.
#[derive(Debug, Clone)]
pub(crate) enum FilterArg {
    /// A text column's value.
    Text(String),
    /// A time in Unix ms.
    Int(i64),
}

impl Filter {
    /// The filter as SQL conditions (each ` AND …`) on the entries table's
    /// columns, and their values in order; `mark(n)` writes the `n`-th
    /// placeholder, counting from `used + 1` (the query's own placeholders
    /// come first).
    pub(crate) fn conditions(
        &self,
        used: usize,
        mark: impl Fn(usize) -> String,
    ) -> (String, Vec<FilterArg>) {
        let mut sql = String::new();
        let mut args = Vec::new();
        let push = |args: &mut Vec<FilterArg>, arg: FilterArg| {
            args.push(arg);
            mark(used + args.len())
        };
        for (col, value) in [
            ("environment", &self.environment),
            ("cluster", &self.cluster),
            ("app", &self.app),
        ] {
            if let Some(v) = value {
                let m = push(&mut args, FilterArg::Text(v.clone()));
                sql.push_str(&format!(" AND {col} = {m}"));
            }
        }
        if !self.actions.is_empty() {
            let marks: Vec<String> = self
                .actions
                .iter()
                .map(|a| push(&mut args, FilterArg::Text(a.clone())))
                .collect();
            sql.push_str(&format!(" AND action IN ({})", marks.join(", ")));
        }
        if let Some(t) = self.since_ms {
            let m = push(&mut args, FilterArg::Int(t));
            sql.push_str(&format!(" AND time_ms >= {m}"));
        }
        if let Some(t) = self.until_ms {
            let m = push(&mut args, FilterArg::Int(t));
            sql.push_str(&format!(" AND time_ms < {m}"));
        }
        if let Some(seq) = self.after_seq {
            let m = push(&mut args, FilterArg::Int(seq as i64));
            sql.push_str(&format!(" AND seq > {m}"));
        }
        (sql, args)
    }
}

/// A signed chain head as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// Sequence number of the head entry.
    pub seq: Seq,
    /// Its hash.
    pub hash: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Signature over [`signing::head_message`], hex.
    pub signature: String,
    /// When it was signed, Unix ms.
    pub signed_at_ms: i64,
}

/// The result of [`SqliteStore::verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Entries checked and found good (all of them when `problem` is `None`).
    pub entries: u64,
    /// Sequence number and hash of the last good entry.
    pub head: Option<(Seq, String)>,
    /// The newest valid signed head (with the trusted key, when one was given).
    pub signed_head: Option<Seq>,
    /// The first problem, if any.
    pub problem: Option<ChainProblem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

#[derive(Deserialize)]
struct Body {
    seq: Seq,
    time_ms: i64,
    phase: Phase,
    #[serde(default)]
    operation: Option<Seq>,
    #[serde(flatten)]
    entry: Entry,
}

/// Decodes a stored body into a record.
pub(crate) fn decode(
    seq: Seq,
    body: &str,
    prev_hash: String,
    hash: String,
) -> Result<Record, AuditError> {
    let b: Body = serde_json::from_str(body).map_err(|e| AuditError::Decode {
        seq,
        reason: e.to_string(),
    })?;
    Ok(Record {
        seq: b.seq,
        time_ms: b.time_ms,
        phase: b.phase,
        operation: b.operation,
        entry: b.entry,
        prev_hash,
        hash,
    })
}

/// The audit log in an SQLite file (WAL mode).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    schema: u32,
    signing_key: Option<SigningKey>,
    unsynced: std::sync::atomic::AtomicBool,
    /// The connection's current `PRAGMA synchronous`, to set it only on change.
    sync_mode: Mutex<String>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("schema", &self.schema)
            .field("signing", &self.signing_key.is_some())
            .finish()
    }
}

// === impl SqliteStore ===

impl SqliteStore {
    /// `$XDG_STATE_HOME/tidegate/audit.db`, else `~/.local/state/tidegate/audit.db`.
    pub fn default_path() -> PathBuf {
        let state = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state"))
            })
            .unwrap_or_else(|| PathBuf::from("."));
        state.join("tidegate").join("audit.db")
    }

    /// Opens the log at `path`, creating it (and its folder) if missing.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        Self::open_inner(path, true, LATEST)
    }

    /// Opens an existing log; [`AuditError::Missing`] if there is none.
    pub fn open_existing(path: &Path) -> Result<Self, AuditError> {
        Self::open_inner(path, false, LATEST)
    }

    /// Opens an existing log for reading only, as auditors do with a copy:
    /// nothing is written (no migration, no journal-mode change, no `-wal`
    /// or `-shm` file created when the folder or file is read-only).
    /// Appending through it fails.
    pub fn open_read_only(path: &Path) -> Result<Self, AuditError> {
        check_header(path, false)?;
        let corrupt = |reason: String| AuditError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        // Without a `-wal` file no writer is active and the main file holds
        // every entry: open it immutable, so SQLite creates no `-shm` (a
        // read-only folder could not hold one).
        let uri = if Path::new(&wal).exists() {
            format!("file:{}?mode=ro", uri_path(path))
        } else {
            format!("file:{}?mode=ro&immutable=1", uri_path(path))
        };
        let conn = Connection::open_with_flags(&uri, flags).map_err(|e| corrupt(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let classify = classifier(path);
        let (app, version, tables) = probe(&conn).map_err(classify)?;
        if app != APPLICATION_ID && (app != 0 || tables > 0) {
            return Err(AuditError::Foreign {
                path: path.to_path_buf(),
                reason: format!("application_id is {app:#x}, expected {APPLICATION_ID:#x}"),
            });
        }
        Self::checked(conn, path, version)
    }

    /// Opens (creating if missing) with the schema brought only up to
    /// `version`: behaves as the binary of that version did. For migration
    /// tests and fixtures.
    #[doc(hidden)]
    pub fn open_as_version(path: &Path, version: u32) -> Result<Self, AuditError> {
        Self::open_inner(path, true, version)
    }

    fn open_inner(path: &Path, create: bool, target: u32) -> Result<Self, AuditError> {
        // Several processes creating one new file at once: SQLite answers
        // "database is locked" at once (no busy wait) to the ones whose
        // switch to WAL meets another's open connection; they try again.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match Self::open_once(path, create, target) {
                Err(AuditError::Sqlite(e))
                    if is_busy(&e) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path, create: bool, target: u32) -> Result<Self, AuditError> {
        let corrupt = |reason: String| AuditError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        check_header(path, create)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(|e| corrupt(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let classify = classifier(path);
        let (app, _, tables) = probe(&conn).map_err(&classify)?;
        if app != APPLICATION_ID && (app != 0 || tables > 0) {
            return Err(AuditError::Foreign {
                path: path.to_path_buf(),
                reason: format!("application_id is {app:#x}, expected {APPLICATION_ID:#x}"),
            });
        }
        let mut mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .map_err(&classify)?;
        if !mode.eq_ignore_ascii_case("wal") {
            mode = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
                .map_err(&classify)?;
        }
        if !mode.eq_ignore_ascii_case("wal") {
            tracing_free_warn(&format!("journal_mode is {mode}, not WAL"));
        }
        let version = {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version < target {
                schema::migrate(&tx, version, target)?;
            }
            let version: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            tx.commit()?;
            version
        };
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::checked(conn, path, version)
    }

    /// The store on `conn`, once a v1+ file is known to have its log table.
    fn checked(conn: Connection, path: &Path, version: u32) -> Result<Self, AuditError> {
        if version >= 1 {
            check_entries_table(&conn, path)?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            schema: version,
            signing_key: None,
            unsynced: std::sync::atomic::AtomicBool::new(false),
            sync_mode: Mutex::new("NORMAL".to_string()),
        })
    }

    /// Signs the chain head with `key` after every write from now on.
    pub fn with_signing_key(mut self, key: SigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// Turns fsync off for every write (bulk loading of test and benchmark
    /// data only: a crash may then lose committed entries).
    #[doc(hidden)]
    pub fn set_unsynced(&self, unsynced: bool) {
        self.unsynced
            .store(unsynced, std::sync::atomic::Ordering::Relaxed);
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Schema version of the file (may be newer than [`schema::LATEST`]).
    pub fn schema_version(&self) -> u32 {
        self.schema
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends stand-alone events in one transaction.
    pub fn append_batch(&self, entries: Vec<Entry>) -> Result<Vec<Seq>, AuditError> {
        self.write(entries.into_iter().map(Pending::Event).collect(), false)
    }

    fn write(&self, items: Vec<Pending>, durable: bool) -> Result<Vec<Seq>, AuditError> {
        append::check_all(&items)?;
        let mut conn = self.lock();
        let sync = if self.unsynced.load(std::sync::atomic::Ordering::Relaxed) {
            "OFF"
        } else if durable {
            "FULL"
        } else {
            "NORMAL"
        };
        if self
            .sync_mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_str()
            != sync
        {
            conn.pragma_update(None, "synchronous", sync)?;
            *self
                .sync_mode
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = sync.to_string();
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The head is read inside the write transaction: no other writer can
        // append between this read and our commit.
        let head: Option<(Seq, String)> = tx
            .query_row(
                "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((seq_at(r, 0)?, r.get(1)?)),
            )
            .optional()?;
        let sealed = append::seal_all(items, head, |op| open_intent(&tx, op))?;
        let with_outcome = self.schema >= 2;
        let mut out = Vec::with_capacity(sealed.len());
        {
            let mut insert = tx.prepare(if with_outcome {
                "INSERT INTO entries (seq, time_ms, phase, operation, actor, environment, cluster, app, action, body, prev_hash, hash, outcome) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            } else {
                "INSERT INTO entries (seq, time_ms, phase, operation, actor, environment, cluster, app, action, body, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            })?;
            for (record, body) in &sealed {
                insert_row(&mut insert, record, body, with_outcome)?;
                out.push(record.seq);
            }
        }
        if let (Some(key), true, Some((last, _))) = (&self.signing_key, with_outcome, sealed.last())
        {
            insert_signed_head(&tx, key, last.seq, &last.hash)?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// Signs the current head with `key` and stores the signature
    /// (`None` when the log is empty).
    pub fn sign_head(&self, key: &SigningKey) -> Result<Option<SignedHead>, AuditError> {
        if self.schema < 2 {
            return Err(AuditError::Refused(
                "signing needs schema version 2 or newer".into(),
            ));
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let head: Option<(Seq, String)> = tx
            .query_row(
                "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((seq_at(r, 0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((seq, hash)) = head else {
            return Ok(None);
        };
        let signed = insert_signed_head(&tx, key, seq, &hash)?;
        tx.commit()?;
        Ok(Some(signed))
    }

    /// Every signed head, oldest first.
    pub fn signed_heads(&self) -> Result<Vec<SignedHead>, AuditError> {
        if self.schema < 2 {
            return Ok(Vec::new());
        }
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT seq, hash, public_key, signature, signed_at_ms FROM signed_heads ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SignedHead {
                seq: seq_at(r, 0)?,
                hash: r.get(1)?,
                public_key: r.get(2)?,
                signature: r.get(3)?,
                signed_at_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of entries.
    pub fn len(&self) -> Result<u64, AuditError> {
        Ok(self
            .lock()
            .query_row("SELECT count(*) FROM entries", [], |r| seq_at(r, 0))?)
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> Result<bool, AuditError> {
        Ok(self.len()? == 0)
    }

    /// Records matching `filter`, in sequence order.
    pub fn records(&self, filter: &Filter) -> Result<Vec<Record>, AuditError> {
        let mut out = Vec::new();
        self.for_each(filter, |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with each record matching `filter`, in sequence order.
    pub fn for_each(
        &self,
        filter: &Filter,
        mut f: impl FnMut(Record) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        let (conditions, args) = filter.conditions(0, |n| format!("?{n}"));
        let sql = format!(
            "SELECT seq, body, prev_hash, hash FROM entries WHERE 1=1{conditions} ORDER BY seq"
        );
        let args = args.into_iter().map(|a| match a {
            FilterArg::Text(t) => rusqlite::types::Value::from(t),
            FilterArg::Int(i) => rusqlite::types::Value::from(i),
        });
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(row) = rows.next()? {
            let seq: Seq = seq_at(row, 0)?;
            let body: String = row.get(1)?;
            f(decode(seq, &body, row.get(2)?, row.get(3)?)?)?;
        }
        Ok(())
    }

    /// Up to `limit` stored records after `after`, each with its body as
    /// stored (for copying the trail verbatim).
    pub(crate) fn sealed_after(
        &self,
        after: Seq,
        limit: i64,
    ) -> Result<Vec<(Record, String)>, AuditError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT seq, body, prev_hash, hash FROM entries WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut rows = stmt.query(rusqlite::params![after as i64, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: Seq = seq_at(row, 0)?;
            let body: String = row.get(1)?;
            out.push((decode(seq, &body, row.get(2)?, row.get(3)?)?, body));
        }
        Ok(out)
    }

    /// Intents that have no outcome: operations a crash interrupted (or
    /// still running).
    pub fn interrupted(&self) -> Result<Vec<Record>, AuditError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT i.seq, i.body, i.prev_hash, i.hash FROM entries i WHERE i.phase = 'intent' \
             AND NOT EXISTS (SELECT 1 FROM entries o WHERE o.operation = i.seq AND o.phase = 'outcome') \
             ORDER BY i.seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: Seq = seq_at(row, 0)?;
            let body: String = row.get(1)?;
            out.push(decode(seq, &body, row.get(2)?, row.get(3)?)?);
        }
        Ok(out)
    }

    /// Recomputes the whole chain and checks the signed heads. With
    /// `trusted`, only heads signed by that key count, and at least one must
    /// exist.
    pub fn verify(&self, trusted: Option<&VerifyingKey>) -> Result<VerifyReport, AuditError> {
        let heads = self.signed_heads()?;
        let with_outcome = self.schema >= 2;
        let conn = self.lock();
        let sql = format!(
            "SELECT seq, time_ms, phase, operation, actor, environment, cluster, app, action, body, prev_hash, hash{} FROM entries ORDER BY seq",
            if with_outcome { ", outcome" } else { "" }
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        crate::verify::verify_chain(&heads, trusted, || {
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            let int = |i: usize| -> rusqlite::Result<Option<String>> {
                Ok(r.get::<_, Option<i64>>(i)?.map(|v| v.to_string()))
            };
            let text = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
            let mut columns = vec![
                ("time_ms", int(1)?),
                ("phase", text(2)?),
                ("operation", int(3)?),
                ("actor", text(4)?),
                ("environment", text(5)?),
                ("cluster", text(6)?),
                ("app", text(7)?),
                ("action", text(8)?),
            ];
            if with_outcome {
                columns.push(("outcome", text(12)?));
            }
            Ok(Some(StoredRow {
                seq: seq_at(r, 0)?,
                columns,
                body: r.get(9)?,
                prev_hash: r.get(10)?,
                hash: r.get(11)?,
            }))
        })
    }

    /// Copies the log into one self-contained file (WAL checkpointed into
    /// it) at `dest`; for fixtures and backups.
    pub fn checkpoint(&self) -> Result<(), AuditError> {
        self.lock()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

fn tracing_free_warn(message: &str) {
    // The audit crate has no logging dependency; stderr is enough for this
    // one-off (network file systems without shared memory).
    eprintln!("warning: audit database: {message}");
}

/// The intent entry and its time, for an operation.
/// Checks that `path` is missing (creating its folder when `create`), empty,
/// or starts with the SQLite header.
fn check_header(path: &Path, create: bool) -> Result<(), AuditError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > 0 => {
            let mut header = [0u8; 16];
            let read = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header));
            if read.is_err() || &header != b"SQLite format 3\0" {
                return Err(AuditError::Corrupt {
                    path: path.to_path_buf(),
                    reason: "it does not start with the SQLite header".into(),
                });
            }
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Err(AuditError::Missing(path.to_path_buf()));
            }
            match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                Some(dir) => std::fs::create_dir_all(dir).map_err(|source| AuditError::Io {
                    path: dir.to_path_buf(),
                    cause: source,
                }),
                None => Ok(()),
            }
        }
        Err(source) => Err(AuditError::Io {
            path: path.to_path_buf(),
            cause: source,
        }),
    }
}

/// `application_id`, `user_version` and the number of schema objects, read
/// in one transaction: one snapshot. (Read one by one, another process
/// creating the same new file can commit its schema in between: this one
/// then sees `application_id` 0 beside the new tables and takes a fresh
/// Tidegate file for a foreign database.)
fn probe(conn: &Connection) -> rusqlite::Result<(i32, u32, i64)> {
    let tx = conn.unchecked_transaction()?;
    let app: i32 = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    tx.commit()?;
    Ok((app, version, tables))
}

/// SQLite's "database is locked" / "database table is locked".
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Damage shows as NotADatabase/DatabaseCorrupt; anything else (a lock
/// held too long, I/O) is reported as itself.
fn classifier(path: &Path) -> impl Fn(rusqlite::Error) -> AuditError + '_ {
    move |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            AuditError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        }
        _ => AuditError::Sqlite(e),
    }
}

/// A v1+ file must have the log table.
fn check_entries_table(conn: &Connection, path: &Path) -> Result<(), AuditError> {
    let has: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'entries'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        return Err(AuditError::Corrupt {
            path: path.to_path_buf(),
            reason: "the `entries` table is missing".into(),
        });
    }
    Ok(())
}

/// `path` for an SQLite `file:` URI (`?`, `#` and `%` escaped).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

fn open_intent(tx: &Connection, op: OperationId) -> Result<Intent, AuditError> {
    let row: Option<(String, String, String)> = tx
        .query_row(
            "SELECT body, prev_hash, hash FROM entries WHERE seq = ?1 AND phase = 'intent'",
            [op.0 as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((body, prev, hash)) = row else {
        return Err(AuditError::UnknownOperation(op.0));
    };
    let record = decode(op.0, &body, prev, hash)?;
    let closed: i64 = tx.query_row(
        "SELECT count(*) FROM entries WHERE operation = ?1 AND phase = 'outcome'",
        [op.0 as i64],
        |r| r.get(0),
    )?;
    Ok(Intent {
        entry: record.entry,
        time_ms: record.time_ms,
        closed: closed > 0,
    })
}

/// Inserts one sealed record with its columns.
fn insert_row(
    insert: &mut rusqlite::Statement<'_>,
    record: &Record,
    body: &str,
    with_outcome: bool,
) -> Result<(), AuditError> {
    let c = Columns::of(record);
    let mut values: Vec<rusqlite::types::Value> = vec![
        c.seq.into(),
        c.time_ms.into(),
        c.phase.to_string().into(),
        c.operation.into(),
        c.actor.to_string().into(),
        c.environment.map(str::to_string).into(),
        c.cluster.map(str::to_string).into(),
        c.app.map(str::to_string).into(),
        c.action.to_string().into(),
        body.to_string().into(),
        record.prev_hash.clone().into(),
        record.hash.clone().into(),
    ];
    if with_outcome {
        values.push(c.outcome.map(str::to_string).into());
    }
    insert.execute(params_from_iter(values))?;
    Ok(())
}

fn insert_signed_head(
    tx: &Connection,
    key: &SigningKey,
    seq: Seq,
    hash: &str,
) -> Result<SignedHead, AuditError> {
    let head = SignedHead {
        seq,
        hash: hash.to_string(),
        public_key: signing::public_key_hex(&key.verifying_key()),
        signature: signing::sign_head(key, seq, hash),
        signed_at_ms: now_ms(),
    };
    tx.execute(
        "INSERT INTO signed_heads (seq, hash, public_key, signature, signed_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![head.seq as i64, head.hash, head.public_key, head.signature, head.signed_at_ms],
    )?;
    Ok(head)
}

impl AuditSink for SqliteStore {
    fn verify_chain(&self) -> Result<bool, AuditError> {
        Ok(self.verify(None)?.ok())
    }

    fn append(&self, entry: Entry) -> Result<Seq, AuditError> {
        first(self.write(vec![Pending::Event(entry)], false)?)
    }

    fn begin_operation(&self, intent: Entry) -> Result<OperationId, AuditError> {
        first(self.write(vec![Pending::Intent(intent)], true)?).map(OperationId)
    }

    fn record(&self, operation: OperationId, entry: Entry) -> Result<Seq, AuditError> {
        first(self.write(vec![Pending::Step(operation, entry)], false)?)
    }

    fn record_batch(
        &self,
        operation: OperationId,
        entries: Vec<Entry>,
    ) -> Result<Vec<Seq>, AuditError> {
        self.write(
            entries
                .into_iter()
                .map(|e| Pending::Step(operation, e))
                .collect(),
            false,
        )
    }

    fn finish_operation(&self, operation: OperationId, outcome: Entry) -> Result<Seq, AuditError> {
        first(self.write(vec![Pending::Outcome(operation, outcome)], true)?)
    }

    fn open_operations(&self) -> Result<Vec<Record>, AuditError> {
        SqliteStore::interrupted(self)
    }
}

fn first(seqs: Vec<Seq>) -> Result<Seq, AuditError> {
    seqs.first()
        .copied()
        .ok_or_else(|| AuditError::Refused("nothing to append".into()))
}

/// A sequence number column (SQLite integers are signed).
fn seq_at(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Seq> {
    Ok(row.get::<_, i64>(i)?.max(0) as Seq)
}

#[cfg(test)]
#[path = "store_open_tests.rs"]
mod open_tests;
