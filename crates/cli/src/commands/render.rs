//! `tidegate render`: print what an environment renders to.

use crate::{
    args::{Global, Output, RenderArgs},
    output::Style,
    workspace::Workspace,
};
use anyhow::bail;
use std::{io::Write, process::ExitCode};
use tidegate_source::{LoadError, desired::short};

/// Prints the rendered objects; exit 1 when the input has problems.
pub fn run(global: &Global, args: &RenderArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let ws = Workspace::open(global)?;
    let desired = match ws.load(&args.env) {
        Ok(d) => d,
        Err(LoadError::Invalid(problems)) => {
            style.print_diagnostics(&problems);
            return Ok(ExitCode::from(1));
        }
        Err(LoadError::Source(e)) => return Err(e.into()),
    };
    let env = &desired.environment;
    if let Some(c) = &args.cluster
        && env.cluster(c).is_none()
    {
        let known: Vec<&str> = env.spec.clusters.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "environment {} has no cluster {c:?} (clusters: {})",
            args.env,
            known.join(", ")
        );
    }
    if let Some(a) = &args.app
        && env.app(a).is_none()
    {
        let known: Vec<&str> = env.spec.apps.iter().map(|a| a.name.as_str()).collect();
        bail!(
            "environment {} has no app {a:?} (apps: {})",
            args.env,
            known.join(", ")
        );
    }
    let mut rendered = match tidegate_render::render_environment(
        env,
        &desired.env_file,
        &desired.commit.sha,
        &desired.apps,
    ) {
        Ok(r) => r,
        Err(problems) => {
            style.print_diagnostics(&problems);
            return Ok(ExitCode::from(1));
        }
    };
    rendered
        .clusters
        .retain(|c| args.cluster.as_ref().is_none_or(|want| *want == c.cluster));
    for cluster in &mut rendered.clusters {
        cluster
            .apps
            .retain(|a| args.app.as_ref().is_none_or(|want| *want == a.app));
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &rendered)?;
            writeln!(out)?;
        }
        Output::Yaml => {
            writeln!(
                out,
                "# Environment: {} at {}",
                rendered.environment,
                short(&rendered.commit)
            )?;
            for cluster in &rendered.clusters {
                for app in &cluster.apps {
                    for object in &app.objects {
                        writeln!(out, "---")?;
                        writeln!(
                            out,
                            "# Cluster: {}, app: {}, source: {}",
                            cluster.cluster, app.app, object.provenance
                        )?;
                        out.write_all(serde_saphyr::to_string(&object.manifest)?.as_bytes())?;
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
