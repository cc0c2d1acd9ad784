//! Fleet rollouts: wave planning and the rollout state machine.
//!
//! A rollout moves every cluster of an environment to one target revision,
//! wave by wave, under fleet-level surge limits, with health gates between
//! waves and an automatic rollback when a gate fails. This crate is the pure
//! part: [`plan_waves`] turns an environment into a [`WavePlan`], and
//! [`FleetRollout`] is the state machine an engine drives.
//!
//! Architecture invariant: no I/O, no clock, no async, no Kubernetes client.
//! Time is passed in as the [`Duration`](std::time::Duration) since the
//! rollout started, so every run is deterministic and every scenario is a
//! unit test. The engine (crates/rollout/src/driver.rs and the CLI) executes
//! [`Command`]s, feeds back [`Event`]s, forwards [`Transition`]s to the audit
//! trail and journals the machine (it is `Serialize`/`Deserialize`).
//!
//! # Planning
//!
//! - Clusters with `wave:` are grouped by wave number, ascending, in
//!   environment order within a wave.
//! - Clusters without one are auto-partitioned after the explicit waves, in
//!   environment order, into waves of 25% of the unwaved clusters (rounded
//!   up, at least 1), numbered on from the highest explicit wave.
//! - `rollout.waves[].approval: required` makes a wave wait for approval.
//! - `maxSurge` is resolved against the fleet size rounding **up**,
//!   `maxUnavailable` rounding **down**. The in-flight limit is `maxSurge`, or
//!   `maxUnavailable` when `maxSurge` resolves to 0. Limits that allow no
//!   cluster to change are rejected.
//!
//! # Semantics of the state machine
//!
//! - **In flight**: a cluster to which an apply was issued and that has not
//!   yet been reported Healthy *after* its apply succeeded. At most
//!   `max_in_flight` clusters are in flight at once; a wave larger than that
//!   is worked through in batches, in plan order, and a new apply is issued
//!   as soon as one in-flight cluster turns Healthy.
//! - **Unavailable**: a cluster whose last reported health is Degraded,
//!   Missing or Unknown, whether or not this rollout touched it (clusters
//!   unhealthy before the rollout count, from the first step on). Healthy,
//!   Suspended and Progressing are available, and so is a cluster in flight
//!   that reads Missing (its new objects are not created yet). As soon as
//!   more than `maxUnavailable` clusters are unavailable, the failure policy
//!   runs.
//! - **Skipped**: a cluster already at the target revision, Healthy and not
//!   drifted ([`ClusterStart::drifted`]) when its wave starts gets no apply;
//!   it still has to stay Healthy for the wave's gate. A wave in which
//!   nothing was applied passes its gate without baking.
//! - **Progress deadline**: a cluster still in flight more than
//!   `progressDeadline` after its apply was issued fails the gate. An apply
//!   failure ([`Event::ApplyFailed`]) fails it at once (the engine retries
//!   transient errors before reporting).
//! - **Wave gate**: a wave is complete when all its clusters are Healthy at
//!   the target revision. It then bakes for `bakeTime` (also after the last
//!   wave). A cluster of the current wave that reports anything but Healthy
//!   after it was Healthy at the target, before or during the bake, fails the
//!   gate. After the bake, `gate-passed`; the next wave starts, or first
//!   waits for [`Event::Approved`] if it requires approval
//!   ([`Command::AwaitApproval`] is issued once; an approval may arrive
//!   early). After the last wave, the rollout finishes with
//!   [`Outcome::Succeeded`].
//! - **Failure policy `rollback`** (default): every cluster this rollout
//!   touched (an apply was issued, even one that failed), and every cluster
//!   that already ran the failed revision without it being its last good
//!   one, is rolled back to its last known good revision, in reverse wave
//!   order (reverse plan order within a wave), with at most `max_in_flight`
//!   rollbacks outstanding. Never to a quarantined revision
//!   ([`RolloutConfig::quarantined`], which includes the failed target): such
//!   a cluster gets `Rollback { to: None }` (left as it is and reported). A
//!   first deploy (nothing ran before) gets [`Command::Remove`]. A cluster
//!   with no known good revision gets `Rollback { to: None }`. A rollback
//!   is done once the cluster reports Healthy again; one with no outcome, or
//!   not Healthy, within the progress deadline is given up. Then
//!   [`Outcome::RolledBack`], listing clusters not restored.
//! - **Failure policy `halt`**: no further command; [`Outcome::Halted`].
//! - Both policies emit `gate-failed` and `quarantine` (the target revision
//!   must not be re-applied by continuous sync) at the moment of failure.
//! - Never: a second apply to the same cluster in one rollout, a rollback of
//!   a cluster this rollout neither touched nor found on the failed
//!   revision, an apply in a wave before the previous wave passed its gate.
//! - **Last good revisions**: [`FleetRollout::last_good_after`] says what
//!   each cluster records once the rollout ended: the target only after
//!   success (never a quarantined revision).
//! - **Resume**: deserialize the journaled machine, call
//!   [`FleetRollout::resume`] (bakes restart: only watched time counts),
//!   re-execute [`FleetRollout::outstanding`] commands (their results may
//!   have been lost), and keep stepping. Completed waves are never
//!   re-applied.
//! - **Maintenance windows** ([`Windows`] in [`RolloutConfig`]): no apply
//!   to a cluster while its window is closed or a freeze is on (unless
//!   ignored, with a reason). `wait`: the rest of its wave goes ahead, the
//!   wave's gate waits for it. `skipAndReturn`: the gate passes without it,
//!   later waves go ahead, and it is applied when its window opens (first,
//!   within the surge limit); after the last wave the rollout waits for it,
//!   bakes, then succeeds. Rollbacks are never held by windows.
//! - [`quarantine`]: the rules every command that moves a cluster follows.
//!
//! ```
//! use std::time::Duration;
//! use tidegate_core::environment::Rollout;
//! use tidegate_health::HealthStatus;
//! use tidegate_rollout::{ClusterStart, Command, Event, FleetRollout, Outcome, RolloutConfig, plan_fleet};
//!
//! let plan = plan_fleet([("canary", Some(1)), ("main", Some(2))], &Rollout::default()).unwrap();
//! let start = ClusterStart {
//!     current_revision: Some("v1".into()),
//!     last_good_revision: Some("v1".into()),
//!     health: HealthStatus::Healthy,
//!     drifted: false,
//!     unknown_state: false,
//! };
//! let mut rollout = FleetRollout::new(
//!     &plan,
//!     RolloutConfig::from_plan(&plan, "v2"),
//!     ["canary", "main"].map(|c| (c.to_string(), start.clone())),
//! )
//! .unwrap();
//! let mut now = Duration::ZERO;
//! let mut finished = None;
//! while finished.is_none() {
//!     for command in rollout.step(now) {
//!         match command {
//!             Command::Apply { cluster, .. } => {
//!                 rollout.observe(now, Event::Applied { cluster: cluster.clone() });
//!                 rollout.observe(now, Event::Health { cluster, status: HealthStatus::Healthy });
//!             }
//!             Command::Finished(outcome) => finished = Some(outcome),
//!             _ => {}
//!         }
//!     }
//!     now += Duration::from_secs(1);
//! }
//! assert_eq!(finished, Some(Outcome::Succeeded));
//! let actions: Vec<_> = rollout.drain_transitions().iter().map(|t| t.kind.action()).collect();
//! assert_eq!(actions, ["rollout-start", "wave-start", "gate-passed", "wave-start", "gate-passed", "rollout-end"]);
//! ```

pub mod analysis;
pub mod machine;
pub mod plan;
pub mod quarantine;
pub mod windows;

pub use machine::{
    ClusterProgress, ClusterStart, ClusterView, Command, Event, Failure, FleetRollout, NotRestored,
    Outcome, RolloutConfig, SetupError, Transition, TransitionKind,
};
pub use plan::{Wave, WavePlan, plan_fleet, plan_waves};
pub use windows::Windows;
