use super::*;
use crate::stub::{Answer, Seen, serve};
use base64::engine::general_purpose::STANDARD;

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
/// A throwaway RSA key made for this test only.
const TEST_KEY: &str = include_str!("testdata/test-sa-key.pem");

fn cluster(name: &str, location: &str, status: &str, env: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "location": location,
        "endpoint": "34.118.1.2",
        "currentMasterVersion": "1.31.2-gke.1000",
        "status": status,
        "masterAuth": {"clusterCaCertificate": STANDARD.encode(CA_PEM)},
        "resourceLabels": {"env": env, "tidegate-wave": "2"},
        "selfLink": format!("https://container.googleapis.com/v1/projects/p1/locations/{location}/clusters/{name}"),
    })
}

pub(crate) fn google(seen: &Seen) -> Answer {
    let path = seen.target.split('?').next().unwrap_or_default();
    match path {
        "/computeMetadata/v1/instance/service-accounts/default/token" => {
            assert_eq!(seen.header("metadata-flavor"), Some("Google"));
            (200, Vec::new(), r#"{"access_token":"ya29.mds-token","expires_in":3599,"token_type":"Bearer"}"#.into())
        }
        "/v1/projects/p1/locations/-/clusters" => (
            200,
            Vec::new(),
            serde_json::json!({"clusters": [
                cluster("web-b", "us-central1", "RUNNING", "prod"),
                cluster("web-a", "us-central1", "RUNNING", "prod"),
                cluster("batch", "europe-west1-b", "RUNNING", "dev"),
                cluster("new", "us-central1", "PROVISIONING", "prod"),
            ]})
            .to_string(),
        ),
        "/v1/projects/denied/locations/-/clusters" => (
            403,
            Vec::new(),
            r#"{"error":{"code":403,"message":"Required \"container.clusters.list\" permission(s) for \"projects/denied\".","status":"PERMISSION_DENIED"}}"#.into(),
        ),
        _ => (
            404,
            Vec::new(),
            r#"{"error":{"code":404,"message":"Not found: projects/p1/locations/us-central1/clusters/missing.","status":"NOT_FOUND"}}"#.into(),
        ),
    }
}

pub(crate) async fn discovery(url: &str, project: &str) -> GkeDiscovery {
    let credentials = google_cloud_auth::credentials::mds::Builder::default()
        .with_endpoint(url)
        .with_scopes([CLOUD_PLATFORM])
        .build_access_token_credentials()
        .unwrap();
    GkeDiscovery::new(project, GkeCredentials::AccessToken(credentials), Some(url))
        .await
        .unwrap()
}

#[tokio::test]
async fn discovery_lists_running_clusters_with_https_endpoints_and_labels() {
    let (url, log) = serve(google).await;
    let gke = discovery(&url, "p1").await;
    let all = gke.list("-", &BTreeMap::new()).await.unwrap();
    let names: Vec<(&str, &str)> = all
        .iter()
        .map(|c| (c.location.as_str(), c.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("europe-west1-b", "batch"),
            ("us-central1", "web-a"),
            ("us-central1", "web-b")
        ]
    );
    let web = &all[1];
    assert_eq!(web.endpoint.server, "https://34.118.1.2");
    assert_eq!(web.endpoint.ca, vec![vec![0, 1, 2]]);
    assert_eq!(web.version, "1.31.2-gke.1000");
    assert_eq!(web.status, "RUNNING");
    let prod = gke
        .list(
            "-",
            &BTreeMap::from([("env".to_string(), "prod".to_string())]),
        )
        .await
        .unwrap();
    assert_eq!(prod.len(), 2);

    // The API call carried the metadata server's access token.
    let list = log
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.target.starts_with("/v1/projects/p1"))
        .cloned()
        .unwrap();
    assert_eq!(list.header("authorization"), Some("Bearer ya29.mds-token"));

    // And so do the API servers.
    let token = gke.token_source().token().await.unwrap();
    assert_eq!(token.secret(), "ya29.mds-token");
}

#[tokio::test]
async fn error_answers_name_the_call_and_the_fix() {
    let (url, _log) = serve(google).await;
    let denied = discovery(&url, "denied").await;
    let error = denied.list("-", &BTreeMap::new()).await.unwrap_err();
    assert_eq!(error.status(), Some(403));
    let text = error.to_string();
    assert!(text.contains("projects/denied/locations/-: container.projects.locations.clusters.list failed: HTTP 403"), "{text}");
    assert!(text.contains("container.clusters.list"), "{text}");
    assert!(text.contains("roles/container.clusterViewer"), "{text}");

    let p1 = discovery(&url, "p1").await;
    let missing = p1
        .describe("us-central1", "missing")
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("HTTP 404"), "{missing}");
    assert!(missing.contains("check the name"), "{missing}");
}

fn token_endpoint(seen: &Seen) -> Answer {
    assert_eq!(seen.method, "POST");
    let form: BTreeMap<String, String> = seen
        .body
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":")))
        .collect();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let parts: Vec<&str> = form["assertion"].split('.').collect();
    assert_eq!(parts.len(), 3, "a signed JWT");
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "key-1");
    assert_eq!(claims["iss"], "deployer@p1.iam.gserviceaccount.com");
    assert_eq!(claims["scope"], CLOUD_PLATFORM);
    assert!(claims["aud"].as_str().unwrap().ends_with("/token"));
    assert!(
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len() == 256,
        "RSA-2048 signature"
    );
    (
        200,
        Vec::new(),
        r#"{"access_token":"ya29.exchanged","expires_in":3599,"token_type":"Bearer"}"#.into(),
    )
}

#[tokio::test]
async fn service_account_keys_give_oauth_access_tokens_not_self_signed_jwts() {
    let (url, log) = serve(token_endpoint).await;
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "p1",
        "private_key_id": "key-1",
        "private_key": TEST_KEY,
        "client_email": "deployer@p1.iam.gserviceaccount.com",
        "client_id": "1234",
        "token_uri": format!("{url}/token"),
    });
    let source = GkeTokenSource {
        credentials: GkeCredentials::ServiceAccountKey(Arc::new(
            ServiceAccountExchange::new(key).unwrap(),
        )),
        scope: "gke project p1".into(),
    };
    let token = source.token().await.unwrap();
    assert_eq!(token.secret(), "ya29.exchanged");
    assert!(
        !token.secret().starts_with("eyJ"),
        "a JWT would be rejected by GKE"
    );
    let left = token
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(3500), "{left:?}");
    assert_eq!(log.lock().unwrap().len(), 1);
}
