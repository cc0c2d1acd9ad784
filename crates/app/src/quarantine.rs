//! Quarantined revisions: which revisions a failed rollout rejected, and
//! whether one may be applied.

use crate::AppError;
use std::{collections::BTreeSet, path::Path};
use tidegate_audit::{
    Action, Actor, AuditError, AuditSink, AuditStore, Entry, Filter, Record, Revision,
};
use tidegate_cluster::{ClientFactory, GateRecord};
use tidegate_core::Environment;

/// The latest quarantine of `revision` in `env` not lifted by an unquarantine.
pub fn quarantine_record(
    store: &AuditStore,
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

/// The audit trail at `path` (a file or a `postgres://` URL), `None` when
/// nothing was recorded there yet.
pub fn existing(path: &Path) -> Result<Option<AuditStore>, AuditError> {
    match AuditStore::open_existing(path) {
        Ok(store) => Ok(Some(store)),
        Err(AuditError::Missing(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every revision of `env` quarantined now (quarantines not lifted by an
/// unquarantine), from the audit trail at `path` (none when it does not exist).
pub fn quarantine_list(path: &Path, env: &str) -> Result<BTreeSet<String>, AppError> {
    let mut list = BTreeSet::new();
    let Some(store) = existing(path)? else {
        return Ok(list);
    };
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

/// Every revision of an environment quarantined now: in the local audit
/// trail at `audit_path` (older records) or in any of its clusters that can
/// be read. Also returns the clusters that could not be read, with why.
pub async fn quarantined_everywhere<F: ClientFactory>(
    factory: &F,
    environment: &Environment,
    audit_path: &Path,
) -> Result<(BTreeSet<String>, crate::GatesRead), AppError> {
    let audit = quarantine_list(audit_path, &environment.metadata.name)?;
    let read = crate::read_gates(factory, environment).await;
    Ok((crate::quarantined(audit, &read.gates), read))
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
        /// The quarantine as the clusters record it, when they do.
        in_clusters: Option<GateRecord>,
    },
}

/// Decides whether `revision` may be applied to `environment` (one
/// `cluster`, or the fleet): a revision quarantined in the audit trail at
/// `audit_path` or in any of the environment's clusters is refused unless
/// `allow` carries a reason (`--allow-quarantined --reason`), which is
/// recorded in the audit trail as `actor`. Also returns the clusters whose
/// quarantines could not be read.
pub async fn admit_revision<F: ClientFactory>(
    factory: &F,
    environment: &Environment,
    audit_path: &Path,
    cluster: Option<&str>,
    revision: &str,
    allow: Option<&str>,
    actor: &Actor,
) -> Result<(Admission, Vec<(String, String)>), AppError> {
    use tidegate_rollout::quarantine::{Admission as Admit, Refusal, admit};
    let env = &environment.metadata.name;
    let (list, read) = quarantined_everywhere(factory, environment, audit_path).await?;
    let admission = match admit(revision, &list, allow) {
        Ok(Admit::Clear) => Admission::Clear { quarantined: list },
        Ok(Admit::Allowed { reason }) => {
            let store = AuditStore::open(audit_path)?;
            let mut entry = Entry::new(actor.clone(), Action::Other("allow-quarantined".into()))
                .env(env)
                .revisions(None, Some(Revision::sha(revision)))
                .message(reason);
            if let Some(c) = cluster {
                entry = entry.cluster(c);
            }
            let seq = store.append(entry)?;
            Admission::Allowed {
                quarantined: list,
                seq,
            }
        }
        Err(Refusal::NoReason) => Admission::NeedsReason,
        Err(Refusal::Quarantined { .. }) => Admission::Refused {
            since: match existing(audit_path)? {
                Some(store) => quarantine_record(&store, env, revision)?.map(Box::new),
                None => None,
            },
            in_clusters: read.gates.quarantined.get(revision).cloned(),
        },
    };
    Ok((admission, read.unreadable))
}
