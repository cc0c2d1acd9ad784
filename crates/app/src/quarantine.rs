//! Quarantined revisions: which revisions a failed rollout rejected, and
//! whether one may be applied.

use crate::AppError;
use std::{collections::BTreeSet, path::Path};
use tidegate_audit::{Action, Actor, AuditSink, Entry, Filter, Record, Revision, SqliteStore};

/// The latest quarantine of `revision` in `env` not lifted by an unquarantine.
pub fn quarantine_record(
    store: &SqliteStore,
    env: &str,
    revision: &str,
) -> Result<Option<Record>, AppError> {
    let records = store.records(&Filter {
        environment: Some(env.to_string()),
        actions: vec!["quarantine".into(), "unquarantine".into()],
        ..Filter::default()
    })?;
    Ok(records
        .into_iter()
        .rfind(|r| r.entry.to.as_ref().is_some_and(|t| t.sha == revision))
        .filter(|r| r.entry.action == Action::Quarantine))
}

/// Every revision of `env` quarantined now (quarantines not lifted by an
/// unquarantine), from the audit trail at `path` (none when it does not exist).
pub fn quarantine_list(path: &Path, env: &str) -> Result<BTreeSet<String>, AppError> {
    let mut list = BTreeSet::new();
    if !path.exists() {
        return Ok(list);
    }
    let store = SqliteStore::open_existing(path)?;
    for r in store.records(&Filter {
        environment: Some(env.to_string()),
        actions: vec!["quarantine".into(), "unquarantine".into()],
        ..Filter::default()
    })? {
        if let Some(to) = &r.entry.to {
            if r.entry.action == Action::Quarantine {
                list.insert(to.sha.clone());
            } else {
                list.remove(&to.sha);
            }
        }
    }
    Ok(list)
}

/// Whether a revision may be applied ([`admit_revision`]).
#[derive(Debug)]
pub enum Admission {
    /// Not quarantined.
    Clear {
        /// Every revision quarantined now.
        quarantined: BTreeSet<String>,
    },
    /// Quarantined, applied anyway as asked; recorded in the audit trail.
    Allowed {
        /// Every revision quarantined now.
        quarantined: BTreeSet<String>,
        /// The audit entry recording the decision.
        seq: u64,
    },
    /// Quarantined, and an override was asked for without a reason.
    NeedsReason,
    /// Quarantined: refused.
    Refused {
        /// The quarantine's audit record, when it is in this audit trail.
        since: Option<Box<Record>>,
    },
}

/// Decides whether `revision` may be applied to `env` (one `cluster`, or the
/// fleet): a quarantined revision is refused unless `allow` carries a reason
/// (`--allow-quarantined --reason`), which is recorded in the audit trail
/// at `audit_path` as `actor`.
pub fn admit_revision(
    audit_path: &Path,
    env: &str,
    cluster: Option<&str>,
    revision: &str,
    allow: Option<&str>,
    actor: &Actor,
) -> Result<Admission, AppError> {
    use tidegate_rollout::quarantine::{Admission as Admit, Refusal, admit};
    let list = quarantine_list(audit_path, env)?;
    match admit(revision, &list, allow) {
        Ok(Admit::Clear) => Ok(Admission::Clear { quarantined: list }),
        Ok(Admit::Allowed { reason }) => {
            let store = SqliteStore::open(audit_path)?;
            let mut entry = Entry::new(actor.clone(), Action::Other("allow-quarantined".into()))
                .env(env)
                .revisions(None, Some(Revision::sha(revision)))
                .message(reason);
            if let Some(c) = cluster {
                entry = entry.cluster(c);
            }
            let seq = store.append(entry)?;
            Ok(Admission::Allowed {
                quarantined: list,
                seq,
            })
        }
        Err(Refusal::NoReason) => Ok(Admission::NeedsReason),
        Err(Refusal::Quarantined { .. }) => Ok(Admission::Refused {
            since: quarantine_record(&SqliteStore::open_existing(audit_path)?, env, revision)?
                .map(Box::new),
        }),
    }
}
