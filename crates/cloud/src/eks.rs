//! Amazon EKS: discovery with ListClusters + DescribeCluster, and tokens
//! built like `aws eks get-token` (a presigned STS GetCallerIdentity URL).

use crate::{CloudError, DiscoveredCluster, Endpoint, Token, TokenSource, decode_ca};
use aws_config::{BehaviorVersion, Region, sts::AssumeRoleProvider};
use aws_credential_types::{
    Credentials,
    provider::{ProvideCredentials, SharedCredentialsProvider},
};
use aws_sdk_eks::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign},
    sign::v4,
};
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{StreamExt as _, future::BoxFuture, stream};
use std::{
    collections::BTreeMap,
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

/// How long an EKS token is used: the API server accepts it for 15 minutes.
const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);
/// `X-Amz-Expires` of the presigned URL, as `aws eks get-token` sets it.
const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);
/// How many DescribeCluster calls run at once during discovery.
pub(crate) const DESCRIBE_CONCURRENCY: usize = 8;
/// The header naming the cluster, signed into the URL.
const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";

/// The STS host of a region (`sts.<region>.amazonaws.com`, `.com.cn` in China).
fn sts_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("sts.{region}.amazonaws.com.cn")
    } else {
        format!("sts.{region}.amazonaws.com")
    }
}

/// Presigns `GET https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15`
/// at `time` with query-string SigV4, signing `x-k8s-aws-id: <cluster>` and
/// `X-Amz-Expires=60`.
pub fn sts_presigned_url(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    time: SystemTime,
) -> Result<String, String> {
    let url = format!(
        "https://{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_host(region)
    );
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        "GET",
        &url,
        [(CLUSTER_ID_HEADER, cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| format!("SigV4 request: {e}"))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("SigV4 signing: {e}"))?
        .into_parts();
    let mut request = http::Request::builder()
        .uri(&url)
        .body(())
        .map_err(|e| format!("presigned URL: {e}"))?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request.uri().to_string())
}

/// The bearer token of a presigned URL: `k8s-aws-v1.` + unpadded base64url.
pub fn eks_token(presigned_url: &str) -> String {
    format!("k8s-aws-v1.{}", URL_SAFE_NO_PAD.encode(presigned_url))
}

/// Tokens for one EKS cluster from an AWS credentials provider.
struct EksTokenSource {
    credentials: SharedCredentialsProvider,
    region: String,
    cluster: String,
}

impl TokenSource for EksTokenSource {
    fn token(&self) -> BoxFuture<'_, Result<Token, CloudError>> {
        Box::pin(async move {
            let credentials = self.credentials.provide_credentials().await.map_err(|e| {
                CloudError::Credentials {
                    cluster: self.cluster.clone(),
                    cloud: "aws",
                    message: chain(&e),
                    help: Some(CREDENTIALS_HELP.into()),
                }
            })?;
            let now = SystemTime::now();
            let url = sts_presigned_url(&credentials, &self.region, &self.cluster, now).map_err(
                |message| CloudError::Invalid {
                    cluster: self.cluster.clone(),
                    message,
                },
            )?;
            let mut expires = now + TOKEN_LIFETIME;
            if let Some(limit) = credentials.expiry() {
                expires = expires.min(limit);
            }
            Ok(Token::new(eks_token(&url), now, expires))
        })
    }
}

/// EKS in one region: discovery and token sources.
#[derive(Clone)]
pub struct EksDiscovery {
    region: String,
    credentials: SharedCredentialsProvider,
    client: aws_sdk_eks::Client,
}

impl fmt::Debug for EksDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EksDiscovery")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl EksDiscovery {
    /// Credentials from the default chain (environment, profile, web identity,
    /// EKS Pod Identity, IMDS; never `credential_process`), optionally used to
    /// assume `role_arn`. `AWS_ENDPOINT_URL_EKS` or `endpoint_url` overrides
    /// the EKS endpoint.
    pub async fn new(
        region: &str,
        role_arn: Option<&str>,
        endpoint_url: Option<&str>,
    ) -> Result<EksDiscovery, CloudError> {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .load()
            .await;
        let credentials = match role_arn {
            Some(role) => SharedCredentialsProvider::new(
                AssumeRoleProvider::builder(role)
                    .session_name("tidegate")
                    .configure(&sdk)
                    .build()
                    .await,
            ),
            None => sdk
                .credentials_provider()
                .ok_or_else(|| CloudError::Credentials {
                    cluster: format!("eks region {region}"),
                    cloud: "aws",
                    message: "no credentials provider is configured".into(),
                    help: None,
                })?,
        };
        let mut config =
            aws_sdk_eks::config::Builder::from(&sdk).credentials_provider(credentials.clone());
        if let Some(url) = endpoint_url {
            config = config.endpoint_url(url);
        }
        Ok(EksDiscovery {
            region: region.to_string(),
            client: aws_sdk_eks::Client::from_conf(config.build()),
            credentials,
        })
    }

    /// Fixed credentials and an explicit endpoint (tests, stubs).
    pub fn with_credentials(
        region: &str,
        credentials: Credentials,
        endpoint_url: &str,
    ) -> EksDiscovery {
        let credentials = SharedCredentialsProvider::new(credentials);
        let config = aws_sdk_eks::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(credentials.clone())
            .endpoint_url(endpoint_url)
            .build();
        EksDiscovery {
            region: region.to_string(),
            client: aws_sdk_eks::Client::from_conf(config),
            credentials,
        }
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Every ACTIVE cluster of the region whose tags include all of `tags`,
    /// sorted by name.
    pub async fn list(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<DiscoveredCluster>, CloudError> {
        let scope = format!("eks region {}", self.region);
        let mut names = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .list_clusters()
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| call_error(&scope, "eks:ListClusters", e))?;
            names.extend(page.clusters().iter().cloned());
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => break,
            }
        }
        // DescribeCluster for several clusters at once: one round trip each.
        let described: Vec<Result<DiscoveredCluster, CloudError>> = stream::iter(names)
            .map(|name| async move { self.describe(&name).await })
            .buffered(DESCRIBE_CONCURRENCY)
            .collect()
            .await;
        let mut found = Vec::new();
        for cluster in described {
            let cluster = cluster?;
            if cluster.status != "ACTIVE" {
                tracing::debug!(cluster = %cluster.name, status = %cluster.status, "skipping an EKS cluster that is not ACTIVE");
                continue;
            }
            if tags.iter().all(|(k, v)| cluster.tags.get(k) == Some(v)) {
                found.push(cluster);
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// One cluster by name.
    pub async fn describe(&self, name: &str) -> Result<DiscoveredCluster, CloudError> {
        let out = self
            .client
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| call_error(name, "eks:DescribeCluster", e))?;
        let invalid = |message: &str| CloudError::Invalid {
            cluster: name.to_string(),
            message: format!("eks:DescribeCluster: {message}"),
        };
        let cluster = out
            .cluster()
            .ok_or_else(|| invalid("no cluster in the answer"))?;
        let status = cluster
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let server = cluster.endpoint().unwrap_or_default().to_string();
        let ca_data = cluster
            .certificate_authority()
            .and_then(|c| c.data())
            .unwrap_or_default();
        let ca = if status == "ACTIVE" {
            if server.is_empty() {
                return Err(invalid("the cluster has no endpoint"));
            }
            decode_ca(ca_data).map_err(|e| invalid(&format!("certificateAuthority.data: {e}")))?
        } else {
            Vec::new()
        };
        Ok(DiscoveredCluster {
            name: cluster.name().unwrap_or(name).to_string(),
            provider: "eks",
            location: self.region.clone(),
            endpoint: Endpoint { server, ca },
            version: cluster.version().unwrap_or_default().to_string(),
            status,
            tags: cluster
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            resource_group: None,
        })
    }

    /// Bearer tokens for `cluster` signed with this region's credentials.
    pub fn token_source(&self, cluster: &str) -> Arc<dyn TokenSource> {
        Arc::new(EksTokenSource {
            credentials: self.credentials.clone(),
            region: self.region.clone(),
            cluster: cluster.to_string(),
        })
    }
}

fn call_error<E, R>(cluster: &str, call: &str, error: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + HasStatus,
{
    let status = error.raw_response().map(HasStatus::status);
    let code = error.code().map(str::to_string);
    let detail = match &error {
        SdkError::ServiceError(service) => service
            .err()
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| DisplayErrorContext(service.err()).to_string()),
        other => chain(other),
    };
    let credentials = detail.contains("loading credentials");
    let message = match (status, code) {
        (Some(s), Some(c)) => format!("HTTP {s} {c}: {detail}"),
        (Some(s), None) => format!("HTTP {s}: {detail}"),
        (None, _) => detail,
    };
    let status = status.or(if error.code() == Some("ThrottlingException") {
        Some(429)
    } else {
        None
    });
    let help = if credentials {
        Some(CREDENTIALS_HELP.to_string())
    } else {
        CloudError::advice(status, "eks:ListClusters and eks:DescribeCluster")
    };
    CloudError::Call {
        cluster: cluster.to_string(),
        call: call.to_string(),
        message,
        help,
        status,
    }
}

/// An error and its sources, as text (`Display` only: no debug dumps).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

const CREDENTIALS_HELP: &str = "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity (IRSA) or EKS Pod Identity; credential_process is not supported";

/// The HTTP status of a raw SDK response.
trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
pub(crate) mod tests;
