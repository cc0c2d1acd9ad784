//! Which role each API action needs, and the approval rule.

use crate::identity::Identity;
use crate::roles::{ALL_ENVIRONMENTS, Role, Roles};
use std::collections::BTreeSet;
use std::fmt;

/// An authenticated caller: who, and the roles it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub identity: Identity,
    /// Its roles per environment.
    pub roles: Roles,
}

/// What a caller of the API asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read anything about an environment (`audit log` included).
    Read,
    /// `status`.
    Status,
    /// `history`.
    History,
    /// `plan`.
    Plan,
    /// `diff`.
    Diff,
    /// `sync` (an environment or one cluster).
    Sync,
    /// `rollback`.
    Rollback,
    /// `switch` (blue-green).
    Switch,
    /// `unquarantine`.
    Unquarantine,
    /// `approve` (also subject to the [`ApprovalRule`]).
    Approve,
    /// Create, list or revoke API tokens: `admin` for every environment
    /// (`*=admin`), since a token may be given roles anywhere.
    TokenAdmin,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 11] = [
        Action::Read,
        Action::Status,
        Action::History,
        Action::Plan,
        Action::Diff,
        Action::Sync,
        Action::Rollback,
        Action::Switch,
        Action::Unquarantine,
        Action::Approve,
        Action::TokenAdmin,
    ];

    /// The lowest role that may do it.
    pub fn needs(self) -> Role {
        match self {
            Action::Read | Action::Status | Action::History | Action::Plan | Action::Diff => {
                Role::Viewer
            }
            Action::Sync | Action::Rollback | Action::Switch | Action::Unquarantine => {
                Role::Deployer
            }
            Action::Approve => Role::Approver,
            Action::TokenAdmin => Role::Admin,
        }
    }

    /// The command's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Status => "status",
            Action::History => "history",
            Action::Plan => "plan",
            Action::Diff => "diff",
            Action::Sync => "sync",
            Action::Rollback => "rollback",
            Action::Switch => "switch",
            Action::Unquarantine => "unquarantine",
            Action::Approve => "approve",
            Action::TokenAdmin => "manage tokens",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenialReason {
    /// The caller's role in the environment is below what the action needs.
    Role {
        /// The role it has there (`None`: none).
        has: Option<Role>,
    },
    /// An approval by the identity that started the rollout.
    SelfApproval,
}

/// A refused request: who, what, where, and the role that would be needed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Denied {
    /// Who asked.
    pub who: Identity,
    /// What it asked to do.
    pub action: Action,
    /// In which environment (`*` for token administration).
    pub env: String,
    /// The lowest role that may do it.
    pub needs: Role,
    /// Why it was refused.
    pub reason: DenialReason,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Denied {
            who,
            action,
            env,
            needs,
            reason,
        } = self;
        let place = if env == ALL_ENVIRONMENTS {
            "in every environment (*)".to_string()
        } else {
            format!("in environment {env}")
        };
        match reason {
            DenialReason::Role { has } => {
                let has = has.map_or_else(|| "no role".to_string(), |r| format!("role {r}"));
                write!(
                    f,
                    "{who} may not {action} {place}: that needs role {needs} or higher there, and it has {has}"
                )
            }
            DenialReason::SelfApproval => write!(
                f,
                "{who} may not approve {place}: it started this rollout, and an approval must come from another identity with role {needs} or higher (self-approval is off for {env})"
            ),
        }
    }
}

/// Checks that `who` may do `action` in environment `env`.
///
/// [`Action::TokenAdmin`] looks only at the `*` grant, whatever `env` is.
/// An approval must also pass [`authorize_approval`].
pub fn authorize(who: &Principal, env: &str, action: Action) -> Result<(), Denied> {
    let needs = action.needs();
    let (env, has) = match action {
        Action::TokenAdmin => (ALL_ENVIRONMENTS, who.roles.everywhere()),
        _ => (env, who.roles.role_in(env)),
    };
    if has.is_some_and(|role| role >= needs) {
        return Ok(());
    }
    Err(Denied {
        who: who.identity.clone(),
        action,
        env: env.to_string(),
        needs,
        reason: DenialReason::Role { has },
    })
}

/// The approval rule: an approval needs the approver role and may not come
/// from the identity that started the rollout, except in the environments
/// where self-approval is allowed (none by default).
///
/// Configured by the operator of the controller (a flag), never by
/// repository content: whoever can push to the repository must not be able
/// to switch the four-eyes rule off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalRule {
    allow_self_approval: BTreeSet<String>,
}

impl ApprovalRule {
    /// Self-approval refused everywhere (the default).
    pub fn new() -> Self {
        ApprovalRule::default()
    }

    /// Allows self-approval in `env` (`*`: everywhere).
    pub fn allow_self_approval_in(mut self, env: impl Into<String>) -> Self {
        self.allow_self_approval.insert(env.into());
        self
    }

    /// True when the identity that started a rollout in `env` may approve
    /// it.
    pub fn self_approval_allowed(&self, env: &str) -> bool {
        self.allow_self_approval.contains(env)
            || self.allow_self_approval.contains(ALL_ENVIRONMENTS)
    }
}

/// Checks that `who` may approve the rollout in `env` that `started_by`
/// started (see [`Identity::of_actor`] for the audit trail's intent): the
/// approver role, and another identity unless `rule` allows self-approval
/// there.
pub fn authorize_approval(
    who: &Principal,
    env: &str,
    started_by: &Identity,
    rule: &ApprovalRule,
) -> Result<(), Denied> {
    authorize(who, env, Action::Approve)?;
    if who.identity.same_as(started_by) && !rule.self_approval_allowed(env) {
        return Err(Denied {
            who: who.identity.clone(),
            action: Action::Approve,
            env: env.to_string(),
            needs: Action::Approve.needs(),
            reason: DenialReason::SelfApproval,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str, grants: &[&str]) -> Principal {
        Principal {
            identity: Identity::token(name),
            roles: Roles::parse(grants.iter().copied()).expect("roles"),
        }
    }

    #[test]
    fn each_action_needs_its_role_and_higher_roles_may_too() {
        for action in Action::ALL {
            for role in Role::ALL {
                let who = principal("p", &[&format!("*={role}")]);
                assert_eq!(
                    authorize(&who, "prod", action).is_ok(),
                    role >= action.needs(),
                    "{role} {action}"
                );
            }
        }
        assert_eq!(Action::Diff.needs(), Role::Viewer);
        assert_eq!(Action::Unquarantine.needs(), Role::Deployer);
        assert_eq!(Action::Approve.needs(), Role::Approver);
        assert_eq!(Action::TokenAdmin.needs(), Role::Admin);
    }

    #[test]
    fn a_role_in_one_environment_gives_nothing_in_another() {
        let who = principal("ci", &["staging=deployer"]);
        assert!(authorize(&who, "staging", Action::Sync).is_ok());
        let denied = authorize(&who, "prod", Action::Status).expect_err("no role in prod");
        assert_eq!(denied.reason, DenialReason::Role { has: None });
    }

    #[test]
    fn the_denial_names_who_what_where_and_the_role_needed() {
        let viewer = principal("alice", &["prod=viewer"]);
        let denied = authorize(&viewer, "prod", Action::Sync).expect_err("viewer");
        assert_eq!(
            denied.to_string(),
            "alice (tidegate-token) may not sync in environment prod: that needs role deployer or higher there, and it has role viewer"
        );
        let nobody = principal("bob", &[]);
        let denied = authorize(&nobody, "dev", Action::Approve).expect_err("no role");
        assert!(
            denied
                .to_string()
                .contains("needs role approver or higher there, and it has no role"),
            "{denied}"
        );
    }

    #[test]
    fn token_admin_needs_admin_everywhere_not_in_one_environment() {
        let prod_admin = principal("p", &["prod=admin"]);
        let denied = authorize(&prod_admin, "prod", Action::TokenAdmin).expect_err("not *");
        assert_eq!(denied.env, "*");
        assert!(
            denied
                .to_string()
                .contains("may not manage tokens in every environment (*)"),
            "{denied}"
        );
        assert!(authorize(&principal("root", &["*=admin"]), "prod", Action::TokenAdmin).is_ok());
    }

    #[test]
    fn self_approval_is_refused_by_default_and_allowed_where_configured() {
        let alice = principal("alice", &["prod=approver", "dev=approver"]);
        let started_by_alice = Identity::token("alice");
        let rule = ApprovalRule::new();
        let denied =
            authorize_approval(&alice, "prod", &started_by_alice, &rule).expect_err("self");
        assert_eq!(denied.reason, DenialReason::SelfApproval);
        assert_eq!(
            denied.to_string(),
            "alice (tidegate-token) may not approve in environment prod: it started this rollout, and an approval must come from another identity with role approver or higher (self-approval is off for prod)"
        );
        // Another identity with the role may.
        assert!(authorize_approval(&alice, "prod", &Identity::token("bob"), &rule).is_ok());
        // Same subject from another issuer is another identity.
        let local_alice = Identity {
            issuer: crate::LOCAL_ISSUER.into(),
            ..Identity::token("alice")
        };
        assert!(authorize_approval(&alice, "prod", &local_alice, &rule).is_ok());
        // Configured per environment.
        let dev_only = ApprovalRule::new().allow_self_approval_in("dev");
        assert!(authorize_approval(&alice, "dev", &started_by_alice, &dev_only).is_ok());
        assert!(authorize_approval(&alice, "prod", &started_by_alice, &dev_only).is_err());
        let everywhere = ApprovalRule::new().allow_self_approval_in("*");
        assert!(authorize_approval(&alice, "prod", &started_by_alice, &everywhere).is_ok());
    }

    #[test]
    fn an_approval_without_the_approver_role_is_refused_before_the_self_check() {
        let deployer = principal("carol", &["prod=deployer"]);
        let rule = ApprovalRule::new().allow_self_approval_in("*");
        let denied = authorize_approval(&deployer, "prod", &Identity::token("dave"), &rule)
            .expect_err("deployer");
        assert_eq!(denied.needs, Role::Approver);
        assert_eq!(
            denied.reason,
            DenialReason::Role {
                has: Some(Role::Deployer)
            }
        );
    }
}
