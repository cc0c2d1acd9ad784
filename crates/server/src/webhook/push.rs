//! What a push names (repository URLs, refs) per provider, and which
//! followed sources it concerns.

use serde_json::Value;
use std::collections::BTreeMap;

/// A push, as the provider's payload describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Push {
    /// Every URL the payload gives for the repository (clone, SSH, web).
    pub urls: Vec<String>,
    /// The refs pushed, in full (`refs/heads/main`, `refs/tags/v1`);
    /// deleted refs are left out.
    pub refs: Vec<String>,
    /// The repository's default branch, when the payload says.
    pub default_branch: Option<String>,
}

/// Which webhook a payload came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub (`X-Hub-Signature-256`).
    GitHub,
    /// GitLab (`X-Gitlab-Token`).
    GitLab,
    /// Bitbucket Cloud (`X-Hub-Signature`).
    Bitbucket,
    /// The generic endpoint (`Authorization: Bearer`).
    Generic,
}

impl Provider {
    /// The path segment and log name: `github`, `gitlab`, `bitbucket`, `generic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Bitbucket => "bitbucket",
            Provider::Generic => "generic",
        }
    }
}

impl Push {
    /// Reads a push payload of `provider`.
    pub fn parse(provider: Provider, payload: &Value) -> Push {
        let strings = |v: &Value, paths: &[&str]| -> Vec<String> {
            paths
                .iter()
                .filter_map(|p| v.pointer(p).and_then(Value::as_str))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        match provider {
            Provider::GitHub => Push {
                urls: strings(
                    payload,
                    &[
                        "/repository/clone_url",
                        "/repository/ssh_url",
                        "/repository/git_url",
                        "/repository/html_url",
                    ],
                ),
                refs: if payload["deleted"].as_bool() == Some(true) {
                    Vec::new()
                } else {
                    strings(payload, &["/ref"])
                },
                default_branch: strings(payload, &["/repository/default_branch"])
                    .into_iter()
                    .next(),
            },
            Provider::GitLab => Push {
                urls: strings(
                    payload,
                    &[
                        "/project/git_http_url",
                        "/project/git_ssh_url",
                        "/project/web_url",
                        "/repository/git_http_url",
                        "/repository/git_ssh_url",
                        "/repository/homepage",
                    ],
                ),
                // A deleted branch pushes the all-zero SHA.
                refs: if payload["after"]
                    .as_str()
                    .is_some_and(|a| !a.is_empty() && a.bytes().all(|b| b == b'0'))
                {
                    Vec::new()
                } else {
                    strings(payload, &["/ref"])
                },
                default_branch: strings(payload, &["/project/default_branch"])
                    .into_iter()
                    .next(),
            },
            Provider::Bitbucket => {
                let mut urls = strings(payload, &["/repository/links/html/href"]);
                if let Some(name) = payload
                    .pointer("/repository/full_name")
                    .and_then(Value::as_str)
                {
                    urls.push(format!("https://bitbucket.org/{name}"));
                }
                let refs = payload
                    .pointer("/push/changes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        let new = c.get("new")?;
                        let name = new.get("name")?.as_str()?;
                        match new.get("type")?.as_str()? {
                            "branch" => Some(format!("refs/heads/{name}")),
                            "tag" => Some(format!("refs/tags/{name}")),
                            _ => None,
                        }
                    })
                    .collect();
                Push {
                    urls,
                    refs,
                    default_branch: None,
                }
            }
            Provider::Generic => Push {
                urls: strings(payload, &["/repository"]),
                refs: strings(payload, &["/ref"]),
                default_branch: None,
            },
        }
    }
}

/// The repositories and refs the controller follows.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The configuration repository (`--repo`, environment files) and the
    /// ref followed (`--ref`, default `HEAD`), when known.
    pub config: Option<(String, String)>,
    /// Each environment's `spec.source`: repository URL (`.` = the
    /// configuration repository) and ref.
    pub environments: BTreeMap<String, (String, String)>,
}

/// What a push should make the controller fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// Every environment (the configuration repository changed).
    All,
    /// These environments.
    Some(Vec<String>),
}

impl Sources {
    /// What `push` concerns: everything when it is the configuration
    /// repository's followed ref, else the environments whose source it is.
    pub fn wanted(&self, push: &Push) -> Wanted {
        if let Some((url, git_ref)) = &self.config
            && concerns(push, url, git_ref)
        {
            return Wanted::All;
        }
        let mut names = Vec::new();
        for (env, (url, git_ref)) in &self.environments {
            let (url, git_ref) = if url == "." {
                let Some((config, config_ref)) = &self.config else {
                    continue;
                };
                let r = if git_ref == "HEAD" {
                    config_ref
                } else {
                    git_ref
                };
                (config, r)
            } else {
                (url, git_ref)
            };
            if concerns(push, url, git_ref) {
                names.push(env.clone());
            }
        }
        Wanted::Some(names)
    }
}

/// True when `push` is to repository `url` and updates `followed`.
fn concerns(push: &Push, url: &str, followed: &str) -> bool {
    let url = normalize(url);
    push.urls.iter().any(|u| normalize(u) == url)
        && push
            .refs
            .iter()
            .any(|r| ref_matches(followed, r, push.default_branch.as_deref()))
}

/// Whether a pushed ref (`refs/heads/x`) is the ref followed: a branch or
/// tag name, a full ref, or `HEAD` (the default branch; any branch when the
/// payload does not say which is the default). A followed commit SHA never
/// moves, so no push concerns it.
fn ref_matches(followed: &str, pushed: &str, default_branch: Option<&str>) -> bool {
    if followed == "HEAD" {
        return match default_branch {
            Some(d) => pushed == format!("refs/heads/{d}"),
            None => pushed.starts_with("refs/heads/"),
        };
    }
    if followed.starts_with("refs/") {
        return pushed == followed;
    }
    pushed == format!("refs/heads/{followed}") || pushed == format!("refs/tags/{followed}")
}

/// A repository URL reduced to `host/path` (or a local path), so the clone,
/// SSH and web URLs of one repository compare equal: no scheme, user or
/// port, SCP-like `git@host:path` turned into `host/path`, no trailing
/// `.git` or `/`, host and path lower-cased (GitHub, GitLab and Bitbucket
/// compare them case-insensitively).
pub fn normalize(url: &str) -> String {
    let url = url.trim();
    let (rest, had_scheme) = match url.split_once("://") {
        Some((_, rest)) => (rest, true),
        None => (url, false),
    };
    let rest = if had_scheme || !rest.starts_with('/') {
        // user@host...
        match rest.split_once('@') {
            Some((user, host)) if !user.contains('/') => host,
            _ => rest,
        }
    } else {
        rest
    };
    let rest = if !had_scheme && !rest.starts_with('/') {
        // SCP-like host:path
        rest.replacen(':', "/", 1)
    } else if had_scheme {
        // host:port/path
        match rest.split_once('/') {
            Some((host, path)) => {
                let host = host.split(':').next().unwrap_or(host);
                format!("{host}/{path}")
            }
            None => rest.to_string(),
        }
    } else {
        rest.to_string()
    };
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix(".git").unwrap_or(rest);
    rest.trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_repository_has_one_normal_form() {
        for url in [
            "https://github.com/Acme/Fleet.git",
            "https://github.com/acme/fleet",
            "https://user:pw@github.com/acme/fleet/",
            "ssh://git@github.com:22/acme/fleet.git",
            "git@github.com:acme/fleet.git",
            "git://github.com/acme/fleet.git",
        ] {
            assert_eq!(normalize(url), "github.com/acme/fleet", "{url}");
        }
        assert_eq!(normalize("/srv/git/fleet/"), "/srv/git/fleet");
        assert_eq!(normalize("file:///srv/git/fleet.git"), "/srv/git/fleet");
        assert_ne!(
            normalize("https://github.com/acme/fleet"),
            normalize("https://github.com/acme/fleet-2")
        );
        assert_ne!(
            normalize("https://github.com/acme/fleet"),
            normalize("https://gitlab.com/acme/fleet")
        );
    }

    #[test]
    fn refs_match_branches_tags_and_the_default_branch() {
        assert!(ref_matches("main", "refs/heads/main", None));
        assert!(ref_matches("v1", "refs/tags/v1", None));
        assert!(!ref_matches("main", "refs/heads/main2", None));
        assert!(ref_matches("refs/heads/main", "refs/heads/main", None));
        assert!(ref_matches("HEAD", "refs/heads/trunk", Some("trunk")));
        assert!(!ref_matches("HEAD", "refs/heads/feature", Some("trunk")));
        assert!(ref_matches("HEAD", "refs/heads/feature", None));
        assert!(!ref_matches("HEAD", "refs/tags/v1", None));
        assert!(!ref_matches(
            "0123456789abcdef0123456789abcdef01234567",
            "refs/heads/main",
            None
        ));
    }

    #[test]
    fn payloads_of_each_provider_are_read() {
        let github = json!({"ref": "refs/heads/main", "repository": {"clone_url": "https://github.com/acme/fleet.git", "ssh_url": "git@github.com:acme/fleet.git", "default_branch": "main"}});
        let p = Push::parse(Provider::GitHub, &github);
        assert_eq!(p.refs, ["refs/heads/main"]);
        assert_eq!(p.urls.len(), 2);
        assert_eq!(p.default_branch.as_deref(), Some("main"));
        let deleted =
            json!({"ref": "refs/heads/main", "deleted": true, "repository": {"clone_url": "x"}});
        assert!(Push::parse(Provider::GitHub, &deleted).refs.is_empty());

        let gitlab = json!({"ref": "refs/heads/main", "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "project": {"git_http_url": "https://gitlab.com/acme/fleet.git", "default_branch": "main"}});
        assert_eq!(
            Push::parse(Provider::GitLab, &gitlab).refs,
            ["refs/heads/main"]
        );
        let gitlab_deleted = json!({"ref": "refs/heads/main", "after": "0000000000000000000000000000000000000000", "project": {}});
        assert!(
            Push::parse(Provider::GitLab, &gitlab_deleted)
                .refs
                .is_empty()
        );

        let bitbucket = json!({"repository": {"full_name": "acme/fleet", "links": {"html": {"href": "https://bitbucket.org/acme/fleet"}}}, "push": {"changes": [{"new": {"type": "branch", "name": "main"}}, {"new": null}, {"new": {"type": "tag", "name": "v2"}}]}});
        let p = Push::parse(Provider::Bitbucket, &bitbucket);
        assert_eq!(p.refs, ["refs/heads/main", "refs/tags/v2"]);
        assert!(
            p.urls
                .iter()
                .all(|u| normalize(u) == "bitbucket.org/acme/fleet")
        );

        let generic =
            json!({"repository": "https://git.example/acme/fleet", "ref": "refs/heads/main"});
        assert_eq!(
            Push::parse(Provider::Generic, &generic),
            Push {
                urls: vec!["https://git.example/acme/fleet".into()],
                refs: vec!["refs/heads/main".into()],
                default_branch: None
            }
        );
    }

    #[test]
    fn a_push_concerns_the_environments_that_follow_it() {
        let sources = Sources {
            config: Some(("https://github.com/acme/config".into(), "HEAD".into())),
            environments: BTreeMap::from([
                (
                    "prod".into(),
                    ("https://github.com/acme/apps.git".into(), "release".into()),
                ),
                (
                    "dev".into(),
                    ("https://github.com/acme/apps.git".into(), "main".into()),
                ),
                ("staging".into(), (".".into(), "HEAD".into())),
            ]),
        };
        let push = |url: &str, r: &str| Push {
            urls: vec![url.into()],
            refs: vec![r.into()],
            default_branch: Some("main".into()),
        };
        assert_eq!(
            sources.wanted(&push("git@github.com:acme/apps.git", "refs/heads/release")),
            Wanted::Some(vec!["prod".into()])
        );
        assert_eq!(
            sources.wanted(&push("https://github.com/acme/apps", "refs/heads/main")),
            Wanted::Some(vec!["dev".into()])
        );
        assert_eq!(
            sources.wanted(&push("https://github.com/acme/apps", "refs/heads/other")),
            Wanted::Some(vec![])
        );
        assert_eq!(
            sources.wanted(&push("https://github.com/acme/config", "refs/heads/main")),
            Wanted::All
        );
        assert_eq!(
            sources.wanted(&push(
                "https://github.com/acme/config",
                "refs/heads/feature"
            )),
            Wanted::Some(vec![])
        );
        assert_eq!(
            sources.wanted(&push("https://github.com/someone/else", "refs/heads/main")),
            Wanted::Some(vec![])
        );
    }
}
