//! Verifying a stored chain and its signed heads, whatever the store.

use crate::AuditError;
use crate::chain::{ChainChecker, ChainProblem, StoredRow};
use crate::entry::Seq;
use crate::signing;
use crate::store::{SignedHead, VerifyReport};
use ed25519_dalek::VerifyingKey;

/// Checks the signed `heads` (only those by `trusted`, when given), then
/// walks the rows `next_row` yields in `seq` order.
pub(crate) fn verify_chain(
    heads: &[SignedHead],
    trusted: Option<&VerifyingKey>,
    mut next_row: impl FnMut() -> Result<Option<StoredRow>, AuditError>,
) -> Result<VerifyReport, AuditError> {
    let trusted_hex = trusted.map(signing::public_key_hex);
    let mut report = VerifyReport {
        entries: 0,
        head: None,
        signed_head: None,
        problem: None,
    };
    let mut wanted: std::collections::BTreeMap<Seq, Vec<&SignedHead>> = Default::default();
    for h in heads {
        if trusted_hex.as_ref().is_some_and(|k| *k != h.public_key) {
            continue;
        }
        if !signing::verify_head(&h.public_key, h.seq, &h.hash, &h.signature) {
            report.problem = Some(ChainProblem::BadSignature { seq: h.seq });
            return Ok(report);
        }
        wanted.entry(h.seq).or_default().push(h);
    }
    if trusted.is_some() && wanted.is_empty() {
        report.problem = Some(ChainProblem::NoSignedHead);
        return Ok(report);
    }
    let mut checker = ChainChecker::new();
    let mut current = next_row()?;
    let mut last_seq = 0;
    while let Some(row) = current {
        let next = next_row()?;
        if !checker.push(&row, next.as_ref()) {
            break;
        }
        last_seq = row.seq;
        if let Some(hs) = wanted.get(&row.seq) {
            if hs.iter().any(|h| h.hash != row.hash) {
                report.problem = Some(ChainProblem::SignedHeadMismatch { seq: row.seq });
                break;
            }
            report.signed_head = Some(row.seq);
        }
        current = next;
    }
    report.entries = checker.count();
    if checker.count() > 0 {
        report.head = Some((last_seq, checker.head_hash().to_string()));
    }
    if report.problem.is_none() {
        report.problem = checker.problem().cloned();
    }
    if report.problem.is_none()
        && let Some((&signed_seq, _)) = wanted.iter().next_back()
        && signed_seq > last_seq
    {
        report.problem = Some(ChainProblem::Truncated {
            signed_seq,
            last_seq,
        });
    }
    Ok(report)
}
