//! The PostgreSQL schema: the same tables as the SQLite file, with
//! `tidegate_audit_` names so the log can share a database.

/// The log.
pub(crate) const ENTRIES: &str = "tidegate_audit_entries";
/// Signed chain heads.
pub(crate) const HEADS: &str = "tidegate_audit_signed_heads";

/// Key of the transaction-scoped advisory lock every writer takes before
/// reading the head ("TGAU"): one writer at a time per database.
pub(crate) const WRITE_LOCK: i64 = 0x5447_4155;

/// Key of the advisory lock that serialises schema creation.
pub(crate) const SCHEMA_LOCK: i64 = 0x5447_4153;

/// Creates what is missing. `seq` is the primary key and `prev_hash`
/// unique: two writers that computed the same next entry cannot both
/// commit, whatever happens to the lock (the last line of defence against
/// forks). Triggers refuse UPDATE, DELETE and TRUNCATE.
pub(crate) const CREATE: &str = "
CREATE TABLE IF NOT EXISTS tidegate_audit_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tidegate_audit_entries (
    seq         BIGINT PRIMARY KEY CHECK (seq > 0),
    time_ms     BIGINT NOT NULL,
    phase       TEXT NOT NULL,
    operation   BIGINT,
    actor       TEXT NOT NULL,
    environment TEXT,
    cluster     TEXT,
    app         TEXT,
    action      TEXT NOT NULL,
    body        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL UNIQUE,
    hash        TEXT NOT NULL,
    outcome     TEXT
);
CREATE INDEX IF NOT EXISTS tidegate_audit_entries_time ON tidegate_audit_entries (time_ms);
CREATE INDEX IF NOT EXISTS tidegate_audit_entries_env_time ON tidegate_audit_entries (environment, time_ms);
CREATE INDEX IF NOT EXISTS tidegate_audit_entries_operation ON tidegate_audit_entries (operation, phase);
CREATE TABLE IF NOT EXISTS tidegate_audit_signed_heads (
    id           BIGSERIAL PRIMARY KEY,
    seq          BIGINT NOT NULL,
    hash         TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    signature    TEXT NOT NULL,
    signed_at_ms BIGINT NOT NULL
);
CREATE OR REPLACE FUNCTION tidegate_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the Tidegate audit log is append-only: % refused', TG_OP;
END
$$;
DROP TRIGGER IF EXISTS tidegate_audit_entries_append_only ON tidegate_audit_entries;
CREATE TRIGGER tidegate_audit_entries_append_only BEFORE UPDATE OR DELETE ON tidegate_audit_entries
    FOR EACH ROW EXECUTE FUNCTION tidegate_audit_append_only();
DROP TRIGGER IF EXISTS tidegate_audit_entries_no_truncate ON tidegate_audit_entries;
CREATE TRIGGER tidegate_audit_entries_no_truncate BEFORE TRUNCATE ON tidegate_audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION tidegate_audit_append_only();
DROP TRIGGER IF EXISTS tidegate_audit_signed_heads_append_only ON tidegate_audit_signed_heads;
CREATE TRIGGER tidegate_audit_signed_heads_append_only BEFORE UPDATE OR DELETE ON tidegate_audit_signed_heads
    FOR EACH ROW EXECUTE FUNCTION tidegate_audit_append_only();
DROP TRIGGER IF EXISTS tidegate_audit_signed_heads_no_truncate ON tidegate_audit_signed_heads;
CREATE TRIGGER tidegate_audit_signed_heads_no_truncate BEFORE TRUNCATE ON tidegate_audit_signed_heads
    FOR EACH STATEMENT EXECUTE FUNCTION tidegate_audit_append_only();
INSERT INTO tidegate_audit_meta (name, value) VALUES ('schema', '2')
    ON CONFLICT (name) DO NOTHING;
";
