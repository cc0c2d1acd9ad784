//! Azure Kubernetes Service: ARM REST through azure_core's pipeline (no ARM
//! crate exists): list `Microsoft.ContainerService/managedClusters`,
//! `listClusterUserCredential` for the server URL and CA, and Entra tokens
//! for the AKS server application.

use crate::{CloudError, DiscoveredCluster, Endpoint, Token, TokenSource, decode_ca};
use azure_core::{
    cloud::{CloudConfiguration, CustomConfiguration},
    credentials::{Secret, TokenCredential},
    http::{
        ClientOptions, Context, Method, Pipeline, PipelineSendOptions, Request, Transport, Url,
        policies::auth::BearerTokenAuthorizationPolicy,
    },
};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use futures::{StreamExt as _, future::BoxFuture, stream};
use std::{collections::BTreeMap, fmt, sync::Arc, time::SystemTime};
use tidegate_core::environment::AzureCredential;

/// The Entra application of AKS API servers (Azure Kubernetes Service AAD Server).
pub const AKS_SCOPE: &str = "6dae42f8-4368-4678-94ff-3960e28e3630/.default";
/// The managedClusters API version used: the newest stable one in the AKS
/// REST reference (learn.microsoft.com/rest/api/aks, checked 2026-11-25).
pub const AKS_API_VERSION: &str = "2025-10-01";
/// Azure public cloud's Resource Manager.
pub const AZURE_PUBLIC_ARM: &str = "https://management.azure.com";

/// Where ARM and Entra are (sovereign clouds) and, in tests, the transport.
#[derive(Clone, Default)]
pub struct AksOptions {
    /// Resource Manager base URL [default: `https://management.azure.com`].
    pub arm_endpoint: Option<String>,
    /// Entra authority host [default: `https://login.microsoftonline.com`].
    pub authority_host: Option<String>,
    /// HTTP transport replacing azure_core's (tests).
    pub transport: Option<Transport>,
    /// No retries (tests).
    pub no_retries: bool,
}

impl fmt::Debug for AksOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AksOptions")
            .field("arm_endpoint", &self.arm_endpoint)
            .field("authority_host", &self.authority_host)
            .finish_non_exhaustive()
    }
}

impl AksOptions {
    pub(crate) fn client_options(&self) -> ClientOptions {
        let mut options = ClientOptions {
            transport: self.transport.clone(),
            ..ClientOptions::default()
        };
        if let Some(host) = &self.authority_host {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = host.clone();
            options.cloud = Some(Arc::new(CloudConfiguration::from(custom)));
        }
        if self.no_retries {
            options.retry = azure_core::http::RetryOptions::none();
        }
        options
    }

    fn arm(&self) -> &str {
        self.arm_endpoint
            .as_deref()
            .unwrap_or(AZURE_PUBLIC_ARM)
            .trim_end_matches('/')
    }
}

/// The explicit credential an environment file names (`AksCluster.credential`).
pub fn azure_credential(
    kind: AzureCredential,
    options: &AksOptions,
) -> Result<Arc<dyn TokenCredential>, String> {
    let client_options = options.client_options();
    let credential: Arc<dyn TokenCredential> = match kind {
        AzureCredential::WorkloadIdentity => {
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions {
                    client_options,
                },
                ..WorkloadIdentityCredentialOptions::default()
            }))
            .map_err(|e| format!("workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE): {e}"))?
        }
        AzureCredential::ManagedIdentity => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                client_options,
                ..ManagedIdentityCredentialOptions::default()
            }))
            .map_err(|e| format!("managed identity: {e}"))?
        }
        AzureCredential::ClientSecret => {
            let var = |name: &str| {
                std::env::var(name).map_err(|_| format!("client secret: {name} is not set"))
            };
            ClientSecretCredential::new(
                &var("AZURE_TENANT_ID")?,
                var("AZURE_CLIENT_ID")?,
                Secret::new(var("AZURE_CLIENT_SECRET")?),
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map_err(|e| format!("client secret: {e}"))?
        }
    };
    Ok(credential)
}

struct AksTokenSource {
    credential: Arc<dyn TokenCredential>,
    scope: String,
}

impl TokenSource for AksTokenSource {
    fn token(&self) -> BoxFuture<'_, Result<Token, CloudError>> {
        Box::pin(async move {
            let token = self
                .credential
                .get_token(&[AKS_SCOPE], None)
                .await
                .map_err(|e| CloudError::Credentials {
                    cluster: self.scope.clone(),
                    cloud: "azure",
                    message: e.to_string(),
                    help: Some("check the identity named by `credential:` in the environment file and that it may sign in to the tenant".into()),
                })?;
            let now = SystemTime::now();
            Ok(Token::new(
                token.token.secret().to_string(),
                now,
                SystemTime::from(token.expires_on),
            ))
        })
    }
}

/// AKS in one subscription: discovery and token sources.
#[derive(Clone)]
pub struct AksDiscovery {
    subscription: String,
    arm: String,
    pipeline: Pipeline,
    credential: Arc<dyn TokenCredential>,
}

impl fmt::Debug for AksDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AksDiscovery")
            .field("subscription", &self.subscription)
            .field("arm", &self.arm)
            .finish_non_exhaustive()
    }
}

impl AksDiscovery {
    /// ARM calls for `subscription` with `credential`.
    pub fn new(
        subscription: &str,
        credential: Arc<dyn TokenCredential>,
        options: &AksOptions,
    ) -> AksDiscovery {
        let arm = options.arm().to_string();
        let policy =
            BearerTokenAuthorizationPolicy::new(credential.clone(), [format!("{arm}/.default")]);
        let pipeline = Pipeline::new(
            Some("tidegate-cloud"),
            Some(env!("CARGO_PKG_VERSION")),
            options.client_options(),
            Vec::new(),
            vec![Arc::new(policy)],
            None,
        );
        AksDiscovery {
            subscription: subscription.to_string(),
            arm,
            pipeline,
            credential,
        }
    }

    async fn call(
        &self,
        scope: &str,
        call: &str,
        method: Method,
        url: &str,
    ) -> Result<serde_json::Value, CloudError> {
        let failed = |message: String, status: Option<u16>| CloudError::Call {
            cluster: scope.to_string(),
            call: call.to_string(),
            help: CloudError::advice(
                status,
                "Microsoft.ContainerService/managedClusters/read and listClusterUserCredential/action (e.g. the Azure Kubernetes Service Cluster User role)",
            ),
            message,
            status,
        };
        let url = Url::parse(url).map_err(|e| failed(format!("bad URL {url}: {e}"), None))?;
        let mut request = Request::new(url, method);
        if method == Method::Post {
            request.set_body(azure_core::Bytes::from_static(b""));
        }
        let options = PipelineSendOptions {
            skip_checks: true,
            ..PipelineSendOptions::default()
        };
        let response = self
            .pipeline
            .send(&Context::new(), &mut request, Some(options))
            .await
            .map_err(|e| failed(e.to_string(), None))?;
        let status = u16::from(response.status());
        let body: serde_json::Value =
            serde_json::from_slice(response.body().as_ref()).unwrap_or(serde_json::Value::Null);
        if !(200..300).contains(&status) {
            let code = body["error"]["code"].as_str().unwrap_or("");
            let message = body["error"]["message"].as_str().unwrap_or("");
            return Err(failed(
                format!("HTTP {status} {code}: {message}"),
                Some(status),
            ));
        }
        Ok(body)
    }

    /// Every cluster of the subscription (or of `resource_group`) that is
    /// provisioned, whose tags include all of `tags`, sorted by name.
    pub async fn list(
        &self,
        resource_group: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<DiscoveredCluster>, CloudError> {
        let base = match resource_group {
            Some(rg) => format!("/subscriptions/{}/resourceGroups/{rg}", self.subscription),
            None => format!("/subscriptions/{}", self.subscription),
        };
        let scope = format!("aks {base}");
        let mut next = Some(format!(
            "{}{base}/providers/Microsoft.ContainerService/managedClusters?api-version={AKS_API_VERSION}",
            self.arm
        ));
        let mut matching = Vec::new();
        while let Some(url) = next.take() {
            let page = self
                .call(&scope, "managedClusters list", Method::Get, &url)
                .await?;
            for cluster in page["value"].as_array().into_iter().flatten() {
                let status = status(cluster);
                let cluster_tags = tags_of(cluster);
                if status == "Succeeded" && tags.iter().all(|(k, v)| cluster_tags.get(k) == Some(v))
                {
                    matching.push(cluster.clone());
                }
            }
            next = page["nextLink"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string);
        }
        // listClusterUserCredential for several clusters at once.
        let mut found = stream::iter(matching)
            .map(|cluster| async move {
                let id = cluster["id"].as_str().unwrap_or_default().to_string();
                self.with_credentials(&cluster, &id).await
            })
            .buffered(crate::eks::DESCRIBE_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// One cluster.
    pub async fn describe(
        &self,
        resource_group: &str,
        name: &str,
    ) -> Result<DiscoveredCluster, CloudError> {
        let id = format!(
            "/subscriptions/{}/resourceGroups/{resource_group}/providers/Microsoft.ContainerService/managedClusters/{name}",
            self.subscription
        );
        let url = format!("{}{id}?api-version={AKS_API_VERSION}", self.arm);
        let cluster = self
            .call(name, "managedClusters get", Method::Get, &url)
            .await?;
        self.with_credentials(&cluster, &id).await
    }

    /// Server and CA from `listClusterUserCredential` (only those: the
    /// kubeconfig's users are ignored).
    async fn with_credentials(
        &self,
        cluster: &serde_json::Value,
        id: &str,
    ) -> Result<DiscoveredCluster, CloudError> {
        let name = cluster["name"].as_str().unwrap_or_default().to_string();
        let url = format!(
            "{}{id}/listClusterUserCredential?api-version={AKS_API_VERSION}",
            self.arm
        );
        let answer = self
            .call(
                &name,
                "managedClusters listClusterUserCredential",
                Method::Post,
                &url,
            )
            .await?;
        let invalid = |message: String| CloudError::Invalid {
            cluster: name.clone(),
            message: format!("listClusterUserCredential: {message}"),
        };
        let encoded = answer["kubeconfigs"][0]["value"]
            .as_str()
            .ok_or_else(|| invalid("no kubeconfig in the answer".into()))?;
        let yaml = azure_core::base64::decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| invalid("the kubeconfig is not base64 of text".into()))?;
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml)
            .map_err(|e| invalid(format!("the kubeconfig does not parse: {e}")))?;
        let entry = kubeconfig
            .clusters
            .first()
            .and_then(|c| c.cluster.as_ref())
            .ok_or_else(|| invalid("the kubeconfig has no cluster".into()))?;
        let server = entry
            .server
            .clone()
            .ok_or_else(|| invalid("the kubeconfig's cluster has no server".into()))?;
        let ca = decode_ca(
            entry
                .certificate_authority_data
                .as_deref()
                .unwrap_or_default(),
        )
        .map_err(|e| invalid(format!("certificate-authority-data: {e}")))?;
        let properties = &cluster["properties"];
        Ok(DiscoveredCluster {
            name: name.clone(),
            provider: "aks",
            location: cluster["location"].as_str().unwrap_or_default().to_string(),
            endpoint: Endpoint { server, ca },
            version: properties["currentKubernetesVersion"]
                .as_str()
                .or_else(|| properties["kubernetesVersion"].as_str())
                .unwrap_or_default()
                .to_string(),
            status: status(cluster),
            tags: tags_of(cluster),
            resource_group: resource_group_of(id),
        })
    }

    /// Entra tokens for the AKS server application.
    pub fn token_source(&self) -> Arc<dyn TokenSource> {
        Arc::new(AksTokenSource {
            credential: self.credential.clone(),
            scope: format!("aks subscription {}", self.subscription),
        })
    }
}

fn status(cluster: &serde_json::Value) -> String {
    cluster["properties"]["provisioningState"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The resource group in an ARM id (`/subscriptions/s/resourceGroups/<rg>/...`).
fn resource_group_of(id: &str) -> Option<String> {
    let mut parts = id.split('/');
    parts
        .by_ref()
        .find(|p| p.eq_ignore_ascii_case("resourceGroups"))?;
    parts.next().filter(|p| !p.is_empty()).map(str::to_string)
}

fn tags_of(cluster: &serde_json::Value) -> BTreeMap<String, String> {
    cluster["tags"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
pub(crate) mod tests;
