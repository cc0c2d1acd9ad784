//! The simulator: deterministic, its arithmetic exact where latencies are
//! fixed, and the rollout limits held.

use super::*;
use std::time::Duration;
use tidegate_core::intorpercent::IntOrPercent;
use tidegate_rollout::Outcome;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fixed(n: u64) -> Latency {
    Latency::fixed(ms(n))
}

fn costs() -> Costs {
    Costs {
        survey: Latency::ms(400.0, 900.0),
        lock: Latency::ms(20.0, 60.0),
        apply: Latency::ms(150.0, 400.0),
        ready: Latency::ms(1500.0, 4000.0),
        health_read: Latency::ms(30.0, 80.0),
        release: Latency::ms(20.0, 60.0),
        drift_check: Latency::ms(50.0, 150.0),
        cpu_per_object: Duration::from_micros(100),
    }
}

fn sim(clusters: usize, seed: u64) -> Simulation {
    Simulation {
        shape: Shape {
            clusters,
            apps: 10,
            objects_per_cluster: 100,
            max_surge: IntOrPercent::Percent(25),
            bake: Duration::from_secs(5),
        },
        costs: costs(),
        limits: Limits::default(),
        seed,
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = sim(100, 7).rollout().expect("simulates");
    let b = sim(100, 7).rollout().expect("simulates");
    assert_eq!(a, b);
    let c = sim(100, 8).rollout().expect("simulates");
    assert_ne!(a.total, c.total);
    let d = sim(100, 7).drift_everywhere().expect("simulates");
    assert_eq!(d, sim(100, 7).drift_everywhere().expect("simulates"));
}

#[test]
fn never_more_clusters_in_flight_than_max_surge() {
    for (clusters, surge) in [
        (10, IntOrPercent::Percent(25)),
        (100, IntOrPercent::Percent(25)),
        (100, IntOrPercent::Int(3)),
        (400, IntOrPercent::Percent(10)),
    ] {
        let mut s = sim(clusters, 3);
        s.shape.max_surge = surge;
        let run = s.rollout().expect("simulates");
        assert_eq!(run.outcome, Outcome::Succeeded);
        assert_eq!(run.applied_at.len(), clusters, "every cluster applied");
        assert!(
            run.max_in_flight <= run.allowed_in_flight,
            "{clusters} clusters, {surge:?}: {} in flight, limit {}",
            run.max_in_flight,
            run.allowed_in_flight
        );
        // The limit is reached (waves larger than it), so the check bites.
        assert_eq!(run.max_in_flight, run.allowed_in_flight, "{surge:?}");
    }
}

#[test]
fn fixed_latencies_give_exact_phases() {
    // 16 clusters, 8 at once, 1 s each: pre-flight 2 s; locks 2 × 100 ms;
    // releases 2 × 50 ms. Waves of 2, 5 and 9 clusters at a surge of 4:
    // 1 + 2 + 3 batches, each an apply of 200 ms, Healthy 1 s after, read
    // at once after the apply, then on the poll ticks (every 500 ms).
    let s = Simulation {
        shape: Shape {
            clusters: 16,
            apps: 1,
            objects_per_cluster: 10,
            max_surge: IntOrPercent::Percent(25),
            bake: Duration::from_secs(10),
        },
        costs: Costs {
            survey: fixed(1000),
            lock: fixed(100),
            apply: fixed(200),
            ready: fixed(1000),
            health_read: Latency::fixed(Duration::ZERO),
            release: fixed(50),
            drift_check: fixed(0),
            cpu_per_object: Duration::ZERO,
        },
        limits: Limits::default(),
        seed: 1,
    };
    let run = s.rollout().expect("simulates");
    assert_eq!(run.preflight, ms(2000));
    assert_eq!(run.lock, ms(200));
    assert_eq!(run.release, ms(100));
    assert_eq!(run.gates, Duration::from_secs(30));
    assert_eq!(run.allowed_in_flight, 4);
    assert_eq!(
        run.total,
        run.preflight + run.lock + run.waves + run.release
    );
    // Beyond the gates each wave batch costs apply + ready rounded up to the
    // next poll tick: more than 1.2 s per batch, less than 1.7 s.
    let batches = 1 + 2 + 3;
    let beyond = run.waves - run.gates;
    assert!(beyond >= ms(1200) * batches, "{beyond:?}");
    assert!(beyond <= ms(1700) * batches, "{beyond:?}");
}

#[test]
fn a_saturated_cpu_serialises_the_pre_flight() {
    // 1 core, 1 s of CPU per cluster: 20 clusters take 20 s whatever the
    // concurrency; the waiting is on the core, not on a slot.
    let mut s = sim(20, 1);
    s.costs.survey = Latency::fixed(Duration::ZERO);
    s.costs.cpu_per_object = ms(10); // × 100 objects
    s.limits.cores = 1;
    s.limits.concurrency = 64;
    let run = s.rollout().expect("simulates");
    assert_eq!(run.preflight, Duration::from_secs(20));
    assert_eq!(run.cpu, Duration::from_secs(20));
    assert!(run.core_wait > Duration::ZERO);
    // Twice the cores, half the time.
    s.limits.cores = 2;
    assert_eq!(
        s.rollout().expect("simulates").preflight,
        Duration::from_secs(10)
    );
}

#[test]
fn the_concurrency_limit_bounds_the_pre_flight() {
    let mut s = sim(100, 5);
    s.costs.cpu_per_object = Duration::ZERO;
    let narrow = s.rollout().expect("simulates");
    s.limits.concurrency = 64;
    let wide = s.rollout().expect("simulates");
    assert!(narrow.slot_wait > wide.slot_wait);
    assert!(
        narrow.preflight > wide.preflight * 4,
        "{:?} vs {:?}",
        narrow.preflight,
        wide.preflight
    );
}

#[test]
fn drift_everywhere_is_corrected_by_one_rollout_then_the_queue_drains() {
    let s = sim(50, 11);
    let drift = s.drift_everywhere().expect("simulates");
    assert_eq!(drift.rollout.outcome, Outcome::Succeeded);
    assert_eq!(drift.rollout.applied_at.len(), 50);
    assert_eq!(drift.checks, 50);
    // After the debounce and the first check.
    let first = drift
        .rollout
        .applied_at
        .values()
        .min()
        .copied()
        .expect("applied");
    assert!(first > s.limits.debounce + drift.rollout.preflight);
    assert!(drift.all_corrected < drift.drained);
    assert!(drift.drained >= s.limits.debounce + drift.rollout.total);
    // A bake per wave: 3 waves applied.
    assert_eq!(drift.rollout.gates, Duration::from_secs(15));
    assert!(drift.rollout.max_in_flight <= drift.rollout.allowed_in_flight);
}
