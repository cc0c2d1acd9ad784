//! The one integration-test binary. Modules named `cluster::...` need the
//! local Kubernetes clusters (see docs/local-clusters.md); `make test-unit`
//! skips them.

mod app;
mod audit;
mod bad_inputs;
mod cluster;
mod deploy;
mod examples;
mod fuzz;
mod hardening;
mod pipeline;
mod source;
mod template;
mod trust;
