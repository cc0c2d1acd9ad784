//! Expanding an environment's `discover:` entries into the clusters the
//! clouds report, before anything is rendered.

use crate::{CloudError, CloudFactory, DiscoveredCluster, TokenSource};
use std::{collections::BTreeMap, sync::Arc};
use tidegate_core::{
    Diagnostic, Diagnostics, Environment,
    environment::{Cloud, Discover, FoundCluster},
};

/// What one entry found, with the token source of each cluster.
type Found = Vec<(DiscoveredCluster, Arc<dyn TokenSource>)>;

impl CloudFactory {
    /// Replaces every `discover:` entry of `env` by the clusters its cloud
    /// reports (see [`Environment::add_discovered`]), and remembers their
    /// endpoints so the first connection does not describe them again.
    /// Returns how many clusters were discovered. Every problem comes back at
    /// once, at the entry's line of `file`; on error `env` is unchanged.
    pub async fn discover(&self, env: &mut Environment, file: &str) -> Result<usize, Diagnostics> {
        let entries = env.spec.clusters.discover().to_vec();
        if entries.is_empty() {
            return Ok(0);
        }
        let span = tracing::info_span!("discover", environment = %env.metadata.name);
        let _guard = span.enter();
        let mut problems = Diagnostics::default();
        let mut found: Vec<Found> = Vec::new();
        for entry in &entries {
            match self.list(&entry.discover).await {
                Ok(clusters) => {
                    tracing::info!(
                        scope = %entry.discover.scope(),
                        found = clusters.len(),
                        "discovered clusters"
                    );
                    found.push(clusters);
                }
                Err(e) => {
                    problems.push(
                        Diagnostic::new(format!("discovery failed: {e}"))
                            .at(file, entry.line())
                            .help("fix the cloud access, or list the clusters by name instead of `discover`"),
                    );
                    found.push(Vec::new());
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let reported: Vec<Vec<FoundCluster>> = found
            .iter()
            .map(|clusters| clusters.iter().map(|(c, _)| found_cluster(c)).collect())
            .collect();
        let before = env.spec.clusters.len();
        env.add_discovered(file, &reported)?;
        // Remember endpoint, CA and token source of every cluster added.
        let mut by_identity: BTreeMap<String, _> = BTreeMap::new();
        for ((entry, clusters), reported) in entries.iter().zip(found).zip(&reported) {
            for ((described, source), f) in clusters.into_iter().zip(reported) {
                if let Some(id) = entry.cluster(f).ok().and_then(|c| c.provider.cloud_id()) {
                    by_identity.insert(id, (described, source));
                }
            }
        }
        for cluster in env.spec.clusters.iter() {
            let id = cluster.provider.cloud_id().unwrap_or_default();
            if let Some((described, source)) = by_identity.remove(&id) {
                self.remember(&cluster.name, described, source);
            }
        }
        Ok(env.spec.clusters.len() - before)
    }

    /// Every matching cluster of one entry's cloud, with its token source.
    async fn list(&self, d: &Discover) -> Result<Found, CloudError> {
        Ok(match d.provider {
            Cloud::Eks => {
                let region = d.region.as_deref().unwrap_or_default();
                let eks = self.eks(region, d.role_arn.as_deref()).await?;
                eks.list(&d.tags)
                    .await?
                    .into_iter()
                    .map(|c| {
                        let source = eks.token_source(&c.name);
                        (c, source)
                    })
                    .collect()
            }
            Cloud::Aks => {
                let subscription = d.subscription_id.as_deref().unwrap_or_default();
                let aks = self
                    .aks(subscription, d.credential.unwrap_or_default())
                    .await?;
                aks.list(d.resource_group.as_deref(), &d.tags)
                    .await?
                    .into_iter()
                    .map(|c| (c, aks.token_source()))
                    .collect()
            }
            Cloud::Gke => {
                let project = d.project.as_deref().unwrap_or_default();
                let gke = self.gke(project).await?;
                gke.list(d.gke_location(), &d.tags)
                    .await?
                    .into_iter()
                    .map(|c| (c, gke.token_source()))
                    .collect()
            }
        })
    }
}

fn found_cluster(c: &DiscoveredCluster) -> FoundCluster {
    FoundCluster {
        name: c.name.clone(),
        location: c.location.clone(),
        resource_group: c.resource_group.clone(),
        tags: c.tags.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests;
