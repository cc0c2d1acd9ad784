//! Kinds without a dedicated rule: built-in kinds of the Kubernetes API
//! and custom resources, by the conventions most controllers follow
//! (kstatus' `Ready` / `Reconciling` / `Stalled`, `metav1.Condition`
//! reasons, `status.observedGeneration`, `status.phase`).
//!
//! The order is the crate documentation's table, first match wins.

use crate::context::Context;
use crate::field::{Condition, array, bool_at, conditions_in, get, int, str_at};
use crate::members;
use crate::reasons::{self, Reading};
use crate::replicas;
use crate::status::{Health, HealthStatus};
use jiff::Timestamp;
use serde_json::Value;

/// API groups served by the Kubernetes API server itself. Their kinds
/// either have a dedicated rule or are written whole by the API server (a
/// ConfigMap has no status to wait for).
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Condition types whose `True` says the object failed (besides any type
/// named with a failure word, e.g. `InstallPlanFailed`).
/// (`Fallback`: KEDA scales to fallback replicas because triggers fail.)
const FAILED_TYPES: &[&str] = &[
    "Stalled", "Failed", "Failure", "Error", "Degraded", "Fallback",
];

/// Condition types whose `True` says work is under way.
const IN_PROGRESS_TYPES: &[&str] = &["Reconciling", "Progressing", "Issuing"];

/// Condition types whose `True` says the object was stopped on purpose.
const SUSPENDED_TYPES: &[&str] = &["Paused", "Suspended", "Hibernated"];

/// Condition types that summarise the object, best first.
const SUMMARY_TYPES: &[&str] = &[
    "Ready",
    "Available",
    "Succeeded",
    "Healthy",
    "Complete",
    "Completed",
];

/// Status fields that hold a phase, in the order they are read.
const PHASE_FIELDS: &[&str] = &[
    "phase",
    "state",
    "status",
    "currentState",
    "currentPhase",
    "printableStatus",
    "health",
    "compliant",
    "overallStatus",
    "updateStatus",
    "stageStatus",
    "certificateStatus",
    "lastOperationStatus",
];

/// Status fields whose non-empty value is a failure report.
const FAILURE_FIELDS: &[&str] = &[
    "failureReason",
    "failureMessage",
    "errorMessage",
    "errMsg",
    "errorDescription",
    "error",
];

/// Kind name endings of run-to-completion kinds: `Running` is still at work.
const RUN_TO_COMPLETION: &[&str] = &[
    "Run",
    "Job",
    "Experiment",
    "Backup",
    "Restore",
    "Task",
    "Workflow",
    "Migration",
    "Build",
];

/// True for the API groups of the Kubernetes API server.
pub(crate) fn is_built_in_group(group: &str) -> bool {
    BUILT_IN_GROUPS.contains(&group)
}

/// Any other kind: see the crate documentation's table.
pub(crate) fn standard(group: &str, obj: &Value, ctx: &Context) -> Health {
    let built_in = is_built_in_group(group);
    if !built_in && let Some(h) = suspended(obj) {
        return h;
    }
    let status = match obj.get("status") {
        Some(Value::Object(map)) if !map.is_empty() => &obj["status"],
        _ => return no_status(obj, built_in, ctx),
    };
    let wanted = int(obj, &["metadata", "generation"]);
    if let (Some(wanted), Some(observed)) = (wanted, int(status, &["observedGeneration"]))
        && observed < wanted
    {
        return Health::progressing(format!(
            "Waiting for the controller to observe generation {wanted} (observed {observed})"
        ));
    }
    let all = every_condition(status);
    let signals = Signals::read(obj, status, &all, wanted);
    if let Some(h) = signals.verdict() {
        return h;
    }
    if built_in {
        return Health::healthy("No failed, in-progress or Ready condition to assess");
    }
    Health::progressing(
        "Waiting for a Ready condition or a known phase: the status does not say it is ready yet",
    )
}

/// What the status says, gathered before deciding (the order of the
/// table in the crate documentation is applied in [`Signals::verdict`]).
#[derive(Default)]
struct Signals {
    /// Failed for sure: a failure condition, reason, phase or message.
    failed: Option<Health>,
    /// Stopped on purpose.
    suspended: Option<Health>,
    /// Still at work.
    in_progress: Option<Health>,
    /// A summary condition False for a reason that is neither failure nor
    /// progress (`NotReady`): Degraded unless something says it is at work.
    not_ready: Option<Health>,
    /// A summary condition, phase or positive conditions say it is done.
    healthy: Option<Health>,
}

impl Signals {
    fn read(obj: &Value, status: &Value, all: &[Condition<'_>], wanted: Option<i64>) -> Signals {
        let mut s = Signals::default();
        for field in FAILURE_FIELDS {
            let message = match status.get(field) {
                Some(Value::String(m)) => m.as_str(),
                Some(Value::Object(e)) => e.get("message").and_then(Value::as_str).unwrap_or(""),
                _ => "",
            };
            if !message.is_empty() {
                s.failed
                    .get_or_insert_with(|| Health::degraded(format!("status.{field}: {message}")));
            }
        }
        s.read_flags(status);
        for c in all {
            s.read_condition(c, wanted);
        }
        if let Some(c) = SUMMARY_TYPES
            .iter()
            .find_map(|t| all.iter().find(|c| c.type_ == *t && !c.status.is_empty()))
        {
            s.read_summary(c);
        } else {
            // Without a summary, the conditions that are good news when
            // True (any type that does not name a failure or work in
            // progress) must all be True.
            let positive: Vec<&Condition<'_>> = all
                .iter()
                .filter(|c| !negative_type(c.type_) && !activity_type(c.type_))
                .filter(|c| !SUSPENDED_TYPES.contains(&c.type_))
                .collect();
            let working = positive.iter().find(|c| {
                c.is_true()
                    && reasons::reason(c.message) == Reading::InProgress
                    && !done_reason(c.reason)
                    && !reasons::says_done(c.message)
            });
            if let Some(c) = working.filter(|_| positive.iter().all(|c| c.is_true())) {
                // All True, but a message says the work goes on (KEDA's
                // `Running=True: Creating HorizontalPodAutoscaler Object`).
                s.in_progress
                    .get_or_insert_with(|| Health::progressing(c.describe()));
            } else if !positive.is_empty() && positive.iter().all(|c| c.is_true()) {
                s.healthy = Some(Health::healthy(
                    positive
                        .iter()
                        .map(|c| c.describe())
                        .collect::<Vec<_>>()
                        .join("; "),
                ));
            } else if let Some(c) = positive
                .iter()
                .find(|c| c.is_false() && reasons::reason(c.reason) == Reading::InProgress)
            {
                s.in_progress
                    .get_or_insert_with(|| Health::progressing(c.describe()));
            } else if let Some(c) = positive.iter().find(|c| c.is_false()) {
                s.not_ready.get_or_insert_with(|| not_ready(c));
            } else if let Some(c) = positive.iter().find(|c| !c.is_true()) {
                s.in_progress
                    .get_or_insert_with(|| Health::progressing(c.describe()));
            } else if all.iter().any(|c| !negative_type(c.type_) || c.is_false()) {
                s.healthy = Some(Health::healthy("No condition reports a failure"));
            }
        }
        s.read_phase(obj, status);
        s.read_reported_states(status);
        s.read_replicas(obj, status);
        if let Some(h) = members::read(status) {
            s.put(h);
        }
        s.read_schedule(status);
        s
    }

    /// Puts a verdict in the slot of its status, unless one is there.
    fn put(&mut self, h: Health) {
        let slot = match h.status {
            HealthStatus::Degraded | HealthStatus::Missing => &mut self.failed,
            HealthStatus::Suspended => &mut self.suspended,
            HealthStatus::Progressing => &mut self.in_progress,
            HealthStatus::Unknown => &mut self.not_ready,
            HealthStatus::Healthy => &mut self.healthy,
        };
        slot.get_or_insert(h);
    }

    /// Schedules (CronJob-like kinds): `status.active` jobs running →
    /// Progressing; a `lastScheduleTime` and nothing running → Healthy.
    fn read_schedule(&mut self, status: &Value) {
        let last = str_at(status, &["lastScheduleTime"]);
        let active = array(status, &["active"]).len();
        if active > 0 && (!last.is_empty() || status.get("lastScheduleTime").is_some()) {
            self.put(Health::progressing(format!(
                "{active} scheduled run(s) active"
            )));
        } else if !last.is_empty() {
            self.put(Health::healthy(format!("Last scheduled at {last}")));
        }
    }

    /// Solo.io's `status.statuses.<namespace>.state` (or a numeric
    /// `status.state` beside `reportedBy`): Accepted, Rejected, Warning.
    fn read_reported_states(&mut self, status: &Value) {
        let mut states: Vec<(String, &str)> = Vec::new();
        if let Some(Value::Object(by_ns)) = status.get("statuses") {
            for s in by_ns.values() {
                states.push((str_at(s, &["state"]).to_string(), str_at(s, &["reason"])));
            }
        }
        if status.get("reportedBy").is_some()
            && let Some(n) = int(status, &["state"])
        {
            let name = match n {
                0 => "Pending",
                1 => "Accepted",
                2 => "Rejected",
                3 => "Warning",
                _ => "",
            };
            states.push((name.to_string(), str_at(status, &["reason"])));
        }
        for (state, reason) in states {
            let message = format!("{state}: {reason}");
            match state.as_str() {
                "Accepted" => {
                    self.healthy.get_or_insert_with(|| Health::healthy(message));
                }
                "Rejected" | "Warning" => {
                    self.failed.get_or_insert_with(|| Health::degraded(message));
                }
                "Pending" => {
                    self.in_progress
                        .get_or_insert_with(|| Health::progressing(message));
                }
                _ => {}
            }
        }
    }

    /// First match wins: failed, suspended, in progress, not ready, healthy.
    fn verdict(self) -> Option<Health> {
        self.failed
            .or(self.suspended)
            .or(self.in_progress)
            .or(self.not_ready)
            .or(self.healthy)
    }

    fn read_condition(&mut self, c: &Condition<'_>, wanted: Option<i64>) {
        // A failure-named type whose reason says all is well
        // (`FailedScale=True (MinimumReplicasAvailable)`) is judged by the reason.
        let negative = negative_type(c.type_) && !(c.is_true() && done_reason(c.reason));
        if c.is_true() && negative {
            self.failed
                .get_or_insert_with(|| Health::degraded(c.describe()));
        } else if c.is_true() && SUSPENDED_TYPES.contains(&c.type_) {
            self.suspended
                .get_or_insert_with(|| Health::suspended(c.describe()));
        } else if in_progress(c) {
            self.in_progress
                .get_or_insert_with(|| Health::progressing(c.describe()));
        } else if c.is_false()
            && activity_type(c.type_)
            && reasons::reason(c.reason) == Reading::Failed
        {
            // The activity stopped because it failed (`Progressing=False
            // (ProgressDeadlineExceeded)`, as a Deployment's).
            self.failed
                .get_or_insert_with(|| Health::degraded(c.describe()));
        } else if c.is_false() && !negative && !IN_PROGRESS_TYPES.contains(&c.type_) {
            if reasons::is_suspension(c.reason) {
                self.suspended
                    .get_or_insert_with(|| Health::suspended(c.describe()));
            } else if c.severity != "Info" && reasons::reason(c.reason) == Reading::Failed {
                self.failed
                    .get_or_insert_with(|| Health::degraded(c.describe()));
            }
        }
        if let (Some(wanted), Some(observed)) = (wanted, c.observed_generation)
            && observed < wanted
        {
            self.in_progress.get_or_insert_with(|| {
                Health::progressing(format!(
                    "Waiting for the controller to observe generation {wanted} ({} condition is for generation {observed})",
                    c.type_
                ))
            });
        }
    }

    /// `Ready` (or another summary condition).
    fn read_summary(&mut self, c: &Condition<'_>) {
        match c.status {
            "True" if reasons::reason(c.reason) == Reading::Failed => {
                self.failed
                    .get_or_insert_with(|| Health::degraded(c.describe()));
            }
            "True" => self.healthy = Some(Health::healthy(c.describe())),
            "False" if c.severity == "Info" => {
                // Cluster API marks conditions that are only informational.
                self.in_progress
                    .get_or_insert_with(|| Health::progressing(c.describe()));
            }
            "False" if reasons::is_suspension(c.reason) => {
                self.suspended
                    .get_or_insert_with(|| Health::suspended(c.describe()));
            }
            "False" => match reasons::reason(c.reason) {
                Reading::Failed => {
                    self.failed
                        .get_or_insert_with(|| Health::degraded(c.describe()));
                }
                Reading::InProgress if reasons::message_reports_failure(c.message) => {
                    self.failed
                        .get_or_insert_with(|| Health::degraded(c.describe()));
                }
                Reading::InProgress => {
                    self.in_progress
                        .get_or_insert_with(|| Health::progressing(c.describe()));
                }
                Reading::Other => self.not_ready = Some(not_ready(c)),
            },
            // The controller could not tell because something failed
            // (`Ready=Unknown (PartialTriggerError)`); other Unknown reasons,
            // like Knative's `RevisionMissing` while it creates one, wait.
            // Not `True`/`False`/`Unknown`: the Prometheus operator's
            // `Available=Degraded (SomePodsNotReady)` waits for its pods,
            // anything else (`Ready=randomstatus`) is a broken status.
            other
                if !other.is_empty()
                    && other != "Unknown"
                    && reasons::waits_for_workload(c.reason) =>
            {
                self.in_progress
                    .get_or_insert_with(|| Health::progressing(c.describe()));
            }
            other if !other.is_empty() && other != "Unknown" => {
                self.failed.get_or_insert_with(|| {
                    Health::degraded(format!("{}: not a condition status", c.describe()))
                });
            }
            _ if reasons::message_reports_failure(c.reason) => {
                self.failed
                    .get_or_insert_with(|| Health::degraded(c.describe()));
            }
            _ => {
                self.in_progress
                    .get_or_insert_with(|| Health::progressing(c.describe()));
            }
        }
    }

    /// Boolean `status.healthy`, `status.ready`, `status.readyToUse`,
    /// `status.pass`/`passed` (an analysis' verdict), and booleans named for a
    /// failure (`NoMatchingInstances: true`, `invalidSpec: true`).
    fn read_flags(&mut self, status: &Value) {
        for field in ["pass", "passed"] {
            match status.get(field).and_then(Value::as_bool) {
                Some(false) => {
                    self.failed.get_or_insert_with(|| {
                        Health::degraded(format!("status.{field} is false"))
                    });
                }
                Some(true) => {
                    self.healthy
                        .get_or_insert_with(|| Health::healthy(format!("status.{field} is true")));
                }
                None => {}
            }
        }
        if let Value::Object(map) = status {
            for (key, value) in map {
                // `NoMatchingInstances`, `invalidSpec`; not `NoErrors`.
                let failure_named = match key.strip_prefix("No") {
                    Some(rest) if rest.starts_with(char::is_uppercase) => {
                        reasons::reason(rest) != Reading::Failed
                    }
                    _ => reasons::reason(key) == Reading::Failed,
                };
                if failure_named && value.as_bool() == Some(true) {
                    self.failed
                        .get_or_insert_with(|| Health::degraded(format!("status.{key} is true")));
                }
            }
        }
        match status.get("healthy").and_then(Value::as_bool) {
            Some(true) => self.healthy = Some(Health::healthy("status.healthy is true")),
            Some(false) => {
                self.failed
                    .get_or_insert_with(|| Health::degraded("status.healthy is false"));
            }
            None => {}
        }
        for field in ["ready", "readyToUse"] {
            match status.get(field).and_then(Value::as_bool) {
                Some(true) => {
                    self.healthy
                        .get_or_insert_with(|| Health::healthy(format!("status.{field} is true")));
                }
                Some(false) => {
                    self.in_progress.get_or_insert_with(|| {
                        Health::progressing(format!("status.{field} is false"))
                    });
                }
                None => {}
            }
        }
    }

    /// `status.phase` and the like.
    fn read_phase(&mut self, obj: &Value, status: &Value) {
        // The known fields first, then any `*Status` / `*State` / `*Phase`
        // string, or the `state` / `status` / `phase` of such an object
        // (`applicationState.state`, `ansibleJobResult.status`).
        // (field, inner field, value): formatted into a message on a match only.
        let mut fields: Vec<(&str, &str, &str)> = PHASE_FIELDS
            .iter()
            .map(|f| (*f, "", str_at(status, &[f])))
            .collect();
        if let Value::Object(map) = status {
            for (key, value) in map {
                let lower = key.to_ascii_lowercase();
                let named = ["status", "state", "phase", "result"]
                    .iter()
                    .any(|end| lower.ends_with(end));
                // The `health` of any object (Rook's `status.ceph.health`).
                if let Value::Object(_) = value
                    && key != "health"
                {
                    fields.push((key, "health", str_at(value, &["health"])));
                }
                if !named || PHASE_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                match value {
                    Value::String(v) => fields.push((key, "", v)),
                    Value::Object(inner_map) => {
                        // `state` / `status` / `phase`, or any `*Status` /
                        // `*State` inside (`modelStatus.transitionStatus`).
                        for (inner, v) in inner_map {
                            let lower = inner.to_ascii_lowercase();
                            let phase_like = ["state", "status", "phase"].contains(&inner.as_str())
                                || lower.ends_with("status")
                                || lower.ends_with("state");
                            if let (true, Some(v)) = (phase_like, v.as_str()) {
                                fields.push((key, inner, v));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        for (key, inner, value) in fields {
            let Some(mut health) = reasons::phase(value) else {
                continue;
            };
            if health == HealthStatus::Healthy
                && value.eq_ignore_ascii_case("running")
                && run_to_completion(str_at(obj, &["kind"]))
            {
                health = HealthStatus::Progressing;
            }
            let field = if inner.is_empty() {
                format!("status.{key}")
            } else {
                format!("status.{key}.{inner}")
            };
            let message = match str_at(status, &["message"]) {
                "" => format!("{field} is {value}"),
                m => format!("{field} is {value}: {m}"),
            };
            let slot = match health {
                HealthStatus::Degraded | HealthStatus::Missing => &mut self.failed,
                HealthStatus::Suspended => &mut self.suspended,
                HealthStatus::Progressing => &mut self.in_progress,
                HealthStatus::Unknown => &mut self.not_ready,
                HealthStatus::Healthy => &mut self.healthy,
            };
            slot.get_or_insert_with(|| Health::new(health, message));
        }
        if let Some(h) = from_nested_health(status) {
            let slot = match h.status {
                HealthStatus::Degraded | HealthStatus::Missing => &mut self.failed,
                HealthStatus::Suspended => &mut self.suspended,
                HealthStatus::Progressing | HealthStatus::Unknown => &mut self.in_progress,
                HealthStatus::Healthy => &mut self.healthy,
            };
            slot.get_or_insert(h);
        }
    }

    /// Replica counts, as the `apps` workloads (see `replicas`).
    fn read_replicas(&mut self, obj: &Value, status: &Value) {
        let Some(h) = replicas::read(obj, status) else {
            return;
        };
        let slot = match h.status {
            HealthStatus::Suspended => &mut self.suspended,
            HealthStatus::Healthy => &mut self.healthy,
            _ => &mut self.in_progress,
        };
        slot.get_or_insert(h);
    }
}

/// `status.conditions` plus the conditions of `status.parents[]`,
/// `status.ancestors[]` and `status.listeners[]` (Gateway API) and
/// `status.ingress[]` (an OpenShift Route's routers: `Admitted`), and
/// `status.conditionedStatus.conditions` (early Crossplane).
fn every_condition(status: &Value) -> Vec<Condition<'_>> {
    let mut all: Vec<Condition<'_>> = conditions_in(array(status, &["conditions"])).collect();
    for nested in ["parents", "ancestors", "listeners", "ingress"] {
        for item in array(status, &[nested]) {
            all.extend(conditions_in(array(item, &["conditions"])));
        }
    }
    // Crossplane's early (v1alpha) resources: `status.conditionedStatus.conditions`.
    all.extend(conditions_in(array(
        status,
        &["conditionedStatus", "conditions"],
    )));
    all
}

/// A type naming an activity (`Reconciling`, `Rolling`,
/// `platform.confluent.io/garbage-collecting`): `True` while the controller
/// is at it, `False` when idle — neither is a verdict on readiness.
fn activity_type(type_: &str) -> bool {
    let name = type_.rsplit('/').next().unwrap_or(type_);
    IN_PROGRESS_TYPES.contains(&name)
        || (name.to_ascii_lowercase().ends_with("ing")
            && !["Running", "Serving", "Working"].contains(&name))
}

/// A type whose `True` is bad news: `Stalled`, `Failed`, or named with a
/// failure word (`InstallPlanFailed`, `CatalogSourcesUnhealthy`).
fn negative_type(type_: &str) -> bool {
    FAILED_TYPES.contains(&type_)
        || type_.starts_with("Not")
        || type_.starts_with("Partially")
        || (reasons::reason(type_) == Reading::Failed && !type_.ends_with("Ready"))
}

fn run_to_completion(kind: &str) -> bool {
    RUN_TO_COMPLETION.iter().any(|end| kind.ends_with(end))
}

/// `spec.suspend` or `spec.paused` set to true: stopped on purpose.
fn suspended(obj: &Value) -> Option<Health> {
    for path in [
        &["spec", "suspend"][..],
        &["spec", "paused"],
        &["spec", "updateStrategy", "paused"],
        &["spec", "updateStrategy", "rollingUpdate", "paused"],
    ] {
        if bool_at(obj, path) {
            return Some(Health::suspended(format!("{} is true", path.join("."))));
        }
    }
    // `spec.enabled: false`: switched off on purpose.
    if get(obj, &["spec", "enabled"]).and_then(Value::as_bool) == Some(false) {
        return Some(Health::suspended("spec.enabled is false"));
    }
    // Controllers paused by annotation (`autoscaling.keda.sh/paused: "true"`).
    if let Some(Value::Object(annotations)) = get(obj, &["metadata", "annotations"]) {
        for (key, value) in annotations {
            let value = value.as_str().unwrap_or("");
            // `*/paused: "true"` (KEDA, Crossplane), `*/hibernation: "on"`
            // and `*/reconciliationLoop: "disabled"` (CloudNativePG).
            let stopped = (key.ends_with("/paused") && value == "true")
                || (key.ends_with("/hibernation") && matches!(value, "on" | "true"))
                || (key.ends_with("/reconciliationLoop") && value == "disabled");
            if stopped {
                return Some(Health::suspended(format!(
                    "annotation {key} is \"{value}\""
                )));
            }
        }
    }
    None
}

/// An object without status: see the crate documentation's table.
fn no_status(obj: &Value, built_in: bool, ctx: &Context) -> Health {
    if built_in {
        return Health::healthy("No status to assess");
    }
    if ctx.status_subresource == Some(false) {
        return Health::healthy(
            "The kind has no status subresource: a configuration object, nothing to wait for",
        );
    }
    let created = get(obj, &["metadata", "creationTimestamp"])
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok());
    if let (Some(now), Some(created)) = (ctx.now, created) {
        let age = now.as_second().saturating_sub(created.as_second());
        let grace = i64::try_from(ctx.status_grace.as_secs()).unwrap_or(i64::MAX);
        if age > grace {
            return Health::unknown(format!(
                "No status {age}s after creation: is the controller of this kind installed and running?"
            ));
        }
    }
    Health::progressing("Waiting for the controller to report a status")
}

/// `Reconciling=True`, `Progressing=True` (unless its reason says the
/// work is done, as a Deployment's `NewReplicaSetAvailable`), `Issuing=True`.
fn in_progress(c: &Condition<'_>) -> bool {
    let name = c.type_.rsplit('/').next().unwrap_or(c.type_);
    let working_type = IN_PROGRESS_TYPES.contains(&name)
        || (activity_type(name) && reasons::reason(name) == Reading::InProgress);
    working_type
        && (c.is_true() || c.status == "Unknown")
        && reasons::reason(c.reason) != Reading::Failed
        && !done_reason(c.reason)
}

/// Reasons of a `Progressing=True` condition that say the work is done.
/// Never a negated one
/// (`MinimumReplicasUnavailable`, `NotReady`) nor one naming a failure.
fn done_reason(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    let negated = lower.contains("not")
        || lower.starts_with("no")
        || ["unavailable", "unready", "incomplete", "unsuccess"]
            .iter()
            .any(|n| lower.contains(n));
    !negated
        && reasons::reason(reason) != Reading::Failed
        && ["available", "complete", "succeeded", "success", "ready"]
            .iter()
            .any(|w| lower.contains(w))
}

/// A summary (or good-news) condition `False` whose reason is neither a
/// failure nor work in progress: Degraded when it reads as a verdict on the
/// object (`NotReady`, `Error: ...`); Progressing when it says nothing yet
/// (no reason, no message), when its message says the work goes on
/// (`Waiting for more replicas`), or when the reason says the pods or
/// workload it runs are not ready yet (`StatefulSetNotReady`,
/// `NotAllPodsReady`, `NoEndpointsAvailable`): those come up on their own,
/// and the progress deadline turns a lasting one into a failure.
fn not_ready(c: &Condition<'_>) -> Health {
    let waiting = (c.reason.is_empty() && c.message.is_empty())
        || (!reasons::message_reports_failure(c.message)
            && (reasons::reason(c.message) == Reading::InProgress
                || reasons::waits_for_workload(c.reason)));
    if waiting {
        Health::progressing(c.describe())
    } else {
        Health::degraded(c.describe())
    }
}

/// `status.health.status` holding a health name, as Argo CD Applications do.
fn from_nested_health(status: &Value) -> Option<Health> {
    let value = get(status, &["health", "status"])?.clone();
    let health: HealthStatus = serde_json::from_value(value).ok()?;
    let message = match str_at(status, &["health", "message"]) {
        "" => format!("status.health.status is {health}"),
        m => m.to_string(),
    };
    Some(Health::new(health, message))
}
