//! Loading an environment for the cluster commands: load, discover, render,
//! select clusters, connect.

use crate::{AppError, Workspace};
use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};
use tidegate_cloud::{CloudFactory, CloudOptions};
use tidegate_cluster::{FactsCache, KubeconfigFactory};
use tidegate_core::environment::Cluster;
use tidegate_health::HealthChecks;
use tidegate_render::{Rendered, RenderedCluster};
use tidegate_source::Desired;
use tidegate_sync::{Engine, Target};

/// How clusters are reached.
#[derive(Debug, Clone, Default)]
pub struct ClusterAccess {
    /// Reach every cluster through its kubeconfig context (`--access
    /// kubeconfig`) instead of its provider.
    pub kubeconfig_only: bool,
    /// The kubeconfig file (default: `$KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
}

/// Clients for every cluster: each through its provider (EKS, AKS, GKE
/// natively; kubeconfig clusters through their context), or with
/// `kubeconfig_only` every cluster through its context.
pub fn client_factory(access: &ClusterAccess) -> CloudFactory {
    CloudFactory::new(
        KubeconfigFactory {
            force: access.kubeconfig_only,
            file: access.kubeconfig.clone(),
        },
        CloudOptions::from_env(),
    )
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

/// What to load: an environment at a revision, optionally one cluster and one app.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// The repository (path or URL); `None`: the one containing the current directory.
    pub repo: Option<String>,
    /// The revision; `None`: HEAD.
    pub git_ref: Option<String>,
    /// The environment.
    pub env: String,
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this app.
    pub app: Option<String>,
    /// How clusters are reached.
    pub access: ClusterAccess,
    /// Where Helm's capabilities come from.
    pub capabilities: Capabilities,
}

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
    workspace: Arc<Mutex<Workspace>>,
}

/// Loads (expanding `discover:` entries) and renders, checking that the
/// selected cluster and app exist. Problems with the user's files are
/// [`AppError::Invalid`], every one at its file and line.
pub async fn load(request: &LoadRequest) -> Result<Loaded, AppError> {
    let ws = Workspace::open(request.repo.as_deref(), request.git_ref.as_deref())?;
    let factory = client_factory(&request.access);
    let facts = FactsCache::default().only_cluster(request.cluster.clone());
    let asked = (request.capabilities == Capabilities::FromClusters).then_some(&facts);
    // Git is read before the first await: the repository handle is not
    // held across it.
    let loading = ws.load_discovered(&request.env, &factory, asked);
    let workspace = Arc::new(Mutex::new(ws));
    let crate::Rendering {
        desired,
        rendered,
        health_checks,
    } = crate::load_rendered(loading).await?;
    let env = &desired.environment;
    if let Some(c) = &request.cluster
        && env.cluster(c).is_none()
    {
        let known: Vec<&str> = env.spec.clusters.iter().map(|c| c.name.as_str()).collect();
        return Err(AppError::NoSuchCluster {
            env: request.env.clone(),
            cluster: c.clone(),
            known: known.join(", "),
        });
    }
    if let Some(a) = &request.app
        && env.app(a).is_none()
    {
        let known: Vec<&str> = env.spec.apps.iter().map(|a| a.name.as_str()).collect();
        return Err(AppError::NoSuchApp {
            env: request.env.clone(),
            app: a.clone(),
            known: known.join(", "),
        });
    }
    let health_checks = health_checks.map_err(AppError::Invalid)?;
    let clusters = env
        .spec
        .clusters
        .iter()
        .filter(|c| request.cluster.as_ref().is_none_or(|want| *want == c.name))
        .map(|c| c.name.clone())
        .collect();
    Ok(Loaded {
        workspace,
        factory,
        facts,
        desired,
        rendered,
        clusters,
        health_checks,
    })
}

impl Loaded {
    /// The environment's definition of a cluster.
    pub fn cluster(&self, name: &str) -> Result<&Cluster, AppError> {
        self.desired
            .environment
            .cluster(name)
            .ok_or_else(|| AppError::NotLoaded(name.to_string()))
    }

    /// The rendered objects of a cluster.
    pub fn rendered(&self, name: &str) -> Result<&RenderedCluster, AppError> {
        self.rendered
            .clusters
            .iter()
            .find(|c| c.cluster == name)
            .ok_or_else(|| AppError::NotLoaded(name.to_string()))
    }

    /// The factory that makes clients.
    pub fn factory(&self) -> &CloudFactory {
        &self.factory
    }

    /// The cluster facts asked so far (reused when another revision is rendered).
    pub fn facts(&self) -> &FactsCache {
        &self.facts
    }

    /// Other revisions of this environment from the same open repository
    /// (rollback targets), with the cluster facts asked so far.
    pub fn revisions(&self) -> crate::GitRevisions<'_> {
        crate::GitRevisions::new(
            self.workspace.clone(),
            &self.desired.environment.metadata.name,
            &self.factory,
            &self.facts,
        )
    }

    /// Connects to a cluster.
    pub async fn connect(&self, name: &str) -> Result<Engine, AppError> {
        Ok(Engine::connect(&self.factory, self.cluster(name)?)
            .await?
            .with_health_checks(self.health_checks.clone()))
    }

    /// The sync target of a cluster.
    pub fn target<'a>(&'a self, name: &str) -> Result<Target<'a>, AppError> {
        Ok(Target {
            environment: &self.desired.environment,
            cluster: self.cluster(name)?,
            rendered: self.rendered(name)?,
            revision: &self.desired.commit.sha,
        })
    }
}

/// A loaded environment may be shared between the tasks of a
/// multi-threaded runtime (the controller's).
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Loaded>();
    shared::<crate::GitRevisions<'static>>();
};
