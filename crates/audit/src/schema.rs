//! Schema versions and forward-only migrations.
//!
//! Rules (so that the binary before an upgrade and the one after can both
//! read and append to one database while both run): a migration only adds
//! tables, columns and indexes; it never renames, drops or repurposes one.
//! The record body (canonical JSON) is the source of truth; columns are
//! copies of body fields for filtering, and may be `NULL` where an older
//! binary did not know them.

use rusqlite::Connection;

/// `PRAGMA application_id` of a Tidegate audit database ("TGAU").
pub const APPLICATION_ID: i32 = 0x5447_4155;

/// The newest schema this binary knows.
pub const LATEST: u32 = 2;

/// Version 1: the log, its indexes, the append-only triggers.
const V1: &str = "
CREATE TABLE entries (
    seq         INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    phase       TEXT NOT NULL,
    operation   INTEGER,
    actor       TEXT NOT NULL,
    environment TEXT,
    cluster     TEXT,
    app         TEXT,
    action      TEXT NOT NULL,
    body        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX entries_time ON entries (time_ms);
CREATE INDEX entries_env_time ON entries (environment, time_ms);
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the Tidegate audit log is append-only: UPDATE refused'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the Tidegate audit log is append-only: DELETE refused'); END;
";

/// Version 2: an `outcome` column (backfilled from the bodies) and an index
/// by operation, for finding interrupted operations without reading bodies;
/// the table of signed chain heads.
const V2: &str = "
ALTER TABLE entries ADD COLUMN outcome TEXT;
DROP TRIGGER entries_no_update;
UPDATE entries SET outcome = json_extract(body, '$.outcome');
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the Tidegate audit log is append-only: UPDATE refused'); END;
CREATE INDEX entries_operation ON entries (operation, phase);
CREATE TABLE signed_heads (
    id           INTEGER PRIMARY KEY,
    seq          INTEGER NOT NULL,
    hash         TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    signature    TEXT NOT NULL,
    signed_at_ms INTEGER NOT NULL
);
CREATE TRIGGER signed_heads_no_update BEFORE UPDATE ON signed_heads
BEGIN SELECT RAISE(ABORT, 'the Tidegate audit log is append-only: UPDATE refused'); END;
CREATE TRIGGER signed_heads_no_delete BEFORE DELETE ON signed_heads
BEGIN SELECT RAISE(ABORT, 'the Tidegate audit log is append-only: DELETE refused'); END;
";

const MIGRATIONS: [&str; LATEST as usize] = [V1, V2];

/// Brings the schema from `current` up to `target` (inside the caller's
/// write transaction). Versions above `target` are left alone.
pub(crate) fn migrate(conn: &Connection, current: u32, target: u32) -> rusqlite::Result<()> {
    for version in current + 1..=target.min(LATEST) {
        if let Some(sql) = MIGRATIONS.get(version as usize - 1) {
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", version)?;
        }
    }
    if current == 0 {
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    Ok(())
}
