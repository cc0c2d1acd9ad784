//! Kubeconfig files (YAML written by hand: every value is a path, a URL or a
//! name made of safe characters, quoted anyway).

use std::fmt::Write as _;
use std::path::Path;

use crate::{Error, Result};

/// One context of a kubeconfig: a cluster and the client certificate to use.
pub(crate) struct Entry<'a> {
    pub context: &'a str,
    pub server: &'a str,
    pub ca: &'a Path,
    /// Client certificate and key; `None` for a user without credentials
    /// (the API server's kubeconfig of its token webhook).
    pub client: Option<(&'a Path, &'a Path)>,
    pub user: &'a str,
}

fn quote(value: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars.
    serde_json::Value::String(value.to_string()).to_string()
}

fn path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// Renders a kubeconfig with one context per entry; the first is current.
pub(crate) fn render(entries: &[Entry<'_>]) -> String {
    let mut out = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
    for e in entries {
        let _ = write!(
            out,
            "- name: {}\n  cluster:\n    server: {}\n    certificate-authority: {}\n",
            quote(e.context),
            quote(e.server),
            path(e.ca)
        );
    }
    out.push_str("users:\n");
    for e in entries {
        let user = quote(&format!("{}-{}", e.context, e.user));
        let _ = match e.client {
            Some((cert, key)) => write!(
                out,
                "- name: {user}\n  user:\n    client-certificate: {}\n    client-key: {}\n",
                path(cert),
                path(key)
            ),
            None => writeln!(out, "- name: {user}\n  user: {{}}"),
        };
    }
    out.push_str("contexts:\n");
    for e in entries {
        let _ = write!(
            out,
            "- name: {}\n  context:\n    cluster: {}\n    user: {}\n",
            quote(e.context),
            quote(e.context),
            quote(&format!("{}-{}", e.context, e.user))
        );
    }
    if let Some(first) = entries.first() {
        let _ = writeln!(out, "current-context: {}", quote(first.context));
    }
    out
}

/// Writes [`render`]'s output to `file` (mode 0600).
pub(crate) fn write(file: &Path, entries: &[Entry<'_>]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(file, render(entries))
        .map_err(Error::io(format!("writing {}", file.display())))?;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
        .map_err(Error::io(format!("chmod {}", file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_contexts() {
        let text = render(&[Entry {
            context: "eks-us-east-1",
            server: "https://127.0.0.1:26443",
            ca: Path::new("/s/ca.crt"),
            client: Some((Path::new("/s/admin.crt"), Path::new("/s/admin.key"))),
            user: "admin",
        }]);
        assert!(text.contains("- name: \"eks-us-east-1\"\n  context:\n    cluster: \"eks-us-east-1\"\n    user: \"eks-us-east-1-admin\"\n"));
        assert!(text.contains("current-context: \"eks-us-east-1\""));
        assert!(text.contains("    client-key: \"/s/admin.key\"\n"));
    }

    #[test]
    fn renders_users_without_credentials() {
        let text = render(&[Entry {
            context: "eks-us-east-1",
            server: "https://127.0.0.1:26462/authenticate",
            ca: Path::new("/s/ca.crt"),
            client: None,
            user: "kube-apiserver",
        }]);
        assert!(text.contains("- name: \"eks-us-east-1-kube-apiserver\"\n  user: {}\n"));
        assert!(text.contains("    server: \"https://127.0.0.1:26462/authenticate\"\n"));
    }
}
