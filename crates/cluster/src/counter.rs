//! Counting the requests a client sends, by kind.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// Counts requests: reads (GET, LIST), dry runs and writes. Cheap to clone;
/// clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<[AtomicU64; 3]>);

/// A snapshot of a [`RequestCounter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// GET/LIST/WATCH requests.
    pub reads: u64,
    /// Mutating requests sent with `dryRun=All`.
    pub dry_runs: u64,
    /// Mutating requests that change the cluster.
    pub writes: u64,
}

impl RequestCounter {
    /// Records one request.
    pub fn record<B>(&self, request: &http::Request<B>) {
        let slot = if request.method() == http::Method::GET {
            0
        } else if request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "dryRun=All"))
        {
            1
        } else {
            2
        };
        self.0[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn get(&self) -> RequestCounts {
        RequestCounts {
            reads: self.0[0].load(Ordering::Relaxed),
            dry_runs: self.0[1].load(Ordering::Relaxed),
            writes: self.0[2].load(Ordering::Relaxed),
        }
    }
}

impl RequestCounts {
    /// The requests made between `earlier` and `self`.
    pub fn since(self, earlier: RequestCounts) -> RequestCounts {
        RequestCounts {
            reads: self.reads - earlier.reads,
            dry_runs: self.dry_runs - earlier.dry_runs,
            writes: self.writes - earlier.writes,
        }
    }
}
