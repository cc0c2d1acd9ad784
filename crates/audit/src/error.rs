//! Errors of the audit store.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// No database at the path, and the command only reads.
    #[error(
        "no audit database at {0} (nothing has been recorded yet, or --audit-db points elsewhere)"
    )]
    Missing(PathBuf),
    /// The file is not an SQLite database, or is damaged.
    #[error(
        "{path} is not a readable audit database: {reason}; it was left as it is (move it away to start a new log)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite or the schema check said.
        reason: String,
    },
    /// An SQLite database of another program.
    #[error(
        "{path} is an SQLite database but not a Tidegate audit log ({reason}); it was left as it is"
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },
    /// The entry could carry secret values or is otherwise unfit for the log.
    #[error("audit entry refused: {0}")]
    Refused(String),
    /// `finish_operation` for an operation that was never begun or is already finished.
    #[error("operation {0} has no open intent in the audit log")]
    UnknownOperation(u64),
    /// A signing or verifying key could not be read.
    #[error("bad key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Creating the database's folder or reading a file failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause (part of the message, so not also a `source`).
        cause: std::io::Error,
    },
    /// SQLite failed (the cause is part of the message, so not also a `source`).
    #[error("audit database error: {0}")]
    Sqlite(rusqlite::Error),
    /// PostgreSQL failed, or could not be reached.
    #[error("audit database error (PostgreSQL): {0}")]
    Postgres(String),
    /// The audit database location (`--audit-db`, `TIDEGATE_AUDIT_DB`) is not usable.
    #[error("audit database {location}: {reason}")]
    Location {
        /// The location as given (any password hidden).
        location: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A stored record could not be decoded.
    #[error("audit record {seq} is unreadable: {reason}")]
    Decode {
        /// Its sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// Adds the PostgreSQL errors (kept apart so the SQLite ones stay as they were).
impl AuditError {
    /// A PostgreSQL error, with the server's message and SQLSTATE when it sent one.
    pub(crate) fn postgres(e: &tokio_postgres::Error) -> Self {
        let reason = match e.as_db_error() {
            Some(db) => format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            ),
            None => {
                let mut text = e.to_string();
                let mut cause = std::error::Error::source(e);
                while let Some(c) = cause {
                    text.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                text
            }
        };
        AuditError::Postgres(reason)
    }
}

impl From<rusqlite::Error> for AuditError {
    fn from(e: rusqlite::Error) -> Self {
        AuditError::Sqlite(e)
    }
}
