use std::path::{Path, PathBuf};

use crate::{ENV_BIN_DIR, ENV_CACHE_DIR, ENV_TESTKIT_BIN, Error, Result};

/// Kubernetes release of the control-plane binaries (tests/cluster/kubernetes/go.mod).
pub const KUBERNETES_VERSION: &str = "v1.37.2";
/// etcd release (tests/cluster/etcd/go.mod).
pub const ETCD_VERSION: &str = "v3.7.3";
/// kwok release (tests/cluster/kwok/go.mod).
pub const KWOK_VERSION: &str = "v0.8.0";

/// The root of the binary cache: `TIDEGATE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/tidegate`, else `$HOME/.cache/tidegate` (as in build.sh).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(ENV_CACHE_DIR).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("tidegate");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache").join("tidegate")
}

/// Paths of the control-plane binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub kube_controller_manager: PathBuf,
    /// `kube-scheduler`.
    pub kube_scheduler: PathBuf,
    /// `kubectl`.
    pub kubectl: PathBuf,
    /// `kwok`.
    pub kwok: PathBuf,
}

impl Binaries {
    /// Finds the binaries in `TIDEGATE_CLUSTER_BIN_DIR` or in the build cache,
    /// and checks that each exists.
    pub fn locate() -> Result<Binaries> {
        let bins = match std::env::var_os(ENV_BIN_DIR).filter(|v| !v.is_empty()) {
            Some(dir) => Binaries::in_dir(Path::new(&dir)),
            None => Binaries::in_cache(&cache_dir()),
        };
        bins.check()?;
        Ok(bins)
    }

    /// All binaries in one directory.
    pub fn in_dir(dir: &Path) -> Binaries {
        Binaries {
            etcd: dir.join("etcd"),
            kube_apiserver: dir.join("kube-apiserver"),
            kube_controller_manager: dir.join("kube-controller-manager"),
            kube_scheduler: dir.join("kube-scheduler"),
            kubectl: dir.join("kubectl"),
            kwok: dir.join("kwok"),
        }
    }

    /// The layout of `tests/cluster/build.sh` under `cache`.
    pub fn in_cache(cache: &Path) -> Binaries {
        let k8s = cache.join("k8s").join(KUBERNETES_VERSION).join("bin");
        Binaries {
            etcd: cache
                .join("etcd")
                .join(ETCD_VERSION)
                .join("bin")
                .join("etcd"),
            kube_apiserver: k8s.join("kube-apiserver"),
            kube_controller_manager: k8s.join("kube-controller-manager"),
            kube_scheduler: k8s.join("kube-scheduler"),
            kubectl: k8s.join("kubectl"),
            kwok: cache
                .join("kwok")
                .join(KWOK_VERSION)
                .join("bin")
                .join("kwok"),
        }
    }

    /// Fails with [`Error::MissingBinary`] for the first binary that is missing.
    pub fn check(&self) -> Result<()> {
        for (name, path) in [
            ("etcd", &self.etcd),
            ("kube-apiserver", &self.kube_apiserver),
            ("kube-controller-manager", &self.kube_controller_manager),
            ("kube-scheduler", &self.kube_scheduler),
            ("kubectl", &self.kubectl),
            ("kwok", &self.kwok),
        ] {
            if !path.is_file() {
                return Err(Error::MissingBinary {
                    name,
                    path: path.clone(),
                });
            }
        }
        Ok(())
    }
}

/// The `tidegate-testkit` binary, which serves the clusters' token webhooks
/// (its hidden `token-webhook` subcommand): `TIDEGATE_TESTKIT_BIN` when set;
/// else this process when it is `tidegate-testkit`; else the one beside this
/// executable or in its parent directory (Cargo puts test binaries in
/// `target/<profile>/deps`, and binaries in `target/<profile>`).
pub fn testkit_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(ENV_TESTKIT_BIN).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Other(format!(
                "{ENV_TESTKIT_BIN}={}: no such file",
                path.display()
            )))
        };
    }
    let exe = std::env::current_exe().map_err(Error::io("locating the current executable"))?;
    if exe.file_name().is_some_and(|n| n == "tidegate-testkit") {
        return Ok(exe);
    }
    let dir = exe.parent().unwrap_or_else(|| Path::new("."));
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join("tidegate-testkit"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Other(format!(
                "tidegate-testkit (which serves the clusters' token webhooks) is neither in {} \
                 nor in its parent: run `cargo build -p tidegate-testkit` (make test does), \
                 or set {ENV_TESTKIT_BIN}",
                dir.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The versions compiled in must be the ones the wrapper modules build.
    #[test]
    fn versions_match_wrapper_modules() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cluster");
        for (dir, module, version) in [
            ("kubernetes", "k8s.io/kubernetes", KUBERNETES_VERSION),
            ("etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION),
            ("kwok", "sigs.k8s.io/kwok", KWOK_VERSION),
        ] {
            let go_mod = std::fs::read_to_string(root.join(dir).join("go.mod")).expect("test step");
            let wanted = format!("{module} {version}");
            assert!(
                go_mod
                    .lines()
                    .any(|l| l.trim() == wanted || l.trim() == format!("require {wanted}")),
                "{dir}/go.mod does not require {wanted}"
            );
        }
    }

    #[test]
    fn cache_layout() {
        let b = Binaries::in_cache(Path::new("/c"));
        assert_eq!(
            b.kube_apiserver,
            Path::new("/c/k8s/v1.37.2/bin/kube-apiserver")
        );
        assert_eq!(b.etcd, Path::new("/c/etcd/v3.7.3/bin/etcd"));
        assert_eq!(b.kwok, Path::new("/c/kwok/v0.8.0/bin/kwok"));
    }
}
