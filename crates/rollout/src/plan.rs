//! Wave planning: which clusters change together, in which order, under
//! which fleet-level limits.
//!
//! [`plan_waves`] reads an [`Environment`]; [`plan_fleet`] does the same from
//! bare `(name, wave)` pairs and a [`Rollout`] policy (what the CLI's
//! `tidegate plan` and the tests use).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tidegate_core::{
    Diagnostic, Diagnostics, Environment,
    duration::GoDuration,
    environment::{Approval, FailurePolicy, Rollout},
    intorpercent::{IntOrPercent, Rounding},
};

/// Share of the unwaved fleet put in each automatic wave (Rancher Fleet's
/// `autoPartitionSize` default).
pub const AUTO_PARTITION_PERCENT: u32 = 25;

/// The waves of a rollout and the limits that apply to all of them.
/// API boundary: `tidegate plan -o json` prints this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WavePlan {
    /// Number of clusters in the fleet.
    pub fleet_size: u32,
    /// `maxSurge` resolved against the fleet size (rounded up).
    pub max_surge: u32,
    /// `maxUnavailable` resolved against the fleet size (rounded down).
    pub max_unavailable: u32,
    /// Most clusters changed at once: `maxSurge`, or `maxUnavailable` when
    /// `maxSurge` resolves to 0 (a Deployment with `maxSurge: 0` also rolls
    /// by taking down up to `maxUnavailable` pods). Never 0.
    pub max_in_flight: u32,
    /// How long a changed cluster may take to become Healthy.
    pub progress_deadline: GoDuration,
    /// How long a completed wave must stay Healthy before the next starts.
    pub bake_time: GoDuration,
    /// What happens when a gate fails.
    pub failure_policy: FailurePolicy,
    /// The waves, in the order they run.
    pub waves: Vec<Wave>,
}

/// One wave of a [`WavePlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wave {
    /// The wave number: the clusters' `wave:` for explicit waves; for
    /// automatic waves, numbers counting on after the highest explicit one.
    pub number: u32,
    /// True for a wave made by auto-partitioning clusters without `wave:`.
    pub auto: bool,
    /// Whether the wave waits for `tidegate approve` before it starts.
    pub approval: Approval,
    /// Cluster names, in environment order.
    pub clusters: Vec<String>,
}

/// Plans the waves of `env`: see [`plan_fleet`].
pub fn plan_waves(env: &Environment) -> Result<WavePlan, Diagnostics> {
    plan_fleet(
        env.spec
            .clusters
            .iter()
            .map(|c| (c.value.name.as_str(), c.value.wave)),
        &env.spec.rollout,
    )
}

/// Plans the waves of a fleet given as `(cluster name, wave)` pairs in
/// environment order.
///
/// - Clusters with a wave are grouped by wave number, ascending.
/// - Clusters without one are auto-partitioned after the explicit waves, in
///   environment order, into batches of [`AUTO_PARTITION_PERCENT`]% of the
///   unwaved clusters (rounded up, at least 1).
/// - A wave requires approval when `rollout.waves[]` says so for its number
///   (explicit waves only; automatic waves never wait).
/// - `maxSurge` is resolved against the fleet size rounding up,
///   `maxUnavailable` rounding down.
///
/// Errors: duplicate cluster names, or limits that let no cluster change.
pub fn plan_fleet<'a>(
    clusters: impl IntoIterator<Item = (&'a str, Option<u32>)>,
    rollout: &Rollout,
) -> Result<WavePlan, Diagnostics> {
    let mut problems = Diagnostics::default();
    let mut seen = BTreeSet::new();
    let mut explicit: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut unwaved = Vec::new();
    let mut fleet_size: u32 = 0;
    for (name, wave) in clusters {
        fleet_size = fleet_size.saturating_add(1);
        if !seen.insert(name) {
            problems.push(
                Diagnostic::new(format!("cluster {name:?} is listed more than once"))
                    .in_cluster(name)
                    .help("give every cluster of the environment a unique name"),
            );
            continue;
        }
        match wave {
            Some(w) => explicit.entry(w).or_default().push(name.to_string()),
            None => unwaved.push(name.to_string()),
        }
    }

    let max_surge = rollout.max_surge.resolve(fleet_size, Rounding::Up);
    let max_unavailable = rollout.max_unavailable.resolve(fleet_size, Rounding::Down);
    let max_in_flight = if max_surge > 0 {
        max_surge
    } else {
        max_unavailable
    };
    if rollout.max_surge.is_zero() && rollout.max_unavailable.is_zero() {
        problems.push(
            Diagnostic::new(
                "spec.rollout: maxSurge and maxUnavailable are both 0, so no cluster could ever change",
            )
            .help("set maxSurge to at least 1 (or maxUnavailable above 0)"),
        );
    } else if max_in_flight == 0 && fleet_size > 0 {
        problems.push(
            Diagnostic::new(format!(
                "spec.rollout: maxSurge {} and maxUnavailable {} both resolve to 0 clusters \
                 for a fleet of {fleet_size}, so no cluster could ever change",
                rollout.max_surge, rollout.max_unavailable
            ))
            .help("set maxSurge to at least 1 (an integer, or a percentage that rounds up)"),
        );
    }

    let required: BTreeSet<u32> = rollout
        .waves
        .iter()
        .filter(|w| w.approval == Approval::Required)
        .map(|w| w.wave)
        .collect();
    let mut waves: Vec<Wave> = explicit
        .into_iter()
        .map(|(number, clusters)| Wave {
            number,
            auto: false,
            approval: if required.contains(&number) {
                Approval::Required
            } else {
                Approval::None
            },
            clusters,
        })
        .collect();

    if !unwaved.is_empty() {
        let count = u32::try_from(unwaved.len()).unwrap_or(u32::MAX);
        let batch = IntOrPercent::Percent(AUTO_PARTITION_PERCENT)
            .resolve(count, Rounding::Up)
            .max(1);
        let batch = usize::try_from(batch).unwrap_or(usize::MAX);
        let mut number = waves.last().map_or(Some(1), |w| w.number.checked_add(1));
        for chunk in unwaved.chunks(batch) {
            let Some(n) = number else {
                problems.push(
                    Diagnostic::new(
                        "no wave number is left after the highest explicit wave for clusters without `wave:`",
                    )
                    .help("use smaller wave numbers"),
                );
                break;
            };
            waves.push(Wave {
                number: n,
                auto: true,
                approval: Approval::None,
                clusters: chunk.to_vec(),
            });
            number = n.checked_add(1);
        }
    }

    problems.into_result(WavePlan {
        fleet_size,
        max_surge,
        max_unavailable,
        max_in_flight,
        progress_deadline: rollout.progress_deadline,
        bake_time: rollout.bake_time,
        failure_policy: rollout.failure_policy,
        waves,
    })
}

// === impl WavePlan ===

impl WavePlan {
    /// Number of clusters in all waves.
    pub fn cluster_count(&self) -> usize {
        self.waves.iter().map(|w| w.clusters.len()).sum()
    }

    /// The wave a cluster belongs to.
    pub fn wave_of(&self, cluster: &str) -> Option<&Wave> {
        self.waves
            .iter()
            .find(|w| w.clusters.iter().any(|c| c == cluster))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_core::environment::Located;
    use tidegate_core::environment::WavePolicy;

    fn rollout(surge: IntOrPercent, unavailable: IntOrPercent) -> Rollout {
        Rollout {
            max_surge: surge,
            max_unavailable: unavailable,
            ..Rollout::default()
        }
    }

    fn names(plan: &WavePlan) -> Vec<(u32, bool, Vec<&str>)> {
        plan.waves
            .iter()
            .map(|w| {
                (
                    w.number,
                    w.auto,
                    w.clusters.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn explicit_waves_ascend_and_keep_environment_order() {
        let plan = plan_fleet(
            [
                ("a", Some(3)),
                ("b", Some(1)),
                ("c", Some(3)),
                ("d", Some(2)),
            ],
            &Rollout::default(),
        )
        .expect("plans");
        assert_eq!(
            names(&plan),
            vec![
                (1, false, vec!["b"]),
                (2, false, vec!["d"]),
                (3, false, vec!["a", "c"])
            ]
        );
        assert_eq!(plan.cluster_count(), 4);
        assert_eq!(plan.wave_of("c").map(|w| w.number), Some(3));
    }

    #[test]
    fn unwaved_clusters_go_after_explicit_waves_in_quarters_rounded_up() {
        // 10 unwaved clusters: 25% of 10 = 2.5 → 3 per wave: 3, 3, 3, 1.
        let mut fleet: Vec<(String, Option<u32>)> =
            (0..10).map(|i| (format!("c{i}"), None)).collect();
        fleet.insert(3, ("canary".into(), Some(5)));
        let plan = plan_fleet(
            fleet.iter().map(|(n, w)| (n.as_str(), *w)),
            &Rollout::default(),
        )
        .expect("plans");
        assert_eq!(
            names(&plan),
            vec![
                (5, false, vec!["canary"]),
                (6, true, vec!["c0", "c1", "c2"]),
                (7, true, vec!["c3", "c4", "c5"]),
                (8, true, vec!["c6", "c7", "c8"]),
                (9, true, vec!["c9"]),
            ]
        );
        assert_eq!(plan.fleet_size, 11);
    }

    #[test]
    fn the_auto_partition_example_of_the_docs() {
        let fleet: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let plan = plan_fleet(
            fleet.iter().map(|c| (c.as_str(), (c == "c0").then_some(1))),
            &Rollout::default(),
        )
        .expect("plans");
        assert_eq!(
            names(&plan),
            vec![
                (1, false, vec!["c0"]),
                (2, true, vec!["c1", "c2", "c3"]),
                (3, true, vec!["c4", "c5", "c6"]),
                (4, true, vec!["c7", "c8", "c9"]),
            ]
        );
    }

    #[test]
    fn small_unwaved_fleets_get_one_cluster_per_wave() {
        for n in 1..=4 {
            let fleet: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            let plan = plan_fleet(
                fleet.iter().map(|c| (c.as_str(), None)),
                &Rollout::default(),
            )
            .expect("plans");
            assert_eq!(plan.waves.len(), n, "{n} clusters");
            assert!(plan.waves.iter().all(|w| w.clusters.len() == 1));
            assert_eq!(plan.waves[0].number, 1);
        }
        // 5 clusters: 25% = 1.25 → 2 per wave.
        let fleet: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
        let plan = plan_fleet(
            fleet.iter().map(|c| (c.as_str(), None)),
            &Rollout::default(),
        )
        .expect("plans");
        let sizes: Vec<usize> = plan.waves.iter().map(|w| w.clusters.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
    }

    #[test]
    fn approvals_come_from_rollout_waves() {
        let policy = Rollout {
            waves: vec![
                Located::new(WavePolicy {
                    wave: 2,
                    approval: Approval::Required,
                }),
                Located::new(WavePolicy {
                    wave: 1,
                    approval: Approval::None,
                }),
            ],
            ..Rollout::default()
        };
        let plan =
            plan_fleet([("a", Some(1)), ("b", Some(2)), ("c", None)], &policy).expect("plans");
        let approvals: Vec<(u32, Approval)> =
            plan.waves.iter().map(|w| (w.number, w.approval)).collect();
        assert_eq!(
            approvals,
            vec![
                (1, Approval::None),
                (2, Approval::Required),
                (3, Approval::None)
            ]
        );
    }

    #[test]
    fn limits_round_surge_up_and_unavailable_down() {
        let fleet: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let plan = plan_fleet(
            fleet.iter().map(|c| (c.as_str(), Some(1))),
            &rollout(IntOrPercent::Percent(25), IntOrPercent::Percent(10)),
        )
        .expect("plans");
        assert_eq!(
            (plan.max_surge, plan.max_unavailable, plan.max_in_flight),
            (3, 1, 3)
        );

        let plan = plan_fleet(
            fleet.iter().take(3).map(|c| (c.as_str(), Some(1))),
            &rollout(IntOrPercent::Percent(10), IntOrPercent::Percent(50)),
        )
        .expect("plans");
        assert_eq!((plan.max_surge, plan.max_unavailable), (1, 1));

        // maxSurge 0: clusters change up to maxUnavailable at a time.
        let plan = plan_fleet(
            fleet.iter().map(|c| (c.as_str(), None)),
            &rollout(IntOrPercent::Int(0), IntOrPercent::Percent(20)),
        )
        .expect("plans");
        assert_eq!(
            (plan.max_surge, plan.max_unavailable, plan.max_in_flight),
            (0, 2, 2)
        );
    }

    #[test]
    fn limits_that_let_nothing_change_are_rejected() {
        let err = plan_fleet(
            [("a", None)],
            &rollout(IntOrPercent::Int(0), IntOrPercent::Percent(0)),
        )
        .expect_err("both zero");
        assert!(err.to_string().contains("both 0"), "{err}");

        // 10% of 5 rounds down to 0, and maxSurge is 0.
        let err = plan_fleet(
            [
                ("a", None),
                ("b", None),
                ("c", None),
                ("d", None),
                ("e", None),
            ],
            &rollout(IntOrPercent::Percent(0), IntOrPercent::Percent(10)),
        )
        .expect_err("resolves to zero");
        assert!(err.to_string().contains("resolve to 0"), "{err}");
    }

    #[test]
    fn duplicate_names_are_reported() {
        let err =
            plan_fleet([("a", None), ("a", Some(1))], &Rollout::default()).expect_err("duplicate");
        assert_eq!(err.len(), 1);
        assert!(err.to_string().contains("more than once"));
    }

    #[test]
    fn plans_the_example_prod_environment_and_serializes() {
        let text = include_str!("../../../environments/prod.yaml");
        let env = Environment::parse(text, "environments/prod.yaml").expect("parses");
        let plan = plan_waves(&env).expect("plans");
        assert_eq!(
            names(&plan),
            vec![
                (1, false, vec!["eks-us-east-1"]),
                (2, false, vec!["aks-westeurope", "gke-us-central1"]),
            ]
        );
        assert_eq!((plan.max_surge, plan.max_unavailable), (1, 0));
        let json = serde_json::to_value(&plan).expect("serializes");
        assert_eq!(json["maxSurge"], 1);
        assert_eq!(json["bakeTime"], "1m");
        assert_eq!(json["failurePolicy"], "rollback");
        assert_eq!(json["waves"][1]["approval"], "none");
        let back: WavePlan = serde_json::from_value(json).expect("round-trips");
        assert_eq!(back, plan);
    }
}
