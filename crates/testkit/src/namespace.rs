//! A namespace per test, on every cluster of a fleet.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{Error, Fleet, Result};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A namespace with a unique name, created on every cluster of a fleet and
/// deleted (without waiting) when dropped, so that tests sharing clusters
/// never see each other's objects.
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    contexts: Vec<String>,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    keep: bool,
}

/// A DNS-1123 label made of `prefix`, the process id, a counter and the time.
fn unique_name(prefix: &str) -> String {
    let clean: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let clean = clean.trim_matches('-');
    let clean: String = clean.chars().take(30).collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 100_000)
        .unwrap_or_default();
    format!(
        "tg-{}-{}-{n}-{t}",
        clean.trim_end_matches('-'),
        std::process::id()
    )
}

impl TestNamespace {
    /// Creates `tg-<prefix>-<unique>` on every cluster of `fleet` and waits
    /// for its `default` ServiceAccount (pods cannot be created before it).
    /// Blocks for at most a few seconds.
    pub fn create(fleet: &Fleet, prefix: &str) -> Result<TestNamespace> {
        let ns = TestNamespace {
            name: unique_name(prefix),
            contexts: fleet.contexts().iter().map(|c| c.to_string()).collect(),
            kubectl: fleet.kubectl_path().to_path_buf(),
            kubeconfig: fleet.kubeconfig().to_path_buf(),
            keep: false,
        };
        for context in &ns.contexts {
            fleet.kubectl(context, &["create", "namespace", &ns.name])?;
        }
        let sa = format!("--namespace={}", ns.name);
        for context in &ns.contexts {
            let deadline = Instant::now() + Duration::from_secs(60);
            while fleet
                .kubectl(context, &["get", "serviceaccount", "default", &sa])
                .is_err()
            {
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        what: format!("{context}: serviceaccount default in {}", ns.name),
                        seconds: 60,
                    });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keeps the namespace after the test (for debugging).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for context in &self.contexts {
            // Fire and forget: the namespace controller finishes the job.
            let _ = Command::new(&self.kubectl)
                .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
                .arg(format!("--context={context}"))
                .args(["delete", "namespace", &self.name, "--wait=false"])
                .args(["--ignore-not-found", "--request-timeout=10s"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        let a = unique_name("Rollout_Test::three clusters and more words than fit");
        let b = unique_name("Rollout_Test::three clusters and more words than fit");
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(n.len() <= 63, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
            assert!(!n.ends_with('-'));
        }
    }
}
