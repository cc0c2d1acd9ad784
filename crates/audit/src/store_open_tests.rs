//! Several processes creating one new audit file at the same moment (a
//! controller and a CLI run, two replicas starting): every one of them
//! opens it, one schema is created, and the log works for all of them.

use super::*;
use crate::{Action, Actor, AuditSink, Entry, Filter, Trigger};
use std::sync::{Arc, Barrier};

/// `threads` connections open one new file at once (released together by
/// a barrier), each appends one entry; returns the errors.
fn open_together(path: &Path, threads: usize) -> Vec<String> {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (barrier, path) = (barrier.clone(), path.to_path_buf());
            std::thread::spawn(move || -> Result<(), String> {
                barrier.wait();
                let store = SqliteStore::open(&path).map_err(|e| format!("open: {e}"))?;
                store
                    .append(
                        Entry::new(Actor::new(format!("p{i}@host"), Trigger::Cli), Action::Sync)
                            .env("prod"),
                    )
                    .map_err(|e| format!("append: {e}"))?;
                Ok(())
            })
        })
        .collect();
    handles
        .into_iter()
        .filter_map(|h| h.join().expect("thread").err())
        .collect()
}

#[test]
fn concurrent_creators_of_one_new_file_all_open_it() {
    let dir = tempfile::tempdir().expect("dir");
    // The race is narrow: many fresh files, several openers each.
    for round in 0..40 {
        let path = dir.path().join(format!("audit-{round}.db"));
        let errors = open_together(&path, 6);
        assert!(errors.is_empty(), "round {round}: {errors:?}");
        let store = SqliteStore::open_existing(&path).expect("reopen");
        assert_eq!(
            store.records(&Filter::default()).expect("records").len(),
            6,
            "round {round}"
        );
        assert!(store.verify_chain().expect("verify"), "round {round}");
    }
}
