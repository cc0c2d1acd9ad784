//! `tidegate-testkit up|status|down`: local Kubernetes clusters for people and
//! for `make clusters-up` / `make clusters-down` (see docs/local-clusters.md).

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tidegate_testkit::{
    DEFAULT_BASE_PORT, EtcdMode, Fleet, FleetOptions, PortPlan, TokenWebhookOptions,
    default_state_dir, run_token_webhook, stop_recorded,
};

#[derive(Parser)]
#[command(
    version,
    about = "Local Kubernetes control planes on 127.0.0.1 for Tidegate"
)]
struct Cli {
    /// State directory (kubeconfig, certificates, data, logs, pids).
    #[arg(long, global = true, env = "TIDEGATE_CLUSTERS_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the clusters and return once they are ready.
    Up {
        /// Number of clusters.
        #[arg(long, default_value_t = 3)]
        clusters: usize,
        /// First port: cluster i serves its API on base+100*i+43.
        #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
        base_port: u16,
        /// Pick free ports instead of the fixed layout.
        #[arg(long)]
        ephemeral_ports: bool,
        /// One etcd shared by every cluster (distinct --etcd-prefix) instead of one each.
        #[arg(long)]
        shared_etcd: bool,
        /// Seconds to wait for each cluster to be ready.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        /// At most this many API servers starting at once.
        #[arg(long, default_value_t = 10)]
        max_starting: usize,
    },
    /// Show the clusters and their processes.
    Status,
    /// Stop every recorded process and remove the state (logs are kept).
    Down {
        /// Remove the logs too.
        #[arg(long)]
        purge: bool,
    },
    /// Serve one cluster's token-review webhook until killed (started by `up`).
    #[command(hide = true)]
    TokenWebhook {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Serving certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// The cluster id (x-k8s-aws-id) EKS tokens must be signed for.
        #[arg(long)]
        cluster_id: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Plain text in log files (the token webhooks log to theirs).
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tidegate-testkit: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = cli.state_dir.unwrap_or_else(default_state_dir);
    let state_dir = std::path::absolute(&state_dir)
        .with_context(|| format!("resolving {}", state_dir.display()))?;
    match cli.command {
        Cmd::Up {
            clusters,
            base_port,
            ephemeral_ports,
            shared_etcd,
            timeout,
            max_starting,
        } => {
            let began = Instant::now();
            let fleet = Fleet::start(FleetOptions {
                clusters,
                state_dir: Some(state_dir.clone()),
                ports: if ephemeral_ports {
                    PortPlan::Ephemeral
                } else {
                    PortPlan::Fixed { base: base_port }
                },
                etcd: if shared_etcd {
                    EtcdMode::Shared
                } else {
                    EtcdMode::PerCluster
                },
                ready_timeout: Duration::from_secs(timeout),
                max_starting,
                watchdog: false,
                ..FleetOptions::default()
            })
            .context("starting the clusters (logs under the state directory)")?;
            for c in fleet.clusters() {
                eprintln!("  {:<18} {}", c.context, c.server);
            }
            let kubeconfig = fleet.detach();
            eprintln!(
                "{clusters} clusters ready in {:.1}s; stop them with `tidegate-testkit down`",
                began.elapsed().as_secs_f64()
            );
            eprintln!("  export TIDEGATE_TEST_KUBECONFIG={}", kubeconfig.display());
            eprintln!("  export KUBECONFIG={}", kubeconfig.display());
            println!("{}", kubeconfig.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status => status(&state_dir),
        Cmd::TokenWebhook {
            listen,
            cert,
            key,
            cluster_id,
        } => {
            run_token_webhook(&TokenWebhookOptions {
                listen,
                cert,
                key,
                cluster_id,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down { purge } => {
            let stopped = stop_recorded(&state_dir, Duration::from_secs(15));
            eprintln!("stopped {} processes", stopped.len());
            remove_state(&state_dir, purge)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn status(state_dir: &Path) -> anyhow::Result<ExitCode> {
    let kubeconfig = state_dir.join("kubeconfig");
    if !state_dir.join("fleet.json").is_file() {
        eprintln!("no clusters recorded in {}", state_dir.display());
        return Ok(ExitCode::FAILURE);
    }
    let fleet = Fleet::attach(&kubeconfig)?;
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state_dir.join("fleet.json")).context("reading fleet.json")?,
    )?;
    let mut healthy = true;
    let mut out = String::new();
    let _ = writeln!(out, "kubeconfig: {}", kubeconfig.display());
    for c in fleet.clusters() {
        let ready = fleet
            .kubectl(
                &c.context,
                &["get", "--raw=/readyz", "--request-timeout=5s"],
            )
            .is_ok();
        healthy &= ready;
        let _ = writeln!(
            out,
            "{:<18} {:<26} {}",
            c.context,
            c.server,
            if ready { "ready" } else { "NOT READY" }
        );
    }
    let procs = state["processes"].as_array().cloned().unwrap_or_default();
    for p in procs {
        let pid = p["pid"].as_i64().unwrap_or(0);
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        healthy &= alive;
        let _ = writeln!(
            out,
            "  {:>7} {:<40} {}",
            pid,
            p["name"].as_str().unwrap_or("?"),
            if alive { "running" } else { "gone" }
        );
    }
    // A closed pipe (`status | head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Removes the state directory, keeping `*/logs` and `etcd/etcd.log` unless `purge`.
fn remove_state(state_dir: &Path, purge: bool) -> anyhow::Result<()> {
    if !state_dir.exists() {
        return Ok(());
    }
    if purge {
        std::fs::remove_dir_all(state_dir)
            .with_context(|| format!("removing {}", state_dir.display()))?;
        return Ok(());
    }
    for entry in std::fs::read_dir(state_dir)? {
        let path = entry?.path();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path)? {
                let inner = inner?.path();
                let keep = inner
                    .file_name()
                    .is_some_and(|n| n == "logs" || n == "etcd.log");
                if !keep {
                    remove(&inner)?;
                }
            }
        } else {
            remove(&path)?;
        }
    }
    Ok(())
}

fn remove(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
    .with_context(|| format!("removing {}", path.display()))
}
