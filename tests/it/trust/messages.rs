//! What users read when their input is wrong (issue #20): where, why and
//! how to fix it, without secrets, Rust debug text or the wrong advice.

use super::{run, text};
use crate::pipeline::render_env;
use tidegate_tests::GitFixture;

/// An environment `test` with one app `app`, plus `files` in its directory.
fn repository(files: &[(&str, &[u8])]) -> GitFixture {
    let mut git = GitFixture::new();
    git.write(
        "environments/test.yaml",
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: test\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: c1\n      provider: {kubeconfig: {}}\n  apps:\n    - name: app\n      namespace: app\n",
    );
    for (path, bytes) in files {
        git.write(&format!("manifests/app/{path}"), bytes);
    }
    git.commit("test");
    git
}

fn problems(git: &GitFixture) -> String {
    match render_env(git.path(), "test") {
        Ok(_) => panic!("rendered without error"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn secret_values_are_not_echoed_in_validation_errors() {
    let git = repository(&[(
        "secret.yaml",
        b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  PIN: 480151\n  ENABLED: yes\n",
    )]);
    let text = problems(&git);
    assert!(
        text.contains("manifests/app/secret.yaml:6: stringData.PIN must be a string, but it reads as a number (value not shown: Secret data)"),
        "{text}"
    );
    assert!(
        text.contains("manifests/app/secret.yaml:7: stringData.ENABLED"),
        "{text}"
    );
    assert!(!text.contains("480151"), "{text}");
}

#[test]
fn yaml_limits_are_named_in_words_with_fitting_help() {
    let deep = format!("a: {}1{}\n", "[".repeat(80), "]".repeat(80));
    let many = "---\na: 1\n".repeat(1100);
    let git = repository(&[
        ("deep.yaml", deep.as_bytes()),
        ("many.yaml", many.as_bytes()),
    ]);
    // Through the binary: 64 levels of nesting need more stack than a test
    // thread's 2 MiB in a debug build.
    let home = tempfile::tempdir().expect("home");
    let output = run(git.path(), home.path(), &[], &["validate"]);
    let text = text(&output);
    assert!(
        text.contains("manifests/app/deep.yaml:1: the YAML is nested"),
        "{text}"
    );
    assert!(text.contains("at most 1024 are read per file"), "{text}");
    assert!(!text.contains("alias bomb"), "{text}");
    assert!(
        !text.contains("Documents {") && !text.contains("Depth {"),
        "{text}"
    );
}

#[test]
fn lfs_pointers_and_non_utf8_names_are_named_at_their_path() {
    let lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n";
    let git = repository(&[("big.yaml", lfs)]);
    let text = problems(&git);
    assert!(
        text.contains("manifests/app/big.yaml:1: app app: this file is a Git LFS pointer"),
        "{text}"
    );

    // A file, and a directory, whose names are not UTF-8 (Linux allows it).
    use std::os::unix::ffi::OsStrExt as _;
    for (head, directory) in [("bad", false), ("dir", true)] {
        let mut git = repository(&[]);
        let mut name = head.as_bytes().to_vec();
        name.extend_from_slice(b"-\xff");
        if !directory {
            name.extend_from_slice(b".yaml");
        }
        let path = git
            .path()
            .join("manifests/app")
            .join(std::ffi::OsStr::from_bytes(&name));
        let file = if directory { path.join("x.yaml") } else { path };
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, "a: 1\n").expect("write");
        git.commit("a name that is not UTF-8");
        let text = problems(&git);
        assert!(
            text.contains(&format!("manifests/app/{head}-\\xff"))
                && text.contains("not valid UTF-8"),
            "{head}: {text}"
        );
    }
}

#[test]
fn hints_for_an_empty_repository_and_an_uncommitted_environment() {
    let home = tempfile::tempdir().expect("home");
    let git = GitFixture::new();
    let output = run(git.path(), home.path(), &[], &["validate"]);
    assert!(
        text(&output).contains("the repository has no commits yet"),
        "{}",
        text(&output)
    );

    let git = repository(&[(
        "config.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    )]);
    git.write("environments/staging.yaml", "# written, not committed\n");
    let output = run(
        git.path(),
        home.path(),
        &[],
        &["render", "--env", "staging"],
    );
    assert!(
        text(&output).contains(
            "environments/staging.yaml is in the work tree but not in that commit: commit it"
        ),
        "{}",
        text(&output)
    );
}

#[test]
fn a_cause_is_said_once_without_debug_text() {
    let home = tempfile::tempdir().expect("home");
    // Nothing listens on port 9.
    let output = run(
        home.path(),
        home.path(),
        &[],
        &["--repo", "http://127.0.0.1:9/fleet.git", "validate"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
    assert!(!stderr.contains("class="), "{stderr}");
}
