//! The journal as a file: the state machine written to disk (with fsync)
//! after every step, so a killed `tidegate sync --env` can be resumed on the
//! same machine.

use super::{JournalError, JournalStore, Journaled, decode, encode};
use futures::future::BoxFuture;
use std::{
    io::Write,
    path::{Path, PathBuf},
};
use tidegate_rollout::machine::FleetRollout;

/// A journal file for one environment (the CLI's store).
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
        let record = encode(started_ms, operation, machine).map_err(std::io::Error::other)?;
        file.write_all(&record)?;
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
            Ok(bytes) => decode(&bytes).map(Some).map_err(std::io::Error::other),
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

impl Journal {
    fn io_error(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            location: self.path.display().to_string(),
            source,
        }
    }
}

impl JournalStore for Journal {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<Journaled>, JournalError>> {
        Box::pin(async move {
            match std::fs::read(&self.path) {
                Ok(bytes) => decode(&bytes)
                    .map(Some)
                    .map_err(|source| JournalError::Corrupt {
                        location: self.location(),
                        source,
                    }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.io_error(e)),
            }
        })
    }

    fn save<'a>(
        &'a self,
        started_ms: i64,
        operation: Option<u64>,
        machine: &'a FleetRollout,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            Journal::save(self, started_ms, operation, machine).map_err(|e| self.io_error(e))
        })
    }

    fn remove(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move { Journal::remove(self).map_err(|e| self.io_error(e)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::tests::machine;

    #[tokio::test]
    async fn a_file_journal_saves_loads_and_removes() {
        let dir = tempfile::tempdir().expect("dir");
        let journal = Journal::new(&dir.path().join("nested"), "prod");
        let store: &dyn JournalStore = &journal;
        assert!(store.load().await.expect("load").is_none());
        store.save(5, Some(9), &machine("r1")).await.expect("save");
        let back = store.load().await.expect("load").expect("saved");
        assert_eq!((back.started_ms, back.operation), (5, Some(9)));
        store.remove().await.expect("remove");
        assert!(store.load().await.expect("load").is_none());
        store.remove().await.expect("removing nothing is fine");
    }

    #[tokio::test]
    async fn a_damaged_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().expect("dir");
        let journal = Journal::new(dir.path(), "prod");
        std::fs::write(journal.path(), b"{").expect("write");
        let err = JournalStore::load(&journal).await.expect_err("corrupt");
        assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("prod.rollout.json"), "{err}");
    }
}
