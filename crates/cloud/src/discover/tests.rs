use crate::{
    CloudFactory, CloudOptions, EksDiscovery,
    aks::tests::{FakeAzure, setup as aks_setup},
    eks::tests::{credentials, eks_stub},
    gke::tests::{discovery as gke_discovery, google},
    stub::serve,
};
use std::sync::Arc;
use tidegate_cluster::KubeconfigFactory;
use tidegate_core::{
    Environment,
    environment::{AzureCredential, Provider},
};

const FILE: &str = "environments/prod.yaml";
const SUB: &str = "00000000-0000-0000-0000-000000000001";

fn environment(clusters: &str) -> Environment {
    let text = format!(
        "apiVersion: tidegate.dev/v1alpha1
kind: Environment
metadata:
  name: prod
spec:
  source:
    repoURL: .
  clusters:
{clusters}
  apps:
    - name: web
"
    );
    Environment::parse(&text, FILE).unwrap()
}

/// A factory whose three clouds are the stubs of the per-cloud tests.
async fn factory() -> (
    CloudFactory,
    Arc<std::sync::Mutex<Vec<crate::stub::Seen>>>,
    Arc<FakeAzure>,
) {
    let factory = CloudFactory::new(KubeconfigFactory::default(), CloudOptions::default());
    let (eks_url, eks_log) = serve(eks_stub).await;
    factory
        .use_eks(
            "us-east-1",
            None,
            EksDiscovery::with_credentials("us-east-1", credentials(), &eks_url),
        )
        .await;
    let (google_url, _) = serve(google).await;
    factory
        .use_gke("p1", gke_discovery(&google_url, "p1").await)
        .await;
    factory
        .use_gke("denied", gke_discovery(&google_url, "denied").await)
        .await;
    let (azure, aks) = aks_setup();
    factory
        .use_aks(SUB, AzureCredential::ClientSecret, aks)
        .await;
    (factory, eks_log, azure)
}

#[tokio::test]
async fn every_cloud_expands_in_place_and_the_first_connection_reuses_what_was_found() {
    let (factory, eks_log, azure) = factory().await;
    let mut env = environment(&format!(
        "    - name: edge
      provider:
        eks: {{region: us-east-1, clusterName: c-alpha}}
      wave: 1
    - discover: {{provider: eks, region: us-east-1, tags: {{team: payments}}}}
      wave: 2
    - discover: {{provider: gke, project: p1, tags: {{env: prod}}}}
    - discover:
        provider: aks
        subscriptionId: {SUB}
        credential: clientSecret
        tags: {{team: web}}
        namePrefix: az-
"
    ));
    let added = factory.discover(&mut env, FILE).await.unwrap();
    let names: Vec<&str> = env.spec.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["edge", "c-gamma", "web-a", "web-b", "az-alpha", "az-zeta"],
        "explicit c-alpha kept once, CREATING and untagged clusters left out"
    );
    assert_eq!(added, 5);
    let wave = |name: &str| env.cluster(name).unwrap().wave;
    assert_eq!(wave("edge"), Some(1));
    assert_eq!(wave("c-gamma"), Some(2), "the entry's wave");
    assert_eq!(wave("web-a"), Some(2), "the tidegate-wave label");
    assert_eq!(wave("az-alpha"), None);
    assert!(matches!(&env.cluster("az-alpha").unwrap().provider,
        Provider::Aks(a) if a.resource_group == "rg2" && a.cluster_name == "alpha"));
    assert!(matches!(&env.cluster("web-b").unwrap().provider,
        Provider::Gke(g) if g.location == "us-central1" && g.cluster_name == "web-b"));

    // Described once by discovery, not again to connect.
    let describes = |log: &Vec<crate::stub::Seen>| {
        log.iter()
            .filter(|s| s.target.starts_with("/clusters/c-gamma"))
            .count()
    };
    assert_eq!(describes(&eks_log.lock().unwrap()), 1);
    let arm_calls = azure.seen.lock().unwrap().len();
    let gamma = factory
        .describe(env.cluster("c-gamma").unwrap())
        .await
        .unwrap();
    assert_eq!(
        gamma.endpoint.server,
        "https://c-gamma.gr7.us-east-1.eks.amazonaws.com"
    );
    let alpha = factory
        .describe(env.cluster("az-alpha").unwrap())
        .await
        .unwrap();
    assert_eq!(
        alpha.endpoint.server,
        "https://alpha-dns.hcp.westeurope.azmk8s.io:443"
    );
    assert_eq!(describes(&eks_log.lock().unwrap()), 1);
    assert_eq!(azure.seen.lock().unwrap().len(), arm_calls);

    // Nothing left to expand: a second call finds nothing to do.
    assert_eq!(factory.discover(&mut env, FILE).await.unwrap(), 0);
}

#[tokio::test]
async fn cloud_errors_are_reported_at_the_entry_line_all_at_once() {
    let (factory, _, _) = factory().await;
    let mut env = environment(
        "    - discover: {provider: gke, project: denied}
    - name: ok
      provider: {kubeconfig: {context: ok}}
    - discover: {provider: aks, subscriptionId: s2, credential: clientSecret}
",
    );
    let before = env.clone();
    let errors = factory.discover(&mut env, FILE).await.unwrap_err();
    assert_eq!(errors.len(), 2, "{errors}");
    let gke = &errors.0[0];
    assert_eq!(gke.line, Some(9));
    assert!(
        gke.message
            .starts_with("discovery failed: projects/denied/locations/-: "),
        "{gke}"
    );
    assert!(gke.message.contains("HTTP 403"), "{gke}");
    assert!(
        gke.message.contains("roles/container.clusterViewer"),
        "{gke}"
    );
    let aks = &errors.0[1];
    assert_eq!(aks.line, Some(12));
    assert!(aks.message.contains("no azure credentials"), "{aks}");
    assert_eq!(env, before, "unchanged");
}
