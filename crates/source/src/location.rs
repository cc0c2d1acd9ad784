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

/// The URL with `user:password@` credentials shown as `***@` and every
/// query value as `***` (tokens travel in either), for messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}/{path}"),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if let Some(query) = query {
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => format!("{key}=***"),
                None => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&redacted.join("&"));
    }
    out
}

/// The URL without `user:password@` credentials or a query (tokens travel
/// in either), for what is stored on disk (the cache clone's configuration,
/// its directory name).
pub(crate) fn strip_credentials(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest
                .split_once('/')
                .map_or((rest, None), |(a, p)| (a, Some(p)));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            match path {
                Some(path) => format!("{scheme}://{host}/{path}"),
                None => format!("{scheme}://{host}"),
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
        assert_eq!(
            redact_url("https://host/o/r.git?private_token=glpat-abc&ref=x"),
            "https://host/o/r.git?private_token=***&ref=***"
        );
        assert_eq!(
            strip_credentials("https://user:tok@host:8443/o/r.git?token=t"),
            "https://host:8443/o/r.git"
        );
        assert_eq!(strip_credentials("https://tok@host"), "https://host");
        assert_eq!(
            strip_credentials("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
    }
}
