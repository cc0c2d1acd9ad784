//! The continuous controller behind `tidegate controller`.
//!
//! It keeps a fleet matching Git with no one at the keyboard:
//!
//! - [`watch`]: per cluster, kube-runtime `watcher` + `reflector` stores of
//!   the kinds an environment manages (label
//!   `app.kubernetes.io/managed-by=tidegate`), with bookmarks and relists on
//!   expiry as kube-runtime does them. Every change of an object's
//!   declared state (not its `status`) becomes a [`watch::Changed`] event.
//! - [`drift`]: those events, debounced per (cluster, app) by kube-runtime's
//!   `debounced_scheduler`, are compared with the desired state (a plan of
//!   that one app in that one cluster); drift is corrected (`selfHeal: true`)
//!   or reported once per episode (`selfHeal: false`).
//! - [`reconcile`]: every `spec.sync.interval`, or when the [`Trigger`] is
//!   pulled, the source is fetched; a new commit is rolled out wave by wave
//!   by the fleet driver, unless it is quarantined.
//! - [`leader`]: leader election between controller replicas over a
//!   `coordination.k8s.io/v1` Lease in a management cluster; only the leader
//!   reconciles, and it stops before another replica could take the lease.
//! - [`membership`], [`rendezvous`] and [`run_sharded`]: sharding instead
//!   (`--shard`): every replica holds a member Lease, environments are
//!   assigned by rendezvous hashing over the live members, and a replica
//!   runs an environment only while it holds its ownership Lease.
//! - [`split`]: with `--shard-clusters-above N`, an environment of more
//!   than `N` clusters is watched and drift-checked by cluster across the
//!   replicas; its owner alone rolls out, correcting the drift the
//!   watchers record in the management cluster.
//! - [`view`]: what the fleet page is told (an environment's clusters and
//!   limits, each cluster's place in a rollout, an app's objects with
//!   their drift and masked diff), built here so nothing unmasked leaves.
//! - [`observe`]: what the controller does, as [`Event`]s for an
//!   [`Observer`] (the HTTP server's metrics and readiness, kept in
//!   `tidegate-server`: this crate knows nothing of HTTP).
//!
//! Architecture invariants: the controller writes to clusters only through
//! the fleet driver (`tidegate_fleet::Driver`, the path of `tidegate sync
//! --env`), so waves, surge limits, gates, the environment lock and rollback
//! apply to drift corrections as they do to new commits. With nothing
//! changing it sends no request but its open watches.
//!
//! What the controller needs of the application layer (loading an
//! environment at the head of its source, the fleet rollout, quarantines,
//! the audit trail) comes through [`Application`]; [`GitApplication`]
//! implements it with `tidegate-app`, as the CLI's commands use it.

mod app;
mod backoff;
mod controller;
pub mod drift;
mod error;
pub mod leader;
pub mod membership;
pub mod observe;
pub mod reconcile;
pub mod rendezvous;
mod replica;
mod shard;
pub mod split;
mod trigger;
pub mod view;
pub mod watch;

pub use app::{Application, GitApplication, Loaded, RollOutControl};
pub use backoff::Backoff;
pub use controller::{Controller, ControllerOptions};
pub use error::ControllerError;
pub use observe::{Event, Observer, Observers, RolloutOutcome, SwitchResult};
pub use replica::{Election, Ended, SHUTDOWN_SLACK, run_replica};
pub use shard::{Sharding, assigned, run_sharded};
pub use tidegate_app::AppError;
pub use trigger::{Trigger, TriggerReceiver};
