//! Kubernetes' rules for names, label keys and values, and image references.
//!
//! Names from repository content end up in API URLs (kube-rs puts
//! `metadata.name` into the path unescaped, so `ok?dryRun=All&x=` would
//! change the request), in inventory ConfigMap names and in labels. They are
//! checked here, with the same rules as the API server, before anything is
//! sent.

/// RFC 1123 label: lower-case alphanumerics and '-', 1–63 characters,
/// starting and ending with an alphanumeric (Namespace and Service names).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters (the
/// names of most objects: ConfigMaps, Deployments...).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A name that is safe in an API URL path segment: not `.` or `..`, at most
/// 253 characters of `A-Z a-z 0-9 - . _ : @ ~ +` (RBAC names such as
/// `system:aggregate-to-admin` included; `/ % ? # &` and spaces never).
pub fn is_path_segment_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:@~+".contains(&b))
}

/// Kinds whose names the API server checks as DNS labels.
const DNS_LABEL_KINDS: &[&str] = &["Namespace", "Service"];

/// Core and apps kinds whose names the API server checks as DNS subdomains.
const DNS_SUBDOMAIN_KINDS: &[&str] = &[
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Pod",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "Ingress",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "StorageClass",
    "PriorityClass",
];

/// Why `name` is not valid for `kind`, if it is not: the rule it breaks.
pub fn object_name_problem(kind: &str, name: &str) -> Option<&'static str> {
    if DNS_LABEL_KINDS.contains(&kind) {
        (!is_dns_label(name)).then_some(
            "a DNS label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit",
        )
    } else if DNS_SUBDOMAIN_KINDS.contains(&kind) {
        (!is_dns_subdomain(name)).then_some(
            "a DNS subdomain: at most 253 lower-case letters, digits, '-' and '.', each part starting and ending with a letter or digit",
        )
    } else {
        (!is_path_segment_name(name)).then_some(
            "a name Kubernetes can put in a URL: letters, digits and - . _ : @ ~ + only (no '/', '%', '?', '#', '&' or spaces), not '.' or '..'",
        )
    }
}

/// A label or annotation key: an optional DNS-subdomain prefix and `/`,
/// then a name of at most 63 alphanumerics, `-`, `_` and `.`, starting and
/// ending with an alphanumeric.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(|p| !p.is_empty() && is_dns_subdomain(p))
        && is_label_value(name)
        && !name.is_empty()
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_` and `.`,
/// starting and ending with an alphanumeric.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric())
}

/// An image repository (`registry:5000/team/app`): lower-case path
/// components of alphanumerics and `. _ -`, separated by `/`, with an
/// optional registry host (which may have upper case and a `:port`).
pub fn is_image_name(name: &str) -> bool {
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (host, port) = match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return false;
        }
    }
    !parts.is_empty()
        && name.len() <= 255
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && p.as_bytes()[0].is_ascii_alphanumeric()
        })
}

/// An image tag: at most 128 of `A-Z a-z 0-9 _ . -`, not starting with `.` or `-`.
pub fn is_image_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !tag.starts_with(['.', '-'])
}

/// An image digest: `algorithm:hex`, e.g. `sha256:` and 64 hex digits.
pub fn is_image_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-_".contains(&b))
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && (algorithm != "sha256" || hex.len() == 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_change_urls_are_refused() {
        assert_eq!(object_name_problem("ConfigMap", "web-config"), None);
        assert_eq!(
            object_name_problem("ClusterRole", "system:aggregate-to-admin"),
            None
        );
        for bad in ["ok?dryRun=All&x=", "a/b", "a%2Fb", "..", "a b", "a#b", ""] {
            assert!(object_name_problem("Widget", bad).is_some(), "{bad}");
        }
        assert!(object_name_problem("ConfigMap", "Web").is_some());
        assert!(object_name_problem("Namespace", "a.b").is_some());
        assert!(is_dns_subdomain("tidegate.prod-eu.web"));
        assert!(!is_dns_subdomain("tidegate.Prod_EU.web"));
    }

    #[test]
    fn labels_and_images() {
        assert!(is_label_key("tidegate.dev/cluster"));
        assert!(is_label_key("tier"));
        assert!(!is_label_key("/tier"));
        assert!(!is_label_key("bad key"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
        assert!(is_image_name("localhost:5000/a/b"));
        assert!(is_image_name("ghcr.io/Org-Host/x".to_lowercase().as_str()));
        assert!(!is_image_name("ghcr.io/x y"));
        assert!(!is_image_name("x:1"));
        assert!(is_image_tag("1.27.0-alpine"));
        assert!(!is_image_tag("1.0\n"));
        assert!(is_image_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_image_digest("sha256:abc"));
    }
}
