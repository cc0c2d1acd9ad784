//! What the fleet page needs to know, in the shapes the controller's
//! events carry it ([`crate::Event::Environment`], [`crate::Event::Progress`],
//! [`crate::Event::Objects`]): an environment's clusters and rollout policy,
//! each cluster's place in a rollout, and the objects of an app with their
//! drift and health. Built here, inside the controller, so that what leaves it is
//! already masked: a diff is the CLI's text of a diff whose Secret values
//! `tidegate_diff` masked when it compared them.

use std::{collections::BTreeMap, time::Duration};
use tidegate_core::{
    Environment,
    environment::{Approval, FailurePolicy, Provider},
};
use tidegate_fleet::ClusterLine;
use tidegate_health::{HealthChecks, HealthStatus};
use tidegate_sync::Plan;

/// An environment as its last load declared it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentView {
    /// The environment.
    pub environment: String,
    /// The commit loaded.
    pub revision: String,
    /// Its clusters, in declaration order.
    pub clusters: Vec<ClusterInfo>,
    /// Its apps.
    pub apps: Vec<String>,
    /// The rollout's limits and gates.
    pub limits: Limits,
    /// The active colour of each blue-green app (as Git declares it).
    pub active_colors: BTreeMap<String, String>,
}

/// One cluster of an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterInfo {
    /// The cluster.
    pub name: String,
    /// `eks`, `aks`, `gke`, or the `cloud` label of a kubeconfig cluster
    /// (`kubeconfig` without one).
    pub cloud: String,
    /// The region or location (the `region` label when the provider has none).
    pub region: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its declared wave (`None`: partitioned automatically).
    pub wave: Option<u32>,
}

/// A rollout's limits and gates, as the environment sets them.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `maxSurge`, as written (`2`, `25%`).
    pub max_surge: String,
    /// `maxUnavailable`, as written.
    pub max_unavailable: String,
    /// How long each wave bakes.
    pub bake_time: Duration,
    /// `rollback` or `halt`.
    pub failure_policy: String,
    /// The waves that wait for `tidegate approve`.
    pub approval_waves: Vec<u32>,
    /// The names of the analyses run during each bake.
    pub analyses: Vec<String>,
}

/// One cluster's place in a rollout under way.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterState {
    /// The cluster.
    pub cluster: String,
    /// Its wave.
    pub wave: u32,
    /// Where it stands (`Pending`, `Applying`, `Updated`, `Failed`, `RolledBack`...).
    pub state: String,
    /// Its last health.
    pub health: HealthStatus,
    /// Time since its apply or rollback was issued.
    pub elapsed: Option<Duration>,
}

/// One object of an app in a cluster, as a drift check found it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectState {
    /// `Kind` or `Kind.group`.
    pub kind: String,
    /// Its namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `in-sync`, `drifted`, `missing` or `prune`.
    pub drift: &'static str,
    /// The unified diff from the live object to Git, Secret values masked;
    /// empty when in sync.
    pub diff: String,
    /// Its health, judged from the live object the drift check read (the
    /// plan's, not normalized: status included); `None` when it is missing
    /// or left to prune.
    pub health: Option<HealthStatus>,
}

impl EnvironmentView {
    /// The view of `environment` loaded at `revision`.
    pub fn of(environment: &Environment, revision: &str) -> EnvironmentView {
        let spec = &environment.spec;
        let clusters = spec
            .clusters
            .iter()
            .map(|c| {
                let (cloud, region) = match &c.provider {
                    Provider::Eks(e) => ("eks".to_string(), e.region.clone()),
                    Provider::Gke(g) => ("gke".to_string(), g.location.clone()),
                    Provider::Aks(_) => ("aks".to_string(), String::new()),
                    Provider::Kubeconfig(_) => (
                        c.labels
                            .get("cloud")
                            .cloned()
                            .unwrap_or_else(|| "kubeconfig".into()),
                        String::new(),
                    ),
                };
                let region = if region.is_empty() {
                    c.labels.get("region").cloned().unwrap_or_default()
                } else {
                    region
                };
                ClusterInfo {
                    name: c.name.clone(),
                    cloud,
                    region,
                    labels: c.labels.clone(),
                    wave: c.wave,
                }
            })
            .collect();
        let rollout = &spec.rollout;
        let limits = Limits {
            max_surge: rollout.max_surge.to_string(),
            max_unavailable: rollout.max_unavailable.to_string(),
            bake_time: rollout.bake_time.0,
            failure_policy: match rollout.failure_policy {
                FailurePolicy::Rollback => "rollback".into(),
                FailurePolicy::Halt => "halt".into(),
            },
            approval_waves: rollout
                .waves
                .iter()
                .filter(|w| w.approval != Approval::None)
                .map(|w| w.wave)
                .collect(),
            analyses: rollout.analyses.iter().map(|a| a.name.clone()).collect(),
        };
        EnvironmentView {
            environment: environment.metadata.name.clone(),
            revision: revision.to_string(),
            clusters,
            apps: spec.apps.iter().map(|a| a.name.clone()).collect(),
            limits,
            active_colors: spec
                .blue_green
                .iter()
                .map(|b| (b.app.clone(), b.active_color.clone()))
                .collect(),
        }
    }
}

/// The states of a rollout's progress lines.
pub fn cluster_states(lines: &[ClusterLine]) -> Vec<ClusterState> {
    lines
        .iter()
        .map(|l| ClusterState {
            cluster: l.cluster.clone(),
            wave: l.wave,
            state: l.state.clone(),
            health: l.health,
            elapsed: l.elapsed,
        })
        .collect()
}

/// The objects of `app` in `plan`: each desired object with its drift,
/// (masked) diff and health, then those left to prune. Health is judged by
/// `checks` (the environment's, built-in rules for the other kinds) for a
/// cluster of `provider` (`eks`, `kubeconfig`...) from the live objects the
/// plan already read: no request.
pub fn objects(plan: &Plan, app: &str, checks: &HealthChecks, provider: &str) -> Vec<ObjectState> {
    let context = checks.context(provider, Some(tidegate_health::Timestamp::now()));
    let kind = |k: &tidegate_core::ObjectKey| {
        if k.group.is_empty() {
            k.kind.clone()
        } else {
            format!("{}.{}", k.kind, k.group)
        }
    };
    let mut out: Vec<ObjectState> = plan
        .objects
        .iter()
        .filter(|o| o.app == app)
        .map(|o| {
            let key = &o.object.key;
            let (drift, diff) = match &o.diff {
                None => ("drifted", String::new()),
                Some(d) => match d.status {
                    tidegate_diff::DiffStatus::InSync => ("in-sync", String::new()),
                    tidegate_diff::DiffStatus::Missing => {
                        ("missing", tidegate_diff::unified(d, false))
                    }
                    _ => ("drifted", tidegate_diff::unified(d, false)),
                },
            };
            let health = match drift {
                "missing" => None,
                _ => plan.live.get(key).map(|live| {
                    let context = tidegate_health::Context {
                        status_subresource: o.resolved.as_ref().map(|r| r.status_subresource),
                        ..context.clone()
                    };
                    checks
                        .assess(&context, &key.group, &key.kind, Some(&**live))
                        .health
                        .status
                }),
            };
            ObjectState {
                kind: kind(key),
                namespace: key.namespace.clone().unwrap_or_default(),
                name: key.name.clone(),
                drift,
                diff,
                health,
            }
        })
        .collect();
    out.extend(
        plan.prune
            .iter()
            .filter(|p| p.app == app)
            .map(|p| ObjectState {
                kind: kind(&p.diff.key),
                namespace: p.diff.key.namespace.clone().unwrap_or_default(),
                name: p.diff.key.name.clone(),
                drift: "prune",
                diff: String::new(),
                health: None,
            }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: &str = r#"apiVersion: tidegate.dev/v1alpha1
kind: Environment
metadata:
  name: prod
spec:
  source:
    repoURL: .
    path: manifests
  clusters:
    - name: eks-a
      provider:
        eks:
          region: us-east-1
          clusterName: a
      wave: 1
    - name: local
      provider:
        kubeconfig:
          context: local
      labels:
        cloud: onprem
        region: dc1
      wave: 2
  apps:
    - name: web
  rollout:
    maxSurge: 25%
    maxUnavailable: 1
    bakeTime: 30s
    failurePolicy: halt
    waves:
      - wave: 2
        approval: required
  blueGreen:
    - app: web
      services: [web]
      colors:
        blue:
          deployment: web-blue
        green:
          deployment: web-green
      activeColor: green
"#;

    #[test]
    fn the_view_of_an_environment_names_clouds_regions_limits_and_colours() {
        let env = Environment::parse(ENV, "environments/prod.yaml").expect("valid");
        let view = EnvironmentView::of(&env, "abc");
        assert_eq!(view.environment, "prod");
        assert_eq!(view.revision, "abc");
        let eks = &view.clusters[0];
        assert_eq!(
            (eks.cloud.as_str(), eks.region.as_str(), eks.wave),
            ("eks", "us-east-1", Some(1))
        );
        let local = &view.clusters[1];
        assert_eq!(
            (local.cloud.as_str(), local.region.as_str(), local.wave),
            ("onprem", "dc1", Some(2))
        );
        assert_eq!(view.apps, ["web"]);
        assert_eq!(view.limits.max_surge, "25%");
        assert_eq!(view.limits.max_unavailable, "1");
        assert_eq!(view.limits.bake_time, Duration::from_secs(30));
        assert_eq!(view.limits.failure_policy, "halt");
        assert_eq!(view.limits.approval_waves, [2]);
        assert_eq!(
            view.active_colors.get("web").map(String::as_str),
            Some("green")
        );
    }
}

#[cfg(test)]
mod object_tests {
    use super::*;
    use serde_json::{Value, json};
    use std::sync::Arc;
    use tidegate_core::{ObjectKey, Provenance, RenderedObject};
    use tidegate_diff::{DiffInput, Prediction, diff_object};
    use tidegate_sync::PlannedObject;

    fn deployment(name: &str, ready: u64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "web", "generation": 1},
            "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                       "readyReplicas": ready, "availableReplicas": ready},
        })
    }

    /// A planned object of app `web`: `desired` against `live`.
    fn planned(key: &ObjectKey, desired: &Value, live: Option<&Value>) -> PlannedObject {
        PlannedObject {
            app: "web".into(),
            object: RenderedObject {
                key: key.clone(),
                manifest: desired.clone().into(),
                provenance: Provenance {
                    commit: "abc".into(),
                    path: "manifests/web.yaml".into(),
                    document: 0,
                    line: 1,
                },
            },
            resolved: None,
            diff: Some(diff_object(DiffInput {
                key,
                desired,
                live,
                prediction: Prediction::DryRun(live.unwrap_or(desired)),
                ignore: &[],
            })),
            force: false,
            no_op_at: None,
        }
    }

    #[test]
    fn each_object_carries_the_health_of_its_live_object_and_missing_ones_none() {
        let ready = ObjectKey::new("apps", "Deployment", Some("web"), "ready");
        let waiting = ObjectKey::new("apps", "Deployment", Some("web"), "waiting");
        let absent = ObjectKey::new("apps", "Deployment", Some("web"), "absent");
        let config = ObjectKey::new("", "ConfigMap", Some("web"), "config");
        let config_live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": "web"}, "data": {"a": "1"}});
        let live = BTreeMap::from([
            (ready.clone(), Arc::new(deployment("ready", 2))),
            (waiting.clone(), Arc::new(deployment("waiting", 0))),
            (config.clone(), Arc::new(config_live.clone())),
        ]);
        let plan = Plan {
            cluster: "local".into(),
            environment: "prod".into(),
            revision: "abc".into(),
            objects: vec![
                planned(&ready, &deployment("ready", 2), Some(&live[&ready])),
                planned(&waiting, &deployment("waiting", 0), Some(&live[&waiting])),
                planned(&absent, &deployment("absent", 0), None),
                planned(&config, &config_live, Some(&config_live)),
            ],
            prune: Vec::new(),
            inventories: Vec::new(),
            departed: Vec::new(),
            previous: Vec::new(),
            problems: Vec::new(),
            verdicts_used: 0,
            read: live.keys().cloned().collect(),
            live,
        };
        let health = |checks: &HealthChecks| {
            objects(&plan, "web", checks, "kubeconfig")
                .into_iter()
                .map(|o| (o.name, o.drift, o.health))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            health(&HealthChecks::new()),
            [
                ("ready".to_string(), "in-sync", Some(HealthStatus::Healthy)),
                ("waiting".into(), "in-sync", Some(HealthStatus::Progressing)),
                ("absent".into(), "missing", None),
                ("config".into(), "in-sync", Some(HealthStatus::Healthy)),
            ]
        );
        // The environment's own checks decide for the kinds they cover.
        let mut custom = HealthChecks::new();
        custom
            .add_inline_lua(
                "",
                "ConfigMap",
                "environments/prod.yaml:9",
                "return {status = \"Degraded\", message = \"no\"}",
            )
            .expect("valid Lua");
        assert_eq!(
            health(&custom)[3],
            ("config".into(), "in-sync", Some(HealthStatus::Degraded))
        );
        assert!(objects(&plan, "other", &custom, "kubeconfig").is_empty());
    }
}
