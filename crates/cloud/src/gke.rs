//! Google Kubernetes Engine: discovery with `projects.locations.clusters`
//! and OAuth access tokens (scope cloud-platform) from Application Default
//! Credentials.
//!
//! Service-account key files make google-cloud-auth send self-signed JWTs,
//! which Google APIs accept but GKE API servers do not: for them the key's
//! JWT is exchanged at its `token_uri` for an OAuth access token.

use crate::{CloudError, DiscoveredCluster, Endpoint, Token, TokenSource, decode_ca};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use google_cloud_auth::credentials::{
    AccessTokenCredentials, Builder as AdcBuilder, Credentials, service_account,
};
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt as _};
use std::{
    collections::BTreeMap,
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// The OAuth scope GKE API servers accept.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How long an access token of unknown lifetime is reused before it is asked
/// for again (google-cloud-auth refreshes its own cache ahead of expiry).
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// Where GKE access tokens come from.
#[derive(Clone)]
pub enum GkeCredentials {
    /// OAuth access tokens from google-cloud-auth (metadata server / Workload
    /// Identity, authorized user, impersonation, external account).
    AccessToken(AccessTokenCredentials),
    /// A service-account key: its JWT is exchanged at `token_uri`.
    ServiceAccountKey(Arc<ServiceAccountExchange>),
}

impl fmt::Debug for GkeCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GkeCredentials::AccessToken(_) => {
                f.write_str("GkeCredentials::AccessToken([redacted])")
            }
            GkeCredentials::ServiceAccountKey(_) => {
                f.write_str("GkeCredentials::ServiceAccountKey([redacted])")
            }
        }
    }
}

impl GkeCredentials {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, the
    /// gcloud well-known file, else the metadata server (`GCE_METADATA_HOST`).
    pub fn from_adc() -> Result<GkeCredentials, String> {
        let path = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|home| {
                    std::path::PathBuf::from(home)
                        .join(".config/gcloud/application_default_credentials.json")
                })
            });
        if let Some(path) = path
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
            if json.get("type").and_then(|t| t.as_str()) == Some("service_account") {
                return Ok(GkeCredentials::ServiceAccountKey(Arc::new(
                    ServiceAccountExchange::new(json)?,
                )));
            }
        }
        AdcBuilder::default()
            .with_scopes([CLOUD_PLATFORM])
            .build_access_token_credentials()
            .map(GkeCredentials::AccessToken)
            .map_err(|e| e.to_string())
    }

    /// Credentials for the GKE API itself (self-signed JWTs are fine there).
    fn for_api(&self) -> Result<Credentials, String> {
        match self {
            GkeCredentials::AccessToken(c) => Ok(c.clone().into()),
            GkeCredentials::ServiceAccountKey(key) => {
                service_account::Builder::new(key.key.clone())
                    .with_access_specifier(service_account::AccessSpecifier::from_scopes([
                        CLOUD_PLATFORM,
                    ]))
                    .build()
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Exchanges a service-account key's signed JWT for an OAuth access token
/// (RFC 7523 JWT bearer grant at the key's `token_uri`).
pub struct ServiceAccountExchange {
    key: serde_json::Value,
    email: String,
    token_uri: String,
    key_id: Option<String>,
    signer: google_cloud_auth::signer::Signer,
    http: reqwest::Client,
}

impl ServiceAccountExchange {
    /// From the key file's JSON.
    pub fn new(key: serde_json::Value) -> Result<ServiceAccountExchange, String> {
        let field = |name: &str| key.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let email = field("client_email").ok_or("service-account key has no client_email")?;
        let token_uri =
            field("token_uri").unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
        let signer = service_account::Builder::new(key.clone())
            .build_signer()
            .map_err(|e| format!("service-account key: {e}"))?;
        Ok(ServiceAccountExchange {
            key_id: field("private_key_id"),
            email,
            token_uri,
            signer,
            http: reqwest::Client::new(),
            key,
        })
    }

    /// A new access token (never the self-signed JWT itself).
    pub async fn access_token(&self) -> Result<(String, Duration), String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.email,
            "scope": CLOUD_PLATFORM,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .signer
            .sign(signing_input.as_bytes())
            .await
            .map_err(|e| format!("signing the JWT: {e}"))?;
        let assertion = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
        let response = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", self.token_uri))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("POST {}: HTTP {status}, not JSON: {e}", self.token_uri))?;
        if !status.is_success() {
            let reason = body
                .get("error_description")
                .or_else(|| body.get("error"))
                .and_then(|v| v.as_str())
                .unwrap_or("no reason given");
            return Err(format!("POST {}: HTTP {status}: {reason}", self.token_uri));
        }
        let token = body
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("POST {}: no access_token in the answer", self.token_uri))?;
        let lifetime = body
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .map_or(UNKNOWN_LIFETIME, Duration::from_secs);
        Ok((token.to_string(), lifetime))
    }
}

struct GkeTokenSource {
    credentials: GkeCredentials,
    scope: String,
}

impl TokenSource for GkeTokenSource {
    fn token(&self) -> BoxFuture<'_, Result<Token, CloudError>> {
        Box::pin(async move {
            let failed = |message: String| {
                CloudError::Credentials {
                cluster: self.scope.clone(),
                cloud: "google",
                message,
                help: Some("set GOOGLE_APPLICATION_CREDENTIALS, run on GCE/GKE with Workload Identity, or use `gcloud auth application-default login` once".into()),
            }
            };
            let now = SystemTime::now();
            match &self.credentials {
                GkeCredentials::AccessToken(c) => {
                    let token = c.access_token().await.map_err(|e| failed(e.to_string()))?;
                    Ok(Token::new(token.token, now, now + UNKNOWN_LIFETIME))
                }
                GkeCredentials::ServiceAccountKey(key) => {
                    let (token, lifetime) = key.access_token().await.map_err(failed)?;
                    Ok(Token::new(token, now, now + lifetime))
                }
            }
        })
    }
}

/// What to do when no Google credentials can be had.
pub(crate) const ADC_HELP: &str = "no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a key or credentials file, or run with Workload Identity (a metadata server)";

/// Most attempts of one GKE API call (the first and two retries).
const GKE_ATTEMPTS: u32 = 3;
/// Longest time one GKE API call is retried.
const GKE_RETRY_LIMIT: Duration = Duration::from_secs(10);

/// GKE in one project: discovery and token sources.
#[derive(Clone)]
pub struct GkeDiscovery {
    project: String,
    credentials: GkeCredentials,
    client: ClusterManager,
}

impl fmt::Debug for GkeDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GkeDiscovery")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl GkeDiscovery {
    /// A client for `project` with `credentials`; `endpoint` overrides
    /// `https://container.googleapis.com`.
    pub async fn new(
        project: &str,
        credentials: GkeCredentials,
        endpoint: Option<&str>,
    ) -> Result<GkeDiscovery, CloudError> {
        let failed = |message: String| CloudError::Credentials {
            cluster: format!("gke project {project}"),
            cloud: "google",
            message,
            help: None,
        };
        // Fail within seconds when credentials cannot be had (the client's
        // default retries for a minute, e.g. without a metadata server).
        let retry = Aip194Strict
            .with_attempt_limit(GKE_ATTEMPTS)
            .with_time_limit(GKE_RETRY_LIMIT);
        let mut builder = ClusterManager::builder()
            .with_credentials(credentials.for_api().map_err(failed)?)
            .with_retry_policy(retry);
        if let Some(url) = endpoint {
            builder = builder.with_endpoint(url);
        }
        let client = builder.build().await.map_err(|e| failed(e.to_string()))?;
        Ok(GkeDiscovery {
            project: project.to_string(),
            credentials,
            client,
        })
    }

    /// Every RUNNING cluster in `location` (`-`: every location) whose
    /// resource labels include all of `labels`, sorted by location and name.
    pub async fn list(
        &self,
        location: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<DiscoveredCluster>, CloudError> {
        let parent = format!("projects/{}/locations/{location}", self.project);
        let response = self
            .client
            .list_clusters()
            .set_parent(&parent)
            .send()
            .await
            .map_err(|e| call_error(&parent, "container.projects.locations.clusters.list", e))?;
        let mut found = Vec::new();
        for cluster in response.clusters {
            let described = describe(&self.project, cluster)?;
            if described.status != "RUNNING" {
                continue;
            }
            if labels.iter().all(|(k, v)| described.tags.get(k) == Some(v)) {
                found.push(described);
            }
        }
        found.sort_by(|a, b| (&a.location, &a.name).cmp(&(&b.location, &b.name)));
        Ok(found)
    }

    /// One cluster.
    pub async fn describe(
        &self,
        location: &str,
        name: &str,
    ) -> Result<DiscoveredCluster, CloudError> {
        let full = format!(
            "projects/{}/locations/{location}/clusters/{name}",
            self.project
        );
        let cluster = self
            .client
            .get_cluster()
            .set_name(&full)
            .send()
            .await
            .map_err(|e| call_error(name, "container.projects.locations.clusters.get", e))?;
        describe(&self.project, cluster)
    }

    /// Access tokens for the API servers of this project's clusters.
    pub fn token_source(&self) -> Arc<dyn TokenSource> {
        Arc::new(GkeTokenSource {
            credentials: self.credentials.clone(),
            scope: format!("gke project {}", self.project),
        })
    }
}

fn describe(
    project: &str,
    cluster: google_cloud_container_v1::model::Cluster,
) -> Result<DiscoveredCluster, CloudError> {
    let status = cluster
        .status
        .name()
        .unwrap_or("STATUS_UNSPECIFIED")
        .to_string();
    let ca_data = cluster
        .master_auth
        .as_ref()
        .map(|m| m.cluster_ca_certificate.as_str())
        .unwrap_or_default();
    let ca = if status == "RUNNING" {
        decode_ca(ca_data).map_err(|e| CloudError::Invalid {
            cluster: cluster.name.clone(),
            message: format!("gke project {project}: masterAuth.clusterCaCertificate: {e}"),
        })?
    } else {
        Vec::new()
    };
    let server = if cluster.endpoint.is_empty() || cluster.endpoint.starts_with("https://") {
        cluster.endpoint.clone()
    } else {
        format!("https://{}", cluster.endpoint)
    };
    Ok(DiscoveredCluster {
        name: cluster.name,
        provider: "gke",
        location: cluster.location,
        endpoint: Endpoint { server, ca },
        version: cluster.current_master_version,
        status,
        tags: cluster.resource_labels.into_iter().collect(),
        resource_group: None,
    })
}

fn call_error(scope: &str, call: &str, error: google_cloud_container_v1::Error) -> CloudError {
    let status = error.http_status_code();
    let message = match (status, error.status()) {
        (Some(code), Some(s)) => format!("HTTP {code} {:?}: {}", s.code, s.message),
        (Some(code), None) => format!("HTTP {code}: {error}"),
        (None, _) => error.to_string(),
    };
    let help = if error.is_authentication() {
        Some(ADC_HELP.to_string())
    } else {
        CloudError::advice(status, "roles/container.clusterViewer on the project")
    };
    CloudError::Call {
        cluster: scope.to_string(),
        call: call.to_string(),
        message,
        help,
        status,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
pub(crate) mod tests;
