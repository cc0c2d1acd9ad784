//! Rendered output cached by everything it depends on, so re-rendering an
//! unchanged commit runs no tool: `<cache>/rendered/<sha256>.json`.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tidegate_core::files::{FileContent, SourceFile};

/// The rendered-output cache.
#[derive(Debug, Clone)]
pub struct RenderCache {
    dir: PathBuf,
}

impl RenderCache {
    /// A cache under `cache_dir/rendered`.
    pub fn new(cache_dir: &Path) -> RenderCache {
        RenderCache {
            dir: cache_dir.join("rendered"),
        }
    }

    /// The files stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<SourceFile>> {
        let bytes = std::fs::read(self.dir.join(format!("{key}.json"))).ok()?;
        let stored: Vec<(String, String)> = serde_json::from_slice(&bytes).ok()?;
        Some(
            stored
                .into_iter()
                .map(|(path, text)| SourceFile {
                    path,
                    content: FileContent::Bytes(text.into_bytes()),
                })
                .collect(),
        )
    }

    /// Stores `files` under `key`; a cache that cannot be written is skipped.
    pub fn put(&self, key: &str, files: &[SourceFile]) {
        let stored: Vec<(&str, String)> = files
            .iter()
            .filter_map(|f| match &f.content {
                FileContent::Bytes(b) => {
                    Some((f.path.as_str(), String::from_utf8_lossy(b).into_owned()))
                }
                _ => None,
            })
            .collect();
        let Ok(json) = serde_json::to_vec(&stored) else {
            return;
        };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            std::fs::write(tmp.path(), &json)?;
            tmp.persist(self.dir.join(format!("{key}.json")))
                .map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::debug!(error = %e, dir = %self.dir.display(), "render cache not written");
        }
    }
}

/// The sha256 (hex) of the parts, each length-prefixed so no two lists collide.
pub fn key(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for p in parts {
        hash.update((p.len() as u64).to_le_bytes());
        hash.update(p.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
