//! The quarantine rules every command that moves a cluster follows: a
//! revision a failed rollout quarantined is applied nowhere — by a fleet
//! rollout, a single-cluster sync or a rollback — unless someone allows it
//! explicitly with a reason, and only a revision that was never quarantined
//! becomes a cluster's last good revision (the rollback target).

use std::collections::BTreeSet;

/// Why a revision may be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// It is not quarantined.
    Clear,
    /// It is quarantined and someone allowed it anyway (to be audited).
    Allowed {
        /// Why, as given with `--reason`.
        reason: String,
    },
}

/// Why a revision may not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A failed rollout quarantined it.
    #[error("revision {revision} is quarantined")]
    Quarantined {
        /// The revision.
        revision: String,
    },
    /// `--allow-quarantined` without a reason.
    #[error("--allow-quarantined needs --reason \"...\" (it is recorded in the audit trail)")]
    NoReason,
}

/// May `revision` be applied? `allow` is `Some(reason)` when the user passed
/// `--allow-quarantined` (the reason may be empty: then it is refused).
pub fn admit(
    revision: &str,
    quarantined: &BTreeSet<String>,
    allow: Option<&str>,
) -> Result<Admission, Refusal> {
    if !quarantined.contains(revision) {
        return Ok(Admission::Clear);
    }
    match allow.map(str::trim) {
        None => Err(Refusal::Quarantined {
            revision: revision.to_string(),
        }),
        Some("") => Err(Refusal::NoReason),
        Some(reason) => Ok(Admission::Allowed {
            reason: reason.to_string(),
        }),
    }
}

/// May a single-cluster sync that ended Healthy record `revision` as the
/// cluster's last good revision? Only when it is not quarantined.
pub fn records_healthy(revision: &str, quarantined: &BTreeSet<String>) -> bool {
    !quarantined.contains(revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarantined_revision_needs_an_explicit_allowance_with_a_reason() {
        let q: BTreeSet<String> = ["bad".to_string()].into();
        assert_eq!(admit("good", &q, None), Ok(Admission::Clear));
        assert_eq!(
            admit("bad", &q, None),
            Err(Refusal::Quarantined {
                revision: "bad".into()
            })
        );
        assert_eq!(admit("bad", &q, Some("  ")), Err(Refusal::NoReason));
        assert_eq!(
            admit("bad", &q, Some("hotfix verified by hand")),
            Ok(Admission::Allowed {
                reason: "hotfix verified by hand".into()
            })
        );
        assert!(records_healthy("good", &q));
        assert!(!records_healthy("bad", &q));
    }
}
