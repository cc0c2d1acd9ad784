//! Server side of server mode: the [`Runner`] the controller's API runs
//! CLI commands with, in-process, through the same command code as a
//! standalone run (output captured by [`crate::sink`]).
//!
//! The command line comes from an API client and is untrusted: only the
//! API's commands are accepted, and any flag naming a file, kubeconfig,
//! repository, ref, audit database or log setting is refused. What those
//! flags would choose is pinned to the controller's own: its `--repo`,
//! `--ref`, `--access`, `--kubeconfig` and `--audit-db`.

use crate::{
    args::{Access, AuditCommand, Cli, Color, Command, ControllerArgs, Global},
    output::Style,
    sink::{self, Capture, Stream},
};
use clap::{CommandFactory, FromArgMatches};
use std::{path::PathBuf, process::ExitCode, sync::Arc};
use tidegate_audit::{AuditStore, Filter};
use tidegate_auth::{Action, ApprovalRule, Identity, TokenStore};
use tidegate_controller::Observers;
use tidegate_server::{
    api::{self, Frame, Output},
    auth::Authenticator,
};

/// Flags an API request may not give: they name files, clusters,
/// repositories, refs, audit databases or logging of the controller's
/// process. (Whatever they would choose is pinned to the controller's own
/// anyway; refusing them says so instead of silently ignoring them.)
const REFUSED: [&str; 10] = [
    "--kubeconfig",
    "--audit-db",
    "--repo",
    "--ref",
    "--access",
    "--verbose",
    "--quiet",
    "--log-format",
    "--server",
    "--token-file",
];

/// The commands of the API, as the client names them.
pub const API_COMMANDS: &str =
    "sync, rollback, approve, unquarantine, switch, status, history, plan, diff, audit log";

/// Runs API commands with the controller's own repository, clusters and
/// audit trail.
pub struct CliRunner {
    repo: Option<String>,
    git_ref: Option<String>,
    access: Access,
    kubeconfig: Option<PathBuf>,
    audit_db: PathBuf,
    /// The controller's observers (its HTTP server's monitor): told of what
    /// API commands do that the controller's loops do not (switches).
    observers: Observers,
}

/// The API of `tidegate controller --listen`: tokens from the management
/// cluster's Secret (the leader-election context and namespace), commands
/// run by a [`CliRunner`], self-approval where `--allow-self-approval` says.
pub async fn build(global: &Global, args: &ControllerArgs, observers: Observers) -> api::Api {
    // Without a management cluster the controller still serves probes,
    // metrics and webhooks; the API answers 503 saying why.
    let authenticator = match super::controller::management_client(
        args.kubeconfig.as_deref(),
        args.ha.leader_election_context.clone(),
    )
    .await
    {
        Ok(client) => {
            Authenticator::new(TokenStore::new(client, &args.ha.leader_election_namespace))
        }
        Err(e) => {
            let why = format!("no management cluster to read API tokens from: {e:#}");
            tracing::warn!(error = %why, "the API will refuse every request");
            Authenticator::unavailable(why)
        }
    };
    let mut approvals = ApprovalRule::new();
    for env in &args.server.allow_self_approval {
        approvals = approvals.allow_self_approval_in(env.clone());
    }
    api::Api {
        authenticator: Arc::new(authenticator),
        runner: Arc::new(CliRunner {
            repo: global.repo.clone(),
            git_ref: global.git_ref.clone(),
            access: global.access,
            kubeconfig: args.kubeconfig.clone(),
            audit_db: args.audit.path(),
            observers,
        }),
        approvals,
    }
}

impl CliRunner {
    /// Parses `args` as `tidegate <args>`, refuses what the API does not
    /// run, and pins every path to the controller's own.
    fn parse(&self, args: &[String]) -> Result<(Cli, Action, Option<String>), String> {
        refuse_flags(args)?;
        let matches = Cli::command()
            .color(clap::ColorChoice::Never)
            .try_get_matches_from(
                std::iter::once("tidegate".to_string()).chain(args.iter().cloned()),
            )
            .map_err(|e| e.to_string().trim_end().to_string())?;
        let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        let (action, env) = self.pin(&mut cli)?;
        Ok((cli, action, env))
    }

    /// The action and environment of an API command, its paths set to the
    /// controller's.
    fn pin(&self, cli: &mut Cli) -> Result<(Action, Option<String>), String> {
        cli.global.repo.clone_from(&self.repo);
        cli.global.git_ref.clone_from(&self.git_ref);
        cli.global.access = self.access;
        let kubeconfig = self.kubeconfig.clone();
        let audit = Some(self.audit_db.clone());
        Ok(match &mut cli.command {
            Command::Sync(a) => {
                a.selection.kubeconfig = kubeconfig;
                a.audit.audit_db = audit;
                (Action::Sync, Some(a.selection.env.clone()))
            }
            Command::Status(a) => {
                a.selection.kubeconfig = kubeconfig;
                (Action::Status, Some(a.selection.env.clone()))
            }
            Command::Diff(a) => {
                a.selection.kubeconfig = kubeconfig;
                (Action::Diff, Some(a.selection.env.clone()))
            }
            Command::Plan(a) => {
                a.kubeconfig = kubeconfig;
                (Action::Plan, Some(a.env.clone()))
            }
            Command::Approve(a) => {
                a.kubeconfig = kubeconfig;
                a.audit.audit_db = audit;
                (Action::Approve, Some(a.env.clone()))
            }
            Command::Rollback(a) => {
                a.rollout.kubeconfig = kubeconfig;
                a.rollout.audit.audit_db = audit;
                (Action::Rollback, Some(a.env.clone()))
            }
            Command::Switch(a) => {
                a.rollout.kubeconfig = kubeconfig;
                a.rollout.audit.audit_db = audit;
                (Action::Switch, Some(a.env.clone()))
            }
            Command::Unquarantine(a) => {
                a.kubeconfig = kubeconfig;
                a.audit.audit_db = audit;
                (Action::Unquarantine, Some(a.env.clone()))
            }
            Command::History(a) => {
                a.audit.audit_db = audit;
                (Action::History, Some(a.env.clone()))
            }
            Command::Audit(a) => {
                a.audit_db = audit;
                match &a.command {
                    AuditCommand::Log(log) => (Action::Read, log.window.env.clone()),
                    _ => return Err(not_api("this audit command")),
                }
            }
            _ => return Err(not_api("this command")),
        })
    }
}

fn not_api(what: &str) -> String {
    format!(
        "{what} does not run through the server; the API runs {API_COMMANDS} (run others without --server)"
    )
}

/// Refuses the flags of [`REFUSED`] (`--flag`, `--flag=VALUE`) and the
/// short `-v`/`-q` (alone or combined) anywhere on the command line.
fn refuse_flags(args: &[String]) -> Result<(), String> {
    for arg in args {
        if arg == "--" {
            break;
        }
        let flag = arg.split_once('=').map_or(arg.as_str(), |(f, _)| f);
        let short = !arg.starts_with("--")
            && arg.starts_with('-')
            && arg[1..].chars().any(|c| c == 'v' || c == 'q');
        if REFUSED.contains(&flag) || short {
            return Err(format!(
                "{flag} is not accepted through the server: the controller uses its own repository, ref, clusters, kubeconfig, audit trail and logging (run without --server to use yours)"
            ));
        }
    }
    Ok(())
}

impl api::Runner for CliRunner {
    fn prepare(&self, args: &[String]) -> Result<api::Command, String> {
        let (_, action, env) = self.parse(args)?;
        Ok(api::Command {
            action,
            env,
            args: args.to_vec(),
        })
    }

    fn started_by(&self, command: &api::Command) -> Result<Option<Identity>, String> {
        let (cli, _, env) = self.parse(&command.args)?;
        let Command::Approve(approve) = &cli.command else {
            return Ok(None);
        };
        let workspace = match &approve.revision {
            Some(r) => tidegate_app::Workspace::open(cli.global.repo.as_deref(), Some(r)),
            None => super::fleet::workspace(&cli.global),
        }
        .map_err(|e| e.to_string())?;
        let sha = workspace.commit_sha().to_string();
        let is_url = self.audit_db.to_str().is_some_and(|p| p.contains("://"));
        if !is_url && !self.audit_db.exists() {
            return Ok(None);
        }
        let store = AuditStore::open_read_only(&self.audit_db).map_err(|e| e.to_string())?;
        let records = store
            .records(&Filter {
                environment: env,
                actions: vec!["rollout-start".into()],
                ..Filter::default()
            })
            .map_err(|e| e.to_string())?;
        Ok(records
            .iter()
            .rev()
            .find(|r| r.entry.to.as_ref().is_some_and(|to| to.sha == sha))
            .map(|r| Identity::of_actor(&r.entry.actor)))
    }

    fn run(&self, command: api::Command, who: Identity, color: bool, out: Output) {
        let cli = match self.parse(&command.args) {
            Ok((cli, _, _)) => cli,
            Err(e) => {
                let _ = out.send(Frame::Stderr(format!("refused: {e}\n")));
                let _ = out.send(Frame::Exit(2));
                return;
            }
        };
        let done = out.clone();
        let observers = self.observers.clone();
        let spawned = std::thread::Builder::new()
            .name("tidegate-api-command".into())
            .spawn(move || {
                let code = run_captured(&cli, who, observers, color, out);
                let _ = done.send(Frame::Exit(code));
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a thread for an API command");
        }
    }
}

/// Runs `cli` on this thread, its output sent to `out` and `who` the audit
/// actor; returns the exit code, as `main` would.
fn run_captured(cli: &Cli, who: Identity, observers: Observers, color: bool, out: Output) -> u8 {
    sink::capture(Capture {
        send: Box::new(move |stream, text| {
            let _ = out.send(match stream {
                Stream::Out => Frame::Stdout(text),
                Stream::Err => Frame::Stderr(text),
            });
        }),
        who,
        observers,
    });
    let style = Style::new(if color { Color::Always } else { Color::Never });
    tidegate_cluster::install_crypto_provider();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(super::run_api(cli, &style)));
    match result {
        Ok(code) => exit_code(code),
        Err(error) => {
            errln!("{} {error:#}", style.error("error:"));
            2
        }
    }
}

/// The number in an [`ExitCode`] (which does not expose it).
fn exit_code(code: ExitCode) -> u8 {
    (0..=u8::MAX)
        .find(|n| ExitCode::from(*n) == code)
        .unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_server::api::Runner as _;

    fn runner() -> CliRunner {
        CliRunner {
            repo: Some("/srv/fleet".into()),
            git_ref: Some("main".into()),
            access: Access::Kubeconfig,
            kubeconfig: Some("/etc/tidegate/kubeconfig".into()),
            audit_db: "/var/lib/tidegate/audit.db".into(),
            observers: Observers::default(),
        }
    }

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn api_commands_map_to_their_action_and_environment() {
        let r = runner();
        for (line, action, env) in [
            ("sync --env prod", Action::Sync, Some("prod")),
            (
                "sync --env prod --cluster a --dry-run",
                Action::Sync,
                Some("prod"),
            ),
            (
                "rollback --env prod --to abc",
                Action::Rollback,
                Some("prod"),
            ),
            ("approve --env prod --wave 2", Action::Approve, Some("prod")),
            (
                "unquarantine --env dev --revision abc",
                Action::Unquarantine,
                Some("dev"),
            ),
            (
                "switch --env prod --app a --to green",
                Action::Switch,
                Some("prod"),
            ),
            (
                "--color always status --env prod",
                Action::Status,
                Some("prod"),
            ),
            ("history --env prod", Action::History, Some("prod")),
            ("plan --env prod", Action::Plan, Some("prod")),
            ("diff --env prod", Action::Diff, Some("prod")),
            ("audit log --env prod", Action::Read, Some("prod")),
            ("audit log", Action::Read, None),
        ] {
            let c = r.prepare(&args(line)).expect(line);
            assert_eq!((c.action, c.env.as_deref()), (action, env), "{line}");
        }
    }

    #[test]
    fn other_commands_and_path_flags_are_refused_with_the_reason() {
        let r = runner();
        for (line, says) in [
            ("validate", "does not run through the server"),
            ("token list", "does not run through the server"),
            ("controller", "does not run through the server"),
            ("audit verify", "this audit command does not run"),
            ("render --env prod", "does not run through the server"),
            (
                "sync --env prod --kubeconfig /home/x/.kube/config",
                "--kubeconfig is not accepted",
            ),
            (
                "sync --env prod --kubeconfig=/x",
                "--kubeconfig is not accepted",
            ),
            (
                "--repo https://evil.example/x.git status --env prod",
                "--repo is not accepted",
            ),
            ("status --env prod --repo /tmp/x", "--repo is not accepted"),
            ("plan --env prod --ref evil", "--ref is not accepted"),
            (
                "history --env prod --audit-db /tmp/a.db",
                "--audit-db is not accepted",
            ),
            (
                "audit --audit-db /tmp/a.db log",
                "--audit-db is not accepted",
            ),
            ("-v status --env prod", "-v is not accepted"),
            ("status --env prod -vv", "-vv is not accepted"),
            ("status --env prod --verbose", "--verbose is not accepted"),
            (
                "status --env prod --access auto",
                "--access is not accepted",
            ),
            ("sync", "--env"),
        ] {
            let err = r.prepare(&args(line)).expect_err(line);
            assert!(err.contains(says), "{line}: {err}");
        }
    }

    #[test]
    fn paths_are_the_controllers_whatever_the_request() {
        let r = runner();
        let (cli, _, _) = r.parse(&args("sync --env prod")).expect("sync");
        assert_eq!(cli.global.repo.as_deref(), Some("/srv/fleet"));
        assert_eq!(cli.global.git_ref.as_deref(), Some("main"));
        let Command::Sync(s) = &cli.command else {
            panic!("sync")
        };
        assert_eq!(
            s.selection.kubeconfig.as_deref(),
            Some(std::path::Path::new("/etc/tidegate/kubeconfig"))
        );
        assert_eq!(s.audit.path(), PathBuf::from("/var/lib/tidegate/audit.db"));
    }

    #[test]
    fn allow_self_approval_takes_environments_or_means_every_one() {
        use clap::Parser as _;
        let parse = |extra: &[&str]| {
            let cli = Cli::try_parse_from(
                ["tidegate", "controller", "--listen", "127.0.0.1:0"]
                    .iter()
                    .chain(extra),
            )
            .expect("parses");
            let Command::Controller(c) = cli.command else {
                panic!("controller")
            };
            c.server.allow_self_approval
        };
        assert!(parse(&[]).is_empty());
        assert_eq!(parse(&["--allow-self-approval"]), ["*"]);
        assert_eq!(
            parse(&["--allow-self-approval=dev", "--allow-self-approval=staging"]),
            ["dev", "staging"]
        );
    }

    #[test]
    fn exit_codes_survive_the_trip() {
        assert_eq!(exit_code(ExitCode::SUCCESS), 0);
        assert_eq!(exit_code(ExitCode::from(1)), 1);
        assert_eq!(exit_code(ExitCode::from(2)), 2);
    }
}
