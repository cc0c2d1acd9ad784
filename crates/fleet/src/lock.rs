//! The environment lock: a Lease `tidegate-system/tidegate-rollout-<env>`
//! held by a fleet rollout in every cluster and by a single-cluster sync in
//! its cluster, so the two never interleave.

use std::time::Duration;
use tidegate_cluster::{Holder, LeaseError, acquire_lease, release_lease};
use tidegate_sync::Engine;
use tracing::{info, warn};

/// The Lease name of an environment's lock.
pub fn lock_name(environment: &str) -> String {
    format!("tidegate-rollout-{environment}")
}

/// True when `holder` is a process of this host that no longer exists:
/// same host name, and no `/proc/<pid>`. A process that might still run
/// (another host, or a pid that exists, perhaps reused) is never "dead".
pub fn holder_is_dead_here(holder: &Holder) -> bool {
    let here = Holder::this_process("");
    holder.host == here.host
        && holder.host != "unknown"
        && holder.pid != 0
        && holder.pid != here.pid
        && !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists()
}

/// How to take a lock.
#[derive(Debug, Clone, Copy)]
pub struct LockPolicy {
    /// Take it whoever holds it (`--break-lock`).
    pub break_lock: bool,
    /// Take it over from a holder that is provably dead on this host
    /// (`--resume`).
    pub take_over_dead: bool,
    /// How long it lasts without renewal.
    pub ttl: Duration,
}

/// Takes the environment's lock in one cluster.
pub async fn take(
    engine: &Engine,
    environment: &str,
    holder: &Holder,
    policy: LockPolicy,
) -> Result<(), LeaseError> {
    take_over(engine, environment, holder, policy, None).await
}

/// Takes the environment's lock in one cluster, also from a live holder
/// whose identity is `deposed`: another replica of this controller, which
/// no longer leads (only the elected leader rolls out).
pub async fn take_over(
    engine: &Engine,
    environment: &str,
    holder: &Holder,
    policy: LockPolicy,
    deposed: Option<&str>,
) -> Result<(), LeaseError> {
    let name = lock_name(environment);
    let cluster = engine.cluster();
    match acquire_lease(
        engine.client(),
        cluster,
        &name,
        holder,
        policy.ttl,
        policy.break_lock,
    )
    .await
    {
        Err(LeaseError::Held { holder: dead, .. })
            if policy.take_over_dead && holder_is_dead_here(&dead) =>
        {
            info!(%cluster, pid = dead.pid, host = %dead.host, "taking over the lock of a process that is gone");
            acquire_lease(engine.client(), cluster, &name, holder, policy.ttl, true).await
        }
        Err(LeaseError::Held {
            holder: previous, ..
        }) if deposed == Some(previous.identity.as_str()) => {
            info!(%cluster, pid = previous.pid, host = %previous.host, "taking over the lock of a replica that no longer leads");
            acquire_lease(engine.client(), cluster, &name, holder, policy.ttl, true).await
        }
        other => other,
    }
}

/// Releases the environment's lock in one cluster (if `holder` has it).
pub async fn release(engine: &Engine, environment: &str, holder: &Holder) {
    if let Err(e) = release_lease(
        engine.client(),
        engine.cluster(),
        &lock_name(environment),
        holder,
    )
    .await
    {
        warn!(cluster = %engine.cluster(), error = %e, "releasing the rollout lock failed; it expires by itself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_process_of_this_host_is_dead() {
        let me = Holder::this_process("me");
        assert!(!holder_is_dead_here(&me), "this process is alive");
        let gone = Holder {
            pid: u32::MAX - 1,
            ..me.clone()
        };
        assert!(holder_is_dead_here(&gone));
        let elsewhere = Holder {
            host: format!("{}-elsewhere", me.host),
            ..gone.clone()
        };
        assert!(!holder_is_dead_here(&elsewhere));
        let init = Holder { pid: 1, ..me };
        assert!(!holder_is_dead_here(&init), "pid 1 exists");
    }
}
