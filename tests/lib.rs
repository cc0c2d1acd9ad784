//! Helpers shared by the integration tests (`it/`) and benchmarks (`benches/`).

use git2::{Oid, Repository, Signature, Time};
use std::path::{Path, PathBuf};

/// A real Git repository in a temporary directory, built commit by commit.
pub struct GitFixture {
    dir: tempfile::TempDir,
    repo: Repository,
    clock: i64,
}

impl GitFixture {
    /// An empty repository whose first branch is `main`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Repository::init_opts(
            dir.path(),
            git2::RepositoryInitOptions::new().initial_head("main"),
        )
        .expect("git init");
        GitFixture {
            dir,
            repo,
            clock: 1_767_225_600, // 2026-01-01T00:00:00Z: commits are reproducible
        }
    }

    /// The work tree's root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `file://` URL of the repository.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// Writes a file (creating directories).
    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) -> &Self {
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, content).expect("write");
        self
    }

    /// Creates a symlink at `path` pointing at `target`.
    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, full).expect("symlink");
        self
    }

    /// Deletes a file.
    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.dir.path().join(path)).expect("remove");
        self
    }

    /// Copies a directory tree (files and symlinks) from `from` into `to` in the repository.
    pub fn copy_dir(&self, from: &Path, to: &str) -> &Self {
        for entry in walk(from) {
            let rel = entry
                .strip_prefix(from)
                .expect("prefix")
                .to_string_lossy()
                .to_string();
            let dest = if to.is_empty() {
                rel
            } else {
                format!("{to}/{rel}")
            };
            let meta = std::fs::symlink_metadata(&entry).expect("stat");
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&entry).expect("readlink");
                self.symlink(&dest, &target.to_string_lossy());
            } else {
                self.write(&dest, std::fs::read(&entry).expect("read"));
            }
        }
        self
    }

    /// Stages everything (additions, changes, deletions) and commits; returns the SHA.
    pub fn commit(&mut self, message: &str) -> String {
        let mut index = self.repo.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        index.update_all(["*"], None).expect("update");
        index.write().expect("write index");
        let tree_id = index.write_tree().expect("tree");
        let tree = self.repo.find_tree(tree_id).expect("find tree");
        self.clock += 60;
        let sig = Signature::new("Ada Lovelace", "ada@example.com", &Time::new(self.clock, 0))
            .expect("signature");
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let id: Oid = self
            .repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit");
        id.to_string()
    }

    /// The SHA HEAD points at now.
    pub fn head(&self) -> String {
        self.repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .map(|c| c.id().to_string())
            .expect("HEAD")
    }

    /// Points a lightweight tag at a commit, moving it if it exists.
    pub fn tag(&self, name: &str, sha: &str) {
        let obj = self.repo.revparse_single(sha).expect("rev");
        self.repo.tag_lightweight(name, &obj, true).expect("tag");
    }

    /// Creates (or moves) a branch at a commit.
    pub fn branch(&self, name: &str, sha: &str) {
        let commit = self
            .repo
            .find_commit(Oid::from_str(sha).expect("oid"))
            .expect("commit");
        self.repo.branch(name, &commit, true).expect("branch");
    }
}

impl Default for GitFixture {
    fn default() -> Self {
        Self::new()
    }
}

/// Every file and symlink below `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The workspace root (for the example manifests and environments).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `count` ConfigMaps (`cm-0`, `cm-1`...) as one multi-document YAML file:
/// many managed objects for steady-state checks and benchmarks.
pub fn configmaps(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  n: \"{i}\"\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// One HTTP/1.1 request to `address` (`host:port`) on a fresh connection;
/// the status code and the body.
pub fn http_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    stream.write_all(body).expect("send the body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
