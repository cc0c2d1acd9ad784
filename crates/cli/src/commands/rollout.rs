//! Fleet rollouts: `plan`, `sync --env` (without --cluster), `approve`,
//! `rollback`, `unquarantine`, `history`.

use super::fleet;
use crate::{
    args::{
        ApproveArgs, AuditDb, Global, HistoryArgs, PlanArgs, RollbackArgs, Selection, SwitchArgs,
        SyncArgs, TextOrJson, UnquarantineArgs,
    },
    output::Style,
    workspace::Workspace,
};
use anyhow::{Context, bail};
use futures::future::BoxFuture;
use std::{path::PathBuf, process::ExitCode, sync::Mutex};
use tidegate_audit::{
    Action, Actor, AuditSink, Entry, Filter, Record, Revision, SqliteStore, Trigger,
};
use tidegate_cloud::CloudFactory;
use tidegate_core::Environment;
use tidegate_fleet::{Approvals, ClusterLine, Driver, DriverOptions, Journal, Outcome, Revisions};
use tidegate_render::Rendered;
use tidegate_source::LoadError;
use tidegate_sync::{Audit, SyncOptions};

fn actor() -> Actor {
    Actor::local_user(Trigger::Cli)
}

/// The latest quarantine of `revision` in `env` not lifted by an unquarantine.
fn quarantined(store: &SqliteStore, env: &str, revision: &str) -> anyhow::Result<Option<Record>> {
    let records = store.records(&Filter {
        environment: Some(env.to_string()),
        actions: vec!["quarantine".into(), "unquarantine".into()],
        ..Filter::default()
    })?;
    Ok(records
        .into_iter()
        .rfind(|r| r.entry.to.as_ref().is_some_and(|t| t.sha == revision))
        .filter(|r| r.entry.action == Action::Quarantine))
}

/// Renders the environment at another revision, from the same repository,
/// discovering its clusters through `factory`.
struct GitRevisions<'f> {
    repo: Option<String>,
    env: String,
    factory: &'f CloudFactory,
}

impl Revisions for GitRevisions<'_> {
    fn render<'a>(
        &'a self,
        revision: &'a str,
    ) -> BoxFuture<'a, Result<(Environment, Rendered), String>> {
        Box::pin(async move {
            let loading = Workspace::open_at(self.repo.as_deref(), Some(revision))
                .map_err(|e| format!("{e:#}"))?
                .load_discovered(&self.env, self.factory);
            let desired = loading.await.map_err(|e| match e {
                LoadError::Invalid(d) => d.to_string(),
                LoadError::Source(e) => e.to_string(),
            })?;
            let rendered = tidegate_render::render_environment(
                &desired.environment,
                &desired.env_file,
                &desired.commit.sha,
                &desired.apps,
            )
            .map_err(|d| d.to_string())?;
            Ok((desired.environment, rendered))
        })
    }
}

/// Approvals recorded in the audit trail by `tidegate approve`.
struct AuditApprovals {
    path: PathBuf,
    env: String,
    revision: String,
}

impl Approvals for AuditApprovals {
    fn approved(&self, wave: u32) -> bool {
        let Ok(store) = SqliteStore::open_existing(&self.path) else {
            return false;
        };
        store
            .records(&Filter {
                environment: Some(self.env.clone()),
                actions: vec!["approve".into()],
                ..Filter::default()
            })
            .unwrap_or_default()
            .iter()
            .any(|r| {
                r.entry.details.get("wave") == Some(&wave.to_string())
                    && r.entry.to.as_ref().is_some_and(|t| t.sha == self.revision)
            })
    }
}

fn print_lines(lines: &[ClusterLine], last: &Mutex<String>) {
    let text: String = lines
        .iter()
        .map(|l| {
            format!(
                "  wave {:<3} {:<20} {:<16} {:<12} {}\n",
                l.wave,
                l.cluster,
                l.state,
                format!("{:?}", l.health),
                l.elapsed
                    .map(|d| format!("{}s", d.as_secs()))
                    .unwrap_or_default()
            )
        })
        .collect();
    // Print only when something other than elapsed time changed.
    let key: String = lines
        .iter()
        .map(|l| format!("{}{}{:?};", l.cluster, l.state, l.health))
        .collect();
    if let Ok(mut last) = last.lock()
        && *last != key
    {
        *last = key;
        print!("{text}");
        println!();
    }
}

/// What is rolled out: the environment, its rendering and its health checks.
type RolloutTarget<'a> = (
    &'a Environment,
    &'a Rendered,
    std::sync::Arc<tidegate_health::HealthChecks>,
);

async fn run_rollout(
    global: &Global,
    factory: &CloudFactory,
    (environment, rendered, health_checks): RolloutTarget<'_>,
    revision: &str,
    flags: (&AuditDb, bool, bool),
    options: SyncOptions,
) -> anyhow::Result<ExitCode> {
    let (audit_db, break_lock, resume) = flags;
    let path = audit_db.path();
    let store = SqliteStore::open(&path)
        .with_context(|| format!("opening the audit trail {}", path.display()))?;
    let env = &environment.metadata.name;
    let revisions = GitRevisions {
        repo: global.repo.clone(),
        env: env.clone(),
        factory,
    };
    let approvals = AuditApprovals {
        path: path.clone(),
        env: env.clone(),
        revision: revision.to_string(),
    };
    let identity = actor().identity;
    let driver = Driver {
        factory,
        environment,
        rendered,
        revision,
        revisions: &revisions,
        approvals: &approvals,
        audit: Some(Audit {
            sink: std::sync::Arc::new(store),
            actor: actor(),
        }),
        check: None,
        journal: Some(Journal::new(&Journal::default_dir(), env)),
        options: DriverOptions {
            force_conflicts: options.force_conflicts,
            prune: options.prune || environment.spec.sync.prune,
            break_lock,
            resume,
            identity,
            poll: std::time::Duration::from_millis(500),
            health_checks,
            ..DriverOptions::default()
        },
    };
    println!(
        "rolling out {} to {env} ({} clusters)",
        &revision[..revision.len().min(12)],
        environment.spec.clusters.len()
    );
    let last = Mutex::new(String::new());
    let report = driver.run(&|lines| print_lines(lines, &last)).await?;
    match &report.outcome {
        Outcome::Succeeded => {
            println!(
                "rollout succeeded: every cluster is Healthy at {}",
                &revision[..revision.len().min(12)]
            );
            Ok(ExitCode::SUCCESS)
        }
        Outcome::RolledBack {
            failure,
            not_restored,
        } => {
            println!(
                "rollout FAILED ({failure}); touched clusters were rolled back and {} is quarantined",
                &revision[..revision.len().min(12)]
            );
            for n in not_restored {
                println!("  not restored: {} ({})", n.cluster, n.reason);
            }
            Ok(ExitCode::from(1))
        }
        Outcome::Halted { failure } => {
            println!("rollout HALTED ({failure}); clusters are left as they are");
            Ok(ExitCode::from(1))
        }
    }
}

/// `tidegate sync --env E` without `--cluster`: the whole rollout.
pub async fn fleet_sync(
    global: &Global,
    args: &SyncArgs,
    style: &Style,
) -> anyhow::Result<ExitCode> {
    if args.dry_run {
        bail!(
            "a fleet rollout has no dry run: use `tidegate plan --env {}`",
            args.selection.env
        );
    }
    if args.selection.app.is_some() {
        bail!(
            "a fleet rollout moves the whole environment to one revision; --app works with --cluster (tidegate sync --env {} --cluster C --app A)",
            args.selection.env
        );
    }
    let Some(loaded) = fleet::load(global, &args.selection, style).await? else {
        return Ok(ExitCode::from(1));
    };
    let revision = loaded.desired.commit.sha.clone();
    let path = args.audit.path();
    if !args.allow_quarantined
        && path.exists()
        && let Some(q) = quarantined(
            &SqliteStore::open_existing(&path)?,
            &args.selection.env,
            &revision,
        )?
    {
        bail!(
            "revision {} is quarantined for {} since entry #{} ({}); fix it in a newer commit, or run `tidegate unquarantine --env {} --revision {}` (or pass --allow-quarantined)",
            &revision[..12],
            args.selection.env,
            q.seq,
            q.entry.message.unwrap_or_default(),
            args.selection.env,
            revision
        );
    }
    let options = SyncOptions {
        prune: args.prune,
        force_conflicts: args.force_conflicts,
        ..SyncOptions::default()
    };
    run_rollout(
        global,
        loaded.factory(),
        (
            &loaded.desired.environment,
            &loaded.rendered,
            loaded.health_checks.clone(),
        ),
        &revision,
        (&args.audit, args.break_lock, args.resume),
        options,
    )
    .await
}

/// `tidegate plan`.
pub async fn plan(global: &Global, args: &PlanArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let selection = Selection {
        env: args.env.clone(),
        cluster: None,
        app: None,
        kubeconfig: args.kubeconfig.clone(),
    };
    let Some(loaded) = fleet::load(global, &selection, style).await? else {
        return Ok(ExitCode::from(1));
    };
    let waves = match tidegate_rollout::plan_waves(&loaded.desired.environment) {
        Ok(w) => w,
        Err(problems) => {
            style.print_diagnostics(&problems);
            return Ok(ExitCode::from(1));
        }
    };
    let mut changes = serde_json::Map::new();
    if !args.offline {
        for name in &loaded.clusters {
            let engine = loaded.connect(name).await?;
            let plan = engine
                .plan(&loaded.target(name)?, &SyncOptions::default())
                .await?;
            changes.insert(
                name.clone(),
                serde_json::json!({
                    "toChange": plan.objects.iter().filter(|o| o.needs_apply()).count(),
                    "toPrune": plan.prune.len(),
                    "total": plan.objects.len(),
                    "problems": plan.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                }),
            );
        }
    }
    let health_checks = custom_health_checks(&loaded);
    match args.output {
        TextOrJson::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"revision": loaded.desired.commit.sha, "plan": waves, "clusters": changes, "healthChecks": health_checks})
            )?
        ),
        TextOrJson::Text => {
            println!(
                "rollout of {} to {}: maxSurge {} ({} clusters in flight at most), maxUnavailable {}, progressDeadline {}, bakeTime {}, on failure: {:?}",
                &loaded.desired.commit.sha[..12],
                args.env,
                loaded.desired.environment.spec.rollout.max_surge,
                waves.max_in_flight,
                waves.max_unavailable,
                waves.progress_deadline,
                waves.bake_time,
                waves.failure_policy
            );
            for wave in &waves.waves {
                println!(
                    "wave {}{}{}",
                    wave.number,
                    if wave.auto { " (automatic)" } else { "" },
                    if wave.approval == tidegate_core::environment::Approval::Required {
                        " — needs `tidegate approve`"
                    } else {
                        ""
                    }
                );
                for c in &wave.clusters {
                    match changes.get(c) {
                        Some(v) => println!(
                            "  {c:<20} {} of {} objects to change, {} to prune{}",
                            v["toChange"],
                            v["total"],
                            v["toPrune"],
                            if v["problems"].as_array().is_some_and(|p| !p.is_empty()) {
                                format!(", PROBLEMS: {}", v["problems"])
                            } else {
                                String::new()
                            }
                        ),
                        None => println!("  {c}"),
                    }
                }
            }
            for (kind, check) in &health_checks {
                println!("health of {kind}: {check}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The kinds of the rendered objects whose health a custom check decides,
/// with the check (`Lua health/...`, `CEL environments/prod.yaml:12`).
fn custom_health_checks(loaded: &fleet::Loaded) -> std::collections::BTreeMap<String, String> {
    loaded
        .rendered
        .clusters
        .iter()
        .flat_map(|c| &c.apps)
        .flat_map(|a| &a.objects)
        .filter_map(|o| {
            let (group, kind) = (&o.key.group, &o.key.kind);
            match loaded.health_checks.source_for(group, kind) {
                tidegate_health::CheckSource::BuiltIn => None,
                check => Some((format!("{group}/{kind}"), check.to_string())),
            }
        })
        .collect()
}

/// `tidegate approve`.
pub fn approve(global: &Global, args: &ApproveArgs) -> anyhow::Result<ExitCode> {
    let revision = match &args.revision {
        Some(r) => Workspace::open_at(global.repo.as_deref(), Some(r))?,
        None => Workspace::open(global)?,
    };
    let sha = revision.commit_sha().to_string();
    let path = args.audit.path();
    let store = SqliteStore::open(&path)?;
    let mut entry = Entry::new(actor(), Action::Approve)
        .env(&args.env)
        .revisions(None, Some(Revision::sha(&sha)))
        .message(
            args.reason
                .clone()
                .unwrap_or_else(|| format!("wave {} approved", args.wave)),
        );
    entry.details.insert("wave".into(), args.wave.to_string());
    let seq = store.append(entry)?;
    println!(
        "approved wave {} of {} for {} (audit entry #{seq})",
        args.wave,
        args.env,
        &sha[..12]
    );
    Ok(ExitCode::SUCCESS)
}

/// `tidegate unquarantine`.
pub fn unquarantine(args: &UnquarantineArgs) -> anyhow::Result<ExitCode> {
    let path = args.audit.path();
    let store = SqliteStore::open_existing(&path)?;
    if quarantined(&store, &args.env, &args.revision)?.is_none() {
        bail!(
            "revision {} is not quarantined for {}",
            args.revision,
            args.env
        );
    }
    let entry = Entry::new(actor(), Action::Other("unquarantine".into()))
        .env(&args.env)
        .revisions(None, Some(Revision::sha(&args.revision)))
        .message(
            args.reason
                .clone()
                .unwrap_or_else(|| "lifted by hand".into()),
        );
    let seq = store.append(entry)?;
    println!(
        "{} may be rolled out to {} again (audit entry #{seq})",
        args.revision, args.env
    );
    Ok(ExitCode::SUCCESS)
}

/// `tidegate history`.
pub fn history(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let store = SqliteStore::open_existing(&args.audit.path())?;
    let records = store.records(&Filter {
        environment: Some(args.env.clone()),
        actions: vec!["rollout-start".into(), "rollout-end".into()],
        ..Filter::default()
    })?;
    let ends: Vec<&Record> = records
        .iter()
        .filter(|r| r.entry.action == Action::RolloutEnd)
        .collect();
    let rows: Vec<serde_json::Value> = records
        .iter()
        .filter(|r| r.entry.action == Action::RolloutStart)
        .map(|start| {
            let end = ends.iter().find(|e| e.operation == Some(start.seq));
            serde_json::json!({
                "operation": start.seq,
                "started": start.time_ms,
                "revision": start.entry.to.as_ref().map(|r| r.sha.clone()),
                "actor": start.entry.actor.identity,
                "outcome": end.and_then(|e| e.entry.outcome).map(|o| o.as_str()).unwrap_or("interrupted"),
                "durationMs": end.and_then(|e| e.entry.duration_ms),
                "message": end.and_then(|e| e.entry.message.clone()),
            })
        })
        .collect();
    match args.output {
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        TextOrJson::Text => {
            println!(
                "{:<6} {:<14} {:<12} {:<22} MESSAGE",
                "OP", "REVISION", "OUTCOME", "ACTOR"
            );
            for r in &rows {
                println!(
                    "{:<6} {:<14} {:<12} {:<22} {}",
                    r["operation"].to_string(),
                    r["revision"]
                        .as_str()
                        .map(|s| &s[..s.len().min(12)])
                        .unwrap_or("-"),
                    r["outcome"].as_str().unwrap_or("-"),
                    r["actor"].as_str().unwrap_or("-"),
                    r["message"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tidegate rollback`: a rollout of an older revision, in waves (or one cluster).
pub async fn rollback(
    global: &Global,
    args: &RollbackArgs,
    _style: &Style,
) -> anyhow::Result<ExitCode> {
    let current = Workspace::open(global)?;
    let factory = fleet::client_factory(global, &args.rollout.kubeconfig);
    let env_now = current
        .load_discovered(&args.env, &factory)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let to = match &args.to {
        Some(to) => to.clone(),
        None => {
            // The last healthy revision recorded in the first reachable cluster.
            let mut found = None;
            for cluster in &env_now.environment.spec.clusters {
                if let Ok(engine) = tidegate_sync::Engine::connect(&factory, cluster).await
                    && let Ok(inv) = engine.inventories(&args.env).await
                    && let Some(rev) = inv.first().and_then(|i| i.healthy_revision.clone())
                {
                    found = Some(rev);
                    break;
                }
            }
            found.context("no cluster records a last healthy revision: pass --to REV")?
        }
    };
    let (environment, rendered) = GitRevisions {
        repo: global.repo.clone(),
        env: args.env.clone(),
        factory: &factory,
    }
    .render(&to)
    .await
    .map_err(|e| anyhow::anyhow!("rendering {to}: {e}"))?;
    let at_target = Workspace::open_at(global.repo.as_deref(), Some(&to))?;
    let sha = at_target.commit_sha().to_string();
    let health_checks = match at_target.load(&args.env) {
        Ok(desired) => super::fleet::health_checks(&desired)
            .map_err(|problems| anyhow::anyhow!("health checks at {to}: {problems}"))?,
        Err(e) => anyhow::bail!("loading {} at {to}: {e}", args.env),
    };
    if let Some(cluster) = &args.cluster {
        let Some(definition) = environment.cluster(cluster) else {
            bail!("environment {} has no cluster {cluster} at {to}", args.env);
        };
        let engine = tidegate_sync::Engine::connect(&factory, definition)
            .await?
            .with_health_checks(health_checks);
        let path = args.rollout.audit.path();
        let engine = engine.with_audit(Audit {
            sink: std::sync::Arc::new(SqliteStore::open(&path)?),
            actor: actor(),
        });
        let rendered_cluster = rendered
            .clusters
            .iter()
            .find(|c| c.cluster == *cluster)
            .context("not rendered")?;
        let target = tidegate_sync::Target {
            environment: &environment,
            cluster: definition,
            rendered: rendered_cluster,
            revision: &sha,
        };
        let report = engine
            .sync(
                &target,
                &SyncOptions {
                    prune: true,
                    ..SyncOptions::default()
                },
                &|_| {},
            )
            .await?;
        println!(
            "{cluster} rolled back to {}: {} objects changed",
            &sha[..12],
            report
                .results
                .iter()
                .filter(|r| r.action != tidegate_sync::Action::Unchanged)
                .count()
        );
        return Ok(ExitCode::SUCCESS);
    }
    run_rollout(
        global,
        &factory,
        (&environment, &rendered, health_checks),
        &sha,
        (&args.rollout.audit, args.rollout.break_lock, false),
        SyncOptions {
            prune: true,
            ..SyncOptions::default()
        },
    )
    .await
}

/// `tidegate switch`.
pub async fn switch(global: &Global, args: &SwitchArgs) -> anyhow::Result<ExitCode> {
    use tidegate_fleet::switch::{SwitchOutcome, SwitchRequest};
    let ws = Workspace::open(global)?;
    let Some(repo_dir) = ws.workdir().map(std::path::Path::to_path_buf) else {
        bail!(
            "a switch commits to the environment file: run it in a clone with a work tree (not --repo URL)"
        );
    };
    let factory = fleet::client_factory(global, &args.rollout.kubeconfig);
    let desired = ws
        .load_discovered(&args.env, &factory)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = ws
        .read_file(&desired.env_file)?
        .context("the environment file vanished")?;
    let text = String::from_utf8(text).context("the environment file is not UTF-8")?;
    let path = args.rollout.audit.path();
    let store = SqliteStore::open(&path)
        .with_context(|| format!("opening the audit trail {}", path.display()))?;
    let actor = actor();
    let name = actor
        .identity
        .split('@')
        .next()
        .unwrap_or("tidegate")
        .to_string();
    let email = if actor.identity.contains('@') {
        actor.identity.clone()
    } else {
        format!("{name}@localhost")
    };
    let request = SwitchRequest {
        repo_dir: &repo_dir,
        environment: &desired.environment,
        env_file: &desired.env_file,
        env_text: &text,
        app: &args.app,
        to: &args.to,
        reason: args.reason.as_deref(),
        push: !args.no_push,
        author: (&name, &email),
    };
    let revisions = GitRevisions {
        repo: global.repo.clone(),
        env: args.env.clone(),
        factory: &factory,
    };
    let approvals = AuditApprovals {
        path: path.clone(),
        env: args.env.clone(),
        revision: String::new(),
    };
    let options = DriverOptions {
        break_lock: args.rollout.break_lock,
        identity: actor.identity.clone(),
        poll: std::time::Duration::from_millis(500),
        ..DriverOptions::default()
    };
    let last = Mutex::new(String::new());
    let outcome = tidegate_fleet::switch::switch(
        &request,
        &factory,
        &revisions,
        &approvals,
        Some(Audit {
            sink: std::sync::Arc::new(store),
            actor,
        }),
        options,
        None,
        &|lines| print_lines(lines, &last),
    )
    .await?;
    match outcome {
        SwitchOutcome::Switched { commit, .. } => {
            println!(
                "{} now serves {} in {} (commit {})",
                args.app,
                args.to,
                args.env,
                &commit[..12]
            );
            Ok(ExitCode::SUCCESS)
        }
        SwitchOutcome::Reverted { revert, .. } => {
            println!(
                "switch FAILED its post-checks: switched clusters were flipped back and the commit reverted ({})",
                &revert[..12]
            );
            Ok(ExitCode::from(1))
        }
        SwitchOutcome::Refused { problems } => {
            for p in &problems {
                eprintln!("pre-check failed: {p}");
            }
            println!("switch refused: nothing was changed or committed");
            Ok(ExitCode::from(1))
        }
    }
}
