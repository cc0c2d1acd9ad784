//! The actor model: authenticated identities beside the local Unix user,
//! without changing how existing records hash.

use super::*;
use crate::canonical::GENESIS;
use crate::chain::seal;
use crate::{AuditSink, Filter, SqliteStore};

/// The canonical body and hash of a local CLI record, as written before
/// actors could carry an issuer (computed with that code): existing trails
/// still verify, and local records hash as they always did.
const OLD_BODY: &str = r#"{"action":"sync","actor":{"identity":"alice@laptop","trigger":"cli"},"environment":"prod","phase":"event","seq":1,"time_ms":1700000000000}"#;
const OLD_HASH: &str = "a949e72d4b9c722eec80555e781ae48aafb55dc11e8f0a112dce9a4b7846ee4b";

fn local_entry() -> Entry {
    Entry::new(Actor::new("alice@laptop", Trigger::Cli), Action::Sync).env("prod")
}

#[test]
fn a_local_actor_hashes_as_before() {
    let (record, body) = seal(
        1,
        1_700_000_000_000,
        Phase::Event,
        None,
        local_entry(),
        GENESIS,
    );
    assert_eq!(body, OLD_BODY);
    assert_eq!(record.hash, OLD_HASH);
}

#[test]
fn an_old_body_reads_as_an_unauthenticated_actor() {
    let record: Record = serde_json::from_str(&format!(
        "{},\"prev_hash\":\"{GENESIS}\",\"hash\":\"{OLD_HASH}\"}}",
        OLD_BODY.trim_end_matches('}')
    ))
    .expect("old record");
    assert_eq!(record.entry.actor, Actor::new("alice@laptop", Trigger::Cli));
    assert_eq!(record.entry.actor.authenticated, None);
}

#[test]
fn an_authenticated_actor_is_hashed_stored_and_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("audit.db")).expect("store");
    store.append(local_entry()).expect("local entry");
    let api = Actor::authenticated("tidegate-token", "bob", "bob", Trigger::Api);
    store
        .append(Entry::new(api.clone(), Action::Approve).env("prod"))
        .expect("api entry");

    let records = store.records(&Filter::default()).expect("records");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].entry.actor.authenticated, None);
    assert_eq!(records[1].entry.actor, api);
    assert!(store.verify(None).expect("verify").ok());

    // The issuer and subject are inside the hashed body: changing the
    // subject changes the hash.
    let (a, body) = seal(
        2,
        1,
        Phase::Event,
        None,
        Entry::new(api, Action::Approve),
        GENESIS,
    );
    assert!(body.contains(r#""authenticated":{"issuer":"tidegate-token","subject":"bob"}"#));
    let other = Actor::authenticated("tidegate-token", "mallory", "bob", Trigger::Api);
    let (b, _) = seal(
        2,
        1,
        Phase::Event,
        None,
        Entry::new(other, Action::Approve),
        GENESIS,
    );
    assert_ne!(a.hash, b.hash);
}

#[test]
fn an_empty_issuer_or_subject_is_refused() {
    for (issuer, subject) in [("", "bob"), ("tidegate-token", " ")] {
        let actor = Actor::authenticated(issuer, subject, "bob", Trigger::Api);
        let err = Entry::new(actor, Action::Sync)
            .check()
            .expect_err("refused");
        assert!(err.to_string().contains("issuer or subject"), "{err}");
    }
}
