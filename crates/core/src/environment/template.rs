//! Apps whose source is a Helm chart or a Kustomize directory instead of
//! plain YAML (`spec.apps[].helm`, `spec.apps[].kustomize`), and the Helm
//! part of overlays (`overlays[].helm`).
//!
//! Only the model and its checks live here; running `helm`/`kustomize` is
//! I/O and belongs to `tidegate-template`.

use super::{App, Located};
use crate::duration::GoDuration;
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Duration};

/// Default time one `helm template` or `kustomize build` may take.
pub const DEFAULT_TEMPLATE_TIMEOUT: Duration = Duration::from_secs(60);

/// A Helm chart as an app's source: the chart directory in the repository
/// (the app's `path`) when `repoURL` is absent, else `chart` at `version`
/// from a Helm repository (`https://…`, its `index.yaml`) or an OCI
/// registry (`oci://…`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmSource {
    /// `https://…` (a Helm repository) or `oci://registry/path`; absent for a
    /// chart directory in the repository.
    #[serde(rename = "repoURL", default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// The chart's name in the Helm repository or OCI registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// The chart's exact version (no ranges: a render must be reproducible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `sha256:…` pin: the `.tgz` digest of a Helm repository chart, or the
    /// OCI manifest digest of a registry chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `.Release.Name`; defaults to the app's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// `.Release.Namespace`; defaults to the app's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Values files in the repository, relative to the app's directory, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_files: Vec<String>,
    /// Inline values, applied after the values files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_json::Value>,
    /// Render the chart's `crds/` directory (default true).
    #[serde(rename = "includeCRDs", default = "yes")]
    pub include_crds: bool,
    /// Leave out the chart's test hooks (`helm.sh/hook: test`).
    #[serde(default)]
    pub skip_tests: bool,
    /// `.Capabilities.KubeVersion` (e.g. `1.37.0`); per cluster through overlays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    /// Extra `.Capabilities.APIVersions` (e.g. `monitoring.coreos.com/v1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_versions: Vec<String>,
    /// Longest time `helm template` may run (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
}

fn yes() -> bool {
    true
}

impl HelmSource {
    /// Where the chart comes from.
    pub fn origin(&self) -> ChartOrigin<'_> {
        match self.repo_url.as_deref() {
            None => ChartOrigin::Directory,
            Some(url) if url.starts_with("oci://") => ChartOrigin::Oci(url),
            Some(url) => ChartOrigin::Repository(url),
        }
    }

    /// The time limit of one `helm template`.
    pub fn time_limit(&self) -> Duration {
        self.timeout.map_or(DEFAULT_TEMPLATE_TIMEOUT, |t| t.0)
    }
}

/// Where a Helm chart is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartOrigin<'a> {
    /// The app's directory in the repository is the chart.
    Directory,
    /// A Helm repository (`index.yaml` over HTTPS) at this URL.
    Repository(&'a str),
    /// An OCI registry, `oci://host/path`.
    Oci(&'a str),
}

/// A Kustomize directory as an app's source: the app's `path` holds
/// `kustomization.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KustomizeSource {
    /// Allow `resources`/`components` that are URLs (remote bases); refused
    /// by default so a render reads nothing the commit does not hold.
    #[serde(default)]
    pub allow_remote_bases: bool,
    /// Longest time `kustomize build` may run (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
}

impl KustomizeSource {
    /// The time limit of one `kustomize build`.
    pub fn time_limit(&self) -> Duration {
        self.timeout.map_or(DEFAULT_TEMPLATE_TIMEOUT, |t| t.0)
    }
}

/// The Helm part of an overlay: values and cluster facts for the clusters
/// the overlay selects, applied after the app's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmOverlay {
    /// Values merged over the app's values (after them, in overlay order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<serde_json::Value>,
    /// `.Capabilities.KubeVersion` for these clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    /// Extra `.Capabilities.APIVersions` for these clusters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_versions: Vec<String>,
}

/// Helm's `.Capabilities` for one cluster: the Kubernetes version and the
/// API versions charts see (`--kube-version`, `--api-versions`), declared in
/// the environment or reported by the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HelmCapabilities {
    /// `.Capabilities.KubeVersion`; `None` leaves Helm's built-in default.
    pub kube_version: Option<String>,
    /// Added to Helm's built-in `.Capabilities.APIVersions`; empty adds none.
    pub api_versions: Vec<String>,
}

impl HelmCapabilities {
    /// These, with what they leave unset taken from `discovered` (what the
    /// cluster reported): a declared `kubeVersion` wins over the cluster's,
    /// and a declared `apiVersions` list replaces the cluster's whole list.
    pub fn or_discovered(self, discovered: Option<&HelmCapabilities>) -> HelmCapabilities {
        let Some(found) = discovered else {
            return self;
        };
        HelmCapabilities {
            kube_version: self.kube_version.or_else(|| found.kube_version.clone()),
            api_versions: if self.api_versions.is_empty() {
                found.api_versions.clone()
            } else {
                self.api_versions
            },
        }
    }

    /// What the environment leaves for the cluster to report.
    pub fn undeclared(&self) -> FactsNeeded {
        FactsNeeded {
            kube_version: self.kube_version.is_none(),
            api_versions: self.api_versions.is_empty(),
        }
    }
}

/// Which of its facts a cluster is asked for before rendering Helm apps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactsNeeded {
    /// Its server version (`GET /version`).
    pub kube_version: bool,
    /// The API versions it serves (discovery).
    pub api_versions: bool,
}

impl FactsNeeded {
    /// True when anything is needed.
    pub fn any(self) -> bool {
        self.kube_version || self.api_versions
    }

    /// Both sets of needs together.
    pub fn union(self, other: FactsNeeded) -> FactsNeeded {
        FactsNeeded {
            kube_version: self.kube_version || other.kube_version,
            api_versions: self.api_versions || other.api_versions,
        }
    }
}

impl App {
    /// The capabilities the environment declares for this Helm app on
    /// `cluster`: the app's `helm.kubeVersion`/`apiVersions`, then those of
    /// the overlays selecting the cluster, in order (a later `kubeVersion`
    /// replaces an earlier one; `apiVersions` add up). `None` when the app is
    /// not a Helm chart.
    pub fn helm_capabilities(&self, cluster: &super::Cluster) -> Option<HelmCapabilities> {
        let helm = self.helm.as_ref()?;
        let labels = cluster.selector_labels();
        let mut declared = HelmCapabilities {
            kube_version: helm.kube_version.clone(),
            api_versions: helm.api_versions.clone(),
        };
        for overlay in self.overlays.iter().filter(|o| {
            o.cluster_selector
                .as_ref()
                .is_none_or(|s| s.matches(&labels))
        }) {
            let Some(h) = &overlay.helm else { continue };
            if h.kube_version.is_some() {
                declared.kube_version = h.kube_version.clone();
            }
            declared.api_versions.extend(h.api_versions.iter().cloned());
        }
        Some(declared)
    }
}

impl super::Environment {
    /// The clusters whose facts some Helm app needs because the environment
    /// does not declare them, and which facts; empty when no Helm app lacks
    /// a declaration (plain YAML and Kustomize apps need none).
    pub fn helm_facts_needed(&self) -> BTreeMap<String, FactsNeeded> {
        let mut out = BTreeMap::new();
        for cluster in self.spec.clusters.iter() {
            let needed = self
                .spec
                .apps
                .iter()
                .filter_map(|app| app.helm_capabilities(cluster))
                .fold(FactsNeeded::default(), |n, c| n.union(c.undeclared()));
            if needed.any() {
                out.insert(cluster.name.clone(), needed);
            }
        }
        out
    }
}

/// Problems of an app's `helm`/`kustomize` settings: `(line, message, help)`.
pub(super) fn check_app(app: &Located<App>) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    let name = &app.name;
    let mut problem = |line: u64, message: String, help: &str| {
        out.push((line.max(app.line), message, help.to_string()))
    };
    if let (Some(_), Some(k)) = (&app.helm, &app.kustomize) {
        problem(
            k.line,
            format!("app {name}: both `helm` and `kustomize` are set"),
            "an app has one source: a Helm chart, a Kustomize directory or plain YAML",
        );
    }
    if let Some(helm) = &app.helm {
        check_helm(name, helm, &mut problem);
    }
    for overlay in &app.overlays {
        let Some(h) = &overlay.helm else { continue };
        if app.helm.is_none() {
            problem(
                overlay.line,
                format!("app {name}: overlay sets `helm` but the app is not a Helm chart"),
                "add `helm:` to the app, or remove the overlay's `helm`",
            );
        }
        if let Some(values) = &h.values
            && !values.is_object()
        {
            problem(
                overlay.line,
                format!("app {name}: overlay's helm.values must be a mapping"),
                "write `values: {key: value}`",
            );
        }
    }
    out
}

fn check_helm(name: &str, helm: &Located<HelmSource>, problem: &mut impl FnMut(u64, String, &str)) {
    let line = helm.line;
    match helm.origin() {
        ChartOrigin::Directory => {
            for (field, set) in [
                ("chart", helm.chart.is_some()),
                ("version", helm.version.is_some()),
                ("digest", helm.digest.is_some()),
            ] {
                if set {
                    problem(
                        line,
                        format!("app {name}: helm.{field} needs helm.repoURL"),
                        "set repoURL (https://… or oci://…) for a published chart, or leave chart, version and digest out for a chart directory in the repository",
                    );
                }
            }
        }
        ChartOrigin::Repository(url) | ChartOrigin::Oci(url) => {
            if !url.starts_with("https://") && !url.starts_with("oci://") {
                problem(
                    line,
                    format!("app {name}: helm.repoURL {url:?} is neither https:// nor oci://"),
                    "Helm repositories are read over HTTPS (index.yaml); OCI registries are written oci://host/path",
                );
            }
            if helm.chart.as_deref().is_none_or(str::is_empty) {
                problem(
                    line,
                    format!("app {name}: helm.chart is required with helm.repoURL"),
                    "name the chart, e.g. `chart: podinfo`",
                );
            }
            match helm.version.as_deref() {
                None | Some("") => problem(
                    line,
                    format!("app {name}: helm.version is required with helm.repoURL"),
                    "pin the chart's exact version, e.g. `version: 6.5.4`",
                ),
                Some(v) if !is_exact_version(v) => problem(
                    line,
                    format!("app {name}: helm.version {v:?} is not an exact version"),
                    "ranges and `latest` would change what a commit renders; pin e.g. `version: 6.5.4`",
                ),
                Some(_) => {}
            }
        }
    }
    if let Some(d) = &helm.digest
        && !is_sha256_digest(d)
    {
        problem(
            line,
            format!("app {name}: helm.digest {d:?} is not a sha256 digest"),
            "write `digest: sha256:` followed by 64 lower-case hex digits",
        );
    }
    if let Some(values) = &helm.values
        && !values.is_object()
    {
        problem(
            line,
            format!("app {name}: helm.values must be a mapping"),
            "write `values: {key: value}`",
        );
    }
    if helm.timeout.is_some_and(|t| t.0.is_zero()) {
        problem(
            line,
            format!("app {name}: helm.timeout is 0"),
            "give helm time to run, e.g. `timeout: 60s`",
        );
    }
}

/// `sha256:` + 64 lower-case hex digits.
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A version without range operators or wildcards.
fn is_exact_version(v: &str) -> bool {
    !v.is_empty()
        && v != "latest"
        && !v.contains(['^', '~', '>', '<', '=', '*', ' ', ',', '|'])
        && !v.split(['.', '-', '+']).any(|p| p == "x" || p == "X")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;

    #[test]
    fn digests_and_versions() {
        assert!(is_sha256_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_sha256_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_sha256_digest("sha256:abc"));
        assert!(is_exact_version("6.5.4"));
        assert!(is_exact_version("1.0.0-rc.1+build"));
        for v in ["^1.0.0", "~1", ">=1.0", "1.x", "latest", "*", ""] {
            assert!(!is_exact_version(v), "{v}");
        }
    }

    #[test]
    fn helm_and_kustomize_settings_are_checked_with_their_lines() {
        let env = |apps: &str| {
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nspec:\n  source: {{repoURL: .}}\n  clusters:\n    - name: c1\n      provider: {{kubeconfig: {{}}}}\n  apps:\n{apps}"
            )
        };
        let ok = env(
            "    - name: a\n      helm:\n        repoURL: oci://r.example/charts\n        chart: a\n        version: 1.2.3\n      overlays:\n        - helm: {values: {x: 1}, kubeVersion: 1.37.0}\n    - name: b\n      kustomize: {allowRemoteBases: true, timeout: 5s}\n",
        );
        let parsed = crate::Environment::parse(&ok, "environments/t.yaml").unwrap();
        assert_eq!(
            parsed.spec.apps[1].kustomize.as_ref().unwrap().time_limit(),
            Duration::from_secs(5)
        );
        let bad = env(concat!(
            "    - name: a\n      helm: {chart: x}\n      kustomize: {}\n",
            "    - name: b\n      helm: {repoURL: http://insecure.example, version: ^1.0}\n",
            "    - name: c\n      overlays:\n        - helm: {values: [1]}\n",
            "    - name: d\n      helm: {repoURL: https://c.example, chart: d, version: 1.0.0, digest: md5:abc}\n",
        ));
        let problems = crate::Environment::parse(&bad, "environments/t.yaml")
            .unwrap_err()
            .to_string();
        for want in [
            "environments/t.yaml:13: app a: both `helm` and `kustomize` are set",
            "environments/t.yaml:12: app a: helm.chart needs helm.repoURL",
            "environments/t.yaml:15: app b: helm.repoURL \"http://insecure.example\" is neither https:// nor oci://",
            "environments/t.yaml:15: app b: helm.chart is required with helm.repoURL",
            "environments/t.yaml:15: app b: helm.version \"^1.0\" is not an exact version",
            "environments/t.yaml:18: app c: overlay sets `helm` but the app is not a Helm chart",
            "environments/t.yaml:18: app c: overlay's helm.values must be a mapping",
            "environments/t.yaml:20: app d: helm.digest \"md5:abc\" is not a sha256 digest",
        ] {
            assert!(problems.contains(want), "missing {want:?} in\n{problems}");
        }
    }

    #[test]
    fn declared_capabilities_win_and_only_undeclared_facts_are_needed() {
        let text = "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nspec:\n  source: {repoURL: .}\n  clusters:\n    - name: old\n      provider: {kubeconfig: {}}\n      labels: {gen: old}\n    - name: new\n      provider: {kubeconfig: {}}\n  apps:\n    - name: web\n      helm: {apiVersions: [a.example/v1]}\n      overlays:\n        - clusterSelector: {matchLabels: {gen: old}}\n          helm: {kubeVersion: 1.30.0, apiVersions: [b.example/v1]}\n    - name: plain\n    - name: kust\n      kustomize: {}\n";
        let env = crate::Environment::parse(text, "environments/t.yaml").unwrap();
        let web = &env.spec.apps[0];
        let old = web.helm_capabilities(&env.spec.clusters[0]).unwrap();
        assert_eq!(
            old,
            HelmCapabilities {
                kube_version: Some("1.30.0".into()),
                api_versions: vec!["a.example/v1".into(), "b.example/v1".into()],
            }
        );
        let new = web.helm_capabilities(&env.spec.clusters[1]).unwrap();
        assert_eq!(new.kube_version, None);
        assert!(
            env.spec.apps[1]
                .helm_capabilities(&env.spec.clusters[0])
                .is_none()
        );
        // Only the cluster without a declared kubeVersion is asked, and only for it.
        let needed = env.helm_facts_needed();
        assert_eq!(needed.len(), 1, "{needed:?}");
        assert_eq!(
            needed["new"],
            FactsNeeded {
                kube_version: true,
                api_versions: false
            }
        );
        // Declared values win; what is left comes from the cluster.
        let discovered = HelmCapabilities {
            kube_version: Some("v1.37.1".into()),
            api_versions: vec!["apps/v1".into(), "c.example/v1".into()],
        };
        assert_eq!(old.clone().or_discovered(Some(&discovered)), old);
        assert_eq!(
            HelmCapabilities::default().or_discovered(Some(&discovered)),
            discovered
        );
        assert_eq!(
            new.clone().or_discovered(Some(&discovered)),
            HelmCapabilities {
                kube_version: Some("v1.37.1".into()),
                api_versions: vec!["a.example/v1".into()],
            }
        );
        assert_eq!(new.clone().or_discovered(None), new);
        // Plain YAML and Kustomize apps need nothing.
        let plain = text.replace(
            "      helm: {apiVersions: [a.example/v1]}\n      overlays:\n        - clusterSelector: {matchLabels: {gen: old}}\n          helm: {kubeVersion: 1.30.0, apiVersions: [b.example/v1]}\n",
            "",
        );
        let env = crate::Environment::parse(&plain, "environments/t.yaml").unwrap();
        assert!(env.helm_facts_needed().is_empty());
    }

    #[test]
    fn origins() {
        let mut h = HelmSource::default();
        assert_eq!(h.origin(), ChartOrigin::Directory);
        h.repo_url = Some("oci://r.example/charts".into());
        assert_eq!(h.origin(), ChartOrigin::Oci("oci://r.example/charts"));
        h.repo_url = Some("https://charts.example".into());
        assert_eq!(
            h.origin(),
            ChartOrigin::Repository("https://charts.example")
        );
    }
}
