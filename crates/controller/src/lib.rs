//! The continuous controller behind `tidegate controller`.
//!
//! - [`leader`]: leader election between controller replicas over a
//!   `coordination.k8s.io/v1` Lease in a management cluster; only the leader
//!   reconciles, and it stops before another replica could take the lease.

pub mod leader;
