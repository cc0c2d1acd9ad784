//! Sharding across controller replicas (`tidegate controller --shard`):
//! every replica runs, each owns some environments.
//!
//! - **Membership**: each replica holds its member Lease
//!   ([`crate::membership`]); the live members are listed every retry
//!   period.
//! - **Assignment**: every environment goes to the live member of highest
//!   rendezvous weight ([`crate::rendezvous`]): adding or removing a
//!   replica moves only the environments it gains or had (about `1/n`).
//! - **Ownership**: a replica works on an environment only while it holds
//!   the environment's ownership Lease `<group>-owner-<env>`, taken and
//!   renewed by the leader-election elector ([`crate::leader`]) — one
//!   election per owned environment. It starts the environment's loop when
//!   it holds the Lease, stops it at once when it loses it (the elector
//!   steps down before the Lease can be taken), and on a rebalance stops it
//!   safely (steps in flight finish within the shutdown grace, the journal
//!   kept, locks released) before releasing the Lease to the new owner. A
//!   Lease held by a replica that is no longer a live member is taken at
//!   once: a killed replica's environments move `lease_duration` after its
//!   last renewal (plus a retry period), not twice that.
//! - **Split environments** (`--shard-clusters-above N`): an environment
//!   of more than `N` clusters is also watched by cluster — every replica
//!   runs a read-only watcher loop over its rendezvous share of the
//!   environment's clusters, and the owner, which watches none of them,
//!   corrects the drift they record ([`crate::split`]).
//! - Rollouts keep the machinery of leader election: journals in
//!   ConfigMaps of the management cluster (fenced by `resourceVersion`),
//!   the environment lock in every cluster under the controller's identity,
//!   taken over from a former owner (it no longer holds the ownership
//!   Lease, so it no longer writes).

use crate::{
    Controller, ControllerError, ControllerOptions, Ended, Event, GitApplication, Observers,
    SHUTDOWN_SLACK,
    app::MANAGEMENT,
    controller::AbortOnDrop,
    leader::{LeaderConfig, Leadership},
    membership::{Membership, owner_lease},
    rendezvous,
    replica::{lock_identity, term, terminate_on, watch_audit},
    split::{DriftRecords, Role, ShardContext, Split, Tally},
};
use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};
use tokio::{sync::watch, task::JoinSet};
use tracing::{error, info, warn};

/// Sharding among replicas (`--shard`).
pub struct Sharding {
    /// A client of the management cluster, where the Leases and the
    /// rollout journals are kept.
    pub client: kube::Client,
    /// The group (`name`: the shard group, `--leader-election-id`), its
    /// namespace, this replica's identity and the Lease timings.
    pub config: LeaderConfig,
    /// `--shard-clusters-above`: environments with more clusters than
    /// this are watched by cluster across the replicas (None: never).
    pub split_above: Option<usize>,
}

/// How often the assignment is checked against the Leases' states (in
/// memory: no request), besides every change of the live members.
const STEP: Duration = Duration::from_millis(250);

/// The environments a replica should own among `members`: those whose
/// rendezvous owner is `me`.
pub fn assigned<'a>(
    environments: &'a [String],
    members: &BTreeSet<String>,
    me: &str,
) -> BTreeSet<&'a str> {
    environments
        .iter()
        .filter(|e| rendezvous::owner(e, members.iter().map(String::as_str)) == Some(me))
        .map(String::as_str)
        .collect()
}

/// Runs the controller over `app` as one shard of the group until `stop`
/// resolves: on a stop, the owned environments' rollouts stop safely
/// (within `options.stop_grace`), their ownership Leases are released, then
/// the member Lease.
pub async fn run_sharded(
    app: GitApplication,
    mut options: ControllerOptions,
    sharding: Sharding,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Ended, ControllerError> {
    let terminating = terminate_on(stop);
    let observers = options.observers.clone();
    let _verifying = watch_audit(&app, &observers);
    observers.emit(Event::Leading(false));
    let Sharding {
        client,
        config,
        split_above,
    } = sharding;
    config.check().map_err(ControllerError::Leader)?;
    let identity = lock_identity(&config);
    options.take_over_identity = Some(identity.clone());
    options.identity = identity;
    let app = app.with_management_journals(client.clone(), &config.namespace, &config.identity);
    let bound = options.stop_grace + SHUTDOWN_SLACK;
    let controller = Controller::new(app, options);
    let names = controller.environment_names()?;
    let _first = controller.first_receiver();
    let membership = Membership::join(client.clone(), MANAGEMENT, &config)
        .await
        .map_err(ControllerError::Leader)?;
    info!(replica = %config.identity, group = %format!("{}/{}", config.namespace, config.name), environments = ?names, "sharding the environments with the other replicas");
    let mut live = membership.live();
    // The first listing: before it, every holder would look gone.
    tokio::select! {
        r = live.changed() => if r.is_err() { return Ok(Ended::Stopped) },
        () = term(terminating.clone()) => {
            membership.leave().await;
            return Ok(Ended::Stopped);
        }
    }
    let context = ShardContext {
        above: split_above,
        me: config.identity.clone(),
        members: live.clone(),
        records: DriftRecords::new(
            client.clone(),
            &config.namespace,
            &config.name,
            &config.identity,
        ),
        tally: Tally::new(observers.clone()),
    };
    let mut shard = Shard {
        context,
        watchers: BTreeMap::new(),
        controller,
        client,
        config,
        names,
        live: live.clone(),
        observers,
        owned: BTreeMap::new(),
        handovers: JoinSet::new(),
        published: None,
        bound,
    };
    let mut ticks = tokio::time::interval(STEP);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = term(terminating.clone()) => break,
            _ = live.changed() => {}
            _ = ticks.tick() => {}
        }
        shard.step(membership.is_member()).await;
    }
    info!("stopping: handing every owned environment back");
    let stopped = async {
        shard.hand_over_all().await;
        membership.leave().await;
    };
    match tokio::time::timeout(bound, stopped).await {
        Ok(()) => {
            info!("stopped");
            Ok(Ended::Stopped)
        }
        Err(_) => {
            error!(bound = ?bound, "shutdown took too long: stopping now; rollouts resume from their journals");
            Ok(Ended::Overdue)
        }
    }
}

/// An environment this replica campaigns for or owns.
struct Owned {
    /// The election of its ownership Lease.
    lease: Leadership,
    /// Its loop, while the Lease is held.
    running: Option<Running>,
}

/// A running environment loop.
struct Running {
    stop: watch::Sender<bool>,
    task: AbortOnDrop<()>,
}

struct Shard {
    /// What every environment loop of this replica shares.
    context: ShardContext,
    /// The read-only watcher loops of environments that may be split by
    /// cluster (every environment, with `--shard-clusters-above`).
    watchers: BTreeMap<String, Running>,
    controller: Controller<GitApplication>,
    client: kube::Client,
    config: LeaderConfig,
    names: Vec<String>,
    live: watch::Receiver<BTreeSet<String>>,
    observers: Observers,
    owned: BTreeMap<String, Owned>,
    /// Environments being stopped safely before their Lease is released.
    handovers: JoinSet<()>,
    /// The owned environments last told (logs, observers).
    published: Option<Vec<String>>,
    /// How long a safe stop may take.
    bound: Duration,
}

impl Shard {
    /// Brings what runs in line with the assignment and the Leases held.
    async fn step(&mut self, member: bool) {
        while self.handovers.try_join_next().is_some() {}
        let me = self.config.identity.clone();
        let mut members = self.live.borrow().clone();
        if !member {
            // Without a member Lease the others take our share soon: own nothing.
            if !self.owned.is_empty() {
                error!(
                    "this replica lost its member Lease: stopping every environment at once; their next owners resume from the journals"
                );
                self.owned.clear();
            }
            self.stop_watchers();
            self.publish();
            return;
        }
        members.insert(me.clone());
        let desired: BTreeSet<String> = assigned(&self.names, &members, &me)
            .into_iter()
            .map(str::to_string)
            .collect();
        // A Lease lost while running (not renewed in time, or taken):
        // stop at once, as a deposed leader does.
        let lost: Vec<String> = self
            .owned
            .iter()
            .filter(|(_, o)| o.running.is_some() && !o.lease.state().is_leading())
            .map(|(e, _)| e.clone())
            .collect();
        for env in lost {
            error!(environment = %env, "lost the environment's ownership Lease: stopping it at once; its next owner resumes from the journal");
            self.owned.remove(&env);
            self.controller.forget(&env);
        }
        // No longer ours: stop safely, then release the Lease.
        let leaving: Vec<String> = self
            .owned
            .keys()
            .filter(|e| !desired.contains(*e))
            .cloned()
            .collect();
        for env in leaving {
            if let Some(owned) = self.owned.remove(&env) {
                let to = rendezvous::owner(&env, members.iter().map(String::as_str))
                    .unwrap_or_default()
                    .to_string();
                info!(environment = %env, to = %to, "handing the environment over to another replica");
                self.handovers
                    .spawn(hand_over(env.clone(), owned, self.bound));
            }
        }
        // Newly ours: campaign for the Lease (held by nobody, by a replica
        // that is gone, or released by the one handing it over).
        for env in &desired {
            if self.owned.contains_key(env) {
                continue;
            }
            let config = LeaderConfig {
                name: owner_lease(&self.config.name, env),
                members: Some(self.live.clone()),
                ..self.config.clone()
            };
            match Leadership::start(self.client.clone(), MANAGEMENT, config).await {
                Ok(lease) => {
                    self.owned.insert(
                        env.clone(),
                        Owned {
                            lease,
                            running: None,
                        },
                    );
                }
                Err(e) => {
                    warn!(environment = %env, error = %e, "campaigning for the environment's ownership Lease failed; retrying")
                }
            }
        }
        // Held: run.
        for (env, owned) in &mut self.owned {
            if owned.running.is_none() && owned.lease.state().is_leading() {
                info!(environment = %env, "owning the environment: starting its loop");
                owned.running = Some(start_loop(
                    &self.controller,
                    &self.context,
                    env,
                    Role::Owner,
                ));
            }
        }
        // Every environment may be split by cluster: a watcher loop for each.
        if self.context.above.is_some() {
            for env in &self.names {
                if self.watchers.contains_key(env) {
                    continue;
                }
                let running = start_loop(&self.controller, &self.context, env, Role::Watcher);
                self.watchers.insert(env.clone(), running);
            }
        }
        self.publish();
    }

    /// Stops every watcher loop at once (they never write to a cluster).
    fn stop_watchers(&mut self) {
        for env in std::mem::take(&mut self.watchers).into_keys() {
            self.controller.forget_watcher(&env);
        }
    }

    /// Logs and tells the observers the owned environments when they changed.
    fn publish(&mut self) {
        let now: Vec<String> = self
            .owned
            .iter()
            .filter(|(_, o)| o.running.is_some())
            .map(|(e, _)| e.clone())
            .collect();
        // Loops that ended watch nothing.
        for env in &self.names {
            if !now.contains(env) {
                self.context.tally.set(env, Role::Owner, BTreeSet::new());
            }
            if !self.watchers.contains_key(env) {
                self.context.tally.set(env, Role::Watcher, BTreeSet::new());
            }
        }
        if self.published.as_ref() == Some(&now) {
            return;
        }
        info!(environments = ?now, count = now.len(), "environments owned by this replica");
        self.observers.emit(Event::Owned {
            environments: now.clone(),
        });
        self.observers.emit(Event::Leading(!now.is_empty()));
        self.published = Some(now);
    }

    /// Stops every owned environment safely and releases its Lease.
    async fn hand_over_all(&mut self) {
        self.stop_watchers();
        for (env, owned) in std::mem::take(&mut self.owned) {
            self.handovers.spawn(hand_over(env, owned, self.bound));
        }
        while self.handovers.join_next().await.is_some() {}
        self.publish();
    }
}

/// Starts `env`'s loop in `role` as a task of its own.
fn start_loop(
    controller: &Controller<GitApplication>,
    context: &ShardContext,
    env: &str,
    role: Role,
) -> Running {
    let (stop, stopping) = watch::channel(false);
    let split = Split {
        context: context.clone(),
        role,
    };
    let task = tokio::spawn(controller.environment_in(env.to_string(), stopping, split));
    Running {
        stop,
        task: AbortOnDrop(task),
    }
}

/// Stops `env`'s loop safely (a rollout's steps in flight finish within
/// the grace; past `bound` it is stopped at once), then releases its
/// ownership Lease so the next owner takes it at its next try.
async fn hand_over(env: String, owned: Owned, bound: Duration) {
    let Owned { lease, running } = owned;
    if let Some(Running { stop, mut task }) = running {
        let _ = stop.send(true);
        if tokio::time::timeout(bound, &mut task.0).await.is_err() {
            warn!(environment = %env, "the environment's loop did not stop in time: stopped at once");
        }
    }
    lease.release().await;
    info!(environment = %env, "released the environment's ownership Lease");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_environment_is_assigned_to_exactly_one_member() {
        let envs: Vec<String> = (0..50).map(|i| format!("env-{i}")).collect();
        let members: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let mut seen = BTreeMap::new();
        for m in &members {
            for e in assigned(&envs, &members, m) {
                assert!(seen.insert(e, m).is_none(), "{e} assigned twice");
            }
        }
        assert_eq!(seen.len(), envs.len(), "every environment has an owner");
        // A replica not among the members owns nothing.
        assert!(assigned(&envs, &members, "d").is_empty());
    }
}
