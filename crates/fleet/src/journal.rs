//! The rollout journal: the state machine written to disk (with fsync) after
//! every step, so a killed `tidegate sync --env` can be resumed.

use std::{
    io::Write,
    path::{Path, PathBuf},
};
use tidegate_rollout::machine::FleetRollout;

/// What a journal holds.
#[derive(Debug, Clone)]
pub struct Journaled {
    /// When the rollout started (Unix ms).
    pub started_ms: i64,
    /// The audit operation of the run that wrote it (the one a resume links to).
    pub operation: Option<u64>,
    /// The machine.
    pub machine: FleetRollout,
}

/// A journal file for one environment.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal of `environment` under `dir`.
    pub fn new(dir: &Path, environment: &str) -> Journal {
        Journal {
            path: dir.join(format!("{environment}.rollout.json")),
        }
    }

    /// `$XDG_STATE_HOME/tidegate/rollouts`, or `~/.local/state/tidegate/rollouts`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir)
            .join("tidegate/rollouts")
    }

    /// Where the journal is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the machine, the rollout's start time (Unix ms) and the audit
    /// operation of this run atomically (temporary file, fsync, rename).
    pub fn save(
        &self,
        started_ms: i64,
        operation: Option<u64>,
        machine: &FleetRollout,
    ) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        let record = serde_json::json!({"startedMs": started_ms, "operation": operation, "machine": machine});
        file.write_all(&serde_json::to_vec(&record).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The journaled rollout, if there is one.
    pub fn load(&self) -> std::io::Result<Option<Journaled>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let record: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
                let machine = serde_json::from_value(record["machine"].clone())
                    .map_err(std::io::Error::other)?;
                Ok(Some(Journaled {
                    started_ms: record["startedMs"].as_i64().unwrap_or(0),
                    operation: record["operation"].as_u64(),
                    machine,
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the journal of a finished rollout.
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
