//! `tidegate audit migrate`: copies an SQLite trail into PostgreSQL
//! verbatim (the same bodies and hashes, so the same chain) and verifies
//! the copy.

use crate::AuditError;
use crate::entry::Seq;
use crate::postgres::PgStore;
use crate::store::{SignedHead, SqliteStore};
use serde::Serialize;

/// Entries copied per transaction.
const BATCH: i64 = 1_000;

/// What [`migrate`] did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    /// Entries in the source.
    pub entries: u64,
    /// Entries copied now.
    pub copied: u64,
    /// Entries the target already held (an earlier, interrupted or repeated run).
    pub already_there: u64,
    /// Signed heads copied now.
    pub signed_heads_copied: u64,
    /// The head both trails end at (sequence number, hash).
    pub head: Option<(Seq, String)>,
}

/// Copies every entry and signed head of `source` into `target`, then
/// verifies the target and checks that it ends at the source's head.
///
/// Refuses a source that fails verification, and a non-empty target that
/// holds another chain (its head is not an entry of the source's chain);
/// a target holding a prefix of the source (an interrupted run) is
/// completed.
pub fn migrate(source: &SqliteStore, target: &PgStore) -> Result<MigrateReport, AuditError> {
    let checked = source.verify(None)?;
    if let Some(problem) = &checked.problem {
        return Err(AuditError::Refused(format!(
            "the source trail {} fails verification ({problem}); nothing was copied (run `tidegate audit verify` on it)",
            source.path().display()
        )));
    }
    let target_check = target.verify(None)?;
    if let Some(problem) = &target_check.problem {
        return Err(AuditError::Refused(format!(
            "the target {} holds a trail that fails verification ({problem}); nothing was copied",
            target.display()
        )));
    }
    let mut head = target.head()?;
    let already_there = head.as_ref().map_or(0, |(seq, _)| *seq);
    if let Some((seq, hash)) = &head {
        let same = source
            .sealed_after(seq - 1, 1)?
            .first()
            .is_some_and(|(r, _)| r.seq == *seq && r.hash == *hash);
        if !same {
            return Err(AuditError::Refused(format!(
                "the target {} already holds another audit chain (its entry {seq} is not the source's); \
                 nothing was copied: migrate into an empty database",
                target.display()
            )));
        }
    }
    let mut copied = 0;
    loop {
        let after = head.as_ref().map_or(0, |(s, _)| *s);
        let rows = source.sealed_after(after, BATCH)?;
        let Some((last, _)) = rows.last() else {
            break;
        };
        let next = Some((last.seq, last.hash.clone()));
        copied += rows.len() as u64;
        target.import(rows, Vec::new(), head)?;
        head = next;
    }
    let present: std::collections::HashSet<(Seq, String, String)> = target
        .signed_heads()?
        .into_iter()
        .map(|h| (h.seq, h.public_key, h.signature))
        .collect();
    let missing: Vec<SignedHead> = source
        .signed_heads()?
        .into_iter()
        .filter(|h| !present.contains(&(h.seq, h.public_key.clone(), h.signature.clone())))
        .collect();
    let signed_heads_copied = missing.len() as u64;
    if !missing.is_empty() {
        target.import(Vec::new(), missing, head.clone())?;
    }
    let copy = target.verify(None)?;
    if let Some(problem) = &copy.problem {
        return Err(AuditError::Refused(format!(
            "the copy in {} fails verification: {problem}",
            target.display()
        )));
    }
    if copy.head != checked.head {
        return Err(AuditError::Refused(format!(
            "the copy in {} ends at {:?}, the source at {:?}",
            target.display(),
            copy.head,
            checked.head
        )));
    }
    Ok(MigrateReport {
        entries: checked.entries,
        copied,
        already_there,
        signed_heads_copied,
        head: copy.head,
    })
}
