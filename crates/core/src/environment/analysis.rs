//! Metric analyses of `spec.rollout`: PromQL queries judged during each
//! wave's bake time (see docs/rollouts.md, "Metric analysis").

use super::Environment;
use crate::{condition::Condition, duration::GoDuration};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Duration};

/// The placeholder replaced by the cluster's name in a query.
pub const CLUSTER_PLACEHOLDER: &str = "{{cluster}}";

/// Where the clusters' metrics are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusSource {
    /// One Prometheus for every cluster (queries tell clusters apart with
    /// `{{cluster}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A Prometheus per cluster, by cluster name (wins over `url`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, String>,
}

impl PrometheusSource {
    /// The Prometheus that holds `cluster`'s metrics.
    pub fn url_for(&self, cluster: &str) -> Option<&str> {
        self.clusters
            .get(cluster)
            .or(self.url.as_ref())
            .map(String::as_str)
    }
}

/// One named analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Analysis {
    /// Unique name, shown in output and the audit trail.
    pub name: String,
    /// PromQL instant query; `{{cluster}}` is replaced by the cluster's name.
    /// Its value must be one number (a scalar or a single series).
    pub query: String,
    /// When a measurement passes, e.g. `result < 0.01` or
    /// `result <= 1.2 * median(baseline)` (see `tidegate_core::condition`).
    pub success_condition: String,
    /// Time between measurements.
    #[serde(default = "default_interval")]
    pub interval: GoDuration,
    /// How many measurements per cluster.
    #[serde(default = "default_count")]
    pub count: u32,
    /// The analysis fails when more measurements than this fail.
    #[serde(default)]
    pub failure_limit: u32,
    /// The analysis fails when more measurements than this are
    /// inconclusive (no value: Prometheus unreachable, no data).
    #[serde(default = "default_inconclusive_limit")]
    pub inconclusive_limit: u32,
}

fn default_interval() -> GoDuration {
    GoDuration(Duration::from_secs(30))
}

fn default_count() -> u32 {
    3
}

fn default_inconclusive_limit() -> u32 {
    1
}

/// Most measurements of one analysis.
const MAX_COUNT: u32 = 1000;

impl Analysis {
    /// The query for one cluster.
    pub fn query_for(&self, cluster: &str) -> String {
        self.query.replace(CLUSTER_PLACEHOLDER, cluster)
    }

    /// The parsed success condition (checked when the file was parsed).
    pub fn condition(&self) -> Result<Condition, crate::condition::ConditionError> {
        Condition::parse(&self.success_condition)
    }
}

/// True when `url` is an `http://` or `https://` URL with a host and no
/// credentials (repository content never carries credentials to a host).
fn url_problem(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Some("must start with http:// or https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Some("has no host");
    }
    if authority.contains('@') {
        return Some("carries credentials; Tidegate sends none to a URL the repository names");
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Some("contains spaces or control characters");
    }
    None
}

impl Environment {
    /// Problems of `spec.rollout.analyses` and `spec.rollout.prometheus`:
    /// `(line, message, help)`.
    pub(super) fn analysis_problems(&self) -> Vec<(u64, String, String)> {
        let rollout = &self.spec.rollout;
        let mut out = Vec::new();
        let mut problem = |line: u64, message: String, help: &str| {
            out.push((line, message, help.to_string()));
        };
        let prometheus_line = rollout.prometheus.as_ref().map_or(1, |p| p.line);
        if let Some(p) = &rollout.prometheus {
            for url in p.url.iter().chain(p.clusters.values()) {
                if let Some(why) = url_problem(url) {
                    problem(
                        p.line,
                        format!("spec.rollout.prometheus: {:?} {why}", redact(url)),
                        "write the Prometheus base URL, e.g. http://prometheus.monitoring:9090",
                    );
                }
            }
            for name in p.clusters.keys() {
                if self.spec.clusters.discover().is_empty() && self.cluster(name).is_none() {
                    problem(
                        p.line,
                        format!(
                            "spec.rollout.prometheus.clusters: {name:?} is not a cluster of this environment"
                        ),
                        "use the name of a cluster under spec.clusters",
                    );
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &rollout.analyses {
            let line = a.line;
            if !seen.insert(a.name.as_str()) {
                problem(
                    line,
                    format!("spec.rollout.analyses: {:?} is listed twice", a.name),
                    "give every analysis a unique name",
                );
            }
            if !crate::names::is_dns_label(&a.name) {
                problem(
                    line,
                    format!(
                        "spec.rollout.analyses: name {:?} is not a DNS label",
                        a.name
                    ),
                    "use lower-case letters, digits and '-', e.g. error-rate",
                );
            }
            if a.query.trim().is_empty() {
                problem(
                    line,
                    format!("analysis {}: query is empty", a.name),
                    "write a PromQL query whose value is one number",
                );
            }
            if let Err(e) = a.condition() {
                problem(
                    line,
                    format!("analysis {}: successCondition: {e}", a.name),
                    "write e.g. `result < 0.01` or `result <= 1.2 * median(baseline)` (see docs/rollouts.md)",
                );
            }
            if a.interval.0.is_zero() {
                problem(
                    line,
                    format!("analysis {}: interval is 0", a.name),
                    "measure at most once a second, e.g. interval: 30s",
                );
            }
            if a.count == 0 || a.count > MAX_COUNT {
                problem(
                    line,
                    format!(
                        "analysis {}: count is {}, not between 1 and {MAX_COUNT}",
                        a.name, a.count
                    ),
                    "take a few measurements, e.g. count: 5",
                );
            }
            let everywhere = rollout.prometheus.as_ref().is_some_and(|p| {
                p.url.is_some()
                    || self
                        .spec
                        .clusters
                        .iter()
                        .all(|c| p.clusters.contains_key(&c.name))
            });
            if !everywhere {
                problem(
                    line.max(prometheus_line),
                    format!(
                        "analysis {}: no Prometheus for every cluster (spec.rollout.prometheus)",
                        a.name
                    ),
                    "set spec.rollout.prometheus.url (one for all clusters, with {{cluster}} in the query) or a URL per cluster under spec.rollout.prometheus.clusters",
                );
            }
            let per_cluster = rollout.prometheus.as_ref().is_some_and(|p| {
                self.spec
                    .clusters
                    .iter()
                    .all(|c| p.clusters.contains_key(&c.name))
            });
            if everywhere && !per_cluster && !a.query.contains(CLUSTER_PLACEHOLDER) {
                problem(
                    line,
                    format!(
                        "analysis {}: the query reads one Prometheus for every cluster but has no {CLUSTER_PLACEHOLDER}, so every cluster would get the same value",
                        a.name
                    ),
                    "select the cluster's series, e.g. http_requests_total{cluster=\"{{cluster}}\"}",
                );
            }
        }
        out
    }
}

/// `url` without user information, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_a_scheme_host_or_with_credentials_are_refused() {
        assert_eq!(url_problem("http://prometheus:9090"), None);
        assert_eq!(url_problem("https://prom.example/api/prefix"), None);
        assert!(url_problem("ftp://x").is_some());
        assert!(url_problem("http:///path").is_some());
        assert!(url_problem("https://user:pw@prom.example").is_some());
        assert!(url_problem("http://a b").is_some());
        assert_eq!(
            redact("https://user:pw@prom.example/x"),
            "https://…@prom.example/x"
        );
    }

    #[test]
    fn the_cluster_url_wins_over_the_global_one() {
        let p = PrometheusSource {
            url: Some("http://global".into()),
            clusters: [("a".to_string(), "http://a".to_string())].into(),
        };
        assert_eq!(p.url_for("a"), Some("http://a"));
        assert_eq!(p.url_for("b"), Some("http://global"));
        let only = PrometheusSource {
            url: None,
            clusters: p.clusters.clone(),
        };
        assert_eq!(only.url_for("b"), None);
    }

    const WITH_ANALYSIS: &str = "\
apiVersion: tidegate.dev/v1alpha1
kind: Environment
metadata:
  name: prod
spec:
  source:
    repoURL: .
  clusters:
    - name: canary
      provider: {kubeconfig: {context: canary}}
      wave: 1
    - name: main
      provider: {kubeconfig: {context: main}}
      wave: 2
  apps:
    - name: web
  rollout:
    bakeTime: 30s
    prometheus:
      url: http://prometheus.monitoring:9090
    analyses:
      - name: error-rate
        query: sum(rate(errors{cluster=\"{{cluster}}\"}[1m]))
        successCondition: result <= 1.2 * median(baseline)
        interval: 10s
        count: 5
        failureLimit: 1
";

    fn problems(text: &str) -> Vec<String> {
        match Environment::parse(text, "environments/prod.yaml") {
            Ok(_) => Vec::new(),
            Err(d) => d.0.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn reads_analyses_with_defaults() {
        let env = Environment::parse(WITH_ANALYSIS, "environments/prod.yaml")
            .unwrap_or_else(|e| panic!("{e}"));
        let a = &env.spec.rollout.analyses[0];
        assert_eq!(a.line, 22);
        assert_eq!((a.count, a.failure_limit, a.inconclusive_limit), (5, 1, 1));
        assert_eq!(a.interval.0, Duration::from_secs(10));
        assert_eq!(
            a.query_for("canary"),
            "sum(rate(errors{cluster=\"canary\"}[1m]))"
        );
        assert!(a.condition().is_ok_and(|c| c.uses_baseline()));
        let p = env
            .spec
            .rollout
            .prometheus
            .as_ref()
            .map(|p| p.url_for("main"));
        assert_eq!(p, Some(Some("http://prometheus.monitoring:9090")));
    }

    #[test]
    fn mistakes_are_reported_at_the_analysis_line() {
        let bad = WITH_ANALYSIS
            .replace(
                "result <= 1.2 * median(baseline)",
                "result <= 1.2 * medain(baseline)",
            )
            .replace("count: 5", "count: 0");
        let p = problems(&bad);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p.iter().any(|p| p.contains("environments/prod.yaml:22")
                && p.contains("unknown name \"medain\"")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.contains(":22") && p.contains("count is 0")),
            "{p:?}"
        );

        let no_placeholder = WITH_ANALYSIS.replace("{cluster=\"{{cluster}}\"}", "");
        let p = problems(&no_placeholder);
        assert!(p.len() == 1 && p[0].contains("has no {{cluster}}"), "{p:?}");

        let no_source = WITH_ANALYSIS.replace(
            "    prometheus:\n      url: http://prometheus.monitoring:9090\n",
            "",
        );
        let p = problems(&no_source);
        assert!(
            p.len() == 1 && p[0].contains("no Prometheus for every cluster"),
            "{p:?}"
        );

        let secret = WITH_ANALYSIS.replace("http://prometheus", "http://me:secret@prometheus");
        let p = problems(&secret);
        assert!(
            p.len() == 1
                && p[0].contains(":20")
                && p[0].contains("carries credentials")
                && !p[0].contains("secret"),
            "{p:?}"
        );

        let unknown = WITH_ANALYSIS.replace(
            "      url: http://prometheus.monitoring:9090\n",
            "      clusters: {canary: http://a:9090, mian: http://b:9090}\n",
        );
        let p = problems(&unknown);
        assert!(
            p.iter().any(|p| p.contains("\"mian\" is not a cluster")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.contains("no Prometheus for every cluster")),
            "{p:?}"
        );

        let typo = WITH_ANALYSIS.replace("failureLimit", "failureLimt");
        let p = problems(&typo);
        assert!(p.len() == 1 && p[0].contains("failureLimt"), "{p:?}");
    }
}
