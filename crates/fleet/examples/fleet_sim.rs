//! The controller at 100 and 1,000 clusters: the load model and the
//! scheduling simulation of `tidegate_fleet::sim`, fed with the figures the
//! fleet-scale benchmark measured (docs/scale.md, "Beyond the machine").
//!
//! `cargo run -p tidegate-fleet --example fleet_sim` (add `-- --seeds N`
//! for more seeds per row; medians are printed).

use std::time::Duration;
use tidegate_core::intorpercent::IntOrPercent;
use tidegate_fleet::sim::{
    Costs, Latency, Limits, Shape, Simulation,
    model::{LoadModel, MemoryRuns},
};

/// Measured by `make bench-fleet` at 10 clusters × 1,000 objects, debug
/// build, on a 2-core machine at load 40–70 (docs/scale.md, run 2).
mod measured {
    /// RSS, one cluster × one object.
    pub const RSS_ONE: u64 = 69_586_944;
    /// RSS, 10 clusters × one object each.
    pub const RSS_CLUSTERS: u64 = 71_921_664;
    /// RSS of a controller that adopted 10 × 1,000 objects (steady).
    pub const RSS_FULL: u64 = 207_904_768;
    /// Peak RSS (VmHWM) of the controller that ran the rollouts.
    pub const RSS_PEAK: u64 = 422_723_584;
    /// Open watches per cluster (with − without the controller).
    pub const WATCHES_PER_CLUSTER: f64 = 3.0;
    /// Watch re-opens per watch per minute (kube-runtime's watcher asks
    /// for 290 s timeouts; none fell in the 60 s quiet periods).
    pub const REOPENS_PER_WATCH_PER_MIN: f64 = 60.0 / 290.0;
    /// Requests (not watches) of a change rollout per cluster.
    pub const REQUESTS_PER_CHANGE: f64 = 92.1;
    /// Controller CPU per object planned, µs: the adopting controller's
    /// start-up survey (every object planned once).
    pub const CPU_US_PER_OBJECT: f64 = 1219.0;
}

/// Per-cluster latencies as the controller's log showed them (change
/// rollouts: pre-flight and locks 8.7 s for 10 clusters, 2 rounds of 8,
/// of which ~6 s CPU; apply median 4.9 s, p90 11.4 s; 8.2 s after the last
/// apply, of which 5 s bake). Wall-clock on a loaded machine: they include
/// waiting for a CPU.
fn costs(cpu_per_object: Duration) -> Costs {
    Costs {
        survey: Latency::ms(1000.0, 3000.0),
        lock: Latency::ms(50.0, 200.0),
        apply: Latency::ms(4900.0, 11400.0),
        ready: Latency::ms(500.0, 2000.0),
        health_read: Latency::ms(300.0, 1000.0),
        release: Latency::ms(300.0, 1000.0),
        drift_check: Latency::ms(200.0, 600.0),
        cpu_per_object,
    }
}

fn model() -> LoadModel {
    let (base, per_cluster, per_object) = MemoryRuns {
        one: measured::RSS_ONE,
        clusters: 10,
        per_cluster_run: measured::RSS_CLUSTERS,
        objects: 10_000,
        full_run: measured::RSS_FULL,
    }
    .fit();
    LoadModel {
        base_bytes: base,
        per_cluster_bytes: per_cluster,
        per_object_bytes: per_object,
        rollout_bytes_per_object: (measured::RSS_PEAK - measured::RSS_FULL) as f64 / 10_000.0,
        watches_per_cluster: measured::WATCHES_PER_CLUSTER,
        watch_reopens_per_cluster_per_min: measured::WATCHES_PER_CLUSTER
            * measured::REOPENS_PER_WATCH_PER_MIN,
        steady_requests_per_cluster_per_min: 0.0,
        requests_per_change_per_cluster: measured::REQUESTS_PER_CHANGE,
        cpu_per_object: Duration::from_secs_f64(measured::CPU_US_PER_OBJECT / 1e6),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn s(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seeds: u64 = args
        .iter()
        .position(|a| a == "--seeds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let model = model();
    println!("# Load model (per replica)\n");
    println!(
        "unit costs: base {:.1} MiB, {:.0} KiB per cluster, {:.1} KiB per cached object, {:.1} KiB more per object during a rollout, {} watches per cluster, {:.0} requests per cluster per change rollout, {:.0} µs CPU per object planned",
        model.base_bytes / 1048576.0,
        model.per_cluster_bytes / 1024.0,
        model.per_object_bytes / 1024.0,
        model.rollout_bytes_per_object / 1024.0,
        model.watches_per_cluster,
        model.requests_per_change_per_cluster,
        model.cpu_per_object.as_secs_f64() * 1e6
    );
    println!(
        "\n| clusters × objects | RSS, GiB | peak RSS in a rollout, GiB | open watches | watch re-opens/min | other requests/min, steady | requests per change rollout | CPU per fleet-wide plan, s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (n, m) in [(10, 1000), (100, 100), (100, 1000), (1000, 100)] {
        let p = model.predict(n, m);
        println!(
            "| {n} × {m} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            p.rss_bytes / 1073741824.0,
            p.peak_rss_bytes / 1073741824.0,
            p.open_watches,
            p.watch_reopens_per_min,
            p.steady_requests_per_min,
            p.requests_per_change,
            p.cpu_per_fleet_plan.as_secs_f64()
        );
    }
    println!(
        "\nmost clusters × 100 objects in 4 GiB at a rollout's peak: {}",
        model.max_clusters(100, 4.0 * 1073741824.0)
    );

    println!("\n# Scheduling simulation (medians of {seeds} seeds)\n");
    println!(
        "| clusters × objects | limits | CPU/object | rollout total, s | pre-flight | locks | waves | release | gates | overhead | max in flight / maxSurge | drift (bake 0 s): all corrected, s | queue drained, s | drift (bake 5 s): all corrected, s | mean wait per cluster for a slot / a core, s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let cpu_measured = model.cpu_per_object;
    let cpu_release = cpu_measured / 10;
    for (n, m) in [(10, 1000), (100, 100), (1000, 100)] {
        for (label, limits, cpu) in [
            ("8 at once, 2 cores", Limits::default(), cpu_measured),
            ("8 at once, 2 cores", Limits::default(), cpu_release),
            (
                "64 at once, 8 cores",
                Limits {
                    concurrency: 64,
                    cores: 8,
                    ..Limits::default()
                },
                cpu_release,
            ),
        ] {
            let mut runs = Vec::new();
            let mut drifts = Vec::new();
            let mut baked_drifts = Vec::new();
            for seed in 1..=seeds {
                let sim = Simulation {
                    shape: Shape {
                        clusters: n,
                        apps: 10,
                        objects_per_cluster: m,
                        max_surge: IntOrPercent::Percent(25),
                        bake: Duration::from_secs(5),
                    },
                    costs: costs(cpu),
                    limits,
                    seed,
                };
                runs.push(sim.rollout()?);
                baked_drifts.push(sim.drift_everywhere()?);
                let mut unbaked = sim.clone();
                unbaked.shape.bake = Duration::ZERO;
                drifts.push(unbaked.drift_everywhere()?);
            }
            let pick = |f: &dyn Fn(&tidegate_fleet::sim::RolloutRun) -> Duration| {
                median(runs.iter().map(f).collect())
            };
            println!(
                "| {n} × {m} | {label} | {:.0} µs | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {:.2} / {:.2} |",
                cpu.as_secs_f64() * 1e6,
                s(pick(&|r| r.total)),
                s(pick(&|r| r.preflight)),
                s(pick(&|r| r.lock)),
                s(pick(&|r| r.waves)),
                s(pick(&|r| r.release)),
                s(pick(&|r| r.gates)),
                s(pick(&|r| r.overhead())),
                runs.iter().map(|r| r.max_in_flight).max().unwrap_or(0),
                runs[0].allowed_in_flight,
                s(median(drifts.iter().map(|d| d.all_corrected).collect())),
                s(median(drifts.iter().map(|d| d.drained).collect())),
                s(median(
                    baked_drifts.iter().map(|d| d.all_corrected).collect()
                )),
                pick(&|r| r.slot_wait).as_secs_f64() / n as f64,
                pick(&|r| r.core_wait).as_secs_f64() / n as f64,
            );
        }
    }
    Ok(())
}
