//! Blue-green switches across the fleet.
//!
//! A switch (1) pre-checks every cluster — the target colour's Deployment is
//! Healthy with all replicas ready, and the Service would have ready
//! endpoints — and stops before anything changes if one fails; (2) commits
//! the new `activeColor` to the environment file (and pushes it); (3) rolls
//! that commit out with the [`Driver`]: waves, `maxSurge`/`maxUnavailable`,
//! gates, with an extra post-check per cluster (the Service's EndpointSlices
//! hold only ready endpoints of the new colour); (4) on failure the driver
//! flips the switched clusters back (reverse order) and the commit is
//! reverted. Every cluster switched or reverted is an audit entry.

use crate::{
    Approvals, ClusterCheck, ClusterStep, Driver, DriverOptions, Outcome, Revisions, RolloutError,
    RolloutReport,
};
use futures::future::BoxFuture;
use kube::{
    Api,
    api::{DynamicObject, ListParams},
    discovery::ApiResource,
};
use serde_json::Value;
use std::{collections::BTreeMap, path::Path};
use tidegate_audit::{
    Action as AuditAction, Entry, Outcome as AuditOutcome, Revision, SelectorChange,
};
use tidegate_cluster::ClientFactory;
use tidegate_core::{Diagnostic, Environment, environment::BlueGreen};
use tidegate_health::HealthStatus;
use tidegate_sync::{Audit, Engine};

/// What to switch.
pub struct SwitchRequest<'a> {
    /// The configuration repository's directory (the commit goes there).
    pub repo_dir: &'a Path,
    /// The environment before the switch.
    pub environment: &'a Environment,
    /// Its file, relative to the repository root.
    pub env_file: &'a str,
    /// The file's text before the switch.
    pub env_text: &'a str,
    /// The app.
    pub app: &'a str,
    /// The colour to switch to.
    pub to: &'a str,
    /// Why (commit message and audit trail).
    pub reason: Option<&'a str>,
    /// Push the commit (and a revert) to `origin`.
    pub push: bool,
    /// Commit author: name and email.
    pub author: (&'a str, &'a str),
}

/// How a switch ended.
#[derive(Debug)]
pub enum SwitchOutcome {
    /// Every cluster serves the new colour.
    Switched {
        /// The commit that changed `activeColor`.
        commit: String,
        /// The rollout.
        report: RolloutReport,
    },
    /// A post-check failed: switched clusters were flipped back and the commit reverted.
    Reverted {
        /// The commit that changed `activeColor`.
        commit: String,
        /// The commit that reverted it.
        revert: String,
        /// The rollout.
        report: RolloutReport,
    },
    /// A pre-check failed: nothing was changed or committed.
    Refused {
        /// Every failed pre-check.
        problems: Vec<String>,
    },
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn namespace_of(env: &Environment, app: &str) -> String {
    env.app(app)
        .and_then(|a| a.namespace.clone())
        .unwrap_or_else(|| "default".into())
}

/// The Ready pods matching a label selector, by IP.
async fn ready_pod_ips(
    engine: &Engine,
    namespace: &str,
    selector: &BTreeMap<String, String>,
) -> Result<Vec<String>, kube::Error> {
    let pods: Api<DynamicObject> = Api::namespaced_with(
        engine.client().clone(),
        namespace,
        &resource("", "v1", "Pod", "pods"),
    );
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let list = pods
        .list(&ListParams::default().labels(&labels.join(",")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect())
}

/// The live selector of a Service (empty when it does not exist).
async fn service_selector(
    engine: &Engine,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, kube::Error> {
    let services: Api<DynamicObject> = Api::namespaced_with(
        engine.client().clone(),
        namespace,
        &resource("", "v1", "Service", "services"),
    );
    let Some(svc) = services.get_opt(name).await? else {
        return Ok(BTreeMap::new());
    };
    let value = serde_json::to_value(svc).unwrap_or(Value::Null);
    Ok(value["spec"]["selector"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

/// Pre-checks one cluster; returns what is wrong (empty when ready to switch).
async fn precheck_cluster(
    engine: &Engine,
    env: &Environment,
    bg: &BlueGreen,
    to: &str,
) -> Vec<String> {
    let cluster = engine.cluster().to_string();
    let namespace = namespace_of(env, &bg.app);
    let mut problems = Vec::new();
    let Some(target) = bg.colors.get(to) else {
        return vec![format!("{to:?} is not a colour of {}", bg.app)];
    };
    if target.replicas == Some(0) {
        return vec![format!(
            "cluster {cluster}: {to} is scaled down (`replicas: 0` under its colour in the environment file, from `switch --scale-down-after`): remove that line, roll it out with `tidegate sync --env {}`, then switch",
            env.metadata.name
        )];
    }
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        engine.client().clone(),
        &namespace,
        &resource("apps", "v1", "Deployment", "deployments"),
    );
    match deployments.get_opt(&target.deployment).await {
        Ok(Some(d)) => {
            let d = serde_json::to_value(d).unwrap_or(Value::Null);
            let health = tidegate_health::assess("apps", "Deployment", Some(&d));
            let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = d["status"]["readyReplicas"].as_i64().unwrap_or(0);
            if health.status != HealthStatus::Healthy || ready < want || want < 1 {
                problems.push(format!(
                    "cluster {cluster}: Deployment {namespace}/{} is {} with {ready}/{want} replicas ready",
                    target.deployment, health
                ));
            }
        }
        Ok(None) => problems.push(format!(
            "cluster {cluster}: Deployment {namespace}/{} does not exist",
            target.deployment
        )),
        Err(e) => problems.push(format!(
            "cluster {cluster}: reading Deployment {}: {e}",
            target.deployment
        )),
    }
    for service in &bg.services {
        match service_selector(engine, &namespace, service).await {
            Ok(mut selector) if !selector.is_empty() => {
                selector.insert(bg.selector_key.clone(), to.to_string());
                match ready_pod_ips(engine, &namespace, &selector).await {
                    Ok(ips) if !ips.is_empty() => {}
                    Ok(_) => problems.push(format!(
                        "cluster {cluster}: Service {namespace}/{service} would have no ready endpoints with {}={to}",
                        bg.selector_key
                    )),
                    Err(e) => problems.push(format!("cluster {cluster}: listing pods: {e}")),
                }
            }
            Ok(_) => problems.push(format!("cluster {cluster}: Service {namespace}/{service} does not exist (sync the environment first)")),
            Err(e) => problems.push(format!("cluster {cluster}: reading Service {service}: {e}")),
        }
    }
    problems
}

/// Post-check: every Service's EndpointSlices hold only ready endpoints of
/// pods of the new colour, and at least one. Progressing until then.
pub struct EndpointCheck {
    namespace: String,
    services: Vec<String>,
    selector_key: String,
    to: String,
    extra: Option<Box<dyn ClusterCheck>>,
}

impl EndpointCheck {
    async fn verdict(&self, engine: &Engine) -> HealthStatus {
        let slices: Api<DynamicObject> = Api::namespaced_with(
            engine.client().clone(),
            &self.namespace,
            &resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        );
        for service in &self.services {
            let Ok(mut selector) = service_selector(engine, &self.namespace, service).await else {
                return HealthStatus::Unknown;
            };
            if selector.get(&self.selector_key) != Some(&self.to) {
                return HealthStatus::Progressing;
            }
            selector.insert(self.selector_key.clone(), self.to.clone());
            let Ok(colour_ips) = ready_pod_ips(engine, &self.namespace, &selector).await else {
                return HealthStatus::Unknown;
            };
            let params =
                ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
            let Ok(list) = slices.list(&params).await else {
                return HealthStatus::Unknown;
            };
            let ready: Vec<String> = list
                .items
                .into_iter()
                .filter_map(|s| serde_json::to_value(s).ok())
                .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
                .filter(|e| e["conditions"]["ready"] != Value::Bool(false))
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            if ready.is_empty() || !ready.iter().all(|ip| colour_ips.contains(ip)) {
                return HealthStatus::Progressing;
            }
        }
        HealthStatus::Healthy
    }
}

impl ClusterCheck for EndpointCheck {
    fn check<'a>(&'a self, cluster: &'a str, engine: &'a Engine) -> BoxFuture<'a, HealthStatus> {
        Box::pin(async move {
            let mut status = self.verdict(engine).await;
            if let Some(extra) = &self.extra {
                status = status.max(extra.check(cluster, engine).await);
            }
            status
        })
    }
}

/// Replaces the `activeColor` of the blue-green entry starting at `line`
/// (1-based) in the environment file's text, keeping everything else.
pub fn set_active_color(text: &str, line: u64, to: &str) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let start = usize::try_from(line).ok()?.checked_sub(1)?;
    let index = (start..lines.len()).find(|&i| {
        lines[i].trim_start().starts_with("activeColor:")
            || (i > start && lines[i].trim_start().starts_with("- app:"))
    })?;
    let current = &lines[index];
    let (indent, rest) = current.split_at(current.len() - current.trim_start().len());
    if !rest.starts_with("activeColor:") {
        return None;
    }
    lines[index] = format!("{indent}activeColor: {to}");
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    Some(out)
}

/// The approvals of a switch's waves for a revision: a switch's rollout is
/// of the commit the switch makes, which does not exist before it runs, so
/// its approvals (`tidegate approve` at that commit) are asked for by it.
pub type ApprovalsFor<'a> = dyn Fn(&str) -> Box<dyn Approvals + 'a> + Sync + 'a;

/// Runs a switch. `extra_check` adds a post-check (tests inject failures with it).
#[allow(clippy::too_many_arguments)]
pub async fn switch<F: ClientFactory>(
    request: &SwitchRequest<'_>,
    factory: &F,
    revisions: &dyn Revisions,
    approvals: &ApprovalsFor<'_>,
    audit: Option<Audit>,
    options: DriverOptions,
    extra_check: Option<Box<dyn ClusterCheck>>,
    progress: &(dyn Fn(&[crate::ClusterLine]) + Sync),
) -> Result<SwitchOutcome, RolloutError> {
    let env = request.environment;
    let invalid = |message: String| {
        RolloutError::Invalid(Diagnostic::new(message).at(request.env_file, None).into())
    };
    let bg = env
        .spec
        .blue_green
        .iter()
        .find(|b| b.app == request.app)
        .ok_or_else(|| {
            invalid(format!(
                "app {} has no blueGreen entry in {}",
                request.app, env.metadata.name
            ))
        })?;
    let from = bg.active_color.clone();
    if !bg.colors.contains_key(request.to) {
        return Err(invalid(format!(
            "{:?} is not a colour of {} (colours: {})",
            request.to,
            request.app,
            bg.colors.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    if from == request.to {
        return Err(invalid(format!(
            "{} is already {} in {}",
            request.app, request.to, env.metadata.name
        )));
    }
    let summary = |outcome: AuditOutcome, message: String| -> Result<(), RolloutError> {
        if let Some(audit) = &audit {
            let mut e = Entry::new(audit.actor.clone(), AuditAction::Switch)
                .env(&env.metadata.name)
                .app(request.app)
                .outcome(outcome)
                .message(message);
            e.selector = Some(SelectorChange {
                service: bg.services.join(","),
                before: BTreeMap::from([(bg.selector_key.clone(), from.clone())]),
                after: BTreeMap::from([(bg.selector_key.clone(), request.to.to_string())]),
            });
            audit.sink.append(e)?;
        }
        Ok(())
    };

    // 1. Pre-checks everywhere, before anything changes.
    let mut problems = Vec::new();
    for cluster in &env.spec.clusters {
        let engine = Engine::connect(factory, cluster)
            .await?
            .with_health_checks(options.health_checks.clone());
        problems.extend(precheck_cluster(&engine, env, bg, request.to).await);
    }
    if !problems.is_empty() {
        summary(
            AuditOutcome::Aborted,
            format!("refused by pre-checks: {}", problems.join("; ")),
        )?;
        return Ok(SwitchOutcome::Refused { problems });
    }

    // 2. Commit (and push) the new active colour.
    let text = set_active_color(request.env_text, bg.line, request.to).ok_or_else(|| {
        invalid(format!(
            "cannot find activeColor of {} in {}",
            request.app, request.env_file
        ))
    })?;
    let reason = request.reason.unwrap_or("no reason given");
    let commit = tidegate_source::commit_file(
        request.repo_dir,
        request.env_file,
        text.as_bytes(),
        &format!(
            "Switch {} in {} from {from} to {}\n\n{reason}",
            request.app, env.metadata.name, request.to
        ),
        request.author,
    )
    .map_err(RolloutError::Git)?;
    if request.push {
        tidegate_source::push_current_branch(request.repo_dir, "origin")
            .map_err(RolloutError::Git)?;
    }

    // 3. Flip cluster by cluster: a rollout of that commit with post-checks.
    let rendering = revisions
        .render(&commit)
        .await
        .map_err(|error| RolloutError::Render {
            revision: commit.clone(),
            error,
        })?;
    let (new_env, rendered) = (&rendering.environment, &rendering.rendered);
    let check = EndpointCheck {
        namespace: namespace_of(env, request.app),
        services: bg.services.clone(),
        selector_key: bg.selector_key.clone(),
        to: request.to.to_string(),
        extra: extra_check,
    };
    let approvals = approvals(&commit);
    let driver = Driver {
        factory,
        environment: new_env,
        rendered,
        revision: &commit,
        revisions,
        approvals: approvals.as_ref(),
        audit: audit.clone(),
        check: Some(&check),
        journal: None,
        options,
    };
    let report = match driver.run(progress).await {
        Ok(report) => report,
        Err(
            e @ (RolloutError::Locked(_) | RolloutError::Invalid(_) | RolloutError::Refused(_)),
        ) => {
            // The rollout never started, so nothing was flipped: take the
            // commit back so Git keeps saying what the fleet runs. (Other
            // errors can come after some clusters were flipped: the commit
            // stays, and `tidegate sync --env` or a new switch converges.)
            tidegate_source::commit_file(
                request.repo_dir,
                request.env_file,
                request.env_text.as_bytes(),
                &format!(
                    "Revert \"Switch {} in {} from {from} to {}\"\n\nThe switch could not run: {e}",
                    request.app, env.metadata.name, request.to
                ),
                request.author,
            )
            .map_err(RolloutError::Git)?;
            if request.push {
                tidegate_source::push_current_branch(request.repo_dir, "origin")
                    .map_err(RolloutError::Git)?;
            }
            summary(
                AuditOutcome::Aborted,
                format!("could not run, commit reverted: {e}"),
            )?;
            return Err(e);
        }
        Err(e) => {
            summary(
                AuditOutcome::Failure,
                format!("stopped part-way, commit {commit} kept: {e}"),
            )?;
            return Err(e);
        }
    };
    if let Some(audit) = &audit {
        for (cluster, step, at) in &report.timeline {
            let action = match step {
                ClusterStep::Healthy => AuditAction::Switch,
                ClusterStep::RolledBack => AuditAction::SwitchReverted,
                ClusterStep::Apply
                | ClusterStep::Applied
                | ClusterStep::ApplyFailed
                | ClusterStep::GateFailed
                | ClusterStep::Rollback
                | ClusterStep::RollbackFailed => continue,
            };
            let (before, after) = if action == AuditAction::Switch {
                (&from, request.to)
            } else {
                (&request.to.to_string(), from.as_str())
            };
            let mut e = Entry::new(audit.actor.clone(), action)
                .env(&env.metadata.name)
                .cluster(cluster)
                .app(request.app)
                .revisions(None, Some(Revision::sha(&commit)))
                .message(format!("{before} → {after}: {reason}"));
            e.duration_ms = Some(at.as_millis() as u64);
            e.selector = Some(SelectorChange {
                service: bg.services.join(","),
                before: BTreeMap::from([(bg.selector_key.clone(), before.to_string())]),
                after: BTreeMap::from([(bg.selector_key.clone(), after.to_string())]),
            });
            audit.sink.append(e)?;
        }
    }

    // 4. A failed switch reverts its commit.
    if report.outcome == Outcome::Succeeded {
        summary(
            AuditOutcome::Success,
            format!("{from} → {}: {reason}", request.to),
        )?;
        return Ok(SwitchOutcome::Switched { commit, report });
    }
    let revert = tidegate_source::commit_file(
        request.repo_dir,
        request.env_file,
        request.env_text.as_bytes(),
        &format!("Revert \"Switch {} in {} from {from} to {}\"\n\nThe switch failed its post-checks and was rolled back.", request.app, env.metadata.name, request.to),
        request.author,
    )
    .map_err(RolloutError::Git)?;
    if request.push {
        tidegate_source::push_current_branch(request.repo_dir, "origin")
            .map_err(RolloutError::Git)?;
    }
    summary(
        AuditOutcome::Failure,
        format!(
            "{from} → {} failed and was reverted ({:?})",
            request.to, report.outcome
        ),
    )?;
    Ok(SwitchOutcome::Reverted {
        commit,
        revert,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_only_the_active_colour_of_the_entry() {
        let text = "spec:\n  blueGreen:\n    - app: a\n      activeColor: blue # keep\n    - app: b\n      activeColor: blue\n";
        let out = set_active_color(text, 5, "green").expect("edited");
        assert_eq!(
            out,
            "spec:\n  blueGreen:\n    - app: a\n      activeColor: blue # keep\n    - app: b\n      activeColor: green\n"
        );
        assert!(
            set_active_color(
                "spec:\n  - app: a\n  - app: b\n    activeColor: x\n",
                2,
                "y"
            )
            .is_none()
        );
    }
}
