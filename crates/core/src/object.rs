//! How Kubernetes objects are identified, ordered and traced back to Git.

use serde::Serialize;
use std::fmt;

/// Identity of an object in one cluster: group, kind, namespace and name.
/// API boundary: diff, sync and inventories key objects by this.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    /// API group; empty for the core group.
    pub group: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjectKey {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectKey {
    /// `apps/Deployment web/api`, `Namespace web`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_object(
            f,
            &self.group,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

/// Writes an object reference the way people read it everywhere in Tidegate:
/// `apps/Deployment web/api`, `Namespace web` (the core group and a
/// cluster-scoped object's namespace are left out).
pub fn write_object(
    f: &mut fmt::Formatter<'_>,
    group: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> fmt::Result {
    if !group.is_empty() {
        write!(f, "{group}/")?;
    }
    write!(f, "{kind} ")?;
    if let Some(ns) = namespace {
        write!(f, "{ns}/")?;
    }
    f.write_str(name)
}

/// Where a rendered object came from in Git.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// Full commit SHA the file was read at.
    pub commit: String,
    /// File path relative to the repository root.
    pub path: String,
    /// 0-based index of the YAML document in the file.
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: u64,
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = crate::printable::printable(&self.path);
        write!(f, "{path}:{}", self.line)
    }
}

/// An object ready to apply to one cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedObject {
    /// Its identity.
    pub key: ObjectKey,
    /// The full manifest, overlays and tracking metadata applied. Shared:
    /// a plan, a sync and the rendering they came from hold one copy
    /// (changed through [`RenderedObject::manifest_mut`], which copies it
    /// only when it is shared).
    #[serde(serialize_with = "shared")]
    pub manifest: std::sync::Arc<serde_json::Value>,
    /// Where it came from.
    pub provenance: Provenance,
}

/// Serializes a shared manifest as the manifest itself.
fn shared<S: serde::Serializer>(
    manifest: &std::sync::Arc<serde_json::Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&**manifest, serializer)
}

impl RenderedObject {
    /// The manifest to change (copied first if another holder shares it).
    pub fn manifest_mut(&mut self) -> &mut serde_json::Value {
        std::sync::Arc::make_mut(&mut self.manifest)
    }
}

/// Splits `apiVersion` into group and version (`apps/v1` → (`apps`, `v1`), `v1` → (``, `v1`)).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// Built-in kinds that are not namespaced. Render uses this before discovery
/// is available; the sync engine confirms it against the cluster.
pub fn is_cluster_scoped(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "",
            "Namespace" | "Node" | "PersistentVolume" | "ComponentStatus"
        ) | (
            "rbac.authorization.k8s.io",
            "ClusterRole" | "ClusterRoleBinding"
        ) | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("apiregistration.k8s.io", "APIService")
            | (
                "admissionregistration.k8s.io",
                "MutatingWebhookConfiguration"
                    | "ValidatingWebhookConfiguration"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
                    | "MutatingAdmissionPolicy"
                    | "MutatingAdmissionPolicyBinding"
            )
            | (
                "storage.k8s.io",
                "StorageClass" | "CSIDriver" | "CSINode" | "VolumeAttachment"
            )
            | (
                "networking.k8s.io",
                "IngressClass" | "IPAddress" | "ServiceCIDR"
            )
            | ("scheduling.k8s.io", "PriorityClass")
            | ("node.k8s.io", "RuntimeClass")
            | (
                "certificates.k8s.io",
                "CertificateSigningRequest" | "ClusterTrustBundle"
            )
            | (
                "flowcontrol.apiserver.k8s.io",
                "FlowSchema" | "PriorityLevelConfiguration"
            )
    )
}

/// Apply phase of a kind, lowest first: Namespaces, CRDs, ServiceAccounts and
/// RBAC, ConfigMaps and Secrets, Services, workloads, Ingresses, then the rest.
/// Deletion (prune) goes in the reverse order.
pub fn apply_phase(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        ("scheduling.k8s.io", "PriorityClass") | ("storage.k8s.io", "StorageClass") => 2,
        ("", "ServiceAccount") => 3,
        ("rbac.authorization.k8s.io", "ClusterRole" | "Role") => 4,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding" | "RoleBinding") => 5,
        ("", "ConfigMap" | "Secret" | "LimitRange" | "ResourceQuota") => 6,
        ("", "PersistentVolume" | "PersistentVolumeClaim") => 7,
        ("", "Service") => 8,
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("", "Pod" | "ReplicationController")
        | ("batch", "Job" | "CronJob") => 9,
        ("autoscaling", "HorizontalPodAutoscaler") | ("policy", "PodDisruptionBudget") => 10,
        ("networking.k8s.io", "IngressClass") => 11,
        ("networking.k8s.io", "Ingress" | "NetworkPolicy") => 12,
        _ => 13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_display_readably() {
        assert_eq!(
            ObjectKey::new("apps", "Deployment", Some("web"), "api").to_string(),
            "apps/Deployment web/api"
        );
        assert_eq!(
            ObjectKey::new("", "Namespace", None, "web").to_string(),
            "Namespace web"
        );
    }

    #[test]
    fn api_versions_split() {
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_api_version("v1"), ("", "v1"));
    }

    #[test]
    fn phases_follow_the_documented_order() {
        let order = [
            ("", "Namespace"),
            ("apiextensions.k8s.io", "CustomResourceDefinition"),
            ("", "ServiceAccount"),
            ("rbac.authorization.k8s.io", "Role"),
            ("", "ConfigMap"),
            ("", "Service"),
            ("apps", "Deployment"),
            ("networking.k8s.io", "Ingress"),
            ("example.com", "Widget"),
        ];
        assert!(
            order
                .windows(2)
                .all(|w| apply_phase(w[0].0, w[0].1) < apply_phase(w[1].0, w[1].1))
        );
        assert!(is_cluster_scoped("", "Namespace"));
        assert!(!is_cluster_scoped("apps", "Deployment"));
    }
}
