//! Keeping the environment lock while a rollout runs: a guard that renews
//! the Lease in every cluster where the rollout holds it and reports its
//! loss (someone else holds it, or it went unrenewed for longer than it
//! lasts). The driver issues no further command once it is lost.

use crate::LockLoss;
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tidegate_cluster::{Holder, LeaseError, acquire_lease};
use tokio::sync::watch;
use tracing::warn;

/// Where the lock was lost, and how.
pub(crate) type Lost = Option<(String, LockLoss)>;

/// Renews the lock until dropped; see [`Renewal::lost`].
pub(crate) struct Renewal {
    task: tokio::task::JoinHandle<()>,
    lost: watch::Receiver<Lost>,
}

impl Renewal {
    /// Renews the Lease `name` every `ttl / 3` in the clusters listed in
    /// `held` (read at each round, so clusters locked late are renewed too).
    pub(crate) fn spawn(
        clients: Vec<(String, kube::Client)>,
        held: Arc<Mutex<Vec<String>>>,
        name: String,
        holder: Holder,
        ttl: Duration,
    ) -> Renewal {
        let (report, lost) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut renewed: BTreeMap<String, Instant> = BTreeMap::new();
            loop {
                tokio::time::sleep(ttl / 3).await;
                let now_held = held.lock().map(|l| l.clone()).unwrap_or_default();
                let rounds = clients.iter().filter(|(c, _)| now_held.contains(c)).map(
                    |(cluster, client)| {
                        let (name, holder) = (&name, &holder);
                        async move {
                            let result =
                                acquire_lease(client, cluster, name, holder, ttl, false).await;
                            (cluster, result)
                        }
                    },
                );
                for (cluster, result) in futures::future::join_all(rounds).await {
                    let since = *renewed.entry(cluster.clone()).or_insert_with(Instant::now);
                    let loss = match result {
                        Ok(()) => {
                            renewed.insert(cluster.clone(), Instant::now());
                            None
                        }
                        Err(LeaseError::Held { holder: other, .. }) => {
                            Some(LockLoss::TakenBy(other))
                        }
                        Err(LeaseError::Cluster(e)) if since.elapsed() >= ttl => {
                            Some(LockLoss::NotRenewed {
                                failing_for: since.elapsed(),
                                error: e.to_string(),
                            })
                        }
                        Err(LeaseError::Cluster(e)) => {
                            warn!(%cluster, error = %e, "renewing the rollout lock failed; retrying");
                            None
                        }
                    };
                    if let Some(loss) = loss {
                        warn!(%cluster, %loss, "the rollout lock was lost");
                        // Nobody listening only means the rollout ended.
                        let _ = report.send(Some((cluster.clone(), loss)));
                        return;
                    }
                }
            }
        });
        Renewal { task, lost }
    }

    /// The loss, once it happened.
    pub(crate) fn lost(&self) -> Lost {
        self.lost.borrow().clone()
    }

    /// A receiver that changes once the lock is lost (for `select!`).
    pub(crate) fn watch(&self) -> watch::Receiver<Lost> {
        self.lost.clone()
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}
