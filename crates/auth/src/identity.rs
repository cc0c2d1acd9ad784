//! Who is asking: an identity proven by an issuer.
//!
//! API tokens are one issuer ([`TOKEN_ISSUER`]); an OIDC provider will be
//! another (its `iss` URL and `sub` claim) and maps to the same
//! [`Identity`], so the audit model does not change when it is added.

use std::fmt;
use tidegate_audit::{Actor, Trigger};

/// The issuer of identities proven by Tidegate's own API tokens.
pub const TOKEN_ISSUER: &str = "tidegate-token";

/// The issuer given to audit actors that carry no issuer: the local Unix
/// user of a CLI run (`user@host`) and the controller itself.
pub const LOCAL_ISSUER: &str = "local";

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// How the identity was proven (never a display name).
    pub issuer: String,
    /// Who it is within the issuer: for a token, the token's name.
    pub subject: String,
    /// What people read in logs, messages and reports.
    pub display: String,
}

impl Identity {
    /// The identity of a token named `name`.
    pub fn token(name: &str) -> Self {
        Identity {
            issuer: TOKEN_ISSUER.to_string(),
            subject: name.to_string(),
            display: name.to_string(),
        }
    }

    /// True when both are the same principal (issuer and subject; the
    /// display name does not count).
    pub fn same_as(&self, other: &Identity) -> bool {
        self.issuer == other.issuer && self.subject == other.subject
    }

    /// The audit actor for a change this identity asked for.
    pub fn actor(&self, trigger: Trigger) -> Actor {
        Actor::authenticated(&self.issuer, &self.subject, &self.display, trigger)
    }

    /// The identity an audit actor records: its issuer and subject when an
    /// issuer authenticated it, else [`LOCAL_ISSUER`] and the recorded
    /// `user@host` (a rollout started from a local CLI).
    pub fn of_actor(actor: &Actor) -> Self {
        match &actor.authenticated {
            Some(who) => Identity {
                issuer: who.issuer.clone(),
                subject: who.subject.clone(),
                display: actor.identity.clone(),
            },
            None => Identity {
                issuer: LOCAL_ISSUER.to_string(),
                subject: actor.identity.clone(),
                display: actor.identity.clone(),
            },
        }
    }
}

impl fmt::Display for Identity {
    /// `display (issuer:subject)`, or `display (issuer)` when the subject is
    /// the display name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.display == self.subject {
            write!(f, "{} ({})", self.display, self.issuer)
        } else {
            write!(f, "{} ({}:{})", self.display, self.issuer, self.subject)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_round_trips_through_the_audit_actor() {
        let alice = Identity::token("alice");
        let actor = alice.actor(Trigger::Api);
        assert_eq!(actor.identity, "alice");
        assert_eq!(Identity::of_actor(&actor), alice);
    }

    #[test]
    fn a_local_actor_is_a_local_identity_never_a_token_one() {
        let local = Identity::of_actor(&Actor::new("alice", Trigger::Cli));
        assert_eq!(local.issuer, LOCAL_ISSUER);
        assert!(!local.same_as(&Identity::token("alice")));
    }

    #[test]
    fn the_display_name_does_not_make_two_identities_the_same() {
        let a = Identity {
            display: "Alice".into(),
            ..Identity::token("alice")
        };
        assert!(a.same_as(&Identity::token("alice")));
        assert!(!a.same_as(&Identity::token("bob")));
        assert_eq!(a.to_string(), "Alice (tidegate-token:alice)");
        assert_eq!(Identity::token("bob").to_string(), "bob (tidegate-token)");
    }
}
