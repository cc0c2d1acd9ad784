//! End to end through a `discover:` entry: the `tidegate` binary asks a stub
//! GKE API (`TIDEGATE_GKE_ENDPOINT`) for the clusters of a project carrying a
//! label, gets one of the local clusters (its real endpoint and CA) among
//! clusters that must be left out, takes its access token from a stub
//! metadata server (`GCE_METADATA_HOST`, as with Workload Identity), and
//! validates, plans and rolls the environment out to it. Both endpoint
//! variables reach only the child processes (`Command::env`).

use super::{
    assert_no_credentials, cluster_ca, configmap_field, fleet, one_app_environment,
    output_text as text, tidegate_command,
};
use base64::Engine as _;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use tidegate_testkit::TEST_BEARER_TOKENS;
use tidegate_testkit::http::{Request, Response, StubServer, serve_stub};

/// The local cluster the stub GKE API reports.
const CONTEXT: &str = "gke-us-central1";
const PROJECT: &str = "discover-e2e";

/// One cluster as `projects.locations.clusters.list` describes it.
fn gke_cluster(
    name: &str,
    endpoint: &str,
    ca_pem: &str,
    status: &str,
    fleet: &str,
) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "location": "us-central1",
        "endpoint": endpoint,
        "currentMasterVersion": "1.37.2-gke.100",
        "status": status,
        "masterAuth": {"clusterCaCertificate": base64::engine::general_purpose::STANDARD.encode(ca_pem)},
        "resourceLabels": {"fleet": fleet, "tidegate-wave": "2"},
        "selfLink": format!("https://container.googleapis.com/v1/projects/{PROJECT}/locations/us-central1/clusters/{name}"),
    })
}

/// The stub Google: the GKE API and the metadata server's token endpoint,
/// recording every request.
fn stub_google(endpoint: &str, ca_pem: &str) -> (StubServer, Arc<Mutex<Vec<Request>>>) {
    let listed = serde_json::json!({"clusters": [
        gke_cluster("web-main", endpoint, ca_pem, "RUNNING", "e2e"),
        gke_cluster("web-next", endpoint, ca_pem, "PROVISIONING", "e2e"),
        gke_cluster("batch", "10.0.0.1", ca_pem, "RUNNING", "other"),
    ]})
    .to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let list_path = format!("/v1/projects/{PROJECT}/locations/-/clusters");
    let stub = serve_stub(move |request| {
        log.lock().expect("lock").push(request.clone());
        match request.path() {
            p if p == list_path => Response::json(200, listed.clone()),
            "/computeMetadata/v1/instance/service-accounts/default/token" => Response::json(
                200,
                format!(
                    r#"{{"access_token":"{}","expires_in":3599,"token_type":"Bearer"}}"#,
                    TEST_BEARER_TOKENS[2]
                ),
            ),
            other => Response::json(
                404,
                format!(
                    r#"{{"error":{{"code":404,"message":"no {other}","status":"NOT_FOUND"}}}}"#
                ),
            ),
        }
    })
    .expect("stub Google APIs");
    (stub, seen)
}

/// Runs `tidegate` (see [`tidegate_command`]) with the GKE API and metadata
/// server of `google`.
/// Every run is checked for credentials in its output (at `-vvv`).
fn tidegate(repo: &Path, home: &Path, google: &str, args: &[&str]) -> Output {
    let output = tidegate_command(repo, home)
        .env("TIDEGATE_GKE_ENDPOINT", google)
        .env("GCE_METADATA_HOST", google.trim_start_matches("http://"))
        .args(args)
        .output()
        .expect("running tidegate");
    assert_no_credentials(&output, &[TEST_BEARER_TOKENS[2]]);
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_gke_cluster_is_validated_planned_and_rolled_out_through_the_cli() {
    let fleet = fleet().await;
    let info = fleet.cluster(CONTEXT).expect("cluster").clone();
    let endpoint = info.server.trim_start_matches("https://").to_string();
    let (google, seen) = stub_google(&endpoint, &cluster_ca(fleet, CONTEXT));

    let (ns, git) = one_app_environment(
        fleet,
        "discover",
        &format!(
            "    - discover:
        provider: gke
        project: {PROJECT}
        tags: {{fleet: e2e}}
      labels: {{tier: web}}
"
        ),
        "      overlays:
        - clusterSelector: {matchLabels: {fleet: e2e, tier: web}}
          patches:
            - target: {kind: ConfigMap, name: settings}
              merge: {data: {selected: \"yes\"}}
",
        "discovered",
    );
    let env = ns.name().to_string();
    let home = tempfile::tempdir().expect("home");
    let run = |args: &[&str]| tidegate(git.path(), home.path(), google.url(), args);

    // validate: one cluster discovered (PROVISIONING and other fleets left out).
    let validate = run(&["validate"]);
    assert!(validate.status.success(), "{}", text(&validate));
    assert!(
        String::from_utf8_lossy(&validate.stdout).contains("1 cluster (1 discovered)"),
        "{}",
        text(&validate)
    );

    // clusters: reachable with the metadata server's token.
    let clusters = run(&["clusters", "--env", &env]);
    assert!(clusters.status.success(), "{}", text(&clusters));
    let row = String::from_utf8_lossy(&clusters.stdout)
        .lines()
        .find(|l| l.starts_with("web-main "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no row for web-main: {}", text(&clusters)));
    assert!(
        row.contains(&info.server) && row.contains("RUNNING") && row.ends_with("yes"),
        "{row}"
    );

    // plan: wave 2 from the cluster's label.
    let plan = run(&["plan", "--env", &env, "-o", "json"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let waves = plan.to_string();
    assert!(waves.contains("web-main"), "{waves}");
    assert_eq!(plan["plan"]["waves"][0]["number"], 2, "{waves}");
    assert_eq!(
        plan["plan"]["waves"][0]["clusters"][0], "web-main",
        "{waves}"
    );

    // sync --env: a rollout to the discovered cluster.
    let sync = run(&["sync", "--env", &env]);
    assert!(sync.status.success(), "{}", text(&sync));
    let data = configmap_field(fleet, CONTEXT, &env, "settings", "{.data}");
    assert!(
        data.contains("discovered") && data.contains("\"selected\":\"yes\""),
        "the overlay selected the cluster by its GKE label and the entry's label: {data}"
    );

    // Every GKE API call carried the metadata server's token; the cluster
    // list was asked for once per command, never a cluster by name.
    let seen = seen.lock().expect("lock");
    let api: Vec<&Request> = seen
        .iter()
        .filter(|r| r.path().starts_with("/v1/"))
        .collect();
    assert!(!api.is_empty());
    for call in &api {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {}", TEST_BEARER_TOKENS[2]).as_str()),
            "{}",
            call.target
        );
        assert!(
            call.path().ends_with("/locations/-/clusters"),
            "{}",
            call.target
        );
    }
}
