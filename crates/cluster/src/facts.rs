//! What clusters say about themselves for Helm's `.Capabilities`: the server
//! version (`GET /version`) and the API versions served (discovery).
//!
//! Asked only for the facts some Helm app of the environment does not
//! declare ([`Environment::helm_facts_needed`]), once per cluster for the
//! life of a [`FactsCache`] (one command), all clusters at once. A cluster
//! that cannot be asked is skipped with a warning naming it: its Helm apps
//! render with the declared values or Helm's defaults, so one dead cluster
//! never blocks a render.

use crate::{ClientFactory, ClusterError, RequestCounter};
use futures::{StreamExt, stream};
use kube::{Client, discovery::Discovery};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Mutex,
    time::Duration,
};
use tidegate_core::environment::{Cluster, Environment, FactsNeeded, HelmCapabilities};

/// How many clusters are asked for their facts at once.
const FACTS_CONCURRENCY: usize = 8;

/// Longest time one cluster may take to report its facts (connecting
/// included) before its Helm apps render without them.
pub const FACTS_TIMEOUT: Duration = Duration::from_secs(15);

/// Cluster facts asked so far, by cluster name. Create one per command.
#[derive(Debug)]
pub struct FactsCache {
    counter: RequestCounter,
    timeout: Duration,
    only: Option<String>,
    known: Mutex<BTreeMap<String, Known>>,
}

#[derive(Debug, Clone, Default)]
struct Known {
    facts: HelmCapabilities,
    asked: FactsNeeded,
    /// Could not be asked: not asked again by this cache.
    failed: bool,
}

impl Default for FactsCache {
    fn default() -> Self {
        FactsCache::new(RequestCounter::default())
    }
}

impl FactsCache {
    /// An empty cache whose clients count their requests in `counter`.
    pub fn new(counter: RequestCounter) -> FactsCache {
        FactsCache {
            counter,
            timeout: FACTS_TIMEOUT,
            only: None,
            known: Mutex::new(BTreeMap::new()),
        }
    }

    /// Waits at most `timeout` for each cluster.
    pub fn with_timeout(mut self, timeout: Duration) -> FactsCache {
        self.timeout = timeout;
        self
    }

    /// Asks only the cluster `name` when it is `Some` (a command working on
    /// one cluster); the others render with the declared values.
    pub fn only_cluster(mut self, name: Option<String>) -> FactsCache {
        self.only = name;
        self
    }

    /// The facts of `environment`'s clusters that its Helm apps need and do
    /// not declare, by cluster name: asked of the clusters (through
    /// `factory`) the first time, from this cache afterwards. Clusters that
    /// could not be asked are left out, with a warning.
    pub async fn gather<F: ClientFactory>(
        &self,
        factory: &F,
        environment: &Environment,
    ) -> BTreeMap<String, HelmCapabilities> {
        let mut needed = environment.helm_facts_needed();
        if let Some(only) = &self.only {
            needed.retain(|name, _| name == only);
        }
        if needed.is_empty() {
            return BTreeMap::new();
        }
        let to_ask: Vec<(&Cluster, FactsNeeded)> = {
            let known = self.lock();
            environment
                .spec
                .clusters
                .iter()
                .filter_map(|cluster| {
                    let need = *needed.get(&cluster.name)?;
                    let have = known.get(&cluster.name).cloned().unwrap_or_default();
                    let ask = FactsNeeded {
                        kube_version: need.kube_version && !have.asked.kube_version,
                        api_versions: need.api_versions && !have.asked.api_versions,
                    };
                    (!have.failed && ask.any()).then_some((&**cluster, ask))
                })
                .collect()
        };
        // Every cluster asked at once, at most FACTS_CONCURRENCY at a time.
        let asking: Vec<_> = to_ask
            .iter()
            .map(|(cluster, ask)| async move {
                let answer = tokio::time::timeout(
                    self.timeout,
                    ask_cluster(factory, cluster, *ask, &self.counter),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "cluster {}: no answer within {}s",
                        cluster.name,
                        self.timeout.as_secs()
                    ))
                });
                (cluster.name.clone(), *ask, answer)
            })
            .collect();
        let answers: Vec<_> = stream::iter(asking)
            .buffer_unordered(FACTS_CONCURRENCY)
            .collect()
            .await;
        let mut known = self.lock();
        for (name, ask, answer) in answers {
            let entry = known.entry(name.clone()).or_default();
            match answer {
                Ok(found) => {
                    if ask.kube_version {
                        entry.facts.kube_version = found.kube_version;
                    }
                    if ask.api_versions {
                        entry.facts.api_versions = found.api_versions;
                    }
                    entry.asked = entry.asked.union(ask);
                }
                Err(error) => {
                    entry.failed = true;
                    tracing::warn!(
                        cluster = %name,
                        "cannot read the version and API versions of cluster {name} for its Helm apps ({error}); rendering them with the declared kubeVersion/apiVersions, else Helm's defaults"
                    );
                }
            }
        }
        needed
            .keys()
            .filter_map(|name| {
                let k = known.get(name)?;
                (!k.failed).then(|| (name.clone(), k.facts.clone()))
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Known>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One cluster's answers to what is asked: one `GET /version`, one
/// discovery (aggregated: `GET /api` and `GET /apis`).
async fn ask_cluster<F: ClientFactory>(
    factory: &F,
    cluster: &Cluster,
    ask: FactsNeeded,
    counter: &RequestCounter,
) -> Result<HelmCapabilities, String> {
    let client = factory
        .client(cluster, counter)
        .await
        .map_err(|e| e.to_string())?;
    let mut found = HelmCapabilities::default();
    if ask.kube_version {
        found.kube_version = Some(server_version(&client, &cluster.name).await?);
    }
    if ask.api_versions {
        found.api_versions = served_api_versions(&client, &cluster.name)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(found)
}

/// The cluster's version as Helm's `--kube-version` takes it (`v1.37.1`).
async fn server_version(client: &Client, cluster: &str) -> Result<String, String> {
    let info = client.apiserver_version().await.map_err(|error| {
        ClusterError::Api {
            cluster: cluster.to_string(),
            what: "reading its version".into(),
            error,
        }
        .to_string()
    })?;
    helm_kube_version(&info.git_version, &info.major, &info.minor).ok_or_else(|| {
        format!(
            "cluster {cluster}: version {:?} (major {:?}, minor {:?}) is not a Kubernetes version",
            info.git_version, info.major, info.minor
        )
    })
}

/// Every API version the cluster serves, as Helm's own discovery lists
/// them: `group/version` and `group/version/Kind` (core: `v1`, `v1/Pod`),
/// sorted.
pub async fn served_api_versions(
    client: &Client,
    cluster: &str,
) -> Result<Vec<String>, ClusterError> {
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .map_err(|error| ClusterError::Api {
            cluster: cluster.to_string(),
            what: "discovering its API versions".into(),
            error,
        })?;
    let mut out = BTreeSet::new();
    for group in discovery.groups() {
        for version in group.versions() {
            let gv = group_version(group.name(), version);
            for (resource, caps) in &group.versioned_resources(version) {
                out.insert(format!("{gv}/{}", resource.kind));
                for (sub, _) in &caps.subresources {
                    if !sub.kind.is_empty() {
                        out.insert(format!("{gv}/{}", sub.kind));
                    }
                }
            }
            out.insert(gv);
        }
    }
    Ok(out.into_iter().collect())
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// The `--kube-version` for a cluster's `/version`: its `gitVersion` when
/// that is a release version (`v1.37.1`, `v1.30.4-eks-a737599`), else
/// `v<major>.<minor>.0` (`minor` may end in `+`, as on EKS); `None` when
/// neither is a Kubernetes version.
pub fn helm_kube_version(git_version: &str, major: &str, minor: &str) -> Option<String> {
    if is_release_version(git_version) {
        let v = git_version.strip_prefix('v').unwrap_or(git_version);
        return Some(format!("v{v}"));
    }
    let major: u32 = major.parse().ok()?;
    let minor: u32 = minor.trim_end_matches('+').parse().ok()?;
    (major > 0).then(|| format!("v{major}.{minor}.0"))
}

/// `v?MAJOR.MINOR.PATCH` (MAJOR > 0) with optional `-pre` and `+build`
/// made of `[0-9A-Za-z.-]`, which Helm's semver parser accepts.
fn is_release_version(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (core, rest) = match v.find(['-', '+']) {
        Some(i) => v.split_at(i),
        None => (v, ""),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = numbers.len() == 3
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let suffix_ok = rest
        .chars()
        .skip(1)
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '+')
        && rest.matches('+').count() <= 1
        && !rest.ends_with(['.', '-', '+']);
    numeric && numbers[0] != "0" && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_versions_are_kept_and_others_fall_back_to_major_minor() {
        assert_eq!(
            helm_kube_version("v1.37.1", "1", "37"),
            Some("v1.37.1".into())
        );
        assert_eq!(
            helm_kube_version("v1.30.4-eks-a737599", "1", "30+"),
            Some("v1.30.4-eks-a737599".into())
        );
        assert_eq!(
            helm_kube_version("v1.29.1-gke.1589018", "1", "29"),
            Some("v1.29.1-gke.1589018".into())
        );
        // A build without version stamping (`go build` of kube-apiserver).
        assert_eq!(
            helm_kube_version("v0.0.0-master+$Format:%H$", "1", "37"),
            Some("v1.37.0".into())
        );
        assert_eq!(
            helm_kube_version("garbage", "1", "30+"),
            Some("v1.30.0".into())
        );
        assert_eq!(helm_kube_version("v0.0.0-master+$Format:%H$", "", ""), None);
        assert_eq!(helm_kube_version("1.2", "0", "1"), None);
    }

    #[test]
    fn group_versions() {
        assert_eq!(group_version("", "v1"), "v1");
        assert_eq!(group_version("apps", "v1"), "apps/v1");
    }
}
