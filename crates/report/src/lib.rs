//! Tidegate audit reports: what happened, where, and how well.
//!
//! [`model::build`] turns audit [`Record`](tidegate_audit::Record)s into a
//! [`Report`] (summary, per-environment timelines, per-cluster revision
//! history, DORA metrics, interrupted operations); [`render::render`] writes
//! it as Markdown, self-contained HTML, JSON or CSV; [`model::running_at`]
//! answers "what ran where at time T"; [`log`] formats the raw log and the
//! JSONL and CDEvents exports.
//!
//! Architecture invariant: depends on `tidegate-audit` (and through it
//! `tidegate-core`) only; it reads records and never writes the log.

pub mod log;
pub mod model;
pub mod render;

pub use log::escape_control;
pub use model::{Report, ReportOptions, RunningAt, build, running_at};
pub use render::{Format, RenderError, csv_field, md_cell, render};
