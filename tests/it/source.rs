//! The Git source against real repositories: refs, tags that move, deleted
//! files, cache clones fetched incrementally, and never the work tree.

use tidegate_core::files::{FileContent, Limits};
use tidegate_source::{GitSource, Repo, RepoLocation, SourceError};
use tidegate_tests::GitFixture;

fn names(repo: &Repo, sha: &str) -> Vec<(String, String)> {
    repo.read_manifests(sha, "manifests", Limits::default())
        .expect("read")
        .into_iter()
        .map(|f| match f.content {
            FileContent::Bytes(b) => (f.path, String::from_utf8(b).expect("utf8")),
            other => (f.path, format!("{other:?}")),
        })
        .collect()
}

fn pair(path: &str, content: &str) -> (String, String) {
    (path.to_string(), content.to_string())
}

/// History: c1 (a=1), c2 (a=2, b), c3 (a deleted); tag v1 on c1 then moved to c2.
#[test]
fn reads_each_ref_from_a_cache_clone_and_follows_moved_tags() {
    let mut fx = GitFixture::new();
    fx.write("manifests/app/a.yaml", "a: 1\n")
        .write("README.md", "x\n");
    let c1 = fx.commit("one");
    fx.tag("v1", &c1);
    fx.branch("release", &c1);
    fx.write("manifests/app/a.yaml", "a: 2\n")
        .write("manifests/app/b.yml", "b: 1\n");
    let c2 = fx.commit("two");

    let cache = tempfile::tempdir().expect("cache");
    let git = GitSource::new(cache.path());
    let remote = RepoLocation::Remote(fx.url());
    let repo = git.open(&remote).expect("clone");
    assert_eq!(repo.resolve("v1").expect("v1").sha, c1);
    assert_eq!(repo.resolve("main").expect("main").sha, c2);
    assert_eq!(repo.resolve("HEAD").expect("HEAD").sha, c2);
    assert_eq!(repo.resolve(&c1).expect("sha").sha, c1);
    assert_eq!(repo.resolve(&c1[..10]).expect("short sha").sha, c1);
    assert_eq!(
        names(&repo, &c1),
        vec![pair("manifests/app/a.yaml", "a: 1\n")]
    );
    assert_eq!(
        names(&repo, &c2),
        vec![
            pair("manifests/app/a.yaml", "a: 2\n"),
            pair("manifests/app/b.yml", "b: 1\n")
        ]
    );

    fx.remove("manifests/app/a.yaml");
    let c3 = fx.commit("three: delete a");
    fx.tag("v1", &c2);
    drop(repo);
    let repo = git.open(&remote).expect("fetch");
    assert_eq!(
        repo.resolve("main").expect("main").sha,
        c3,
        "fetch brings new commits"
    );
    assert_eq!(
        repo.resolve("v1").expect("v1").sha,
        c2,
        "a moved tag is followed"
    );
    assert_eq!(repo.resolve("release").expect("release").sha, c1);
    assert_eq!(
        names(&repo, &c3),
        vec![pair("manifests/app/b.yml", "b: 1\n")]
    );
    let info = repo.resolve("main").expect("main");
    assert_eq!(info.summary, "three: delete a");
    assert_eq!(info.author, "Ada Lovelace <ada@example.com>");

    let err = repo.resolve("no-such-branch").expect_err("unknown");
    assert!(matches!(err, SourceError::UnknownRef { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("no-such-branch") && msg.contains("release") && msg.contains("v1"),
        "{msg}"
    );
}

#[test]
fn local_repositories_are_read_at_a_commit_never_from_the_work_tree() {
    let mut fx = GitFixture::new();
    fx.write("manifests/app/a.yaml", "a: committed\n");
    let c1 = fx.commit("one");
    fx.write("manifests/app/a.yaml", "a: dirty\n")
        .write("manifests/app/new.yaml", "n: 1\n");
    let repo = Repo::open_local(fx.path()).expect("open");
    let head = repo.resolve("HEAD").expect("HEAD");
    assert_eq!(head.sha, c1);
    assert_eq!(
        names(&repo, &head.sha),
        vec![pair("manifests/app/a.yaml", "a: committed\n")]
    );
    assert_eq!(
        repo.read_file(&head.sha, "manifests/app/new.yaml")
            .expect("read"),
        None
    );
}

#[test]
fn symlinks_are_followed_only_inside_the_directory_and_big_files_are_not_loaded() {
    let mut fx = GitFixture::new();
    fx.write("manifests/app/real.yaml", "r: 1\n")
        .write("secrets/key.yaml", "k: 1\n")
        .write("manifests/app/big.yaml", "x".repeat(2048))
        .symlink("manifests/app/inside.yaml", "real.yaml")
        .symlink("manifests/app/outside.yaml", "../../secrets/key.yaml")
        .symlink("manifests/app/absolute.yaml", "/etc/passwd");
    let c1 = fx.commit("links");
    let repo = Repo::open_local(fx.path()).expect("open");
    let files = repo
        .read_manifests(
            &c1,
            "manifests",
            Limits {
                max_file_bytes: 1024,
            },
        )
        .expect("read");
    let by_name = |n: &str| {
        files
            .iter()
            .find(|f| f.path.ends_with(n))
            .map(|f| f.content.clone())
            .expect(n)
    };
    assert_eq!(
        by_name("inside.yaml"),
        FileContent::Bytes(b"r: 1\n".to_vec())
    );
    assert!(matches!(
        by_name("outside.yaml"),
        FileContent::EscapingSymlink { .. }
    ));
    assert!(matches!(
        by_name("absolute.yaml"),
        FileContent::EscapingSymlink { .. }
    ));
    assert_eq!(by_name("big.yaml"), FileContent::TooLarge { size: 2048 });
    let err = repo
        .read_manifests(&c1, "nope", Limits::default())
        .expect_err("missing dir");
    assert!(matches!(err, SourceError::NoSuchPath { .. }));
}

/// A branch spelled like the start of another commit's SHA (a pull request
/// could push one) never silently wins over the commit (issue #20).
#[test]
fn a_branch_named_like_a_short_sha_does_not_win_over_the_commit() {
    let mut fx = GitFixture::new();
    fx.write("manifests/app/a.yaml", "a: 1\n");
    let good = fx.commit("good");
    fx.write("manifests/app/a.yaml", "a: 2\n");
    let bad = fx.commit("bad");
    let short = &good[..7];
    fx.branch(short, &bad);
    let repo = Repo::open_local(fx.path()).expect("open");
    let err = repo.resolve(short).expect_err("ambiguous");
    let text = err.to_string();
    assert!(
        matches!(err, SourceError::AmbiguousRef { .. })
            && text.contains(&format!("commit {good}"))
            && text.contains(&format!("refs/heads/{short}")),
        "{text}"
    );
    // The full SHA and the full ref name say which.
    assert_eq!(repo.resolve(&good).expect("full sha").sha, good);
    assert_eq!(
        repo.resolve(&format!("refs/heads/{short}"))
            .expect("full ref")
            .sha,
        bad
    );
    // Hex input that is only a commit, or only a branch, resolves as before.
    assert_eq!(repo.resolve(&bad[..8]).expect("short sha").sha, bad);
    fx.branch("cafe", &good);
    if !good.starts_with("cafe") && !bad.starts_with("cafe") {
        assert_eq!(repo.resolve("cafe").expect("hex branch").sha, good);
    }
}

/// Credentials in a `repoURL` stay out of the cache clone's configuration
/// and its directory name (issue #20).
#[test]
fn url_credentials_are_not_stored_in_the_cache_clone() {
    let cache = tempfile::tempdir().expect("cache");
    let secret = "hunter2-token";
    // Nothing listens on port 9: the fetch fails after the clone is set up.
    let url = format!("https://user:{secret}@127.0.0.1:9/fleet.git?private_token={secret}");
    let err = GitSource::new(cache.path())
        .open(&RepoLocation::Remote(url))
        .err()
        .expect("nothing to fetch from");
    assert!(!err.to_string().contains(secret), "{err}");
    let files = tidegate_tests::walk(cache.path());
    assert!(files.iter().any(|p| p.ends_with("config")), "{files:?}");
    for path in files {
        assert!(
            !path.to_string_lossy().contains(secret),
            "{}",
            path.display()
        );
        if path.ends_with("config") {
            let config = std::fs::read_to_string(&path).expect("config");
            assert!(!config.contains(secret), "{config}");
        }
    }
}
