//! Shared by the cluster commands: the command line turned into the
//! application layer's requests, and its invalid-input errors printed.

use crate::{
    args::{Access, Global, Selection},
    output::Style,
};
use tidegate_app::{AppError, ClusterAccess, LoadRequest, Workspace};
pub use tidegate_app::{Capabilities, Loaded};
use tidegate_cloud::CloudFactory;

/// Loads (expanding `discover:` entries) and renders, checking that the
/// selected cluster and app exist;
/// `Ok(None)` after printing the problems of invalid input.
pub async fn load(
    global: &Global,
    selection: &Selection,
    capabilities: Capabilities,
    style: &Style,
) -> anyhow::Result<Option<Loaded>> {
    let request = LoadRequest {
        repo: global.repo.clone(),
        git_ref: global.git_ref.clone(),
        env: selection.env.clone(),
        cluster: selection.cluster.clone(),
        app: selection.app.clone(),
        access: access(global, &selection.kubeconfig),
        capabilities,
    };
    match tidegate_app::load(&request).await {
        Ok(loaded) => Ok(Some(loaded)),
        Err(AppError::Invalid(problems)) => {
            style.print_diagnostics(&problems);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// How `--access` and `--kubeconfig` say clusters are reached.
pub fn access(global: &Global, kubeconfig: &Option<std::path::PathBuf>) -> ClusterAccess {
    ClusterAccess {
        kubeconfig_only: global.access == Access::Kubeconfig,
        kubeconfig: kubeconfig.clone(),
    }
}

/// Clients for every cluster: `--access auto` reaches each through its
/// provider (EKS, AKS, GKE natively; kubeconfig clusters through their
/// context); `--access kubeconfig` reaches every cluster through its context.
pub fn client_factory(global: &Global, kubeconfig: &Option<std::path::PathBuf>) -> CloudFactory {
    tidegate_app::client_factory(&access(global, kubeconfig))
}

/// Opens `--repo` (or the repository containing the current directory)
/// and resolves `--ref` (or HEAD).
pub fn workspace(global: &Global) -> Result<Workspace, AppError> {
    Workspace::open(global.repo.as_deref(), global.git_ref.as_deref())
}
