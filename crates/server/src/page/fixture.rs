//! A fleet of any size made of the controller's events, for tests and the
//! page benchmark (`make bench-page`).

use super::model::FleetModel;
use std::{collections::BTreeMap, time::Duration};
use tidegate_controller::{
    Event, RolloutOutcome,
    view::{ClusterInfo, ClusterState, EnvironmentView, Limits, ObjectState},
};
use tidegate_health::HealthStatus;

/// The revision every fixture cluster runs.
pub const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

/// An environment's view with `clusters` clusters (three clouds, waves of
/// ten) and `apps` apps.
pub fn environment(name: &str, clusters: usize, apps: usize) -> EnvironmentView {
    let clouds = ["eks", "aks", "gke"];
    let regions = ["us-east-1", "westeurope", "us-central1"];
    EnvironmentView {
        environment: name.to_string(),
        revision: REVISION.to_string(),
        clusters: (0..clusters)
            .map(|i| ClusterInfo {
                name: format!("{}-{}-{i:03}", clouds[i % 3], regions[i % 3]),
                cloud: clouds[i % 3].to_string(),
                region: regions[i % 3].to_string(),
                labels: BTreeMap::from([("tier".to_string(), format!("t{}", i % 2))]),
                wave: Some(1 + (i / 10) as u32),
            })
            .collect(),
        apps: (0..apps).map(|a| format!("app-{a:02}")).collect(),
        limits: Limits {
            max_surge: "10".into(),
            max_unavailable: "1".into(),
            bake_time: Duration::from_secs(60),
            failure_policy: "rollback".into(),
            approval_waves: vec![2],
            analyses: vec!["error-rate".into()],
        },
        active_colors: BTreeMap::from([("app-00".to_string(), "blue".to_string())]),
    }
}

/// Tells `model` what a controller of `view` would: the load, each
/// cluster's revision, health and drift (one drifted object in every
/// seventh cluster), `objects` objects per app, and a rollout with its
/// first wave done.
pub fn feed(model: &FleetModel, view: &EnvironmentView, objects: usize) {
    let env = view.environment.clone();
    model.record(&Event::Environment(Box::new(view.clone())));
    model.record(&Event::RolloutStarted {
        environment: env.clone(),
        revision: REVISION.into(),
        trigger: "webhook".into(),
    });
    for (i, c) in view.clusters.iter().enumerate() {
        model.record(&Event::Applied {
            environment: env.clone(),
            cluster: c.name.clone(),
            revision: REVISION.into(),
        });
        model.record(&Event::Health {
            environment: env.clone(),
            cluster: c.name.clone(),
            status: HealthStatus::Healthy,
        });
        for app in &view.apps {
            let drifted = u64::from(i % 7 == 0);
            model.record(&Event::Drift {
                environment: env.clone(),
                cluster: c.name.clone(),
                app: app.clone(),
                objects: drifted,
            });
            model.record(&Event::Objects {
                environment: env.clone(),
                cluster: c.name.clone(),
                app: app.clone(),
                objects: (0..objects)
                    .map(|o| ObjectState {
                        kind: "Deployment".into(),
                        namespace: app.clone(),
                        name: format!("{app}-{o}"),
                        drift: if drifted == 1 && o == 0 {
                            "drifted"
                        } else {
                            "in-sync"
                        },
                        diff: String::new(),
                        health: Some(HealthStatus::Healthy),
                    })
                    .collect(),
            });
        }
    }
    model.record(&Event::Progress {
        environment: env,
        clusters: view
            .clusters
            .iter()
            .map(|c| ClusterState {
                cluster: c.name.clone(),
                wave: c.wave.unwrap_or(1),
                state: if c.wave == Some(1) {
                    "Updated"
                } else {
                    "Pending"
                }
                .into(),
                health: HealthStatus::Healthy,
                elapsed: Some(Duration::from_millis(4200)),
            })
            .collect(),
    });
}

/// Ends the running rollout of `env` with `outcome`.
pub fn end(model: &FleetModel, env: &str, outcome: RolloutOutcome) {
    model.record(&Event::Rollout {
        environment: env.to_string(),
        outcome,
    });
}
