//! The operator's notification file (`tidegate controller --notifications
//! FILE`): the sinks, with their URLs and where their credentials are read
//! from, and per environment which events go to which sink.
//!
//! Security: repository content is untrusted (a pull request may be
//! hostile), so nothing here comes from the repository: an environment
//! file can neither name a host that receives credentials nor turn off the
//! notifications about its own rollout. Everything is the operator's.

use crate::{event::EventKind, secret::Secret, secret::SecretSource};
use serde::Deserialize;
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::Path,
    time::Duration,
};
use tidegate_core::{Diagnostic, Diagnostics, duration::GoDuration, environment::Located};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    delivery: DeliverySpec,
    #[serde(default)]
    sinks: BTreeMap<String, Located<SinkSpec>>,
    #[serde(default)]
    environments: BTreeMap<String, Vec<Located<RouteSpec>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeliverySpec {
    queue: Option<usize>,
    attempts: Option<u32>,
    backoff: Option<GoDuration>,
    max_backoff: Option<GoDuration>,
    timeout: Option<GoDuration>,
    poll: Option<GoDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SinkSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_from: Option<SecretSource>,
    #[serde(default)]
    secret_from: Option<SecretSource>,
    #[serde(default)]
    token_from: Option<SecretSource>,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    target_url: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    sink: String,
    events: Vec<Located<String>>,
}

/// The Microsoft Teams card format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamsFormat {
    /// An Adaptive Card in a `message` (Teams workflows, "Post to a channel
    /// when a webhook request is received"): the default.
    AdaptiveCard,
    /// The legacy `MessageCard` of Office 365 connectors.
    MessageCard,
}

/// What a sink is and where it sends.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// A Slack-compatible incoming webhook (`{"text": …}`; Mattermost,
    /// Rocket.Chat take the same).
    Slack {
        /// The webhook URL (its path is the credential).
        url: Secret,
    },
    /// A Microsoft Teams incoming webhook or workflow.
    Teams {
        /// The webhook URL (its query is the credential).
        url: Secret,
        /// Which card.
        format: TeamsFormat,
    },
    /// Any HTTPS receiver: the JSON event, signed with HMAC-SHA256.
    Webhook {
        /// The receiver.
        url: Secret,
        /// The HMAC key.
        secret: Secret,
    },
    /// A CDEvents receiver (CloudEvents HTTP binary mode).
    CdEvents {
        /// The receiver.
        url: Secret,
        /// The CloudEvents `source`.
        source: String,
        /// A bearer token, if the receiver wants one.
        token: Option<Secret>,
    },
    /// GitHub commit statuses on the rolled-out commit.
    GitHubStatus {
        /// The REST API root (`https://api.github.com`, or GitHub
        /// Enterprise's `https://HOST/api/v3`).
        api_url: Secret,
        /// `owner/name`.
        repository: String,
        /// A token allowed to write commit statuses.
        token: Secret,
        /// The status's link, if any.
        target_url: Option<String>,
    },
}

impl SinkKind {
    /// The type's name in the file.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Slack { .. } => "slack",
            SinkKind::Teams { .. } => "teams",
            SinkKind::Webhook { .. } => "webhook",
            SinkKind::CdEvents { .. } => "cdevents",
            SinkKind::GitHubStatus { .. } => "github-status",
        }
    }

    /// The events this type can say something about (`None`: all).
    fn supported(type_name: &str) -> Option<&'static [EventKind]> {
        match type_name {
            "github-status" => Some(&[
                EventKind::RolloutStarted,
                EventKind::RolloutSucceeded,
                EventKind::RolloutFailed,
            ]),
            // The mapping of `tidegate audit export --format cdevents`.
            "cdevents" => Some(&[
                EventKind::RolloutSucceeded,
                EventKind::Rollback,
                EventKind::Switch,
            ]),
            _ => None,
        }
    }
}

/// A sink, named by the operator.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Its name (the `sink` label of the metrics, log field `sink`).
    pub name: String,
    /// What it is.
    pub kind: SinkKind,
}

/// One route: these events of an environment go to this sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The sink's name.
    pub sink: String,
    /// The events.
    pub events: BTreeSet<EventKind>,
}

/// How deliveries are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Events waiting per sink; when full, the oldest is dropped (counted).
    pub queue: usize,
    /// Tries per event before it is given up (counted as failed).
    pub attempts: u32,
    /// The first retry's wait (doubled each time, with jitter).
    pub backoff: Duration,
    /// The longest wait between tries.
    pub max_backoff: Duration,
    /// One request's timeout.
    pub timeout: Duration,
    /// How often the audit trail is read for new entries.
    pub poll: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            queue: 1000,
            attempts: 8,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            poll: Duration::from_secs(1),
        }
    }
}

/// The whole configuration, validated, credentials read.
#[derive(Debug, Clone)]
pub struct Config {
    /// The sinks by name.
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Routes per environment; `*` applies to every environment.
    pub routes: BTreeMap<String, Vec<Route>>,
    /// Delivery settings.
    pub delivery: DeliveryOptions,
}

/// The key of the routes that apply to every environment.
pub const EVERY_ENVIRONMENT: &str = "*";

impl Config {
    /// Reads and checks `path`; every problem at once, each at file:line.
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics::from(
                Diagnostic::new(format!("cannot read the notification file: {e}"))
                    .at(&file, None)
                    .help("check the path given to --notifications"),
            )
        })?;
        Config::parse(&text, &file)
    }

    /// Checks `text` (named `file` in messages).
    pub fn parse(text: &str, file: &str) -> Result<Config, Diagnostics> {
        let spec: FileSpec = serde_saphyr::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line()).filter(|l| *l > 0);
            let text = e.without_snippet().to_string();
            let first = text.lines().next().unwrap_or_default().trim();
            let message = first
                .rfind(" at line ")
                .map_or(first, |i| &first[..i])
                .to_string();
            Diagnostics::from(
                Diagnostic::new(message)
                    .at(file, line)
                    .help("see docs/notifications.md for the fields"),
            )
        })?;
        let mut problems = Diagnostics::default();
        let mut problem = |line: u64, message: String, help: &str| {
            problems.push(
                Diagnostic::new(message)
                    .at(file, (line > 0).then_some(line))
                    .help(help),
            );
        };
        let mut sinks = BTreeMap::new();
        for (name, spec) in &spec.sinks {
            match sink(name, spec) {
                Ok(kind) => {
                    sinks.insert(
                        name.clone(),
                        SinkConfig {
                            name: name.clone(),
                            kind,
                        },
                    );
                }
                Err((message, help)) => problem(spec.line, format!("sink {name}: {message}"), help),
            }
        }
        let known: Vec<&str> = spec.sinks.keys().map(String::as_str).collect();
        let mut routes = BTreeMap::new();
        for (env, list) in &spec.environments {
            let mut out = Vec::new();
            for route in list {
                let Some(sink_spec) = spec.sinks.get(&route.sink) else {
                    problem(
                        route.line,
                        format!(
                            "environment {env}: no sink is named {:?} (sinks: {})",
                            route.sink,
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                        "define the sink under `sinks:` or correct the name",
                    );
                    continue;
                };
                let mut events = BTreeSet::new();
                for name in &route.events {
                    let line = if name.line > 0 { name.line } else { route.line };
                    let chosen: Vec<EventKind> = if name.value == "all" {
                        EventKind::ALL.to_vec()
                    } else if let Some(kind) = EventKind::parse(&name.value) {
                        vec![kind]
                    } else {
                        problem(
                            line,
                            format!("environment {env}: unknown event {:?}", name.value),
                            &format!(
                                "use `all` or some of: {}",
                                EventKind::ALL.map(|k| k.as_str()).join(", ")
                            ),
                        );
                        continue;
                    };
                    let supported = SinkKind::supported(&sink_spec.kind);
                    for kind in chosen {
                        match supported {
                            Some(list) if !list.contains(&kind) => {
                                if name.value != "all" {
                                    problem(
                                        line,
                                        format!(
                                            "environment {env}: a {} sink has nothing to send for {kind}",
                                            sink_spec.kind
                                        ),
                                        &format!(
                                            "a {} sink takes: {}",
                                            sink_spec.kind,
                                            list.iter()
                                                .map(|k| k.as_str())
                                                .collect::<Vec<_>>()
                                                .join(", ")
                                        ),
                                    );
                                }
                            }
                            _ => {
                                events.insert(kind);
                            }
                        }
                    }
                }
                if route.events.is_empty() {
                    problem(
                        route.line,
                        format!(
                            "environment {env}: the route to {} selects no event",
                            route.sink
                        ),
                        "list events, e.g. [rollout-failed, rollback], or `all`",
                    );
                }
                out.push(Route {
                    sink: route.sink.clone(),
                    events,
                });
            }
            routes.insert(env.clone(), out);
        }
        let delivery = delivery(&spec.delivery).unwrap_or_else(|message| {
            problem(0, message, "see `delivery:` in docs/notifications.md");
            DeliveryOptions::default()
        });
        problems.into_result(Config {
            sinks,
            routes,
            delivery,
        })
    }

    /// The sinks `kind` of `environment` goes to, in the file's order.
    pub fn sinks_for(&self, environment: &str, kind: EventKind) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for key in [environment, EVERY_ENVIRONMENT] {
            for route in self.routes.get(key).into_iter().flatten() {
                if route.events.contains(&kind) && !out.contains(&route.sink.as_str()) {
                    out.push(&route.sink);
                }
            }
        }
        out
    }
}

type Problem = (String, &'static str);

fn sink(name: &str, spec: &SinkSpec) -> Result<SinkKind, Problem> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err((
            "a sink name is letters, digits, `-` and `_` (at most 63)".into(),
            "rename the sink",
        ));
    }
    let url = || -> Result<Secret, Problem> {
        match (&spec.url, &spec.url_from) {
            (Some(url), None) => {
                check_url(url)
                    .map_err(|m| (m, "use https:// (plain http only to this machine)"))?;
                Ok(Secret::new(url.clone()))
            }
            (None, Some(from)) => {
                let url = from
                    .read()
                    .map_err(|m| (m, "provide the sink's URL there"))?;
                check_url(url.expose()).map_err(|m| {
                    (
                        format!(
                            "the URL read from {}: {}",
                            from.describe(),
                            m.replace(url.expose(), "<redacted>")
                        ),
                        "use https:// (plain http only to this machine)",
                    )
                })?;
                Ok(url)
            }
            _ => Err((
                "give exactly one of `url` or `urlFrom`".into(),
                "a Slack or Teams URL is a credential: prefer `urlFrom: {env: VAR}` or `{file: PATH}`",
            )),
        }
    };
    let secret = |from: &Option<SecretSource>, field: &str| -> Result<Secret, Problem> {
        match from {
            Some(from) => from
                .read()
                .map_err(|m| (format!("{field}: {m}"), "provide the credential there")),
            None => Err((
                format!("`{field}` is required"),
                "add `{field}: {env: VAR}` or `{file: PATH}`",
            )),
        }
    };
    let unused = |fields: &[(&str, bool)]| -> Result<(), Problem> {
        match fields.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err((
                format!("`{field}` does not apply to a {} sink", spec.kind),
                "remove the field",
            )),
            None => Ok(()),
        }
    };
    Ok(match spec.kind.as_str() {
        "slack" => {
            unused(&[
                ("secretFrom", spec.secret_from.is_some()),
                ("tokenFrom", spec.token_from.is_some()),
                ("repository", spec.repository.is_some()),
                ("apiUrl", spec.api_url.is_some()),
                ("format", spec.format.is_some()),
            ])?;
            SinkKind::Slack { url: url()? }
        }
        "teams" => {
            let format = match spec.format.as_deref() {
                None | Some("adaptive-card") => TeamsFormat::AdaptiveCard,
                Some("message-card") => TeamsFormat::MessageCard,
                Some(other) => {
                    return Err((
                        format!("unknown Teams format {other:?}"),
                        "use adaptive-card (workflows) or message-card (connectors)",
                    ));
                }
            };
            SinkKind::Teams {
                url: url()?,
                format,
            }
        }
        "webhook" => SinkKind::Webhook {
            url: url()?,
            secret: secret(&spec.secret_from, "secretFrom")?,
        },
        "cdevents" => SinkKind::CdEvents {
            url: url()?,
            source: spec.source.clone().unwrap_or_else(|| "tidegate".into()),
            token: spec
                .token_from
                .as_ref()
                .map(|f| {
                    f.read()
                        .map_err(|m| (format!("tokenFrom: {m}"), "provide the token there"))
                })
                .transpose()?,
        },
        "github-status" => {
            let repository = spec.repository.clone().unwrap_or_default();
            let mut parts = repository.split('/');
            let valid = |s: Option<&str>| {
                s.is_some_and(|s| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                })
            };
            if !(valid(parts.next()) && valid(parts.next()) && parts.next().is_none()) {
                return Err((
                    format!("`repository` must be owner/name, not {repository:?}"),
                    "name the repository whose commits the environment rolls out, e.g. acme/fleet",
                ));
            }
            let api_url = spec
                .api_url
                .clone()
                .unwrap_or_else(|| "https://api.github.com".into());
            check_url(&api_url).map_err(|m| {
                (
                    format!("apiUrl: {m}"),
                    "use https://api.github.com or https://HOST/api/v3",
                )
            })?;
            SinkKind::GitHubStatus {
                api_url: Secret::new(api_url.trim_end_matches('/').to_string()),
                repository,
                token: secret(&spec.token_from, "tokenFrom")?,
                target_url: spec.target_url.clone(),
            }
        }
        other => {
            return Err((
                format!("unknown sink type {other:?}"),
                "use slack, teams, webhook, cdevents or github-status",
            ));
        }
    })
}

/// HTTPS, or plain HTTP to this machine only (a test receiver, a sidecar):
/// credentials never cross a network in the clear.
fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a URL with a user or password: use `secretFrom`/`tokenFrom` instead".into());
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!(
            "plain http to {} would send the event and credentials unencrypted",
            parsed.host_str().unwrap_or("?")
        )),
        other => Err(format!("the scheme {other} is not supported")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn delivery(spec: &DeliverySpec) -> Result<DeliveryOptions, String> {
    let d = DeliveryOptions::default();
    let out = DeliveryOptions {
        queue: spec.queue.unwrap_or(d.queue),
        attempts: spec.attempts.unwrap_or(d.attempts),
        backoff: spec.backoff.as_ref().map_or(d.backoff, |g| g.0),
        max_backoff: spec.max_backoff.as_ref().map_or(d.max_backoff, |g| g.0),
        timeout: spec.timeout.as_ref().map_or(d.timeout, |g| g.0),
        poll: spec.poll.as_ref().map_or(d.poll, |g| g.0),
    };
    if out.queue == 0 || out.attempts == 0 {
        return Err("delivery: `queue` and `attempts` must be at least 1".into());
    }
    if out.backoff.is_zero()
        || out.max_backoff < out.backoff
        || out.timeout.is_zero()
        || out.poll.is_zero()
    {
        return Err(
            "delivery: durations must be above 0 and `maxBackoff` at least `backoff`".into(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
sinks:
  ops:
    type: slack
    url: http://127.0.0.1:9/slack
  hook:
    type: webhook
    url: https://hooks.example.com/tidegate
    secretFrom:
      file: KEYFILE
  gh:
    type: github-status
    repository: acme/fleet
    apiUrl: https://ghe.example.com/api/v3/
    tokenFrom:
      file: KEYFILE
environments:
  prod:
    - sink: ops
      events: [rollout-failed, rollback]
    - sink: hook
      events: [all]
  \"*\":
    - sink: gh
      events: [all]
    - sink: ops
      events: [rollout-failed]
delivery:
  queue: 10
  backoff: 100ms
";

    #[test]
    fn a_good_file_gives_sinks_routes_and_delivery() {
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("key");
        std::fs::write(&key, "s3cret\n").expect("key");
        let text = GOOD.replace("KEYFILE", &key.display().to_string());
        let config = Config::parse(&text, "notify.yaml").expect("valid");
        assert_eq!(config.sinks.len(), 3);
        assert_eq!(
            config.sinks_for("prod", EventKind::RolloutFailed),
            ["ops", "hook", "gh"]
        );
        assert_eq!(
            config.sinks_for("dev", EventKind::RolloutFailed),
            ["gh", "ops"]
        );
        assert_eq!(
            config.sinks_for("prod", EventKind::RolloutStarted),
            ["hook", "gh"]
        );
        // `all` on a github-status sink takes only what it can say.
        assert_eq!(
            config.sinks_for("dev", EventKind::Rollback),
            Vec::<&str>::new()
        );
        assert_eq!(config.sinks_for("dev", EventKind::RolloutSucceeded), ["gh"]);
        assert_eq!(config.delivery.queue, 10);
        assert_eq!(config.delivery.backoff, Duration::from_millis(100));
        match &config.sinks["gh"].kind {
            SinkKind::GitHubStatus { api_url, .. } => {
                assert_eq!(api_url.expose(), "https://ghe.example.com/api/v3")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "Debug masks credentials"
        );
    }

    fn problems(text: &str) -> Vec<String> {
        Config::parse(text, "notify.yaml")
            .expect_err("invalid")
            .iter()
            .map(|d| {
                format!(
                    "{}:{}: {}",
                    d.file.as_deref().unwrap_or("-"),
                    d.line.map_or("-".into(), |l| l.to_string()),
                    d.message
                )
            })
            .collect()
    }

    #[test]
    fn mistakes_are_reported_at_file_and_line_all_at_once() {
        let text = "\
sinks:
  ops:
    type: slack
    url: http://hooks.slack.com/services/T/B/X
  gh:
    type: github-status
    repository: acme
    tokenFrom: {env: TIDEGATE_NOTIFY_TEST_UNSET}
  cd:
    type: cdevents
    url: https://events.example.com/
environments:
  prod:
    - sink: opps
      events: [rollout-failed]
    - sink: cd
      events:
        - rollout-succeeded
        - drift-detected
        - rolout-failed
";
        assert_eq!(
            problems(text),
            [
                "notify.yaml:3: sink ops: plain http to hooks.slack.com would send the event and credentials unencrypted",
                "notify.yaml:6: sink gh: `repository` must be owner/name, not \"acme\"",
                "notify.yaml:14: environment prod: no sink is named \"opps\" (sinks: cd, gh, ops)",
                "notify.yaml:19: environment prod: a cdevents sink has nothing to send for drift-detected",
                "notify.yaml:20: environment prod: unknown event \"rolout-failed\"",
            ]
        );
    }

    #[test]
    fn unknown_fields_and_bad_yaml_name_their_line() {
        let p = problems("sinks:\n  ops:\n    type: slack\n    urll: https://x.example\n");
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("notify.yaml:4: unknown field `urll`"),
            "{p:?}"
        );
        let secret_in_message = problems(
            "sinks:\n  hook:\n    type: webhook\n    url: https://x.example/\n    secretFrom: {env: TIDEGATE_NOTIFY_TEST_UNSET}\n",
        );
        assert_eq!(
            secret_in_message,
            [
                "notify.yaml:3: sink hook: secretFrom: the variable TIDEGATE_NOTIFY_TEST_UNSET is not set"
            ]
        );
    }
}
