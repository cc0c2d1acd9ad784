//! Building clients: one per cluster, through a seam cloud access plugs into.

use crate::{ClusterError, RequestCounter};
use kube::{
    Client,
    client::ClientBuilder,
    config::{KubeConfigOptions, Kubeconfig},
};
use std::{future::Future, path::PathBuf};
use tidegate_core::environment::{Cluster, Provider};

/// Installs the aws-lc-rs TLS provider for rustls, once per process (the AWS
/// SDK brings aws-lc-rs too; without one installed rustls may panic choosing).
pub fn install_crypto_provider() {
    // Err means another provider was installed first, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Makes a client for a cluster. The seam for cloud-native authentication.
pub trait ClientFactory: Send + Sync {
    /// A client for `cluster`, counting its requests in `counter`.
    fn client(
        &self,
        cluster: &Cluster,
        counter: &RequestCounter,
    ) -> impl Future<Output = Result<Client, ClusterError>> + Send;
}

/// Reaches clusters through kubeconfig contexts.
#[derive(Debug, Clone, Default)]
pub struct KubeconfigFactory {
    /// Use every cluster's kubeconfig context, whatever its provider
    /// (`--access kubeconfig`); otherwise only `provider: kubeconfig` clusters.
    pub force: bool,
    /// The operator's kubeconfig file (`--kubeconfig`), overriding
    /// `$KUBECONFIG` / `~/.kube/config`. The only kubeconfig files read.
    pub file: Option<PathBuf>,
}

impl ClientFactory for KubeconfigFactory {
    async fn client(
        &self,
        cluster: &Cluster,
        counter: &RequestCounter,
    ) -> Result<Client, ClusterError> {
        if !self.force && !matches!(cluster.provider, Provider::Kubeconfig(_)) {
            return Err(ClusterError::Unsupported {
                cluster: cluster.name.clone(),
                provider: cluster.provider.name().to_string(),
            });
        }
        // Only the operator's kubeconfig: an environment names a context of
        // it, never a file (its `exec` plugins would run repository content).
        let file = self.file.clone();
        let context = cluster.kubeconfig_context().to_string();
        let kubeconfig_error = |source| ClusterError::Kubeconfig {
            cluster: cluster.name.clone(),
            context: context.clone(),
            error: source,
        };
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        };
        let config = match file {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(&path).map_err(kubeconfig_error)?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
            }
            None => kube::Config::from_kubeconfig(&options).await,
        }
        .map_err(kubeconfig_error)?;
        let counter = counter.clone();
        let builder = ClientBuilder::try_from(config).map_err(|source| ClusterError::Client {
            cluster: cluster.name.clone(),
            error: source,
        })?;
        Ok(builder.with_layer(&counter.layer()).build())
    }
}
