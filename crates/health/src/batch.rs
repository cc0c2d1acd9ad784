//! `batch`: Job and CronJob.

use crate::field::{bool_at, conditions, get, int, int_or, str_at};
use crate::status::Health;
use serde_json::Value;

/// Job: see the crate documentation's table.
pub(crate) fn job(obj: &Value) -> Health {
    let mut failed = None;
    let mut complete = None;
    let mut failure_target = None;
    let mut success_criteria_met = None;
    let mut suspended = None;
    for c in conditions(obj).filter(|c| c.is_true()) {
        match c.type_ {
            "Failed" => failed = Some(c),
            "Complete" => complete = Some(c),
            "FailureTarget" => failure_target = Some(c),
            "SuccessCriteriaMet" => success_criteria_met = Some(c),
            "Suspended" => suspended = Some(c),
            _ => {}
        }
    }
    if let Some(c) = failed {
        return Health::degraded(format!("Job failed: {}", c.describe()));
    }
    if let Some(c) = complete {
        return Health::healthy(format!("Job completed: {}", c.message_or_reason()));
    }
    if let Some(c) = suspended {
        return Health::suspended(format!("Job is suspended: {}", c.message_or_reason()));
    }
    if bool_at(obj, &["spec", "suspend"]) {
        return Health::suspended("Job is suspended (spec.suspend)");
    }
    // Since Kubernetes 1.31 the controller writes these interim conditions,
    // then terminates the remaining pods, then writes Failed / Complete.
    if let Some(c) = failure_target {
        return Health::progressing(format!(
            "Job is failing, waiting for its pods to terminate: {}",
            c.describe()
        ));
    }
    if let Some(c) = success_criteria_met {
        return Health::progressing(format!(
            "Job succeeded, waiting for its pods to terminate: {}",
            c.describe()
        ));
    }
    let active = int_or(obj, &["status", "active"], 0);
    let succeeded = int_or(obj, &["status", "succeeded"], 0);
    let failed_pods = int_or(obj, &["status", "failed"], 0);
    let completions = int(obj, &["spec", "completions"])
        .map(|n| format!(" of {n}"))
        .unwrap_or_default();
    Health::progressing(format!(
        "Job is running: {active} active, {succeeded}{completions} succeeded, {failed_pods} failed"
    ))
}

/// CronJob: see the crate documentation's table. Whether the last Job
/// failed is the Job's health, not the CronJob's.
pub(crate) fn cron_job(obj: &Value) -> Health {
    if bool_at(obj, &["spec", "suspend"]) {
        return Health::suspended("CronJob is suspended");
    }
    let schedule = str_at(obj, &["spec", "schedule"]);
    let active = get(obj, &["status", "active"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    match str_at(obj, &["status", "lastScheduleTime"]) {
        "" => Health::healthy(format!(
            "Schedule {schedule:?}: no Job has been scheduled yet"
        )),
        last => Health::healthy(format!(
            "Schedule {schedule:?}: last scheduled at {last}, {active} active Jobs"
        )),
    }
}
