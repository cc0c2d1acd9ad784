//! A kubeconfig named by repository content is never read, so its `exec`
//! plugin never runs (issue #20, item 1).

use super::{run, text};
use tidegate_tests::GitFixture;

/// A repository whose environment names a committed kubeconfig `kc.yaml`
/// with an exec plugin that creates `marker`.
fn hostile_repository(marker: &std::path::Path, at: &str) -> GitFixture {
    let mut git = GitFixture::new();
    git.write(
        "kc.yaml",
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:9\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: sh\n      args: [-c, \"touch {}\"]\n      interactiveMode: Never\ncontexts:\n- name: c1\n  context: {{cluster: c, user: u}}\ncurrent-context: c1\n",
            marker.display()
        ),
    );
    let (provider, extra) = match at {
        "provider" => ("kubeconfig: {context: c1, file: kc.yaml}", ""),
        _ => (
            "eks: {region: us-east-1, clusterName: c1}",
            "      kubeconfig: {context: c1, file: kc.yaml}\n",
        ),
    };
    git.write(
        "environments/test.yaml",
        format!(
            "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: test\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: c1\n      provider:\n        {provider}\n{extra}  apps:\n    - name: app\n      namespace: app\n"
        ),
    );
    git.write(
        "manifests/app/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: a\n",
    );
    git.commit("a kubeconfig with an exec plugin");
    git
}

#[test]
fn a_kubeconfig_named_by_the_repository_never_runs_its_exec_plugin() {
    for (at, line) in [("provider", 12), ("cluster", 13)] {
        let home = tempfile::tempdir().expect("home");
        let marker = home.path().join("MARKER");
        let git = hostile_repository(&marker, at);
        for (access, command) in [
            ("kubeconfig", &["clusters", "--env", "test"][..]),
            ("kubeconfig", &["plan", "--env", "test"]),
            ("kubeconfig", &["diff", "--env", "test"]),
            ("kubeconfig", &["status", "--env", "test"]),
            ("kubeconfig", &["sync", "--env", "test"]),
            ("auto", &["sync", "--env", "test"]),
        ] {
            // In the work tree, where a relative `file:` used to be read.
            let output = run(
                git.path(),
                home.path(),
                &[("TIDEGATE_ACCESS", access)],
                command,
            );
            assert!(
                !marker.exists(),
                "{at}: `tidegate {}` ran the repository's exec plugin\n{}",
                command.join(" "),
                text(&output)
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains(&format!("environments/test.yaml:{line}:"))
                    && stderr.contains("kubeconfig file \"kc.yaml\" is named by the repository")
                    && stderr.contains("--kubeconfig PATH or KUBECONFIG"),
                "{at}: `tidegate {}` does not say why and how\n{}",
                command.join(" "),
                text(&output)
            );
            // 1 (invalid input), or 2 for `diff`, whose 1 means drift.
            assert!(
                matches!(output.status.code(), Some(1 | 2)),
                "{}",
                text(&output)
            );
        }
    }
}
