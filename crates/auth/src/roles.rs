//! Roles per environment.
//!
//! `viewer` < `deployer` < `approver` < `admin`: each role may do what the
//! ones below it may. A grant names one environment or `*` (every
//! environment); the role an identity has in an environment is the higher
//! of the two.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The environment name that grants a role in every environment.
pub const ALL_ENVIRONMENTS: &str = "*";

/// What an identity may do in an environment (ordered: a higher role may do
/// everything a lower one may).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read: status, history, plan, diff.
    Viewer,
    /// Change: sync, rollback, switch, unquarantine.
    Deployer,
    /// Approve waves marked `approval: required`.
    Approver,
    /// Everything, including managing tokens (with `*`).
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Deployer, Role::Approver, Role::Admin];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| RoleError::UnknownRole(s.to_string()))
    }
}

/// A grant that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// Not one of the four roles.
    #[error("unknown role `{0}`: use viewer, deployer, approver or admin")]
    UnknownRole(String),
    /// Not `ENV=ROLE`.
    #[error("`{0}` is not ENV=ROLE (e.g. prod=deployer, or *=viewer for every environment)")]
    NotAGrant(String),
    /// Not an environment name.
    #[error(
        "`{0}` is not an environment name (lower-case letters, digits and '-', at most 63) or `*`"
    )]
    BadEnvironment(String),
}

/// The roles of one identity, per environment (`*` = every environment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Roles(BTreeMap<String, Role>);

impl Roles {
    /// No role anywhere.
    pub fn new() -> Self {
        Roles::default()
    }

    /// Grants `role` in `env` (`*` for every environment); a higher role
    /// already granted there is kept.
    pub fn grant(&mut self, env: &str, role: Role) -> Result<(), RoleError> {
        if env != ALL_ENVIRONMENTS && !tidegate_core::names::is_dns_label(env) {
            return Err(RoleError::BadEnvironment(env.to_string()));
        }
        let slot = self.0.entry(env.to_string()).or_insert(role);
        *slot = (*slot).max(role);
        Ok(())
    }

    /// Parses `ENV=ROLE` grants (the CLI's `--role`).
    pub fn parse<'a>(grants: impl IntoIterator<Item = &'a str>) -> Result<Self, RoleError> {
        let mut roles = Roles::new();
        for grant in grants {
            let (env, role) = grant
                .split_once('=')
                .ok_or_else(|| RoleError::NotAGrant(grant.to_string()))?;
            roles.grant(env.trim(), role.trim().parse()?)?;
        }
        Ok(roles)
    }

    /// The role in `env`: the higher of its own grant and the `*` grant.
    pub fn role_in(&self, env: &str) -> Option<Role> {
        let own = self.0.get(env).copied();
        let all = self.0.get(ALL_ENVIRONMENTS).copied();
        own.max(all)
    }

    /// The role granted for every environment (`*`), if any.
    pub fn everywhere(&self) -> Option<Role> {
        self.0.get(ALL_ENVIRONMENTS).copied()
    }

    /// True when no role is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The grants, by environment name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Role)> {
        self.0.iter().map(|(env, role)| (env.as_str(), *role))
    }
}

impl fmt::Display for Roles {
    /// `prod=deployer,staging=admin` (or `none`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, (env, role)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{env}={role}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_viewer_deployer_approver_admin() {
        assert!(Role::Viewer < Role::Deployer);
        assert!(Role::Deployer < Role::Approver);
        assert!(Role::Approver < Role::Admin);
        let mut sorted = Role::ALL;
        sorted.sort();
        assert_eq!(sorted, Role::ALL);
    }

    #[test]
    fn the_wildcard_and_the_environment_grant_combine_to_the_higher() {
        let roles = Roles::parse(["*=viewer", "prod=approver", "dev=viewer"]).expect("roles");
        assert_eq!(roles.role_in("prod"), Some(Role::Approver));
        assert_eq!(roles.role_in("staging"), Some(Role::Viewer));
        let admin = Roles::parse(["*=admin", "dev=viewer"]).expect("roles");
        assert_eq!(admin.role_in("dev"), Some(Role::Admin));
        assert_eq!(
            Roles::parse(["prod=deployer"])
                .expect("roles")
                .role_in("dev"),
            None
        );
        assert_eq!(roles.to_string(), "*=viewer,dev=viewer,prod=approver");
    }

    #[test]
    fn a_repeated_grant_keeps_the_higher_role() {
        let roles = Roles::parse(["prod=admin", "prod=viewer"]).expect("roles");
        assert_eq!(roles.role_in("prod"), Some(Role::Admin));
    }

    #[test]
    fn bad_grants_say_what_is_expected() {
        let cases = [
            ("prod", "ENV=ROLE"),
            ("prod=root", "viewer, deployer, approver or admin"),
            ("Prod/x=viewer", "not an environment name"),
            ("=viewer", "not an environment name"),
        ];
        for (grant, expected) in cases {
            let err = Roles::parse([grant]).expect_err(grant).to_string();
            assert!(err.contains(expected), "{grant}: {err}");
        }
    }

    #[test]
    fn roles_serialize_as_a_map() {
        let roles = Roles::parse(["prod=deployer", "*=viewer"]).expect("roles");
        let json = serde_json::to_string(&roles).expect("json");
        assert_eq!(json, r#"{"*":"viewer","prod":"deployer"}"#);
        assert_eq!(serde_json::from_str::<Roles>(&json).expect("read"), roles);
    }
}
