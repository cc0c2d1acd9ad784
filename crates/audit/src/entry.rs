//! What one audit entry says.
//!
//! API boundary: the rollout, sync and drift engines build [`Entry`] values
//! and hand them to an [`AuditSink`](crate::AuditSink); the store turns each
//! into a [`Record`] (sequence number, time, hash chain links).
//!
//! Secret values cannot be carried: objects are referenced by identity only
//! ([`ObjectRef`] has no field for content), and the one free-form field,
//! [`Entry::details`], is refused when it holds a `data` or `stringData` key
//! (see [`Entry::check`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use tidegate_core::ObjectKey;

use crate::AuditError;

/// Position of a record in the log: 1 for the first, then +1 per entry.
pub type Seq = u64;

/// What made the change happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A person ran the `tidegate` command.
    Cli,
    /// The controller's periodic poll of Git.
    ControllerPoll,
    /// A Git hosting webhook.
    Webhook,
    /// Drift detection (self-heal).
    Drift,
    /// A request to the controller's API (the CLI in server mode), made
    /// with an authenticated identity ([`Actor::authenticated`]).
    Api,
}

impl Trigger {
    /// The kebab-case name used in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::ControllerPoll => "controller-poll",
            Trigger::Webhook => "webhook",
            Trigger::Drift => "drift",
            Trigger::Api => "api",
        }
    }
}

/// Who made the change.
///
/// Hashed as `{"identity":…,"trigger":…}`, plus `"authenticated":{…}` only
/// when an issuer vouched for the identity: records written before that
/// field existed (and every local CLI record) hash exactly as before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `user@host` for a person, or the controller's identity
    /// (e.g. `system:serviceaccount:tidegate:controller`); for an
    /// authenticated identity, its display name.
    pub identity: String,
    /// What started it.
    pub trigger: Trigger,
    /// The issuer and subject that authenticated the identity (an API token,
    /// later an OIDC issuer); absent for the local Unix user and the
    /// controller itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<Authenticated>,
}

/// Who vouched for an [`Actor`]: `issuer` says how the identity was proven
/// (`tidegate-token`, an OIDC issuer URL), `subject` is the identity within
/// that issuer. Two actors are the same person exactly when both match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Authenticated {
    /// The issuer (stable, never a display name).
    pub issuer: String,
    /// The subject within the issuer.
    pub subject: String,
}

impl Actor {
    /// Builds an actor.
    pub fn new(identity: impl Into<String>, trigger: Trigger) -> Self {
        Actor {
            identity: identity.into(),
            trigger,
            authenticated: None,
        }
    }

    /// An actor whose identity an issuer authenticated (an API request):
    /// `display` is what logs and reports show, `issuer` + `subject` what
    /// identifies it.
    pub fn authenticated(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        display: impl Into<String>,
        trigger: Trigger,
    ) -> Self {
        Actor {
            identity: display.into(),
            trigger,
            authenticated: Some(Authenticated {
                issuer: issuer.into(),
                subject: subject.into(),
            }),
        }
    }

    /// The operating-system user running this process, as `user@host`.
    pub fn local_user(trigger: Trigger) -> Self {
        let user = ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .or_else(user_from_passwd)
            .unwrap_or_else(|| "unknown".to_string());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_string());
        Actor::new(format!("{user}@{host}"), trigger)
    }
}

/// The name of this process's real user, from `/proc/self/status` and
/// `/etc/passwd` (for environments without `$USER`, such as cron and CI).
fn user_from_passwd() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    })
}

/// The kind of change. Known actions have a variant; others keep their name
/// so that a newer binary's actions still read in an older one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// A rollout of a revision to an environment begins (intent).
    RolloutStart,
    /// A wave of clusters begins.
    WaveStart,
    /// Objects applied to a cluster.
    Apply,
    /// Objects pruned from a cluster.
    Prune,
    /// Live state differs from Git.
    DriftDetected,
    /// Drift undone.
    DriftCorrected,
    /// A health or bake gate passed.
    GatePassed,
    /// A health or bake gate failed.
    GateFailed,
    /// A blue/green Service selector switch.
    Switch,
    /// A switch undone.
    SwitchReverted,
    /// A rollback to an earlier revision.
    Rollback,
    /// A rollout ended (outcome).
    RolloutEnd,
    /// A cluster or app was quarantined.
    Quarantine,
    /// A person approved a wave.
    Approve,
    /// A one-off sync.
    Sync,
    /// Any other action, by name.
    Other(String),
}

impl Action {
    /// Every known action, in display order.
    pub const KNOWN: [Action; 15] = [
        Action::RolloutStart,
        Action::WaveStart,
        Action::Apply,
        Action::Prune,
        Action::DriftDetected,
        Action::DriftCorrected,
        Action::GatePassed,
        Action::GateFailed,
        Action::Switch,
        Action::SwitchReverted,
        Action::Rollback,
        Action::RolloutEnd,
        Action::Quarantine,
        Action::Approve,
        Action::Sync,
    ];

    /// The kebab-case name used in the log.
    pub fn as_str(&self) -> &str {
        match self {
            Action::RolloutStart => "rollout-start",
            Action::WaveStart => "wave-start",
            Action::Apply => "apply",
            Action::Prune => "prune",
            Action::DriftDetected => "drift-detected",
            Action::DriftCorrected => "drift-corrected",
            Action::GatePassed => "gate-passed",
            Action::GateFailed => "gate-failed",
            Action::Switch => "switch",
            Action::SwitchReverted => "switch-reverted",
            Action::Rollback => "rollback",
            Action::RolloutEnd => "rollout-end",
            Action::Quarantine => "quarantine",
            Action::Approve => "approve",
            Action::Sync => "sync",
            Action::Other(s) => s,
        }
    }

    /// Parses a name; unknown names become [`Action::Other`].
    pub fn parse(name: &str) -> Action {
        Action::KNOWN
            .iter()
            .find(|a| a.as_str() == name)
            .cloned()
            .unwrap_or_else(|| Action::Other(name.to_string()))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Action::parse(&s))
    }
}

/// How an operation or step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It did what was asked (for a rollout: every cluster Healthy).
    Success,
    /// It failed.
    Failure,
    /// Some clusters changed, others did not.
    Partial,
    /// Stopped on purpose (e.g. a person cancelled).
    Aborted,
}

impl Outcome {
    /// The kebab-case name used in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Partial => "partial",
            Outcome::Aborted => "aborted",
        }
    }
}

/// A Git revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Full commit SHA.
    pub sha: String,
    /// Commit time, Unix milliseconds (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<i64>,
    /// Commit author, `Name <email>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

impl Revision {
    /// A revision known by SHA only.
    pub fn sha(sha: impl Into<String>) -> Self {
        Revision {
            sha: sha.into(),
            time_ms: None,
            author: None,
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Created.
    Created,
    /// Updated in place.
    Updated,
    /// Deleted (pruned).
    Deleted,
    /// Left as it was (drift check, dry run).
    Unchanged,
}

/// An object named by identity only: there is deliberately no field for its
/// content, so a Secret's data cannot enter the log through a reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    /// What happened to it.
    pub change: Change,
    /// API group; empty for the core group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace, if namespaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// A reference to `key` with what happened to it.
    pub fn new(key: &ObjectKey, change: Change) -> Self {
        ObjectRef {
            change,
            group: key.group.clone(),
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        }
    }

    /// Reads only the identity (`apiVersion`, `kind`, `metadata.namespace`,
    /// `metadata.name`) of a full manifest; everything else, including a
    /// Secret's `data` and `stringData`, is dropped.
    pub fn from_manifest(manifest: &serde_json::Value, change: Change) -> Option<Self> {
        let api_version = manifest.get("apiVersion")?.as_str()?;
        let group = api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_string();
        let meta = manifest.get("metadata")?;
        Some(ObjectRef {
            change,
            group,
            kind: manifest.get("kind")?.as_str()?.to_string(),
            namespace: meta
                .get("namespace")
                .and_then(|n| n.as_str())
                .map(str::to_string),
            name: meta.get("name")?.as_str()?.to_string(),
        })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tidegate_core::object::write_object(
            f,
            &self.group,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

/// Objects touched by a step: counts, and references to each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectsChanged {
    /// Objects created.
    #[serde(default)]
    pub created: u64,
    /// Objects updated.
    #[serde(default)]
    pub updated: u64,
    /// Objects deleted.
    #[serde(default)]
    pub deleted: u64,
    /// Objects left unchanged.
    #[serde(default)]
    pub unchanged: u64,
    /// Each object, by identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<ObjectRef>,
}

impl ObjectsChanged {
    /// Counts the references by kind of change.
    pub fn from_refs(refs: Vec<ObjectRef>) -> Self {
        let mut out = ObjectsChanged::default();
        for r in &refs {
            match r.change {
                Change::Created => out.created += 1,
                Change::Updated => out.updated += 1,
                Change::Deleted => out.deleted += 1,
                Change::Unchanged => out.unchanged += 1,
            }
        }
        out.refs = refs;
        out
    }

    /// Created + updated + deleted.
    pub fn changed(&self) -> u64 {
        self.created + self.updated + self.deleted
    }
}

/// A blue/green Service selector before and after a switch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorChange {
    /// Service name.
    pub service: String,
    /// Selector before.
    pub before: BTreeMap<String, String>,
    /// Selector after.
    pub after: BTreeMap<String, String>,
}

/// The phase of an entry in an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Written (and synced to disk) before a cluster is changed.
    Intent,
    /// A step inside an operation, or a stand-alone event.
    Event,
    /// Written after the change: closes the operation that the intent opened.
    Outcome,
}

impl Phase {
    /// The kebab-case name used in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Intent => "intent",
            Phase::Event => "event",
            Phase::Outcome => "outcome",
        }
    }
}

/// One thing that happened, as handed to the log. The store adds the
/// sequence number, the time (unless [`Entry::time_ms`] is set) and the chain
/// links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When, Unix milliseconds UTC; `None`: the store's clock at append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<i64>,
    /// Who.
    pub actor: Actor,
    /// Environment name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// App name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// What.
    pub action: Action,
    /// Revision before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Revision>,
    /// Revision after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Revision>,
    /// Digest of the rendered manifests (`sha256:<hex>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// Objects changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectsChanged>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// How long it took, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why, or what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For switches: the Service selector before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorChange>,
    /// Other facts as plain strings (gate names, wave numbers...). Keys named
    /// `data` or `stringData` are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

/// Keys that hold Secret values in Kubernetes objects: never logged.
pub const SECRET_KEYS: [&str; 2] = ["data", "stringData"];

impl Entry {
    /// An entry with only the actor and the action set.
    pub fn new(actor: Actor, action: Action) -> Self {
        Entry {
            time_ms: None,
            actor,
            environment: None,
            cluster: None,
            app: None,
            action,
            from: None,
            to: None,
            manifest_digest: None,
            objects: None,
            outcome: None,
            duration_ms: None,
            message: None,
            selector: None,
            details: BTreeMap::new(),
        }
    }

    /// Sets the environment.
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.environment = Some(env.into());
        self
    }

    /// Sets the cluster.
    pub fn cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }

    /// Sets the app.
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// Sets the time (Unix ms).
    pub fn at(mut self, time_ms: i64) -> Self {
        self.time_ms = Some(time_ms);
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// Sets the message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sets the revisions before and after.
    pub fn revisions(mut self, from: Option<Revision>, to: Option<Revision>) -> Self {
        self.from = from;
        self.to = to;
        self
    }

    /// Refuses entries that could carry secret values: `details` keys named
    /// `data`/`stringData` (any case), and empty actor identities.
    pub fn check(&self) -> Result<(), AuditError> {
        if self.actor.identity.trim().is_empty() {
            return Err(AuditError::Refused("the actor identity is empty".into()));
        }
        if let Some(who) = &self.actor.authenticated
            && (who.issuer.trim().is_empty() || who.subject.trim().is_empty())
        {
            return Err(AuditError::Refused(
                "the actor's issuer or subject is empty".into(),
            ));
        }
        for key in self.details.keys() {
            if SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(key)) {
                return Err(AuditError::Refused(format!(
                    "details key `{key}` may hold Secret values; the audit log takes object references only"
                )));
            }
        }
        Ok(())
    }
}

/// One entry as stored: the entry plus its place in the log and the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number.
    pub seq: Seq,
    /// Time, Unix milliseconds UTC.
    pub time_ms: i64,
    /// Intent, event or outcome.
    pub phase: Phase,
    /// The intent's sequence number, for every entry of an operation
    /// (the intent itself included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Seq>,
    /// The entry (its `time_ms` is always `None` here).
    #[serde(flatten)]
    pub entry: Entry,
    /// Hash of the previous record (64 zeros for the first), lowercase hex.
    pub prev_hash: String,
    /// This record's hash, lowercase hex.
    pub hash: String,
}

#[cfg(test)]
#[path = "entry_actor_tests.rs"]
mod actor_tests;
