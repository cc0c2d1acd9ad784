//! A request the API server refused for want of an RBAC permission (HTTP
//! 403), said as the permission that is missing and the rule that grants it.
//!
//! The verb and the identity are only in the Status message; its wording is
//! the API server's RBAC authorizer's, unchanged since Kubernetes 1.6:
//! `<resource> "<name>" is forbidden: User "<user>" cannot <verb> resource
//! "<resource>" in API group "<group>" in the namespace "<namespace>"`
//! (`... at the cluster scope` for cluster-wide requests). When the message
//! does not read that way (a webhook authorizer, an admission plugin),
//! whatever the Status's `details` say is used, and the message is kept.

use crate::ClusterError;

/// A missing RBAC permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// Who was refused (`system:serviceaccount:tidegate-system:tidegate-controller`), when said.
    pub user: Option<String>,
    /// The verb refused (`get`, `list`, `watch`, `create`, `patch`, `delete`...), when said.
    pub verb: Option<String>,
    /// The resource (`deployments`, `deployments/scale`).
    pub resource: String,
    /// Its API group (empty: the core group).
    pub group: String,
    /// The namespace (`None`: cluster scope, or not said).
    pub namespace: Option<String>,
}

impl Forbidden {
    /// The missing permission of a 403 answer (`None` for any other error).
    pub fn of(error: &kube::Error) -> Option<Forbidden> {
        let kube::Error::Api(status) = error else {
            return None;
        };
        if status.code != 403 {
            return None;
        }
        if let Some(parsed) = parse(&status.message) {
            return Some(parsed);
        }
        let details = status.details.as_ref();
        Some(Forbidden {
            user: None,
            verb: None,
            resource: details.map(|d| clean(&d.kind)).unwrap_or_default(),
            group: details.map(|d| clean(&d.group)).unwrap_or_default(),
            namespace: None,
        })
    }

    /// The missing permission behind a cluster error, if that is what it is.
    pub fn of_cluster(error: &ClusterError) -> Option<Forbidden> {
        match error {
            ClusterError::Api { error, .. } | ClusterError::Client { error, .. } => {
                Forbidden::of(error)
            }
            _ => None,
        }
    }

    /// Who was refused, for a sentence: `ServiceAccount tidegate-system/tidegate-controller`,
    /// `user alice`, or `the identity` when not said.
    pub fn who(&self) -> String {
        match &self.user {
            Some(user) => match user.strip_prefix("system:serviceaccount:") {
                Some(sa) => format!("ServiceAccount {}", sa.replacen(':', "/", 1)),
                None => format!("user {user}"),
            },
            None => "the identity".into(),
        }
    }

    /// `deployments.apps`, `configmaps`: the resource with its group.
    pub fn resource_name(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// The RBAC rule that grants the permission, on one line, and where it
    /// goes: `add {apiGroups: ["apps"], resources: ["deployments"], verbs:
    /// ["patch"]} to a Role in namespace shop bound to it (or to the
    /// ClusterRole of deploy/managed/rbac.yaml)`.
    pub fn fix(&self) -> String {
        let verb = self.verb.as_deref().unwrap_or("<verb>");
        let rule = format!(
            "{{apiGroups: [\"{}\"], resources: [\"{}\"], verbs: [\"{verb}\"]}}",
            self.group, self.resource
        );
        match &self.namespace {
            Some(ns) => format!(
                "add the rule {rule} to a Role in namespace {ns} bound to {} (or to its ClusterRole, deploy/managed/rbac.yaml for the shipped one)",
                self.who()
            ),
            None => format!(
                "add the rule {rule} to a ClusterRole bound to {} (deploy/managed/rbac.yaml for the shipped one)",
                self.who()
            ),
        }
    }
}

impl std::fmt::Display for Forbidden {
    /// `ServiceAccount tidegate-system/tidegate-controller lacks `delete` on
    /// ingresses.networking.k8s.io in namespace shop`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} lacks ", self.who())?;
        match &self.verb {
            Some(verb) => write!(f, "`{verb}`")?,
            None => f.write_str("a permission")?,
        }
        write!(f, " on {}", self.resource_name())?;
        match (&self.namespace, &self.user) {
            (Some(ns), _) => write!(f, " in namespace {ns}"),
            (None, Some(_)) => f.write_str(" at the cluster scope"),
            // Not the RBAC authorizer's message: the scope is not known.
            (None, None) => Ok(()),
        }
    }
}

/// A name from the API server's answer, safe to print (the API server is
/// not trusted: no control characters reach a terminal or a log).
fn clean(text: &str) -> String {
    tidegate_core::printable::printable(text).into_owned()
}

/// The RBAC authorizer's message, read (see the module's documentation).
fn parse(message: &str) -> Option<Forbidden> {
    let rest = &message[message.find("User \"")? + 6..];
    let (user, rest) = rest.split_once('"')?;
    let rest = rest.trim_start().strip_prefix("cannot ")?;
    let (verb, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("resource \"")?;
    let (resource, rest) = rest.split_once('"')?;
    let rest = rest.trim_start().strip_prefix("in API group \"")?;
    let (group, rest) = rest.split_once('"')?;
    let namespace = rest
        .trim_start()
        .strip_prefix("in the namespace \"")
        .and_then(|r| r.split_once('"'))
        .map(|(ns, _)| ns.to_string());
    Some(Forbidden {
        user: Some(clean(user)),
        verb: Some(clean(verb)),
        resource: clean(resource),
        group: clean(group),
        namespace: namespace.as_deref().map(clean),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code: 403,
            reason: "Forbidden".into(),
            message: message.into(),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn the_rbac_authorizers_message_names_verb_resource_and_namespace() {
        let f = Forbidden::of(&forbidden(
            "ingresses.networking.k8s.io \"web\" is forbidden: User \"system:serviceaccount:tidegate-system:tidegate-controller\" cannot delete resource \"ingresses\" in API group \"networking.k8s.io\" in the namespace \"shop\"",
        ))
        .expect("a 403");
        assert_eq!(
            f.to_string(),
            "ServiceAccount tidegate-system/tidegate-controller lacks `delete` on ingresses.networking.k8s.io in namespace shop"
        );
        assert!(
            f.fix().starts_with(
                "add the rule {apiGroups: [\"networking.k8s.io\"], resources: [\"ingresses\"], verbs: [\"delete\"]} to a Role in namespace shop bound to ServiceAccount tidegate-system/tidegate-controller"
            ),
            "{}",
            f.fix()
        );
    }

    #[test]
    fn control_characters_from_the_api_server_are_not_printed() {
        let f = Forbidden::of(&forbidden(
            "x is forbidden: User \"evil\u{1b}[2J\" cannot get resource \"pods\" in API group \"\" in the namespace \"a\u{7}b\"",
        ))
        .expect("a 403");
        let text = format!("{f} {}", f.fix());
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
    }

    #[test]
    fn cluster_scope_and_other_wordings_are_said_too() {
        let f = Forbidden::of(&forbidden(
            "namespaces is forbidden: User \"alice\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope",
        ))
        .expect("a 403");
        assert_eq!(
            f.to_string(),
            "user alice lacks `list` on namespaces at the cluster scope"
        );
        assert!(f.fix().contains("to a ClusterRole bound to user alice"));
        // A webhook authorizer's own wording: the Status details only.
        let mut status = kube::core::Status {
            code: 403,
            message: "denied by policy".into(),
            ..kube::core::Status::default()
        };
        status.details =
            Some(serde_json::from_value(serde_json::json!({"kind": "secrets"})).expect("details"));
        let f = Forbidden::of(&kube::Error::Api(Box::new(status))).expect("a 403");
        assert_eq!(f.to_string(), "the identity lacks a permission on secrets");
        let not_found = kube::Error::Api(Box::new(kube::core::Status {
            code: 404,
            ..kube::core::Status::default()
        }));
        assert_eq!(Forbidden::of(&not_found), None);
    }
}
