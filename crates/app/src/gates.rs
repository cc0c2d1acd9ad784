//! Quarantines and approvals kept with the clusters (`tidegate.<env>.gates`
//! in `tidegate-system` of every cluster of the environment): read as the
//! union over the clusters that can be reached, written to every one.
//! The local audit trail keeps recording them too (and older records there
//! still count).

use crate::status::CLUSTER_CONCURRENCY;
use futures::{StreamExt, future::BoxFuture, stream};
use std::collections::BTreeSet;
use tidegate_cluster::{ClientFactory, GateChange, Gates, RequestCounter};
use tidegate_core::{Environment, environment::Cluster};
use tidegate_fleet::{ApprovalError, Approvals};

/// The gates read from an environment's clusters.
#[derive(Debug, Clone, Default)]
pub struct GatesRead {
    /// The union of every readable cluster's gates.
    pub gates: Gates,
    /// Clusters that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
}

/// Where a gate was written.
#[derive(Debug, Clone, Default)]
pub struct GatesWritten {
    /// Clusters that record it now.
    pub written: Vec<String>,
    /// Clusters that could not be written, with why.
    pub failed: Vec<(String, String)>,
}

/// Reads the gates of `environment` from each of its clusters (at most
/// [`CLUSTER_CONCURRENCY`] at once): a gate recorded in any one counts.
pub async fn read_gates<F: ClientFactory>(factory: &F, environment: &Environment) -> GatesRead {
    let env = &environment.metadata.name;
    let results: Vec<(String, Result<Gates, String>)> =
        // The futures are made first: a stream of them holds no closure, so
        // the whole future stays `Send` (for the driver's approvals).
        stream::iter(
            environment
                .spec
                .clusters
                .iter()
                .map(|cluster| read_one(factory, cluster, env))
                .collect::<Vec<_>>(),
        )
        .buffered(CLUSTER_CONCURRENCY)
            .collect()
            .await;
    let mut out = GatesRead::default();
    for (cluster, result) in results {
        match result {
            Ok(gates) => out.gates.merge(gates),
            Err(why) => out.unreadable.push((cluster, why)),
        }
    }
    out
}

/// Records `change` in every cluster of `environment` that can be reached.
pub async fn write_gates<F: ClientFactory>(
    factory: &F,
    environment: &Environment,
    change: &GateChange,
) -> GatesWritten {
    let env = &environment.metadata.name;
    let results: Vec<(String, Result<(), String>)> = stream::iter(
        environment
            .spec
            .clusters
            .iter()
            .map(|cluster| write_one(factory, cluster, env, change))
            .collect::<Vec<_>>(),
    )
    .buffered(CLUSTER_CONCURRENCY)
    .collect()
    .await;
    let mut out = GatesWritten::default();
    for (cluster, result) in results {
        match result {
            Ok(()) => out.written.push(cluster),
            Err(why) => out.failed.push((cluster, why)),
        }
    }
    out
}

async fn read_one<F: ClientFactory>(
    factory: &F,
    cluster: &Cluster,
    env: &str,
) -> (String, Result<Gates, String>) {
    let read = async {
        let client = factory
            .client(cluster, &RequestCounter::default())
            .await
            .map_err(|e| e.to_string())?;
        tidegate_cluster::read_gates(&client, &cluster.name, env)
            .await
            .map_err(|e| e.to_string())
    };
    (cluster.name.clone(), read.await)
}

async fn write_one<F: ClientFactory>(
    factory: &F,
    cluster: &Cluster,
    env: &str,
    change: &GateChange,
) -> (String, Result<(), String>) {
    let write = async {
        let client = factory
            .client(cluster, &RequestCounter::default())
            .await
            .map_err(|e| e.to_string())?;
        tidegate_cluster::write_gate(&client, &cluster.name, env, change)
            .await
            .map_err(|e| e.to_string())
    };
    (cluster.name.clone(), write.await)
}

/// Revisions quarantined now: those of the local audit trail (older
/// records) unless the clusters say the quarantine was lifted, and those
/// recorded in any cluster.
pub fn quarantined(audit: BTreeSet<String>, clusters: &Gates) -> BTreeSet<String> {
    let mut all: BTreeSet<String> = audit
        .into_iter()
        .filter(|r| !clusters.lifted.contains_key(r))
        .collect();
    all.extend(clusters.quarantined.keys().cloned());
    all
}

/// Approvals recorded in the environment's clusters (by any machine) or in
/// the local audit trail.
pub struct ClusterApprovals<'a, F: ClientFactory> {
    /// Reaches the clusters.
    pub factory: &'a F,
    /// The environment (its clusters).
    pub environment: &'a Environment,
    /// The local audit trail's approvals (older records).
    pub audit: crate::AuditApprovals,
}

impl<F: ClientFactory> Approvals for ClusterApprovals<'_, F> {
    fn approved(&self, wave: u32) -> BoxFuture<'_, Result<bool, ApprovalError>> {
        Box::pin(async move {
            if self.audit.approved_in_audit(wave)? {
                return Ok(true);
            }
            let read = read_gates(self.factory, self.environment).await;
            let key = (self.audit.revision.clone(), wave);
            if read.gates.approved.contains_key(&key) {
                return Ok(true);
            }
            if read.unreadable.len() == self.environment.spec.clusters.len() {
                return Err(ApprovalError::Unreadable {
                    clusters: read.unreadable.into_iter().map(|(c, _)| c).collect(),
                });
            }
            Ok(false)
        })
    }
}
