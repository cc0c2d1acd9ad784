//! Credentials for fetching, from the environment only.
//!
//! - HTTPS: `TIDEGATE_GIT_TOKEN` (with `TIDEGATE_GIT_USERNAME`, default
//!   `x-access-token`, which GitHub, GitLab and Azure DevOps all accept).
//! - SSH: the SSH agent (`SSH_AUTH_SOCK`), then the key file named by
//!   `TIDEGATE_GIT_SSH_KEY` (passphrase in `TIDEGATE_GIT_SSH_KEY_PASSPHRASE`).
//!
//! Tokens are never logged.

use git2::{Cred, CredentialType, RemoteCallbacks};
use std::path::Path;

/// Callbacks that answer libgit2's credential requests, trying each method
/// once so a wrong credential fails instead of looping.
pub(crate) fn callbacks<'a>() -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let mut tried_agent = false;
    let mut tried_key = false;
    let mut tried_token = false;
    callbacks.credentials(move |_url, username, allowed| {
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
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && !tried_token
            && let Ok(token) = std::env::var("TIDEGATE_GIT_TOKEN")
        {
            tried_token = true;
            let user = std::env::var("TIDEGATE_GIT_USERNAME")
                .unwrap_or_else(|_| "x-access-token".to_string());
            return Cred::userpass_plaintext(&user, &token);
        }
        if allowed.contains(CredentialType::DEFAULT) {
            return Cred::default();
        }
        Err(git2::Error::from_str(
            "no usable credentials (set TIDEGATE_GIT_TOKEN for https, or use an SSH agent or TIDEGATE_GIT_SSH_KEY for ssh)",
        ))
    });
    callbacks
}
