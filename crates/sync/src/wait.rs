//! Waiting for applied objects to become healthy.

use crate::{Engine, Progress, SyncError};
use futures::StreamExt;
use serde::Serialize;
use std::time::{Duration, Instant};
use tidegate_cluster::Resolved;
use tidegate_core::ObjectKey;
use tidegate_health::{CheckSource, Health, HealthStatus};

/// The health of one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectHealth {
    /// The object.
    pub key: ObjectKey,
    /// Its health.
    pub health: Health,
    /// The check that decided it (built-in, a Lua file, a CEL expression).
    pub check: CheckSource,
}

/// Health of a set of objects at the end of a wait.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// Every object's health.
    pub objects: Vec<ObjectHealth>,
    /// True when every object was Healthy (or Suspended) before the deadline.
    pub healthy: bool,
    /// How long the wait took.
    pub waited: Duration,
}

impl HealthReport {
    /// The worst status among the objects (Healthy when there are none).
    pub fn worst(&self) -> HealthStatus {
        self.objects
            .iter()
            .map(|o| o.health.status)
            .max()
            .unwrap_or(HealthStatus::Healthy)
    }
}

impl Engine {
    /// Assesses the health of every object from one read per kind (see
    /// [`Engine::health_of`]); a missing object is Missing.
    pub async fn health(
        &self,
        objects: &[(ObjectKey, Resolved)],
    ) -> Result<Vec<ObjectHealth>, SyncError> {
        let live = self.read_live(objects, self.environment.as_deref()).await?;
        Ok(self.assess(objects, &live))
    }

    /// The worst health of `keys` (Healthy when there are none), judged
    /// from `live` for the keys in `read` (a plan's [`Plan::read`](crate::Plan::read) and
    /// [`Plan::live`](crate::Plan::live)) and read (one read per kind)
    /// for the others.
    pub async fn health_from(
        &self,
        keys: &[(ObjectKey, String)],
        read: &std::collections::BTreeSet<ObjectKey>,
        live: &crate::LiveMap,
    ) -> Result<HealthStatus, SyncError> {
        let resolved = self.resolve_all(keys).await?;
        let (known, other): (Vec<_>, Vec<_>) =
            resolved.into_iter().partition(|(k, _)| read.contains(k));
        let mut all = self.assess(&known, live);
        if !other.is_empty() {
            all.extend(self.health(&other).await?);
        }
        Ok(all
            .iter()
            .map(|h| h.health.status)
            .max()
            .unwrap_or(HealthStatus::Healthy))
    }

    /// The health of `objects` as found in `live` (absent: missing).
    fn assess(
        &self,
        objects: &[(ObjectKey, Resolved)],
        live: &crate::LiveMap,
    ) -> Vec<ObjectHealth> {
        let now = tidegate_health::Timestamp::now();
        let context = self.health_checks.context(self.provider, Some(now));
        objects
            .iter()
            .map(|(key, resolved)| {
                let context = tidegate_health::Context {
                    status_subresource: Some(resolved.status_subresource),
                    ..context.clone()
                };
                let verdict = self.health_checks.assess(
                    &context,
                    &key.group,
                    &key.kind,
                    live.get(key).map(|v| &**v),
                );
                ObjectHealth {
                    key: key.clone(),
                    health: verdict.health,
                    check: verdict.check,
                }
            })
            .collect()
    }

    /// The worst health of these objects (key, apiVersion), Healthy when
    /// there are none, judged by the engine's health checks. One read per
    /// kind: a LIST by label (this engine's environment's objects, see
    /// [`Engine::with_environment`]), or a GET when the kind has one object;
    /// objects the LIST does not return are fetched by GET, and one that
    /// does not exist is Missing. Kinds the cluster does not serve are
    /// skipped.
    pub async fn health_of(&self, keys: &[(ObjectKey, String)]) -> Result<HealthStatus, SyncError> {
        if keys.is_empty() {
            return Ok(HealthStatus::Healthy);
        }
        let resolved = self.resolve_all(keys).await?;
        Ok(self
            .health(&resolved)
            .await?
            .iter()
            .map(|h| h.health.status)
            .max()
            .unwrap_or(HealthStatus::Healthy))
    }

    /// Polls every second until all `objects` are Healthy or Suspended, or
    /// `deadline` passes; reports progress after each poll.
    pub async fn wait_healthy(
        &self,
        objects: &[(ObjectKey, Resolved)],
        deadline: Duration,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<HealthReport, SyncError> {
        let start = Instant::now();
        loop {
            let health = self.health(objects).await?;
            let ok = |h: &ObjectHealth| {
                matches!(
                    h.health.status,
                    HealthStatus::Healthy | HealthStatus::Suspended
                )
            };
            let healthy = health.iter().filter(|h| ok(h)).count();
            progress(Progress::Waiting {
                healthy,
                total: health.len(),
            });
            if healthy == health.len() || start.elapsed() >= deadline {
                return Ok(HealthReport {
                    healthy: healthy == health.len(),
                    objects: health,
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Resolves the kinds of `keys` (those the cluster serves).
    pub async fn resolve_all(
        &self,
        objects: &[(ObjectKey, String)],
    ) -> Result<Vec<(ObjectKey, Resolved)>, SyncError> {
        let mut out = Vec::new();
        for (key, api_version) in objects {
            if let Some(r) = self.resolver.resolve(api_version, &key.kind).await? {
                out.push((key.clone(), r));
            }
        }
        Ok(out)
    }
}

impl Engine {
    /// Records `revision` as the last Healthy one for every app of the
    /// environment in this cluster (what a rollback returns to).
    pub async fn mark_healthy(
        &self,
        environment: &str,
        apps: &[String],
        revision: &str,
    ) -> Result<(), SyncError> {
        // Apps side by side (as many as applies); the first failure is
        // returned once the writes in flight have ended.
        let marks: Vec<_> = apps
            .iter()
            .map(|app| {
                crate::inventory::mark_healthy(
                    &self.client,
                    &self.cluster,
                    environment,
                    app,
                    revision,
                )
            })
            .collect();
        let done: Vec<Result<(), tidegate_cluster::ClusterError>> = futures::stream::iter(marks)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for result in done {
            result?;
        }
        Ok(())
    }

    /// The inventories of an environment in this cluster (revision applied,
    /// last healthy revision, objects), one per app.
    pub async fn inventories(&self, environment: &str) -> Result<Vec<crate::Inventory>, SyncError> {
        Ok(crate::inventory::read_all(&self.client, &self.cluster, environment).await?)
    }
}
