//! What each sink is sent: one HTTP POST per event, built from the audit
//! record alone (no cluster or Git read), so a payload says no more than
//! the trail.

use crate::{
    config::{SinkConfig, SinkKind, TeamsFormat},
    event::{EventKind, Notice, short},
    secret::Secret,
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::fmt;
use tidegate_audit::{Outcome, time::format_ms};

/// The header of the generic webhook's signature: `sha256=<hex>` of the
/// HMAC-SHA256 of the raw body, as GitHub's `X-Hub-Signature-256`.
pub const SIGNATURE_HEADER: &str = "X-Tidegate-Signature-256";
/// The header naming the event (`rollout-failed`, ...).
pub const EVENT_HEADER: &str = "X-Tidegate-Event";
/// The header with a delivery id stable across retries (the audit `seq`):
/// receivers de-duplicate on it.
pub const DELIVERY_HEADER: &str = "X-Tidegate-Delivery";

/// One request to make. `Debug` shows neither the URL (a Slack or Teams
/// URL is a credential) nor the credential headers.
#[derive(Clone)]
pub struct Request {
    /// Where to.
    pub(crate) url: Secret,
    /// Headers; credentials among them are [`Header::Secret`].
    pub(crate) headers: Vec<(&'static str, Header)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// A header value.
#[derive(Clone)]
pub(crate) enum Header {
    /// Safe to show.
    Plain(String),
    /// A credential (`Authorization`).
    Secret(Secret),
}

impl Request {
    /// A header's value, if set and not a credential.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            Header::Plain(v) if n.eq_ignore_ascii_case(name) => Some(v.as_str()),
            _ => None,
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Request")
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// The request that tells `sink` about `notice`; `None` when the sink has
/// nothing to say about it (a CDEvents sink and a record without a CDEvent,
/// a commit status without a commit).
pub fn request(sink: &SinkConfig, notice: &Notice) -> Option<Request> {
    let json_body = |v: &Value| v.to_string().into_bytes();
    let plain = |s: &str| Header::Plain(s.to_string());
    let mut headers = vec![("Content-Type", plain("application/json"))];
    let (url, body) = match &sink.kind {
        SinkKind::Slack { url } => (url.clone(), json_body(&slack(notice))),
        SinkKind::Teams { url, format } => (url.clone(), json_body(&teams(notice, *format))),
        SinkKind::Webhook { url, secret } => {
            let body = json_body(&event_json(notice));
            headers.push((EVENT_HEADER, plain(notice.kind.as_str())));
            headers.push((DELIVERY_HEADER, plain(&notice.record.seq.to_string())));
            headers.push((SIGNATURE_HEADER, Header::Plain(sign(secret, &body))));
            (url.clone(), body)
        }
        SinkKind::CdEvents { url, source, token } => {
            let event = tidegate_report::log::cdevent(&notice.record, source)?;
            let context = &event["context"];
            for (name, field) in [
                ("ce-id", "id"),
                ("ce-source", "source"),
                ("ce-type", "type"),
                ("ce-time", "timestamp"),
            ] {
                headers.push((name, plain(context[field].as_str().unwrap_or_default())));
            }
            headers.push(("ce-specversion", plain("1.0")));
            if let Some(token) = token {
                headers.push((
                    "Authorization",
                    Header::Secret(Secret::new(format!("Bearer {}", token.expose()))),
                ));
            }
            (url.clone(), json_body(&event))
        }
        SinkKind::GitHubStatus {
            api_url,
            repository,
            token,
            target_url,
        } => {
            let sha = notice.record.entry.to.as_ref()?.sha.clone();
            let state = match notice.kind {
                EventKind::RolloutStarted => "pending",
                EventKind::RolloutSucceeded => "success",
                EventKind::RolloutFailed => match notice.record.entry.outcome {
                    Some(Outcome::Failure) => "failure",
                    _ => "error",
                },
                _ => return None,
            };
            let mut body = json!({
                "state": state,
                "context": format!("tidegate/{}", notice.environment()),
                "description": description(notice),
            });
            if let Some(link) = target_url {
                body["target_url"] = Value::String(link.clone());
            }
            headers.push(("Accept", plain("application/vnd.github+json")));
            headers.push(("X-GitHub-Api-Version", plain("2022-11-28")));
            headers.push((
                "Authorization",
                Header::Secret(Secret::new(format!("Bearer {}", token.expose()))),
            ));
            let url = format!("{}/repos/{repository}/statuses/{sha}", api_url.expose());
            (Secret::new(url), json_body(&body))
        }
    };
    headers.push((
        "User-Agent",
        plain(concat!("tidegate/", env!("CARGO_PKG_VERSION"))),
    ));
    Some(Request { url, headers, body })
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `key`.
pub fn sign(key: &Secret, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The generic webhook's body: the event and the audit record's facts.
pub fn event_json(notice: &Notice) -> Value {
    let r = &notice.record;
    let e = &r.entry;
    json!({
        "id": r.seq.to_string(),
        "event": notice.kind.as_str(),
        "time": format_ms(r.time_ms),
        "environment": e.environment,
        "cluster": e.cluster,
        "app": e.app,
        "revision": notice.revision(),
        "from": e.from.as_ref().map(|f| &f.sha),
        "to": e.to.as_ref().map(|t| &t.sha),
        "outcome": e.outcome.map(|o| o.as_str()),
        "message": e.message,
        "summary": notice.summary(),
        "actor": { "identity": e.actor.identity, "trigger": e.actor.trigger.as_str() },
        "audit": {
            "seq": r.seq,
            "operation": r.operation,
            "action": e.action.as_str(),
            "phase": r.phase.as_str(),
            "hash": r.hash,
        },
    })
}

/// Slack's `text` is mrkdwn: `&`, `<`, `>` are escaped so that text from
/// the trail (an error message) cannot mention `<!channel>` or forge a link.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack(notice: &Notice) -> Value {
    json!({ "text": format!("{} {}", icon(notice.kind), slack_escape(&notice.summary())) })
}

fn icon(kind: EventKind) -> &'static str {
    match kind {
        EventKind::RolloutSucceeded | EventKind::DriftCorrected => ":white_check_mark:",
        EventKind::RolloutFailed | EventKind::Rollback | EventKind::Quarantine => ":x:",
        EventKind::DriftDetected | EventKind::ApprovalNeeded => ":warning:",
        EventKind::RolloutStarted | EventKind::Switch => ":arrow_forward:",
    }
}

fn bad(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::RolloutFailed | EventKind::Rollback | EventKind::Quarantine
    )
}

/// The facts every card shows.
fn facts(notice: &Notice) -> Vec<(&'static str, String)> {
    let e = &notice.record.entry;
    let mut out = vec![
        ("Event", notice.kind.as_str().to_string()),
        ("Environment", notice.environment().to_string()),
    ];
    if let Some(c) = &e.cluster {
        out.push(("Cluster", c.clone()));
    }
    if let Some(a) = &e.app {
        out.push(("App", a.clone()));
    }
    if let Some(rev) = notice.revision() {
        out.push(("Revision", short(rev).to_string()));
    }
    out.push((
        "By",
        format!("{} ({})", e.actor.identity, e.actor.trigger.as_str()),
    ));
    out.push(("Audit entry", format!("#{}", notice.record.seq)));
    out
}

fn teams(notice: &Notice, format: TeamsFormat) -> Value {
    let title = notice.summary();
    let facts = facts(notice);
    match format {
        TeamsFormat::AdaptiveCard => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": title,
                            "weight": "Bolder",
                            "wrap": true,
                            "color": if bad(notice.kind) { "Attention" } else { "Default" },
                        },
                        {
                            "type": "FactSet",
                            "facts": facts.iter().map(|(t, v)| json!({"title": t, "value": v})).collect::<Vec<_>>(),
                        }
                    ],
                },
            }],
        }),
        TeamsFormat::MessageCard => json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": title,
            "title": title,
            "themeColor": if bad(notice.kind) { "D70000" } else { "2EB886" },
            "sections": [{
                "facts": facts.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
            }],
        }),
    }
}

/// A commit status description: at most 140 characters (GitHub's limit).
fn description(notice: &Notice) -> String {
    let text = match notice.kind {
        EventKind::RolloutStarted => "rolling out".to_string(),
        _ => notice
            .record
            .entry
            .message
            .clone()
            .unwrap_or_else(|| notice.kind.as_str().to_string()),
    };
    if text.chars().count() <= 140 {
        return text;
    }
    let mut cut: String = text.chars().take(139).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::{entry, record};
    use tidegate_audit::{Action, Phase};

    fn sink(kind: SinkKind) -> SinkConfig {
        SinkConfig {
            name: "s".into(),
            kind,
        }
    }

    fn failed() -> Notice {
        Notice::of(record(
            42,
            Phase::Outcome,
            entry(Action::RolloutEnd)
                .outcome(Outcome::Failure)
                .message("rolled back after wave 1: <!channel> & co"),
        ))
        .expect("event")
    }

    #[test]
    fn the_webhook_body_is_signed_with_hmac_sha256_like_github() {
        let key = Secret::new("It's a Secret to Everybody");
        // GitHub's documented test vector for X-Hub-Signature-256.
        assert_eq!(
            sign(&key, b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let req = request(
            &sink(SinkKind::Webhook {
                url: Secret::new("https://hooks.example.com/x"),
                secret: key.clone(),
            }),
            &failed(),
        )
        .expect("a request");
        assert_eq!(
            req.header(SIGNATURE_HEADER),
            Some(sign(&key, &req.body).as_str())
        );
        assert_eq!(req.header(EVENT_HEADER), Some("rollout-failed"));
        assert_eq!(req.header(DELIVERY_HEADER), Some("42"));
        let body = req.json();
        assert_eq!(body["event"], "rollout-failed");
        assert_eq!(body["environment"], "prod");
        assert_eq!(body["revision"], "0123456789abcdef0123");
        assert_eq!(body["outcome"], "failure");
        assert_eq!(body["audit"]["seq"], 42);
        assert_eq!(body["actor"]["trigger"], "controller-poll");
    }

    #[test]
    fn slack_text_cannot_mention_channels_or_forge_links() {
        let req = request(
            &sink(SinkKind::Slack {
                url: Secret::new("https://hooks.slack.com/services/T/B/X"),
            }),
            &failed(),
        )
        .expect("a request");
        assert_eq!(
            req.json(),
            json!({"text": ":x: prod: rollout of 0123456789ab failed — rolled back after wave 1: &lt;!channel&gt; &amp; co"})
        );
        assert!(
            !format!("{req:?}").contains("hooks.slack.com"),
            "Debug hides the URL"
        );
    }

    #[test]
    fn teams_cards_carry_the_summary_and_facts() {
        let url = Secret::new("https://x.webhook.office.com/y");
        let adaptive = request(
            &sink(SinkKind::Teams {
                url: url.clone(),
                format: TeamsFormat::AdaptiveCard,
            }),
            &failed(),
        )
        .expect("a request")
        .json();
        let card = &adaptive["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["color"], "Attention");
        assert_eq!(
            card["content"]["body"][1]["facts"][0],
            json!({"title": "Event", "value": "rollout-failed"})
        );
        let legacy = request(
            &sink(SinkKind::Teams {
                url,
                format: TeamsFormat::MessageCard,
            }),
            &failed(),
        )
        .expect("a request")
        .json();
        assert_eq!(legacy["@type"], "MessageCard");
        assert_eq!(legacy["themeColor"], "D70000");
        assert_eq!(legacy["sections"][0]["facts"][1]["value"], "prod");
    }

    #[test]
    fn cdevents_reuse_the_audit_export_mapping_in_binary_mode() {
        let cd = sink(SinkKind::CdEvents {
            url: Secret::new("https://events.example.com/"),
            source: "tidegate/test".into(),
            token: Some(Secret::new("t0ken")),
        });
        assert!(
            request(&cd, &failed()).is_none(),
            "a failed rollout has no CDEvent"
        );
        let ok = Notice::of(record(
            9,
            Phase::Outcome,
            entry(Action::RolloutEnd).outcome(Outcome::Success),
        ))
        .expect("event");
        let req = request(&cd, &ok).expect("a request");
        let expected = tidegate_report::log::cdevent(&ok.record, "tidegate/test").expect("mapped");
        assert_eq!(req.json(), expected);
        assert_eq!(
            req.header("ce-type"),
            Some("dev.cdevents.service.deployed.0.2.0")
        );
        assert_eq!(req.header("ce-source"), Some("tidegate/test"));
        assert_eq!(req.header("ce-specversion"), Some("1.0"));
        assert_eq!(
            req.header("Authorization"),
            None,
            "credentials are not readable back"
        );
        assert!(!format!("{req:?}").contains("t0ken"));
    }

    #[test]
    fn github_statuses_are_pending_then_success_or_failure_per_environment() {
        let gh = sink(SinkKind::GitHubStatus {
            api_url: Secret::new("http://127.0.0.1:1/api/v3"),
            repository: "acme/fleet".into(),
            token: Secret::new("ghp_x"),
            target_url: Some("https://grafana.example.com/d/x".into()),
        });
        let at = |kind: Action, phase, outcome: Option<Outcome>| {
            let mut e = entry(kind);
            e.outcome = outcome;
            request(&gh, &Notice::of(record(1, phase, e)).expect("event")).expect("a request")
        };
        let start = at(Action::RolloutStart, Phase::Intent, None);
        assert_eq!(
            start.url.expose(),
            "http://127.0.0.1:1/api/v3/repos/acme/fleet/statuses/0123456789abcdef0123"
        );
        assert_eq!(
            start.json(),
            json!({"state": "pending", "context": "tidegate/prod", "description": "rolling out", "target_url": "https://grafana.example.com/d/x"})
        );
        assert_eq!(
            at(Action::RolloutEnd, Phase::Outcome, Some(Outcome::Success)).json()["state"],
            "success"
        );
        assert_eq!(
            at(Action::RolloutEnd, Phase::Outcome, Some(Outcome::Failure)).json()["state"],
            "failure"
        );
        assert_eq!(
            at(Action::RolloutEnd, Phase::Outcome, Some(Outcome::Aborted)).json()["state"],
            "error"
        );
        let long = "x".repeat(300);
        let mut e = entry(Action::RolloutEnd)
            .outcome(Outcome::Failure)
            .message(long);
        e.outcome = Some(Outcome::Failure);
        let req = request(
            &gh,
            &Notice::of(record(1, Phase::Outcome, e)).expect("event"),
        )
        .expect("req");
        assert_eq!(
            req.json()["description"]
                .as_str()
                .map(|d| d.chars().count()),
            Some(140)
        );
    }
}
