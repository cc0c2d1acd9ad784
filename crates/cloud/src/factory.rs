//! [`CloudFactory`]: kube clients for EKS clusters (and kubeconfig ones).

use crate::{
    AksDiscovery, AksOptions, BearerLayer, CachedToken, CloudError, DiscoveredCluster,
    EksDiscovery, GkeCredentials, GkeDiscovery, TokenSource,
};
use kube::client::ClientBuilder;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tidegate_cluster::{ClientFactory, ClusterError, KubeconfigFactory, RequestCounter};
use tidegate_core::environment::{AzureCredential, Cluster, Provider};

/// How long a cluster's endpoint and CA are reused before they are described again.
const DESCRIBE_TTL: Duration = Duration::from_secs(15 * 60);

/// Endpoint overrides (stubs, private endpoints, sovereign clouds).
#[derive(Debug, Clone, Default)]
pub struct CloudOptions {
    /// EKS API endpoint instead of `https://eks.<region>.amazonaws.com`
    /// (`AWS_ENDPOINT_URL_EKS` works too).
    pub eks_endpoint: Option<String>,
    /// GKE API endpoint instead of `https://container.googleapis.com`.
    pub gke_endpoint: Option<String>,
    /// Azure Resource Manager and Entra authority (sovereign clouds).
    pub azure: AksOptions,
}

impl CloudOptions {
    /// From `TIDEGATE_EKS_ENDPOINT`, `TIDEGATE_GKE_ENDPOINT`,
    /// `TIDEGATE_ARM_ENDPOINT` and `AZURE_AUTHORITY_HOST` (unset: the public clouds).
    pub fn from_env() -> CloudOptions {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        CloudOptions {
            eks_endpoint: var("TIDEGATE_EKS_ENDPOINT"),
            gke_endpoint: var("TIDEGATE_GKE_ENDPOINT"),
            azure: AksOptions {
                arm_endpoint: var("TIDEGATE_ARM_ENDPOINT"),
                authority_host: var("AZURE_AUTHORITY_HOST"),
                ..AksOptions::default()
            },
        }
    }
}

/// Reaches clusters through their cloud: EKS, AKS and GKE (in-process tokens);
/// `provider: kubeconfig` clusters, and every cluster when the kubeconfig
/// factory is forced (`--access kubeconfig`), go to [`KubeconfigFactory`].
pub struct CloudFactory {
    kubeconfig: KubeconfigFactory,
    options: CloudOptions,
    eks: tokio::sync::Mutex<HashMap<(String, Option<String>), EksDiscovery>>,
    gke: tokio::sync::Mutex<HashMap<String, GkeDiscovery>>,
    aks: tokio::sync::Mutex<HashMap<(String, String), AksDiscovery>>,
    access: Mutex<HashMap<String, Access>>,
}

/// What is cached per cluster: where it is and its tokens.
#[derive(Clone)]
struct Access {
    described: DiscoveredCluster,
    token: CachedToken,
    at: Instant,
}

impl std::fmt::Debug for CloudFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudFactory")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl CloudFactory {
    /// Cloud clusters through their cloud, kubeconfig clusters through `kubeconfig`.
    pub fn new(kubeconfig: KubeconfigFactory, options: CloudOptions) -> CloudFactory {
        CloudFactory {
            kubeconfig,
            options,
            eks: tokio::sync::Mutex::new(HashMap::new()),
            gke: tokio::sync::Mutex::new(HashMap::new()),
            aks: tokio::sync::Mutex::new(HashMap::new()),
            access: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn eks(
        &self,
        region: &str,
        role: Option<&str>,
    ) -> Result<EksDiscovery, CloudError> {
        let key = (region.to_string(), role.map(str::to_string));
        let mut cache = self.eks.lock().await;
        if let Some(eks) = cache.get(&key) {
            return Ok(eks.clone());
        }
        let eks = EksDiscovery::new(region, role, self.options.eks_endpoint.as_deref()).await?;
        cache.insert(key, eks.clone());
        Ok(eks)
    }

    /// Uses `discovery` (its endpoint and credentials) for the EKS clusters
    /// of `region` (assuming `role_arn`) instead of the default chain.
    pub async fn use_eks(&self, region: &str, role_arn: Option<&str>, discovery: EksDiscovery) {
        self.eks.lock().await.insert(
            (region.to_string(), role_arn.map(str::to_string)),
            discovery,
        );
    }

    /// Uses `discovery` (its endpoint and credentials) for the clusters of
    /// `project` instead of Application Default Credentials.
    pub async fn use_gke(&self, project: &str, discovery: GkeDiscovery) {
        self.gke.lock().await.insert(project.to_string(), discovery);
    }

    /// Uses `discovery` (its ARM endpoint and credential) for the clusters of
    /// `subscription` reached with `credential` instead of building one.
    pub async fn use_aks(
        &self,
        subscription: &str,
        credential: AzureCredential,
        discovery: AksDiscovery,
    ) {
        self.aks
            .lock()
            .await
            .insert(aks_key(subscription, credential), discovery);
    }

    pub(crate) async fn gke(&self, project: &str) -> Result<GkeDiscovery, CloudError> {
        let mut cache = self.gke.lock().await;
        if let Some(gke) = cache.get(project) {
            return Ok(gke.clone());
        }
        let credentials =
            GkeCredentials::from_adc().map_err(|message| CloudError::Credentials {
                cluster: format!("gke project {project}"),
                cloud: "google",
                message,
                help: Some(crate::gke::ADC_HELP.into()),
            })?;
        let gke =
            GkeDiscovery::new(project, credentials, self.options.gke_endpoint.as_deref()).await?;
        cache.insert(project.to_string(), gke.clone());
        Ok(gke)
    }

    pub(crate) async fn aks(
        &self,
        subscription: &str,
        kind: AzureCredential,
    ) -> Result<AksDiscovery, CloudError> {
        let key = aks_key(subscription, kind);
        let mut cache = self.aks.lock().await;
        if let Some(aks) = cache.get(&key) {
            return Ok(aks.clone());
        }
        let credential = crate::azure_credential(kind, &self.options.azure).map_err(|message| {
            CloudError::Credentials {
                cluster: format!("aks subscription {subscription}"),
                cloud: "azure",
                message,
                help: Some("set `credential:` in the environment file to workloadIdentity, managedIdentity or clientSecret and provide its settings".into()),
            }
        })?;
        let aks = AksDiscovery::new(subscription, credential, &self.options.azure);
        cache.insert(key, aks.clone());
        Ok(aks)
    }

    /// What the cloud says about `cluster` (endpoint, CA, version, status), and
    /// its token source. Cached; described again after 15 minutes.
    async fn access(&self, cluster: &Cluster) -> Result<Access, CloudError> {
        let cached = self
            .access
            .lock()
            .ok()
            .and_then(|cache| cache.get(&cluster.name).cloned());
        if let Some(access) = &cached
            && access.at.elapsed() < DESCRIBE_TTL
        {
            return Ok(access.clone());
        }
        let (described, source): (DiscoveredCluster, Arc<dyn TokenSource>) = match &cluster.provider
        {
            Provider::Eks(eks) => {
                let label = |e: CloudError| e.for_cluster(&cluster.name);
                let discovery = self
                    .eks(&eks.region, eks.role_arn.as_deref())
                    .await
                    .map_err(label)?;
                let described = discovery.describe(&eks.cluster_name).await.map_err(label)?;
                (described, discovery.token_source(&eks.cluster_name))
            }
            Provider::Gke(gke) => {
                let label = |e: CloudError| e.for_cluster(&cluster.name);
                let discovery = self.gke(&gke.project).await.map_err(label)?;
                let described = discovery
                    .describe(&gke.location, &gke.cluster_name)
                    .await
                    .map_err(label)?;
                (described, discovery.token_source())
            }
            Provider::Aks(aks) => {
                let label = |e: CloudError| e.for_cluster(&cluster.name);
                let discovery = self
                    .aks(&aks.subscription_id, aks.credential)
                    .await
                    .map_err(label)?;
                let described = discovery
                    .describe(&aks.resource_group, &aks.cluster_name)
                    .await
                    .map_err(label)?;
                (described, discovery.token_source())
            }
            other => {
                return Err(CloudError::Invalid {
                    cluster: format!("cluster {}", cluster.name),
                    message: format!(
                        "provider {} is not supported by native cloud access in this build; run with --access kubeconfig",
                        other.name()
                    ),
                });
            }
        };
        // Keep the cached token while the cluster is the same one.
        let token = match cached {
            Some(old) if old.described.endpoint == described.endpoint => old.token,
            _ => CachedToken::new(source),
        };
        let access = Access {
            described,
            token,
            at: Instant::now(),
        };
        if let Ok(mut cache) = self.access.lock() {
            cache.insert(cluster.name.clone(), access.clone());
        }
        Ok(access)
    }

    /// Remembers what discovery found about `cluster` so the first client
    /// does not describe it again.
    pub(crate) fn remember(
        &self,
        cluster: &str,
        described: DiscoveredCluster,
        source: Arc<dyn TokenSource>,
    ) {
        if let Ok(mut cache) = self.access.lock() {
            cache.insert(
                cluster.to_string(),
                Access {
                    described,
                    token: CachedToken::new(source),
                    at: Instant::now(),
                },
            );
        }
    }

    /// True when every cluster is reached through its kubeconfig context.
    pub fn kubeconfig_only(&self) -> bool {
        self.kubeconfig.force
    }

    /// The kubeconfig file override, if any.
    pub fn kubeconfig_file(&self) -> Option<&std::path::Path> {
        self.kubeconfig.file.as_deref()
    }

    /// What the cloud reports about a cluster of provider eks, aks or gke.
    pub async fn describe(&self, cluster: &Cluster) -> Result<DiscoveredCluster, CloudError> {
        Ok(self.access(cluster).await?.described)
    }

    /// Forgets what is cached about `cluster` (after credentials rotated).
    pub fn forget(&self, cluster: &str) {
        if let Ok(mut cache) = self.access.lock() {
            cache.remove(cluster);
        }
    }
}

/// The AKS discovery cache key: subscription and credential kind.
fn aks_key(subscription: &str, credential: AzureCredential) -> (String, String) {
    (subscription.to_string(), format!("{credential:?}"))
}

impl ClientFactory for CloudFactory {
    async fn client(
        &self,
        cluster: &Cluster,
        counter: &RequestCounter,
    ) -> Result<kube::Client, ClusterError> {
        if self.kubeconfig.force || matches!(cluster.provider, Provider::Kubeconfig(_)) {
            return self.kubeconfig.client(cluster, counter).await;
        }
        let failed = |source: kube::Error| ClusterError::Client {
            cluster: cluster.name.clone(),
            error: source,
        };
        let access = self
            .access(cluster)
            .await
            .map_err(|e| failed(kube::Error::Service(Box::new(e))))?;
        let endpoint = &access.described.endpoint;
        if endpoint.server.is_empty() || endpoint.ca.is_empty() {
            return Err(failed(kube::Error::Service(Box::new(
                CloudError::Invalid {
                    cluster: format!("cluster {}", cluster.name),
                    message: format!(
                        "the cloud reports status {:?} and no API server endpoint or CA yet; wait until the cluster is ready",
                        access.described.status
                    ),
                },
            ))));
        }
        let uri: http::Uri = endpoint.server.parse().map_err(|e| {
            failed(kube::Error::Service(Box::new(CloudError::Invalid {
                cluster: cluster.name.clone(),
                message: format!("endpoint {:?} is not a URL: {e}", endpoint.server),
            })))
        })?;
        let mut config = kube::Config::new(uri);
        config.root_cert = Some(endpoint.ca.clone());
        let counter = counter.clone();
        let builder = ClientBuilder::try_from(config).map_err(failed)?;
        Ok(builder
            .with_layer(&BearerLayer::new(access.token.clone()))
            .with_layer(&counter.layer())
            .build())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;
    use crate::stub::serve;
    use aws_credential_types::Credentials;
    use tidegate_core::environment::{EksCluster, KubeconfigRef};

    fn cluster(provider: Provider) -> Cluster {
        let name = match &provider {
            Provider::Eks(e) => format!("env-{}", e.cluster_name),
            _ => "c1".into(),
        };
        Cluster {
            name,
            provider,
            kubeconfig: Some(KubeconfigRef {
                context: None,
                file: None,
            }),
            labels: Default::default(),
            wave: None,
        }
    }

    fn eks(name: &str) -> Provider {
        Provider::Eks(EksCluster {
            region: "us-east-1".into(),
            cluster_name: name.into(),
            role_arn: None,
        })
    }

    #[tokio::test]
    async fn kubeconfig_clusters_and_forced_kubeconfig_access_are_delegated() {
        let missing = KubeconfigFactory {
            force: false,
            file: Some("/nonexistent/kubeconfig".into()),
        };
        let factory = CloudFactory::new(missing.clone(), CloudOptions::default());
        let kubeconfig = cluster(Provider::Kubeconfig(KubeconfigRef {
            context: None,
            file: None,
        }));
        let error = factory
            .client(&kubeconfig, &RequestCounter::default())
            .await
            .err()
            .unwrap();
        assert!(matches!(error, ClusterError::Kubeconfig { .. }), "{error}");

        let forced = CloudFactory::new(
            KubeconfigFactory {
                force: true,
                ..missing
            },
            CloudOptions::default(),
        );
        let error = forced
            .client(&cluster(eks("x")), &RequestCounter::default())
            .await
            .err()
            .unwrap();
        assert!(matches!(error, ClusterError::Kubeconfig { .. }), "{error}");
    }

    #[tokio::test]
    async fn eks_clusters_are_described_once_and_errors_name_the_cluster() {
        tidegate_cluster::install_crypto_provider();
        let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .unwrap()
            .cert
            .pem();
        let described = serde_json::json!({"cluster": {
            "name": "prod",
            "endpoint": "https://127.0.0.1:9",
            "certificateAuthority": {"data": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &ca)},
            "version": "1.31",
            "status": "ACTIVE",
        }})
        .to_string();
        let (url, log) = serve(move |seen| {
            if seen.target.starts_with("/clusters/prod") {
                (200, Vec::new(), described.clone())
            } else {
                (
                    404,
                    vec![(
                        "x-amzn-errortype".into(),
                        "ResourceNotFoundException".into(),
                    )],
                    r#"{"message":"No cluster found for name: gone."}"#.into(),
                )
            }
        })
        .await;
        let factory = CloudFactory::new(KubeconfigFactory::default(), CloudOptions::default());
        let credentials = Credentials::new("AKID", "secret", None, None, "test");
        factory
            .use_eks(
                "us-east-1",
                None,
                EksDiscovery::with_credentials("us-east-1", credentials, &url),
            )
            .await;
        let prod = cluster(eks("prod"));
        factory
            .client(&prod, &RequestCounter::default())
            .await
            .unwrap();
        factory
            .client(&prod, &RequestCounter::default())
            .await
            .unwrap();
        let info = factory.describe(&prod).await.unwrap();
        assert_eq!(info.endpoint.server, "https://127.0.0.1:9");
        assert_eq!(info.version, "1.31");
        assert_eq!(log.lock().unwrap().len(), 1, "described once, then cached");

        let error = factory
            .client(&cluster(eks("gone")), &RequestCounter::default())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains(
                "cluster env-gone (gone): eks:DescribeCluster failed: HTTP 404 ResourceNotFoundException"
            ),
            "{error}"
        );
    }
}
