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
    /// A stored record could not be decoded.
    #[error("audit record {seq} is unreadable: {reason}")]
    Decode {
        /// Its sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
}

impl From<rusqlite::Error> for AuditError {
    fn from(e: rusqlite::Error) -> Self {
        AuditError::Sqlite(e)
    }
}
