use super::*;
use crate::Diagnostics;

const FILE: &str = "environments/prod.yaml";

/// An environment whose `spec.clusters` is `clusters` (indented by 4).
fn env_with(clusters: &str, rollout: &str) -> String {
    format!(
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
{rollout}"
    )
}

fn parse(text: &str) -> Result<Environment, Diagnostics> {
    Environment::parse(text, FILE)
}

const MIXED: &str = "    - name: edge
      provider:
        eks: {region: us-east-1, clusterName: edge}
      wave: 1
    - discover:
        provider: eks
        region: us-east-1
        tags: {team: payments}
      labels: {tier: core}
      wave: 3
    - name: last
      provider:
        kubeconfig: {context: last}
    - discover: {provider: gke, project: p1}
";

fn found(name: &str, tags: &[(&str, &str)]) -> FoundCluster {
    FoundCluster {
        name: name.into(),
        location: "us-central1".into(),
        resource_group: None,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn names(env: &Environment) -> Vec<&str> {
    env.spec.clusters.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn discover_entries_are_read_with_their_lines_and_kept_apart() {
    let env = parse(&env_with(MIXED, "")).expect("valid");
    assert_eq!(names(&env), ["edge", "last"]);
    let entries = env.spec.clusters.discover();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].line, 13);
    assert_eq!(entries[0].discover.provider, Cloud::Eks);
    assert_eq!(entries[0].wave, Some(3));
    assert_eq!(
        entries[0].discover.scope(),
        "eks region us-east-1 with tags team=payments"
    );
    assert_eq!(
        entries[1].discover.scope(),
        "gke project p1 location -",
        "GKE searches every location by default"
    );
}

#[test]
fn discovered_clusters_take_the_entry_position_sorted_by_name() {
    let mut env = parse(&env_with(MIXED, "")).expect("valid");
    let eks = vec![
        found("Zeta_Cluster", &[("team", "payments")]),
        found("alpha", &[("team", "payments"), ("tidegate-wave", "2")]),
    ];
    let gke = vec![found("g1", &[])];
    env.add_discovered(FILE, &[eks, gke]).expect("expanded");
    assert_eq!(names(&env), ["edge", "alpha", "zeta-cluster", "last", "g1"]);
    assert!(env.spec.clusters.discover().is_empty());

    let alpha = env.cluster("alpha").expect("alpha");
    assert_eq!(alpha.wave, Some(2), "wave from the tag");
    assert_eq!(alpha.labels["tier"], "core");
    assert_eq!(alpha.labels["team"], "payments", "cloud tags are labels");
    assert!(matches!(&alpha.provider, Provider::Eks(e)
        if e.region == "us-east-1" && e.cluster_name == "alpha"));
    let zeta = env.cluster("zeta-cluster").expect("made a DNS label");
    assert_eq!(zeta.wave, Some(3), "the entry's wave without a tag");
    assert!(matches!(&zeta.provider, Provider::Eks(e) if e.cluster_name == "Zeta_Cluster"));
    let g1 = env.cluster("g1").expect("g1");
    assert!(matches!(&g1.provider, Provider::Gke(g)
        if g.project == "p1" && g.location == "us-central1"));
    assert_eq!(g1.wave, None, "auto-partitioned");
    assert_eq!(env.spec.clusters[1].line, 13, "line of the discover entry");
}

#[test]
fn a_cluster_named_explicitly_keeps_its_entry() {
    let mut env = parse(&env_with(MIXED, "")).expect("valid");
    let eks = vec![found("edge", &[]), found("other", &[])];
    env.add_discovered(FILE, &[eks, vec![found("g1", &[])]])
        .expect("expanded");
    assert_eq!(names(&env), ["edge", "other", "last", "g1"]);
    assert_eq!(env.cluster("edge").expect("edge").wave, Some(1));
}

#[test]
fn clashing_names_bad_wave_tags_and_nothing_found_are_reported_with_the_line() {
    let mut env = parse(&env_with(MIXED, "")).expect("valid");
    let before = env.clone();
    // A GKE cluster named like the explicit kubeconfig cluster, and a bad wave tag.
    let errors = env
        .add_discovered(
            FILE,
            &[
                vec![found("w", &[("tidegate-wave", "first")])],
                vec![found("last", &[])],
            ],
        )
        .expect_err("rejected");
    assert_eq!(errors.len(), 2, "{errors}");
    let text = errors.to_string();
    assert!(
        text.contains("\"w\" has tidegate-wave=\"first\", which is not a wave number"),
        "{text}"
    );
    assert!(
        text.contains("cluster name \"last\" is used twice: kubeconfig context last (line 19) and gke p1/us-central1/last (line 22)"),
        "{text}"
    );
    assert!(text.contains("namePrefix"), "{text}");
    assert_eq!(env, before, "unchanged on error");

    let only = env_with(
        "    - discover: {provider: aks, subscriptionId: s1, tags: {env: prod}}",
        "",
    );
    let mut env = parse(&only).expect("valid");
    let errors = env.add_discovered(FILE, &[vec![]]).expect_err("empty");
    let d = &errors.0[0];
    assert_eq!(d.line, Some(9));
    assert_eq!(
        d.message,
        "discovery found no clusters (aks subscription s1 with tags env=prod)"
    );
}

#[test]
fn name_prefix_wave_tag_and_resource_group_shape_the_clusters() {
    let text = env_with(
        "    - discover:
        provider: aks
        subscriptionId: s1
        credential: managedIdentity
        waveTag: ring
        namePrefix: az-",
        "",
    );
    let mut env = parse(&text).expect("valid");
    let mut c = found("Web", &[("ring", "4")]);
    c.resource_group = Some("rg-web".into());
    env.add_discovered(FILE, &[vec![c]]).expect("expanded");
    let cluster = env.cluster("az-web").expect("prefixed");
    assert_eq!(cluster.wave, Some(4));
    assert!(matches!(&cluster.provider, Provider::Aks(a)
        if a.resource_group == "rg-web" && a.cluster_name == "Web"
            && a.credential == AzureCredential::ManagedIdentity));
}

#[test]
fn rollout_wave_settings_are_checked_after_discovery() {
    let text = env_with(
        "    - discover: {provider: eks, region: eu-west-1}",
        "  rollout:\n    waves:\n      - wave: 5\n        approval: required\n",
    );
    let env = parse(&text).expect("not known before discovery");
    let mut ok = env.clone();
    ok.add_discovered(FILE, &[vec![found("a", &[("tidegate-wave", "5")])]])
        .expect("wave 5 has a cluster");
    let mut bad = env;
    let errors = bad
        .add_discovered(FILE, &[vec![found("a", &[])]])
        .expect_err("wave 5 has none");
    assert!(
        errors.to_string().contains("wave 5 has no cluster"),
        "{errors}"
    );
}

#[test]
fn malformed_entries_say_what_is_missing() {
    let cases = [
        (
            "    - discover: {provider: eks}",
            "discover (eks): `region` is missing",
        ),
        (
            "    - discover: {provider: gke, project: p, region: x}",
            "discover (gke): `region` does not apply to gke",
        ),
        (
            "    - discover: {provider: aks}",
            "discover (aks): `subscriptionId` is missing",
        ),
        (
            "    - name: a\n      discover: {provider: gke, project: p}",
            "both `discover` and `name`/`provider`",
        ),
        ("    - wave: 1", "a cluster entry has no `name`"),
        ("    - name: a", "cluster \"a\" has no `provider`"),
    ];
    for (clusters, expected) in cases {
        let errors = parse(&env_with(clusters, "")).expect_err(clusters);
        assert_eq!(errors.len(), 1, "{clusters}: {errors}");
        let d = &errors.0[0];
        assert_eq!(d.line, Some(9), "{clusters}: {d}");
        assert!(d.message.contains(expected), "{clusters}: {d}");
    }
    let errors = parse(&env_with("    - discover: {provider: openstack}", "")).expect_err("x");
    assert!(errors.to_string().contains("openstack"), "{errors}");
}

#[test]
fn a_cloud_name_that_cannot_be_a_dns_label_is_an_error() {
    let mut env =
        parse(&env_with("    - discover: {provider: gke, project: p}", "")).expect("valid");
    let long = "x".repeat(70);
    let errors = env
        .add_discovered(FILE, &[vec![found(&long, &[])]])
        .expect_err("too long");
    assert!(errors.to_string().contains("not a DNS label"), "{errors}");
}

#[test]
fn placeholders_stand_in_for_discovery_without_a_cloud() {
    let env = parse(&env_with(MIXED, "")).expect("valid");
    let offline = env.with_placeholders();
    assert_eq!(
        names(&offline),
        [
            "edge",
            "discovered-at-line-13",
            "last",
            "discovered-at-line-22"
        ]
    );
    let stand_in = offline.cluster("discovered-at-line-13").expect("stand-in");
    assert_eq!(
        stand_in.labels["team"], "payments",
        "filter tags are labels"
    );
    assert_eq!(stand_in.labels["tier"], "core");
    assert_eq!(stand_in.wave, Some(3));
    assert!(offline.spec.clusters.discover().is_empty());
}
