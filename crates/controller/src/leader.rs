//! Leader election between controller replicas: one `coordination.k8s.io/v1`
//! Lease in a management cluster, taken and renewed with optimistic
//! concurrency (`resourceVersion`), as client-go's `leaderelection` does.
//!
//! The timing rules (client-go's, defaults 15 s / 10 s / 2 s):
//!
//! - The leader renews every `retry_period`. If no renewal has succeeded
//!   within `renew_deadline` of the start of the last successful one, it
//!   **steps down** (publishes [`LeaderState::Following`]) — before
//!   `lease_duration` has passed, so before any other replica may take the
//!   Lease. The controller stops writing as soon as it sees that.
//! - A follower tries every `retry_period` (plus up to 20% jitter). It takes
//!   the Lease only when it is free (released) or when its record has not
//!   changed for `lease_duration` by the follower's *own* clock since it saw
//!   it change: clock skew between machines does not matter, only clock rate.
//! - On shutdown the leader releases the Lease (empty holder), so another
//!   replica takes it at its next try instead of after `lease_duration`.
//!
//! A killed leader is replaced within `lease_duration + retry_period` (plus
//! the jitter) of its last renewal.
//!
//! Why not a crate: `kube-lease-manager` 0.13 (kube 5) was checked: when its
//! renewals fail it logs and retries while its watch channel keeps saying
//! "leader", so a leader cut off from the API server would keep reconciling
//! after another replica took the Lease. Stepping down before expiry is the
//! property this module exists for.

use kube::{
    Api, Client,
    api::{DynamicObject, PostParams},
};
use serde_json::{Value, json};
use std::{collections::BTreeSet, time::Duration};
use tidegate_cluster::{ClusterError, ensure_namespace, lease_resource};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{error, info, warn};

/// How replicas elect their leader.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Namespace of the Lease (`--leader-election-namespace`).
    pub namespace: String,
    /// Name of the Lease (`--leader-election-id`).
    pub name: String,
    /// This replica (unique among replicas: pod name, or host and pid).
    pub identity: String,
    /// How long a Lease lasts without renewal (whole seconds, at least 1).
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and followers try.
    pub retry_period: Duration,
    /// With sharding, the live members as this replica last listed them
    /// ([`crate::membership`]): a Lease held by an identity that is not a
    /// live member is taken at once, without waiting `lease_duration` more,
    /// since its holder stopped counting itself a member (and stopped
    /// writing) before its member Lease could expire. `None`: the plain
    /// leader-election rule.
    pub members: Option<watch::Receiver<BTreeSet<String>>>,
}

impl LeaderConfig {
    /// An election with client-go's default timings (15 s, 10 s, 2 s).
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaderConfig {
        LeaderConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            members: None,
        }
    }

    /// Checks the timings: `retry_period < renew_deadline < lease_duration`,
    /// `lease_duration` whole seconds, identity and names not empty.
    pub fn check(&self) -> Result<(), LeaderError> {
        let bad = |what: &str| Err(LeaderError::Config(what.to_string()));
        if self.identity.is_empty() || self.name.is_empty() || self.namespace.is_empty() {
            return bad("the identity, the Lease name and its namespace must not be empty");
        }
        if self.lease_duration.as_secs() == 0 || self.lease_duration.subsec_nanos() != 0 {
            return bad("the lease duration must be a whole number of seconds, at least 1");
        }
        if self.retry_period.is_zero()
            || self.retry_period >= self.renew_deadline
            || self.renew_deadline >= self.lease_duration
        {
            return bad(
                "timings must satisfy 0 < retry period < renew deadline < lease duration (defaults 2s, 10s, 15s)",
            );
        }
        Ok(())
    }
}

/// Where a replica stands in the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderState {
    /// The Lease has not been read yet.
    Starting,
    /// This replica leads: it may reconcile and write.
    Leading,
    /// Another replica leads (named when known), or none does: this one
    /// must not write.
    Following {
        /// The holder of the Lease, when one holds it.
        leader: Option<String>,
    },
    /// This replica stopped campaigning (shutdown) and released the Lease.
    Released,
}

impl LeaderState {
    /// True when this replica leads.
    pub fn is_leading(&self) -> bool {
        matches!(self, LeaderState::Leading)
    }

    /// The `tidegate_leader` gauge: 1 while leading, 0 otherwise.
    pub fn gauge(&self) -> i64 {
        i64::from(self.is_leading())
    }
}

impl std::fmt::Display for LeaderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaderState::Starting => write!(f, "starting"),
            LeaderState::Leading => write!(f, "leading"),
            LeaderState::Following { leader: Some(l) } => write!(f, "following {l}"),
            LeaderState::Following { leader: None } => write!(f, "following (no leader)"),
            LeaderState::Released => write!(f, "released"),
        }
    }
}

/// Why an election could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The configuration is invalid.
    #[error("leader election: {0}")]
    Config(String),
    /// The management cluster could not be read or written.
    #[error("leader election Lease {namespace}/{name}: {source}")]
    Cluster {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// What went wrong.
        #[source]
        source: ClusterError,
    },
}

/// The running election of this replica. Read [`state`](Self::state) or
/// [`watch`](Self::watch) it; [`release`](Self::release) it on shutdown.
pub struct Leadership {
    state: watch::Receiver<LeaderState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Leadership {
    /// Starts campaigning for the Lease in the cluster `cluster` reached
    /// through `client` (the namespace is created when missing).
    pub async fn start(
        client: Client,
        cluster: &str,
        config: LeaderConfig,
    ) -> Result<Leadership, LeaderError> {
        config.check()?;
        ensure_namespace(&client, cluster, &config.namespace)
            .await
            .map_err(|source| LeaderError::Cluster {
                namespace: config.namespace.clone(),
                name: config.name.clone(),
                source,
            })?;
        let (sender, state) = watch::channel(LeaderState::Starting);
        let (stop, stopped) = oneshot::channel();
        let elector = Elector {
            api: Api::namespaced_with(client, &config.namespace, &lease_resource()),
            cluster: cluster.to_string(),
            config,
            observed: None,
            state: sender,
        };
        let task = tokio::spawn(elector.run(stopped));
        Ok(Leadership {
            state,
            stop: Some(stop),
            task,
        })
    }

    /// Where this replica stands now.
    pub fn state(&self) -> LeaderState {
        self.state.borrow().clone()
    }

    /// A receiver of every change of state (the value others read).
    pub fn watch(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// Waits until this replica leads; false when the election ended first.
    pub async fn leading(&self) -> bool {
        let mut state = self.state.clone();
        state.wait_for(LeaderState::is_leading).await.is_ok()
    }

    /// Stops campaigning and releases the Lease if this replica holds it,
    /// so another replica leads at its next try. Takes at most the renew
    /// deadline.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            warn!(error = %e, "the leader election task ended abnormally");
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // Without `release`, stop renewing: the Lease then expires.
        self.task.abort();
    }
}

/// The Lease record as last seen, and when (by this replica's clock) it
/// last changed.
struct Observed {
    holder: Option<String>,
    renew_time: Option<String>,
    duration: Duration,
    changed_at: Instant,
}

enum Attempt {
    /// This replica holds the Lease (taken or renewed).
    Holding,
    /// Another replica holds a live Lease (or took it first).
    Held(Option<String>),
}

struct Elector {
    api: Api<DynamicObject>,
    cluster: String,
    config: LeaderConfig,
    observed: Option<Observed>,
    state: watch::Sender<LeaderState>,
}

impl Elector {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        // Set while leading: renew successfully before this, or step down.
        let mut deadline: Option<Instant> = None;
        loop {
            let attempt_start = Instant::now();
            let bound = deadline.unwrap_or(attempt_start + self.config.renew_deadline);
            let result = tokio::select! {
                biased;
                _ = &mut stop => break,
                r = tokio::time::timeout_at(bound, self.try_acquire_or_renew()) => r,
            };
            match result {
                Ok(Ok(Attempt::Holding)) => {
                    if deadline.is_none() {
                        info!(lease = %self.lease(), identity = %self.config.identity, "leading");
                    }
                    deadline = Some(attempt_start + self.config.renew_deadline);
                    self.publish(LeaderState::Leading);
                }
                Ok(Ok(Attempt::Held(leader))) => {
                    if deadline.take().is_some() {
                        warn!(lease = %self.lease(), leader = ?leader, "lost the lease to another replica: stepping down");
                    }
                    self.publish(LeaderState::Following { leader });
                }
                Ok(Err(e)) => self.failed(&mut deadline, &e.to_string()),
                Err(_) => self.failed(&mut deadline, "the API server did not answer in time"),
            }
            // Leaders renew on time; followers spread their tries.
            let mut next = Instant::now() + self.config.retry_period;
            match deadline {
                Some(d) => next = next.min(d),
                None => next += jitter(self.config.retry_period),
            }
            tokio::select! {
                biased;
                _ = &mut stop => break,
                () = tokio::time::sleep_until(next) => {}
            }
        }
        if deadline.is_some() {
            match tokio::time::timeout(self.config.renew_deadline, self.release()).await {
                Ok(Ok(())) => info!(lease = %self.lease(), "released the lease"),
                Ok(Err(e)) => {
                    warn!(lease = %self.lease(), error = %e, "releasing the lease failed; it expires by itself")
                }
                Err(_) => {
                    warn!(lease = %self.lease(), "releasing the lease timed out; it expires by itself")
                }
            }
        }
        self.publish(LeaderState::Released);
    }

    fn lease(&self) -> String {
        format!(
            "{}/{} in {}",
            self.config.namespace, self.config.name, self.cluster
        )
    }

    fn publish(&self, state: LeaderState) {
        self.state.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }

    /// A failed attempt: a leader past its renew deadline steps down.
    fn failed(&self, deadline: &mut Option<Instant>, why: &str) {
        warn!(lease = %self.lease(), error = %why, "leader election: reading or writing the lease failed");
        if let Some(d) = *deadline
            && Instant::now() >= d
        {
            error!(lease = %self.lease(), "no renewal within the renew deadline: stepping down");
            *deadline = None;
            self.publish(LeaderState::Following { leader: None });
        } else if deadline.is_none() && *self.state.borrow() == LeaderState::Starting {
            self.publish(LeaderState::Following { leader: None });
        }
    }

    /// One read of the Lease, and a write when it is free, expired (by this
    /// replica's observation) or ours.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let me = self.config.identity.clone();
        let now = Instant::now();
        let Some(current) = self.api.get_opt(&self.config.name).await? else {
            let lease = self.record(None, 0, None)?;
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observe_own(now);
                    Ok(Attempt::Holding)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Held(None)),
                Err(e) => Err(e),
            };
        };
        let current = serde_json::to_value(current).unwrap_or(Value::Null);
        let spec = &current["spec"];
        let holder = spec["holderIdentity"]
            .as_str()
            .filter(|h| !h.is_empty())
            .map(str::to_string);
        let renew_time = spec["renewTime"].as_str().map(str::to_string);
        let duration = Duration::from_secs(spec["leaseDurationSeconds"].as_u64().unwrap_or(0));
        let unchanged = self
            .observed
            .as_ref()
            .is_some_and(|o| o.holder == holder && o.renew_time == renew_time);
        if !unchanged {
            self.observed = Some(Observed {
                holder: holder.clone(),
                renew_time,
                duration,
                changed_at: now,
            });
        }
        let live = self
            .observed
            .as_ref()
            .is_some_and(|o| o.changed_at + o.duration > now);
        let member = |h: &String| {
            self.config
                .members
                .as_ref()
                .is_none_or(|m| m.borrow().contains(h))
        };
        if let Some(h) = &holder
            && *h != me
            && live
            && member(h)
        {
            return Ok(Attempt::Held(holder));
        }
        // Free, expired, or ours: take or renew it, replacing exactly the
        // version read (a concurrent taker makes this a 409).
        let ours = holder.as_deref() == Some(me.as_str());
        let transitions = spec["leaseTransitions"].as_i64().unwrap_or(0);
        let acquire_time = if ours {
            spec["acquireTime"].as_str().map(str::to_string)
        } else {
            None
        };
        let lease = self.record(
            current["metadata"]["resourceVersion"].as_str(),
            if ours || holder.is_none() {
                transitions
            } else {
                transitions + 1
            },
            acquire_time,
        )?;
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observe_own(now);
                Ok(Attempt::Holding)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Held(holder)),
            Err(e) => Err(e),
        }
    }

    fn observe_own(&mut self, now: Instant) {
        self.observed = Some(Observed {
            holder: Some(self.config.identity.clone()),
            renew_time: None,
            duration: self.config.lease_duration,
            changed_at: now,
        });
    }

    /// The Lease held by this replica, renewed now.
    fn record(
        &self,
        version: Option<&str>,
        transitions: i64,
        acquire_time: Option<String>,
    ) -> Result<DynamicObject, kube::Error> {
        let now = micro_time();
        let mut lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.config.name, "namespace": self.config.namespace},
            "spec": {
                "holderIdentity": self.config.identity,
                "leaseDurationSeconds": self.config.lease_duration.as_secs(),
                "acquireTime": acquire_time.unwrap_or_else(|| now.clone()),
                "renewTime": now,
                "leaseTransitions": transitions,
            }
        });
        if let Some(v) = version {
            lease["metadata"]["resourceVersion"] = Value::String(v.to_string());
        }
        serde_json::from_value(lease).map_err(kube::Error::SerdeError)
    }

    /// Empties the holder of a Lease this replica holds (client-go's
    /// release: holder empty, duration 1 s), so another replica takes it
    /// at its next try.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(current) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let mut current = serde_json::to_value(current).unwrap_or(Value::Null);
        if current["spec"]["holderIdentity"].as_str() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        let now = micro_time();
        let spec = &mut current["spec"];
        spec["holderIdentity"] = Value::Null;
        spec["leaseDurationSeconds"] = json!(1);
        spec["renewTime"] = json!(now);
        spec["acquireTime"] = json!(now);
        let lease: DynamicObject =
            serde_json::from_value(current).map_err(kube::Error::SerdeError)?;
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            // Someone else has it already: nothing of ours to release.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// Up to 20% of `period`, from the clock's nanoseconds (spreads followers'
/// tries; not security relevant).
fn jitter(period: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    period.mul_f64(f64::from(nanos % 1000) / 5000.0)
}

/// Now as a Kubernetes `MicroTime`.
fn micro_time() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_go_defaults_are_valid_and_bad_timings_are_refused() {
        let ok = LeaderConfig::new("tidegate-system", "tidegate-controller", "a");
        assert!(ok.check().is_ok());
        let deadline_too_long = LeaderConfig {
            renew_deadline: Duration::from_secs(15),
            ..ok.clone()
        };
        assert!(deadline_too_long.check().is_err());
        let retry_too_long = LeaderConfig {
            retry_period: Duration::from_secs(10),
            ..ok.clone()
        };
        assert!(retry_too_long.check().is_err());
        let fractional = LeaderConfig {
            lease_duration: Duration::from_millis(15_500),
            ..ok.clone()
        };
        assert!(fractional.check().is_err());
        let nameless = LeaderConfig {
            identity: String::new(),
            ..ok
        };
        let err = nameless.check().expect_err("empty identity");
        assert!(err.to_string().contains("identity"), "{err}");
    }

    #[test]
    fn only_leading_counts_as_leader() {
        assert_eq!(LeaderState::Leading.gauge(), 1);
        for s in [
            LeaderState::Starting,
            LeaderState::Following { leader: None },
            LeaderState::Following {
                leader: Some("b".into()),
            },
            LeaderState::Released,
        ] {
            assert_eq!(s.gauge(), 0, "{s}");
        }
    }

    #[test]
    fn jitter_stays_within_a_fifth_of_the_period() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_secs(2)) <= Duration::from_millis(400));
        }
    }
}
