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
use tidegate_cluster::FactsCache;
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

/// Every revision of `env` quarantined now (quarantines not lifted by an
/// unquarantine), from the audit trail at `path` (none when it does not exist).
pub(crate) fn quarantine_list(
    path: &std::path::Path,
    env: &str,
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let mut list = std::collections::BTreeSet::new();
    if !path.exists() {
        return Ok(list);
    }
    let store = SqliteStore::open_existing(path)?;
    for r in store.records(&Filter {
        environment: Some(env.to_string()),
        actions: vec!["quarantine".into(), "unquarantine".into()],
        ..Filter::default()
    })? {
        if let Some(to) = &r.entry.to {
            if r.entry.action == Action::Quarantine {
                list.insert(to.sha.clone());
            } else {
                list.remove(&to.sha);
            }
        }
    }
    Ok(list)
}

/// Decides whether `revision` may be applied to `env` (one `cluster`, or the
/// fleet): a quarantined revision is refused (the message says why and what
/// to do) unless `--allow-quarantined --reason` was given, which is recorded
/// in the audit trail. Returns the quarantine list, or `None` when refused
/// (the message was printed).
pub(crate) fn admit_revision(
    audit: &AuditDb,
    env: &str,
    cluster: Option<&str>,
    revision: &str,
    allow: Option<&str>,
    style: &Style,
) -> anyhow::Result<Option<std::collections::BTreeSet<String>>> {
    use tidegate_rollout::quarantine::{Admission, Refusal, admit};
    let path = audit.path();
    let list = quarantine_list(&path, env)?;
    let short = &revision[..revision.len().min(12)];
    match admit(revision, &list, allow) {
        Ok(Admission::Clear) => Ok(Some(list)),
        Ok(Admission::Allowed { reason }) => {
            let store = SqliteStore::open(&path)?;
            let mut entry = Entry::new(actor(), Action::Other("allow-quarantined".into()))
                .env(env)
                .revisions(None, Some(Revision::sha(revision)))
                .message(reason);
            if let Some(c) = cluster {
                entry = entry.cluster(c);
            }
            let seq = store.append(entry)?;
            eprintln!(
                "warning: {short} is quarantined for {env}; applying it anyway as asked (audit entry #{seq})"
            );
            Ok(Some(list))
        }
        Err(Refusal::NoReason) => {
            eprintln!(
                "{} --allow-quarantined needs --reason \"...\" (it is recorded in the audit trail)",
                style.error("refused:")
            );
            Ok(None)
        }
        Err(Refusal::Quarantined { .. }) => {
            let q = quarantined(&SqliteStore::open_existing(&path)?, env, revision)?;
            eprintln!(
                "{} revision {short} is quarantined for {env}{}; nothing was changed. Fix it in a newer commit, run `tidegate unquarantine --env {env} --revision {revision}`, or pass --allow-quarantined --reason \"...\" (audited)",
                style.error("refused:"),
                q.map(|q| format!(
                    " since audit entry #{} ({})",
                    q.seq,
                    q.entry.message.unwrap_or_default()
                ))
                .unwrap_or_default(),
            );
            Ok(None)
        }
    }
}

/// Renders the environment at another revision, from the same repository,
/// discovering its clusters through `factory`.
pub(crate) struct GitRevisions<'f> {
    pub(crate) repo: Option<String>,
    pub(crate) env: String,
    pub(crate) factory: &'f CloudFactory,
    /// The clusters' facts for Helm apps, asked once for every revision.
    pub(crate) facts: &'f FactsCache,
}

impl Revisions for GitRevisions<'_> {
    fn render<'a>(
        &'a self,
        revision: &'a str,
    ) -> BoxFuture<'a, Result<(Environment, Rendered), String>> {
        Box::pin(async move {
            let loading = Workspace::open_at(self.repo.as_deref(), Some(revision))
                .map_err(|e| format!("{e:#}"))?
                .load_discovered(&self.env, self.factory, Some(self.facts));
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
pub(crate) struct AuditApprovals {
    pub(crate) path: PathBuf,
    pub(crate) env: String,
    pub(crate) revision: String,
}

impl Approvals for AuditApprovals {
    fn approved(&self, wave: u32) -> bool {
        let Ok(store) = SqliteStore::open_read_only(&self.path) else {
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

/// How a rollout is run, from the command line.
struct RunFlags<'a> {
    audit_db: &'a AuditDb,
    break_lock: bool,
    resume: bool,
    options: SyncOptions,
    /// Revisions quarantined now (never a rollback target).
    quarantined: std::collections::BTreeSet<String>,
    /// The clusters' facts for Helm apps, when other revisions are rendered.
    facts: &'a FactsCache,
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
    flags: RunFlags<'_>,
    style: &Style,
) -> anyhow::Result<ExitCode> {
    let RunFlags {
        audit_db,
        break_lock,
        resume,
        options,
        quarantined,
        facts,
    } = flags;
    let path = audit_db.path();
    let store = SqliteStore::open(&path)
        .with_context(|| format!("opening the audit trail {}", path.display()))?;
    let env = &environment.metadata.name;
    let revisions = GitRevisions {
        repo: global.repo.clone(),
        env: env.clone(),
        factory,
        facts,
    };
    let approvals = AuditApprovals {
        path: path.clone(),
        env: env.clone(),
        revision: revision.to_string(),
    };
    let identity = actor().identity;
    let journal = Journal::new(&Journal::default_dir(), env);
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
        journal: Some(std::sync::Arc::new(journal.clone())),
        options: DriverOptions {
            force_conflicts: options.force_conflicts,
            prune: options.prune || environment.spec.sync.prune,
            break_lock,
            resume,
            identity,
            quarantined,
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
    let short = &revision[..revision.len().min(12)];
    let report = match driver.run(&|lines| print_lines(lines, &last)).await {
        Ok(report) => report,
        Err(tidegate_fleet::RolloutError::Refused(refusal)) => {
            eprintln!("{} {refusal}", style.error("rollout refused:"));
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            let left = journal.load().ok().flatten().is_some();
            if left {
                eprintln!(
                    "the rollout stopped part-way; when the cause is fixed, continue it with `tidegate sync --env {env} --resume`"
                );
            }
            return Err(e.into());
        }
    };
    if let Some(op) = report.resumed_from {
        println!("resumed the interrupted rollout #{op}");
    }
    let applied = report.timeline.iter().any(|(_, w, _)| w == "applied");
    match &report.outcome {
        Outcome::Succeeded if !applied => {
            println!(
                "nothing to do: every cluster runs {short}, matches Git and is Healthy (no bake needed)"
            );
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Succeeded => {
            if !report.drift_corrected.is_empty() {
                println!(
                    "drift corrected in {} (they already ran {short})",
                    report.drift_corrected.join(", ")
                );
            }
            println!("rollout succeeded: every cluster is Healthy at {short}");
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
                println!("  NOT restored: {} ({})", n.cluster, n.reason);
            }
            if not_restored.is_empty() {
                println!("  every rolled-back cluster is Healthy again");
            }
            println!(
                "  next: fix it in a newer commit and run `tidegate sync --env {env}` again (if the cause was outside the revision, e.g. a cluster that could not be reached, `tidegate unquarantine --env {env} --revision {revision}` first)"
            );
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
    let Some(loaded) = fleet::load(
        global,
        &args.selection,
        fleet::Capabilities::FromClusters,
        style,
    )
    .await?
    else {
        return Ok(ExitCode::from(1));
    };
    let revision = loaded.desired.commit.sha.clone();
    // A resumed rollout continues its journal (whose machine knows what it
    // quarantined); a new one must be admitted.
    let admitted = if args.resume {
        Some(quarantine_list(&args.audit.path(), &args.selection.env)?)
    } else {
        admit_revision(
            &args.audit,
            &args.selection.env,
            None,
            &revision,
            args.allow_quarantined
                .then(|| args.reason.as_deref().unwrap_or("")),
            style,
        )?
    };
    let Some(quarantined) = admitted else {
        return Ok(ExitCode::from(1));
    };
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
        RunFlags {
            audit_db: &args.audit,
            break_lock: args.break_lock,
            resume: args.resume,
            options,
            quarantined,
            facts: loaded.facts(),
        },
        style,
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
    let Some(loaded) =
        fleet::load(global, &selection, fleet::Capabilities::FromClusters, style).await?
    else {
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
    let mut problems = 0;
    let mut unreachable = 0;
    if !args.offline {
        for name in &loaded.clusters {
            let engine = loaded.connect(name).await?;
            let plan = match engine
                .plan(&loaded.target(name)?, &SyncOptions::default())
                .await
            {
                Ok(plan) => plan,
                Err(e) => {
                    unreachable += 1;
                    changes.insert(
                        name.clone(),
                        serde_json::json!({"unreachable": e.to_string(), "problems": [], "toChange": 0, "toPrune": 0, "total": 0}),
                    );
                    continue;
                }
            };
            problems += plan.problems.len();
            let at = plan.previous.first().map(|i| i.revision.clone());
            let at_target = at.as_deref() == Some(loaded.desired.commit.sha.as_str())
                && plan.previous.iter().all(|i| !i.incomplete());
            changes.insert(
                name.clone(),
                serde_json::json!({
                    "revision": at,
                    "drift": at_target && plan.changes() > 0,
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
                        Some(v) if v.get("unreachable").is_some() => println!(
                            "  {c:<20} UNREACHABLE: {}",
                            v["unreachable"].as_str().unwrap_or_default()
                        ),
                        Some(v) => {
                            println!(
                                "  {c:<20} {} of {} objects to change, {} to prune{}",
                                v["toChange"],
                                v["total"],
                                v["toPrune"],
                                if v["drift"] == true {
                                    " (DRIFT: it runs this revision, live objects differ; a rollout corrects it)"
                                } else {
                                    ""
                                }
                            );
                            for p in v["problems"].as_array().into_iter().flatten() {
                                println!(
                                    "    {} {}",
                                    style.error("problem:"),
                                    p.as_str().unwrap_or_default().replace('\n', "\n    ")
                                );
                            }
                        }
                        None => println!("  {c}"),
                    }
                }
            }
            for (kind, check) in &health_checks {
                println!("health of {kind}: {check}");
            }
        }
    }
    // Unreachable clusters follow maxUnavailable, as in the rollout.
    if unreachable > waves.max_unavailable as usize {
        problems += unreachable;
        eprintln!(
            "{} {unreachable} cluster(s) cannot be reached, more than maxUnavailable {}",
            style.error("plan has problems:"),
            waves.max_unavailable
        );
    }
    if problems > 0 {
        eprintln!(
            "{} {problems} problem(s): `tidegate sync --env {}` would refuse this revision and write nothing",
            style.error("plan has problems:"),
            args.env
        );
        return Ok(ExitCode::from(1));
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
pub fn approve(global: &Global, args: &ApproveArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let revision = match &args.revision {
        Some(r) => Workspace::open_at(global.repo.as_deref(), Some(r))?,
        None => Workspace::open(global)?,
    };
    let sha = revision.commit_sha().to_string();
    // Only a wave that waits for approval, of an environment that exists.
    let environment = match revision.environment(&args.env) {
        Ok(environment) => environment,
        Err(LoadError::Invalid(problems)) => {
            style.print_diagnostics(&problems);
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let waiting: Vec<u32> = environment
        .spec
        .rollout
        .waves
        .iter()
        .filter(|w| w.approval == tidegate_core::environment::Approval::Required)
        .map(|w| w.wave)
        .collect();
    if !waiting.contains(&args.wave) {
        let list: Vec<String> = waiting.iter().map(u32::to_string).collect();
        bail!(
            "wave {} of {} does not wait for approval at {}: the waves that do are {} (spec.rollout.waves with `approval: required`)",
            args.wave,
            args.env,
            &sha[..12],
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        );
    }
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
    let store = SqliteStore::open_read_only(&args.audit.path())?;
    let records = store.records(&Filter {
        environment: Some(args.env.clone()),
        actions: vec!["rollout-start".into(), "rollout-end".into()],
        ..Filter::default()
    })?;
    let ends: Vec<&Record> = records
        .iter()
        .filter(|r| r.entry.action == Action::RolloutEnd)
        .collect();
    let starts: Vec<&Record> = records
        .iter()
        .filter(|r| r.entry.action == Action::RolloutStart)
        .collect();
    let rows: Vec<serde_json::Value> = starts
        .iter()
        .map(|start| {
            let end = ends.iter().find(|e| e.operation == Some(start.seq));
            let resumes: Option<u64> = start
                .entry
                .details
                .get("resumes")
                .and_then(|s| s.parse().ok());
            let resumed_by = starts
                .iter()
                .find(|s| s.entry.details.get("resumes") == Some(&start.seq.to_string()))
                .map(|s| s.seq);
            // Closed by the run that resumed it, or by a stop on request.
            let interrupted = end.is_none_or(|e| {
                e.entry
                    .details
                    .get(tidegate_fleet::interrupt::INTERRUPTED_DETAIL)
                    == Some(&"true".to_string())
            });
            let outcome = match end.and_then(|e| e.entry.outcome) {
                Some(o) if !interrupted => o.as_str(),
                _ => "interrupted",
            };
            let message = match (resumed_by, end.and_then(|e| e.entry.message.clone())) {
                (Some(by), _) if interrupted => Some(format!("interrupted → resumed by #{by}")),
                (_, m) => match resumes {
                    Some(from) => Some(format!("resumes #{from}: {}", m.unwrap_or_default())),
                    None => m,
                },
            };
            serde_json::json!({
                "operation": start.seq,
                "started": start.time_ms,
                "revision": start.entry.to.as_ref().map(|r| r.sha.clone()),
                "actor": start.entry.actor.identity,
                "outcome": outcome,
                "resumes": resumes,
                "resumedBy": resumed_by,
                "durationMs": end.and_then(|e| e.entry.duration_ms),
                "message": message,
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
                    tidegate_report::escape_control(r["actor"].as_str().unwrap_or("-")),
                    tidegate_report::escape_control(r["message"].as_str().unwrap_or(""))
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
    style: &Style,
) -> anyhow::Result<ExitCode> {
    let current = Workspace::open(global)?;
    let factory = fleet::client_factory(global, &args.rollout.kubeconfig);
    let facts = FactsCache::default().only_cluster(args.cluster.clone());
    // Only the clusters are needed from the current revision: rendered offline.
    let env_now = current
        .load_discovered(&args.env, &factory, None)
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
    let quarantine = quarantine_list(&args.rollout.audit.path(), &args.env)?;
    let resolved = Workspace::open_at(global.repo.as_deref(), Some(&to))?
        .commit_sha()
        .to_string();
    if quarantine.contains(&resolved) {
        eprintln!(
            "{} {} is quarantined for {}: a failed rollout rejected it, so it is not a rollback target. Choose a revision that completed its rollout (`tidegate history --env {}` lists them) and pass --to REV, or lift the quarantine first with `tidegate unquarantine --env {} --revision {resolved}`",
            style.error("rollback refused:"),
            &resolved[..resolved.len().min(12)],
            args.env,
            args.env,
            args.env
        );
        return Ok(ExitCode::from(1));
    }
    let (environment, rendered) = GitRevisions {
        repo: global.repo.clone(),
        env: args.env.clone(),
        factory: &factory,
        facts: &facts,
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
        let holder = tidegate_cluster::Holder::this_process(&actor().identity);
        let policy = tidegate_fleet::lock::LockPolicy {
            break_lock: args.rollout.break_lock,
            take_over_dead: false,
            ttl: std::time::Duration::from_secs(60),
        };
        if let Err(e) = tidegate_fleet::lock::take(&engine, &args.env, &holder, policy).await {
            eprintln!("{} {e}", style.error("rollback refused:"));
            return Ok(ExitCode::from(1));
        }
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
            .await;
        tidegate_fleet::lock::release(&engine, &args.env, &holder).await;
        let report = report?;
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
        RunFlags {
            audit_db: &args.rollout.audit,
            break_lock: args.rollout.break_lock,
            resume: false,
            options: SyncOptions {
                prune: true,
                ..SyncOptions::default()
            },
            quarantined: quarantine,
            facts: &facts,
        },
        style,
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
    let facts = FactsCache::default();
    let desired = ws
        .load_discovered(&args.env, &factory, Some(&facts))
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
        facts: &facts,
    };
    let approvals = AuditApprovals {
        path: path.clone(),
        env: args.env.clone(),
        revision: String::new(),
    };
    let health_checks =
        super::fleet::health_checks(&desired).map_err(|d| anyhow::anyhow!("{d}"))?;
    let options = DriverOptions {
        break_lock: args.rollout.break_lock,
        identity: actor.identity.clone(),
        // A flip back never goes to a quarantined revision either.
        quarantined: quarantine_list(&path, &args.env)?,
        poll: std::time::Duration::from_millis(500),
        // The environment's health settings judge the switch's waves too.
        health_checks,
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
