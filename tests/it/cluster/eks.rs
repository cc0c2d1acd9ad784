//! End to end through EKS access, as on real EKS: the `tidegate` binary
//! finds a cluster with a stub EKS API (DescribeCluster answers with the real
//! endpoint and CA of one of the local clusters), builds its bearer token
//! in-process (a presigned STS GetCallerIdentity URL, SigV4 with the test
//! key), and the real API server accepts it through its token-review webhook
//! (testkit's stand-in for aws-iam-authenticator + STS, which recomputes the
//! signature). With another secret key the same token is refused.
//!
//! AWS settings go only to the child processes (`Command::env`), after
//! `env_clear`, so neither the developer's AWS configuration nor IMDS is
//! used.

use super::{
    assert_no_credentials, cluster_ca, configmap_field, fleet, one_app_environment, output_text,
    tidegate_command,
};
use base64::Engine as _;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use tidegate_testkit::http::{Request, Response, StubServer, serve_stub};
use tidegate_testkit::{TEST_AWS_ACCESS_KEY_ID, TEST_AWS_SECRET_ACCESS_KEY};

/// The local cluster the stub EKS API describes.
const CONTEXT: &str = "eks-us-east-1";
/// The cluster's name in the environment file (not the EKS name, to check
/// that the CLI maps one to the other).
const CLUSTER: &str = "eks-e2e";

/// The stub EKS API: DescribeCluster (`GET /clusters/<name>`) and
/// ListClusters (`GET /clusters`) for one cluster; records what it was asked
/// (target and `Authorization` header).
fn stub_eks(name: &str, server: &str, ca_pem: &str) -> (StubServer, Arc<Mutex<Vec<Request>>>) {
    let described = serde_json::json!({
        "cluster": {
            "name": name,
            "arn": format!("arn:aws:eks:us-east-1:000000000000:cluster/{name}"),
            "createdAt": 1_767_225_600,
            "version": "1.37",
            "endpoint": server,
            "roleArn": "arn:aws:iam::000000000000:role/eks-cluster",
            "certificateAuthority": {
                "data": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
            "status": "ACTIVE",
            "platformVersion": "eks.1",
            "tags": {"tidegate.dev/test": "eks-e2e"},
        }
    })
    .to_string();
    let listed = serde_json::json!({ "clusters": [name] }).to_string();
    let path = format!("/clusters/{name}");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let stub = serve_stub(move |request| {
        log.lock().expect("lock").push(request.clone());
        match (request.method.as_str(), request.path()) {
            ("GET", p) if p == path => Response::json(200, described.clone()),
            ("GET", "/clusters") => Response::json(200, listed.clone()),
            _ => Response::json(
                404,
                format!(
                    r#"{{"__type":"ResourceNotFoundException","message":"No cluster found for {}"}}"#,
                    request.path()
                ),
            ),
        }
    })
    .expect("stub EKS API");
    (stub, seen)
}

/// Runs the `tidegate` binary (see [`tidegate_command`]) with AWS
/// credentials (the test key id and `secret`), the EKS endpoint variable
/// `endpoint.0 = endpoint.1`, empty AWS config files and no IMDS.
/// Every run is checked for credentials in its output (at `-vvv`).
fn tidegate(
    repo: &Path,
    home: &Path,
    args: &[&str],
    secret: &str,
    endpoint: (&str, &str),
) -> Output {
    tidegate_with(repo, home, args, secret, endpoint, None)
}

/// [`tidegate`], with temporary credentials when `session` is given.
fn tidegate_with(
    repo: &Path,
    home: &Path,
    args: &[&str],
    secret: &str,
    endpoint: (&str, &str),
    session: Option<&str>,
) -> Output {
    let empty = home.join("empty");
    std::fs::write(&empty, "").expect("empty AWS config file");
    let mut command = tidegate_command(repo, home);
    command
        .env("AWS_ACCESS_KEY_ID", TEST_AWS_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(endpoint.0, endpoint.1);
    if let Some(session) = session {
        command.env("AWS_SESSION_TOKEN", session);
    }
    let output = command.args(args).output().expect("running tidegate");
    assert_no_credentials(&output, &[secret, session.unwrap_or(secret)]);
    output
}

/// The row of `tidegate clusters` for [`CLUSTER`].
fn row(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|l| l.starts_with(CLUSTER))
        .unwrap_or_else(|| panic!("no row for {CLUSTER}:\n{}", output_text(output)))
        .to_string()
}

/// How many DescribeCluster calls the stub answered, each signed with SigV4
/// for EKS in us-east-1 with the test key id.
fn describe_calls(seen: &Mutex<Vec<Request>>, name: &str) -> usize {
    let seen = seen.lock().expect("lock");
    let calls: Vec<&Request> = seen
        .iter()
        .filter(|r| r.path() == format!("/clusters/{name}"))
        .collect();
    for call in &calls {
        let auth = call.header("authorization").unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=")
                && auth.contains(&format!("{TEST_AWS_ACCESS_KEY_ID}/"))
                && auth.contains("/us-east-1/eks/aws4_request"),
            "not signed for eks in us-east-1 with the test key: {auth}"
        );
    }
    calls.len()
}

fn webhook_log(state_dir: &Path) -> String {
    std::fs::read_to_string(state_dir.join(CONTEXT).join("logs/token-webhook.log"))
        .expect("the token webhook's log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_an_eks_cluster_with_in_process_tokens() {
    let fleet = fleet().await;
    let info = fleet.cluster(CONTEXT).expect("cluster").clone();
    let cluster_id = info.eks_cluster_id().unwrap_or_else(|| {
        panic!(
            "{CONTEXT} has no token webhook: the clusters of {} were started by an older \
             tidegate-testkit; restart them (tidegate-testkit down, then up)",
            fleet.kubeconfig().display()
        )
    });
    let (stub, seen) = stub_eks(cluster_id, &info.server, &cluster_ca(fleet, CONTEXT));

    let (ns, git) = one_app_environment(
        fleet,
        "eks",
        &format!(
            "    - name: {CLUSTER}\n      provider:\n        eks: {{region: us-east-1, clusterName: {cluster_id}}}\n"
        ),
        "",
        "eks",
    );
    let env = ns.name().to_string();
    let home = tempfile::tempdir().expect("home");
    let good = TEST_AWS_SECRET_ACCESS_KEY;
    let sdk_endpoint = ("AWS_ENDPOINT_URL_EKS", stub.url());
    let clusters = ["clusters", "--env", env.as_str()];

    // Found through the stub (the SDK's own endpoint variable), reachable
    // with the token the API server's webhook accepted.
    let out = tidegate(git.path(), home.path(), &clusters, good, sdk_endpoint);
    assert!(out.status.success(), "{}", output_text(&out));
    let line = row(&out);
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            CLUSTER,
            "eks",
            info.server.as_str(),
            "1.37",
            "ACTIVE",
            "yes"
        ],
        "{}",
        output_text(&out)
    );
    assert_eq!(describe_calls(&seen, cluster_id), 1);

    // The same through Tidegate's own variable.
    let out = tidegate(
        git.path(),
        home.path(),
        &clusters,
        good,
        ("TIDEGATE_EKS_ENDPOINT", stub.url()),
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(row(&out).ends_with(" yes"), "{}", output_text(&out));
    assert_eq!(describe_calls(&seen, cluster_id), 2);

    // A sync through the same path writes to the cluster.
    let sync = ["sync", "--env", env.as_str(), "--cluster", CLUSTER];
    let out = tidegate(git.path(), home.path(), &sync, good, sdk_endpoint);
    assert!(out.status.success(), "{}", output_text(&out));
    let mode = configmap_field(fleet, CONTEXT, &env, "settings", "{.data.mode}");
    assert_eq!(mode, "eks");
    let log = webhook_log(fleet.state_dir());
    assert!(
        log.contains("token accepted") && log.contains(TEST_AWS_ACCESS_KEY_ID),
        "{log}"
    );

    // Another secret key: the cloud still describes the cluster (the stub
    // does not check signatures), but the API server refuses the token.
    let wrong = "not/the/test/secret/key";
    let out = tidegate(git.path(), home.path(), &clusters, wrong, sdk_endpoint);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(row(&out).ends_with(" no (auth)"), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("error:") && stdout.contains("401"),
        "{}",
        output_text(&out)
    );
    let out = tidegate(git.path(), home.path(), &sync, wrong, sdk_endpoint);
    assert!(!out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(CLUSTER) && stderr.contains("401"),
        "{}",
        output_text(&out)
    );
    let log = webhook_log(fleet.state_dir());
    assert!(
        log.contains("token rejected") && log.contains("SignatureDoesNotMatch"),
        "{log}"
    );

    // Temporary credentials: the session token is signed into the token
    // (which the stand-in STS refuses) and never shown, even at -vvv.
    let session = "FwoGZXIvYXdzEXAMPLE/session+token/tidegate-e2e";
    let out = tidegate_with(
        git.path(),
        home.path(),
        &clusters,
        good,
        sdk_endpoint,
        Some(session),
    );
    assert!(row(&out).ends_with(" no (auth)"), "{}", output_text(&out));
}
