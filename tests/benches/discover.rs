//! Discovery benchmark: an environment with one `discover:` entry expanded
//! against a stub EKS API that answers like a region with 200 clusters
//! (ListClusters pages of 100, each DescribeCluster after a simulated 20 ms
//! of cloud latency), beside the baseline of describing the same 200
//! clusters one after the other in the same run.
//!
//! Run: `cargo bench -p tidegate-tests --bench discover`. Prints medians of
//! 5 runs and the ratio.

use aws_credential_types::Credentials;
use std::time::{Duration, Instant};
use tidegate_cloud::{CloudFactory, CloudOptions, EksDiscovery};
use tidegate_cluster::KubeconfigFactory;
use tidegate_core::Environment;
use tidegate_testkit::http::{Response, serve_stub};

const CLUSTERS: usize = 200;
const PAGE: usize = 100;
const LATENCY: Duration = Duration::from_millis(20);
const RUNS: usize = 5;

fn name(i: usize) -> String {
    format!("fleet-{i:03}")
}

fn describe(name: &str) -> String {
    serde_json::json!({"cluster": {
        "name": name,
        "endpoint": format!("https://{name}.gr7.us-east-1.eks.amazonaws.com"),
        "certificateAuthority": {"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBRUMKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="},
        "version": "1.37",
        "status": "ACTIVE",
        "tags": {"fleet": "prod", "tidegate-wave": (1 + name.len() % 3).to_string()},
    }})
    .to_string()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let stub = serve_stub(|request| {
        std::thread::sleep(LATENCY);
        let path = request.path();
        if path == "/clusters" {
            let start: usize = request
                .target
                .split("nextToken=")
                .nth(1)
                .and_then(|t| t.split('&').next())
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let end = (start + PAGE).min(CLUSTERS);
            let names: Vec<String> = (start..end).map(name).collect();
            let mut page = serde_json::json!({ "clusters": names });
            if end < CLUSTERS {
                page["nextToken"] = end.to_string().into();
            }
            Response::json(200, page.to_string())
        } else if let Some(name) = path.strip_prefix("/clusters/") {
            Response::json(200, describe(name))
        } else {
            Response::json(404, "{}")
        }
    })
    .expect("stub EKS API");
    let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "bench");
    let text = "apiVersion: tidegate.dev/v1alpha1
kind: Environment
metadata:
  name: prod
spec:
  source:
    repoURL: .
  clusters:
    - discover: {provider: eks, region: us-east-1, tags: {fleet: prod}}
  apps:
    - name: web
";
    let environment = Environment::parse(text, "environments/prod.yaml").expect("valid");

    let mut expand = Vec::new();
    let mut sequential = Vec::new();
    for _ in 0..RUNS {
        // Tidegate: the whole expansion through CloudFactory::discover.
        let factory = CloudFactory::new(KubeconfigFactory::default(), CloudOptions::default());
        factory
            .use_eks(
                "us-east-1",
                None,
                EksDiscovery::with_credentials("us-east-1", credentials.clone(), stub.url()),
            )
            .await;
        let mut env = environment.clone();
        let start = Instant::now();
        let found = factory
            .discover(&mut env, "environments/prod.yaml")
            .await
            .expect("discovered");
        expand.push(start.elapsed());
        assert_eq!(found, CLUSTERS);
        assert_eq!(env.spec.clusters.len(), CLUSTERS);

        // Baseline: the same calls one after the other.
        let eks = EksDiscovery::with_credentials("us-east-1", credentials.clone(), stub.url());
        let start = Instant::now();
        for i in 0..CLUSTERS {
            eks.describe(&name(i)).await.expect("described");
        }
        sequential.push(start.elapsed() + LATENCY * (CLUSTERS / PAGE) as u32);
    }
    let (e, s) = (median(expand), median(sequential));
    println!(
        "discover {CLUSTERS} EKS clusters ({} ms simulated latency per call), median of {RUNS}:",
        LATENCY.as_millis()
    );
    println!("  CloudFactory::discover (8 DescribeCluster at a time): {e:?}");
    println!("  baseline, the same DescribeCluster calls one by one:  {s:?}");
    println!("  speed-up {:.1}x", s.as_secs_f64() / e.as_secs_f64());
}
