use super::*;
use azure_core::http::{
    AsyncRawResponse, HttpClient, StatusCode,
    headers::{HeaderName, Headers},
    request::Body,
};
use std::sync::Mutex;

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
const ARM: &str = "https://management.sovereign.example";
const LOGIN: &str = "https://login.sovereign.example";
const SUB: &str = "00000000-0000-0000-0000-000000000001";

/// What the fake Azure saw: method, URL, Authorization header.
type Seen = Vec<(String, String, Option<String>)>;

/// ARM and Entra answered in-process (azure_core refuses bearer tokens over
/// plain http, so a local http server will not do).
#[derive(Debug, Default)]
pub(crate) struct FakeAzure {
    pub(crate) seen: Mutex<Seen>,
}

fn cluster(name: &str, rg: &str, state: &str, team: &str) -> serde_json::Value {
    serde_json::json!({
        "id": format!("/subscriptions/{SUB}/resourcegroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"),
        "location": "westeurope",
        "name": name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "tags": {"team": team},
        "properties": {
            "provisioningState": state,
            "powerState": {"code": "Running"},
            "kubernetesVersion": "1.31",
            "currentKubernetesVersion": "1.31.3",
            "fqdn": format!("{name}-dns.hcp.westeurope.azmk8s.io"),
        },
    })
}

fn kubeconfig(name: &str) -> String {
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    certificate-authority-data: {}\n    server: https://{name}-dns.hcp.westeurope.azmk8s.io:443\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: clusterUser\nusers:\n- name: clusterUser\n  user:\n    token: must-not-be-used\n",
        azure_core::base64::encode(CA_PEM)
    );
    azure_core::base64::encode(yaml)
}

impl FakeAzure {
    fn answer(&self, method: &str, url: &str, body: &str) -> (u16, String) {
        let list = format!(
            "{ARM}/subscriptions/{SUB}/providers/Microsoft.ContainerService/managedClusters?api-version={AKS_API_VERSION}"
        );
        if url.starts_with(&format!("{LOGIN}/tenant-1/oauth2/v2.0/token")) {
            assert_eq!(method, "POST");
            let token = if body.contains("6dae42f8-4368-4678-94ff-3960e28e3630") {
                "aks-token"
            } else {
                assert!(body.contains("management.sovereign.example"), "{body}");
                "arm-token"
            };
            return (
                200,
                format!(
                    r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"{token}"}}"#
                ),
            );
        }
        if url == list {
            let next = format!(
                "{ARM}/subscriptions/{SUB}/providers/Microsoft.ContainerService/managedClusters?api-version={AKS_API_VERSION}&%24skipToken=page2"
            );
            return (200, serde_json::json!({"value": [cluster("zeta", "rg1", "Succeeded", "web"), cluster("broken", "rg1", "Failed", "web")], "nextLink": next}).to_string());
        }
        if url.contains("skipToken=page2") {
            return (200, serde_json::json!({"value": [cluster("alpha", "rg2", "Succeeded", "web"), cluster("other", "rg2", "Succeeded", "data")]}).to_string());
        }
        if let Some(rest) = url.strip_suffix(&format!(
            "/listClusterUserCredential?api-version={AKS_API_VERSION}"
        )) {
            assert_eq!(method, "POST");
            let name = rest.rsplit('/').next().unwrap();
            return (200, serde_json::json!({"kubeconfigs": [{"name": "clusterUser", "value": kubeconfig(name)}]}).to_string());
        }
        if url.contains("/resourceGroups/denied/") {
            return (403, r#"{"error":{"code":"AuthorizationFailed","message":"The client 'x' does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/read'."}}"#.into());
        }
        if url.contains("/resourceGroups/busy/") {
            return (
                429,
                r#"{"error":{"code":"TooManyRequests","message":"Too many requests."}}"#.into(),
            );
        }
        (404, r#"{"error":{"code":"ResourceNotFound","message":"The Resource 'Microsoft.ContainerService/managedClusters/missing' under resource group 'rg1' was not found."}}"#.into())
    }
}

#[async_trait::async_trait]
impl HttpClient for FakeAzure {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let url = request.url().to_string();
        let method = request.method().to_string().to_uppercase();
        let body = match request.body() {
            Body::Bytes(b) => String::from_utf8_lossy(b).to_string(),
            _ => String::new(),
        };
        let auth = request
            .headers()
            .get_optional_str(&HeaderName::from_static("authorization"))
            .map(str::to_string);
        self.seen
            .lock()
            .unwrap()
            .push((method.clone(), url.clone(), auth));
        let (status, body) = self.answer(&method, &url, &body);
        Ok(AsyncRawResponse::from_bytes(
            StatusCode::from(status),
            Headers::new(),
            body,
        ))
    }
}

pub(crate) fn setup() -> (Arc<FakeAzure>, AksDiscovery) {
    let fake = Arc::new(FakeAzure::default());
    let options = AksOptions {
        arm_endpoint: Some(ARM.into()),
        authority_host: Some(LOGIN.into()),
        transport: Some(Transport::new(fake.clone())),
        no_retries: true,
    };
    let credential = ClientSecretCredential::new(
        "tenant-1",
        "client-1".into(),
        Secret::new("s3cr3t"),
        Some(ClientSecretCredentialOptions {
            client_options: options.client_options(),
        }),
    )
    .unwrap();
    (fake, AksDiscovery::new(SUB, credential, &options))
}

#[tokio::test]
async fn discovery_follows_next_link_and_uses_only_server_and_ca_of_the_kubeconfig() {
    let (fake, aks) = setup();
    let all = aks.list(None, &BTreeMap::new()).await.unwrap();
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["alpha", "other", "zeta"]);
    let alpha = &all[0];
    assert_eq!(
        alpha.endpoint.server,
        "https://alpha-dns.hcp.westeurope.azmk8s.io:443"
    );
    assert_eq!(alpha.endpoint.ca, vec![vec![0, 1, 2]]);
    assert_eq!(alpha.version, "1.31.3");
    assert_eq!(alpha.status, "Succeeded");
    assert_eq!(alpha.location, "westeurope");

    let web = aks
        .list(
            None,
            &BTreeMap::from([("team".to_string(), "web".to_string())]),
        )
        .await
        .unwrap();
    assert_eq!(web.len(), 2);

    // Every ARM call carried the ARM token from the sovereign authority.
    let seen = fake.seen.lock().unwrap().clone();
    let arm_calls: Vec<_> = seen
        .iter()
        .filter(|(_, url, _)| url.starts_with(ARM))
        .collect();
    assert!(arm_calls.len() >= 6, "{arm_calls:?}");
    assert!(
        arm_calls
            .iter()
            .all(|(_, _, auth)| auth.as_deref() == Some("Bearer arm-token"))
    );

    // API servers get a token for the AKS server application.
    let token = aks.token_source().token().await.unwrap();
    assert_eq!(token.secret(), "aks-token");
    assert!(token.expires_at() > SystemTime::now() + std::time::Duration::from_secs(3000));
}

#[tokio::test]
async fn error_answers_name_the_cluster_the_call_and_the_fix() {
    let (_fake, aks) = setup();
    let missing = aks.describe("rg1", "missing").await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
    let text = missing.to_string();
    assert!(
        text.starts_with("missing: managedClusters get failed: HTTP 404 ResourceNotFound"),
        "{text}"
    );
    assert!(text.contains("check the name"), "{text}");

    let denied = aks.describe("denied", "c").await.unwrap_err().to_string();
    assert!(denied.contains("HTTP 403 AuthorizationFailed"), "{denied}");
    assert!(
        denied.contains("Azure Kubernetes Service Cluster User"),
        "{denied}"
    );

    let busy = aks.describe("busy", "c").await.unwrap_err().to_string();
    assert!(busy.contains("HTTP 429"), "{busy}");
    assert!(busy.contains("throttled"), "{busy}");
}
