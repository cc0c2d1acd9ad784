//! End to end through AKS access, discovered: the `tidegate` binary lists
//! the managed clusters of a subscription at a stub Azure Resource Manager
//! (`TIDEGATE_ARM_ENDPOINT`), takes the API server URL and CA of the one
//! tagged for this fleet from `listClusterUserCredential` (they are those of
//! a real local cluster), obtains Entra tokens with a client secret from a
//! stub authority (`AZURE_AUTHORITY_HOST`: one for ARM, one for the AKS
//! server application), and the local API server accepts the AKS token (a
//! static test token). azure_core sends bearer tokens only over HTTPS, so the
//! stub serves TLS with a certificate of the cluster's CA, trusted through
//! `SSL_CERT_FILE`; every setting goes only to the child processes.

use super::{
    assert_no_credentials, cluster_ca, cluster_ca_file, configmap_field, fleet,
    one_app_environment, output_text as text, tidegate_command,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use tidegate_testkit::http::{Request, Response, StubServer, serve_stub_tls};
use tidegate_testkit::{Fleet, TEST_BEARER_TOKENS};

/// The local cluster the stub ARM describes.
const CONTEXT: &str = "aks-westeurope";
const SUBSCRIPTION: &str = "00000000-0000-0000-0000-00000000e2e0";
const TENANT: &str = "tenant-e2e";
/// The Entra application of AKS API servers.
const AKS_SERVER_APP: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
const ARM_TOKEN: &str = "arm-token-for-the-stub";

/// One managed cluster as ARM lists it.
fn managed_cluster(name: &str, group: &str, fleet: &str, state: &str) -> serde_json::Value {
    serde_json::json!({
        "id": format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}"),
        "location": "westeurope",
        "name": name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "tags": {"fleet": fleet},
        "properties": {
            "provisioningState": state,
            "kubernetesVersion": "1.37",
            "currentKubernetesVersion": "1.37.2",
            "fqdn": format!("{name}-dns.hcp.westeurope.azmk8s.io"),
        },
    })
}

/// The user kubeconfig `listClusterUserCredential` returns: the local
/// cluster's server and CA, and a user token Tidegate must not use.
fn user_kubeconfig(server: &str, ca_pem: &str) -> String {
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: aks-e2e\n  cluster:\n    certificate-authority-data: {}\n    server: {server}\ncontexts:\n- name: aks-e2e\n  context:\n    cluster: aks-e2e\n    user: clusterUser\nusers:\n- name: clusterUser\n  user:\n    token: must-not-be-used\n",
        STANDARD.encode(ca_pem)
    );
    STANDARD.encode(yaml)
}

/// The stub Azure: Entra's token endpoint and ARM, over HTTPS, recording
/// every request.
fn stub_azure(fleet: &Fleet, server: &str, ca_pem: &str) -> (StubServer, Arc<Mutex<Vec<Request>>>) {
    let pki = fleet.state_dir().join(CONTEXT).join("pki");
    let list_path = format!(
        "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/managedClusters"
    );
    let listed = serde_json::json!({"value": [
        managed_cluster("aks-e2e", "rg-e2e", "e2e", "Succeeded"),
        managed_cluster("aks-creating", "rg-e2e", "e2e", "Creating"),
        managed_cluster("aks-other", "rg-other", "other", "Succeeded"),
    ]})
    .to_string();
    let credentials = serde_json::json!({"kubeconfigs": [
        {"name": "clusterUser", "value": user_kubeconfig(server, ca_pem)}
    ]})
    .to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let stub = serve_stub_tls(
        &pki.join("token-webhook.crt"),
        &pki.join("token-webhook.key"),
        move |request| {
            log.lock().expect("lock").push(request.clone());
            let path = request.path();
            if path == format!("/{TENANT}/oauth2/v2.0/token") {
                let body = request.text();
                let token = if body.contains(AKS_SERVER_APP) {
                    TEST_BEARER_TOKENS[1]
                } else {
                    ARM_TOKEN
                };
                return Response::json(
                    200,
                    format!(
                        r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"{token}"}}"#
                    ),
                );
            }
            if request.header("authorization") != Some(&format!("Bearer {ARM_TOKEN}")) {
                return Response::json(
                    401,
                    r#"{"error":{"code":"InvalidAuthenticationToken","message":"The access token is invalid."}}"#,
                );
            }
            if path == list_path {
                Response::json(200, listed.clone())
            } else if path.ends_with("/managedClusters/aks-e2e/listClusterUserCredential") {
                Response::json(200, credentials.clone())
            } else {
                Response::json(
                    404,
                    format!(
                        r#"{{"error":{{"code":"ResourceNotFound","message":"no {path}"}}}}"#
                    ),
                )
            }
        },
    )
    .expect("stub Azure");
    (stub, seen)
}

/// Runs `tidegate` (see [`tidegate_command`]) against the stub Azure with a
/// client secret credential, trusting the cluster's CA.
/// Every run is checked for credentials in its output (at `-vvv`).
fn tidegate(repo: &Path, home: &Path, azure: &str, ca_file: &Path, args: &[&str]) -> Output {
    let output = tidegate_command(repo, home)
        .env("TIDEGATE_ARM_ENDPOINT", azure)
        .env("AZURE_AUTHORITY_HOST", azure)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", "client-e2e")
        .env("AZURE_CLIENT_SECRET", "not-a-real-secret")
        .env("SSL_CERT_FILE", ca_file)
        .args(args)
        .output()
        .expect("running tidegate");
    assert_no_credentials(
        &output,
        &["not-a-real-secret", ARM_TOKEN, TEST_BEARER_TOKENS[1]],
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_aks_cluster_is_reached_with_entra_tokens_through_the_cli() {
    let fleet = fleet().await;
    let info = fleet.cluster(CONTEXT).expect("cluster").clone();
    let ca_pem = cluster_ca(fleet, CONTEXT);
    let (azure, seen) = stub_azure(fleet, &info.server, &ca_pem);
    let ca_file = cluster_ca_file(fleet, CONTEXT);

    let (ns, git) = one_app_environment(
        fleet,
        "aks",
        &format!(
            "    - discover:
        provider: aks
        subscriptionId: {SUBSCRIPTION}
        credential: clientSecret
        tags: {{fleet: e2e}}
"
        ),
        "",
        "aks",
    );
    let env = ns.name().to_string();
    let home = tempfile::tempdir().expect("home");
    let run = |args: &[&str]| tidegate(git.path(), home.path(), azure.url(), &ca_file, args);

    // Only the Succeeded cluster with the tag, reachable with the AKS token.
    let clusters = run(&["clusters", "--env", &env]);
    assert!(clusters.status.success(), "{}", text(&clusters));
    let stdout = String::from_utf8_lossy(&clusters.stdout).to_string();
    let row = stdout
        .lines()
        .find(|l| l.starts_with("aks-e2e "))
        .unwrap_or_else(|| panic!("no row for aks-e2e: {}", text(&clusters)));
    assert!(
        row.contains(info.server.trim_end_matches('/'))
            && row.contains("1.37.2")
            && row.contains("Succeeded")
            && row.ends_with("yes"),
        "{row}"
    );
    assert!(
        !stdout.contains("aks-creating") && !stdout.contains("aks-other"),
        "{stdout}"
    );

    // A sync through the AKS path.
    let sync = run(&["sync", "--env", &env, "--cluster", "aks-e2e"]);
    assert!(sync.status.success(), "{}", text(&sync));
    assert_eq!(
        configmap_field(fleet, CONTEXT, &env, "settings", "{.data.mode}"),
        "aks"
    );

    // Entra was asked for an ARM token and for the AKS server application's.
    let seen = seen.lock().expect("lock");
    let token_requests: Vec<String> = seen
        .iter()
        .filter(|r| r.path().ends_with("/oauth2/v2.0/token"))
        .map(Request::text)
        .collect();
    assert!(
        token_requests.iter().any(|b| b.contains(AKS_SERVER_APP))
            && token_requests
                .iter()
                .any(|b| b.contains("grant_type=client_credentials") && !b.contains(AKS_SERVER_APP)),
        "{token_requests:?}"
    );
}
