//! Credentials for fetching, from the operator's environment only.
//!
//! - HTTPS: `TIDEGATE_GIT_TOKEN` (with `TIDEGATE_GIT_USERNAME`, default
//!   `x-access-token`, which GitHub, GitLab and Azure DevOps all accept),
//!   sent only over `https://` and only to the hosts in the
//!   [`CredentialScope`]: the host of the repository the operator pointed
//!   Tidegate at, plus `TIDEGATE_GIT_TOKEN_HOSTS`. A `repoURL` in an
//!   environment file (repository content) cannot widen it.
//! - SSH: the SSH agent (`SSH_AUTH_SOCK`), then the key file named by
//!   `TIDEGATE_GIT_SSH_KEY` (passphrase in `TIDEGATE_GIT_SSH_KEY_PASSPHRASE`).
//!
//! Tokens are never logged.

use crate::location::redact_url;
use git2::{Cred, CredentialType, RemoteCallbacks};
use std::collections::BTreeSet;
use std::path::Path;

/// The variable listing more hosts (comma-separated, `host` or `host:port`)
/// that may receive `TIDEGATE_GIT_TOKEN`.
pub const TOKEN_HOSTS_VAR: &str = "TIDEGATE_GIT_TOKEN_HOSTS";

/// The hosts `TIDEGATE_GIT_TOKEN` may be sent to (over HTTPS only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialScope {
    /// `host:port`, lower case.
    hosts: BTreeSet<String>,
}

impl CredentialScope {
    /// The hosts in `TIDEGATE_GIT_TOKEN_HOSTS` (none when unset).
    pub fn from_env() -> CredentialScope {
        let mut scope = CredentialScope::default();
        if let Ok(list) = std::env::var(TOKEN_HOSTS_VAR) {
            for host in list.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                scope.allow_host(host);
            }
        }
        scope
    }

    /// Adds the host of `url`, a repository the operator named (`--repo`,
    /// the `origin` of the operator's checkout): `https://` as written, and
    /// for SSH (`ssh://`, `user@host:path`) the same host's HTTPS port.
    /// Plain `http://` and local paths add nothing.
    pub fn allow_url(&mut self, url: &str) {
        match https_authority(url) {
            Some(("https", authority)) => {
                self.hosts.insert(authority);
            }
            Some(("ssh", authority)) => {
                let host = authority
                    .rsplit_once(':')
                    .map_or(authority.as_str(), |(h, _)| h);
                self.allow_host(host);
            }
            Some(_) => {}
            None => {
                // scp-like `user@host:path`.
                if let Some((user_host, _)) = url.split_once(':')
                    && let Some((_, host)) = user_host.rsplit_once('@')
                    && !host.is_empty()
                    && !host.contains('/')
                {
                    self.allow_host(host);
                }
            }
        }
    }

    /// Adds `host` or `host:port` (port 443 when none is given).
    pub fn allow_host(&mut self, host: &str) {
        self.hosts.insert(with_port(&host.to_ascii_lowercase()));
    }

    /// The hosts in scope, for messages.
    pub fn hosts(&self) -> Vec<&str> {
        self.hosts.iter().map(String::as_str).collect()
    }

    /// Whether the token may go to `url`; `Err` says why not.
    pub fn permits(&self, url: &str) -> Result<(), String> {
        let shown = redact_url(url);
        match https_authority(url) {
            Some(("https", authority)) if self.hosts.contains(&authority) => Ok(()),
            Some(("https", authority)) => Err(format!(
                "TIDEGATE_GIT_TOKEN is not sent to {authority} ({shown}): it goes only to the hosts the operator named ({}); add the host to {TOKEN_HOSTS_VAR} if it should receive the token",
                if self.hosts.is_empty() {
                    "none".to_string()
                } else {
                    self.hosts().join(", ")
                }
            )),
            Some(("http", _)) => Err(format!(
                "TIDEGATE_GIT_TOKEN is never sent over plain HTTP ({shown}): use an https:// URL"
            )),
            _ => Err(format!(
                "TIDEGATE_GIT_TOKEN is sent only over https:// ({shown})"
            )),
        }
    }
}

/// Scheme and `host:port` (lower case, default port filled in) of a URL
/// with a scheme; `None` for scp-like or unparsable URLs.
fn https_authority(url: &str) -> Option<(&str, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return None;
    }
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => "https",
        "http" => "http",
        "ssh" | "git+ssh" | "ssh+git" => "ssh",
        _ => "other",
    };
    Some((scheme, with_port(&host.to_ascii_lowercase())))
}

/// `host` with `:443` appended when it has no port (IPv6 literals in brackets).
fn with_port(host: &str) -> String {
    let has_port = match host.rfind(']') {
        Some(end) => host[end..].contains(':'),
        None => host.contains(':'),
    };
    if has_port {
        host.to_string()
    } else {
        format!("{host}:443")
    }
}

/// Callbacks that answer libgit2's credential requests, trying each method
/// once so a wrong credential fails instead of looping, and saying which
/// credential was refused or withheld.
pub(crate) fn callbacks<'a>(scope: &'a CredentialScope) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let mut tried_agent = false;
    let mut tried_key = false;
    let mut tried_token = false;
    callbacks.credentials(move |url, username, allowed| {
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = username.unwrap_or("git");
            if !tried_agent && std::env::var_os("SSH_AUTH_SOCK").is_some() {
                tried_agent = true;
                return Cred::ssh_key_from_agent(user);
            }
            if !tried_key && let Some(key) = std::env::var_os("TIDEGATE_GIT_SSH_KEY") {
                tried_key = true;
                let passphrase = std::env::var("TIDEGATE_GIT_SSH_KEY_PASSPHRASE").ok();
                return Cred::ssh_key(user, None, Path::new(&key), passphrase.as_deref());
            }
            if tried_agent || tried_key {
                return Err(git2::Error::from_str(&format!(
                    "{} refused the SSH key(s) offered ({})",
                    redact_url(url),
                    if tried_key {
                        "TIDEGATE_GIT_SSH_KEY"
                    } else {
                        "the SSH agent's keys"
                    }
                )));
            }
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && let Ok(token) = std::env::var("TIDEGATE_GIT_TOKEN")
        {
            scope.permits(url).map_err(|why| git2::Error::from_str(&why))?;
            let user = std::env::var("TIDEGATE_GIT_USERNAME")
                .unwrap_or_else(|_| "x-access-token".to_string());
            if tried_token {
                return Err(git2::Error::from_str(&format!(
                    "{} refused TIDEGATE_GIT_TOKEN (user {user}): check that the token is valid and may read this repository",
                    redact_url(url)
                )));
            }
            tried_token = true;
            return Cred::userpass_plaintext(&user, &token);
        }
        // The system's own credentials (Negotiate/NTLM) are scoped like the token.
        if allowed.contains(CredentialType::DEFAULT) && scope.permits(url).is_ok() {
            return Cred::default();
        }
        Err(git2::Error::from_str(&format!(
            "{} asks for credentials and none is set: set TIDEGATE_GIT_TOKEN for https, or use an SSH agent or TIDEGATE_GIT_SSH_KEY for ssh",
            redact_url(url)
        )))
    });
    callbacks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(hosts: &[&str]) -> CredentialScope {
        let mut scope = CredentialScope::default();
        for h in hosts {
            scope.allow_host(h);
        }
        scope
    }

    #[test]
    fn the_token_goes_only_to_named_hosts_over_https() {
        let mut named = CredentialScope::default();
        named.allow_url("https://GitHub.com/acme/fleet.git");
        assert_eq!(named.hosts(), ["github.com:443"]);
        assert!(named.permits("https://github.com/acme/apps.git").is_ok());
        assert!(
            named
                .permits("https://x@github.com:443/acme/apps.git")
                .is_ok()
        );
        let other = named
            .permits("https://evil.example/x.git")
            .expect_err("refused");
        assert!(
            other.contains("not sent to evil.example:443")
                && other.contains("(github.com:443)")
                && other.contains(TOKEN_HOSTS_VAR),
            "{other}"
        );
        assert!(named.permits("https://github.com:8443/acme/x.git").is_err());
        let plain = named
            .permits("http://github.com/acme/x.git")
            .expect_err("refused");
        assert!(plain.contains("plain HTTP"), "{plain}");
        assert!(named.permits("git@github.com:acme/x.git").is_err());
    }

    #[test]
    fn an_ssh_origin_names_its_host_for_https() {
        let mut s = CredentialScope::default();
        s.allow_url("git@github.com:acme/fleet.git");
        s.allow_url("ssh://git@gitlab.example:2222/acme/fleet.git");
        s.allow_url("http://plain.example/x.git");
        s.allow_url("/srv/git/fleet");
        assert_eq!(s.hosts(), ["github.com:443", "gitlab.example:443"]);
    }

    #[test]
    fn hosts_are_named_with_or_without_a_port() {
        let s = scope(&["git.corp:8443", "gitlab.com", "[::1]"]);
        assert_eq!(s.hosts(), ["[::1]:443", "git.corp:8443", "gitlab.com:443"]);
        assert!(s.permits("https://git.corp:8443/r.git").is_ok());
        assert!(s.permits("https://git.corp/r.git").is_err());
        assert!(s.permits("https://[::1]/r.git").is_ok());
        // Plain HTTP is refused even for a host in scope.
        assert!(s.permits("http://gitlab.com/r.git").is_err());
        // Messages never show a password from the URL.
        let e = s
            .permits("https://u:hunter2@evil/r.git")
            .expect_err("refused");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn an_empty_scope_says_so() {
        let e = CredentialScope::default()
            .permits("https://github.com/a/b")
            .expect_err("refused");
        assert!(e.contains("the hosts the operator named (none)"), "{e}");
    }
}
