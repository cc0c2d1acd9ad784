//! Rendering: base manifests + environment overlays + per-cluster overlays +
//! tracking metadata → the objects to apply to each cluster.
//!
//! Rendering is pure (no I/O): the caller hands in the files the source stage
//! read from a commit. It never stops at the first problem: every problem in
//! every file, overlay and cluster comes back as [`Diagnostics`], each naming
//! the file and line.
//!
//! Output order is deterministic: clusters and apps in environment order,
//! objects by apply phase (Namespaces first, Ingresses last), then
//! `tidegate.dev/sync-wave`, then group, kind, namespace and name.

mod environment;
mod hooks;
mod manifest;
mod overlay;
pub mod yaml;

pub use environment::{Rendered, RenderedApp, RenderedCluster, render_environment};
pub use manifest::{BaseObject, LoadedApp, ParseCache, load_app, load_app_cached};
pub use overlay::split_image;
pub use tidegate_core::files::AppSource;
