//! The journal as a ConfigMap, for the controller: any replica that reaches
//! the cluster holding it can resume a rollout another replica started.
//!
//! Writes use optimistic concurrency: the store remembers the
//! `resourceVersion` it last read or wrote, and a save or remove made with an
//! older one fails with [`JournalError::Conflict`]. A replica that lost
//! leadership while a request was under way therefore cannot overwrite the
//! journal of the replica that took over (fencing by `resourceVersion`).

use super::{JournalError, JournalStore, Journaled, decode, encode};
use futures::future::BoxFuture;
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, PostParams, Preconditions},
    discovery::ApiResource,
};
use serde_json::{Value, json};
use std::sync::Mutex;
use tidegate_cluster::{ClusterError, ensure_namespace, with_retries};
use tidegate_rollout::machine::FleetRollout;

/// The key of the ConfigMap's `data` that holds the journal record.
pub const JOURNAL_KEY: &str = "rollout.json";
/// The largest journal stored: below the API server's 1 MiB object limit,
/// with room for metadata.
pub const MAX_JOURNAL_BYTES: usize = 900 * 1024;
const WRITER: &str = "tidegate.dev/journal-writer";
const ENVIRONMENT: &str = "tidegate.dev/journal-of";

/// A journal kept in the ConfigMap `<namespace>/tidegate-journal-<env>` of one
/// cluster (the controller's management cluster).
pub struct ConfigMapJournal {
    client: Client,
    cluster: String,
    namespace: String,
    name: String,
    environment: String,
    writer: String,
    /// The `resourceVersion` this store last read or wrote (`None`: it has
    /// not seen one).
    version: Mutex<Option<String>>,
}

impl std::fmt::Debug for ConfigMapJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapJournal")
            .field("location", &self.location())
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl ConfigMapJournal {
    /// The journal of `environment` in `namespace` of `cluster` (reached
    /// through `client`), written by `writer` (a replica's identity).
    pub fn new(
        client: Client,
        cluster: &str,
        namespace: &str,
        environment: &str,
        writer: &str,
    ) -> ConfigMapJournal {
        ConfigMapJournal {
            client,
            cluster: cluster.to_string(),
            namespace: namespace.to_string(),
            name: Self::name_of(environment),
            environment: environment.to_string(),
            writer: writer.to_string(),
            version: Mutex::new(None),
        }
    }

    /// The ConfigMap name of an environment's journal.
    pub fn name_of(environment: &str) -> String {
        format!("tidegate-journal-{environment}")
    }

    fn api(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &configmaps())
    }

    fn remembered(&self) -> Option<String> {
        self.version.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn remember(&self, version: Option<String>) {
        if let Ok(mut v) = self.version.lock() {
            *v = version;
        }
    }

    fn cluster_error(&self, what: &str, error: kube::Error) -> JournalError {
        JournalError::Cluster {
            location: self.location(),
            source: ClusterError::Api {
                cluster: self.cluster.clone(),
                what: what.to_string(),
                error,
            },
        }
    }

    fn conflict(&self, current: Option<&Value>) -> JournalError {
        JournalError::Conflict {
            location: self.location(),
            writer: current
                .and_then(|c| c["metadata"]["annotations"][WRITER].as_str())
                .unwrap_or("someone")
                .to_string(),
        }
    }

    fn manifest(
        &self,
        record: &[u8],
        version: Option<&str>,
    ) -> Result<DynamicObject, JournalError> {
        let mut cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {ENVIRONMENT: self.environment},
                "annotations": {WRITER: self.writer},
            },
            "data": {JOURNAL_KEY: String::from_utf8_lossy(record)},
        });
        if let Some(v) = version {
            cm["metadata"]["resourceVersion"] = Value::String(v.to_string());
        }
        serde_json::from_value(cm).map_err(|e| {
            self.cluster_error("building the journal ConfigMap", kube::Error::SerdeError(e))
        })
    }

    async fn get(&self) -> Result<Option<Value>, JournalError> {
        let api = self.api();
        let found = with_retries("get journal", || api.get_opt(&self.name))
            .await
            .map_err(|e| self.cluster_error("reading the rollout journal", e))?;
        Ok(found.and_then(|o| serde_json::to_value(o).ok()))
    }

    async fn create(&self, object: &DynamicObject) -> Result<DynamicObject, JournalError> {
        let api = self.api();
        let created = match api.create(&PostParams::default(), object).await {
            // The namespace does not exist yet.
            Err(kube::Error::Api(s)) if s.code == 404 => {
                ensure_namespace(&self.client, &self.cluster, &self.namespace)
                    .await
                    .map_err(|source| JournalError::Cluster {
                        location: self.location(),
                        source,
                    })?;
                api.create(&PostParams::default(), object).await
            }
            other => other,
        };
        created.map_err(|e| self.cluster_error("creating the rollout journal", e))
    }

    async fn save_record(&self, record: Vec<u8>) -> Result<(), JournalError> {
        if record.len() > MAX_JOURNAL_BYTES {
            return Err(JournalError::TooLarge {
                location: self.location(),
                bytes: record.len(),
                limit: MAX_JOURNAL_BYTES,
            });
        }
        let api = self.api();
        let written = match self.remembered() {
            // Replace exactly what this run last saw: a 409 means another
            // writer came in between.
            Some(version) => {
                let object = self.manifest(&record, Some(&version))?;
                match api
                    .replace(&self.name, &PostParams::default(), &object)
                    .await
                {
                    Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                        let current = self.get().await?;
                        return Err(self.conflict(current.as_ref()));
                    }
                    other => other,
                }
                .map_err(|e| self.cluster_error("writing the rollout journal", e))?
            }
            // A new rollout (it holds the environment lock): create the
            // journal, or replace one a finished or abandoned run left.
            None => match self.create(&self.manifest(&record, None)?).await {
                Err(JournalError::Cluster {
                    source:
                        ClusterError::Api {
                            error: kube::Error::Api(s),
                            ..
                        },
                    ..
                }) if s.code == 409 => {
                    let current = self.get().await?;
                    let version = current
                        .as_ref()
                        .and_then(|c| c["metadata"]["resourceVersion"].as_str())
                        .map(str::to_string);
                    let object = self.manifest(&record, version.as_deref())?;
                    match api
                        .replace(&self.name, &PostParams::default(), &object)
                        .await
                    {
                        Err(kube::Error::Api(s)) if s.code == 409 => {
                            let current = self.get().await?;
                            return Err(self.conflict(current.as_ref()));
                        }
                        other => other,
                    }
                    .map_err(|e| self.cluster_error("writing the rollout journal", e))?
                }
                other => other?,
            },
        };
        self.remember(written.metadata.resource_version);
        Ok(())
    }
}

impl JournalStore for ConfigMapJournal {
    fn location(&self) -> String {
        format!(
            "ConfigMap {}/{} in cluster {}",
            self.namespace, self.name, self.cluster
        )
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<Journaled>, JournalError>> {
        Box::pin(async move {
            let Some(current) = self.get().await? else {
                self.remember(None);
                return Ok(None);
            };
            self.remember(
                current["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_string),
            );
            let Some(record) = current["data"][JOURNAL_KEY].as_str() else {
                return Ok(None);
            };
            decode(record.as_bytes())
                .map(Some)
                .map_err(|source| JournalError::Corrupt {
                    location: self.location(),
                    source,
                })
        })
    }

    fn save<'a>(
        &'a self,
        started_ms: i64,
        operation: Option<u64>,
        machine: &'a FleetRollout,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let record =
                encode(started_ms, operation, machine).map_err(|source| JournalError::Corrupt {
                    location: self.location(),
                    source,
                })?;
            self.save_record(record).await
        })
    }

    fn remove(&self) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            let params = DeleteParams {
                preconditions: self.remembered().map(|v| Preconditions {
                    resource_version: Some(v),
                    uid: None,
                }),
                ..Default::default()
            };
            match self.api().delete(&self.name, &params).await {
                Ok(_) => {
                    self.remember(None);
                    Ok(())
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.remember(None);
                    Ok(())
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let current = self.get().await?;
                    Err(self.conflict(current.as_ref()))
                }
                Err(e) => Err(self.cluster_error("removing the rollout journal", e)),
            }
        })
    }
}

fn configmaps() -> ApiResource {
    tidegate_cluster::configmap_resource()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> ConfigMapJournal {
        // A client that is never called: these tests check pure parts.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        ConfigMapJournal::new(client, "mgmt", "tidegate-system", "prod", "replica-a")
    }

    #[tokio::test]
    async fn the_journal_configmap_names_its_environment_and_writer() {
        let s = store();
        assert_eq!(
            s.location(),
            "ConfigMap tidegate-system/tidegate-journal-prod in cluster mgmt"
        );
        let cm =
            serde_json::to_value(s.manifest(b"{}", Some("12")).expect("manifest")).expect("json");
        assert_eq!(cm["metadata"]["annotations"][WRITER], "replica-a");
        assert_eq!(cm["metadata"]["labels"][ENVIRONMENT], "prod");
        assert_eq!(cm["metadata"]["resourceVersion"], "12");
        assert_eq!(cm["data"][JOURNAL_KEY], "{}");
    }

    #[tokio::test]
    async fn a_journal_too_large_for_a_configmap_is_refused_before_any_request() {
        let err = store()
            .save_record(vec![b' '; MAX_JOURNAL_BYTES + 1])
            .await
            .expect_err("too large");
        assert!(matches!(err, JournalError::TooLarge { .. }), "{err}");
    }
}
