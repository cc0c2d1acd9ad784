//! Plan and health reads of one environment's 200 objects on a real local
//! cluster, beside 3,000 ConfigMaps of another environment, counted at the
//! HTTP layer and timed — the live-state changes against the reads they
//! replaced, in the same run:
//!
//! - **before**: every kind LISTed by the managed-by label alone across
//!   namespaces (so the other environment's 3,000 ConfigMaps come along),
//!   a dry run per object on every plan, 16 at a time; health by one GET
//!   per object. Reproduced through the live-state seam (`LiveState`
//!   wrappers below) on today's engine.
//! - **after, cold**: reads scoped to the environment (label + namespace),
//!   an empty dry-run cache (the first plan of a process), 16 dry runs at a
//!   time (the default), and 8 for comparison.
//! - **after, warm**: the same engine planning again with nothing changed
//!   (the apply-time plan after a pre-flight; the controller's steady state).
//! - health of the 200 objects: `Engine::health_of` (one read per kind) vs a
//!   GET per object.
//!
//! Run: `cargo bench -p tidegate-tests --bench plan` (uses the clusters of
//! `TIDEGATE_TEST_KUBECONFIG` when set, otherwise starts its own). Prints
//! medians; exits non-zero if a warm plan sends any dry run.

use futures::future::BoxFuture;
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tidegate_cluster::{ClusterError, KubeconfigFactory, RequestCounts, Resolved};
use tidegate_core::ObjectKey;
use tidegate_health::HealthStatus;
use tidegate_sync::{
    ApiLiveState, Engine, ListScope, LiveMap, LiveObject, LiveState, SyncOptions, Target,
};
use tidegate_testkit::{TestNamespace, shared_fleet};
use tidegate_tests::GitFixture;

#[path = "shared/mod.rs"]
mod shared;

const OBJECTS: usize = 200;
const NOISE: usize = 3000;
const RUNS: usize = 5;
const CONTEXT: &str = "eks-us-east-1";

/// How a [`Reads`] reads.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// As before the live-state changes: LISTs ignore the scope
    /// (managed-by label only, every namespace).
    Unscoped,
    /// Health as before: no LIST, a GET per object.
    GetOnly,
    /// Today's reads.
    Scoped,
}

/// The API server's live state, read as `mode` says, counting the objects
/// LISTs return (what a plan transfers and decodes).
struct Reads {
    api: ApiLiveState,
    mode: Mode,
    listed: AtomicUsize,
}

impl Reads {
    fn new(engine: &Engine, mode: Mode) -> Arc<Reads> {
        Arc::new(Reads {
            api: ApiLiveState::new(engine.client().clone(), CONTEXT),
            mode,
            listed: AtomicUsize::new(0),
        })
    }
}

impl LiveState for Reads {
    fn list<'a>(
        &'a self,
        resolved: &'a Resolved,
        scope: ListScope<'a>,
    ) -> BoxFuture<'a, Result<LiveMap, ClusterError>> {
        Box::pin(async move {
            let found = match self.mode {
                Mode::GetOnly => return Ok(LiveMap::new()),
                Mode::Unscoped => self.api.list(resolved, ListScope::default()).await?,
                Mode::Scoped => self.api.list(resolved, scope).await?,
            };
            self.listed.fetch_add(found.len(), Ordering::Relaxed);
            Ok(found)
        })
    }

    fn get<'a>(
        &'a self,
        resolved: &'a Resolved,
        key: &'a ObjectKey,
    ) -> BoxFuture<'a, Result<Option<LiveObject>, ClusterError>> {
        self.api.get(resolved, key)
    }
}

fn manifests(count: usize) -> String {
    let mut out = String::new();
    for i in 0..count {
        match i % 3 {
            0 => out.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  LOG_LEVEL: info\n"
            )),
            1 => out.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\nspec:\n  selector:\n    app: dep-{i}\n  ports:\n    - port: 80\n"
            )),
            _ => out.push_str(&format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dep-{i}\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      app: dep-{i}\n  template:\n    metadata:\n      labels:\n        app: dep-{i}\n    spec:\n      containers:\n        - name: app\n          image: registry.example/app:1\n"
            )),
        }
    }
    out
}

fn noise(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other-{i}\ndata:\n  LOG_LEVEL: info\n"
            )
        })
        .collect()
}

fn environment(env: &str, app: &str) -> String {
    format!(
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: {CONTEXT}\n      provider:\n        kubeconfig:\n          context: {CONTEXT}\n  apps:\n    - name: {app}\n      namespace: {env}\n"
    )
}

struct Loaded {
    desired: tidegate_source::Desired,
    rendered: tidegate_render::Rendered,
}

fn load(git: &GitFixture, env: &str) -> Loaded {
    let (desired, rendered) = shared::load(git, env);
    Loaded { desired, rendered }
}

impl Loaded {
    fn target(&self) -> Target<'_> {
        Target {
            environment: &self.desired.environment,
            cluster: self.desired.environment.cluster(CONTEXT).expect("cluster"),
            rendered: &self.rendered.clusters[0],
            revision: &self.desired.commit.sha,
        }
    }

    async fn engine(&self, factory: &KubeconfigFactory) -> Engine {
        let cluster = self.desired.environment.cluster(CONTEXT).expect("cluster");
        Engine::connect(factory, cluster).await.expect("connect")
    }

    fn keys(&self) -> Vec<(ObjectKey, String)> {
        self.rendered.clusters[0]
            .apps
            .iter()
            .flat_map(|a| &a.objects)
            .map(|o| {
                let api_version = o.manifest["apiVersion"].as_str().unwrap_or_default();
                (o.key.clone(), api_version.to_string())
            })
            .collect()
    }
}

/// One measured call: its time and requests.
#[derive(Default)]
struct Samples {
    times: Vec<Duration>,
    requests: Vec<RequestCounts>,
}

impl Samples {
    fn median(&self) -> Duration {
        let mut v = self.times.clone();
        v.sort();
        v[v.len() / 2]
    }

    fn line(&self, what: &str) -> String {
        // Requests do not vary between runs but for the warm plans (printed apart).
        let last = self.requests.last().copied().unwrap_or_default();
        format!(
            "{what:<40} {:>8.1} ms   {:>4} reads {:>4} dry runs   runs {:?}",
            self.median().as_secs_f64() * 1000.0,
            last.reads,
            last.dry_runs,
            self.times
                .iter()
                .map(|d| (d.as_secs_f64() * 1000.0).round() as u64)
                .collect::<Vec<_>>()
        )
    }
}

async fn measure<T>(
    engine: &Engine,
    samples: &mut Samples,
    f: impl std::future::Future<Output = T>,
) -> T {
    let before = engine.requests();
    let start = Instant::now();
    let out = f.await;
    samples.times.push(start.elapsed());
    samples.requests.push(engine.requests().since(before));
    out
}

#[tokio::main]
async fn main() {
    tidegate_cluster::install_crypto_provider();
    let fleet = shared_fleet().await.expect("local clusters");
    let factory = KubeconfigFactory {
        force: false,
        file: Some(fleet.kubeconfig().to_path_buf()),
    };
    let ours = TestNamespace::create(fleet, "bench-plan").expect("ns");
    let theirs = TestNamespace::create(fleet, "bench-other").expect("ns");
    let (env, other) = (ours.name().to_string(), theirs.name().to_string());
    let mut git = GitFixture::new();
    git.write(
        &format!("environments/{env}.yaml"),
        environment(&env, "bench"),
    );
    git.write(
        &format!("environments/{other}.yaml"),
        environment(&other, "other"),
    );
    git.write("manifests/bench/objects.yaml", manifests(OBJECTS));
    // At most 1,024 documents per file.
    for part in 0..NOISE / 1000 {
        let text = noise(1000).replace("other-", &format!("other-{part}-"));
        git.write(&format!("manifests/other/objects-{part}.yaml"), text);
    }
    git.commit("200 objects beside 3,000 of another environment");

    // Apply both environments.
    let (mine, theirs_loaded) = (load(&git, &env), load(&git, &other));
    for loaded in [&theirs_loaded, &mine] {
        let engine = loaded.engine(&factory).await;
        engine
            .sync(&loaded.target(), &SyncOptions::default(), &|_| {})
            .await
            .expect("initial sync");
    }

    let before = loaded_engine(&mine, &factory).await;
    let before_reads = Reads::new(&before, Mode::Unscoped);
    let before = before
        .with_live_state(before_reads.clone())
        .with_dry_run_concurrency(16);
    let after = loaded_engine(&mine, &factory).await;
    let after_reads = Reads::new(&after, Mode::Scoped);
    let after = after.with_live_state(after_reads.clone());
    let get_only = loaded_engine(&mine, &factory).await;
    let get_only_reads = Reads::new(&get_only, Mode::GetOnly);
    let get_only = get_only
        .with_live_state(get_only_reads)
        .with_environment(&env);
    let after_health = loaded_engine(&mine, &factory).await.with_environment(&env);
    let keys = mine.keys();
    // The Deployment controller writes each new Deployment's status: wait
    // until it has, so the live objects stand still while we measure.
    for _ in 0..300 {
        if after_health.health_of(&keys).await.expect("health") == HealthStatus::Healthy {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let eight = loaded_engine(&mine, &factory)
        .await
        .with_dry_run_concurrency(8);
    let target = mine.target();
    let options = SyncOptions::default();

    let (mut old, mut cold, mut warm) =
        (Samples::default(), Samples::default(), Samples::default());
    let (mut old_health, mut new_health) = (Samples::default(), Samples::default());
    let mut cold8 = Samples::default();
    for _ in 0..RUNS {
        // Cold plans start from an empty dry-run cache; the warm one reuses
        // what the cold one of the same engine left.
        for (engine, samples, cold_cache) in [
            (&before, &mut old, true),
            (&after, &mut cold, true),
            (&after, &mut warm, false),
            (&eight, &mut cold8, true),
        ] {
            if cold_cache {
                engine.dry_run_cache().clear();
            }
            let plan = measure(engine, samples, engine.plan(&target, &options))
                .await
                .expect("plan");
            assert_eq!(plan.changes(), 0, "steady state");
        }
        let h1 = measure(&get_only, &mut old_health, get_only.health_of(&keys))
            .await
            .expect("health");
        let h2 = measure(
            &after_health,
            &mut new_health,
            after_health.health_of(&keys),
        )
        .await
        .expect("health");
        assert_eq!(h1, h2, "the same verdict from both reads");
    }
    println!(
        "plan of {OBJECTS} objects (ConfigMaps, Services, Deployments) beside {NOISE} ConfigMaps of another environment; {RUNS} runs, medians"
    );
    println!("{}", old.line("plan, before (unscoped, no reuse)"));
    println!("{}", cold.line("plan, after, cold dry-run cache"));
    println!("{}", cold8.line("plan, after, cold, 8 dry runs at once"));
    println!("{}", warm.line("plan, after, warm dry-run cache"));
    println!(
        "dry runs of each warm plan: {:?}",
        warm.requests.iter().map(|r| r.dry_runs).collect::<Vec<_>>()
    );
    println!(
        "objects returned by the LISTs of one plan: before {}, after {}",
        before_reads.listed.load(Ordering::Relaxed) / RUNS,
        after_reads.listed.load(Ordering::Relaxed) / (2 * RUNS)
    );
    println!("{}", old_health.line("health, before (GET per object)"));
    println!("{}", new_health.line("health_of (one read per kind)"));
    println!(
        "ratios: cold/before {:.2}, warm/before {:.2}, health_of/GETs {:.2}",
        cold.median().as_secs_f64() / old.median().as_secs_f64(),
        warm.median().as_secs_f64() / old.median().as_secs_f64(),
        new_health.median().as_secs_f64() / old_health.median().as_secs_f64()
    );
    if warm.requests.iter().any(|r| r.dry_runs != 0) {
        eprintln!("a warm plan sent dry runs");
        // exit() runs no destructor: delete the namespaces first.
        drop((ours, theirs));
        std::process::exit(1);
    }
}

/// An engine with discovery warmed up (one plan), so runs measure reads.
async fn loaded_engine(loaded: &Loaded, factory: &KubeconfigFactory) -> Engine {
    let engine = loaded.engine(factory).await;
    engine.resolve_all(&loaded.keys()).await.expect("discovery");
    engine
}
