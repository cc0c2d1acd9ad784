//! Rendering: base manifests + environment overlays + per-cluster overlays +
//! tracking metadata → the objects to apply to each cluster.
#![allow(missing_docs)]
pub mod yaml;
