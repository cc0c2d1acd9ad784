//! Shared by the cluster commands: load, render, select clusters, connect.

use crate::{
    args::{Access, Global, Selection},
    output::Style,
    workspace::Workspace,
};
use anyhow::{Context, bail};
use std::sync::Arc;
use tidegate_cloud::{CloudFactory, CloudOptions};
use tidegate_cluster::{FactsCache, KubeconfigFactory};
use tidegate_core::Diagnostics;
use tidegate_core::environment::Cluster;
use tidegate_health::HealthChecks;
use tidegate_render::{Rendered, RenderedCluster};
use tidegate_source::{Desired, LoadError};
use tidegate_sync::{Engine, Target};

/// An environment loaded and rendered, with the clusters selected.
pub struct Loaded {
    /// What Git says.
    pub desired: Desired,
    /// Rendered per cluster.
    pub rendered: Rendered,
    /// Names of the selected clusters, in environment order.
    pub clusters: Vec<String>,
    /// The environment's custom health checks.
    pub health_checks: Arc<HealthChecks>,
    factory: CloudFactory,
    facts: FactsCache,
}

/// Where Helm apps' `.Capabilities` (Kubernetes version, API versions) come
/// from when the environment does not declare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capabilities {
    /// Only what the environment declares, else Helm's defaults: commands
    /// that do not talk to clusters (`render`, `validate`, `clusters`).
    Declared,
    /// Also what each cluster reports (`/version` and discovery), for the
    /// commands that talk to clusters anyway; declared values still win.
    FromClusters,
}

/// Loads (expanding `discover:` entries) and renders, checking that the
/// selected cluster and app exist;
/// `Ok(None)` after printing the problems of invalid input.
pub async fn load(
    global: &Global,
    selection: &Selection,
    capabilities: Capabilities,
    style: &Style,
) -> anyhow::Result<Option<Loaded>> {
    let ws = Workspace::open(global)?;
    let factory = client_factory(global, &selection.kubeconfig);
    let facts = FactsCache::default().only_cluster(selection.cluster.clone());
    let asked = (capabilities == Capabilities::FromClusters).then_some(&facts);
    let desired = match ws.load_discovered(&selection.env, &factory, asked).await {
        Ok(d) => d,
        Err(LoadError::Invalid(problems)) => {
            style.print_diagnostics(&problems);
            return Ok(None);
        }
        Err(LoadError::Source(e)) => return Err(e.into()),
    };
    let env = &desired.environment;
    if let Some(c) = &selection.cluster
        && env.cluster(c).is_none()
    {
        let known: Vec<&str> = env.spec.clusters.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "environment {} has no cluster {c:?} (clusters: {})",
            selection.env,
            known.join(", ")
        );
    }
    if let Some(a) = &selection.app
        && env.app(a).is_none()
    {
        let known: Vec<&str> = env.spec.apps.iter().map(|a| a.name.as_str()).collect();
        bail!(
            "environment {} has no app {a:?} (apps: {})",
            selection.env,
            known.join(", ")
        );
    }
    let rendered = match tidegate_render::render_environment(
        env,
        &desired.env_file,
        &desired.commit.sha,
        &desired.apps,
    ) {
        Ok(r) => r,
        Err(problems) => {
            style.print_diagnostics(&problems);
            return Ok(None);
        }
    };
    let health_checks = match health_checks(&desired) {
        Ok(checks) => checks,
        Err(problems) => {
            style.print_diagnostics(&problems);
            return Ok(None);
        }
    };
    let clusters = env
        .spec
        .clusters
        .iter()
        .filter(|c| {
            selection
                .cluster
                .as_ref()
                .is_none_or(|want| *want == c.name)
        })
        .map(|c| c.name.clone())
        .collect();
    Ok(Some(Loaded {
        factory,
        facts,
        desired,
        rendered,
        clusters,
        health_checks,
    }))
}

/// The environment's custom health checks (`spec.health`), or every
/// problem with them at its file and line.
pub fn health_checks(desired: &Desired) -> Result<Arc<HealthChecks>, Diagnostics> {
    let (checks, problems) = HealthChecks::for_environment(
        &desired.environment,
        &desired.env_file,
        &desired.health_scripts,
    );
    if problems.is_empty() {
        Ok(Arc::new(checks))
    } else {
        Err(problems.sorted())
    }
}

/// Clients for every cluster: `--access auto` reaches each through its
/// provider (EKS, AKS, GKE natively; kubeconfig clusters through their
/// context); `--access kubeconfig` reaches every cluster through its context.
pub fn client_factory(global: &Global, kubeconfig: &Option<std::path::PathBuf>) -> CloudFactory {
    CloudFactory::new(
        KubeconfigFactory {
            force: global.access == Access::Kubeconfig,
            file: kubeconfig.clone(),
        },
        CloudOptions::from_env(),
    )
}

impl Loaded {
    /// The environment's definition of a cluster.
    pub fn cluster(&self, name: &str) -> anyhow::Result<&Cluster> {
        self.desired
            .environment
            .cluster(name)
            .context("cluster vanished")
    }

    /// The rendered objects of a cluster.
    pub fn rendered(&self, name: &str) -> anyhow::Result<&RenderedCluster> {
        self.rendered
            .clusters
            .iter()
            .find(|c| c.cluster == name)
            .context("cluster not rendered")
    }

    /// The factory that makes clients.
    pub fn factory(&self) -> &CloudFactory {
        &self.factory
    }

    /// The cluster facts asked so far (reused when another revision is rendered).
    pub fn facts(&self) -> &FactsCache {
        &self.facts
    }

    /// Connects to a cluster.
    pub async fn connect(&self, name: &str) -> anyhow::Result<Engine> {
        Ok(Engine::connect(&self.factory, self.cluster(name)?)
            .await?
            .with_health_checks(self.health_checks.clone()))
    }

    /// The sync target of a cluster.
    pub fn target<'a>(&'a self, name: &str) -> anyhow::Result<Target<'a>> {
        Ok(Target {
            environment: &self.desired.environment,
            cluster: self.cluster(name)?,
            rendered: self.rendered(name)?,
            revision: &self.desired.commit.sha,
        })
    }
}
