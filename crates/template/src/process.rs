//! Running `helm` and `kustomize` as child processes: a time limit, an
//! output size limit, a clean environment with a private `HOME`, and no
//! network (a proxy that does not exist).

use std::{
    ffi::OsString,
    path::Path,
    process::{ExitStatus, Stdio},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    process::Command,
};

/// A proxy address where nothing listens.
const DEAD_PROXY: &str = "http://127.0.0.1:9";

/// Largest stderr kept for the error message.
const MAX_STDERR_BYTES: usize = 16 << 10;

/// What bounds one run.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Longest run.
    pub timeout: Duration,
    /// Largest standard output.
    pub max_output: usize,
}

/// Why a run produced no output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The binary could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The binary.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It ran longer than the limit and was killed.
    #[error("timed out after {0:?} and was stopped")]
    TimedOut(Duration),
    /// It wrote more than the limit and was killed.
    #[error("wrote more than {0} bytes of output and was stopped")]
    TooLarge(usize),
    /// It failed; `message` is its stderr.
    #[error("{message}")]
    Failed {
        /// The exit status.
        status: ExitStatus,
        /// Its standard error, trimmed.
        message: String,
    },
    /// Reading its output failed.
    #[error("reading its output: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs `program args` in `cwd` with `home` as its only writable state and
/// returns its standard output. Without `network`, HTTP(S) goes to a proxy
/// that is not there.
pub async fn run(
    program: &Path,
    args: &[OsString],
    cwd: &Path,
    home: &Path,
    network: bool,
    limits: RunLimits,
) -> Result<Vec<u8>, RunError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HELM_CACHE_HOME", home.join("cache/helm"))
        .env("HELM_CONFIG_HOME", home.join("config/helm"))
        .env("HELM_DATA_HOME", home.join("data/helm"))
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !network {
        // Nothing the environment did not name is fetched.
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            cmd.env(var, DEAD_PROXY);
        }
        cmd.env("NO_PROXY", "").env("no_proxy", "");
    }
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(RunError::Io(std::io::Error::other("no pipes to the child")));
    };
    let outcome = tokio::time::timeout(limits.timeout, async {
        let (out, err) = tokio::join!(
            read_limited(stdout, limits.max_output),
            drain_keeping(stderr, MAX_STDERR_BYTES)
        );
        let out = out?;
        if out.len() > limits.max_output {
            return Err(RunError::TooLarge(limits.max_output));
        }
        let status = child.wait().await?;
        Ok((out, err?, status))
    })
    .await;
    let (out, err, status) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            let _ = child.start_kill();
            return Err(e);
        }
        Err(_) => {
            let _ = child.start_kill();
            return Err(RunError::TimedOut(limits.timeout));
        }
    };
    if status.success() {
        Ok(out)
    } else {
        Err(RunError::Failed {
            status,
            message: tidy(&String::from_utf8_lossy(&err)),
        })
    }
}

/// The tool's message without blank lines and without Helm's advice about
/// its own `--debug` flag (Tidegate users do not run helm themselves).
fn tidy(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Use --debug flag"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads at most `max + 1` bytes (one more tells "too large").
async fn read_limited(r: impl AsyncRead + Unpin, max: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(max as u64 + 1).read_to_end(&mut out).await?;
    Ok(out)
}

/// Reads everything, keeping the first `keep` bytes.
async fn drain_keeping(mut r: impl AsyncRead + Unpin, keep: usize) -> std::io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(kept);
        }
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;

    fn limits(timeout_ms: u64, max_output: usize) -> RunLimits {
        RunLimits {
            timeout: Duration::from_millis(timeout_ms),
            max_output,
        }
    }

    async fn sh(script: &str, limits: RunLimits) -> Result<Vec<u8>, RunError> {
        let home = tempfile::tempdir().unwrap();
        let args = vec![OsString::from("-c"), OsString::from(script)];
        run(
            Path::new("/bin/sh"),
            &args,
            home.path(),
            home.path(),
            false,
            limits,
        )
        .await
    }

    #[tokio::test]
    async fn output_errors_limits_and_environment() {
        assert_eq!(sh("echo hi", limits(5000, 100)).await.unwrap(), b"hi\n");
        // The environment is clean: nothing of ours leaks in, HOME is private.
        let env = sh("env", limits(5000, 10_000)).await.unwrap();
        let env = String::from_utf8(env).unwrap();
        assert!(env.contains("HTTPS_PROXY=http://127.0.0.1:9"), "{env}");
        assert!(!env.contains("CARGO"), "{env}");
        match sh("echo oops >&2; exit 3", limits(5000, 100)).await {
            Err(RunError::Failed { message, status }) => {
                assert_eq!(message, "oops");
                assert_eq!(status.code(), Some(3));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            sh("sleep 10", limits(200, 100)).await,
            Err(RunError::TimedOut(_))
        ));
        assert!(matches!(
            sh("yes", limits(5000, 1000)).await,
            Err(RunError::TooLarge(1000))
        ));
    }
}
