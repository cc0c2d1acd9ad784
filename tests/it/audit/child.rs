//! Child processes for the concurrency and crash tests: the test binary
//! runs itself again with TIDEGATE_AUDIT_CHILD set, executing only
//! `child_main` below.

use super::event;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use tidegate_audit::{Action, Actor, AuditSink, AuditStore, Entry, Revision, Trigger};

const MODE: &str = "TIDEGATE_AUDIT_CHILD";
const DB: &str = "TIDEGATE_AUDIT_CHILD_DB";
const GO: &str = "TIDEGATE_AUDIT_CHILD_GO";

/// Starts this test binary again in `mode` on the database at `db` (a
/// file or a `postgres://` URL).
pub fn spawn_child(mode: &str, db: &Path) -> Child {
    spawn_child_gated(mode, db, None)
}

/// Like [`spawn_child`]; with `go`, the child opens the store and then
/// waits until that file exists before it starts (so that several
/// children write at the same time).
pub fn spawn_child_gated(mode: &str, db: &Path, go: Option<&Path>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    if let Some(go) = go {
        cmd.env(GO, go);
    }
    cmd.args([
        "audit::child::child_main",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(MODE, mode)
    .env(DB, db)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("spawn child")
}

/// Reads the child's stdout until `marker`.
pub fn wait_for_line(child: &mut Child, marker: &str) {
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(marker) => return,
            Some(Ok(_)) => continue,
            other => panic!("child ended before {marker}: {other:?}"),
        }
    }
}

/// Not a test of its own: does the child's work when started by
/// [`spawn_child`], and nothing otherwise.
#[test]
fn child_main() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    let db = std::env::var(DB).expect("db");
    let store = AuditStore::open_existing(Path::new(&db)).expect("child open");
    if let Some(go) = std::env::var_os(GO) {
        while !Path::new(&go).exists() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let parts: Vec<&str> = mode.split(':').collect();
    match parts.as_slice() {
        ["append", n, id] => {
            let n: u64 = n.parse().expect("n");
            for i in 0..n {
                let mut e = event(i);
                e.actor = Actor::new(format!("writer-{id}"), Trigger::Cli);
                e.details.insert("n".into(), i.to_string());
                store.append(e).expect("append");
            }
        }
        ["crash"] => {
            let op = store
                .begin_operation(
                    Entry::new(
                        Actor::new("controller", Trigger::ControllerPoll),
                        Action::RolloutStart,
                    )
                    .env("prod")
                    .app("gin-app")
                    .revisions(
                        None,
                        Some(Revision::sha("0123456789abcdef0123456789abcdef01234567")),
                    ),
                )
                .expect("begin");
            println!("INTENT-COMMITTED {op}");
            // "Changing the cluster": killed here by the parent.
            std::thread::sleep(std::time::Duration::from_secs(120));
        }
        other => panic!("unknown child mode {other:?}"),
    }
}
