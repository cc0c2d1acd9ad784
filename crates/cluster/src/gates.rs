//! Quarantines and approvals kept in the clusters, so that every CLI and
//! controller managing an environment sees them from any machine: a
//! ConfigMap `tidegate.<env>.gates` in `tidegate-system`, one data key per
//! gate (`quarantine.<revision>`, `approve.<revision>.wave-<n>`, and
//! `lifted.<revision>` for a quarantine lifted by `unquarantine`, which
//! also lifts the quarantines older audit trails on other machines hold),
//! each value a JSON object with the actor, the reason and the time.
//!
//! Writes are read-modify-write with the object's resourceVersion as a
//! precondition (a create when it does not exist, else a server-side apply
//! by the field manager `tidegate` carrying every key), retried on a
//! conflict: two writers never lose each other's keys.

use crate::{ClusterError, lease::ensure_namespace, with_retries};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const NAMESPACE: &str = "tidegate-system";
const MANAGER: &str = "tidegate";
const QUARANTINE: &str = "quarantine.";
const APPROVE: &str = "approve.";
const LIFTED: &str = "lifted.";
/// How often a write is retried after another writer changed the ConfigMap.
const CONFLICT_RETRIES: u32 = 8;

/// Who recorded a gate, why and when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateRecord {
    /// `user@host` or the controller's identity.
    pub actor: String,
    /// Why (the failure that quarantined, the approver's reason).
    pub reason: String,
    /// When (RFC 3339, UTC).
    pub time: String,
}

impl GateRecord {
    /// A record made now.
    pub fn now(actor: &str, reason: &str) -> GateRecord {
        GateRecord {
            actor: actor.to_string(),
            reason: reason.to_string(),
            time: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        }
    }

    fn to_json(&self) -> String {
        json!({"actor": self.actor, "reason": self.reason, "time": self.time}).to_string()
    }

    /// A value that is not such an object still counts as the gate (a
    /// quarantine recorded anywhere counts), with what could be read.
    fn from_json(text: &str) -> GateRecord {
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let field = |name: &str| value[name].as_str().unwrap_or_default().to_string();
        GateRecord {
            actor: field("actor"),
            reason: field("reason"),
            time: field("time"),
        }
    }
}

/// The gates of an environment (one cluster's, or the union of several).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gates {
    /// Quarantined revisions.
    pub quarantined: BTreeMap<String, GateRecord>,
    /// Approved waves, by revision and wave.
    pub approved: BTreeMap<(String, u32), GateRecord>,
    /// Quarantines lifted by hand (and not quarantined again since).
    pub lifted: BTreeMap<String, GateRecord>,
}

impl Gates {
    /// Adds every gate of `other` (the earliest record of a gate wins).
    pub fn merge(&mut self, other: Gates) {
        for (k, v) in other.quarantined {
            self.quarantined.entry(k).or_insert(v);
        }
        for (k, v) in other.approved {
            self.approved.entry(k).or_insert(v);
        }
        for (k, v) in other.lifted {
            self.lifted.entry(k).or_insert(v);
        }
    }

    fn from_data(data: &Map<String, Value>) -> Gates {
        let mut gates = Gates::default();
        for (key, value) in data {
            let record = GateRecord::from_json(value.as_str().unwrap_or_default());
            if let Some(revision) = key.strip_prefix(QUARANTINE) {
                gates.quarantined.insert(revision.to_string(), record);
            } else if let Some(revision) = key.strip_prefix(LIFTED) {
                gates.lifted.insert(revision.to_string(), record);
            } else if let Some(rest) = key.strip_prefix(APPROVE)
                && let Some((revision, wave)) = rest.rsplit_once(".wave-")
                && let Ok(wave) = wave.parse()
            {
                gates.approved.insert((revision.to_string(), wave), record);
            }
        }
        gates
    }
}

/// A change to an environment's gates.
#[derive(Debug, Clone)]
pub enum GateChange {
    /// `revision` may not be rolled out (a failed rollout rejected it).
    Quarantine {
        /// The revision (commit SHA).
        revision: String,
        /// Who, why, when.
        record: GateRecord,
    },
    /// Lifts the quarantine of `revision`.
    Unquarantine {
        /// The revision.
        revision: String,
        /// Who, why, when.
        record: GateRecord,
    },
    /// `wave` of the rollout of `revision` may start.
    Approve {
        /// The revision being rolled out.
        revision: String,
        /// The wave.
        wave: u32,
        /// Who, why, when.
        record: GateRecord,
    },
}

impl GateChange {
    fn revision(&self) -> &str {
        match self {
            GateChange::Quarantine { revision, .. }
            | GateChange::Unquarantine { revision, .. }
            | GateChange::Approve { revision, .. } => revision,
        }
    }

    /// Applies the change to a ConfigMap's data; false when nothing changed.
    fn apply_to(&self, data: &mut Map<String, Value>) -> bool {
        match self {
            GateChange::Quarantine { revision, record } => {
                let key = format!("{QUARANTINE}{revision}");
                let lifted = data.remove(&format!("{LIFTED}{revision}")).is_some();
                if data.contains_key(&key) {
                    return lifted;
                }
                data.insert(key, Value::String(record.to_json()));
                true
            }
            GateChange::Unquarantine { revision, record } => {
                let removed = data.remove(&format!("{QUARANTINE}{revision}")).is_some();
                let key = format!("{LIFTED}{revision}");
                if data.contains_key(&key) {
                    return removed;
                }
                data.insert(key, Value::String(record.to_json()));
                true
            }
            GateChange::Approve {
                revision,
                wave,
                record,
            } => {
                let key = format!("{APPROVE}{revision}.wave-{wave}");
                if data.contains_key(&key) {
                    return false;
                }
                data.insert(key, Value::String(record.to_json()));
                true
            }
        }
    }
}

/// Why a gate could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GatesError {
    /// The revision cannot be part of a ConfigMap key.
    #[error(
        "revision {0:?} cannot name a gate: use the commit SHA (letters, digits, '.', '_' and '-' only)"
    )]
    BadRevision(String),
    /// The cluster could not be read or written.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Other writers kept changing the ConfigMap.
    #[error("cluster {cluster}: the gates of {env} kept changing under this write; try again")]
    Contended {
        /// The cluster.
        cluster: String,
        /// The environment.
        env: String,
    },
}

/// The name of an environment's gates ConfigMap.
pub fn gates_name(env: &str) -> String {
    format!("tidegate.{env}.gates")
}

fn config_maps(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), NAMESPACE, &crate::configmap_resource())
}

fn api_error(cluster: &str, what: &str, error: kube::Error) -> ClusterError {
    ClusterError::Api {
        cluster: cluster.to_string(),
        what: what.to_string(),
        error,
    }
}

async fn read_object(
    api: &Api<DynamicObject>,
    cluster: &str,
    env: &str,
) -> Result<Option<DynamicObject>, ClusterError> {
    let name = gates_name(env);
    with_retries("get gates", || api.get_opt(&name))
        .await
        .map_err(|e| api_error(cluster, &format!("reading the gates of {env}"), e))
}

fn data_of(object: &DynamicObject) -> Map<String, Value> {
    object.data["data"].as_object().cloned().unwrap_or_default()
}

/// The gates of `env` recorded in this cluster (none when it has no ConfigMap).
pub async fn read_gates(client: &Client, cluster: &str, env: &str) -> Result<Gates, ClusterError> {
    let api = config_maps(client);
    Ok(read_object(&api, cluster, env)
        .await?
        .map(|o| Gates::from_data(&data_of(&o)))
        .unwrap_or_default())
}

/// Records `change` in this cluster's gates of `env`.
pub async fn write_gate(
    client: &Client,
    cluster: &str,
    env: &str,
    change: &GateChange,
) -> Result<(), GatesError> {
    let revision = change.revision();
    if revision.is_empty()
        || revision.len() > 200
        || !revision
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(GatesError::BadRevision(revision.to_string()));
    }
    ensure_namespace(client, cluster, NAMESPACE).await?;
    let api = config_maps(client);
    let name = gates_name(env);
    for _ in 0..CONFLICT_RETRIES {
        let existing = read_object(&api, cluster, env).await?;
        let mut data = existing.as_ref().map(data_of).unwrap_or_default();
        if !change.apply_to(&mut data) {
            return Ok(());
        }
        let mut metadata = json!({
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"tidegate.dev/gates": env},
        });
        let result = match &existing {
            None => {
                let object: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data,
                }))
                .map_err(|e| {
                    api_error(cluster, "building the gates", kube::Error::SerdeError(e))
                })?;
                api.create(&PostParams::default(), &object).await.map(drop)
            }
            Some(object) => {
                // The resourceVersion read is a precondition: a write made
                // in between is a 409 and this is retried on the new data.
                metadata["resourceVersion"] = json!(object.metadata.resource_version);
                let applied = json!({
                    "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data,
                });
                api.patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&applied),
                )
                .await
                .map(drop)
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => {
                return Err(api_error(cluster, &format!("writing the gates of {env}"), e).into());
            }
        }
    }
    Err(GatesError::Contended {
        cluster: cluster.to_string(),
        env: env.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_unreadable_values_still_count() {
        let mut data = Map::new();
        let record = GateRecord::now("ana@laptop", "wave 1 failed");
        assert!(
            GateChange::Quarantine {
                revision: "abc123".into(),
                record: record.clone()
            }
            .apply_to(&mut data)
        );
        assert!(
            GateChange::Approve {
                revision: "abc123".into(),
                wave: 2,
                record: record.clone()
            }
            .apply_to(&mut data)
        );
        data.insert("quarantine.def456".into(), Value::String("not json".into()));
        let gates = Gates::from_data(&data);
        assert_eq!(gates.quarantined["abc123"], record);
        assert_eq!(gates.quarantined["def456"].actor, "");
        assert_eq!(gates.approved[&("abc123".to_string(), 2)], record);
        let lift = GateChange::Unquarantine {
            revision: "abc123".into(),
            record: record.clone(),
        };
        assert!(lift.apply_to(&mut data));
        assert!(!lift.apply_to(&mut data), "lifting twice changes nothing");
        let gates = Gates::from_data(&data);
        assert!(!gates.quarantined.contains_key("abc123"));
        assert_eq!(gates.lifted["abc123"], record);
        // Quarantined again: the lift is gone.
        assert!(
            GateChange::Quarantine {
                revision: "abc123".into(),
                record: record.clone()
            }
            .apply_to(&mut data)
        );
        let gates = Gates::from_data(&data);
        assert!(gates.quarantined.contains_key("abc123"));
        assert!(!gates.lifted.contains_key("abc123"));
    }
}
