//! Running sync hooks (`tidegate.dev/hook` Jobs) in one cluster.
//!
//! Each hook runs once per revision as a Job named
//! `tidegate_core::sync_hooks::run_name` (the hook's name and the
//! revision). A Job of that name that is already there ran for this
//! revision: without `BeforeHookCreation` its result is used again; with
//! it, the Job is deleted and run again. Hooks of one phase run one after
//! the other, in apply order; the first failure stops the phase.
//!
//! What a hook said is read from its pods: the exit code and termination
//! message of its containers (`terminationMessagePolicy:
//! FallbackToLogsOnError` puts the log's tail there on failure), and when a
//! failed container left no message, the last lines of its log.

use crate::{Engine, SyncError, Target};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};
use tidegate_cluster::{ClusterError, Resolved, dynamic_api, with_retries};
use tidegate_core::{
    ObjectKey, RenderedObject,
    sync_hooks::{HookPhase, HookSpec, hook_of, run_name},
    tracking::FIELD_MANAGER,
};
use tidegate_health::pods::{JobOutcome, job_outcome, termination};
use tracing::{info, warn};

/// Lines of a hook's output kept for the audit trail.
pub const HOOK_LOG_LINES: usize = 20;

/// How one hook run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookOutcome {
    /// The Job completed.
    Succeeded,
    /// The Job failed.
    Failed,
    /// The Job did not finish in time (it is left running).
    TimedOut,
}

/// One hook's run in one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct HookRun {
    /// The app.
    pub app: String,
    /// When it ran.
    pub phase: HookPhase,
    /// The hook's name in Git.
    pub hook: String,
    /// The Job's name in the cluster (the hook's name and the revision).
    pub job: String,
    /// Its namespace.
    pub namespace: String,
    /// How it ended.
    pub outcome: HookOutcome,
    /// The exit code of its last pod's container, when one terminated.
    pub exit_code: Option<i64>,
    /// The last lines it wrote (termination message, else its log's tail),
    /// control characters escaped.
    pub output: String,
    /// A Job of this revision had already run (its result is reused).
    pub reused: bool,
}

impl HookRun {
    /// True when the hook succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome == HookOutcome::Succeeded
    }

    /// One line for messages: `PreSync hook migrate-0123abcd (app web) failed (exit 3): ...`.
    pub fn summary(&self) -> String {
        let outcome = match self.outcome {
            HookOutcome::Succeeded => "succeeded",
            HookOutcome::Failed => "failed",
            HookOutcome::TimedOut => "did not finish in time",
        };
        let mut s = format!(
            "{} hook Job {}/{} (app {}) {outcome}",
            self.phase, self.namespace, self.job, self.app
        );
        if let Some(code) = self.exit_code {
            s.push_str(&format!(" (exit {code})"));
        }
        if let Some(last) = self.output.lines().rev().find(|l| !l.trim().is_empty()) {
            s.push_str(": ");
            s.push_str(last.trim());
        }
        s
    }
}

/// The hooks of `phase` of the target's apps (all apps when `apps` is
/// empty), in apply order, with their Job's run name set.
pub fn hooks_of(
    target: &Target<'_>,
    phase: HookPhase,
    apps: &[String],
) -> Vec<(String, HookSpec, RenderedObject)> {
    target
        .rendered
        .apps
        .iter()
        .filter(|a| apps.is_empty() || apps.contains(&a.app))
        .flat_map(|a| a.hooks.iter().map(move |h| (a, h)))
        .filter_map(|(a, h)| {
            let spec = hook_of(&h.manifest).ok().flatten()?;
            (spec.phase == phase).then(|| {
                let mut object = h.clone();
                let name = run_name(&h.key.name, target.revision);
                object.manifest_mut()["metadata"]["name"] = Value::String(name.clone());
                object.key.name = name;
                (a.app.clone(), spec, object)
            })
        })
        .collect()
}

impl Engine {
    /// Runs the hooks of `phase` of `apps` (all when empty), one after the
    /// other; stops at the first that does not succeed. Each waits at most
    /// `timeout`.
    pub async fn run_hooks(
        &self,
        target: &Target<'_>,
        phase: HookPhase,
        apps: &[String],
        timeout: Duration,
    ) -> Result<Vec<HookRun>, SyncError> {
        let mut runs = Vec::new();
        for (app, spec, object) in hooks_of(target, phase, apps) {
            let run = self.run_hook(&app, spec, &object, timeout).await?;
            info!(cluster = %self.cluster, hook = %run.job, outcome = ?run.outcome, "hook finished");
            let ok = run.succeeded();
            runs.push(run);
            if !ok {
                break;
            }
        }
        Ok(runs)
    }

    /// Runs the hooks of `phase` like [`Engine::run_hooks`], recording each
    /// run as a stand-alone `hook` entry in the attached audit trail: for
    /// the hooks a single-cluster sync runs after its operation closed
    /// (PostSync once Healthy, SyncFail after a failure).
    pub async fn run_hooks_audited(
        &self,
        target: &Target<'_>,
        phase: HookPhase,
        apps: &[String],
        timeout: Duration,
    ) -> Result<Vec<HookRun>, SyncError> {
        let runs = self.run_hooks(target, phase, apps, timeout).await?;
        if let Some(audit) = &self.audit {
            let environment = &target.environment.metadata.name;
            for run in &runs {
                let entry = audit.hook_entry(environment, &self.cluster, target.revision, run);
                audit.sink.append(entry)?;
            }
        }
        Ok(runs)
    }

    /// Dry-runs every hook Job of the target (server-side apply,
    /// `dryRun=All`): a hook the API server rejects is a problem of the
    /// plan, found before the first write. Hooks in a namespace this sync
    /// creates cannot be dry-run yet and are checked when they run.
    pub(crate) async fn check_hooks(
        &self,
        target: &Target<'_>,
        apps: &[String],
        new_namespaces: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<crate::ObjectProblem>, SyncError> {
        let mut problems = Vec::new();
        if target.rendered.apps.iter().all(|a| a.hooks.is_empty()) {
            return Ok(problems); // no request at all for apps without hooks
        }
        let jobs = self.jobs().await?;
        for phase in [HookPhase::PreSync, HookPhase::PostSync, HookPhase::SyncFail] {
            for (app, _, object) in hooks_of(target, phase, apps) {
                let namespace = object.key.namespace.clone().unwrap_or_default();
                if new_namespaces.contains(&namespace) {
                    continue;
                }
                let api = dynamic_api(&self.client, &jobs, Some(&namespace));
                let params = PatchParams::apply(FIELD_MANAGER).dry_run();
                let patch = Patch::Apply(&*object.manifest);
                match with_retries("dry-run apply of a hook", || {
                    api.patch(&object.key.name, &params, &patch)
                })
                .await
                {
                    Ok(_) => {}
                    Err(e) if tidegate_cluster::Forbidden::of(&e).is_some() => {
                        // Not the manifest's fault: the identity may not create Jobs there.
                        let Some(f) = tidegate_cluster::Forbidden::of(&e) else {
                            continue;
                        };
                        problems.push(crate::ObjectProblem {
                            app: app.clone(),
                            key: object.key.clone(),
                            source: Some(object.provenance.to_string()),
                            message: tidegate_core::printable::printable(&format!(
                                "the API server refuses this {phase} hook: {f}"
                            ))
                            .into_owned(),
                            help: tidegate_core::printable::printable(&f.fix()).into_owned(),
                        });
                    }
                    Err(kube::Error::Api(s)) if (400..500).contains(&s.code) => {
                        problems.push(crate::ObjectProblem {
                            app: app.clone(),
                            key: object.key.clone(),
                            source: Some(object.provenance.to_string()),
                            message: tidegate_core::printable::printable(&format!(
                                "the API server rejects this {phase} hook ({} {}): {}",
                                s.code, s.reason, s.message
                            ))
                            .into_owned(),
                            help: "fix the hook Job's manifest".into(),
                        });
                    }
                    Err(e) => return Err(self.api_error("dry-run apply of a hook Job", e)),
                }
            }
        }
        Ok(problems)
    }

    async fn jobs(&self) -> Result<Resolved, SyncError> {
        self.resolver
            .resolve("batch/v1", "Job")
            .await?
            .ok_or_else(|| {
                self.api_error(
                    "finding batch/v1 Job",
                    kube::Error::Service("the cluster does not serve batch/v1 Job".into()),
                )
            })
    }

    fn api_error(&self, what: &str, error: kube::Error) -> SyncError {
        SyncError::Cluster(ClusterError::Api {
            cluster: self.cluster.clone(),
            what: what.to_string(),
            error,
        })
    }

    async fn run_hook(
        &self,
        app: &str,
        spec: HookSpec,
        object: &RenderedObject,
        timeout: Duration,
    ) -> Result<HookRun, SyncError> {
        let jobs = self.jobs().await?;
        let key = &object.key;
        let namespace = key.namespace.clone().unwrap_or_else(|| "default".into());
        let api = dynamic_api(&self.client, &jobs, Some(&namespace));
        let existing = self.get_job(&jobs, key).await?;
        let mut reused = false;
        match existing {
            Some(_) if spec.delete.before_creation => {
                self.delete_job(&jobs, key).await?;
                self.wait_gone(&jobs, key, timeout).await?;
            }
            Some(_) => reused = true,
            None => {}
        }
        if !reused {
            let params = PatchParams::apply(FIELD_MANAGER);
            let patch = Patch::Apply(&*object.manifest);
            with_retries("create a hook Job", || {
                api.patch(&key.name, &params, &patch)
            })
            .await
            .map_err(|e| self.api_error(&format!("creating hook Job {key}"), e))?;
        }
        // Wait for its outcome.
        let start = Instant::now();
        let outcome = loop {
            let job = self.get_job(&jobs, key).await?;
            match job.as_ref().map(job_outcome) {
                Some(JobOutcome::Succeeded) => break HookOutcome::Succeeded,
                Some(JobOutcome::Failed) => break HookOutcome::Failed,
                None => break HookOutcome::Failed, // deleted under us
                Some(JobOutcome::Running) if start.elapsed() >= timeout => {
                    break HookOutcome::TimedOut;
                }
                Some(JobOutcome::Running) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        let (exit_code, output) = self.hook_output(&namespace, &key.name).await;
        let delete = match outcome {
            HookOutcome::Succeeded => spec.delete.on_success,
            HookOutcome::Failed => spec.delete.on_failure,
            HookOutcome::TimedOut => false,
        };
        if delete && let Err(e) = self.delete_job(&jobs, key).await {
            warn!(cluster = %self.cluster, job = %key, error = %e, "deleting a finished hook Job failed");
        }
        Ok(HookRun {
            app: app.to_string(),
            phase: spec.phase,
            hook: hook_name(&key.name),
            job: key.name.clone(),
            namespace,
            outcome,
            exit_code,
            output,
            reused,
        })
    }

    async fn get_job(&self, jobs: &Resolved, key: &ObjectKey) -> Result<Option<Value>, SyncError> {
        Ok(tidegate_cluster::get_object(&self.client, &self.cluster, jobs, key).await?)
    }

    async fn delete_job(&self, jobs: &Resolved, key: &ObjectKey) -> Result<(), SyncError> {
        let api = dynamic_api(&self.client, jobs, key.namespace.as_deref());
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match with_retries("delete a hook Job", || api.delete(&key.name, &params)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.api_error(&format!("deleting hook Job {key}"), e)),
        }
    }

    async fn wait_gone(
        &self,
        jobs: &Resolved,
        key: &ObjectKey,
        timeout: Duration,
    ) -> Result<(), SyncError> {
        let start = Instant::now();
        while self.get_job(jobs, key).await?.is_some() {
            if start.elapsed() >= timeout {
                return Err(self.api_error(
                    &format!("deleting the previous run of hook Job {key}"),
                    kube::Error::Service("it was not gone in time".into()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// The exit code and last lines of a hook Job's pods (the newest pod
    /// that terminated). Reading them is best effort: a hook's outcome is
    /// its Job's, and a pod that cannot be read only leaves the output empty.
    async fn hook_output(&self, namespace: &str, job: &str) -> (Option<i64>, String) {
        let pods = match self.resolver.resolve("v1", "Pod").await {
            Ok(Some(r)) => r,
            _ => return (None, String::new()),
        };
        let api = dynamic_api(&self.client, &pods, Some(namespace));
        let params = ListParams::default().labels(&format!("job-name={job}"));
        let listed = match with_retries("list a hook's pods", || api.list(&params)).await {
            Ok(l) => l,
            Err(e) => {
                warn!(cluster = %self.cluster, %job, error = %e, "reading a hook's pods failed");
                return (None, String::new());
            }
        };
        let mut pods: Vec<Value> = listed
            .items
            .into_iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect();
        pods.sort_by(|a, b| {
            let t = |p: &Value| {
                p["metadata"]["creationTimestamp"]
                    .as_str()
                    .map(str::to_string)
            };
            t(a).cmp(&t(b))
        });
        let Some((pod, (code, message))) =
            pods.iter().rev().find_map(|p| Some((p, termination(p)?)))
        else {
            return (None, String::new());
        };
        // The log is read only for a failed container without a message:
        // what a successful hook said is not worth a request (and clusters
        // without reachable kubelets, like kwok's, answer it with 500).
        let text = if message.trim().is_empty() && code != 0 {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            self.log_tail(namespace, name).await.unwrap_or_default()
        } else {
            message
        };
        (Some(code), last_lines(&text, HOOK_LOG_LINES))
    }

    /// The last lines of a pod's log, if the cluster serves them within 3 s.
    async fn log_tail(&self, namespace: &str, pod: &str) -> Option<String> {
        let params = kube::api::LogParams {
            tail_lines: Some(HOOK_LOG_LINES as i64),
            limit_bytes: Some(16 * 1024),
            ..kube::api::LogParams::default()
        };
        let request = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
            .logs(pod, &params)
            .ok()?;
        tokio::time::timeout(Duration::from_secs(3), self.client.request_text(request))
            .await
            .ok()?
            .ok()
    }
}

/// The hook's name in Git from its run name (`<name>-<8 characters>`).
fn hook_name(job: &str) -> String {
    job.rsplit_once('-')
        .map_or(job, |(name, _)| name)
        .to_string()
}

/// The last `n` lines of `text`, control characters escaped, at most 4 KiB.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(n)..].join("\n");
    let tail: String = tail
        .chars()
        .rev()
        .take(4096)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    tail.lines()
        .map(|l| tidegate_core::printable::printable(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_the_last_lines_escaped() {
        let text = (1..=30)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let tail = last_lines(&text, 3);
        assert_eq!(tail, "line 28\nline 29\nline 30");
        assert!(!last_lines("a\u{1b}[31mred", 5).contains('\u{1b}'));
        assert_eq!(hook_name("migrate-db-0123abcd"), "migrate-db");
    }
}
