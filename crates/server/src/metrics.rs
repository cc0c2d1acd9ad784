//! The controller's Prometheus metrics (OpenMetrics text), recorded from
//! its [`Event`]s.
//!
//! Label cardinality is bounded: environments, clusters and apps come from
//! the environment files, revisions from Git (one live series per
//! environment and cluster), the rest are fixed words. No object name is
//! ever a label.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use std::{collections::BTreeMap, sync::Mutex};
use tidegate_cluster::RequestCounts;
use tidegate_controller::Event;
use tidegate_health::HealthStatus;

/// Every health status, for the one-hot `tidegate_cluster_health` gauge.
const STATUSES: [HealthStatus; 6] = [
    HealthStatus::Healthy,
    HealthStatus::Suspended,
    HealthStatus::Progressing,
    HealthStatus::Missing,
    HealthStatus::Degraded,
    HealthStatus::Unknown,
];

/// Buckets of the sync duration histogram, in seconds (0.25 s to 8.5 min).
const SYNC_BUCKETS: [f64; 12] = [
    0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
];

/// Buckets of the Git fetch histogram, in seconds (10 ms to 41 s).
const FETCH_BUCKETS: [f64; 13] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Env {
    env: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvCluster {
    env: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    env: String,
    cluster: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    env: String,
    cluster: String,
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    env: String,
    cluster: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    env: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SwitchLabels {
    env: String,
    app: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    cluster: String,
    verb: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    sink: String,
    event: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    env: String,
    cluster: String,
    revision: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn sync_histogram() -> Histogram {
    Histogram::new(SYNC_BUCKETS)
}

fn fetch_histogram() -> Histogram {
    Histogram::new(FETCH_BUCKETS)
}

/// The metrics, registered once.
pub struct Metrics {
    registry: Registry,
    syncs: Family<SyncLabels, Counter>,
    sync_duration: Histograms<EnvCluster>,
    drift: Family<DriftLabels, Gauge>,
    health: Family<HealthLabels, Gauge>,
    rollouts: Family<OutcomeLabels, Counter>,
    rollbacks: Family<Env, Counter>,
    switches: Family<SwitchLabels, Counter>,
    wave: Family<Env, Gauge>,
    fetch_duration: Histograms<Env>,
    requests: Family<RequestLabels, Counter>,
    revision: Family<RevisionLabels, Gauge>,
    leader: Gauge,
    audit_verified: Gauge,
    shard_environments: Gauge,
    shard_clusters: Gauge,
    notifications: Family<NotificationLabels, Counter>,
    notification_queue: Family<SinkLabels, Gauge>,
    /// The revision each (environment, cluster) series carries now, so the
    /// previous one's series is removed.
    revisions: Mutex<BTreeMap<(String, String), String>>,
}

// === impl Metrics ===

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered and empty.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            syncs: Family::default(),
            sync_duration: Family::new_with_constructor(sync_histogram),
            drift: Family::default(),
            health: Family::default(),
            rollouts: Family::default(),
            rollbacks: Family::default(),
            switches: Family::default(),
            wave: Family::default(),
            fetch_duration: Family::new_with_constructor(fetch_histogram),
            requests: Family::default(),
            revision: Family::default(),
            leader: Gauge::default(),
            audit_verified: Gauge::default(),
            shard_environments: Gauge::default(),
            shard_clusters: Gauge::default(),
            notifications: Family::default(),
            notification_queue: Family::default(),
            revisions: Mutex::new(BTreeMap::new()),
        };
        // Counters are registered without `_total`: the encoder adds it.
        registry.register(
            "tidegate_sync",
            "Cluster syncs (applies of a rollout's target revision) by result: succeeded, failed",
            m.syncs.clone(),
        );
        registry.register(
            "tidegate_sync_duration_seconds",
            "Time from a cluster's apply being issued to its answer",
            m.sync_duration.clone(),
        );
        registry.register(
            "tidegate_drift_objects",
            "Objects of an app that differ from Git in a cluster (to apply or prune), as of the last drift check",
            m.drift.clone(),
        );
        registry.register(
            "tidegate_cluster_health",
            "1 for a cluster's health status as the last rollout saw it, 0 for the other statuses",
            m.health.clone(),
        );
        registry.register(
            "tidegate_rollouts",
            "Fleet rollouts started by the controller, by outcome: succeeded, rolled-back, halted, refused, error",
            m.rollouts.clone(),
        );
        registry.register(
            "tidegate_rollbacks",
            "Fleet rollouts that failed and were rolled back",
            m.rollbacks.clone(),
        );
        registry.register(
            "tidegate_switches",
            "Blue-green switches made through the controller's server, by outcome: succeeded, reverted, refused, error",
            m.switches.clone(),
        );
        registry.register(
            "tidegate_wave",
            "The wave a rollout is in (0: no rollout under way)",
            m.wave.clone(),
        );
        registry.register(
            "tidegate_git_fetch_duration_seconds",
            "Time to fetch an environment's source and load the head commit",
            m.fetch_duration.clone(),
        );
        registry.register(
            "tidegate_api_requests",
            "Answers from a cluster's API server by verb (read, watch, dry-run, write) and code (the status code, its class 1xx-5xx for uncommon codes, or error: no answer)",
            m.requests.clone(),
        );
        registry.register(
            "tidegate_last_applied_revision_info",
            "The revision each cluster of an environment runs (value 1)",
            m.revision.clone(),
        );
        registry.register(
            "tidegate_leader",
            "1 while this replica leads (or runs without leader election), 0 on standby",
            m.leader.clone(),
        );
        registry.register(
            "tidegate_audit_verify_ok",
            "1 when the last end-to-end check of the audit trail's hash chain found no problem, 0 when it found one or could not run",
            m.audit_verified.clone(),
        );
        registry.register(
            "tidegate_shard_environments",
            "With --shard: the environments this replica owns (holds the ownership Lease of and reconciles)",
            m.shard_environments.clone(),
        );
        registry.register(
            "tidegate_shard_clusters",
            "With --shard: the clusters this replica watches (every cluster of its owned environments, plus its share of the clusters of environments split by cluster)",
            m.shard_clusters.clone(),
        );
        registry.register(
            "tidegate_notifications",
            "Notification deliveries by sink, event and outcome: delivered, retried (one failed try), failed (given up), dropped (queue full)",
            m.notifications.clone(),
        );
        registry.register(
            "tidegate_notification_queue",
            "Notifications waiting in a sink's queue",
            m.notification_queue.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records one event of the controller.
    pub fn record(&self, event: &Event) {
        match event {
            Event::Leading(leading) => {
                self.leader.set(i64::from(*leading));
            }
            Event::AuditVerified { ok } => {
                self.audit_verified.set(i64::from(*ok));
            }
            Event::Fetched {
                environment,
                duration,
                ..
            } => {
                self.fetch_duration
                    .get_or_create(&env(environment))
                    .observe(duration.as_secs_f64());
            }
            Event::Synced {
                environment,
                cluster,
                succeeded,
                duration,
            } => {
                let result = if *succeeded { "succeeded" } else { "failed" };
                self.syncs
                    .get_or_create(&SyncLabels {
                        env: environment.clone(),
                        cluster: cluster.clone(),
                        result: result.into(),
                    })
                    .inc();
                if let Some(d) = duration {
                    self.sync_duration
                        .get_or_create(&EnvCluster {
                            env: environment.clone(),
                            cluster: cluster.clone(),
                        })
                        .observe(d.as_secs_f64());
                }
            }
            Event::Rollout {
                environment,
                outcome,
            } => {
                self.rollouts
                    .get_or_create(&OutcomeLabels {
                        env: environment.clone(),
                        outcome: outcome.as_str().into(),
                    })
                    .inc();
                if *outcome == tidegate_controller::RolloutOutcome::RolledBack {
                    self.rollbacks.get_or_create(&env(environment)).inc();
                }
            }
            Event::Wave { environment, wave } => {
                self.wave
                    .get_or_create(&env(environment))
                    .set(i64::from(*wave));
            }
            Event::Health {
                environment,
                cluster,
                status,
            } => {
                for s in STATUSES {
                    self.health
                        .get_or_create(&HealthLabels {
                            env: environment.clone(),
                            cluster: cluster.clone(),
                            status: s.as_str().into(),
                        })
                        .set(i64::from(s == *status));
                }
            }
            Event::Drift {
                environment,
                cluster,
                app,
                objects,
            } => {
                self.drift
                    .get_or_create(&DriftLabels {
                        env: environment.clone(),
                        cluster: cluster.clone(),
                        app: app.clone(),
                    })
                    .set(i64::try_from(*objects).unwrap_or(i64::MAX));
            }
            Event::Applied {
                environment,
                cluster,
                revision,
            } => self.applied(environment, cluster, revision),
            Event::Requests { cluster, counts } => self.requests(cluster, counts),
            Event::Owned { environments } => {
                self.shard_environments
                    .set(i64::try_from(environments.len()).unwrap_or(i64::MAX));
            }
            Event::Watching { clusters } => {
                self.shard_clusters
                    .set(i64::try_from(*clusters).unwrap_or(i64::MAX));
            }
            Event::Switched {
                environment,
                app,
                outcome,
            } => self.switched(environment, app, outcome.as_str()),
            Event::Notification {
                sink,
                event,
                outcome,
            } => {
                self.notifications
                    .get_or_create(&NotificationLabels {
                        sink: sink.clone(),
                        event: event.clone(),
                        outcome: (*outcome).into(),
                    })
                    .inc();
            }
            Event::NotificationQueue { sink, depth } => {
                self.notification_queue
                    .get_or_create(&SinkLabels { sink: sink.clone() })
                    .set(i64::try_from(*depth).unwrap_or(i64::MAX));
            }
            Event::Audit { .. } | Event::Following { .. } => {}
            // The fleet page's events (crates/server/src/page): no metric.
            Event::Environment(_)
            | Event::RolloutStarted { .. }
            | Event::Progress { .. }
            | Event::RolloutFailed { .. }
            | Event::RollbackSettled { .. }
            | Event::Objects { .. } => {}
        }
    }

    /// Counts a blue-green switch (recorded from [`Event::Switched`]: the
    /// controller's loops run none; switches made through the server do).
    pub fn switched(&self, environment: &str, app: &str, outcome: &str) {
        self.switches
            .get_or_create(&SwitchLabels {
                env: environment.into(),
                app: app.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    fn applied(&self, environment: &str, cluster: &str, revision: &str) {
        let Ok(mut revisions) = self.revisions.lock() else {
            return;
        };
        let key = (environment.to_string(), cluster.to_string());
        if let Some(old) = revisions.insert(key, revision.to_string())
            && old != revision
        {
            self.revision.remove(&RevisionLabels {
                env: environment.into(),
                cluster: cluster.into(),
                revision: old,
            });
        }
        self.revision
            .get_or_create(&RevisionLabels {
                env: environment.into(),
                cluster: cluster.into(),
                revision: revision.into(),
            })
            .set(1);
    }

    /// Counts the answers (not the requests sent: a request is counted
    /// once its answer, or its failure, is known, with its code).
    fn requests(&self, cluster: &str, counts: &RequestCounts) {
        for (verb, code, n) in counts.answers.iter() {
            self.requests
                .get_or_create(&RequestLabels {
                    cluster: cluster.into(),
                    verb: verb.into(),
                    code: code.into(),
                })
                .inc_by(n);
        }
    }
}

fn env(environment: &str) -> Env {
    Env {
        env: environment.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn line<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn every_metric_is_exposed_with_its_labels() {
        let m = Metrics::new();
        m.record(&Event::Leading(true));
        m.record(&Event::AuditVerified { ok: true });
        m.record(&Event::Synced {
            environment: "prod".into(),
            cluster: "eks".into(),
            succeeded: true,
            duration: Some(Duration::from_millis(1500)),
        });
        m.record(&Event::Drift {
            environment: "prod".into(),
            cluster: "eks".into(),
            app: "web".into(),
            objects: 2,
        });
        m.record(&Event::Health {
            environment: "prod".into(),
            cluster: "eks".into(),
            status: HealthStatus::Degraded,
        });
        m.record(&Event::Rollout {
            environment: "prod".into(),
            outcome: tidegate_controller::RolloutOutcome::RolledBack,
        });
        m.record(&Event::Wave {
            environment: "prod".into(),
            wave: 2,
        });
        m.record(&Event::Fetched {
            environment: "prod".into(),
            duration: Duration::from_millis(30),
            ok: true,
        });
        m.record(&Event::Requests {
            cluster: "eks".into(),
            counts: Box::new(RequestCounts {
                reads: 3,
                watches: 1,
                dry_runs: 0,
                writes: 2,
                answers: tidegate_cluster::Answers::of([
                    ("read", "200", 2),
                    ("read", "404", 1),
                    ("watch", "200", 1),
                    ("write", "403", 1),
                    ("write", "error", 1),
                ]),
            }),
        });
        m.record(&Event::Switched {
            environment: "prod".into(),
            app: "web".into(),
            outcome: tidegate_controller::SwitchResult::Succeeded,
        });
        m.record(&Event::Switched {
            environment: "prod".into(),
            app: "web".into(),
            outcome: tidegate_controller::SwitchResult::Reverted,
        });
        let text = m.encode();
        assert_eq!(
            line(&text, "tidegate_sync_total"),
            ["tidegate_sync_total{env=\"prod\",cluster=\"eks\",result=\"succeeded\"} 1"]
        );
        assert!(text.contains(
            "tidegate_sync_duration_seconds_bucket{le=\"2.0\",env=\"prod\",cluster=\"eks\"} 1"
        ));
        assert!(text.contains(
            "tidegate_sync_duration_seconds_bucket{le=\"1.0\",env=\"prod\",cluster=\"eks\"} 0"
        ));
        assert_eq!(
            line(&text, "tidegate_drift_objects{"),
            ["tidegate_drift_objects{env=\"prod\",cluster=\"eks\",app=\"web\"} 2"]
        );
        assert!(text.contains(
            "tidegate_cluster_health{env=\"prod\",cluster=\"eks\",status=\"Degraded\"} 1"
        ));
        assert!(text.contains(
            "tidegate_cluster_health{env=\"prod\",cluster=\"eks\",status=\"Healthy\"} 0"
        ));
        assert!(text.contains("tidegate_rollouts_total{env=\"prod\",outcome=\"rolled-back\"} 1"));
        assert!(text.contains("tidegate_rollbacks_total{env=\"prod\"} 1"));
        assert!(
            text.contains(
                "tidegate_switches_total{env=\"prod\",app=\"web\",outcome=\"succeeded\"} 1"
            )
        );
        assert!(
            text.contains(
                "tidegate_switches_total{env=\"prod\",app=\"web\",outcome=\"reverted\"} 1"
            )
        );
        assert!(text.contains("tidegate_wave{env=\"prod\"} 2"));
        assert!(text.contains("tidegate_git_fetch_duration_seconds_count{env=\"prod\"} 1"));
        let mut requests = line(&text, "tidegate_api_requests_total{");
        requests.sort_unstable();
        assert_eq!(
            requests,
            [
                "tidegate_api_requests_total{cluster=\"eks\",verb=\"read\",code=\"200\"} 2",
                "tidegate_api_requests_total{cluster=\"eks\",verb=\"read\",code=\"404\"} 1",
                "tidegate_api_requests_total{cluster=\"eks\",verb=\"watch\",code=\"200\"} 1",
                "tidegate_api_requests_total{cluster=\"eks\",verb=\"write\",code=\"403\"} 1",
                "tidegate_api_requests_total{cluster=\"eks\",verb=\"write\",code=\"error\"} 1",
            ],
            "one series per verb and code answered; none for zero counts"
        );
        assert!(text.contains("tidegate_leader 1"));
        assert!(text.contains("tidegate_audit_verify_ok 1"));
        m.record(&Event::Owned {
            environments: vec!["prod".into(), "staging".into()],
        });
        assert!(m.encode().contains("tidegate_shard_environments 2"));
        m.record(&Event::Watching { clusters: 7 });
        assert!(m.encode().contains("tidegate_shard_clusters 7"));
        m.record(&Event::AuditVerified { ok: false });
        assert!(m.encode().contains("tidegate_audit_verify_ok 0"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_new_revision_replaces_the_old_series() {
        let m = Metrics::new();
        for revision in ["aaa", "bbb"] {
            m.record(&Event::Applied {
                environment: "prod".into(),
                cluster: "eks".into(),
                revision: revision.into(),
            });
        }
        let text = m.encode();
        assert_eq!(
            line(&text, "tidegate_last_applied_revision_info{"),
            [
                "tidegate_last_applied_revision_info{env=\"prod\",cluster=\"eks\",revision=\"bbb\"} 1"
            ]
        );
    }
}
