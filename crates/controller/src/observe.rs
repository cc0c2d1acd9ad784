//! What the controller tells an observer (the HTTP server's metrics and
//! readiness) as it works. The controller emits [`Event`]s; it knows
//! nothing of HTTP or of a metrics format: `tidegate-server` records them.

use crate::view::{ClusterState, EnvironmentView, ObjectState};
use std::{fmt, sync::Arc, time::Duration};
use tidegate_cluster::RequestCounts;
use tidegate_fleet::{
    ClusterLine, ClusterStep, RolloutReport, TimelineEntry, switch::SwitchOutcome,
};
use tidegate_health::HealthStatus;

/// Receives the controller's events. Called inline from the reconcile
/// loops: an observer records and returns at once.
pub trait Observer: Send + Sync {
    /// One thing that happened.
    fn observe(&self, event: Event);
}

/// How a fleet rollout started by the controller ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutOutcome {
    /// Every cluster is Healthy at the revision.
    Succeeded,
    /// A wave failed: rolled back and quarantined.
    RolledBack,
    /// Stopped with clusters left as they were (`failurePolicy: halt`).
    Halted,
    /// Refused before any write (pre-flight dry run, invalid revision).
    Refused,
    /// Could not run (lock held, clusters unreachable, stopped); retried.
    Error,
}

impl RolloutOutcome {
    /// The label value: `succeeded`, `rolled-back`, `halted`, `refused`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutOutcome::Succeeded => "succeeded",
            RolloutOutcome::RolledBack => "rolled-back",
            RolloutOutcome::Halted => "halted",
            RolloutOutcome::Refused => "refused",
            RolloutOutcome::Error => "error",
        }
    }
}

/// How a blue-green switch ended (`tidegate_switches_total`'s `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchResult {
    /// Every cluster serves the new colour.
    Succeeded,
    /// A post-check failed: switched clusters were flipped back, the commit reverted.
    Reverted,
    /// A pre-check failed: nothing was changed.
    Refused,
    /// The switch could not run (lock held, Git or cluster error).
    Error,
}

impl SwitchResult {
    /// The label value: `succeeded`, `reverted`, `refused`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchResult::Succeeded => "succeeded",
            SwitchResult::Reverted => "reverted",
            SwitchResult::Refused => "refused",
            SwitchResult::Error => "error",
        }
    }

    /// How the fleet's switch (`tidegate_fleet::switch`) ended.
    pub fn of<E>(result: &Result<SwitchOutcome, E>) -> SwitchResult {
        match result {
            Ok(SwitchOutcome::Switched { .. }) => SwitchResult::Succeeded,
            Ok(SwitchOutcome::Reverted { .. }) => SwitchResult::Reverted,
            Ok(SwitchOutcome::Refused { .. }) => SwitchResult::Refused,
            Err(_) => SwitchResult::Error,
        }
    }
}

/// Something the controller did or saw. What metrics take as label values
/// is bounded: names of environments, clusters and apps from the
/// environment files, revisions, fixed words; never object names. The
/// fleet page's events ([`Event::Environment`], [`Event::Progress`],
/// [`Event::Objects`]...) carry more (object names, masked diffs): metrics
/// ignore them.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The audit store is open (`open`) or could not be opened.
    Audit {
        /// Whether it is open.
        open: bool,
    },
    /// The audit trail was verified end to end (`ok`: no problem found).
    AuditVerified {
        /// Whether the chain checked out.
        ok: bool,
    },
    /// This replica leads (or runs without leader election), or waits as a standby.
    Leading(bool),
    /// The repository and ref an environment's manifests come from
    /// (`spec.source`), as of its last load: what webhooks match pushes against.
    Following {
        /// The environment.
        environment: String,
        /// `spec.source.repoURL` (`.`: the configuration repository).
        repo_url: String,
        /// `spec.source.ref` (`HEAD`: the default branch).
        git_ref: String,
    },
    /// One fetch of an environment's source, and whether it succeeded.
    Fetched {
        /// The environment.
        environment: String,
        /// How long the fetch and load took.
        duration: Duration,
        /// Whether a commit was loaded (an invalid commit counts as fetched).
        ok: bool,
    },
    /// A cluster's sync (an apply of the rollout's target) finished.
    Synced {
        /// The environment.
        environment: String,
        /// The cluster.
        cluster: String,
        /// Whether the apply succeeded.
        succeeded: bool,
        /// From the apply issued to its answer, when both are known.
        duration: Option<Duration>,
    },
    /// A fleet rollout ended.
    Rollout {
        /// The environment.
        environment: String,
        /// How.
        outcome: RolloutOutcome,
    },
    /// The wave a rollout is in (0: no rollout under way).
    Wave {
        /// The environment.
        environment: String,
        /// The highest wave with a cluster past `Pending`.
        wave: u32,
    },
    /// A cluster's health as the last rollout saw it.
    Health {
        /// The environment.
        environment: String,
        /// The cluster.
        cluster: String,
        /// Its health.
        status: HealthStatus,
    },
    /// How many objects of an app differ from Git in a cluster (0: none).
    Drift {
        /// The environment.
        environment: String,
        /// The cluster.
        cluster: String,
        /// The app.
        app: String,
        /// Objects to apply or prune.
        objects: u64,
    },
    /// A cluster runs this revision of the environment.
    Applied {
        /// The environment.
        environment: String,
        /// The cluster.
        cluster: String,
        /// The commit SHA.
        revision: String,
    },
    /// More requests sent to a cluster since the last such event.
    Requests {
        /// The cluster.
        cluster: String,
        /// How many more of each verb, and their answers by code (boxed:
        /// the answers are a fixed table of a few hundred bytes).
        counts: Box<RequestCounts>,
    },
    /// A notification's delivery to a sink (`tidegate-notify`) ended, or
    /// one try of it failed and will be retried.
    Notification {
        /// The sink's name (from the operator's notification file).
        sink: String,
        /// The event (`rollout-failed`, ...).
        event: String,
        /// `delivered`, `retried` (one failed try), `failed` (given up),
        /// `dropped` (the sink's queue was full).
        outcome: &'static str,
    },
    /// Notifications waiting in a sink's queue.
    NotificationQueue {
        /// The sink's name.
        sink: String,
        /// Events waiting.
        depth: u64,
    },
    /// An environment's clusters, apps and rollout policy as of its last
    /// load (the fleet page's grid and limits).
    Environment(Box<EnvironmentView>),
    /// A fleet rollout started.
    RolloutStarted {
        /// The environment.
        environment: String,
        /// The commit rolled out.
        revision: String,
        /// What started it (`controller-poll`, `webhook`, `drift`...).
        trigger: String,
    },
    /// Every cluster's place in the rollout under way (sent when one changes).
    Progress {
        /// The environment.
        environment: String,
        /// Each cluster's wave, state, health and timing.
        clusters: Vec<ClusterState>,
    },
    /// Why a rollout failed (sent before its [`Event::Rollout`]).
    RolloutFailed {
        /// The environment.
        environment: String,
        /// The failure, as the fleet driver words it (cluster and reason).
        failure: String,
    },
    /// A rolled-back cluster's rollback ended (sent with the rollout's
    /// report, before its [`Event::Rollout`]; progress lines stop before).
    RollbackSettled {
        /// The environment.
        environment: String,
        /// The cluster.
        cluster: String,
        /// Back at its last good revision (`false`: the rollback failed).
        restored: bool,
    },
    /// The objects of an app in a cluster as a drift check found them,
    /// diffs masked.
    Objects {
        /// The environment.
        environment: String,
        /// The cluster.
        cluster: String,
        /// The app.
        app: String,
        /// Its objects.
        objects: Vec<ObjectState>,
    },
    /// With sharding (`--shard`): the environments this replica owns now
    /// (it holds their ownership Leases and runs their loops).
    Owned {
        /// Their names.
        environments: Vec<String>,
    },
    /// With sharding (`--shard`): how many clusters this replica watches
    /// now (every cluster of its owned environments, plus its share of the
    /// clusters of environments split by cluster: `--shard-clusters-above`).
    Watching {
        /// The count of (environment, cluster) pairs watched.
        clusters: usize,
    },
    /// A blue-green switch ended. The controller's reconcile loops never
    /// switch (a switch is a decision, not drift): this comes from whoever
    /// runs one through the server (the API's switch route), via
    /// [`Event::switched`] and the server's `Monitor` (an [`Observer`]).
    Switched {
        /// The environment.
        environment: String,
        /// The app switched.
        app: String,
        /// How it ended.
        outcome: SwitchResult,
    },
}

impl Event {
    /// The event for a finished switch of `app` in `environment`, from the
    /// fleet's answer: `monitor.observe(Event::switched(env, app, &result))`.
    pub fn switched<E>(environment: &str, app: &str, result: &Result<SwitchOutcome, E>) -> Event {
        Event::Switched {
            environment: environment.to_string(),
            app: app.to_string(),
            outcome: SwitchResult::of(result),
        }
    }
}

/// The observers of a controller (none by default). Cheap to clone.
#[derive(Clone, Default)]
pub struct Observers(Option<Arc<dyn Observer>>);

// === impl Observers ===

impl Observers {
    /// Events go to `observer`.
    pub fn new(observer: Arc<dyn Observer>) -> Observers {
        Observers(Some(observer))
    }

    /// Tells the observer, if any.
    pub fn emit(&self, event: Event) {
        if let Some(o) = &self.0 {
            o.observe(event);
        }
    }

    /// The events a rollout's progress lines carry: each cluster's health
    /// and the current wave.
    pub(crate) fn progress(&self, environment: &str, lines: &[ClusterLine]) {
        if self.0.is_none() {
            return;
        }
        for l in lines {
            self.emit(Event::Health {
                environment: environment.to_string(),
                cluster: l.cluster.clone(),
                status: l.health,
            });
        }
        self.emit(Event::Wave {
            environment: environment.to_string(),
            wave: current_wave(lines),
        });
        self.emit(Event::Progress {
            environment: environment.to_string(),
            clusters: crate::view::cluster_states(lines),
        });
    }

    /// The events a finished rollout's report carries: each cluster's
    /// apply (from the timeline) and the requests the rollout sent (but
    /// those to `counted_elsewhere`: engines the loop shared, counted by it).
    pub(crate) fn report(
        &self,
        environment: &str,
        report: &RolloutReport,
        counted_elsewhere: &std::collections::BTreeSet<String>,
    ) {
        if self.0.is_none() {
            return;
        }
        for (cluster, succeeded, duration) in applies(&report.timeline) {
            self.emit(Event::Synced {
                environment: environment.to_string(),
                cluster,
                succeeded,
                duration,
            });
        }
        for (cluster, restored) in rollbacks(&report.timeline) {
            self.emit(Event::RollbackSettled {
                environment: environment.to_string(),
                cluster,
                restored,
            });
        }
        for (cluster, counts) in report
            .requests
            .iter()
            .filter(|(c, _)| !counted_elsewhere.contains(*c))
        {
            self.emit(Event::Requests {
                cluster: cluster.clone(),
                counts: Box::new(*counts),
            });
        }
    }
}

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observers(1)"
        } else {
            "Observers(0)"
        })
    }
}

/// The highest wave with a cluster past `Pending` (0 when none is).
fn current_wave(lines: &[ClusterLine]) -> u32 {
    lines
        .iter()
        .filter(|l| l.state != "Pending")
        .map(|l| l.wave)
        .max()
        .unwrap_or(0)
}

/// Each apply's answer in a timeline: (cluster, succeeded, time since it was issued).
fn applies(timeline: &[TimelineEntry]) -> Vec<(String, bool, Option<Duration>)> {
    let mut issued: std::collections::BTreeMap<&str, Duration> = Default::default();
    let mut out = Vec::new();
    for (cluster, step, at) in timeline {
        match step {
            ClusterStep::Apply => {
                issued.insert(cluster, *at);
            }
            ClusterStep::Applied | ClusterStep::ApplyFailed => {
                let duration = issued
                    .remove(cluster.as_str())
                    .map(|issued| at.saturating_sub(issued));
                out.push((cluster.clone(), *step == ClusterStep::Applied, duration));
            }
            _ => {}
        }
    }
    out
}

/// Each rollback's end in a timeline: (cluster, restored).
fn rollbacks(timeline: &[TimelineEntry]) -> Vec<(String, bool)> {
    timeline
        .iter()
        .filter_map(|(cluster, step, _)| match step {
            ClusterStep::RolledBack => Some((cluster.clone(), true)),
            ClusterStep::RollbackFailed => Some((cluster.clone(), false)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(cluster: &str, wave: u32, state: &str) -> ClusterLine {
        ClusterLine {
            cluster: cluster.into(),
            wave,
            state: state.into(),
            health: HealthStatus::Healthy,
            elapsed: None,
        }
    }

    #[test]
    fn a_switch_event_names_how_the_switch_ended() {
        let refused: Result<SwitchOutcome, &str> = Ok(SwitchOutcome::Refused {
            problems: vec!["blue is not ready".into()],
        });
        assert_eq!(
            Event::switched("prod", "web", &refused),
            Event::Switched {
                environment: "prod".into(),
                app: "web".into(),
                outcome: SwitchResult::Refused,
            }
        );
        let failed: Result<SwitchOutcome, &str> = Err("lock held");
        assert_eq!(SwitchResult::of(&failed).as_str(), "error");
    }

    #[test]
    fn the_current_wave_is_the_highest_one_started() {
        assert_eq!(current_wave(&[line("a", 1, "Pending")]), 0);
        assert_eq!(
            current_wave(&[
                line("a", 1, "Updated"),
                line("b", 2, "Applying"),
                line("c", 3, "Pending")
            ]),
            2
        );
    }

    #[test]
    fn applies_pair_each_answer_with_its_issue() {
        let entry =
            |cluster: &str, step, secs| (cluster.to_string(), step, Duration::from_secs(secs));
        let timeline = [
            entry("a", ClusterStep::Apply, 1),
            entry("b", ClusterStep::Apply, 2),
            entry("a", ClusterStep::Applied, 4),
            entry("b", ClusterStep::ApplyFailed, 7),
            entry("b", ClusterStep::Rollback, 8),
        ];
        assert_eq!(rollbacks(&timeline), vec![]);
        let done = [
            entry("b", ClusterStep::Rollback, 8),
            entry("b", ClusterStep::RolledBack, 9),
            entry("c", ClusterStep::RollbackFailed, 9),
        ];
        assert_eq!(
            rollbacks(&done),
            vec![("b".into(), true), ("c".into(), false)]
        );
        assert_eq!(
            applies(&timeline),
            vec![
                ("a".into(), true, Some(Duration::from_secs(3))),
                ("b".into(), false, Some(Duration::from_secs(5))),
            ]
        );
    }
}
