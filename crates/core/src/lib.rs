//! Domain types shared by every Tidegate pipeline stage.
//!
//! This crate is the bottom of the dependency graph: it knows what an
//! [`Environment`] file says, how Kubernetes objects
//! are identified ([`ObjectKey`]), where each object came
//! from ([`Provenance`]), and how problems are reported to
//! people ([`Diagnostic`]).
//!
//! Architecture invariant: no I/O. Everything here is a pure function of its
//! input, so every stage can be tested from fixtures.

pub mod condition;
pub mod cron;
pub mod diagnostic;
pub mod duration;
pub mod environment;
pub mod files;
pub mod hooks;
pub mod intorpercent;
pub mod names;
pub mod numbers;
pub mod object;
pub mod paths;
pub mod printable;
pub mod selector;
pub mod sync_hooks;
pub mod tracking;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use environment::Environment;
pub use object::{ObjectKey, Provenance, RenderedObject};
