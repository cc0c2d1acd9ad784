//! Fleet rollouts: `plan`, `sync --env` (without --cluster), `approve`,
//! `rollback`, `unquarantine`, `history`.

use super::fleet;
use crate::{
    args::{
        ApproveArgs, AuditDb, Global, HistoryArgs, PlanArgs, RollbackArgs, Selection, SwitchArgs,
        SyncArgs, TextOrJson, UnquarantineArgs,
    },
    output::Style,
};
use anyhow::{Context, bail};
use std::{process::ExitCode, sync::Mutex};
use tidegate_app::{Admission, AppError, AuditApprovals, GitRevisions, RolloutRun, Workspace};
use tidegate_audit::{
    Action, Actor, AuditSink, AuditStore, Entry, Filter, Record, Revision, Trigger,
};
use tidegate_cloud::CloudFactory;
use tidegate_cluster::{FactsCache, GateChange, GateRecord};
use tidegate_core::{Environment, printable::printable};
use tidegate_fleet::{ClusterLine, DriverOptions, Outcome, RevisionError};
use tidegate_source::LoadError;
use tidegate_sync::{Audit, SyncOptions};

fn actor() -> Actor {
    crate::sink::actor(Trigger::Cli)
}

/// Decides whether `revision` may be applied to `environment` (one
/// `cluster`, or the fleet): a revision quarantined in the audit trail or in
/// any of the environment's clusters is refused (the message says why and
/// what to do) unless `--allow-quarantined --reason` was given, which is
/// recorded in the audit trail. Returns the quarantine list, or `None` when
/// refused (the message was printed).
pub(crate) async fn admit_revision(
    factory: &CloudFactory,
    environment: &Environment,
    audit: &AuditDb,
    cluster: Option<&str>,
    revision: &str,
    allow: Option<&str>,
    style: &Style,
) -> anyhow::Result<Option<std::collections::BTreeSet<String>>> {
    let env = &environment.metadata.name;
    let short = &revision[..revision.len().min(12)];
    let (admission, unreadable) = tidegate_app::admit_revision(
        factory,
        environment,
        &audit.path(),
        cluster,
        revision,
        allow,
        &actor(),
    )
    .await?;
    warn_unreadable(&unreadable);
    match admission {
        Admission::Clear { quarantined } => Ok(Some(quarantined)),
        Admission::Allowed { quarantined, seq } => {
            errln!(
                "warning: {short} is quarantined for {env}; applying it anyway as asked (audit entry #{seq})"
            );
            Ok(Some(quarantined))
        }
        Admission::NeedsReason => {
            errln!(
                "{} --allow-quarantined needs --reason \"...\" (it is recorded in the audit trail)",
                style.error("refused:")
            );
            Ok(None)
        }
        Admission::Refused { since, in_clusters } => {
            let since = match (since, in_clusters) {
                (Some(q), _) => format!(
                    " since audit entry #{} ({})",
                    q.seq,
                    q.entry.message.unwrap_or_default()
                ),
                (None, Some(g)) => format!(
                    " since {} by {} ({}; recorded in the clusters)",
                    g.time,
                    printable(&g.actor),
                    printable(&g.reason)
                ),
                (None, None) => String::new(),
            };
            errln!(
                "{} revision {short} is quarantined for {env}{since}; nothing was changed. Fix it in a newer commit, run `tidegate unquarantine --env {env} --revision {revision}`, or pass --allow-quarantined --reason \"...\" (audited)",
                style.error("refused:"),
            );
            Ok(None)
        }
    }
}

/// Warns about clusters whose quarantines and approvals could not be read.
fn warn_unreadable(unreadable: &[(String, String)]) {
    for (cluster, why) in unreadable {
        errln!(
            "warning: the quarantines and approvals recorded in cluster {cluster} could not be read: {why}"
        );
    }
}

/// Warns about clusters a gate could not be written to.
fn warn_unwritten(what: &str, written: &tidegate_app::GatesWritten) {
    for (cluster, why) in &written.failed {
        errln!("warning: {what} could not be recorded in cluster {cluster}: {why}");
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
        out!("{text}");
        outln!();
    }
}

/// Runs a fleet rollout and prints its progress and outcome.
async fn run_rollout(run: RolloutRun<'_>, style: &Style) -> anyhow::Result<ExitCode> {
    let env = run.environment.metadata.name.clone();
    let revision = run.revision.to_string();
    let short = &revision[..revision.len().min(12)];
    outln!(
        "rolling out {short} to {env} ({} clusters)",
        run.environment.spec.clusters.len()
    );
    let last = Mutex::new(String::new());
    let done = match run.run(&|lines| print_lines(lines, &last)).await {
        Ok(done) => done,
        Err(AppError::Rollout(tidegate_fleet::RolloutError::Refused(refusal))) => {
            errln!("{} {refusal}", style.error("rollout refused:"));
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            if matches!(e, AppError::Rollout(_))
                && tidegate_app::journal(&env).load().ok().flatten().is_some()
            {
                errln!(
                    "the rollout stopped part-way; when the cause is fixed, continue it with `tidegate sync --env {env} --resume`"
                );
            }
            return Err(e.into());
        }
    };
    for (revision, written) in &done.quarantined {
        warn_unwritten(
            &format!("the quarantine of {}", &revision[..revision.len().min(12)]),
            written,
        );
    }
    let report = done.report;
    if let Some(op) = report.resumed_from {
        outln!("resumed the interrupted rollout #{op}");
    }
    super::analysis::print_results(&report.transitions);
    match &report.outcome {
        Outcome::Succeeded if report.nothing_to_do => {
            outln!(
                "nothing to do: every cluster runs {short}, matches Git and is Healthy (no bake needed)"
            );
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Succeeded => {
            if !report.drift_corrected.is_empty() {
                outln!(
                    "drift corrected in {} (they already ran {short})",
                    report.drift_corrected.join(", ")
                );
            }
            outln!("rollout succeeded: every cluster is Healthy at {short}");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::RolledBack {
            failure,
            not_restored,
        } => {
            outln!(
                "rollout FAILED ({failure}); touched clusters were rolled back and {short} is quarantined"
            );
            for n in not_restored {
                outln!("  NOT restored: {} ({})", n.cluster, n.reason);
            }
            if not_restored.is_empty() {
                outln!("  every rolled-back cluster is Healthy again");
            }
            outln!(
                "  next: fix it in a newer commit and run `tidegate sync --env {env}` again (if the cause was outside the revision, e.g. a cluster that could not be reached, `tidegate unquarantine --env {env} --revision {revision}` first)"
            );
            Ok(ExitCode::from(1))
        }
        Outcome::Halted { failure } => {
            outln!("rollout HALTED ({failure}); clusters are left as they are");
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
    let Some(ignore_windows) = super::windows::windows_override(args, style)? else {
        return Ok(ExitCode::from(1));
    };
    let revision = loaded.desired.commit.sha.clone();
    // A resumed rollout continues its journal (whose machine knows what it
    // quarantined); a new one must be admitted.
    let admitted = if args.resume {
        let (list, read) = tidegate_app::quarantined_everywhere(
            loaded.factory(),
            &loaded.desired.environment,
            &args.audit.path(),
        )
        .await?;
        warn_unreadable(&read.unreadable);
        Some(list)
    } else {
        admit_revision(
            loaded.factory(),
            &loaded.desired.environment,
            &args.audit,
            None,
            &revision,
            args.allow_quarantined
                .then(|| args.reason.as_deref().unwrap_or("")),
            style,
        )
        .await?
    };
    let Some(quarantined) = admitted else {
        return Ok(ExitCode::from(1));
    };
    let revisions = loaded.revisions();
    run_rollout(
        RolloutRun {
            factory: loaded.factory(),
            environment: &loaded.desired.environment,
            rendered: &loaded.rendered,
            health_checks: loaded.health_checks.clone(),
            revision: &revision,
            revisions: &revisions,
            approvals: None,
            audit_path: &args.audit.path(),
            actor: actor(),
            break_lock: args.break_lock,
            resume: args.resume,
            prune: args.prune,
            force_conflicts: args.force_conflicts,
            quarantined,
            ignore_windows,
            journal: None,
            stop: None,
            stop_grace: None,
            take_over_identity: None,
            engines: Default::default(),
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
        for planned in tidegate_app::plan_clusters(&loaded, &SyncOptions::default()).await {
            let name = &planned.cluster;
            let plan = match planned.result {
                Ok(plan) => plan,
                Err(tidegate_app::PlanError::Connect(e)) => return Err(e.into()),
                // Reachable, but a read was refused: a problem naming the permission.
                Err(tidegate_app::PlanError::Plan(e)) if e.forbidden().is_some() => {
                    problems += 1;
                    let why = e
                        .forbidden()
                        .map(|f| format!("{f}; to fix: {}", f.fix()))
                        .unwrap_or_default();
                    changes.insert(
                        name.clone(),
                        serde_json::json!({"forbidden": why, "problems": [], "toChange": 0, "toPrune": 0, "total": 0}),
                    );
                    continue;
                }
                Err(tidegate_app::PlanError::Plan(e)) => {
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
    let windows = super::windows::plan_notes(&loaded.desired.environment)?;
    match args.output {
        TextOrJson::Json => outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"revision": loaded.desired.commit.sha, "plan": waves, "clusters": changes, "healthChecks": health_checks, "windows": windows.iter().map(|(c, (_, j))| (c.clone(), j.clone())).collect::<serde_json::Map<_, _>>()})
            )?
        ),
        TextOrJson::Text => {
            outln!(
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
            super::analysis::print_plan(&loaded.desired.environment.spec.rollout);
            for wave in &waves.waves {
                outln!(
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
                        Some(v) if v.get("forbidden").is_some() => outln!(
                            "  {c:<20} FORBIDDEN: {}",
                            v["forbidden"].as_str().unwrap_or_default()
                        ),
                        Some(v) if v.get("unreachable").is_some() => outln!(
                            "  {c:<20} UNREACHABLE: {}",
                            v["unreachable"].as_str().unwrap_or_default()
                        ),
                        Some(v) => {
                            outln!(
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
                                outln!(
                                    "    {} {}",
                                    style.error("problem:"),
                                    p.as_str().unwrap_or_default().replace('\n', "\n    ")
                                );
                            }
                        }
                        None => outln!("  {c}"),
                    }
                    if let Some((note, _)) = windows.get(c) {
                        outln!("    {note}");
                    }
                }
            }
            for (kind, check) in &health_checks {
                outln!("health of {kind}: {check}");
            }
        }
    }
    // Unreachable clusters follow maxUnavailable, as in the rollout.
    if unreachable > waves.max_unavailable as usize {
        problems += unreachable;
        errln!(
            "{} {unreachable} cluster(s) cannot be reached, more than maxUnavailable {}",
            style.error("plan has problems:"),
            waves.max_unavailable
        );
    }
    if problems > 0 {
        errln!(
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
pub async fn approve(
    global: &Global,
    args: &ApproveArgs,
    style: &Style,
) -> anyhow::Result<ExitCode> {
    let revision = match &args.revision {
        Some(r) => Workspace::open(global.repo.as_deref(), Some(r))?,
        None => fleet::workspace(global)?,
    };
    let sha = revision.commit_sha().to_string();
    let factory = fleet::client_factory(global, &args.kubeconfig);
    // Only a wave that waits for approval, of an environment that exists.
    let environment = match revision.environment_discovered(&args.env, &factory).await {
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
    let reason = args
        .reason
        .clone()
        .unwrap_or_else(|| format!("wave {} approved", args.wave));
    let path = args.audit.path();
    let store = AuditStore::open(&path)?;
    let mut entry = Entry::new(actor(), Action::Approve)
        .env(&args.env)
        .revisions(None, Some(Revision::sha(&sha)))
        .message(reason.clone());
    entry.details.insert("wave".into(), args.wave.to_string());
    let seq = store.append(entry)?;
    // Kept with the clusters too: a rollout run from another machine (or
    // the controller) sees it.
    let written = tidegate_app::write_gates(
        &factory,
        &environment,
        &GateChange::Approve {
            revision: sha.clone(),
            wave: args.wave,
            record: GateRecord::now(&actor().identity, &reason),
        },
    )
    .await;
    warn_unwritten("the approval", &written);
    outln!(
        "approved wave {} of {} for {} (audit entry #{seq}; recorded in {} of {} clusters)",
        args.wave,
        args.env,
        &sha[..12],
        written.written.len(),
        environment.spec.clusters.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `tidegate unquarantine`: lifted in the audit trail and in every
/// cluster of the environment that can be reached.
pub async fn unquarantine(
    global: &Global,
    args: &UnquarantineArgs,
    style: &Style,
) -> anyhow::Result<ExitCode> {
    let path = args.audit.path();
    let reason = args
        .reason
        .clone()
        .unwrap_or_else(|| "lifted by hand".into());
    let in_audit = match tidegate_app::existing_audit(&path)? {
        Some(store) => {
            tidegate_app::quarantine_record(&store, &args.env, &args.revision)?.is_some()
        }
        None => false,
    };
    let factory = fleet::client_factory(global, &args.kubeconfig);
    // The clusters come from the environment file at --ref (or HEAD).
    let environment = match fleet::workspace(global) {
        Ok(ws) => match ws.environment_discovered(&args.env, &factory).await {
            Ok(environment) => Some(environment),
            Err(LoadError::Invalid(problems)) => {
                style.print_diagnostics(&problems);
                return Ok(ExitCode::from(1));
            }
            Err(e) => return Err(e.into()),
        },
        Err(e) => {
            errln!(
                "warning: {e}; only the local audit trail's quarantine is lifted, not the clusters'"
            );
            None
        }
    };
    let read = match &environment {
        Some(environment) => tidegate_app::read_gates(&factory, environment).await,
        None => tidegate_app::GatesRead::default(),
    };
    warn_unreadable(&read.unreadable);
    let in_clusters = read.gates.quarantined.contains_key(&args.revision);
    let still_in_audit = in_audit && !read.gates.lifted.contains_key(&args.revision);
    if !still_in_audit && !in_clusters {
        bail!(
            "revision {} is not quarantined for {}",
            args.revision,
            args.env
        );
    }
    if let Some(environment) = &environment {
        let written = tidegate_app::write_gates(
            &factory,
            environment,
            &GateChange::Unquarantine {
                revision: args.revision.clone(),
                record: GateRecord::now(&actor().identity, &reason),
            },
        )
        .await;
        warn_unwritten("lifting the quarantine", &written);
    }
    let store = AuditStore::open(&path)?;
    let entry = Entry::new(actor(), Action::Other("unquarantine".into()))
        .env(&args.env)
        .revisions(None, Some(Revision::sha(&args.revision)))
        .message(reason);
    let seq = store.append(entry)?;
    outln!(
        "{} may be rolled out to {} again (audit entry #{seq})",
        args.revision,
        args.env
    );
    Ok(ExitCode::SUCCESS)
}

/// `tidegate history`.
pub fn history(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let store = AuditStore::open_read_only(&args.audit.path())?;
    let records = store.records(&Filter {
        environment: Some(args.env.clone()),
        actions: vec![
            "rollout-start".into(),
            "rollout-end".into(),
            tidegate_fleet::analysis::ACTION.into(),
        ],
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
            let analyses = super::analysis::of_operation(&records, start.seq);
            let mut row = serde_json::json!({
                "operation": start.seq,
                "started": start.time_ms,
                "revision": start.entry.to.as_ref().map(|r| r.sha.clone()),
                "actor": start.entry.actor.identity,
                "outcome": outcome,
                "resumes": resumes,
                "resumedBy": resumed_by,
                "durationMs": end.and_then(|e| e.entry.duration_ms),
                "message": message,
            });
            if !analyses.is_empty() {
                row["analyses"] = analyses.into();
            }
            row
        })
        .collect();
    match args.output {
        TextOrJson::Json => outln!("{}", serde_json::to_string_pretty(&rows)?),
        TextOrJson::Text => {
            outln!(
                "{:<6} {:<14} {:<12} {:<22} MESSAGE",
                "OP",
                "REVISION",
                "OUTCOME",
                "ACTOR"
            );
            for r in &rows {
                outln!(
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
                if let Some(analyses) = r["analyses"].as_array() {
                    super::analysis::print_history(analyses);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tidegate rollback`: a rollout of an older revision, in waves (or one cluster).
///
/// The repository is opened once; the target is loaded, discovered and
/// rendered once (the rollout's own rollbacks reuse it); the current
/// revision is read (offline) only to find the last healthy revision when
/// `--to` is not given.
pub async fn rollback(
    global: &Global,
    args: &RollbackArgs,
    style: &Style,
) -> anyhow::Result<ExitCode> {
    let workspace = fleet::workspace(global)?;
    let factory = fleet::client_factory(global, &args.rollout.kubeconfig);
    let facts = FactsCache::default().only_cluster(args.cluster.clone());
    let to = match &args.to {
        Some(to) => to.clone(),
        None => {
            // Only the clusters are needed from the current revision.
            let env_now = workspace
                .load_discovered(&args.env, &factory, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            tidegate_app::last_healthy_revision(&factory, &env_now.environment)
                .await
                .context("no cluster records a last healthy revision: pass --to REV")?
        }
    };
    let resolved = workspace.at(&to)?.commit().sha.clone();
    let revisions = GitRevisions::new(
        std::sync::Arc::new(Mutex::new(workspace)),
        &args.env,
        &factory,
        &facts,
    );
    let entry = revisions.entry(&resolved).await.map_err(|e| match e {
        RevisionError::Invalid { problems, .. } => {
            anyhow::anyhow!("rendering {to}: {problems}")
        }
        e => anyhow::anyhow!("rendering {to}: {e}"),
    })?;
    let (environment, rendered) = (&entry.rendering.environment, &entry.rendering.rendered);
    // Quarantines of the audit trail and of the target's clusters.
    let (quarantine, read) =
        tidegate_app::quarantined_everywhere(&factory, environment, &args.rollout.audit.path())
            .await?;
    warn_unreadable(&read.unreadable);
    if quarantine.contains(&resolved) {
        errln!(
            "{} {} is quarantined for {}: a failed rollout rejected it, so it is not a rollback target. Choose a revision that completed its rollout (`tidegate history --env {}` lists them) and pass --to REV, or lift the quarantine first with `tidegate unquarantine --env {} --revision {resolved}`",
            style.error("rollback refused:"),
            &resolved[..resolved.len().min(12)],
            args.env,
            args.env,
            args.env
        );
        return Ok(ExitCode::from(1));
    }
    let sha = entry.rendering.commit.clone();
    let health_checks = entry
        .health_checks
        .clone()
        .map_err(|problems| anyhow::anyhow!("health checks at {to}: {problems}"))?;
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
            errln!("{} {e}", style.error("rollback refused:"));
            return Ok(ExitCode::from(1));
        }
        let path = args.rollout.audit.path();
        let engine = engine.with_audit(Audit {
            sink: std::sync::Arc::new(AuditStore::open(&path)?),
            actor: actor(),
        });
        let rendered_cluster = rendered
            .clusters
            .iter()
            .find(|c| c.cluster == *cluster)
            .context("not rendered")?;
        let target = tidegate_sync::Target {
            environment,
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
        outln!(
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
        RolloutRun {
            factory: &factory,
            environment,
            rendered,
            health_checks,
            revision: &sha,
            revisions: &revisions,
            approvals: None,
            audit_path: &args.rollout.audit.path(),
            actor: actor(),
            break_lock: args.rollout.break_lock,
            resume: false,
            prune: true,
            force_conflicts: false,
            quarantined: quarantine,
            ignore_windows: None,
            journal: None,
            stop: None,
            stop_grace: None,
            take_over_identity: None,
            engines: Default::default(),
        },
        style,
    )
    .await
}

/// `tidegate switch`.
pub async fn switch(global: &Global, args: &SwitchArgs) -> anyhow::Result<ExitCode> {
    use tidegate_fleet::switch::{SwitchOutcome, SwitchRequest};
    let ws = fleet::workspace(global)?;
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
    let store = AuditStore::open(&path).with_context(|| {
        format!(
            "opening the audit trail {}",
            tidegate_audit::location::describe(&path)
        )
    })?;
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
    let revisions = GitRevisions::new(
        std::sync::Arc::new(Mutex::new(ws)),
        &args.env,
        &factory,
        &facts,
    );
    // Keyed on the switch's own commit (the revision its waves roll out,
    // the one `tidegate approve` records at the new HEAD), read from the
    // audit trail and the clusters as a rollout's are.
    let approvals = |revision: &str| -> Box<dyn tidegate_fleet::Approvals + '_> {
        Box::new(tidegate_app::ClusterApprovals {
            factory: &factory,
            environment: &desired.environment,
            audit: AuditApprovals {
                path: path.clone(),
                env: args.env.clone(),
                revision: revision.to_string(),
            },
        })
    };
    let health_checks =
        tidegate_app::health_checks(&desired).map_err(|d| anyhow::anyhow!("{d}"))?;
    let (quarantined, read) =
        tidegate_app::quarantined_everywhere(&factory, &desired.environment, &path).await?;
    warn_unreadable(&read.unreadable);
    let options = DriverOptions {
        break_lock: args.rollout.break_lock,
        identity: actor.identity.clone(),
        // A flip back never goes to a quarantined revision either.
        quarantined,
        poll: std::time::Duration::from_millis(500),
        // The environment's health settings judge the switch's waves too.
        health_checks,
        ..DriverOptions::default()
    };
    let options_again = options.clone();
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
    .await;
    // tidegate_switches_total, when the controller runs this for an API caller.
    crate::sink::observe(tidegate_controller::Event::switched(
        &args.env, &args.app, &outcome,
    ));
    match outcome? {
        SwitchOutcome::Switched { commit, .. } => {
            outln!(
                "{} now serves {} in {} (commit {})",
                args.app,
                args.to,
                args.env,
                &commit[..12]
            );
            let Some(after) = args.scale_down_after else {
                return Ok(ExitCode::SUCCESS);
            };
            let from = desired
                .environment
                .spec
                .blue_green
                .iter()
                .find(|b| b.app == args.app)
                .map(|b| b.active_color.clone())
                .unwrap_or_default();
            let request = tidegate_fleet::scale_down::ScaleDownRequest {
                repo_dir: &repo_dir,
                env_file: &desired.env_file,
                env: &args.env,
                app: &args.app,
                active: &args.to,
                idle: &from,
                reason: args.reason.as_deref().unwrap_or("no reason given"),
                push: !args.no_push,
                author: (&name, &email),
            };
            let audit = Some(Audit {
                sink: std::sync::Arc::new(AuditStore::open(&path)?),
                actor: crate::sink::actor(Trigger::Cli),
            });
            super::scale_down::after(
                after,
                &request,
                (&factory, &revisions, &approvals),
                audit,
                options_again,
                &|lines| print_lines(lines, &last),
            )
            .await
        }
        SwitchOutcome::Reverted { revert, .. } => {
            outln!(
                "switch FAILED its post-checks: switched clusters were flipped back and the commit reverted ({})",
                &revert[..12]
            );
            Ok(ExitCode::from(1))
        }
        SwitchOutcome::Refused { problems } => {
            for p in &problems {
                errln!("pre-check failed: {p}");
            }
            outln!("switch refused: nothing was changed or committed");
            Ok(ExitCode::from(1))
        }
    }
}
