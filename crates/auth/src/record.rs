//! What is stored per token, and authentication against the stored set.

use crate::authorize::Principal;
use crate::error::{AuthFailure, StoreError};
use crate::identity::Identity;
use crate::roles::Roles;
use crate::token::{self, TokenHash, TokenId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One token as stored: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's id (the `<id>` of `tgt_<id>_<secret>`).
    pub id: TokenId,
    /// Who or what holds it: the identity's subject (e.g. `alice`,
    /// `ci-deployer`). Several tokens may share a name (rotation): they are
    /// the same identity.
    pub name: String,
    /// Its roles per environment.
    pub roles: Roles,
    /// SHA-256 digest of the token (see [`crate::token`]).
    pub hash: TokenHash,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Who created it (`user@host` of the CLI run).
    pub created_by: String,
    /// Expiry, Unix seconds (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Revocation time, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// Who revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
}

/// Whether a token authenticates now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Valid.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

impl TokenState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

impl TokenRecord {
    /// The identity the token proves.
    pub fn identity(&self) -> Identity {
        Identity::token(&self.name)
    }

    /// Its state at `now` (Unix seconds); revocation wins over expiry.
    pub fn state(&self, now: i64) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at.is_some_and(|at| now >= at) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

/// Checks a token name: 1–128 characters of `A-Z a-z 0-9 . _ @ + -`,
/// starting with a letter or digit (a person's or a pipeline's name, an
/// e-mail address).
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "token name `{}` is not allowed: 1–128 characters of letters, digits and . _ @ + -, starting with a letter or digit",
            tidegate_core::printable::printable(name)
        )))
    }
}

/// RFC 3339 for Unix seconds.
pub fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

/// Every stored token, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    records: BTreeMap<TokenId, TokenRecord>,
}

impl TokenSet {
    /// A set of these records.
    pub fn new(records: impl IntoIterator<Item = TokenRecord>) -> Self {
        TokenSet {
            records: records.into_iter().map(|r| (r.id.clone(), r)).collect(),
        }
    }

    /// The record of `id`.
    pub fn get(&self, id: &TokenId) -> Option<&TokenRecord> {
        self.records.get(id)
    }

    /// Every record, by id.
    pub fn iter(&self) -> impl Iterator<Item = &TokenRecord> {
        self.records.values()
    }

    /// The identity and roles `presented` proves at `now` (Unix seconds).
    ///
    /// The record is found by the token's id (no scan); the secret is
    /// checked (in constant time) before revocation and expiry, so only a
    /// holder of the real secret learns that a token was revoked or expired.
    pub fn authenticate(&self, presented: &str, now: i64) -> Result<Principal, AuthFailure> {
        let (id, secret) = token::parse(presented)?;
        let record = self
            .records
            .get(&id)
            .ok_or_else(|| AuthFailure::Unknown(id.clone()))?;
        if !record.hash.matches(&id, secret) {
            return Err(AuthFailure::WrongSecret(id));
        }
        match record.state(now) {
            TokenState::Active => Ok(Principal {
                identity: record.identity(),
                roles: record.roles.clone(),
            }),
            TokenState::Revoked => Err(AuthFailure::Revoked {
                id,
                name: record.name.clone(),
            }),
            TokenState::Expired => Err(AuthFailure::Expired {
                id,
                name: record.name.clone(),
                at: rfc3339(record.expires_at.unwrap_or(now)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::generate;

    const NOW: i64 = 1_800_000_000;

    fn issue(name: &str, expires_at: Option<i64>) -> (String, TokenRecord) {
        let (value, hash) = generate().expect("token");
        let record = TokenRecord {
            id: value.id().clone(),
            name: name.to_string(),
            roles: Roles::parse(["prod=deployer"]).expect("roles"),
            hash,
            created_at: NOW,
            created_by: "admin@host".into(),
            expires_at,
            revoked_at: None,
            revoked_by: None,
        };
        (value.expose().to_string(), record)
    }

    #[test]
    fn a_valid_token_authenticates_to_its_identity_and_roles() {
        let (token, record) = issue("alice", Some(NOW + 60));
        let set = TokenSet::new([record.clone(), issue("bob", None).1]);
        let who = set.authenticate(&token, NOW).expect("valid");
        assert_eq!(who.identity, Identity::token("alice"));
        assert_eq!(who.roles, record.roles);
    }

    #[test]
    fn an_expired_token_fails_from_its_expiry_on() {
        let (token, record) = issue("alice", Some(NOW + 60));
        let set = TokenSet::new([record]);
        assert!(set.authenticate(&token, NOW + 59).is_ok());
        let err = set.authenticate(&token, NOW + 60).expect_err("expired");
        assert!(matches!(err, AuthFailure::Expired { .. }), "{err}");
        assert!(
            err.to_string().contains("expired at 2027-01-15T08:01:00Z"),
            "{err}"
        );
    }

    #[test]
    fn a_revoked_token_fails_even_before_its_expiry() {
        let (token, mut record) = issue("alice", None);
        record.revoked_at = Some(NOW);
        let set = TokenSet::new([record]);
        let err = set.authenticate(&token, NOW).expect_err("revoked");
        assert!(matches!(err, AuthFailure::Revoked { .. }), "{err}");
    }

    #[test]
    fn a_wrong_secret_is_refused_before_revocation_or_expiry_is_told() {
        let (token, mut record) = issue("alice", Some(NOW - 1));
        record.revoked_at = Some(NOW - 10);
        let set = TokenSet::new([record]);
        let mut forged = token.clone();
        let last = if forged.ends_with('0') { "1" } else { "0" };
        forged.replace_range(forged.len() - 1.., last);
        let err = set.authenticate(&forged, NOW).expect_err("forged");
        assert!(matches!(err, AuthFailure::WrongSecret(_)), "{err}");
        assert!(!err.to_string().contains(&token[21..]), "{err}");
    }

    #[test]
    fn an_unknown_id_or_garbage_is_refused() {
        let (token, _) = issue("alice", None);
        let set = TokenSet::new([issue("bob", None).1]);
        assert!(matches!(
            set.authenticate(&token, NOW),
            Err(AuthFailure::Unknown(_))
        ));
        assert_eq!(
            set.authenticate("Bearer x", NOW),
            Err(AuthFailure::Malformed)
        );
    }

    #[test]
    fn the_record_holds_no_token_value() {
        let (token, record) = issue("alice", None);
        let json = serde_json::to_string(&record).expect("json");
        let secret = &token[21..];
        assert!(!json.contains(secret), "{json}");
        assert!(!format!("{record:?}").contains(secret));
        assert_eq!(
            serde_json::from_str::<TokenRecord>(&json).expect("read"),
            record
        );
    }

    #[test]
    fn names_are_checked() {
        for ok in ["alice", "ci-deployer", "alice@example.com", "a.b_c+d"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b", "a\u{1b}[31m", &"x".repeat(129)] {
            let err = check_name(bad).expect_err(bad).to_string();
            assert!(err.contains("is not allowed"), "{err}");
            assert!(!err.contains('\u{1b}'), "{err}");
        }
    }
}
