//! The trust boundary (SECURITY.md): repository content never chooses
//! credentials or runs commands, and the operator's secrets never reach a
//! host, a log or a file they were not meant for. These tests run the
//! `tidegate` binary; none needs a cluster.

mod audit;
mod git_token;
mod kubeconfig;
mod messages;

use std::path::Path;
use std::process::Output;

/// Runs `tidegate` in `cwd` with nothing of this process's environment but
/// `PATH`, a temporary `home` (cache, state, audit trail), `envs` and `args`.
pub(crate) fn run(cwd: &Path, home: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    crate::cluster::isolated_command(home)
        .current_dir(cwd)
        .envs(envs.iter().copied())
        .args(["--color", "never"])
        .args(args)
        .output()
        .expect("tidegate runs")
}

/// stdout and stderr of a run, for assertion messages.
pub(crate) fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
