//! An environment loop's part in sharding by cluster ([`crate::split`]):
//! which clusters it watches, a watcher's drift records, the owner's
//! corrections of recorded drift.

use super::{EnvironmentLoop, Rolled, short};
use crate::{
    Application, Loaded,
    drift::{Drift, DriftKey},
    split::{DriftRecord, Following, Role, Split},
};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};
use tidegate_audit::Trigger as AuditTrigger;
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

/// What the loop follows besides Git and its watches, with `--shard`.
pub(super) struct Sharded {
    /// The live members (a watcher: its clusters follow them).
    members: Option<watch::Receiver<BTreeSet<String>>>,
    /// The drift records of the environment (the owner, when environments
    /// may be split).
    records: Option<Following>,
    /// When to look at the records again after a correction could not run.
    retry_at: Option<Instant>,
}

/// What changed.
pub(super) enum ShardChange {
    /// The live members.
    Members,
    /// The drift records (or their retry is due).
    Records,
}

impl Sharded {
    /// The next change; pends forever when there is nothing to follow.
    pub(super) async fn next(&mut self) -> Option<ShardChange> {
        let Sharded {
            members,
            records,
            retry_at,
        } = self;
        let members = async {
            if let Some(m) = members.as_mut()
                && m.changed().await.is_ok()
            {
                return ShardChange::Members;
            }
            std::future::pending().await
        };
        let records = async {
            if let Some(f) = records.as_mut()
                && f.records.changed().await.is_ok()
            {
                return ShardChange::Records;
            }
            std::future::pending().await
        };
        let retry = async {
            match *retry_at {
                Some(at) => {
                    tokio::time::sleep_until(at).await;
                    ShardChange::Records
                }
                None => std::future::pending().await,
            }
        };
        Some(tokio::select! {
            c = members => c,
            c = records => c,
            c = retry => c,
        })
    }
}

impl<A: Application> EnvironmentLoop<A> {
    /// The loop's part in sharding (`--shard`): see [`crate::split`].
    pub fn with_split(mut self, split: Split) -> Self {
        self.split = Some(split);
        self
    }

    /// True for a read-only watcher of a split environment.
    pub(super) fn is_watcher(&self) -> bool {
        self.split.as_ref().is_some_and(|s| s.role == Role::Watcher)
    }

    /// What to follow for this loop's role.
    pub(super) fn sharded(&self) -> Sharded {
        let split = self.split.as_ref().filter(|s| s.context.above.is_some());
        Sharded {
            members: split
                .filter(|s| s.role == Role::Watcher)
                .map(|s| s.context.members.clone()),
            records: split
                .filter(|s| s.role == Role::Owner)
                .map(|s| s.context.records.follow(&self.name)),
            retry_at: None,
        }
    }

    /// The clusters of `current` this loop watches and drift-checks: every
    /// cluster without sharding by cluster.
    pub(super) fn watched(&self, current: &Loaded) -> BTreeSet<String> {
        let clusters: Vec<String> = current
            .environment
            .spec
            .clusters
            .iter()
            .map(|c| c.name.clone())
            .collect();
        match &self.split {
            Some(split) => split.watched(&self.name, &clusters),
            None => clusters.into_iter().collect(),
        }
    }

    /// Stops watching the clusters this loop no longer watches (their
    /// connections and caches dropped); returns the clusters it watches.
    pub(super) fn unwatch_others(&mut self, current: &Loaded) -> BTreeSet<String> {
        let watched = self.watched(current);
        if self.split.is_none() {
            return watched;
        }
        let gone: Vec<String> = self
            .watches
            .keys()
            .filter(|c| !watched.contains(*c))
            .cloned()
            .collect();
        for cluster in gone {
            self.watches.remove(&cluster);
            self.episodes.close_cluster(&cluster);
            if let Ok(mut all) = self.engines.lock() {
                all.remove(&(self.name.clone(), cluster));
            }
        }
        watched
    }

    /// Tells the replica's tally what this loop watches.
    pub(super) fn tally(&self, watched: &BTreeSet<String>) {
        if let Some(split) = &self.split {
            split
                .context
                .tally
                .set(&self.name, split.role, watched.clone());
        }
    }

    /// A watcher follows the head: what it judges drift against (a cluster
    /// running another revision is not drift), and the kinds it watches.
    pub(super) async fn follow(&mut self, loaded: Loaded) {
        if self
            .current
            .as_ref()
            .is_none_or(|c| c.revision != loaded.revision)
        {
            info!(revision = %short(&loaded.revision), "watching the environment's clusters of this replica at the head revision");
            self.current = Some(Arc::new(loaded));
        }
        if self.ensure_watches().await {
            self.survey().await;
            self.log_watching();
        }
    }

    /// Reacts to a change of the live members or of the drift records.
    pub(super) async fn on_shard_change(&mut self, change: ShardChange, sharded: &mut Sharded) {
        match change {
            ShardChange::Members => self.reassign().await,
            ShardChange::Records => {
                let records: Vec<DriftRecord> = sharded
                    .records
                    .as_ref()
                    .map(|f| f.records.borrow().values().cloned().collect())
                    .unwrap_or_default();
                sharded.retry_at = self
                    .correct_recorded(records)
                    .await
                    .map(|wait| Instant::now() + wait);
            }
        }
    }

    /// A watcher whose share of the clusters changed: stops watching those
    /// it lost, starts watching those it gained and checks every app of
    /// these (what changed before their watches listed raised no event).
    async fn reassign(&mut self) {
        let Some(current) = self.current.clone() else {
            return;
        };
        let before: BTreeSet<String> = self
            .watches
            .iter()
            .filter(|(_, w)| w.kinds_watched() > 0)
            .map(|(c, _)| c.clone())
            .collect();
        if self.watched(&current) == before {
            return;
        }
        let started = self.ensure_watches().await;
        let after = self.watched(&current);
        let gained: BTreeSet<String> = after.difference(&before).cloned().collect();
        info!(gained = ?gained, watching = ?after, "the live replicas changed: this replica's clusters of the environment changed");
        if started || !gained.is_empty() {
            self.survey_clusters(&current, &gained).await;
            self.log_watching();
        }
    }

    /// A watcher found drift with `selfHeal`: it records it for the
    /// environment's owner instead of writing to the cluster. Returns when
    /// to check again when the record could not be written.
    pub(super) async fn record_drift(
        &mut self,
        key: &DriftKey,
        revision: &str,
        drift: &Drift,
    ) -> Option<Duration> {
        let records = &self.split.as_ref()?.context.records;
        match records
            .record(
                &self.name,
                &key.cluster,
                &key.app,
                revision,
                &drift.summary(),
            )
            .await
        {
            Ok(()) => {
                info!(cluster = %key.cluster, app = %key.app, fields = %drift.summary(), "drift: recorded for the environment's owner to correct (selfHeal; this replica only watches)");
                None
            }
            Err(e) => {
                let wait = self.retry_wait(&key.cluster);
                warn!(cluster = %key.cluster, app = %key.app, error = %e, retry_in = ?wait, "recording drift for the environment's owner failed; retrying");
                Some(wait)
            }
        }
    }

    /// The owner corrects the drift the watchers recorded: one rollout of
    /// the current revision (the drift-correction path), then the records
    /// seen before it are deleted. Records of another revision are stale
    /// (a rollout since replaced what they judged) and deleted. Returns
    /// when to try again when the rollout could not run.
    async fn correct_recorded(&mut self, records: Vec<DriftRecord>) -> Option<Duration> {
        if records.is_empty() {
            return None;
        }
        let Some(current) = self.current.clone() else {
            // Not loaded yet: look again soon.
            return Some(Duration::from_secs(1));
        };
        let split = self.split.clone()?;
        let (fresh, stale): (Vec<DriftRecord>, Vec<DriftRecord>) = records
            .into_iter()
            .partition(|r| r.revision == current.revision);
        split.context.records.clear(&stale).await;
        if fresh.is_empty() {
            return None;
        }
        if !current.environment.spec.sync.self_heal {
            split.context.records.clear(&fresh).await;
            return None;
        }
        let mut found: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in &fresh {
            found
                .entry(r.cluster.as_str())
                .or_default()
                .push(format!("{} (by {})", r.app, r.replica));
        }
        info!(drift = ?found, "drift recorded by the watching replicas: correcting it through the fleet rollout (selfHeal)");
        match self.rollout(&current, AuditTrigger::Drift, None).await {
            Rolled::Done => {
                for r in &fresh {
                    self.episodes.close_cluster(&r.cluster);
                }
                split.context.records.clear(&fresh).await;
                None
            }
            Rolled::Skipped(_) | Rolled::Retry => Some(self.retry_wait(&fresh[0].cluster)),
            Rolled::Unreachable(wait) => Some(wait),
        }
    }
}
