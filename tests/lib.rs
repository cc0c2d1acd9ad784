//! Workspace-level integration tests live in `it/` (one binary, `it`).
