//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Tidegate: GitOps for Kubernetes fleets across EKS, AKS and GKE, rolled out
/// in safe waves with automatic rollback and a tamper-evident audit trail.
#[derive(Debug, Parser)]
#[command(name = "tidegate", version, propagate_version = true)]
#[command(
    after_help = "Environment files live in environments/<name>.yaml and manifests in manifests/.\n\
Both are read from a Git commit (never from uncommitted files): commit your changes first.\n\
See docs/environments.md for the file format."
)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Repository holding environments/ and manifests/ [default: the Git repository containing the current directory]
    #[arg(long, global = true, value_name = "PATH|URL", env = "TIDEGATE_REPO")]
    pub repo: Option<String>,
    /// Branch, tag or commit to read [default: HEAD for the local repository; spec.source.ref for a remote source]
    #[arg(long = "ref", global = true, value_name = "REF")]
    pub git_ref: Option<String>,
    /// How clusters are reached: `auto` uses each cluster's provider (EKS, AKS, GKE or kubeconfig); `kubeconfig` uses every cluster's kubeconfig context (local runs, the demo)
    #[arg(long, global = true, value_enum, default_value_t = Access::Auto, env = "TIDEGATE_ACCESS")]
    pub access: Access,
    /// More output (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour in output
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How clusters are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Access {
    /// Each cluster's own provider.
    Auto,
    /// Every cluster through its kubeconfig context.
    Kubeconfig,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// When writing to a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Output format of rendered objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Multi-document YAML with a source comment per object.
    Yaml,
    /// One JSON document with clusters, apps, objects and their provenance.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check environment files and render every app for every cluster; exit 1 with every problem found
    Validate(ValidateArgs),
    /// Print the objects an environment renders to
    Render(RenderArgs),
}

/// `tidegate validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Environment(s) to check [default: every file in environments/]
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
}

/// `tidegate render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Environment to render
    #[arg(long = "env", value_name = "ENV")]
    pub env: String,
    /// Only this cluster
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Only this app
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
}
