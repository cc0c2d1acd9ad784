//! The fleet page's target: the overview of 100 clusters × 20 apps renders
//! server-side in < 50 ms and weighs < 300 KB.
//!
//! Builds the read model in-process from the controller's events
//! (`tidegate_server::page::fixture`: 100 clusters, 20 apps, 5 objects per
//! app, a rollout under way), then times what `GET /fleet` does (copy the
//! model, render the grid) and what `GET /fleet/rollouts/{env}` does, 31
//! times each, and reports medians; as a baseline in the same run, the
//! same overview of 3 clusters × 1 app. Exits non-zero when a target is
//! missed.
//!
//! Run: `make bench-page`.

use std::time::{Duration, Instant};
use tidegate_server::page::{fixture, model::FleetModel, render};

const RUNS: usize = 31;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Median time and size of `render` over [`RUNS`] runs.
fn time(render: impl Fn() -> String) -> (Duration, usize) {
    let size = render().len();
    let samples = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let html = render();
            let took = start.elapsed();
            assert_eq!(html.len(), size);
            took
        })
        .collect();
    (median(samples), size)
}

fn model(clusters: usize, apps: usize) -> FleetModel {
    let model = FleetModel::new();
    fixture::feed(&model, &fixture::environment("prod", clusters, apps), 5);
    model
}

fn overview(model: &FleetModel) -> String {
    let fleet = model.snapshot();
    render::fleet_page(&fleet, &render::GridFilter::default(), &|_| true).expect("render")
}

fn main() {
    let built = Instant::now();
    let big = model(100, 20);
    let build = built.elapsed();
    let small = model(3, 1);
    let (base, base_size) = time(|| overview(&small));
    let (grid, grid_size) = time(|| overview(&big));
    let (rollout, rollout_size) = time(|| {
        let env = big.environment("prod");
        render::rollout_page("prod", env.as_ref(), None).expect("render")
    });
    let rows = render::grid(&big.snapshot(), &render::GridFilter::default(), &|_| true).len();
    assert_eq!(rows, 100, "one row per cluster");
    println!("read model of 100 clusters x 20 apps x 5 objects built from events in {build:.2?}");
    println!("baseline: overview of 3 clusters x 1 app: median {base:.2?}, {base_size} bytes");
    println!(
        "overview of 100 clusters x 20 apps: median {grid:.2?} ({:.1}x the baseline), {:.1} KB (target < 50 ms, < 300 KB)",
        grid.as_secs_f64() / base.as_secs_f64(),
        grid_size as f64 / 1024.0
    );
    println!(
        "rollout view of 100 clusters in 10 waves: median {rollout:.2?}, {:.1} KB",
        rollout_size as f64 / 1024.0
    );
    let mut missed = Vec::new();
    if grid >= Duration::from_millis(50) {
        missed.push(format!("render {grid:.2?} >= 50 ms"));
    }
    if grid_size >= 300 * 1024 {
        missed.push(format!("size {grid_size} >= 300 KB"));
    }
    if !missed.is_empty() {
        eprintln!("target missed: {}", missed.join(", "));
        std::process::exit(1);
    }
}
