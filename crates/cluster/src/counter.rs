//! Counting the requests a client sends, by kind, and their answers by
//! HTTP status code.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

/// Counts requests: reads (GET, LIST), watches, dry runs and writes, and
/// each verb and resource apart ([`RequestCounter::breakdown`]); with
/// [`RequestCounter::layer`] also their answers by status code
/// ([`RequestCounts::answers`]). Cheap to clone; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(
    Arc<[AtomicU64; 4]>,
    Arc<Mutex<BTreeMap<String, u64>>>,
    Arc<[[AtomicU64; CODES.len()]; 4]>,
);

/// The verbs of [`RequestCounts`], in slot order: the `verb` label of
/// `tidegate_api_requests_total`.
pub const VERBS: [&str; 4] = ["read", "dry-run", "write", "watch"];

/// The `code` label values of answers, in slot order. The status codes an
/// API server commonly answers are kept exactly; any other code counts in
/// its class (`1xx`, `2xx`, `3xx`, `4xx`, `5xx`; codes above 599 in
/// `5xx`), and a request that got no answer (connection refused or reset,
/// TLS, timeout) is `error`: at most 22 values, so at most 88 series per
/// cluster (in practice a handful: `200`, `201`, `404`, `409`...).
pub const CODES: [&str; 22] = [
    "200", "201", "202", "204", "304", "400", "401", "403", "404", "405", "409", "410", "422",
    "429", "500", "503", "1xx", "2xx", "3xx", "4xx", "5xx", "error",
];

/// The [`CODES`] slot of an answer's status (none: no answer).
fn code_slot(status: Option<http::StatusCode>) -> usize {
    let Some(status) = status else {
        return CODES.len() - 1;
    };
    let code = status.as_u16();
    let exact = code.to_string();
    if let Some(i) = CODES.iter().position(|c| *c == exact) {
        return i;
    }
    let class = match code / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    };
    CODES
        .iter()
        .position(|c| *c == class)
        .unwrap_or(CODES.len() - 1)
}

/// Answers by verb and code: `[verb slot][code slot]` (see [`VERBS`] and [`CODES`]).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Answers([[u64; CODES.len()]; 4]);

impl Answers {
    /// Every non-zero count: (verb, code, answers).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.0.iter().enumerate().flat_map(|(v, codes)| {
            codes
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(move |(c, n)| (VERBS[v], CODES[c], *n))
        })
    }

    /// Answers from (verb, code, count) triples (unknown names are skipped):
    /// for tests and fixtures.
    pub fn of<'a>(counts: impl IntoIterator<Item = (&'a str, &'a str, u64)>) -> Answers {
        let mut out = Answers::default();
        for (verb, code, n) in counts {
            if let (Some(v), Some(c)) = (
                VERBS.iter().position(|x| *x == verb),
                CODES.iter().position(|x| *x == code),
            ) {
                out.0[v][c] += n;
            }
        }
        out
    }

    /// The answers of one verb with one code (0 for unknown names).
    pub fn get(&self, verb: &str, code: &str) -> u64 {
        match (
            VERBS.iter().position(|v| *v == verb),
            CODES.iter().position(|c| *c == code),
        ) {
            (Some(v), Some(c)) => self.0[v][c],
            _ => 0,
        }
    }

    fn zip(self, other: Answers, f: impl Fn(u64, u64) -> u64) -> Answers {
        let mut out = self;
        for (v, codes) in out.0.iter_mut().enumerate() {
            for (c, n) in codes.iter_mut().enumerate() {
                *n = f(*n, other.0[v][c]);
            }
        }
        out
    }

    /// The sum of two counts.
    pub fn plus(self, other: Answers) -> Answers {
        self.zip(other, |a, b| a + b)
    }
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(v, c, n)| (format!("{v} {c}"), n)))
            .finish()
    }
}

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
    /// The answers to those requests by verb and status code (counted
    /// only by clients built with [`RequestCounter::layer`]; a watch is
    /// answered when it opens).
    pub answers: Answers,
}

impl RequestCounter {
    /// A tower layer for a kube client's stack that records each request
    /// as it is sent and its answer's status code (or `error`) when it comes.
    pub fn layer(&self) -> CountLayer {
        CountLayer(self.clone())
    }

    /// Records one request.
    pub fn record<B>(&self, request: &http::Request<B>) {
        self.record_slot(request);
    }

    /// Records the answer to a request of `verb` (its slot, as
    /// [`RequestCounter::record`] returned it): its status, or none when
    /// the request failed without one.
    fn answered(&self, verb: usize, status: Option<http::StatusCode>) {
        self.2[verb][code_slot(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one request; returns its verb slot (0 read, 1 dry run, 2 write, 3 watch).
    fn record_slot<B>(&self, request: &http::Request<B>) -> usize {
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
        slot
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
            answers: Answers(std::array::from_fn(|v| {
                std::array::from_fn(|c| self.2[v][c].load(Ordering::Relaxed))
            })),
        }
    }
}

/// The layer of [`RequestCounter::layer`].
#[derive(Debug, Clone)]
pub struct CountLayer(RequestCounter);

impl<S> tower::Layer<S> for CountLayer {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counter: self.0.clone(),
        }
    }
}

/// A service that counts requests and answers (see [`CountLayer`]).
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    counter: RequestCounter,
}

impl<S, B, R> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let verb = self.counter.record_slot(&request);
        let counter = self.counter.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            counter.answered(verb, answer.as_ref().ok().map(http::Response::status));
            answer
        })
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
            answers: self.answers.zip(earlier.answers, |a, b| a - b),
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
                writes: 1,
                answers: Answers::default(),
            }
        );
    }

    #[tokio::test]
    async fn answers_are_counted_by_verb_and_status_code() {
        use tower::{Layer, ServiceExt};
        let counter = RequestCounter::default();
        let service = tower::service_fn(|request: http::Request<()>| async move {
            let status = match request.uri().path() {
                "/denied" => 403,
                "/teapot" => 418,
                "/down" => return Err("connection refused"),
                _ => 200,
            };
            Ok(http::Response::builder()
                .status(status)
                .body(())
                .expect("a response"))
        });
        for (method, uri) in [
            (http::Method::GET, "/ok"),
            (http::Method::GET, "/ok?watch=true"),
            (http::Method::PATCH, "/denied"),
            (http::Method::PATCH, "/denied?dryRun=All"),
            (http::Method::DELETE, "/teapot"),
            (http::Method::GET, "/down"),
        ] {
            let _ = counter
                .layer()
                .layer(service)
                .oneshot(request(method, uri))
                .await;
        }
        let counts = counter.get();
        assert_eq!(
            (counts.reads, counts.watches, counts.writes, counts.dry_runs),
            (2, 1, 2, 1)
        );
        let answers: Vec<_> = counts.answers.iter().collect();
        assert_eq!(
            answers,
            [
                ("read", "200", 1),
                ("read", "error", 1),
                ("dry-run", "403", 1),
                ("write", "403", 1),
                ("write", "4xx", 1),
                ("watch", "200", 1),
            ]
        );
        assert_eq!(counts.answers.get("write", "403"), 1);
        let later = counter.get();
        assert_eq!(later.since(counts), RequestCounts::default());
    }

    #[test]
    fn codes_outside_the_list_count_in_their_class() {
        let slot = |code: u16| CODES[code_slot(http::StatusCode::from_u16(code).ok())];
        assert_eq!(
            [
                slot(200),
                slot(206),
                slot(307),
                slot(418),
                slot(502),
                slot(101),
                slot(999)
            ],
            ["200", "2xx", "3xx", "4xx", "5xx", "1xx", "5xx"]
        );
        assert_eq!(CODES[code_slot(None)], "error");
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
