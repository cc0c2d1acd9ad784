//! The application layer (crates/app) against real Git repositories.

use std::sync::{Arc, Mutex};
use tidegate_app::{ClusterAccess, GitRevisions, Workspace, client_factory};
use tidegate_cluster::FactsCache;
use tidegate_fleet::Revisions;
use tidegate_tests::GitFixture;

const ENV: &str = "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: prod\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: c1\n      provider:\n        kubeconfig:\n          context: c1\n    - name: c2\n      provider:\n        kubeconfig:\n          context: c2\n    - name: c3\n      provider:\n        kubeconfig:\n          context: c3\n  apps:\n    - name: app\n      namespace: app\n";

fn configmap(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  release: \"{value}\"\n"
    )
}

/// The `release` value of the ConfigMap rendered for `cluster`.
fn release(rendering: &tidegate_fleet::RevisionRendering, cluster: &str) -> String {
    let c = rendering
        .rendered
        .clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .expect("rendered");
    c.apps[0].objects[0].manifest["data"]["release"]
        .as_str()
        .expect("release")
        .to_string()
}

#[tokio::test]
async fn a_rollback_target_is_rendered_once_per_commit_however_often_and_by_whatever_ref_asked() {
    let mut repo = GitFixture::new();
    repo.write("environments/prod.yaml", ENV)
        .write("manifests/app/cm.yaml", configmap("one"));
    let first = repo.commit("one");
    repo.tag("v1", &first);
    repo.write("manifests/app/cm.yaml", configmap("two"));
    let second = repo.commit("two");

    let workspace =
        Workspace::open(Some(repo.path().to_str().expect("utf-8")), None).expect("opens");
    let factory = client_factory(&ClusterAccess {
        kubeconfig_only: true,
        kubeconfig: None,
    });
    let facts = FactsCache::default();
    let revisions = GitRevisions::new(Arc::new(Mutex::new(workspace)), "prod", &factory, &facts);

    // Three clusters of a failed wave roll back at once, one asking by tag.
    let asks = [first.as_str(), first.as_str(), "v1"];
    let renderings = futures::future::join_all(asks.iter().map(|r| revisions.render(r))).await;
    let renderings: Vec<_> = renderings
        .into_iter()
        .map(|r| r.expect("renders"))
        .collect();
    assert_eq!(revisions.renders(), 1, "one load and render for one commit");
    for r in &renderings {
        assert_eq!(r.commit, first, "the tag resolves to the commit");
        assert!(
            Arc::ptr_eq(r, &renderings[0]),
            "the same rendering is shared"
        );
        assert_eq!(release(r, "c2"), "one");
    }

    // Another commit is rendered once more, with its own content.
    let later = revisions.render(&second).await.expect("renders");
    assert_eq!(later.commit, second);
    assert_eq!(release(&later, "c3"), "two");
    let again = revisions.render(&second).await.expect("renders");
    assert!(Arc::ptr_eq(&later, &again));
    assert_eq!(revisions.renders(), 2);

    // An unknown revision is a typed Git error naming it.
    match revisions.render("no-such-ref").await {
        Err(tidegate_fleet::RevisionError::Git { revision, .. }) => {
            assert_eq!(revision, "no-such-ref")
        }
        other => panic!("expected a Git error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_controller_renders_an_unchanged_head_once_and_a_new_commit_again() {
    use tidegate_controller::{Application, GitApplication};
    let mut repo = GitFixture::new();
    repo.write("environments/prod.yaml", ENV)
        .write("manifests/app/cm.yaml", configmap("one"));
    let first = repo.commit("one");
    let audit = tempfile::tempdir().expect("tempdir");
    let app = GitApplication::new(
        Some(repo.path().to_str().expect("utf-8").to_string()),
        None,
        client_factory(&ClusterAccess {
            kubeconfig_only: true,
            kubeconfig: None,
        }),
        audit.path().join("audit.db"),
    )
    .expect("opens");
    let value = |loaded: &tidegate_controller::Loaded, cluster: &str| {
        let c = loaded
            .rendered
            .clusters
            .iter()
            .find(|c| c.cluster == cluster)
            .expect("rendered");
        c.apps[0].objects[0].manifest["data"]["release"].clone()
    };

    // Every interval loads the head; while it is the same, one rendering is shared.
    let a = app.load_head("prod").await.expect("loads");
    let b = app.load_head("prod").await.expect("loads");
    assert_eq!(
        (a.revision.as_str(), b.revision.as_str()),
        (first.as_str(), first.as_str())
    );
    assert_eq!(app.renders(), 1, "an unchanged head is rendered once");
    assert!(Arc::ptr_eq(&a.rendered, &b.rendered));
    assert_eq!(a.environment, b.environment);
    assert_eq!(value(&b, "c2"), "one");

    // A new commit is rendered again, with its own content.
    repo.write("manifests/app/cm.yaml", configmap("two"));
    let second = repo.commit("two");
    let c = app.load_head("prod").await.expect("loads");
    assert_eq!(c.revision, second);
    assert_eq!(app.renders(), 2);
    assert_eq!(value(&c, "c3"), "two");
    assert_eq!(value(&a, "c3"), "one", "the earlier rendering is untouched");

    // So is a commit that changes nothing the apps render (the commit is
    // part of every object's provenance), and an environment change.
    repo.write("README.md", "notes\n");
    let third = repo.commit("docs");
    let d = app.load_head("prod").await.expect("loads");
    assert_eq!((d.revision.as_str(), app.renders()), (third.as_str(), 3));
    assert_eq!(value(&d, "c1"), "two");
    repo.write(
        "environments/prod.yaml",
        ENV.replace("namespace: app", "namespace: other"),
    );
    repo.commit("namespace");
    let e = app.load_head("prod").await.expect("loads");
    assert_eq!(app.renders(), 4);
    assert_eq!(
        e.rendered.clusters[0].apps[0].objects[0]
            .key
            .namespace
            .as_deref(),
        Some("other")
    );
    app.load_head("prod").await.expect("loads");
    assert_eq!(app.renders(), 4);
}
