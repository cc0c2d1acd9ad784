//! Metric analyses of fleet rollouts (`spec.rollout.analyses`).
//!
//! While a wave bakes, the fleet driver asks [`analyze_wave`] to measure
//! each analysis's PromQL query in every cluster of the wave and in every
//! cluster still on the old revision (the baseline), every `interval`,
//! until each cluster passed `count` measurements or one failed beyond its
//! limits. The verdicts are pure ([`tidegate_rollout::analysis`]); this
//! crate does the HTTP ([`prometheus`]) and the timing ([`run`]).
//!
//! Trust: the Prometheus URLs come from the environment file, that is from
//! the repository. Tidegate sends **no credentials** to them (no token, no
//! header of the operator's, no user information — URLs carrying some are
//! refused at validation), follows no redirects, reads at most
//! [`prometheus::MAX_RESPONSE_BYTES`] of an answer, keeps only numbers from
//! it, and never echoes a response body. A Prometheus that needs
//! authentication is reached through a proxy the operator runs (see
//! docs/rollouts.md and SECURITY.md).

pub mod prometheus;
pub mod run;

pub use prometheus::Prometheus;
pub use run::analyze_wave;
