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
    /// Server mode: run sync, rollback, approve, unquarantine, switch, status, history, plan, diff and `audit log` in the controller at this URL (e.g. https://tidegate.example.com) [default: standalone]
    #[arg(long, global = true, value_name = "URL", env = "TIDEGATE_SERVER")]
    pub server: Option<String>,
    /// File holding the API token for --server [default: $TIDEGATE_TOKEN]
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
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
    /// Read, verify, report on and export the tamper-evident audit trail
    Audit(AuditArgs),
    /// Show how clusters differ from Git (server-side dry run); exit 0 in sync, 1 drift, 2 error
    Diff(DiffArgs),
    /// Make one cluster match Git: server-side apply, prune, wait for health
    Sync(SyncArgs),
    /// Per cluster and app: revision applied, sync state, health, drifted objects
    Status(StatusArgs),
    /// Show the waves, limits, gates and what would change in each cluster, before anything changes
    Plan(PlanArgs),
    /// Approve a wave marked `approval: required` for the revision being rolled out
    Approve(ApproveArgs),
    /// Roll the environment back to a revision, in waves under the same limits
    Rollback(RollbackArgs),
    /// Allow a quarantined revision to be rolled out again
    Unquarantine(UnquarantineArgs),
    /// Rollouts of an environment, with their outcome
    History(HistoryArgs),
    /// Every cluster of an environment: provider, endpoint, version, status, reachable or why not
    Clusters(ClustersArgs),
    /// Switch a blue-green app to another colour: pre-checks, commit, flip in waves, post-checks, automatic revert
    Switch(SwitchArgs),
    /// The health of every object in a YAML file, by the built-in rules or an environment's custom checks
    Health(HealthArgs),
    /// Keep environments matching Git until stopped: roll new commits out in waves, correct (selfHeal) or report drift
    Controller(Box<ControllerArgs>),
    /// Create, list and revoke API tokens of the controller's API (hashes kept in the management cluster)
    Token(TokenArgs),
}

/// `tidegate token`: API tokens, kept as SHA-256 digests in a Secret of the management cluster (docs/auth.md).
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Kubeconfig file of the management cluster [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context of the management cluster [default: in-cluster config, else the current context]
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// Namespace of the token Secret (the controller's --leader-election-namespace)
    #[arg(
        long,
        global = true,
        value_name = "NS",
        default_value = "tidegate-system",
        env = "TIDEGATE_NAMESPACE"
    )]
    pub namespace: String,
    /// Where creations and revocations are recorded (the local audit trail).
    #[command(flatten)]
    pub audit: AuditDb,
    /// What to do with tokens.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// `tidegate token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (only its SHA-256 digest is kept)
    Create(TokenCreateArgs),
    /// Every token: id, name, roles, state, expiry (never the token)
    List(TokenListArgs),
    /// Revoke a token: it never authenticates again
    Revoke(TokenRevokeArgs),
}

/// `tidegate token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Who or what holds the token: the identity recorded in the audit trail (e.g. alice, ci-deployer)
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// A role in an environment, ENV=ROLE with ROLE viewer, deployer, approver or admin and ENV `*` for every environment (repeat for more)
    #[arg(long = "role", value_name = "ENV=ROLE", required = true)]
    pub roles: Vec<String>,
    /// Lifetime: a whole number of d, h, m or s (e.g. 30d), or `never`
    #[arg(long, value_name = "LIFETIME", default_value = "90d")]
    pub expires: String,
}

/// `tidegate token list`.
#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Output format
    #[arg(long, short, value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
}

/// `tidegate token revoke`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (as `token list` shows it; `tgt_<id>` also works)
    #[arg(value_name = "ID")]
    pub id: String,
}

/// `tidegate controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Environment to follow (repeat for more) [default: every environment in the repository]
    #[arg(long = "env", value_name = "ENV")]
    pub env: Vec<String>,
    /// Kubeconfig file [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Watch events of one app in one cluster closer together than this are checked once (milliseconds)
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub debounce_ms: u64,
    /// High availability: leader election between replicas, shutdown.
    #[command(flatten)]
    pub ha: LeaderElectionArgs,
    /// The HTTP server: probes, metrics, webhooks.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Where the audit trail is.
    #[command(flatten)]
    pub audit: AuditDb,
    /// Send notifications (Slack, Teams, signed webhooks, CDEvents, GitHub commit statuses) as this operator's file says (docs/notifications.md)
    #[arg(long, value_name = "FILE", env = "TIDEGATE_NOTIFICATIONS")]
    pub notifications: Option<std::path::PathBuf>,
}

/// The HTTP server of `tidegate controller` (see docs/controller.md, "The HTTP server").
/// Webhook secrets are read from files or from the variables
/// TIDEGATE_WEBHOOK_{GITHUB,GITLAB,BITBUCKET}_SECRET and TIDEGATE_WEBHOOK_TOKEN, never from flags.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Serve /healthz, /readyz, /metrics and /webhooks/* on this address (e.g. 0.0.0.0:8080) [default: no server]
    #[arg(long, value_name = "ADDR", env = "TIDEGATE_LISTEN")]
    pub listen: Option<String>,
    /// File holding the GitHub webhook secret (else $TIDEGATE_WEBHOOK_GITHUB_SECRET)
    #[arg(long, value_name = "FILE")]
    pub github_webhook_secret_file: Option<std::path::PathBuf>,
    /// File holding the GitLab webhook secret token (else $TIDEGATE_WEBHOOK_GITLAB_SECRET)
    #[arg(long, value_name = "FILE")]
    pub gitlab_webhook_secret_file: Option<std::path::PathBuf>,
    /// File holding the Bitbucket webhook secret (else $TIDEGATE_WEBHOOK_BITBUCKET_SECRET)
    #[arg(long, value_name = "FILE")]
    pub bitbucket_webhook_secret_file: Option<std::path::PathBuf>,
    /// File holding the generic webhook's bearer token (else $TIDEGATE_WEBHOOK_TOKEN)
    #[arg(long, value_name = "FILE")]
    pub webhook_token_file: Option<std::path::PathBuf>,
    /// Let the identity that started a rollout approve its waves through the API, in ENV (repeatable; without a value: every environment) [default: refused everywhere]
    #[arg(long, value_name = "ENV", num_args = 0..=1, default_missing_value = "*", require_equals = true)]
    pub allow_self_approval: Vec<String>,
    /// Show the read-only fleet page (/fleet) to anyone who reaches the server, without an API token (a private network, local runs) [default: a viewer token is needed]
    #[arg(long)]
    pub fleet_page_anonymous: bool,
}

/// Leader election and shutdown of `tidegate controller` (see docs/controller-ha.md).
#[derive(Debug, Args)]
pub struct LeaderElectionArgs {
    /// Run as one of several replicas: only the one holding the Lease reconciles; rollout journals live in the management cluster
    #[arg(long)]
    pub leader_elect: bool,
    /// Run as one of several replicas that share the environments (rendezvous hashing over member Leases; each environment reconciled only by the holder of its ownership Lease); the timings and namespace below apply
    #[arg(long, conflicts_with = "leader_elect")]
    pub shard: bool,
    /// With --shard: an environment of more than N clusters is also split by cluster: each replica watches and drift-checks its rendezvous share of the clusters and records the drift it finds in the management cluster; the environment's owner alone rolls out and corrects it [default: never split]
    #[arg(long, value_name = "N", requires = "shard")]
    pub shard_clusters_above: Option<usize>,
    /// This replica's identity in the Leases [default: <host>-<pid>; in a pod, pass its name]
    #[arg(long, value_name = "ID", env = "TIDEGATE_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Namespace of the Lease and the journals in the management cluster
    #[arg(long, value_name = "NS", default_value = "tidegate-system")]
    pub leader_election_namespace: String,
    /// Name of the Lease (replicas of one controller share it)
    #[arg(long, value_name = "NAME", default_value = "tidegate-controller")]
    pub leader_election_id: String,
    /// Kubeconfig context of the management cluster [default: in-cluster config, else the current context of --kubeconfig]
    #[arg(long, value_name = "CONTEXT")]
    pub leader_election_context: Option<String>,
    /// How long the Lease lasts without renewal (whole seconds)
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub lease_duration: tidegate_core::duration::GoDuration,
    /// The leader steps down when it could not renew for this long
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub renew_deadline: tidegate_core::duration::GoDuration,
    /// How often the leader renews and the others try
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub retry_period: tidegate_core::duration::GoDuration,
    /// On SIGTERM, how long a rollout step in flight may take to finish (the process exits within this plus 10s)
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub shutdown_grace: tidegate_core::duration::GoDuration,
}

/// `tidegate health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// YAML file of live objects (e.g. `kubectl get -o yaml`; a `List` is not unpacked)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// Use this environment's custom checks (`spec.health`) [default: built-in rules only]
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
    /// Assess as in a cluster of this provider (kubeconfig, eks, aks, gke)
    #[arg(long)]
    pub provider: Option<String>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
}

/// `tidegate switch`.
#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// Environment
    #[arg(long = "env", value_name = "ENV")]
    pub env: String,
    /// The blue-green app
    #[arg(long)]
    pub app: String,
    /// The colour to send traffic to
    #[arg(long, value_name = "COLOUR")]
    pub to: String,
    /// Why (commit message and audit trail)
    #[arg(long)]
    pub reason: Option<String>,
    /// Commit locally only; do not push to origin
    #[arg(long)]
    pub no_push: bool,
    /// After a successful switch, wait this long (e.g. 30m), then scale the
    /// old colour to 0 replicas as a commit rolled out like any other
    #[arg(long, value_name = "DURATION")]
    pub scale_down_after: Option<tidegate_core::duration::GoDuration>,
    /// Rollout options.
    #[command(flatten)]
    pub rollout: RolloutFlags,
}

/// `tidegate plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Environment
    #[arg(long = "env", value_name = "ENV")]
    pub env: String,
    /// Kubeconfig file [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Only the waves and limits; do not contact the clusters
    #[arg(long)]
    pub offline: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
}

/// `tidegate approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Environment
    #[arg(long = "env", value_name = "ENV")]
    pub env: String,
    /// The wave to approve
    #[arg(long)]
    pub wave: u32,
    /// The revision being rolled out [default: --ref, or HEAD]
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// Why (recorded in the audit trail)
    #[arg(long)]
    pub reason: Option<String>,
    /// Kubeconfig file [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Where the audit trail is.
    #[command(flatten)]
    pub audit: AuditDb,
}

/// `tidegate rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Environment
    #[arg(long = "env", value_name = "ENV")]
    pub env: String,
    /// The revision to go back to [default: the last healthy revision recorded in the clusters]
    #[arg(long, value_name = "REV")]
    pub to: Option<String>,
    /// Only this cluster (no waves)
    #[arg(long)]
    pub cluster: Option<String>,
    /// Rollout options.
    #[command(flatten)]
    pub rollout: RolloutFlags,
}

/// Options of a fleet rollout.
#[derive(Debug, Args)]
pub struct RolloutFlags {
    /// Kubeconfig file [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Take the environment's lock even if someone holds it (a crashed run)
    #[arg(long)]
    pub break_lock: bool,
    /// Where the audit trail is.
    #[command(flatten)]
    pub audit: AuditDb,
}

/// `tidegate unquarantine`.
#[derive(Debug, Args)]
pub struct UnquarantineArgs {
    /// Environment
    #[arg(long = "env", value_name = "ENV")]
    pub env: String,
    /// The quarantined revision
    #[arg(long, value_name = "REV")]
    pub revision: String,
    /// Why (recorded in the audit trail)
    #[arg(long)]
    pub reason: Option<String>,
    /// Kubeconfig file [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Where the audit trail is.
    #[command(flatten)]
    pub audit: AuditDb,
}

/// `tidegate history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Environment
    #[arg(long = "env", value_name = "ENV")]
    pub env: String,
    /// Where the audit trail is.
    #[command(flatten)]
    pub audit: AuditDb,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
}

/// Which clusters and apps of an environment a command works on.
#[derive(Debug, Args)]
pub struct Selection {
    /// Environment
    #[arg(long = "env", value_name = "ENV")]
    pub env: String,
    /// Only this cluster [default: every cluster of the environment]
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Only this app [default: every app]
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Kubeconfig file [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// Output format of diff, sync and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TextOrJson {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// `tidegate diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// What to compare.
    #[command(flatten)]
    pub selection: Selection,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
}

/// `tidegate sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// What to sync: with --cluster one cluster; without, the whole
    /// environment as a rollout in waves.
    #[command(flatten)]
    pub selection: Selection,
    /// Continue the rollout a killed run left behind (from its journal)
    #[arg(long)]
    pub resume: bool,
    /// Take the environment's lock even if someone holds it (a crashed run)
    #[arg(long)]
    pub break_lock: bool,
    /// Apply a revision that a failed rollout quarantined (needs --reason; audited)
    #[arg(long)]
    pub allow_quarantined: bool,
    /// Change clusters outside their maintenance windows and during freezes
    /// (a fleet rollout; needs --reason; audited)
    #[arg(long)]
    pub ignore_windows: bool,
    /// Why a quarantined revision is applied anyway, or windows are ignored
    /// (recorded in the audit trail)
    #[arg(long)]
    pub reason: Option<String>,
    /// Plan and show what would change; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Delete objects that left Git (also on when the environment sets sync.prune)
    #[arg(long)]
    pub prune: bool,
    /// Take ownership of fields other field managers own
    #[arg(long)]
    pub force_conflicts: bool,
    /// Allow an app that has objects in the cluster to render none
    #[arg(long)]
    pub allow_empty: bool,
    /// Wait until the applied objects are healthy (up to the environment's progressDeadline)
    #[arg(long)]
    pub wait: bool,
    /// Where the audit trail is (every sync that changes the cluster is recorded).
    #[command(flatten)]
    pub audit: AuditDb,
    /// Output format of the per-object results
    #[arg(short, long, value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
}

/// `tidegate status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// What to show.
    #[command(flatten)]
    pub selection: Selection,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
}

/// `tidegate clusters`.
#[derive(Debug, Args)]
pub struct ClustersArgs {
    /// Environment
    #[arg(long = "env", value_name = "ENV")]
    pub env: String,
    /// Only this cluster [default: every cluster of the environment]
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Kubeconfig file [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
}

/// `tidegate validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Environment(s) to check [default: every file in environments/]
    #[arg(long = "env", value_name = "ENV")]
    pub envs: Vec<String>,
    /// Do not ask the clouds for `discover:` entries' clusters: render each
    /// entry once as a stand-in cluster carrying its tags and labels
    #[arg(long)]
    pub offline: bool,
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

/// `tidegate audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Audit database: an SQLite file (a path or sqlite://PATH) or postgres://… [default: $XDG_STATE_HOME/tidegate/audit.db, else ~/.local/state/tidegate/audit.db]
    #[arg(
        long,
        global = true,
        value_name = "PATH|URL",
        env = "TIDEGATE_AUDIT_DB"
    )]
    pub audit_db: Option<std::path::PathBuf>,
    /// What to do with the audit trail.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// `tidegate audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print log entries, oldest first
    Log(AuditLogArgs),
    /// Recompute the hash chain and check signed heads; exit 1 at the first altered, removed, inserted or reordered entry
    Verify(AuditVerifyArgs),
    /// Summary, timelines, revision history, DORA metrics and interrupted operations over a window
    Report(AuditReportArgs),
    /// Entries for log pipelines (JSON lines) or CD tooling (CDEvents)
    Export(AuditExportArgs),
    /// Create an Ed25519 key for signing chain heads
    Keygen(AuditKeygenArgs),
    /// Copy the SQLite trail (--audit-db) into PostgreSQL, then verify the copy ends at the same head
    Migrate(AuditMigrateArgs),
}

/// `tidegate audit migrate`.
#[derive(Debug, Args)]
pub struct AuditMigrateArgs {
    /// The PostgreSQL database to copy into: postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=verify-full&sslrootcert=FILE]; must be empty or hold the start of this same chain
    #[arg(long, value_name = "URL")]
    pub to: String,
}

/// Which entries: shared by log, report and export.
#[derive(Debug, Args)]
pub struct AuditWindow {
    /// Only this environment
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
    /// From this time: RFC 3339 (2026-11-25T12:00:00Z), a date, or an age (30d, 12h, 90m) [default: the beginning; 30d for `audit report`]
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Before this time (same forms as --since) [default: now]
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

/// `tidegate audit log`.
#[derive(Debug, Args)]
pub struct AuditLogArgs {
    /// Window and environment.
    #[command(flatten)]
    pub window: AuditWindow,
    /// Only this cluster
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,
    /// Only this app
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Only these actions (repeat or comma-separate: rollout-start,switch,rollback,...)
    #[arg(long, value_name = "ACTION", value_delimiter = ',')]
    pub action: Vec<String>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = AuditLogOutput::Table)]
    pub output: AuditLogOutput,
}

/// `tidegate audit log -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditLogOutput {
    /// Aligned columns.
    Table,
    /// A JSON array of records (with their hashes).
    Json,
}

/// `tidegate audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Also require a head signed by this Ed25519 public key (64 hex characters), so that a rewritten or truncated file is detected
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<std::path::PathBuf>,
    /// After a successful check, sign the head with this Ed25519 key (64 hex characters, from `tidegate audit keygen`)
    #[arg(long, value_name = "FILE", env = "TIDEGATE_AUDIT_SIGNING_KEY")]
    pub signing_key: Option<std::path::PathBuf>,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = AuditVerifyOutput::Text)]
    pub output: AuditVerifyOutput,
}

/// `tidegate audit verify -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditVerifyOutput {
    /// One sentence.
    Text,
    /// The verification result as JSON.
    Json,
}

/// `tidegate audit report`.
#[derive(Debug, Args)]
pub struct AuditReportArgs {
    /// Window and environment (--since defaults to 30d).
    #[command(flatten)]
    pub window: AuditWindow,
    /// Instead of the report: what ran where at this time (same forms as --since)
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Report format
    #[arg(long, value_enum, default_value_t = AuditReportFormat::Md)]
    pub format: AuditReportFormat,
    /// Write to this file [default: stdout]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

/// `tidegate audit report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditReportFormat {
    /// Markdown.
    Md,
    /// One self-contained HTML file (inline CSS and SVG charts).
    Html,
    /// JSON.
    Json,
    /// CSV, one row per log entry of the window.
    Csv,
}

/// `tidegate audit export`.
#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Window and environment.
    #[command(flatten)]
    pub window: AuditWindow,
    /// Export format
    #[arg(long, value_enum, default_value_t = AuditExportFormat::Jsonl)]
    pub format: AuditExportFormat,
    /// CDEvents `source` (URI reference)
    #[arg(long, value_name = "URI", default_value = "/tidegate/audit")]
    pub source: String,
    /// Write to this file [default: stdout]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

/// `tidegate audit export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditExportFormat {
    /// One JSON object per line, every entry, with `@timestamp`.
    Jsonl,
    /// One CDEvent per line (service.deployed, .rolledback, .upgraded).
    Cdevents,
}

/// `tidegate audit keygen`.
#[derive(Debug, Args)]
pub struct AuditKeygenArgs {
    /// Where to write the secret key (mode 0600; never overwritten); the public key goes to FILE.pub
    #[arg(long, value_name = "FILE")]
    pub out: std::path::PathBuf,
}

/// The audit database a command reads or writes.
#[derive(Debug, Args)]
pub struct AuditDb {
    /// Audit database: an SQLite file (a path or sqlite://PATH) or postgres://… [default: $XDG_STATE_HOME/tidegate/audit.db, else ~/.local/state/tidegate/audit.db]
    #[arg(long = "audit-db", value_name = "PATH|URL", env = "TIDEGATE_AUDIT_DB")]
    pub audit_db: Option<std::path::PathBuf>,
}

impl AuditDb {
    /// The database path, the default when none was given.
    pub fn path(&self) -> std::path::PathBuf {
        audit_db_path(self.audit_db.as_deref())
    }
}

/// `path`, or the default audit database.
pub fn audit_db_path(path: Option<&std::path::Path>) -> std::path::PathBuf {
    path.map(std::path::Path::to_path_buf)
        .unwrap_or_else(tidegate_audit::SqliteStore::default_path)
}
