//! The controller's load model: what one replica costs as a function of
//! clusters and objects, from figures the fleet-scale benchmark measures
//! (docs/scale.md). Linear by construction: each term is a measured unit
//! cost times a count; what is not linear (CPU contention, queues) is the
//! simulation's business ([`super::Simulation`]).

use std::time::Duration;

/// A controller's resident memory as measured in three runs of the
/// benchmark, from which the model's unit costs follow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryRuns {
    /// RSS of a controller managing one cluster with one object: the
    /// process's base.
    pub one: u64,
    /// Clusters of the second run, one object each.
    pub clusters: usize,
    /// Its RSS (the base plus what each further cluster costs: client,
    /// connection, watches, engine).
    pub per_cluster_run: u64,
    /// Objects cached in the third run (over the same `clusters`).
    pub objects: usize,
    /// Its RSS, steady (a controller that adopted the converged fleet).
    pub full_run: u64,
}

/// The unit costs of one controller replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadModel {
    /// The process with nothing to manage (bytes).
    pub base_bytes: f64,
    /// Each cluster's fixed memory (bytes).
    pub per_cluster_bytes: f64,
    /// Each cached object's memory (bytes).
    pub per_object_bytes: f64,
    /// What a rollout adds per managed object while it runs (rendered
    /// objects, plans, dry-run answers kept across rollouts): the peak
    /// (`VmHWM`) over the steady RSS, per object.
    pub rollout_bytes_per_object: f64,
    /// Watches open per cluster (one per managed kind).
    pub watches_per_cluster: f64,
    /// Watch re-opens per cluster per minute (the API server closes watches
    /// after a timeout; kube-runtime re-opens them from the last version).
    pub watch_reopens_per_cluster_per_min: f64,
    /// Requests other than watches per cluster per minute with nothing
    /// changing (0 by design; measured).
    pub steady_requests_per_cluster_per_min: f64,
    /// Requests (not watches) a change rollout sends each cluster.
    pub requests_per_change_per_cluster: f64,
    /// Controller CPU per object planned.
    pub cpu_per_object: Duration,
}

/// What the model predicts for one replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Clusters managed.
    pub clusters: usize,
    /// Objects per cluster.
    pub objects_per_cluster: usize,
    /// Resident memory with nothing happening (bytes).
    pub rss_bytes: f64,
    /// Resident memory at the peak of a fleet-wide rollout (bytes).
    pub peak_rss_bytes: f64,
    /// Watches open at once.
    pub open_watches: f64,
    /// Watch re-opens per minute, fleet-wide.
    pub watch_reopens_per_min: f64,
    /// Other requests per minute with nothing changing, fleet-wide.
    pub steady_requests_per_min: f64,
    /// Requests of one change rollout, fleet-wide.
    pub requests_per_change: f64,
    /// CPU of planning every object once (a pre-flight of the whole fleet,
    /// or a start-up drift survey).
    pub cpu_per_fleet_plan: Duration,
}

impl MemoryRuns {
    /// The memory terms of the model: base, per cluster, per object. A run
    /// smaller than the one before it counts as no growth (never negative).
    pub fn fit(&self) -> (f64, f64, f64) {
        let base = self.one as f64;
        let extra_clusters = self.clusters.saturating_sub(1).max(1) as f64;
        let per_cluster = (self.per_cluster_run as f64 - base).max(0.0) / extra_clusters;
        let extra_objects = self.objects.saturating_sub(self.clusters).max(1) as f64;
        let per_object =
            (self.full_run as f64 - self.per_cluster_run as f64).max(0.0) / extra_objects;
        (base, per_cluster, per_object)
    }
}

impl LoadModel {
    /// The prediction for `clusters` × `objects_per_cluster`.
    pub fn predict(&self, clusters: usize, objects_per_cluster: usize) -> Prediction {
        let n = clusters as f64;
        let objects = n * objects_per_cluster as f64;
        Prediction {
            clusters,
            objects_per_cluster,
            rss_bytes: self.base_bytes
                + n * self.per_cluster_bytes
                + objects * self.per_object_bytes,
            peak_rss_bytes: self.base_bytes
                + n * self.per_cluster_bytes
                + objects * (self.per_object_bytes + self.rollout_bytes_per_object),
            open_watches: n * self.watches_per_cluster,
            watch_reopens_per_min: n * self.watch_reopens_per_cluster_per_min,
            steady_requests_per_min: n * self.steady_requests_per_cluster_per_min,
            requests_per_change: n * self.requests_per_change_per_cluster,
            cpu_per_fleet_plan: self.cpu_per_object.mul_f64(objects),
        }
    }

    /// The most clusters of `objects_per_cluster` one replica holds in
    /// `budget` bytes at the peak of a fleet-wide rollout (0 when not even
    /// one).
    pub fn max_clusters(&self, objects_per_cluster: usize, budget: f64) -> usize {
        let per = self.per_cluster_bytes
            + objects_per_cluster as f64 * (self.per_object_bytes + self.rollout_bytes_per_object);
        if budget <= self.base_bytes || per <= 0.0 {
            return 0;
        }
        ((budget - self.base_bytes) / per).floor() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn model() -> LoadModel {
        LoadModel {
            base_bytes: 40.0 * MIB,
            per_cluster_bytes: 1.0 * MIB,
            per_object_bytes: 20_000.0,
            rollout_bytes_per_object: 10_000.0,
            watches_per_cluster: 3.0,
            watch_reopens_per_cluster_per_min: 0.5,
            steady_requests_per_cluster_per_min: 0.0,
            requests_per_change_per_cluster: 19.0,
            cpu_per_object: Duration::from_micros(50),
        }
    }

    #[test]
    fn memory_is_base_plus_clusters_plus_objects() {
        let p = model().predict(1000, 100);
        // 40 MiB + 1000 × 1 MiB + 100,000 × 20,000 B.
        assert_eq!(p.rss_bytes, 40.0 * MIB + 1000.0 * MIB + 2.0e9);
        assert!(p.rss_bytes < 4.0 * 1024.0 * MIB);
        assert_eq!(p.peak_rss_bytes, p.rss_bytes + 1.0e9);
        assert_eq!(p.open_watches, 3000.0);
        assert_eq!(p.watch_reopens_per_min, 500.0);
        assert_eq!(p.steady_requests_per_min, 0.0);
        assert_eq!(p.requests_per_change, 19_000.0);
        assert_eq!(p.cpu_per_fleet_plan, Duration::from_secs(5));
    }

    #[test]
    fn the_budget_gives_the_most_clusters() {
        let m = model();
        let budget = 4.0 * 1024.0 * MIB;
        let n = m.max_clusters(100, budget);
        assert!(m.predict(n, 100).peak_rss_bytes <= budget);
        assert!(m.predict(n + 1, 100).peak_rss_bytes > budget);
        assert_eq!(m.max_clusters(100, 10.0 * MIB), 0);
    }

    #[test]
    fn the_fit_splits_clusters_from_objects() {
        let runs = MemoryRuns {
            one: 40_000_000,
            clusters: 11,
            per_cluster_run: 50_000_000,
            objects: 10_011,
            full_run: 250_000_000,
        };
        let (base, per_cluster, per_object) = runs.fit();
        assert_eq!(base, 40_000_000.0);
        assert_eq!(per_cluster, 1_000_000.0);
        assert_eq!(per_object, 20_000.0);
        // Smaller later runs (noise) never give negative costs.
        let noisy = MemoryRuns {
            per_cluster_run: 39_000_000,
            full_run: 30_000_000,
            ..runs
        };
        assert_eq!(noisy.fit(), (40_000_000.0, 0.0, 0.0));
    }
}
