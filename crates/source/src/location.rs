//! Where a repository lives: in place on disk, or behind a URL.

use std::path::{Path, PathBuf};

/// A repository named in an environment file or on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    /// A repository on this machine, read in place.
    Local(PathBuf),
    /// A remote (`https://`, `ssh://`, `user@host:path`, `file://`), kept as
    /// a bare cache clone.
    Remote(String),
}

impl RepoLocation {
    /// Interprets `url`: URLs with a scheme and scp-like `user@host:path` are
    /// remote; anything else is a local path, relative to `base`.
    pub fn parse(url: &str, base: &Path) -> RepoLocation {
        let is_scp_like = url
            .split_once(':')
            .is_some_and(|(host, _)| host.contains('@') && !host.contains('/'));
        if url.contains("://") || is_scp_like {
            RepoLocation::Remote(url.to_string())
        } else {
            RepoLocation::Local(base.join(url))
        }
    }

    /// The location with any password or token removed, for messages and logs.
    pub fn redacted(&self) -> String {
        match self {
            RepoLocation::Local(p) => p.display().to_string(),
            RepoLocation::Remote(url) => redact_url(url),
        }
    }
}

/// Removes `user:password@` credentials from a URL.
pub(crate) fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}/{path}"),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_urls_and_paths() {
        let base = Path::new("/repo");
        assert_eq!(
            RepoLocation::parse(".", base),
            RepoLocation::Local("/repo/.".into())
        );
        assert!(matches!(
            RepoLocation::parse("https://h/x.git", base),
            RepoLocation::Remote(_)
        ));
        assert!(matches!(
            RepoLocation::parse("git@github.com:o/r.git", base),
            RepoLocation::Remote(_)
        ));
        assert!(matches!(
            RepoLocation::parse("file:///tmp/x", base),
            RepoLocation::Remote(_)
        ));
        assert!(matches!(
            RepoLocation::parse("../other", base),
            RepoLocation::Local(_)
        ));
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact_url("https://user:tok@host/o/r.git"),
            "https://***@host/o/r.git"
        );
        assert_eq!(redact_url("https://host/o/r.git"), "https://host/o/r.git");
    }
}
