//! Reading live state on a real cluster, counted at the HTTP layer:
//! health from one read per kind (`Engine::health_of`), reads scoped to the
//! environment by its label, objects applied before that label existed
//! still found for diff, health and prune, dry-run answers reused while
//! nothing changed, and a `LiveState` answered from memory (as the
//! controller's watch caches answer) replacing every live read.

use super::{fleet, kubeconfig_factory};
use crate::pipeline::load_env;
use std::sync::Arc;
use tidegate_cluster::RequestCounts;
use tidegate_core::ObjectKey;
use tidegate_diff::DiffStatus;
use tidegate_health::{HealthChecks, HealthStatus};
use tidegate_render::Rendered;
use tidegate_source::Desired;
use tidegate_sync::{Action, Engine, Plan, SyncOptions, SyncReport, Target};
use tidegate_testkit::{Fleet, TestNamespace};
use tidegate_tests::GitFixture;

const CONTEXT: &str = "eks-us-east-1";

/// One environment (named like its fresh namespace) of one cluster and one
/// app `app`, with a CEL health check that calls a ConfigMap whose
/// `data.state` is `bad` Degraded.
struct Fixture {
    fleet: &'static Fleet,
    git: GitFixture,
    ns: TestNamespace,
    env: String,
}

impl Fixture {
    async fn new(prefix: &str) -> Fixture {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("test namespace");
        let env = ns.name().to_string();
        let git = GitFixture::new();
        git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: {CONTEXT}\n      provider:\n        kubeconfig:\n          context: {CONTEXT}\n  apps:\n    - name: app\n      namespace: {env}\n  health:\n    checks:\n      - group: \"\"\n        kind: ConfigMap\n        cel:\n          failed: \"has(data.state) && data.state == 'bad'\"\n          current: \"true\"\n",
            ),
        );
        Fixture {
            fleet,
            git,
            ns,
            env,
        }
    }

    /// Replaces the app's manifests with `objects` (one file) and commits.
    fn commit(&mut self, objects: &str) {
        self.git.write("manifests/app/objects.yaml", objects);
        self.git.commit("objects");
    }

    fn load(&self) -> (Desired, Rendered) {
        load_env(self.git.path(), &self.env).expect("valid")
    }

    /// An engine for the cluster with the environment's health checks.
    async fn engine(&self, desired: &Desired) -> Engine {
        let (checks, problems) = HealthChecks::for_environment(
            &desired.environment,
            &desired.env_file,
            &desired.health_scripts,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let cluster = desired.environment.cluster(CONTEXT).expect("cluster");
        Engine::connect(&kubeconfig_factory(self.fleet), cluster)
            .await
            .expect("connect")
            .with_health_checks(Arc::new(checks))
    }

    async fn plan(&self) -> Plan {
        let (desired, rendered) = self.load();
        self.engine(&desired)
            .await
            .plan(&target(&desired, &rendered), &SyncOptions::default())
            .await
            .expect("plan")
    }

    async fn sync(&self, options: SyncOptions) -> SyncReport {
        let (desired, rendered) = self.load();
        self.engine(&desired)
            .await
            .sync(&target(&desired, &rendered), &options, &|_| {})
            .await
            .expect("sync")
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["-n", self.ns.name()]);
        self.fleet.kubectl(CONTEXT, &all).expect("kubectl")
    }

    /// Removes the environment label from live objects, as an older
    /// Tidegate left them.
    fn strip_environment_label(&self, kind: &str, names: &[&str]) {
        for name in names {
            self.kubectl(&["label", kind, name, "tidegate.dev/environment-"]);
        }
    }

    fn key(&self, kind: &str, name: &str) -> (ObjectKey, String) {
        (
            ObjectKey::new("", kind, Some(self.ns.name()), name),
            "v1".to_string(),
        )
    }
}

fn target<'a>(desired: &'a Desired, rendered: &'a Rendered) -> Target<'a> {
    Target {
        environment: &desired.environment,
        cluster: desired.environment.cluster(CONTEXT).expect("cluster"),
        rendered: &rendered.clusters[0],
        revision: &desired.commit.sha,
    }
}

fn configmap(name: &str, state: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  state: {state}\n"
    )
}

fn service(name: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: {name}\n  ports:\n    - port: 80\n"
    )
}

/// The reads `f` sends (discovery warmed up first by the caller).
async fn reads<T>(engine: &Engine, f: impl std::future::Future<Output = T>) -> (T, u64) {
    let before = engine.requests();
    let out = f.await;
    let spent: RequestCounts = engine.requests().since(before);
    assert_eq!((spent.writes, spent.dry_runs), (0, 0), "{spent:?}");
    (out, spent.reads)
}

#[tokio::test(flavor = "multi_thread")]
async fn health_of_reads_each_kind_once_and_judges_with_the_environments_checks() {
    let mut fx = Fixture::new("live-health").await;
    fx.commit(
        &[
            configmap("a", "good"),
            configmap("b", "good"),
            configmap("c", "bad"),
            service("web"),
            service("api"),
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  token: hunter2\n".to_string(),
        ]
        .concat(),
    );
    fx.sync(SyncOptions::default()).await;
    let (desired, _) = fx.load();
    let engine = fx.engine(&desired).await.with_environment(&fx.env);
    let good = vec![
        fx.key("ConfigMap", "a"),
        fx.key("ConfigMap", "b"),
        fx.key("Service", "web"),
        fx.key("Service", "api"),
        fx.key("Secret", "token"),
    ];
    engine.resolve_all(&good).await.expect("discovery");

    // Two kinds with several objects: a LIST each; one Secret: a GET.
    let (health, n) = reads(&engine, engine.health_of(&good)).await;
    assert_eq!(health.expect("health"), HealthStatus::Healthy);
    assert_eq!(n, 3, "one read per kind");

    // The environment's CEL check decides the ConfigMap "c", from the same reads.
    let mut all = good.clone();
    all.push(fx.key("ConfigMap", "c"));
    let (health, n) = reads(&engine, engine.health_of(&all)).await;
    assert_eq!(health.expect("health"), HealthStatus::Degraded);
    assert_eq!(n, 3);

    // An object that does not exist is Missing: the LIST did not return it,
    // so it is asked for by name (one GET more).
    let mut missing = good.clone();
    missing.push(fx.key("ConfigMap", "gone"));
    let (health, n) = reads(&engine, engine.health_of(&missing)).await;
    assert_eq!(health.expect("health"), HealthStatus::Missing);
    assert_eq!(n, 4);

    // Objects an older Tidegate applied lack the environment label: the
    // scoped LIST misses them, the GET finds them, and they are not Missing.
    fx.strip_environment_label("configmap", &["a", "b"]);
    let (health, n) = reads(&engine, engine.health_of(&good)).await;
    assert_eq!(health.expect("health"), HealthStatus::Healthy);
    assert_eq!(
        n, 5,
        "one LIST per kind plus a GET for each unlabelled object"
    );

    // Nothing to judge: Healthy, no request.
    let (health, n) = reads(&engine, engine.health_of(&[])).await;
    assert_eq!(health.expect("health"), HealthStatus::Healthy);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_applied_without_the_environment_label_are_still_diffed_and_pruned() {
    let mut fx = Fixture::new("live-legacy").await;
    fx.commit(
        &[
            configmap("keep", "good"),
            configmap("old", "good"),
            configmap("other", "good"),
        ]
        .concat(),
    );
    let first = fx.sync(SyncOptions::default()).await;
    assert_eq!(first.count(Action::Created), 3);
    // Every rendered object carries the environment label.
    let label = fx.kubectl(&[
        "get",
        "configmap",
        "keep",
        "-o",
        "jsonpath={.metadata.labels.tidegate\\.dev/environment}",
    ]);
    assert_eq!(label, fx.env);

    // As an older Tidegate left them: no environment label.
    fx.strip_environment_label("configmap", &["keep", "old", "other"]);
    fx.commit(&[configmap("keep", "good"), configmap("other", "good")].concat());
    let plan = fx.plan().await;
    let statuses: Vec<(String, DiffStatus)> = plan
        .objects
        .iter()
        .map(|o| {
            (
                o.object.key.name.clone(),
                o.diff.as_ref().expect("diffed").status,
            )
        })
        .collect();
    // Found (not Missing): only the label differs.
    assert_eq!(
        statuses,
        vec![
            ("keep".to_string(), DiffStatus::OutOfSync),
            ("other".to_string(), DiffStatus::OutOfSync)
        ]
    );
    let pruned: Vec<&str> = plan
        .prune
        .iter()
        .map(|p| p.diff.key.name.as_str())
        .collect();
    assert_eq!(pruned, ["old"]);

    let report = fx
        .sync(SyncOptions {
            prune: true,
            ..SyncOptions::default()
        })
        .await;
    assert_eq!(report.count(Action::Pruned), 1);
    assert_eq!(report.count(Action::Configured), 2);
    let left = fx.kubectl(&[
        "get",
        "configmaps",
        "-l",
        &format!("tidegate.dev/environment={}", fx.env),
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(left, "keep other", "relabelled, and old pruned");
}

/// Waits until `keys` are Healthy: the Deployment controller has written
/// their status, so the live objects stand still.
async fn settle(engine: &Engine, keys: &[(ObjectKey, String)]) {
    for _ in 0..180 {
        if engine.health_of(keys).await.expect("health") == HealthStatus::Healthy {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!("{keys:?} never became Healthy");
}

fn deployment(name: &str) -> String {
    format!(
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n        - name: app\n          image: registry.example/{name}:1\n"
    )
}

/// Plans with `engine` and returns the plan and the dry runs it sent.
async fn plan_counting(fx: &Fixture, engine: &Engine) -> (Plan, u64) {
    let (desired, rendered) = fx.load();
    let before = engine.requests();
    let plan = engine
        .plan(&target(&desired, &rendered), &SyncOptions::default())
        .await
        .expect("plan");
    let spent = engine.requests().since(before);
    assert_eq!(spent.writes, 0);
    (plan, spent.dry_runs)
}

fn statuses(plan: &Plan) -> Vec<(String, DiffStatus)> {
    plan.objects
        .iter()
        .map(|o| {
            (
                format!("{}/{}", o.object.key.kind, o.object.key.name),
                o.diff.as_ref().expect("diffed").status,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_are_reused_until_the_desired_or_the_live_object_changes() {
    let mut fx = Fixture::new("live-dryrun").await;
    fx.commit(
        &[
            configmap("a", "good"),
            configmap("b", "good"),
            deployment("web"),
            deployment("api"),
        ]
        .concat(),
    );
    fx.sync(SyncOptions::default()).await;
    let (desired, _) = fx.load();
    // The Deployment controller writes their status once: wait until it
    // has, so the live objects stand still.
    let probe = fx.engine(&desired).await;
    let keys = [
        (
            ObjectKey::new("apps", "Deployment", Some(fx.ns.name()), "web"),
            "apps/v1".to_string(),
        ),
        (
            ObjectKey::new("apps", "Deployment", Some(fx.ns.name()), "api"),
            "apps/v1".to_string(),
        ),
    ];
    settle(&probe, &keys).await;

    // Two engines sharing one cache (a pre-flight plan, then the apply-time
    // plan; or a controller that reconnects).
    let cache = tidegate_sync::DryRunCache::new();
    let first = fx.engine(&desired).await.with_dry_run_cache(cache.clone());
    let (plan, sent) = plan_counting(&fx, &first).await;
    // The sync recorded in-sync verdicts in the inventory (the objects as
    // applied): the ConfigMaps still stand at those resourceVersions, the
    // Deployments' status moved on since, so only they are dry-run.
    assert_eq!(sent, 2, "one dry run per object without a verdict");
    assert_eq!(cache.len(), 2);
    assert_eq!(plan.verdicts_used, 2);
    let in_sync = statuses(&plan);
    assert!(
        in_sync.iter().all(|(_, s)| *s == DiffStatus::InSync),
        "{in_sync:?}"
    );

    let second = fx.engine(&desired).await.with_dry_run_cache(cache.clone());
    let (plan, sent) = plan_counting(&fx, &second).await;
    assert_eq!(sent, 0, "nothing changed: no dry run at all");
    assert_eq!(statuses(&plan), in_sync, "the same answers from the cache");

    // A new commit changes one desired object: only its dry run is sent.
    fx.commit(
        &[
            configmap("a", "changed"),
            configmap("b", "good"),
            deployment("web"),
            deployment("api"),
        ]
        .concat(),
    );
    let (plan, sent) = plan_counting(&fx, &second).await;
    assert_eq!(sent, 1, "a's dry run, nothing else");
    let changed: Vec<_> = statuses(&plan)
        .into_iter()
        .filter(|(_, s)| *s != DiffStatus::InSync)
        .collect();
    assert_eq!(
        changed,
        [("ConfigMap/a".to_string(), DiffStatus::OutOfSync)]
    );

    // An imperative edit of b (a conflict with kubectl's field manager):
    // its dry run is sent both ways (the conflict, then the prediction with
    // force); planning again with nothing changed reuses both.
    fx.kubectl(&[
        "patch",
        "configmap",
        "b",
        "--type=merge",
        "-p",
        r#"{"data":{"state":"edited"}}"#,
    ]);
    let (_, sent) = plan_counting(&fx, &second).await;
    assert_eq!(sent, 2, "b's conflict, then b forced");
    let (plan, sent) = plan_counting(&fx, &second).await;
    assert_eq!(sent, 0, "the drift is still there, and still known");
    let b = plan
        .objects
        .iter()
        .find(|o| o.object.key.name == "b")
        .expect("b");
    assert!(
        b.force,
        "the cached conflict still marks b for a forced apply"
    );

    // kubectl scale changes one object's resourceVersion: only its dry run
    // is sent again (a conflict with kubectl's imperative edit, then the
    // prediction with force, both for that object).
    fx.kubectl(&["scale", "deployment", "web", "--replicas=2"]);
    let (plan, sent) = plan_counting(&fx, &second).await;
    assert_eq!(
        sent, 2,
        "web's dry run (conflict, then forced), nothing else"
    );
    let drifted: Vec<_> = statuses(&plan)
        .into_iter()
        .filter(|(_, s)| *s != DiffStatus::InSync)
        .collect();
    assert_eq!(
        drifted,
        [
            ("ConfigMap/a".to_string(), DiffStatus::OutOfSync),
            ("ConfigMap/b".to_string(), DiffStatus::OutOfSync),
            ("Deployment/web".to_string(), DiffStatus::OutOfSync)
        ]
    );

    // Answers come in object order whatever the concurrency.
    let one_at_a_time = fx.engine(&desired).await.with_dry_run_concurrency(1);
    let (serial, _) = plan_counting(&fx, &one_at_a_time).await;
    let names = |p: &Plan| -> Vec<String> {
        p.objects
            .iter()
            .map(|o| o.object.key.name.clone())
            .collect()
    };
    assert_eq!(names(&serial), names(&plan));
    assert_eq!(
        statuses(&serial)
            .into_iter()
            .filter(|(n, _)| !n.contains("web"))
            .collect::<Vec<_>>(),
        statuses(&plan)
            .into_iter()
            .filter(|(n, _)| !n.contains("web"))
            .collect::<Vec<_>>()
    );
}

/// `keys` as they stand in the cluster now, read through the default seam.
async fn snapshot(probe: &Engine, keys: &[(ObjectKey, String)]) -> tidegate_sync::LiveMap {
    let api = tidegate_sync::ApiLiveState::new(probe.client().clone(), CONTEXT);
    let mut snapshot = tidegate_sync::LiveMap::new();
    for (key, resolved) in probe.resolve_all(keys).await.expect("resolve") {
        let found = tidegate_sync::LiveState::get(&api, &resolved, &key)
            .await
            .expect("get")
            .expect("exists");
        snapshot.insert(key, found);
    }
    snapshot
}

/// A live state answered from memory, as a watch cache answers: a snapshot
/// of the cluster's objects taken once.
struct Memory(tidegate_sync::LiveMap);

impl tidegate_sync::LiveState for Memory {
    fn list<'a>(
        &'a self,
        resolved: &'a tidegate_cluster::Resolved,
        scope: tidegate_sync::ListScope<'a>,
    ) -> futures::future::BoxFuture<
        'a,
        Result<tidegate_sync::LiveMap, tidegate_cluster::ClusterError>,
    > {
        let found = self
            .0
            .iter()
            .filter(|(k, v)| {
                k.kind == resolved.resource.kind
                    && k.group == resolved.resource.group
                    && scope
                        .namespace
                        .is_none_or(|ns| k.namespace.as_deref() == Some(ns))
                    && scope.environment.is_none_or(|env| {
                        v["metadata"]["labels"]["tidegate.dev/environment"] == env
                    })
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn get<'a>(
        &'a self,
        _resolved: &'a tidegate_cluster::Resolved,
        key: &'a ObjectKey,
    ) -> futures::future::BoxFuture<
        'a,
        Result<Option<tidegate_sync::LiveObject>, tidegate_cluster::ClusterError>,
    > {
        Box::pin(std::future::ready(Ok(self.0.get(key).cloned())))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_state_answered_from_memory_replaces_the_reads_of_plan_and_health() {
    let mut fx = Fixture::new("live-memory").await;
    fx.commit(
        &[
            configmap("a", "good"),
            configmap("b", "good"),
            deployment("web"),
        ]
        .concat(),
    );
    fx.sync(SyncOptions::default()).await;
    let (desired, rendered) = fx.load();
    let web = (
        ObjectKey::new("apps", "Deployment", Some(fx.ns.name()), "web"),
        "apps/v1".to_string(),
    );
    let keys = vec![
        fx.key("ConfigMap", "a"),
        fx.key("ConfigMap", "b"),
        web.clone(),
    ];
    let probe = fx.engine(&desired).await.with_environment(&fx.env);
    settle(&probe, &keys).await;

    // The snapshot a watch cache would hold, read through the default seam.
    let mut snapshot = snapshot(&probe, &keys).await;
    let engine = fx
        .engine(&desired)
        .await
        .with_environment(&fx.env)
        .with_live_state(Arc::new(Memory(snapshot.clone())));
    engine.resolve_all(&keys).await.expect("discovery");

    // Health: no request at all.
    let (health, n) = reads(&engine, engine.health_of(&keys)).await;
    assert_eq!(health.expect("health"), HealthStatus::Healthy);
    assert_eq!(n, 0);

    // A plan: the first sends its dry runs; the second, with nothing
    // changed, only reads the inventories (they are not live state).
    let (to, options) = (target(&desired, &rendered), SyncOptions::default());
    let plan = || engine.plan(&to, &options);
    let first = plan().await.expect("plan");
    assert_eq!(first.changes(), 0, "in sync");
    let before = engine.requests();
    let second = plan().await.expect("plan");
    assert_eq!(second.changes(), 0);
    let spent = engine.requests().since(before);
    assert_eq!(
        (spent.reads, spent.dry_runs, spent.writes),
        (1, 0, 0),
        "one inventory LIST, nothing else"
    );

    // The verdict is the seam's: a Deployment past its progress deadline in
    // memory is Degraded, whatever the cluster says.
    let mut degraded = (*snapshot[&web.0]).clone();
    degraded["status"]["conditions"] = serde_json::json!([{
        "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"
    }]);
    snapshot.insert(web.0.clone(), Arc::new(degraded));
    let engine = engine.with_live_state(Arc::new(Memory(snapshot)));
    let (health, n) = reads(&engine, engine.health_of(&keys)).await;
    assert_eq!(health.expect("health"), HealthStatus::Degraded);
    assert_eq!(n, 0);
    assert_eq!(
        probe.health_of(&keys).await.expect("health"),
        HealthStatus::Healthy,
        "the cluster itself is fine"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_after_its_pre_flight_plan_sends_each_dry_run_once() {
    let mut fx = Fixture::new("live-preflight").await;
    fx.commit(
        &[
            configmap("a", "good"),
            configmap("b", "good"),
            service("web"),
        ]
        .concat(),
    );
    // (round, created, configured, dry runs): in round 2 the in-sync
    // verdicts the first sync recorded spare b and web their dry runs.
    for (round, created, configured, dry_runs) in [(1, 3, 0, 3), (2, 0, 1, 1)] {
        if round == 2 {
            fx.commit(
                &[
                    configmap("a", "changed"),
                    configmap("b", "good"),
                    service("web"),
                ]
                .concat(),
            );
        }
        let (desired, rendered) = fx.load();
        let (to, options) = (target(&desired, &rendered), SyncOptions::default());
        // The fleet driver's order: a pre-flight plan of every cluster, then
        // the sync (which plans again) with the same engine.
        let engine = fx.engine(&desired).await;
        let before = engine.requests();
        let preflight = engine.plan(&to, &options).await.expect("pre-flight");
        assert_eq!(
            engine.requests().since(before).dry_runs,
            dry_runs,
            "round {round}"
        );
        assert!(preflight.problems.is_empty());
        let report = engine.sync(&to, &options, &|_| {}).await.expect("sync");
        assert_eq!(report.requests.dry_runs, 0, "round {round}: answers reused");
        assert_eq!(report.count(Action::Created), created);
        assert_eq!(report.count(Action::Configured), configured);
    }
    let data = fx.kubectl(&["get", "configmap", "a", "-o", "jsonpath={.data.state}"]);
    assert_eq!(
        data, "changed",
        "the reused answer still applied the change"
    );
}

fn paused_deployment(name: &str) -> String {
    deployment(name).replace(
        "spec:\n  replicas: 0\n",
        "spec:\n  paused: true\n  replicas: 0\n",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn health_after_an_apply_is_judged_on_what_was_applied_when_the_cache_has_not_seen_it() {
    let mut fx = Fixture::new("live-stale").await;
    fx.commit(&[configmap("a", "good"), deployment("web")].concat());
    fx.sync(SyncOptions::default()).await;
    let (desired, _) = fx.load();
    let web = (
        ObjectKey::new("apps", "Deployment", Some(fx.ns.name()), "web"),
        "apps/v1".to_string(),
    );
    let keys = vec![fx.key("ConfigMap", "a"), web.clone()];
    let probe = fx.engine(&desired).await.with_environment(&fx.env);
    settle(&probe, &keys).await;

    // A cache that never sees another write: the objects as they stand
    // now, Healthy.
    let before = snapshot(&probe, &keys).await;
    let engine = fx
        .engine(&desired)
        .await
        .with_environment(&fx.env)
        .with_live_state(Arc::new(Memory(before)));
    engine.resolve_all(&keys).await.expect("discovery");
    let (health, n) = reads(&engine, engine.health_of(&keys)).await;
    assert_eq!(health.expect("health"), HealthStatus::Healthy);
    assert_eq!(n, 0, "nothing written yet: the cache answers");

    // The engine pauses web (Suspended in the cluster from the apply on).
    fx.commit(&[configmap("a", "good"), paused_deployment("web")].concat());
    let (desired, rendered) = fx.load();
    let report = engine
        .sync(
            &target(&desired, &rendered),
            &SyncOptions::default(),
            &|_| {},
        )
        .await
        .expect("sync");
    assert_eq!(report.count(Action::Configured), 1);
    assert_eq!(engine.writes_not_yet_cached(), 1);

    // The cache still holds web as it was (Healthy): web is read from the
    // API server, and judged as applied.
    let (health, n) = reads(&engine, engine.health_of(&keys)).await;
    assert_eq!(
        health.expect("health"),
        HealthStatus::Suspended,
        "judged on the object applied, not on the cache's older copy"
    );
    assert_eq!(n, 1, "one GET of the object the cache has not seen");
    // An engine shared from it knows what it wrote.
    let shared = engine.share();
    let (health, _) = reads(&shared, shared.health_of(&keys)).await;
    assert_eq!(health.expect("health"), HealthStatus::Suspended);

    // Once the cache holds what the API server holds (the Deployment
    // controller has written web's status), it answers again.
    for _ in 0..180 {
        let generation = fx.kubectl(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.generation}/{.status.observedGeneration}",
        ]);
        let (g, o) = generation.split_once('/').expect("generations");
        if g == o {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let caught_up = snapshot(&probe, &keys).await;
    let engine = engine.with_live_state(Arc::new(Memory(caught_up)));
    // At most one GET to see that the cache holds what the API server
    // holds; from then on the cache answers.
    let (health, n) = reads(&engine, engine.health_of(&keys)).await;
    assert_eq!(health.expect("health"), HealthStatus::Suspended);
    assert!(n <= 1, "{n}");
    let (health, n) = reads(&engine, engine.health_of(&keys)).await;
    assert_eq!(health.expect("health"), HealthStatus::Suspended);
    assert_eq!(n, 0, "the cache has caught up: no request");
    assert_eq!(engine.writes_not_yet_cached(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_shares_the_renderings_manifests_instead_of_copying_them() {
    let mut fx = Fixture::new("live-share").await;
    fx.commit(&[configmap("a", "good"), deployment("web"), service("web")].concat());
    fx.sync(SyncOptions::default()).await;
    let (desired, rendered) = fx.load();
    let engine = fx.engine(&desired).await;
    let plan = engine
        .plan(&target(&desired, &rendered), &SyncOptions::default())
        .await
        .expect("plan");
    let objects = &rendered.clusters[0].apps[0].objects;
    assert_eq!(plan.objects.len(), objects.len());
    for planned in &plan.objects {
        let source = objects
            .iter()
            .find(|o| o.key == planned.object.key)
            .expect("rendered");
        // One copy of each manifest however many plans hold it (a
        // controller's pre-flight plans every cluster of a rollout).
        assert!(
            Arc::ptr_eq(&source.manifest, &planned.object.manifest),
            "{} was copied into the plan",
            planned.object.key
        );
    }
}
