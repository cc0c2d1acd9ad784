//! Finding the `helm` and `kustomize` binaries: `TIDEGATE_HELM` /
//! `TIDEGATE_KUSTOMIZE`, else the pinned version in Tidegate's cache (built
//! by `make template-tools`), else `PATH`.

use std::path::{Path, PathBuf};

/// The Helm version `make template-tools` builds (tests/cluster/helm/go.mod).
pub const HELM_VERSION: &str = "v3.22.0";
/// The Kustomize version `make template-tools` builds (tests/cluster/kustomize/go.mod).
pub const KUSTOMIZE_VERSION: &str = "v5.8.2";

/// A template tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// `helm template`.
    Helm,
    /// `kustomize build`.
    Kustomize,
}

impl Tool {
    /// The binary's name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Helm => "helm",
            Tool::Kustomize => "kustomize",
        }
    }

    /// The pinned version.
    pub fn version(self) -> &'static str {
        match self {
            Tool::Helm => HELM_VERSION,
            Tool::Kustomize => KUSTOMIZE_VERSION,
        }
    }

    /// The variable that names the binary explicitly.
    pub fn env_var(self) -> &'static str {
        match self {
            Tool::Helm => "TIDEGATE_HELM",
            Tool::Kustomize => "TIDEGATE_KUSTOMIZE",
        }
    }

    /// Where `make template-tools` puts the pinned version.
    pub fn cached_path(self, cache_dir: &Path) -> PathBuf {
        cache_dir
            .join(self.name())
            .join(self.version())
            .join("bin")
            .join(self.name())
    }

    /// The binary to run: the variable, the cache, then `PATH`.
    pub fn locate(self, cache_dir: &Path) -> Option<PathBuf> {
        if let Some(explicit) = std::env::var_os(self.env_var()) {
            let p = PathBuf::from(explicit);
            return p.is_file().then_some(p);
        }
        let cached = self.cached_path(cache_dir);
        if cached.is_file() {
            return Some(cached);
        }
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(self.name()))
                .find(|p| p.is_file())
        })
    }

    /// How to install the tool, for the message when it is missing.
    pub fn install_help(self, cache_dir: &Path) -> String {
        format!(
            "install {name} {version}: run `make template-tools` in Tidegate's repository (builds it from Go modules into {cached}), put `{name}` on PATH, or set {var} to its path",
            name = self.name(),
            version = self.version(),
            cached = self.cached_path(cache_dir).display(),
            var = self.env_var(),
        )
    }
}

/// Tidegate's cache directory: `TIDEGATE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/tidegate`, else `~/.cache/tidegate`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TIDEGATE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("tidegate")
}

/// What identifies a binary in cache keys: its path, size and modification time.
pub fn fingerprint(binary: &Path) -> String {
    let meta = std::fs::metadata(binary).ok();
    let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
    let modified = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{}:{size}:{modified}", binary.display())
}
