//! Scaling the idle colour of a blue-green app down after a switch
//! (`tidegate switch --scale-down-after DURATION`), as a Git change: the
//! colour gets `replicas: 0` in the environment file, that is committed
//! (through `source`) and rolled out like any other revision — waves,
//! limits, gates, windows, lock — and audited.

use crate::{Driver, DriverOptions, Outcome, Revisions, RolloutError, RolloutReport};
use std::path::Path;
use tidegate_audit::{Action as AuditAction, Entry, Outcome as AuditOutcome, Revision};
use tidegate_cluster::ClientFactory;
use tidegate_core::Environment;
use tidegate_sync::Audit;

/// What to scale down.
pub struct ScaleDownRequest<'a> {
    /// The configuration repository's directory (the commit goes there).
    pub repo_dir: &'a Path,
    /// The environment file, relative to the repository root.
    pub env_file: &'a str,
    /// The environment's name.
    pub env: &'a str,
    /// The blue-green app.
    pub app: &'a str,
    /// The colour that serves traffic now (the switch's target).
    pub active: &'a str,
    /// The idle colour to scale down.
    pub idle: &'a str,
    /// Why (commit message and audit trail).
    pub reason: &'a str,
    /// Push the commit to `origin`.
    pub push: bool,
    /// Commit author: name and email.
    pub author: (&'a str, &'a str),
}

/// How a scale-down ended.
#[derive(Debug)]
pub enum ScaleDownOutcome {
    /// The idle colour runs no replica anywhere.
    ScaledDown {
        /// The commit that set `replicas: 0`.
        commit: String,
        /// Its rollout.
        report: RolloutReport,
    },
    /// The rollout of the commit failed (and was rolled back as configured).
    Failed {
        /// The commit that set `replicas: 0`.
        commit: String,
        /// Its rollout.
        report: RolloutReport,
    },
    /// Nothing was committed: Git no longer says what the switch left.
    Skipped {
        /// Why.
        why: String,
    },
}

/// Sets `replicas: N` of colour `color` of the blue-green entry starting at
/// `line` (1-based) in the environment file's text, keeping everything else:
/// an existing `replicas:` is replaced, otherwise one is added after the
/// colour's `deployment:`. `None` when the colour is not written in block
/// style under `colors:` of that entry.
pub fn set_color_replicas(text: &str, line: u64, color: &str, replicas: u32) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let start = usize::try_from(line).ok()?.checked_sub(1)?;
    let end = (start + 1..lines.len())
        .find(|&i| lines[i].trim_start().starts_with("- app:"))
        .unwrap_or(lines.len());
    let colors = (start..end).find(|&i| lines[i].trim() == "colors:")?;
    let colors_indent = indent(&lines[colors]);
    let block_end = |from: usize, level: usize| {
        (from + 1..end)
            .find(|&i| !lines[i].trim().is_empty() && indent(&lines[i]) <= level)
            .unwrap_or(end)
    };
    let colors_end = block_end(colors, colors_indent);
    let key = format!("{color}:");
    let at = (colors + 1..colors_end).find(|&i| lines[i].trim() == key)?;
    let color_indent = indent(&lines[at]);
    let color_end = block_end(at, color_indent);
    let field = |name: &str| {
        (at + 1..color_end).find(|&i| {
            lines[i]
                .trim_start()
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(':'))
        })
    };
    if let Some(i) = field("replicas") {
        let pad = " ".repeat(indent(&lines[i]));
        lines[i] = format!("{pad}replicas: {replicas}");
    } else {
        let i = field("deployment")?;
        let pad = " ".repeat(indent(&lines[i]));
        lines.insert(i + 1, format!("{pad}replicas: {replicas}"));
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    Some(out)
}

/// Commits `replicas: 0` for the idle colour and rolls the commit out.
/// Skipped (nothing committed) when the environment at the repository's
/// HEAD no longer has `request.active` as the active colour, or already
/// runs the idle colour at 0 replicas.
pub async fn scale_down<F: ClientFactory>(
    request: &ScaleDownRequest<'_>,
    factory: &F,
    revisions: &dyn Revisions,
    approvals: &crate::switch::ApprovalsFor<'_>,
    audit: Option<Audit>,
    options: DriverOptions,
    progress: &(dyn Fn(&[crate::ClusterLine]) + Sync),
) -> Result<ScaleDownOutcome, RolloutError> {
    let git = RolloutError::Git;
    let summary = |outcome: AuditOutcome, commit: Option<&str>, message: String| {
        let Some(audit) = &audit else {
            return Ok::<(), RolloutError>(());
        };
        let mut e = Entry::new(audit.actor.clone(), AuditAction::Other("scale-down".into()))
            .env(request.env)
            .app(request.app)
            .outcome(outcome)
            .message(message);
        if let Some(commit) = commit {
            e = e.revisions(None, Some(Revision::sha(commit)));
        }
        e.details.insert("color".into(), request.idle.into());
        audit.sink.append(e)?;
        Ok(())
    };
    // What Git says now (someone may have switched back meanwhile).
    let repo = tidegate_source::Repo::open_local(request.repo_dir).map_err(git)?;
    let head = repo.resolve("HEAD").map_err(git)?;
    let text = repo
        .read_file(&head.sha, request.env_file)
        .map_err(git)?
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| RolloutError::NotInHead(request.env_file.to_string()))?;
    let environment = Environment::parse(&text, request.env_file).map_err(RolloutError::Invalid)?;
    let Some(bg) = environment
        .spec
        .blue_green
        .iter()
        .find(|b| b.app == request.app)
    else {
        let why = format!("{} has no blueGreen entry any more", request.app);
        summary(AuditOutcome::Aborted, None, why.clone())?;
        return Ok(ScaleDownOutcome::Skipped { why });
    };
    if bg.active_color != request.active {
        let why = format!(
            "{} serves {} now, not {}: {} is not idle and keeps its replicas",
            request.app, bg.active_color, request.active, request.idle
        );
        summary(AuditOutcome::Aborted, None, why.clone())?;
        return Ok(ScaleDownOutcome::Skipped { why });
    }
    if bg.colors.get(request.idle).and_then(|c| c.replicas) == Some(0) {
        let why = format!("{} is already scaled down in Git", request.idle);
        return Ok(ScaleDownOutcome::Skipped { why });
    }
    let edited = set_color_replicas(&text, bg.line, request.idle, 0).ok_or_else(|| {
        RolloutError::Invalid(
            tidegate_core::Diagnostic::new(format!(
                "blueGreen {}: cannot find `{}:` with its `deployment:` under `colors:`",
                request.app, request.idle
            ))
            .at(request.env_file, bg.line())
            .help("write the colours in block style (`blue:` and `deployment: ...` on lines of their own) to use --scale-down-after")
            .into(),
        )
    })?;
    let commit = tidegate_source::commit_file(
        request.repo_dir,
        request.env_file,
        edited.as_bytes(),
        &format!(
            "Scale down {} {} in {} (idle since the switch to {})\n\n{}",
            request.app, request.idle, request.env, request.active, request.reason
        ),
        request.author,
    )
    .map_err(git)?;
    if request.push {
        tidegate_source::push_current_branch(request.repo_dir, "origin").map_err(git)?;
    }
    let rendering = revisions
        .render(&commit)
        .await
        .map_err(|error| RolloutError::Render {
            revision: commit.clone(),
            error,
        })?;
    let (new_env, rendered) = (&rendering.environment, &rendering.rendered);
    // Its waves' approvals are of this new commit.
    let approvals = approvals(&commit);
    let driver = Driver {
        factory,
        environment: new_env,
        rendered,
        revision: &commit,
        revisions,
        approvals: approvals.as_ref(),
        audit: audit.clone(),
        check: None,
        journal: None,
        options,
    };
    let report = match driver.run(progress).await {
        Ok(report) => report,
        Err(e) => {
            summary(
                AuditOutcome::Failure,
                Some(&commit),
                format!("{} → 0 replicas could not be rolled out: {e}", request.idle),
            )?;
            return Err(e);
        }
    };
    if report.outcome == Outcome::Succeeded {
        summary(
            AuditOutcome::Success,
            Some(&commit),
            format!("{} → 0 replicas: {}", request.idle, request.reason),
        )?;
        Ok(ScaleDownOutcome::ScaledDown { commit, report })
    } else {
        summary(
            AuditOutcome::Failure,
            Some(&commit),
            format!(
                "{} → 0 replicas failed its rollout ({:?})",
                request.idle, report.outcome
            ),
        )?;
        Ok(ScaleDownOutcome::Failed { commit, report })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "spec:\n  blueGreen:\n    - app: a\n      colors:\n        blue:\n          deployment: a-blue # keep\n        green:\n          deployment: a-green\n      activeColor: green\n    - app: b\n      colors:\n        blue:\n          deployment: b-blue\n          replicas: 3\n        green:\n          deployment: b-green\n      activeColor: blue\n";

    #[test]
    fn adds_or_replaces_replicas_of_one_colour_of_one_entry() {
        let out = set_color_replicas(TEXT, 3, "blue", 0).expect("edited");
        assert_eq!(
            out,
            TEXT.replace(
                "          deployment: a-blue # keep\n",
                "          deployment: a-blue # keep\n          replicas: 0\n"
            )
        );
        let out = set_color_replicas(TEXT, 10, "blue", 0).expect("edited");
        assert_eq!(
            out,
            TEXT.replace("          replicas: 3\n", "          replicas: 0\n")
        );
        let parsed_colors = set_color_replicas(TEXT, 10, "green", 0).expect("edited");
        assert!(parsed_colors.contains("deployment: b-green\n          replicas: 0\n"));
    }

    #[test]
    fn flow_style_or_unknown_colours_are_not_edited() {
        let flow = "spec:\n  blueGreen:\n    - app: a\n      colors: {blue: {deployment: x}, green: {deployment: y}}\n";
        assert_eq!(set_color_replicas(flow, 3, "blue", 0), None);
        assert_eq!(set_color_replicas(TEXT, 3, "red", 0), None);
    }
}
