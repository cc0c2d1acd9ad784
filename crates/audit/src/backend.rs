//! One store for callers, whichever database holds the trail.

use crate::AuditError;
use crate::entry::{Entry, Record, Seq};
use crate::location::Location;
use crate::postgres::PgStore;
use crate::sink::{AuditSink, OperationId};
use crate::store::{Filter, SignedHead, SqliteStore, VerifyReport};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::path::Path;

/// The audit trail in SQLite (the default) or PostgreSQL, chosen by the
/// `--audit-db` value (see [`Location`]). Callers use it the same way for
/// both.
#[derive(Debug)]
pub enum AuditStore {
    /// An SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PgStore),
}

macro_rules! both {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            AuditStore::Sqlite($s) => $e,
            AuditStore::Postgres($s) => $e,
        }
    };
}

impl AuditStore {
    /// Opens the trail at `location` (a path, `sqlite://…` or
    /// `postgres://…`), creating it if missing.
    pub fn open(location: &Path) -> Result<Self, AuditError> {
        Ok(match Location::parse(location)? {
            Location::Sqlite(p) => AuditStore::Sqlite(SqliteStore::open(&p)?),
            Location::Postgres(u) => AuditStore::Postgres(PgStore::open(&u)?),
        })
    }

    /// Opens an existing trail; [`AuditError::Missing`] if there is none.
    pub fn open_existing(location: &Path) -> Result<Self, AuditError> {
        Ok(match Location::parse(location)? {
            Location::Sqlite(p) => AuditStore::Sqlite(SqliteStore::open_existing(&p)?),
            Location::Postgres(u) => AuditStore::Postgres(PgStore::open_existing(&u)?),
        })
    }

    /// Opens an existing trail for reading: nothing is created or migrated.
    pub fn open_read_only(location: &Path) -> Result<Self, AuditError> {
        Ok(match Location::parse(location)? {
            Location::Sqlite(p) => AuditStore::Sqlite(SqliteStore::open_read_only(&p)?),
            Location::Postgres(u) => AuditStore::Postgres(PgStore::open_read_only(&u)?),
        })
    }

    /// Signs the chain head with `key` after every write from now on.
    pub fn with_signing_key(self, key: SigningKey) -> Self {
        match self {
            AuditStore::Sqlite(s) => AuditStore::Sqlite(s.with_signing_key(key)),
            AuditStore::Postgres(s) => AuditStore::Postgres(s.with_signing_key(key)),
        }
    }

    /// Where the trail is, for messages (a PostgreSQL password is hidden).
    pub fn describe(&self) -> String {
        match self {
            AuditStore::Sqlite(s) => s.path().display().to_string(),
            AuditStore::Postgres(s) => s.display().to_string(),
        }
    }

    /// Appends stand-alone events in one transaction.
    pub fn append_batch(&self, entries: Vec<Entry>) -> Result<Vec<Seq>, AuditError> {
        both!(self, s => s.append_batch(entries))
    }

    /// Signs the current head with `key` (`None` when the log is empty).
    pub fn sign_head(&self, key: &SigningKey) -> Result<Option<SignedHead>, AuditError> {
        both!(self, s => s.sign_head(key))
    }

    /// Every signed head, oldest first.
    pub fn signed_heads(&self) -> Result<Vec<SignedHead>, AuditError> {
        both!(self, s => s.signed_heads())
    }

    /// Number of entries.
    pub fn len(&self) -> Result<u64, AuditError> {
        both!(self, s => s.len())
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> Result<bool, AuditError> {
        both!(self, s => s.is_empty())
    }

    /// Records matching `filter`, in sequence order.
    pub fn records(&self, filter: &Filter) -> Result<Vec<Record>, AuditError> {
        both!(self, s => s.records(filter))
    }

    /// Calls `f` with each record matching `filter`, in sequence order.
    pub fn for_each(
        &self,
        filter: &Filter,
        f: impl FnMut(Record) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        both!(self, s => s.for_each(filter, f))
    }

    /// Intents without an outcome.
    pub fn interrupted(&self) -> Result<Vec<Record>, AuditError> {
        both!(self, s => s.interrupted())
    }

    /// Recomputes the whole chain and checks the signed heads.
    pub fn verify(&self, trusted: Option<&VerifyingKey>) -> Result<VerifyReport, AuditError> {
        both!(self, s => s.verify(trusted))
    }
}

impl AuditSink for AuditStore {
    fn verify_chain(&self) -> Result<bool, AuditError> {
        Ok(self.verify(None)?.ok())
    }

    fn append(&self, entry: Entry) -> Result<Seq, AuditError> {
        both!(self, s => s.append(entry))
    }

    fn begin_operation(&self, intent: Entry) -> Result<OperationId, AuditError> {
        both!(self, s => s.begin_operation(intent))
    }

    fn record(&self, operation: OperationId, entry: Entry) -> Result<Seq, AuditError> {
        both!(self, s => s.record(operation, entry))
    }

    fn record_batch(
        &self,
        operation: OperationId,
        entries: Vec<Entry>,
    ) -> Result<Vec<Seq>, AuditError> {
        both!(self, s => s.record_batch(operation, entries))
    }

    fn finish_operation(&self, operation: OperationId, outcome: Entry) -> Result<Seq, AuditError> {
        both!(self, s => s.finish_operation(operation, outcome))
    }

    fn open_operations(&self) -> Result<Vec<Record>, AuditError> {
        both!(self, s => s.open_operations())
    }
}
