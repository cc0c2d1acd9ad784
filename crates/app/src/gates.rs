//! Quarantines and approvals kept with the clusters (`tidegate.<env>.gates`
//! in `tidegate-system` of every cluster of the environment): read as the
//! union over the clusters that can be reached, written to every one.
//! The local audit trail keeps recording them too (and older records there
//! still count).

use crate::status::CLUSTER_CONCURRENCY;
use futures::{StreamExt, future::BoxFuture, stream};
use kube::Client;
use std::collections::BTreeSet;
use tidegate_cluster::{ClientFactory, GateChange, Gates, RequestCounter};
use tidegate_core::Environment;
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
    let mut out = GatesRead::default();
    for (cluster, result) in on_every_cluster(factory, environment, |client, cluster| async move {
        tidegate_cluster::read_gates(&client, cluster, env)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    {
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
    let mut out = GatesWritten::default();
    for (cluster, result) in on_every_cluster(factory, environment, |client, cluster| async move {
        tidegate_cluster::write_gate(&client, cluster, env, change)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    {
        match result {
            Ok(()) => out.written.push(cluster),
            Err(why) => out.failed.push((cluster, why)),
        }
    }
    out
}

/// Runs `op` with a client of every cluster of `environment` (at most
/// [`CLUSTER_CONCURRENCY`] at once); results in cluster order, a cluster
/// that cannot be reached with why.
async fn on_every_cluster<'a, F, T, Op, Fut>(
    factory: &'a F,
    environment: &'a Environment,
    op: Op,
) -> Vec<(String, Result<T, String>)>
where
    F: ClientFactory,
    Op: Fn(Client, &'a str) -> Fut,
    Fut: Future<Output = Result<T, String>> + Send + 'a,
{
    // The futures are made first: a stream of them holds no closure, so
    // the whole future stays `Send` (for the driver's approvals).
    let calls: Vec<_> = environment
        .spec
        .clusters
        .iter()
        .map(|cluster| {
            let op = &op;
            async move {
                let counter = RequestCounter::default();
                let result = match factory.client(cluster, &counter).await {
                    Ok(client) => op(client, &cluster.name).await,
                    Err(e) => Err(e.to_string()),
                };
                (cluster.name.clone(), result)
            }
        })
        .collect();
    stream::iter(calls)
        .buffered(CLUSTER_CONCURRENCY)
        .collect()
        .await
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

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_cluster::GateRecord;

    #[test]
    fn a_lift_in_the_clusters_lifts_an_older_local_quarantine_and_cluster_quarantines_count() {
        let audit: BTreeSet<String> = ["old".to_string(), "lifted".to_string()].into();
        let mut clusters = Gates::default();
        clusters
            .lifted
            .insert("lifted".into(), GateRecord::now("b@host", "fixed outside"));
        clusters
            .quarantined
            .insert("new".into(), GateRecord::now("a@host", "wave 1 failed"));
        let all = quarantined(audit, &clusters);
        assert_eq!(
            all,
            ["new".to_string(), "old".to_string()].into(),
            "the local quarantine stands unless lifted; the clusters' counts"
        );
    }
}
