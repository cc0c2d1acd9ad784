//! Beyond the machine: the controller at 100 and 1,000 clusters, modelled
//! and simulated from what the fleet-scale benchmark measured on real local
//! clusters (docs/scale.md says which figure is which).
//!
//! - [`model`]: the load model, linear unit costs (bytes per cached object
//!   and per cluster, watches and requests per cluster, CPU per object
//!   planned) → memory, watches and requests at any size.
//! - [`Simulation`]: the controller's scheduling at that size: the **real**
//!   rollout machine ([`tidegate_rollout::FleetRollout`]) stepped as the
//!   driver steps it (health read at once after an apply, then every poll
//!   tick for the clusters in flight or baking), the driver's bounded
//!   pre-flight/lock/release (`DriverOptions::concurrency`) competing for
//!   the controller's cores, and the drift queue (one environment's loop
//!   checks one (cluster, app) at a time), on a virtual clock with cluster
//!   latencies drawn from seeded log-normal distributions ([`Latency`]).
//!
//! Pure: no I/O, no clock, no async; the same seed gives the same run.
//! `cargo run -p tidegate-fleet --example fleet_sim` prints the tables of
//! docs/scale.md.

pub mod model;
mod rng;
mod run;

pub use rng::{Latency, Rng};
#[cfg(test)]
mod tests;

pub use run::{Costs, DriftRun, Limits, RolloutRun, Shape, SimError, Simulation};
