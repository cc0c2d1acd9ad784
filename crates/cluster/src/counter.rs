//! Counting the requests a client sends, by kind.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// Counts requests: reads (GET, LIST), watches, dry runs and writes. Cheap
/// to clone; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<[AtomicU64; 4]>);

/// A snapshot of a [`RequestCounter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// GET and LIST requests.
    pub reads: u64,
    /// WATCH requests (a GET with `watch=true`: each opens or re-opens a
    /// watch; the controller's watch caches send only these in steady state).
    pub watches: u64,
    /// Mutating requests sent with `dryRun=All`.
    pub dry_runs: u64,
    /// Mutating requests that change the cluster.
    pub writes: u64,
}

impl RequestCounter {
    /// Records one request.
    pub fn record<B>(&self, request: &http::Request<B>) {
        let query = request.uri().query().unwrap_or_default();
        let slot = if request.method() == http::Method::GET {
            if query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1")
            {
                3
            } else {
                0
            }
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
            watches: self.0[3].load(Ordering::Relaxed),
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
            watches: self.watches - earlier.watches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: http::Method, uri: &str) -> http::Request<()> {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
    }

    #[test]
    fn watches_are_counted_apart_from_reads() {
        let counter = RequestCounter::default();
        counter.record(&request(
            http::Method::GET,
            "/api/v1/configmaps?labelSelector=a%3Db",
        ));
        counter.record(&request(
            http::Method::GET,
            "/api/v1/configmaps?labelSelector=a%3Db&watch=true&resourceVersion=5",
        ));
        counter.record(&request(
            http::Method::PATCH,
            "/api/v1/namespaces/x/configmaps/y?dryRun=All",
        ));
        counter.record(&request(
            http::Method::PATCH,
            "/api/v1/namespaces/x/configmaps/y",
        ));
        assert_eq!(
            counter.get(),
            RequestCounts {
                reads: 1,
                watches: 1,
                dry_runs: 1,
                writes: 1
            }
        );
    }
}
