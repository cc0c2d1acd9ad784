//! `tidegate validate`: every environment file parsed, every app rendered for every cluster.

use crate::{
    args::{Access, Global, ValidateArgs},
    output::Style,
};
use std::process::ExitCode;
use tidegate_core::{Diagnostic, Diagnostics, environment::Provider, printable::printable};
use tidegate_source::{LoadError, desired::short};

/// Exit 0 when everything is valid, 1 with the list of problems.
pub async fn run(global: &Global, args: &ValidateArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let ws = super::fleet::workspace(global)?;
    let factory = super::fleet::client_factory(global, &None);
    let names = if args.envs.is_empty() {
        ws.environment_names()?
    } else {
        args.envs.clone()
    };
    if names.is_empty() {
        anyhow::bail!("no environments found: add environments/<name>.yaml and commit it");
    }
    let mut failed = 0;
    let mut unreadable = 0;
    for name in &names {
        // What stands for the `discover:` entries, said after the cluster count.
        let mut discovered = None;
        let loaded = match ws.load(name) {
            Ok(mut desired) if args.offline => {
                let entries = desired.environment.spec.clusters.discover().len();
                if entries > 0 {
                    desired.environment = desired.environment.with_placeholders();
                    discovered = Some(format!(
                        " ({} standing in for discovery)",
                        plural(entries, "placeholder")
                    ));
                }
                Ok(desired)
            }
            Ok(mut desired) => factory
                .discover(&mut desired.environment, &desired.env_file)
                .await
                .map(|n| {
                    discovered = (n > 0).then(|| format!(" ({n} discovered)"));
                    desired
                })
                .map_err(LoadError::Invalid),
            Err(e) => Err(e),
        };
        let problems = match loaded {
            Ok(mut desired) => {
                tidegate_template::Templater::from_env()
                    .expand(&mut desired)
                    .await;
                let mut problems = Diagnostics::default();
                if global.access == Access::Kubeconfig {
                    problems.extend(check_kubeconfig_access(&desired));
                }
                if let Err(found) = tidegate_app::health_checks(&desired) {
                    problems.extend(found);
                }
                // Last resort: a panic while rendering one environment (a
                // bug) is reported for it, and the others are still checked.
                let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    tidegate_render::render_environment(
                        &desired.environment,
                        &desired.env_file,
                        &desired.commit.sha,
                        &desired.apps,
                    )
                }))
                .unwrap_or_else(|_| {
                    Err(Diagnostic::new(
                        "internal error while rendering this environment (a bug in Tidegate)",
                    )
                    .at(&desired.env_file, None)
                    .help("please report it with the environment file; the other environments were still checked")
                    .into())
                });
                match rendered {
                    Ok(rendered) if problems.is_empty() => {
                        let objects: usize = rendered
                            .clusters
                            .iter()
                            .flat_map(|c| &c.apps)
                            .map(|a| a.objects.len())
                            .sum();
                        outln!(
                            "{} {}: {}{}, {}, {} rendered at {}",
                            style.ok("ok"),
                            printable(name),
                            plural(desired.environment.spec.clusters.len(), "cluster"),
                            discovered.as_deref().unwrap_or_default(),
                            plural(desired.environment.spec.apps.len(), "app"),
                            plural(objects, "object"),
                            short(&desired.commit.sha),
                        );
                        continue;
                    }
                    Ok(_) => problems,
                    Err(found) => {
                        problems.extend(found);
                        problems
                    }
                }
            }
            Err(LoadError::Invalid(problems)) => problems,
            Err(LoadError::Source(e)) => {
                // Git could not be read for this environment (e.g. its
                // repoURL): say so and check the others.
                unreadable += 1;
                errln!("{} {}: {e:#}", style.error("error:"), printable(name));
                outln!(
                    "{} {}: could not be read",
                    style.error("invalid"),
                    printable(name)
                );
                continue;
            }
        };
        failed += 1;
        style.print_diagnostics(&problems);
        outln!(
            "{} {}: {} problem(s)",
            style.error("invalid"),
            printable(name),
            problems.len()
        );
    }
    Ok(if unreadable > 0 {
        ExitCode::from(2)
    } else if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// With `--access kubeconfig` every cluster is reached through a context; a
/// provider-only cluster gets its name as context, which we state explicitly.
fn check_kubeconfig_access(desired: &tidegate_source::Desired) -> Diagnostics {
    let mut out = Diagnostics::default();
    for cluster in &desired.environment.spec.clusters {
        if let Provider::Kubeconfig(k) = &cluster.provider
            && k.context.as_deref() == Some("")
        {
            out.push(
                Diagnostic::new(format!(
                    "cluster {}: empty kubeconfig context",
                    cluster.name
                ))
                .at(&desired.env_file, cluster.line()),
            );
        }
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
