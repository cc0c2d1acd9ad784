//! The sync engine for one cluster.
//!
//! [`Engine::plan`] validates everything before any write: every kind is
//! resolved by discovery, every object is dry-run applied (server-side
//! apply, `dryRun=All`, field manager `tidegate`) and diffed against the live
//! object, conflicts with other field managers and invalid objects are
//! collected, and the in-cluster inventory says what to prune.
//! [`Engine::apply`] then applies only what differs, in order (Namespaces,
//! CRDs — waiting until Established — RBAC, config, Services, workloads,
//! Ingresses, then `tidegate.dev/sync-wave`), prunes, and records the new
//! inventory. A plan with problems writes nothing.
//!
//! Every sync that changes a cluster is recorded in the audit trail when one
//! is attached ([`Engine::with_audit`]): an intent before the first write
//! (committed with fsync), what was applied, corrected and pruned, and the
//! outcome.
//!
//! Sync hooks (`tidegate.dev/hook` Jobs, see `tidegate_core::sync_hooks`)
//! are not objects of the plan: [`Engine::sync`] runs an app's PreSync
//! hooks after the intent and before its first object is applied, and
//! stops with [`SyncError::Hook`] when one fails; PostSync and SyncFail
//! hooks are run by the caller ([`Engine::run_hooks`], or
//! [`Engine::run_hooks_audited`] after a single-cluster sync) once the
//! objects are Healthy or the cluster failed.
//!
//! The engine never prints: it returns structured results per object and
//! reports progress through a callback, so the CLI and the controller can
//! both drive it.

mod audit;
mod dryrun;
mod engine;
mod error;
mod failfast;
mod fresh;
mod hooks;
mod inventory;
mod live;
mod plan;
mod read;
mod report;
pub mod verdicts;
mod wait;

pub use audit::Audit;
pub use dryrun::DryRunCache;
pub use engine::{Engine, Target};
pub use error::{ObjectProblem, SyncError};
pub use hooks::{HOOK_LOG_LINES, HookOutcome, HookRun, hooks_of, last_lines};
pub use inventory::{INVENTORY_NAMESPACE, Inventory, InventoryRef};
pub use live::{ApiLiveState, ListScope, LiveMap, LiveObject, LiveState};
pub use plan::{Plan, PlannedObject, PruneCandidate};
pub use report::{Action, ObjectResult, Progress, SyncOptions, SyncReport};
pub use verdicts::Verdicts;
pub use wait::{HealthReport, ObjectHealth};
