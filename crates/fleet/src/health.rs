//! A cluster's health during a rollout, from one read per kind.
//!
//! Which clusters are read at all is decided by [`needs_health`]: only those
//! in flight or in the wave being gated (baking), never waves not started
//! or finished.

use std::collections::BTreeSet;
use tidegate_core::ObjectKey;
use tidegate_health::HealthStatus;
use tidegate_rollout::{ClusterProgress, ClusterView, FleetRollout};
use tidegate_sync::Engine;
use tracing::warn;

/// Which objects of a cluster judge its health now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judge {
    /// The target revision's objects (the cluster was changed, or it is
    /// gated as already there).
    Target,
    /// What the cluster ran before the rollout (a rollback restores it).
    Current,
}

/// Whether the machine needs this cluster's health now, and of what.
/// `wave` is the wave being worked on or gated (`FleetRollout::current_wave`).
/// A cluster whose apply or rollback has not been answered yet is not read:
/// its answer triggers a read.
pub(crate) fn needs_health(view: &ClusterView<'_>, wave: Option<u32>) -> Option<Judge> {
    let active = Some(view.wave) == wave;
    match view.progress {
        ClusterProgress::Progressing => Some(Judge::Target),
        ClusterProgress::Updated | ClusterProgress::Skipped if active => Some(Judge::Target),
        ClusterProgress::RollingBack => Some(Judge::Current),
        ClusterProgress::Updated
        | ClusterProgress::Skipped
        | ClusterProgress::Pending
        | ClusterProgress::WaitingForWindow
        | ClusterProgress::Applying
        | ClusterProgress::Failed
        | ClusterProgress::RollbackQueued
        | ClusterProgress::RolledBack
        | ClusterProgress::NotRestored => None,
    }
}

/// The clusters whose health the machine needs now ([`needs_health`]) and
/// that are not being read already (`reading`), with what judges them and
/// their progress; only `only` when given (a cluster whose command was just
/// answered).
pub(crate) fn to_read(
    machine: &FleetRollout,
    reading: &BTreeSet<String>,
    only: Option<&str>,
) -> Vec<(String, Judge, ClusterProgress)> {
    let wave = machine.current_wave();
    machine
        .clusters()
        .filter(|v| only.is_none_or(|c| c == v.name) && !reading.contains(v.name))
        .filter_map(|v| needs_health(&v, wave).map(|j| (v.name.to_string(), j, v.progress)))
        .collect()
}

/// The worst health of `keys` (Healthy when there are none), from one read
/// per kind ([`Engine::health_of`], scoped to the engine's environment);
/// Unknown when the cluster cannot be read.
pub(crate) async fn worst(engine: &Engine, keys: &[(ObjectKey, String)]) -> HealthStatus {
    match engine.health_of(keys).await {
        Ok(status) => status,
        Err(e) => {
            warn!(cluster = %engine.cluster(), error = %e, "health unknown: the cluster cannot be read");
            HealthStatus::Unknown
        }
    }
}

/// As [`worst`], judged from what a plan just read (`read`, `live`) where
/// it covers `keys`, so the pre-flight reads nothing twice.
pub(crate) async fn worst_from(
    engine: &Engine,
    keys: &[(ObjectKey, String)],
    read: &std::collections::BTreeSet<ObjectKey>,
    live: &tidegate_sync::LiveMap,
) -> HealthStatus {
    match engine.health_from(keys, read, live).await {
        Ok(status) => status,
        Err(e) => {
            warn!(cluster = %engine.cluster(), error = %e, "health unknown: the cluster cannot be read");
            HealthStatus::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tidegate_core::environment::Rollout;
    use tidegate_rollout::{ClusterStart, Command, Event, FleetRollout, RolloutConfig, plan_fleet};

    /// Which clusters would be read now, and of what.
    fn read(machine: &FleetRollout) -> Vec<(String, Judge)> {
        let wave = machine.current_wave();
        machine
            .clusters()
            .filter_map(|v| needs_health(&v, wave).map(|j| (v.name.to_string(), j)))
            .collect()
    }

    fn health(machine: &mut FleetRollout, now: Duration, cluster: &str, status: HealthStatus) {
        machine.observe(
            now,
            Event::Health {
                cluster: cluster.into(),
                status,
            },
        );
    }

    #[test]
    fn only_clusters_in_flight_or_in_the_gated_wave_are_read() {
        let plan = plan_fleet(
            [
                ("a", Some(1)),
                ("b", Some(2)),
                ("c", Some(2)),
                ("d", Some(3)),
            ],
            &Rollout::default(),
        )
        .expect("plans");
        let start = |rev: &str| ClusterStart {
            current_revision: Some(rev.into()),
            last_good_revision: Some("v1".into()),
            health: HealthStatus::Healthy,
            drifted: false,
            unknown_state: false,
        };
        let mut config = RolloutConfig::from_plan(&plan, "v2");
        config.bake_time = Duration::from_secs(10);
        let starts = [
            ("a", start("v1")),
            ("b", start("v2")),
            ("c", start("v1")),
            ("d", start("v1")),
        ];
        let mut m = FleetRollout::new(&plan, config, starts.map(|(n, s)| (n.to_string(), s)))
            .expect("valid");
        let t = Duration::from_secs;
        let target = |names: &[&str]| -> Vec<(String, Judge)> {
            names
                .iter()
                .map(|n| (n.to_string(), Judge::Target))
                .collect()
        };

        // Wave 1 applying: nothing is read (the answer triggers a read).
        let cmds = m.step(t(0));
        assert!(matches!(&cmds[..], [Command::Apply { cluster, .. }] if cluster == "a"));
        assert_eq!(read(&m), []);
        // Applied: only `a`, for its target; waves 2 and 3 are not read.
        m.observe(
            t(1),
            Event::Applied {
                cluster: "a".into(),
            },
        );
        assert_eq!(read(&m), target(&["a"]));
        // Healthy and baking: still only `a`.
        health(&mut m, t(2), "a", HealthStatus::Healthy);
        m.step(t(2));
        assert_eq!(read(&m), target(&["a"]));
        // Wave 2: `b` is already there (skipped, but gated: read), `c` is
        // applying; wave 1 is done and no longer read.
        m.step(t(13));
        assert_eq!(m.current_wave(), Some(2));
        assert_eq!(read(&m), target(&["b"]));
        m.observe(
            t(14),
            Event::Applied {
                cluster: "c".into(),
            },
        );
        assert_eq!(read(&m), target(&["b", "c"]));
        health(&mut m, t(15), "c", HealthStatus::Healthy);
        m.step(t(15));
        assert_eq!(read(&m), target(&["b", "c"]));
        // Wave 3 applying, then failing: the touched clusters are rolled
        // back, judged by what they ran before while their rollback runs.
        m.step(t(26));
        assert_eq!(m.current_wave(), Some(3));
        assert_eq!(read(&m), []);
        m.observe(
            t(27),
            Event::ApplyFailed {
                cluster: "d".into(),
                message: "refused".into(),
            },
        );
        m.step(t(27));
        let read_now = read(&m);
        assert!(
            read_now.contains(&("d".to_string(), Judge::Current)),
            "{read_now:?}"
        );
        assert!(
            read_now.iter().all(|(_, j)| *j == Judge::Current),
            "{read_now:?}"
        );
    }
}
