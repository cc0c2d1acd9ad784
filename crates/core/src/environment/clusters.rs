//! `spec.clusters`: clusters named one by one, and `discover:` entries that
//! stand for every cloud cluster matching a filter.
//!
//! Discovery needs the cloud, so it happens outside this crate (crate
//! `cloud`); this module holds the entries, turns each cluster a cloud
//! reports ([`FoundCluster`]) into an environment [`Cluster`], and puts the
//! results in place ([`Environment::add_discovered`]), in a stable order:
//! every entry's clusters sorted by name, at the entry's position in the list.

use super::{
    AksCluster, AzureCredential, Cluster, EksCluster, Environment, GkeCluster, KubeconfigRef,
    Located, Provider, parse::is_dns_label,
};
use crate::{Diagnostic, Diagnostics};
use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::SerializeSeq};
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    ops::Deref,
};

/// The tag (EKS, AKS) or resource label (GKE) read for a discovered
/// cluster's wave unless `waveTag` names another. GKE label keys allow
/// neither `/` nor `.`, so the default is a plain key every cloud accepts.
pub const DEFAULT_WAVE_TAG: &str = "tidegate-wave";

/// `spec.clusters`: the named clusters (after discovery: every cluster) and
/// the `discover:` entries not expanded yet. Dereferences to the clusters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterList {
    named: Vec<Located<Cluster>>,
    discover: Vec<Located<DiscoverEntry>>,
    /// Entries that are neither a cluster nor a discovery: (line, message, help).
    malformed: Vec<(u64, String, &'static str)>,
}

impl ClusterList {
    /// A list of clusters built in code (no discovery).
    pub fn new(clusters: Vec<Located<Cluster>>) -> ClusterList {
        ClusterList {
            named: clusters,
            ..ClusterList::default()
        }
    }

    /// The `discover:` entries still to be expanded.
    pub fn discover(&self) -> &[Located<DiscoverEntry>] {
        &self.discover
    }

    /// The named clusters with `discover` entry `i` replaced by
    /// `per_entry[i]`, at the entry's place in the file.
    fn expanded(&self, per_entry: Vec<Vec<Located<Cluster>>>) -> ClusterList {
        let mut named = self.named.clone();
        // From the last entry, so that earlier positions stay valid.
        for (entry, clusters) in self.discover.iter().zip(per_entry).rev() {
            let at = entry.position.min(named.len());
            named.splice(at..at, clusters);
        }
        ClusterList::new(named)
    }

    pub(super) fn malformed(&self) -> &[(u64, String, &'static str)] {
        &self.malformed
    }

    /// Every kubeconfig `file:` the repository names, as (line, who names it,
    /// the file): refused, since a kubeconfig chooses credentials and runs
    /// its `exec` plugins.
    pub(super) fn kubeconfig_files(&self) -> Vec<(u64, String, &str)> {
        let named = self.named.iter().flat_map(|c| {
            let provider = match &c.provider {
                Provider::Kubeconfig(k) => Some(k),
                _ => None,
            };
            [provider, c.kubeconfig.as_ref()]
                .into_iter()
                .flatten()
                .map(move |k| (c.line, format!("cluster {}", c.name), k))
        });
        let discovered = self.discover.iter().filter_map(|d| {
            d.kubeconfig
                .as_ref()
                .map(|k| (d.line, "a discover entry".to_string(), k))
        });
        named
            .chain(discovered)
            .filter_map(|(line, who, k)| {
                k.file
                    .as_ref()
                    .map(|f| (f.line().unwrap_or(line), who, f.value.as_str()))
            })
            .collect()
    }
}

impl Deref for ClusterList {
    type Target = [Located<Cluster>];
    fn deref(&self) -> &[Located<Cluster>] {
        &self.named
    }
}

impl<'a> IntoIterator for &'a ClusterList {
    type Item = &'a Located<Cluster>;
    type IntoIter = std::slice::Iter<'a, Located<Cluster>>;
    fn into_iter(self) -> Self::IntoIter {
        self.named.iter()
    }
}

/// One item of `spec.clusters` as written: a cluster (`name` + `provider`)
/// or a discovery (`discover`), both with optional labels, wave and kubeconfig.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClusterItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<Provider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    discover: Option<Discover>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kubeconfig: Option<KubeconfigRef>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wave: Option<u32>,
}

impl<'de> Deserialize<'de> for ClusterList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<Located<ClusterItem>>::deserialize(d)?;
        let mut list = ClusterList::default();
        for Located { value: item, line } in items {
            match (item.name, item.provider, item.discover) {
                (Some(name), Some(provider), None) => list.named.push(Located {
                    value: Cluster {
                        name,
                        provider,
                        kubeconfig: item.kubeconfig,
                        labels: item.labels,
                        wave: item.wave,
                    },
                    line,
                }),
                (None, None, Some(discover)) => list.discover.push(Located {
                    value: DiscoverEntry {
                        discover,
                        labels: item.labels,
                        wave: item.wave,
                        kubeconfig: item.kubeconfig,
                        position: list.named.len(),
                    },
                    line,
                }),
                (_, _, Some(_)) => list.malformed.push((
                    line,
                    "a cluster entry has both `discover` and `name`/`provider`".into(),
                    "write either a cluster (name and provider) or a discovery (discover), not both",
                )),
                (None, _, None) => list.malformed.push((
                    line,
                    "a cluster entry has no `name`".into(),
                    "give the cluster a name, or write `discover: {provider: eks, region: ..., tags: {...}}` to find clusters in a cloud",
                )),
                (Some(name), None, None) => list.malformed.push((
                    line,
                    format!("cluster {name:?} has no `provider`"),
                    "add `provider:` with one of kubeconfig, eks, aks or gke (see docs/environments.md)",
                )),
            }
        }
        Ok(list)
    }
}

impl Serialize for ClusterList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.named.len() + self.discover.len()))?;
        for cluster in &self.named {
            seq.serialize_element(&cluster.value)?;
        }
        for entry in &self.discover {
            seq.serialize_element(&ClusterItem {
                name: None,
                provider: None,
                discover: Some(entry.discover.clone()),
                kubeconfig: entry.kubeconfig.clone(),
                labels: entry.labels.clone(),
                wave: entry.wave,
            })?;
        }
        seq.end()
    }
}

/// A `discover:` item of `spec.clusters` with the settings given to every
/// cluster it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverEntry {
    /// What to look for.
    pub discover: Discover,
    /// Labels added to every cluster found (over the cloud's tags).
    pub labels: BTreeMap<String, String>,
    /// Wave of the clusters found without a wave tag.
    pub wave: Option<u32>,
    /// Kubeconfig file used when access is forced to kubeconfig (the
    /// context is the cluster's name).
    pub kubeconfig: Option<KubeconfigRef>,
    /// How many named clusters precede the entry in the file.
    position: usize,
}

/// A cloud the clusters are discovered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Cloud {
    /// Amazon EKS.
    Eks,
    /// Azure Kubernetes Service.
    Aks,
    /// Google Kubernetes Engine.
    Gke,
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cloud::Eks => "eks",
            Cloud::Aks => "aks",
            Cloud::Gke => "gke",
        })
    }
}

/// `discover: {provider: eks, region: ..., tags: {...}}`: every cluster of a
/// region (EKS), subscription or resource group (AKS), or project and
/// location (GKE) whose tags or resource labels include all of `tags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Discover {
    /// `eks`, `aks` or `gke`.
    pub provider: Cloud,
    /// EKS: the region searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// EKS: IAM role assumed for discovery and tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// AKS: the subscription searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// AKS: only this resource group [default: the whole subscription].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// AKS: the Entra credential [default: workloadIdentity].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<AzureCredential>,
    /// GKE: the project searched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// GKE: a region or zone, or `-` for every location [default: `-`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Tags (EKS, AKS) or resource labels (GKE) a cluster must carry, all of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The tag or label holding a cluster's wave [default: `tidegate-wave`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave_tag: Option<String>,
    /// Put in front of every cluster's name in the environment (e.g. `use1-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
}

impl Discover {
    /// Where the entry searches, e.g. `eks region us-east-1` (for messages).
    pub fn scope(&self) -> String {
        let tags = if self.tags.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(" with tags {}", list.join(","))
        };
        let place = match self.provider {
            Cloud::Eks => format!("region {}", self.region.as_deref().unwrap_or("?")),
            Cloud::Aks => match &self.resource_group {
                Some(rg) => format!(
                    "subscription {} resource group {rg}",
                    self.subscription_id.as_deref().unwrap_or("?")
                ),
                None => format!(
                    "subscription {}",
                    self.subscription_id.as_deref().unwrap_or("?")
                ),
            },
            Cloud::Gke => format!(
                "project {} location {}",
                self.project.as_deref().unwrap_or("?"),
                self.gke_location()
            ),
        };
        format!("{} {place}{tags}", self.provider)
    }

    /// The GKE location searched (`-`: all).
    pub fn gke_location(&self) -> &str {
        self.location.as_deref().unwrap_or("-")
    }

    /// The tag or label holding the wave.
    pub fn wave_tag(&self) -> &str {
        self.wave_tag.as_deref().unwrap_or(DEFAULT_WAVE_TAG)
    }

    /// Problems of the entry itself: missing or misplaced fields (message, help).
    pub(super) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let (needed, allowed): (&[(&str, bool)], &[&str]) = match self.provider {
            Cloud::Eks => (&[("region", self.region.is_some())], &["region", "roleArn"]),
            Cloud::Aks => (
                &[("subscriptionId", self.subscription_id.is_some())],
                &["subscriptionId", "resourceGroup", "credential"],
            ),
            Cloud::Gke => (
                &[("project", self.project.is_some())],
                &["project", "location"],
            ),
        };
        for (field, present) in needed {
            if !present {
                out.push((
                    format!("discover ({}): `{field}` is missing", self.provider),
                    format!("add `{field}:` to the discover entry"),
                ));
            }
        }
        let given = [
            ("region", self.region.is_some()),
            ("roleArn", self.role_arn.is_some()),
            ("subscriptionId", self.subscription_id.is_some()),
            ("resourceGroup", self.resource_group.is_some()),
            ("credential", self.credential.is_some()),
            ("project", self.project.is_some()),
            ("location", self.location.is_some()),
        ];
        for (field, present) in given {
            if present && !allowed.contains(&field) {
                out.push((
                    format!(
                        "discover ({}): `{field}` does not apply to {}",
                        self.provider, self.provider
                    ),
                    format!(
                        "remove it; {} discovery takes {}",
                        self.provider,
                        allowed.join(", ")
                    ),
                ));
            }
        }
        if self.wave_tag.as_deref() == Some("") {
            out.push((
                "discover: `waveTag` is empty".into(),
                format!("name a tag, or remove it to use {DEFAULT_WAVE_TAG}"),
            ));
        }
        out
    }
}

/// A cluster a cloud reported for a discovery entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundCluster {
    /// The cluster's name in the cloud.
    pub name: String,
    /// GKE: its location (region or zone).
    pub location: String,
    /// AKS: its resource group.
    pub resource_group: Option<String>,
    /// Its tags (EKS, AKS) or resource labels (GKE).
    pub tags: BTreeMap<String, String>,
}

impl DiscoverEntry {
    /// The environment cluster for a cluster the cloud found: named
    /// `namePrefix` + the cloud's name made a DNS label, with the wave from
    /// the wave tag (else the entry's), and the cloud's tags plus the entry's
    /// labels as labels.
    pub fn cluster(&self, found: &FoundCluster) -> Result<Cluster, String> {
        let d = &self.discover;
        let name = dns_name(d.name_prefix.as_deref().unwrap_or(""), &found.name);
        if !is_dns_label(&name) {
            return Err(format!(
                "{} cluster {:?} gives the cluster name {name:?}, which is not a DNS label",
                d.provider, found.name
            ));
        }
        let wave = match found.tags.get(d.wave_tag()) {
            Some(value) => Some(value.trim().parse::<u32>().map_err(|_| {
                format!(
                    "{} cluster {:?} has {}={value:?}, which is not a wave number",
                    d.provider,
                    found.name,
                    d.wave_tag()
                )
            })?),
            None => self.wave,
        };
        let provider = match d.provider {
            Cloud::Eks => Provider::Eks(EksCluster {
                region: d.region.clone().unwrap_or_default(),
                cluster_name: found.name.clone(),
                role_arn: d.role_arn.clone(),
            }),
            Cloud::Aks => Provider::Aks(AksCluster {
                subscription_id: d.subscription_id.clone().unwrap_or_default(),
                resource_group: found
                    .resource_group
                    .clone()
                    .or_else(|| d.resource_group.clone())
                    .unwrap_or_default(),
                cluster_name: found.name.clone(),
                credential: d.credential.unwrap_or_default(),
            }),
            Cloud::Gke => Provider::Gke(GkeCluster {
                project: d.project.clone().unwrap_or_default(),
                location: found.location.clone(),
                cluster_name: found.name.clone(),
            }),
        };
        let mut labels = found.tags.clone();
        labels.extend(self.labels.clone());
        Ok(Cluster {
            name,
            provider,
            kubeconfig: self.kubeconfig.clone(),
            labels,
            wave,
        })
    }
}

/// `prefix` + `name` in lower case with every character other than a-z,
/// 0-9 and '-' replaced by '-'.
fn dns_name(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Environment {
    /// Replaces the `discover:` entries by the clusters found for them:
    /// `found[i]` holds what the cloud reported for entry `i`. A cloud
    /// cluster also named explicitly in the file keeps its explicit entry.
    /// Every problem is returned (names clashing, bad wave tags, an empty
    /// environment), with the discovery entry's line; on error the
    /// environment is left unchanged.
    pub fn add_discovered(
        &mut self,
        file: &str,
        found: &[Vec<FoundCluster>],
    ) -> Result<(), Diagnostics> {
        let entries = &self.spec.clusters.discover;
        let mut problems = Diagnostics::default();
        // Cloud clusters named explicitly: those entries win.
        let explicit: BTreeSet<String> = self
            .spec
            .clusters
            .named
            .iter()
            .filter_map(|n| n.provider.cloud_id())
            .collect();
        let mut per_entry = Vec::new();
        for (entry, found) in entries.iter().zip(found) {
            let mut built: Vec<Located<Cluster>> = Vec::new();
            for cluster in found {
                match entry.cluster(cluster) {
                    Ok(c) => {
                        if c.provider.cloud_id().is_some_and(|id| explicit.contains(&id)) {
                            continue;
                        }
                        built.push(Located {
                            value: c,
                            line: entry.line,
                        });
                    }
                    Err(message) => problems.push(
                        Diagnostic::new(message)
                            .at(file, entry.line())
                            .help(format!(
                                "tag the cluster with {}=<number>, set `waveTag`, or fix the name with `namePrefix`",
                                entry.discover.wave_tag()
                            )),
                    ),
                }
            }
            built.sort_by(|a, b| a.name.cmp(&b.name));
            per_entry.push(built);
        }
        let expanded = self.spec.clusters.expanded(per_entry);
        let named = &expanded.named;
        let mut seen: BTreeMap<&str, &Located<Cluster>> = BTreeMap::new();
        for cluster in named {
            if let Some(first) = seen.insert(&cluster.name, cluster) {
                let (a, b) = (describe(first), describe(cluster));
                problems.push(
                    Diagnostic::new(format!(
                        "cluster name {:?} is used twice: {a} (line {}) and {b} (line {})",
                        cluster.name, first.line, cluster.line
                    ))
                    .at(file, cluster.line())
                    .help("set `namePrefix` on the discover entry, or rename the named cluster"),
                );
            }
        }
        if named.is_empty() {
            let scopes: Vec<String> = entries.iter().map(|e| e.discover.scope()).collect();
            problems.push(
                Diagnostic::new(format!(
                    "discovery found no clusters ({})",
                    scopes.join("; ")
                ))
                .at(file, entries.first().and_then(|e| e.line()))
                .help("check the tags, region, subscription or project, and that the clusters are ACTIVE/Succeeded/RUNNING"),
            );
        }
        let mut env = self.clone();
        env.spec.clusters = expanded;
        problems.extend(env.check_waves(file));
        problems.extend(super::windows::check_cluster_names(&env, file));
        if !problems.is_empty() {
            return Err(problems.sorted());
        }
        *self = env;
        Ok(())
    }
}

impl Environment {
    /// The environment with one stand-in cluster per `discover:` entry, for
    /// checks without cloud access (`tidegate validate --offline`): named
    /// `discovered-at-line-<N>`, labelled with the entry's tags (every
    /// cluster found carries them) and labels, in the entry's wave.
    pub fn with_placeholders(&self) -> Environment {
        let stand_ins = self
            .spec
            .clusters
            .discover
            .iter()
            .map(|entry| {
                let d = &entry.discover;
                let name = format!("discovered-at-line-{}", entry.line);
                let stand_in = FoundCluster {
                    name: name.clone(),
                    location: d.gke_location().to_string(),
                    resource_group: d.resource_group.clone(),
                    tags: d.tags.clone(),
                };
                entry
                    .cluster(&stand_in)
                    .map(|cluster| Located {
                        value: Cluster { name, ..cluster },
                        line: entry.line,
                    })
                    .into_iter()
                    .collect()
            })
            .collect();
        let mut env = self.clone();
        env.spec.clusters = self.spec.clusters.expanded(stand_ins);
        env
    }
}

/// `eks us-east-1/prod` for messages.
fn describe(cluster: &Cluster) -> String {
    match &cluster.provider {
        Provider::Eks(e) => format!("eks {}/{}", e.region, e.cluster_name),
        Provider::Aks(a) => format!("aks {}/{}", a.resource_group, a.cluster_name),
        Provider::Gke(g) => format!("gke {}/{}/{}", g.project, g.location, g.cluster_name),
        Provider::Kubeconfig(_) => format!("kubeconfig context {}", cluster.kubeconfig_context()),
    }
}

#[cfg(test)]
mod tests;
