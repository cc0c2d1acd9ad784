//! End to end through the cloud path: a stub GKE API describes one of the
//! local clusters (its real endpoint and CA), a stub OAuth token endpoint
//! exchanges a service-account key's JWT for tokens the real API server
//! accepts (testkit's `--token-auth-file`), and a sync through
//! `CloudFactory` works exactly as one through the kubeconfig. The first
//! token is one the API server rejects (401: refreshed once and retried), the
//! second lives 3 seconds (refreshed before it expires).

use super::{
    cluster_ca, cluster_ca_file, configmap_field, fleet, kubeconfig_factory, one_app_environment,
};
use crate::pipeline::load_env;
use base64::Engine as _;
use std::sync::{Arc, Mutex};
use tidegate_cloud::{
    CloudFactory, CloudOptions, GkeCredentials, GkeDiscovery, ServiceAccountExchange,
};
use tidegate_cluster::{ClientFactory, KubeconfigFactory, RequestCounter};
use tidegate_sync::{Engine, SyncOptions, Target};
use tidegate_testkit::TEST_BEARER_TOKENS;
use tidegate_testkit::http::{Response, serve_stub};

const CONTEXT: &str = "eks-us-east-1";
const TEST_KEY: &str = include_str!("../../../crates/cloud/src/gke/testdata/test-sa-key.pem");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_through_gke_access_works_like_one_through_the_kubeconfig() {
    let fleet = fleet().await;
    let info = fleet.cluster(CONTEXT).expect("cluster").clone();
    let ca_pem = cluster_ca(fleet, CONTEXT);
    let endpoint = info.server.trim_start_matches("https://").to_string();

    // The stub GKE API: the local cluster, as GKE would describe it.
    let described = serde_json::json!({
        "name": "c0",
        "location": "local",
        "endpoint": endpoint,
        "currentMasterVersion": "1.37.2-gke.0",
        "status": "RUNNING",
        "masterAuth": {"clusterCaCertificate": base64::engine::general_purpose::STANDARD.encode(&ca_pem)},
        "resourceLabels": {},
    })
    .to_string();
    let gke = serve_stub(move |request| {
        assert!(
            request
                .target
                .starts_with("/v1/projects/e2e/locations/local/clusters/c0"),
            "{}",
            request.target
        );
        Response::json(200, described.clone())
    })
    .expect("stub GKE API");

    // The stub OAuth token endpoint: revoked, then short-lived, then long-lived tokens.
    let exchanges = Arc::new(Mutex::new(0u32));
    let counter = exchanges.clone();
    let token_endpoint = serve_stub(move |request| {
        assert_eq!(request.method, "POST");
        let body = request.text();
        assert!(body.contains("jwt-bearer"), "{body}");
        let mut n = counter.lock().expect("lock");
        *n += 1;
        let (token, lifetime) = match *n {
            1 => ("revoked-token", 3600),
            2 => (TEST_BEARER_TOKENS[0], 3),
            _ => (TEST_BEARER_TOKENS[1], 3600),
        };
        Response::json(
            200,
            format!(
                r#"{{"access_token":"{token}","expires_in":{lifetime},"token_type":"Bearer"}}"#
            ),
        )
    })
    .expect("stub token endpoint");
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "e2e",
        "private_key_id": "k1",
        "private_key": TEST_KEY,
        "client_email": "deployer@e2e.iam.gserviceaccount.com",
        "token_uri": format!("{}/token", token_endpoint.url()),
    });
    let credentials =
        GkeCredentials::ServiceAccountKey(Arc::new(ServiceAccountExchange::new(key).expect("key")));
    let factory = CloudFactory::new(KubeconfigFactory::default(), CloudOptions::default());
    factory
        .use_gke(
            "e2e",
            GkeDiscovery::new("e2e", credentials, Some(gke.url()))
                .await
                .expect("gke"),
        )
        .await;

    // An environment with that cluster as provider gke, and one app.
    let (ns, git) = one_app_environment(
        fleet,
        "cloud",
        &format!(
            "    - name: gke-e2e\n      provider:\n        gke: {{project: e2e, location: local, clusterName: c0}}\n      kubeconfig:\n        context: {CONTEXT}\n"
        ),
        "",
        "cloud",
    );
    let env = ns.name().to_string();
    let (desired, rendered) = load_env(git.path(), &env).expect("valid");
    let cluster = desired.environment.cluster("gke-e2e").expect("cluster");
    let target = Target {
        environment: &desired.environment,
        cluster,
        rendered: &rendered.clusters[0],
        revision: &desired.commit.sha,
    };

    // The API server answers the cloud path's client (401 first, then the retry).
    let client = factory
        .client(cluster, &RequestCounter::default())
        .await
        .expect("client");
    let version = client.apiserver_version().await.expect("GET /version");
    assert_eq!(version.minor, "37");
    assert_eq!(
        *exchanges.lock().expect("lock"),
        2,
        "revoked, then refreshed once"
    );

    // Sync through the cloud path.
    let engine = Engine::connect(&factory, cluster).await.expect("connect");
    let report = engine
        .sync(&target, &SyncOptions::default(), &|_| {})
        .await
        .expect("sync through the cloud path");
    assert!(!report.dry_run);
    let data = configmap_field(fleet, CONTEXT, &env, "settings", "{.data.mode}");
    assert_eq!(data, "cloud");

    // The short-lived token is replaced before it expires.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let engine = Engine::connect(&factory, cluster).await.expect("connect");
    let plan = engine
        .plan(&target, &SyncOptions::default())
        .await
        .expect("plan through the cloud path");
    assert!(plan.objects.iter().all(|o| !o.needs_apply()), "in sync");
    assert!(
        *exchanges.lock().expect("lock") >= 3,
        "the 3-second token was refreshed"
    );

    // The same cluster through its kubeconfig context sees the same state.
    let forced = KubeconfigFactory {
        force: true,
        ..kubeconfig_factory(fleet)
    };
    let engine = Engine::connect(&forced, cluster).await.expect("connect");
    let plan = engine
        .plan(&target, &SyncOptions::default())
        .await
        .expect("plan through the kubeconfig");
    assert!(plan.objects.iter().all(|o| !o.needs_apply()), "in sync");
}

/// Kubeconfigs whose user runs an exec credential plugin (as `aws eks
/// get-token`, `gke-gcloud-auth-plugin` or `kubelogin` are) keep working
/// through kube's own exec support: the plugin here is a script printing an
/// `ExecCredential` with a token the API server accepts, and it must run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_with_an_exec_credential_plugin_reaches_the_cluster() {
    let fleet = fleet().await;
    let info = fleet.cluster(CONTEXT).expect("cluster").clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("plugin-ran");
    let plugin = dir.path().join("credential-plugin");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\ntouch '{}'\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{}\"}}}}'\n",
            marker.display(),
            TEST_BEARER_TOKENS[0]
        ),
    )
    .expect("plugin");
    std::fs::set_permissions(
        &plugin,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .expect("chmod");
    let ca = cluster_ca_file(fleet, CONTEXT);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: plugin\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\ncontexts:\n- name: with-plugin\n  context:\n    cluster: c\n    user: plugin\ncurrent-context: with-plugin\n",
            info.server,
            ca.display(),
            plugin.display()
        ),
    )
    .expect("kubeconfig");
    let cluster = tidegate_core::environment::Cluster {
        name: "with-plugin".into(),
        provider: tidegate_core::environment::Provider::Kubeconfig(
            tidegate_core::environment::KubeconfigRef {
                context: Some("with-plugin".into()),
                file: None,
            },
        ),
        kubeconfig: None,
        labels: Default::default(),
        wave: None,
    };
    // The operator's own kubeconfig (as `--kubeconfig`) may run its plugins.
    let operator = KubeconfigFactory {
        force: false,
        file: Some(kubeconfig.clone()),
    };
    let factory = CloudFactory::new(operator, CloudOptions::default());
    let client = factory
        .client(&cluster, &RequestCounter::default())
        .await
        .expect("client");
    // Listing namespaces needs an authenticated user (/version would not).
    let namespaces = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .list(&kube::api::ListParams::default())
        .await
        .expect("namespaces listed with the plugin's token");
    assert!(
        namespaces
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("kube-system"))
    );
    assert!(marker.exists(), "the exec plugin ran");
}
