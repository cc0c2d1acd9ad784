//! The fleet page's read model: what the controller's events said, kept
//! per environment and cluster, with a version that changes with every
//! event that changes the page (what live updates wait on).

use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, SystemTime},
};
use tidegate_controller::{
    Event, RolloutOutcome,
    view::{ClusterState, EnvironmentView, ObjectState},
};
use tidegate_health::HealthStatus;
use tokio::sync::watch;

/// How many finished rollouts are kept per environment.
pub const ROLLOUTS_KEPT: usize = 10;

/// The read model: fed by [`FleetModel::record`], read by the pages.
#[derive(Debug)]
pub struct FleetModel {
    state: Mutex<Fleet>,
    version: watch::Sender<u64>,
}

/// Everything known of the fleet.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Each environment, by name.
    pub environments: BTreeMap<String, EnvironmentState>,
    /// Whether the audit trail last verified end to end (`None`: not yet).
    pub audit_verified: Option<bool>,
}

/// One environment.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentState {
    /// As its last load declared it (`None` until loaded).
    pub view: Option<EnvironmentView>,
    /// `spec.source.repoURL` (what commit links point into).
    pub source: Option<String>,
    /// Each cluster's live state, by name.
    pub clusters: BTreeMap<String, ClusterLive>,
    /// Its rollouts, oldest first; the last one may be running.
    pub rollouts: Vec<Rollout>,
}

/// What the events said about one cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterLive {
    /// The revision it runs.
    pub revision: Option<String>,
    /// Its health as last seen.
    pub health: Option<HealthStatus>,
    /// Drifted objects per app.
    pub drift: BTreeMap<String, u64>,
    /// Whether its last apply succeeded.
    pub last_sync: Option<bool>,
    /// Each app's objects as the last drift check found them.
    pub objects: BTreeMap<String, Vec<ObjectState>>,
    /// When each app's last drift check was received (UTC, to the second):
    /// its objects' health and drift are as of then.
    pub objects_checked: BTreeMap<String, String>,
}

/// One rollout, running or ended.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// A number, counting from 1 per environment (its address on the page).
    pub number: u64,
    /// The commit rolled out.
    pub revision: String,
    /// What started it.
    pub trigger: String,
    /// When it started.
    pub started: SystemTime,
    /// When it ended (`None`: running).
    pub ended: Option<SystemTime>,
    /// Each cluster's place, as of the last progress.
    pub clusters: Vec<ClusterState>,
    /// How it ended.
    pub outcome: Option<RolloutOutcome>,
    /// Why it failed, when it did.
    pub failure: Option<String>,
}

impl Rollout {
    /// How long it ran (so far).
    pub fn duration(&self) -> Duration {
        self.ended
            .unwrap_or_else(SystemTime::now)
            .duration_since(self.started)
            .unwrap_or_default()
    }
}

impl Default for FleetModel {
    fn default() -> Self {
        FleetModel::new()
    }
}

impl FleetModel {
    /// An empty model.
    pub fn new() -> FleetModel {
        FleetModel {
            state: Mutex::new(Fleet::default()),
            version: watch::Sender::new(0),
        }
    }

    /// Records one of the controller's events.
    pub fn record(&self, event: &Event) {
        let Ok(mut fleet) = self.state.lock() else {
            return;
        };
        if apply(&mut fleet, event) {
            self.version.send_modify(|v| *v += 1);
        }
    }

    /// A copy of the whole model.
    pub fn snapshot(&self) -> Fleet {
        self.state.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// A copy of one environment.
    pub fn environment(&self, name: &str) -> Option<EnvironmentState> {
        self.state
            .lock()
            .ok()
            .and_then(|f| f.environments.get(name).cloned())
    }

    /// Whether the audit trail last verified (`None`: not yet).
    pub fn audit_verified(&self) -> Option<bool> {
        self.state.lock().ok().and_then(|f| f.audit_verified)
    }

    /// A receiver that sees every change of the model.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

/// Applies `event` to `fleet`; false when it changed nothing the page shows.
fn apply(fleet: &mut Fleet, event: &Event) -> bool {
    // The environment named `$name`, created on first mention.
    macro_rules! e {
        ($name:expr) => {
            fleet.environments.entry($name.to_string()).or_default()
        };
    }
    match event {
        Event::AuditVerified { ok } => fleet.audit_verified = Some(*ok),
        Event::Following {
            environment,
            repo_url,
            ..
        } => e!(environment).source = Some(repo_url.clone()),
        Event::Environment(view) => {
            let e = e!(view.environment);
            for c in &view.clusters {
                e.clusters.entry(c.name.clone()).or_default();
            }
            e.view = Some((**view).clone());
        }
        Event::Applied {
            environment,
            cluster,
            revision,
        } => cluster_of(e!(environment), cluster).revision = Some(revision.clone()),
        Event::Health {
            environment,
            cluster,
            status,
        } => cluster_of(e!(environment), cluster).health = Some(*status),
        Event::Drift {
            environment,
            cluster,
            app,
            objects,
        } => {
            cluster_of(e!(environment), cluster)
                .drift
                .insert(app.clone(), *objects);
        }
        Event::Synced {
            environment,
            cluster,
            succeeded,
            ..
        } => cluster_of(e!(environment), cluster).last_sync = Some(*succeeded),
        Event::Objects {
            environment,
            cluster,
            app,
            objects,
        } => {
            let live = cluster_of(e!(environment), cluster);
            live.objects.insert(app.clone(), objects.clone());
            live.objects_checked.insert(
                app.clone(),
                jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .unwrap_or_else(|_| jiff::Timestamp::now())
                    .to_string(),
            );
        }
        Event::RolloutStarted {
            environment,
            revision,
            trigger,
        } => {
            let e = e!(environment);
            let number = e.rollouts.last().map_or(1, |r| r.number + 1);
            e.rollouts.push(Rollout {
                number,
                revision: revision.clone(),
                trigger: trigger.clone(),
                started: SystemTime::now(),
                ended: None,
                clusters: Vec::new(),
                outcome: None,
                failure: None,
            });
            if e.rollouts.len() > ROLLOUTS_KEPT {
                e.rollouts.remove(0);
            }
        }
        Event::Progress {
            environment,
            clusters,
        } => {
            let e = e!(environment);
            for c in clusters {
                cluster_of(e, &c.cluster).health = Some(c.health);
            }
            match e.rollouts.last_mut() {
                Some(r) if r.ended.is_none() => r.clusters = clusters.clone(),
                _ => return false,
            }
        }
        Event::RollbackSettled {
            environment,
            cluster,
            restored,
        } => match e!(environment).rollouts.last_mut() {
            Some(r) if r.ended.is_none() => {
                let Some(c) = r.clusters.iter_mut().find(|c| c.cluster == *cluster) else {
                    return false;
                };
                c.state = if *restored {
                    "RolledBack"
                } else {
                    "NotRestored"
                }
                .into();
            }
            _ => return false,
        },
        Event::RolloutFailed {
            environment,
            failure,
        } => match e!(environment).rollouts.last_mut() {
            Some(r) if r.ended.is_none() => r.failure = Some(failure.clone()),
            _ => return false,
        },
        Event::Rollout {
            environment,
            outcome,
        } => match e!(environment).rollouts.last_mut() {
            Some(r) if r.ended.is_none() => {
                r.outcome = Some(*outcome);
                r.ended = Some(SystemTime::now());
            }
            _ => return false,
        },
        _ => return false,
    }
    true
}

fn cluster_of<'e>(env: &'e mut EnvironmentState, cluster: &str) -> &'e mut ClusterLive {
    env.clusters.entry(cluster.to_string()).or_default()
}

#[cfg(test)]
mod tests;
