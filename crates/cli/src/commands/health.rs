//! `tidegate health -f FILE`: the health of every object in a file, by the
//! built-in rules or an environment's custom checks — for writing and
//! testing checks against saved objects (`kubectl get -o yaml`).

use crate::{
    args::{Global, HealthArgs, TextOrJson},
    output::Style,
};
use anyhow::Context as _;
use serde::Serialize;
use std::process::ExitCode;
use std::sync::Arc;
use tidegate_health::{CheckSource, Health, HealthChecks, HealthStatus};
use tidegate_source::LoadError;

/// One object's verdict.
#[derive(Debug, Serialize)]
struct Row {
    object: String,
    health: Health,
    check: CheckSource,
}

/// Exit 0 when every object is Healthy or Suspended, 1 otherwise (or when
/// the environment's checks are invalid).
pub fn run(global: &Global, args: &HealthArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let file = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {file}"))?;
    let documents = match tidegate_render::yaml::parse_documents(&bytes, &file) {
        Ok(d) => d,
        Err(problem) => {
            style.print_diagnostics(&problem.into());
            return Ok(ExitCode::from(1));
        }
    };
    let checks = match &args.env {
        None => Arc::new(HealthChecks::new()),
        Some(env) => {
            let desired = match super::fleet::workspace(global)?.load(env) {
                Ok(d) => d,
                Err(LoadError::Invalid(problems)) => {
                    style.print_diagnostics(&problems);
                    return Ok(ExitCode::from(1));
                }
                Err(LoadError::Source(e)) => return Err(e.into()),
            };
            match tidegate_app::health_checks(&desired) {
                Ok(c) => c,
                Err(problems) => {
                    style.print_diagnostics(&problems);
                    return Ok(ExitCode::from(1));
                }
            }
        }
    };
    // The time is left unknown: a custom resource without status counts
    // as waiting however old the saved object is.
    let context = checks.context(args.provider.as_deref().unwrap_or("kubeconfig"), None);
    let mut rows = Vec::new();
    for doc in &documents {
        let obj = doc.root.to_json();
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = obj["kind"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or("?");
        let object = match obj["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        let verdict = checks.assess(&context, group, kind, Some(&obj));
        rows.push(Row {
            object,
            health: verdict.health,
            check: verdict.check,
        });
    }
    match args.output {
        TextOrJson::Json => outln!("{}", serde_json::to_string_pretty(&rows)?),
        TextOrJson::Text => {
            for r in &rows {
                outln!("{}: {}  [{}]", r.object, r.health, r.check);
            }
        }
    }
    let all_good = rows.iter().all(|r| {
        matches!(
            r.health.status,
            HealthStatus::Healthy | HealthStatus::Suspended
        )
    });
    Ok(if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
