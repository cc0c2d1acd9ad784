//! Tidegate's tamper-evident audit trail.
//!
//! Every switch, rollback, sync and drift correction leaves a [`Record`] in
//! an append-only log: an SQLite file ([`SqliteStore`], the default) or a
//! PostgreSQL database ([`PgStore`], for several replicas), both behind
//! [`AuditStore`] and chosen by a [`Location`], whose rows are linked
//! by a SHA-256 hash chain (see [`canonical`]) and whose head can be signed
//! with an Ed25519 key ([`signing`]). The engines write through the
//! [`AuditSink`] trait; [`MemorySink`] stands in for the store in their tests.
//!
//! Architecture invariant: this crate depends only on `tidegate-core` among
//! Tidegate's crates. It knows nothing of Git, rendering or Kubernetes
//! clients; callers hand it facts.
//!
//! See docs/audit.md for the schema, the chain definition and the
//! durability and concurrency rules.

mod append;
mod backend;
pub mod canonical;
mod chain;
pub mod entry;
mod error;
#[doc(hidden)]
pub mod fixture;
pub mod location;
mod migrate;
mod postgres;
pub mod schema;
pub mod signing;
mod sink;
mod store;
pub mod time;
mod verify;

pub use backend::AuditStore;
pub use chain::{ChainChecker, ChainProblem, StoredRow};
pub use entry::{
    Action, Actor, Change, Entry, ObjectRef, ObjectsChanged, Outcome, Phase, Record, Revision,
    SelectorChange, Seq, Trigger,
};
pub use error::AuditError;
pub use location::Location;
pub use migrate::{MigrateReport, migrate};
pub use postgres::PgStore;
pub use sink::{AuditSink, MemorySink, OperationId, now_ms};
pub use store::{Filter, SignedHead, SqliteStore, VerifyReport};
