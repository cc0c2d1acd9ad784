//! Charts from Helm repositories (`index.yaml` over HTTPS) and OCI
//! registries, fetched into the cache by version and verified by digest.
//!
//! - Helm repository: the entry of `chart` at `version` in `index.yaml`
//!   names the `.tgz` and its sha256 `digest`; the download must match it,
//!   and the environment's `digest` pin when there is one.
//! - OCI: the manifest `oci://host/path/chart:version`; its sha256 is the
//!   manifest digest (checked against the pin), and the chart layer's blob
//!   must match the layer digest the manifest gives.
//!
//! Cached charts are keyed by repository, chart and version and checked
//! against their recorded digest before use; with a pin and a cached chart
//! of that digest, nothing is fetched. Credentials come from the
//! environment only (`TIDEGATE_HELM_USERNAME`, `TIDEGATE_HELM_PASSWORD`:
//! basic authentication, or exchanged for a registry's bearer token when it
//! challenges) and are never logged; `TIDEGATE_HELM_CA_FILE` adds trusted CAs.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The media type of a Helm chart's content layer in an OCI manifest.
const HELM_CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// Largest `index.yaml`, manifest or chart fetched.
const MAX_DOWNLOAD_BYTES: usize = 64 << 20;

/// A published chart to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChartRef {
    /// `https://…` or `oci://…`.
    pub repo_url: String,
    /// The chart's name.
    pub chart: String,
    /// Its exact version.
    pub version: String,
    /// The pinned digest, if any.
    pub digest: Option<String>,
}

/// Why a chart could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// An HTTP request failed or was refused.
    #[error("{0}")]
    Http(String),
    /// The repository or registry does not have it.
    #[error("{0}")]
    NotFound(String),
    /// The bytes do not match the digest.
    #[error("{0}")]
    Digest(String),
    /// The cache cannot be written.
    #[error("chart cache {path}: {source}")]
    Cache {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Fetches charts over HTTPS into `<cache>/charts/`.
#[derive(Debug, Clone)]
pub struct ChartFetcher {
    dir: PathBuf,
    client: Option<reqwest::Client>,
    client_error: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl ChartFetcher {
    /// A fetcher caching under `cache_dir/charts`, configured from the
    /// environment (`TIDEGATE_HELM_CA_FILE`, `TIDEGATE_HELM_USERNAME`,
    /// `TIDEGATE_HELM_PASSWORD`).
    pub fn from_env(cache_dir: &Path) -> ChartFetcher {
        let ca = std::env::var_os("TIDEGATE_HELM_CA_FILE").map(|file| {
            std::fs::read(&file)
                .map_err(|e| format!("TIDEGATE_HELM_CA_FILE {}: {e}", Path::new(&file).display()))
        });
        let mut fetcher = ChartFetcher::new(cache_dir, ca.transpose());
        fetcher.username = std::env::var("TIDEGATE_HELM_USERNAME").ok();
        fetcher.password = std::env::var("TIDEGATE_HELM_PASSWORD").ok();
        fetcher
    }

    /// A fetcher caching under `cache_dir/charts` that also trusts the CAs
    /// of `ca_pem` (a PEM bundle), without credentials.
    pub fn new(cache_dir: &Path, ca_pem: Result<Option<Vec<u8>>, String>) -> ChartFetcher {
        let (client, client_error) = match ca_pem.and_then(|pem| http_client(pem.as_deref())) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
        ChartFetcher {
            dir: cache_dir.join("charts"),
            client,
            client_error,
            username: None,
            password: None,
        }
    }

    /// The same fetcher caching under `cache_dir/charts`.
    pub fn in_dir(mut self, cache_dir: &Path) -> ChartFetcher {
        self.dir = cache_dir.join("charts");
        self
    }

    /// The path of the chart's verified `.tgz`, fetching it when needed.
    pub async fn fetch(&self, chart: &ChartRef) -> Result<PathBuf, FetchError> {
        let dir = self.dir.join(cache_key(chart));
        let tgz = dir.join(format!("{}-{}.tgz", chart.chart, chart.version));
        let recorded = dir.join("digest");
        if let Some(path) = self.cached(chart, &tgz, &recorded) {
            return Ok(path);
        }
        let (bytes, digest) = if let Some(oci) = chart.repo_url.strip_prefix("oci://") {
            self.fetch_oci(oci, chart).await?
        } else {
            self.fetch_repository(chart).await?
        };
        write_atomic(&tgz, &bytes)?;
        write_atomic(&recorded, digest.as_bytes())?;
        Ok(tgz)
    }

    /// The cached chart when its recorded digest matches the pin (if any)
    /// and its content still matches what was verified when it was fetched.
    fn cached(&self, chart: &ChartRef, tgz: &Path, recorded: &Path) -> Option<PathBuf> {
        let digest = std::fs::read_to_string(recorded).ok()?;
        let content = std::fs::read_to_string(tgz.with_extension("tgz.sha256")).ok()?;
        if chart.digest.as_ref().is_some_and(|pin| *pin != digest) {
            return None;
        }
        let bytes = std::fs::read(tgz).ok()?;
        (sha256_digest(&bytes) == content).then(|| tgz.to_path_buf())
    }

    fn client(&self) -> Result<&reqwest::Client, FetchError> {
        self.client
            .as_ref()
            .ok_or_else(|| FetchError::Http(self.client_error.clone().unwrap_or_default()))
    }

    async fn get(&self, url: &str, accept: Option<&str>) -> Result<reqwest::Response, FetchError> {
        let send = |bearer: Option<&str>| {
            let mut request = self.client()?.get(url);
            if let Some(a) = accept {
                request = request.header(reqwest::header::ACCEPT, a);
            }
            request = match (bearer, &self.username) {
                (Some(token), _) => request.bearer_auth(token),
                (None, Some(user)) => request.basic_auth(user, self.password.as_ref()),
                (None, None) => request,
            };
            Ok::<_, FetchError>(request.send())
        };
        let http = |e: reqwest::Error| {
            FetchError::Http(format!("GET {}: {}", redact(url), error_chain(&e)))
        };
        let response = send(None)?.await.map_err(http)?;
        // OCI registries (ghcr.io, Docker Hub...) answer 401 with a token
        // endpoint: exchange the credentials (or nothing) for a bearer token.
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        match challenge {
            Some(challenge) if response.status() == reqwest::StatusCode::UNAUTHORIZED => {
                let token = self.bearer_token(&challenge).await?;
                send(Some(&token))?.await.map_err(http)
            }
            _ => Ok(response),
        }
    }

    /// The token of a `WWW-Authenticate: Bearer realm=…,service=…,scope=…`
    /// challenge (Docker registry token authentication).
    async fn bearer_token(&self, challenge: &str) -> Result<String, FetchError> {
        let mut params: Vec<(String, String)> = Vec::new();
        let mut realm = None;
        for part in challenge.split(',') {
            let Some((key, value)) = part.trim().split_once('=') else {
                continue;
            };
            let value = value.trim_matches('"').to_string();
            match key {
                "realm" => realm = Some(value),
                "service" | "scope" => params.push((key.to_string(), value)),
                _ => {}
            }
        }
        let realm = realm.ok_or_else(|| {
            FetchError::Http("the registry asked for a token without a realm".into())
        })?;
        let url = reqwest::Url::parse_with_params(&realm, &params)
            .map_err(|e| FetchError::Http(format!("token realm {}: {e}", redact(&realm))))?;
        let mut request = self.client()?.get(url);
        if let Some(user) = &self.username {
            request = request.basic_auth(user, self.password.as_ref());
        }
        let failed = |why: String| {
            FetchError::Http(format!(
                "token from {}: {why} (set TIDEGATE_HELM_USERNAME and TIDEGATE_HELM_PASSWORD)",
                redact(&realm)
            ))
        };
        let response = request.send().await.map_err(|e| failed(error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(failed(response.status().to_string()));
        }
        let body: serde_json::Value = response.json().await.map_err(|e| failed(error_chain(&e)))?;
        body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| failed("no token in the answer".into()))
    }

    async fn get_bytes(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<(Vec<u8>, reqwest::header::HeaderMap), FetchError> {
        let response = self.get(url, accept).await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(FetchError::NotFound(format!(
                "GET {}: 404 Not Found",
                redact(url)
            )));
        }
        if !status.is_success() {
            let hint = if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN
            {
                " (set TIDEGATE_HELM_USERNAME and TIDEGATE_HELM_PASSWORD)"
            } else {
                ""
            };
            return Err(FetchError::Http(format!(
                "GET {}: {status}{hint}",
                redact(url)
            )));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOWNLOAD_BYTES as u64)
        {
            return Err(FetchError::Http(format!(
                "GET {}: more than {MAX_DOWNLOAD_BYTES} bytes",
                redact(url)
            )));
        }
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| FetchError::Http(format!("GET {}: {}", redact(url), error_chain(&e))))?;
        if bytes.len() > MAX_DOWNLOAD_BYTES {
            return Err(FetchError::Http(format!(
                "GET {}: more than {MAX_DOWNLOAD_BYTES} bytes",
                redact(url)
            )));
        }
        Ok((bytes.to_vec(), headers))
    }

    /// `index.yaml` → the entry's URL and digest → the verified `.tgz`.
    async fn fetch_repository(&self, chart: &ChartRef) -> Result<(Vec<u8>, String), FetchError> {
        let base = chart.repo_url.trim_end_matches('/');
        let index_url = format!("{base}/index.yaml");
        let (index, _) = self.get_bytes(&index_url, None).await?;
        let index: serde_json::Value = serde_saphyr::from_slice(&index).map_err(|e| {
            FetchError::Http(format!(
                "{}: not a Helm repository index: {e}",
                redact(&index_url)
            ))
        })?;
        let entries = index["entries"][&chart.chart].as_array();
        let Some(entry) = entries.and_then(|versions| {
            versions
                .iter()
                .find(|v| v["version"].as_str() == Some(chart.version.as_str()))
        }) else {
            let known: Vec<&str> = entries
                .into_iter()
                .flatten()
                .filter_map(|v| v["version"].as_str())
                .take(10)
                .collect();
            return Err(FetchError::NotFound(if entries.is_none() {
                format!(
                    "the Helm repository {} has no chart {:?}",
                    redact(base),
                    chart.chart
                )
            } else {
                format!(
                    "the Helm repository {} has no version {:?} of chart {:?} (it has {})",
                    redact(base),
                    chart.version,
                    chart.chart,
                    known.join(", ")
                )
            }));
        };
        let index_digest = entry["digest"].as_str().map(|d| {
            if d.starts_with("sha256:") {
                d.to_string()
            } else {
                format!("sha256:{d}")
            }
        });
        let expected = match (&index_digest, &chart.digest) {
            (Some(index), Some(pin)) if index != pin => {
                return Err(FetchError::Digest(format!(
                    "index.yaml gives digest {index} for {} {}, but the environment pins {pin}",
                    chart.chart, chart.version
                )));
            }
            (_, Some(pin)) => pin.clone(),
            (Some(index), None) => index.clone(),
            (None, None) => {
                return Err(FetchError::Digest(format!(
                    "index.yaml gives no digest for {} {}, so the chart cannot be verified",
                    chart.chart, chart.version
                )));
            }
        };
        let Some(url) = entry["urls"][0].as_str() else {
            return Err(FetchError::NotFound(format!(
                "index.yaml lists {} {} without a download URL",
                chart.chart, chart.version
            )));
        };
        let url = if url.contains("://") {
            url.to_string()
        } else {
            format!("{base}/{}", url.trim_start_matches("./"))
        };
        let (bytes, _) = self.get_bytes(&url, None).await?;
        let actual = sha256_digest(&bytes);
        if actual != expected {
            return Err(FetchError::Digest(format!(
                "{} has digest {actual}, expected {expected}",
                redact(&url)
            )));
        }
        Ok((bytes, expected))
    }

    /// The manifest (its sha256 is the chart's digest) → the chart layer.
    async fn fetch_oci(
        &self,
        reference: &str,
        chart: &ChartRef,
    ) -> Result<(Vec<u8>, String), FetchError> {
        let reference = reference.trim_end_matches('/');
        let (host, path) = reference.split_once('/').unwrap_or((reference, ""));
        let repository = if path.is_empty() {
            chart.chart.clone()
        } else {
            format!("{path}/{}", chart.chart)
        };
        let tag = chart.version.replace('+', "_");
        let manifest_url = format!("https://{host}/v2/{repository}/manifests/{tag}");
        let (manifest, _) = self
            .get_bytes(
                &manifest_url,
                Some("application/vnd.oci.image.manifest.v1+json"),
            )
            .await
            .map_err(|e| match e {
                FetchError::NotFound(_) => FetchError::NotFound(format!(
                    "the registry {host} has no chart {repository}:{tag}"
                )),
                other => other,
            })?;
        let digest = sha256_digest(&manifest);
        if let Some(pin) = &chart.digest
            && *pin != digest
        {
            return Err(FetchError::Digest(format!(
                "oci://{host}/{repository}:{tag} has manifest digest {digest}, but the environment pins {pin}"
            )));
        }
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).map_err(|e| {
            FetchError::Http(format!(
                "oci://{host}/{repository}:{tag}: not an OCI manifest: {e}"
            ))
        })?;
        let Some(layer) = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["mediaType"].as_str() == Some(HELM_CHART_LAYER))
            .and_then(|l| l["digest"].as_str())
        else {
            return Err(FetchError::NotFound(format!(
                "oci://{host}/{repository}:{tag} is not a Helm chart (no {HELM_CHART_LAYER} layer)"
            )));
        };
        let (bytes, _) = self
            .get_bytes(
                &format!("https://{host}/v2/{repository}/blobs/{layer}"),
                None,
            )
            .await?;
        let actual = sha256_digest(&bytes);
        if actual != layer {
            return Err(FetchError::Digest(format!(
                "the chart layer of oci://{host}/{repository}:{tag} has digest {actual}, expected {layer}"
            )));
        }
        Ok((bytes, digest))
    }
}

fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .no_proxy();
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("trusted CAs (TIDEGATE_HELM_CA_FILE): {e}"))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// A directory name per repository, chart and version.
fn cache_key(chart: &ChartRef) -> String {
    let hash = sha256_digest(chart.repo_url.as_bytes());
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "{}-{}/{}/{}",
        safe(
            chart
                .repo_url
                .split("://")
                .nth(1)
                .unwrap_or("repo")
                .split('/')
                .next()
                .unwrap_or("repo")
        ),
        &hash[7..19],
        safe(&chart.chart),
        safe(&chart.version)
    )
}

/// Writes through a temporary file so a reader never sees half a file;
/// `.tgz` files get a `.tgz.sha256` beside them.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    let err = |source| FetchError::Cache {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::fs::write(tmp.path(), bytes).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    if path.extension().is_some_and(|e| e == "tgz") {
        write_atomic(
            &path.with_extension("tgz.sha256"),
            sha256_digest(bytes).as_bytes(),
        )?;
    }
    Ok(())
}

/// A URL without user information or query (which may carry credentials).
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let rest = match rest.split_once('/') {
        Some((authority, path)) => format!(
            "{}/{path}",
            authority.rsplit('@').next().unwrap_or(authority)
        ),
        None => rest.rsplit('@').next().unwrap_or(rest).to_string(),
    };
    if scheme.is_empty() {
        rest
    } else {
        format!("{scheme}://{rest}")
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_and_keys_readable() {
        assert_eq!(
            redact("https://u:p@charts.example/x?token=1"),
            "https://charts.example/x"
        );
        assert_eq!(redact("https://charts.example"), "https://charts.example");
        let key = cache_key(&ChartRef {
            repo_url: "https://charts.example/stable".into(),
            chart: "web".into(),
            version: "1.2.3".into(),
            digest: None,
        });
        assert!(key.starts_with("charts.example-"), "{key}");
        assert!(key.ends_with("/web/1.2.3"), "{key}");
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
