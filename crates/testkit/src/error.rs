use std::path::PathBuf;

/// Errors of the test kit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A control-plane binary is missing.
    #[error(
        "{name} not found at {path} (build the binaries with tests/cluster/build.sh, \
         or point TIDEGATE_CLUSTER_BIN_DIR at a directory that holds them)"
    )]
    MissingBinary {
        /// Binary name.
        name: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Reading or writing the fleet state failed.
    #[error("fleet state {path}: {source}")]
    State {
        /// The state file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A port needed by a cluster is taken.
    #[error(
        "port {port} on 127.0.0.1 is in use ({what}); are clusters already running? (tidegate-testkit down)"
    )]
    PortInUse {
        /// The port.
        port: u16,
        /// What the port was for.
        what: String,
    },
    /// A process exited while the fleet was starting.
    #[error("{name} exited early ({status}); last lines of {log}:\n{tail}")]
    ProcessExited {
        /// Process name (`<cluster>/<component>`).
        name: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// Something did not become ready in time.
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        seconds: u64,
    },
    /// A kubectl command failed.
    #[error("kubectl {args} failed: {stderr}")]
    Kubectl {
        /// The arguments.
        args: String,
        /// Its standard error.
        stderr: String,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
