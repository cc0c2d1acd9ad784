//! `tidegate render`: print what an environment renders to.

use super::fleet::Capabilities;
use crate::{
    args::{Global, Output, RenderArgs, Selection},
    output::Style,
};
use std::{io::Write, process::ExitCode};
use tidegate_core::printable::printable;
use tidegate_source::desired::short;

/// Prints the rendered objects; exit 1 when the input has problems.
pub async fn run(global: &Global, args: &RenderArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let selection = Selection {
        env: args.env.clone(),
        cluster: args.cluster.clone(),
        app: args.app.clone(),
        kubeconfig: None,
    };
    let Some(loaded) =
        super::fleet::load(global, &selection, Capabilities::Declared, style).await?
    else {
        return Ok(ExitCode::from(1));
    };
    let mut rendered = loaded.rendered;
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
                printable(&rendered.environment),
                short(&rendered.commit)
            )?;
            for cluster in &rendered.clusters {
                for app in &cluster.apps {
                    let hooks = app.hooks.iter().map(|h| {
                        (
                            h,
                            "sync hook (run per revision, not applied with the objects), ",
                        )
                    });
                    for (object, what) in app.objects.iter().map(|o| (o, "")).chain(hooks) {
                        writeln!(out, "---")?;
                        writeln!(
                            out,
                            "# Cluster: {}, app: {}, {what}source: {}",
                            printable(&cluster.cluster),
                            printable(&app.app),
                            object.provenance
                        )?;
                        out.write_all(serde_saphyr::to_string(&*object.manifest)?.as_bytes())?;
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
