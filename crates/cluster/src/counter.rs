//! Counting the requests a client sends, by kind.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

/// Counts requests: reads (GET, LIST), watches, dry runs and writes, and
/// each verb and resource apart ([`RequestCounter::breakdown`]). Cheap to
/// clone; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<[AtomicU64; 4]>, Arc<Mutex<BTreeMap<String, u64>>>);

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
        let what = what(request.method(), request.uri().path(), slot);
        let mut by = self.1.lock().unwrap_or_else(PoisonError::into_inner);
        *by.entry(what).or_default() += 1;
    }

    /// The requests so far by verb and resource (`list configmaps`, `get
    /// leases.coordination.k8s.io`, `dry-run patch deployments.apps`,
    /// `discovery`...): names of kinds only, never of objects.
    pub fn breakdown(&self) -> BTreeMap<String, u64> {
        self.1
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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

/// `verb resource` of a request (`slot`: 1 dry run, 3 watch).
fn what(method: &http::Method, path: &str, slot: usize) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        ["version"] => return "get version".into(),
        _ => return "discovery".into(),
    };
    // namespaces/<ns>/<resource>[/<name>[/<subresource>]], or <resource>[/<name>...]
    let rest = match rest {
        ["namespaces", _ns, _resource, ..] => &rest[2..],
        other => other,
    };
    let Some(resource) = rest.first() else {
        return "discovery".into();
    };
    let named = rest.len() > 1;
    let sub = rest.get(2).map(|s| format!("/{s}")).unwrap_or_default();
    let resource = if group.is_empty() {
        format!("{resource}{sub}")
    } else {
        format!("{resource}.{group}{sub}")
    };
    let verb = match (method.as_str(), named, slot) {
        (_, _, 3) => "watch",
        ("GET", true, _) => "get",
        ("GET", false, _) => "list",
        (_, _, 1) => match method.as_str() {
            "POST" => "dry-run create",
            _ => "dry-run patch",
        },
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", _, _) => "delete",
        (other, _, _) => other,
    };
    format!("{verb} {resource}")
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
            .expect("a request")
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

    #[test]
    fn the_breakdown_names_verbs_and_resources_never_objects() {
        let counter = RequestCounter::default();
        for (method, uri) in [
            (
                http::Method::GET,
                "/api/v1/namespaces/ns/configmaps?labelSelector=a",
            ),
            (
                http::Method::GET,
                "/api/v1/namespaces/ns/configmaps?labelSelector=b",
            ),
            (http::Method::GET, "/api/v1/namespaces/tidegate-system"),
            (http::Method::GET, "/apis/apps/v1/deployments?watch=true"),
            (
                http::Method::PATCH,
                "/apis/apps/v1/namespaces/ns/deployments/web?dryRun=All",
            ),
            (
                http::Method::PATCH,
                "/apis/apps/v1/namespaces/ns/deployments/web/scale",
            ),
            (
                http::Method::POST,
                "/apis/coordination.k8s.io/v1/namespaces/x/leases",
            ),
            (
                http::Method::DELETE,
                "/apis/coordination.k8s.io/v1/namespaces/x/leases/secret-name",
            ),
            (http::Method::GET, "/apis"),
            (http::Method::GET, "/apis/apps/v1"),
            (http::Method::GET, "/version"),
        ] {
            counter.record(&request(method, uri));
        }
        let by = counter.breakdown();
        let expected: BTreeMap<String, u64> = [
            ("list configmaps", 2),
            ("get namespaces", 1),
            ("watch deployments.apps", 1),
            ("dry-run patch deployments.apps", 1),
            ("patch deployments.apps/scale", 1),
            ("create leases.coordination.k8s.io", 1),
            ("delete leases.coordination.k8s.io", 1),
            ("discovery", 2),
            ("get version", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(by, expected);
        assert!(!format!("{by:?}").contains("secret-name"));
    }
}
