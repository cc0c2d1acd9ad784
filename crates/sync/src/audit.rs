//! What a sync writes to the audit trail.

use crate::{Action, Plan, SyncReport};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tidegate_audit::{
    Action as AuditAction, Actor, AuditSink, Entry, OperationId, Outcome, Revision,
    entry::{Change, ObjectRef, ObjectsChanged},
};
use tidegate_core::tracking::FIELD_MANAGER;
use tidegate_diff::DiffStatus;

/// An audit trail and who is acting.
#[derive(Clone)]
pub struct Audit {
    /// Where entries go.
    pub sink: Arc<dyn AuditSink>,
    /// Who syncs (user@host or the controller, and the trigger).
    pub actor: Actor,
}

impl Audit {
    fn entry(&self, plan: &Plan, action: AuditAction) -> Entry {
        Entry::new(self.actor.clone(), action)
            .env(&plan.environment)
            .cluster(&plan.cluster)
    }

    /// Commits the intent (before the first write to the cluster).
    pub(crate) fn begin(&self, plan: &Plan) -> Result<OperationId, tidegate_audit::AuditError> {
        let from = plan.previous.first().map(|i| Revision::sha(&i.revision));
        let mut intent = self
            .entry(plan, AuditAction::Sync)
            .revisions(from, Some(Revision::sha(&plan.revision)))
            .message(format!(
                "{} of {} objects to change",
                plan.changes(),
                plan.objects.len()
            ));
        intent.manifest_digest = Some(digest(plan));
        self.sink.begin_operation(intent)
    }

    /// The entry of one hook run: its outcome, exit code and last lines
    /// (action `hook`; details `phase`, `job`, `namespace`, `outcome`,
    /// `exit_code`, `output`).
    pub fn hook_entry(
        &self,
        environment: &str,
        cluster: &str,
        revision: &str,
        run: &crate::HookRun,
    ) -> Entry {
        let mut e = Entry::new(self.actor.clone(), AuditAction::Other("hook".into()))
            .env(environment)
            .cluster(cluster)
            .app(&run.app)
            .outcome(if run.succeeded() {
                Outcome::Success
            } else {
                Outcome::Failure
            })
            .message(run.summary());
        e.to = Some(Revision::sha(revision));
        e.details.insert("phase".into(), run.phase.to_string());
        e.details.insert("job".into(), run.job.clone());
        e.details.insert("namespace".into(), run.namespace.clone());
        e.details.insert(
            "outcome".into(),
            serde_json::to_value(run.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        );
        if let Some(code) = run.exit_code {
            e.details.insert("exit_code".into(), code.to_string());
        }
        e.details.insert("output".into(), run.output.clone());
        e
    }

    /// Records what was done, per app, and the outcome.
    pub(crate) fn finish(
        &self,
        operation: OperationId,
        plan_summary: &Plan,
        report: Option<&SyncReport>,
        failure: Option<String>,
        duration_ms: u64,
    ) -> Result<(), tidegate_audit::AuditError> {
        let mut entries = Vec::new();
        if let Some(report) = report {
            let mut apps: Vec<&str> = report.results.iter().map(|r| r.app.as_str()).collect();
            apps.sort();
            apps.dedup();
            for app in apps {
                // At the revision the cluster already ran (and fully
                // applied), every change undoes someone else's; across a
                // revision change, only fields another manager owns are.
                let same_revision = plan_summary.previous.iter().any(|p| {
                    p.app == app && p.revision == plan_summary.revision && !p.incomplete()
                });
                let drifted = |r: &crate::ObjectResult| {
                    matches!(r.action, Action::Created | Action::Configured)
                        && (same_revision
                            || r.changes
                                .iter()
                                .any(|c| c.owners.iter().any(|o| o != FIELD_MANAGER)))
                };
                let of = |actions: &[Action]| -> Vec<ObjectRef> {
                    report
                        .results
                        .iter()
                        .filter(|r| r.app == app && actions.contains(&r.action) && !drifted(r))
                        .map(|r| {
                            let change = match r.action {
                                Action::Created => Change::Created,
                                Action::Pruned => Change::Deleted,
                                _ => Change::Updated,
                            };
                            ObjectRef::new(&r.key, change)
                        })
                        .collect()
                };
                let applied = of(&[Action::Created, Action::Configured]);
                if !applied.is_empty() {
                    let mut e = self.entry(plan_summary, AuditAction::Apply).app(app);
                    e.objects = Some(ObjectsChanged::from_refs(applied));
                    e.to = Some(Revision::sha(&plan_summary.revision));
                    entries.push(e);
                }
                let corrected: Vec<_> = report
                    .results
                    .iter()
                    .filter(|r| r.app == app && drifted(r))
                    .collect();
                if !corrected.is_empty() {
                    let fields: Vec<String> = corrected
                        .iter()
                        .flat_map(|r| {
                            let deleted = (r.status == DiffStatus::Missing)
                                .then(|| format!("{} (deleted; recreated)", r.key));
                            deleted.into_iter().chain(r.changes.iter().map(move |c| {
                                let owners = c
                                    .owners
                                    .iter()
                                    .filter(|o| *o != "tidegate")
                                    .cloned()
                                    .collect::<Vec<_>>();
                                if owners.is_empty() {
                                    format!("{} {}", r.key, c.path)
                                } else {
                                    format!(
                                        "{} {} (changed by {})",
                                        r.key,
                                        c.path,
                                        owners.join(", ")
                                    )
                                }
                            }))
                        })
                        .take(50)
                        .collect();
                    let mut e = self
                        .entry(plan_summary, AuditAction::DriftCorrected)
                        .app(app)
                        .message(fields.join("; "));
                    e.objects = Some(ObjectsChanged::from_refs(
                        corrected
                            .iter()
                            .map(|r| ObjectRef::new(&r.key, Change::Updated))
                            .collect(),
                    ));
                    entries.push(e);
                }
                let pruned: Vec<ObjectRef> = report
                    .results
                    .iter()
                    .filter(|r| r.app == app && r.action == Action::Pruned)
                    .map(|r| ObjectRef::new(&r.key, Change::Deleted))
                    .collect();
                if !pruned.is_empty() {
                    let mut e = self.entry(plan_summary, AuditAction::Prune).app(app);
                    e.objects = Some(ObjectsChanged::from_refs(pruned));
                    entries.push(e);
                }
            }
        }
        self.sink.record_batch(operation, entries)?;
        let mut outcome =
            self.entry(plan_summary, AuditAction::Sync)
                .outcome(if failure.is_some() {
                    Outcome::Failure
                } else {
                    Outcome::Success
                });
        outcome.duration_ms = Some(duration_ms);
        outcome.to = Some(Revision::sha(&plan_summary.revision));
        if let Some(report) = report {
            let count = |a| report.count(a) as u64;
            let counts = ObjectsChanged {
                created: count(Action::Created),
                updated: count(Action::Configured),
                deleted: count(Action::Pruned),
                unchanged: count(Action::Unchanged),
                ..ObjectsChanged::default()
            };
            outcome.objects = Some(counts);
        }
        if let Some(message) = failure {
            outcome.message = Some(message);
        }
        self.sink.finish_operation(operation, outcome)?;
        Ok(())
    }
}

/// `sha256:<hex>` of the desired objects, in apply order.
fn digest(plan: &Plan) -> String {
    let mut hasher = Sha256::new();
    for o in &plan.objects {
        hasher.update(serde_json::to_vec(&*o.object.manifest).unwrap_or_default());
        hasher.update(b"\n");
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}
