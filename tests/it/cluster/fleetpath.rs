//! The fleet path on the three local clusters: a no-op fleet sync writes
//! nothing (counted by the clients' request counters: no lock taken, no
//! bake waited), and a rollout whose environment lock is taken from under
//! it stops: no cluster changes after the loss, the journal is kept, and
//! `--resume` finishes it without re-applying what was done.

use super::{fleet, kubeconfig_factory, rollout::deployment};
use crate::pipeline::{At, NoApprovals, load_env_at};
use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tidegate_audit::{Action as AuditAction, Actor, MemorySink, Outcome as AuditOutcome, Trigger};
use tidegate_cluster::{
    ClientFactory, ClusterError, Holder, KubeconfigFactory, RequestCounter, RequestCounts,
    acquire_lease, release_lease,
};
use tidegate_core::environment::Cluster;
use tidegate_fleet::{
    ClusterStep, Driver, DriverOptions, Journal, Outcome, RolloutError, RolloutReport, lock,
};
use tidegate_sync::{Audit, Engine};
use tidegate_testkit::{Fleet, TestNamespace};
use tidegate_tests::GitFixture;

const EKS: &str = "eks-us-east-1";
const AKS: &str = "aks-westeurope";
const GKE: &str = "gke-us-central1";

/// A kubeconfig factory that keeps the request counter of every client it
/// makes, so a test counts what the driver sent without asking the driver.
struct Counting {
    inner: KubeconfigFactory,
    counters: Mutex<Vec<(String, RequestCounter)>>,
}

impl Counting {
    fn new(fleet: &Fleet) -> Counting {
        Counting {
            inner: kubeconfig_factory(fleet),
            counters: Mutex::new(Vec::new()),
        }
    }

    /// Requests sent to each cluster by every client made so far.
    fn counts(&self) -> Vec<(String, RequestCounts)> {
        let counters = self.counters.lock().expect("counters");
        counters.iter().map(|(c, n)| (c.clone(), n.get())).collect()
    }
}

impl ClientFactory for Counting {
    fn client(
        &self,
        cluster: &Cluster,
        counter: &RequestCounter,
    ) -> impl Future<Output = Result<kube::Client, ClusterError>> + Send {
        self.counters
            .lock()
            .expect("counters")
            .push((cluster.name.clone(), counter.clone()));
        self.inner.client(cluster, counter)
    }
}

struct Fixture {
    fleet: &'static Fleet,
    git: GitFixture,
    ns: TestNamespace,
    audit: Arc<MemorySink>,
    state: tempfile::TempDir,
}

impl Fixture {
    async fn new(prefix: &str) -> Fixture {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        let fx = Fixture {
            fleet,
            git: GitFixture::new(),
            ns,
            audit: Arc::new(MemorySink::new()),
            state: tempfile::tempdir().expect("state"),
        };
        fx.release("registry.example/web:1", "1s");
        fx
    }

    fn env(&self) -> &str {
        self.ns.name()
    }

    /// Commits a release: the `web` Deployment at `image`, a ConfigMap, and
    /// the environment (three waves) baking `bake` after each wave.
    fn release(&self, image: &str, bake: &str) {
        let env = self.env();
        let mut clusters = String::new();
        for (wave, name) in [EKS, AKS, GKE].iter().enumerate() {
            clusters.push_str(&format!(
                "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      wave: {}\n",
                wave + 1
            ));
        }
        self.git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 60s\n    bakeTime: {bake}\n    failurePolicy: rollback\n"
            ),
        );
        self.git
            .write("manifests/app/web.yaml", deployment(image, false));
        self.git.write(
            "manifests/app/settings.yaml",
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  image: {image}\n"),
        );
    }

    fn commit(&mut self, message: &str) -> String {
        self.git.commit(message)
    }

    async fn run(
        &self,
        factory: &Counting,
        options: DriverOptions,
    ) -> Result<RolloutReport, RolloutError> {
        let (desired, rendered) = load_env_at(self.git.path(), self.env(), "HEAD").expect("valid");
        let driver = Driver {
            factory,
            environment: &desired.environment,
            rendered: &rendered,
            revision: &desired.commit.sha,
            revisions: &At(self.git.path().to_path_buf(), self.env().to_string()),
            approvals: &NoApprovals,
            audit: Some(Audit {
                sink: self.audit.clone(),
                actor: Actor::new("tests@local", Trigger::Cli),
            }),
            check: None,
            journal: Some(std::sync::Arc::new(self.journal())),
            options,
        };
        driver.run(&|_| {}).await
    }

    fn journal(&self) -> Journal {
        Journal::new(self.state.path(), self.env())
    }

    fn options(&self) -> DriverOptions {
        DriverOptions {
            poll: Duration::from_millis(200),
            lock_ttl: Duration::from_secs(3),
            identity: "tests@local".into(),
            ..DriverOptions::default()
        }
    }

    async fn engine(&self, cluster: &str) -> Engine {
        let (desired, _) = load_env_at(self.git.path(), self.env(), "HEAD").expect("valid");
        let definition = desired.environment.cluster(cluster).expect("cluster");
        Engine::connect(&kubeconfig_factory(self.fleet), definition)
            .await
            .expect("connect")
    }

    /// The revision each cluster's inventory records.
    async fn revision(&self, cluster: &str) -> Option<String> {
        let inventories = self
            .engine(cluster)
            .await
            .inventories(self.env())
            .await
            .expect("inventories");
        inventories.first().map(|i| i.revision.clone())
    }

    /// The image of the live `web` Deployment.
    fn image(&self, cluster: &str) -> String {
        super::web_image(self.fleet, cluster, self.env())
    }

    /// Who holds the environment's lock in `cluster`, if anyone.
    fn lock_holder(&self, cluster: &str) -> Option<String> {
        self.fleet
            .kubectl(
                cluster,
                &[
                    "get",
                    "lease",
                    "-n",
                    "tidegate-system",
                    &lock::lock_name(self.env()),
                    "-o",
                    "jsonpath={.spec.holderIdentity}",
                    "--ignore-not-found",
                ],
            )
            .ok()
            .filter(|h| !h.trim().is_empty())
    }
}

/// `tidegate sync --env` with every cluster at the revision, matching Git
/// and Healthy: nothing is written to any cluster (no lock Lease created
/// and deleted), no wave starts (no transition at all, so no bake is
/// waited), nothing is audited.
#[tokio::test(flavor = "multi_thread")]
async fn a_no_op_fleet_sync_writes_nothing_and_waits_no_bake() {
    let mut fx = Fixture::new("fp-noop").await;
    let v1 = fx.commit("v1");
    let first = fx
        .run(&Counting::new(fx.fleet), fx.options())
        .await
        .expect("first rollout");
    assert_eq!(first.outcome, Outcome::Succeeded);
    assert!(!first.nothing_to_do);
    let audited = fx.audit.records().len();

    let counting = Counting::new(fx.fleet);
    let report = fx.run(&counting, fx.options()).await.expect("no-op");
    assert!(report.nothing_to_do, "{report:?}");
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert!(report.transitions.is_empty(), "{:?}", report.transitions);
    assert!(report.timeline.is_empty(), "{:?}", report.timeline);
    let counts = counting.counts();
    assert_eq!(counts.len(), 3, "one client per cluster: {counts:?}");
    for (cluster, n) in &counts {
        assert_eq!(n.writes, 0, "{cluster} was written to: {n:?}");
        assert!(n.reads > 0, "{cluster} was not even read: {n:?}");
        assert_eq!(
            report.requests.get(cluster),
            Some(n),
            "the report counts what the clients sent"
        );
    }
    assert_eq!(fx.audit.records().len(), audited, "a no-op is not audited");
    for cluster in [EKS, AKS, GKE] {
        assert_eq!(fx.revision(cluster).await, Some(v1.clone()));
        assert_eq!(fx.lock_holder(cluster), None, "{cluster}");
    }
}

/// The environment lock is taken from under a rollout while wave 1 bakes:
/// the rollout stops with `LockLost` naming the cluster, waves 2 and 3 are
/// never touched, the thief's lock is left alone while the others are
/// released, the audit operation ends aborted and the journal is kept;
/// once the thief is gone `--resume` finishes without re-applying wave 1.
#[tokio::test(flavor = "multi_thread")]
async fn losing_the_lock_mid_rollout_stops_it_and_changes_no_cluster_after() {
    let mut fx = Fixture::new("fp-lock").await;
    let v1 = fx.commit("v1");
    fx.run(&Counting::new(fx.fleet), fx.options())
        .await
        .expect("v1 rolls out");
    fx.release("registry.example/web:2", "8s");
    let v2 = fx.commit("v2, baking 8s after every wave");

    let thief = Holder {
        identity: "thief@elsewhere".into(),
        host: "elsewhere".into(),
        ..Holder::this_process("thief@elsewhere")
    };
    let eks = fx.engine(EKS).await;
    let name = lock::lock_name(fx.env());
    let counting = Counting::new(fx.fleet);
    let rollout = fx.run(&counting, fx.options());
    let steal = async {
        // Once wave 1 is written, take the lock there.
        let deadline = Instant::now() + Duration::from_secs(120);
        while fx.revision(EKS).await.as_deref() != Some(v2.as_str()) {
            assert!(Instant::now() < deadline, "wave 1 never got v2");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        acquire_lease(
            eks.client(),
            EKS,
            &name,
            &thief,
            Duration::from_secs(60),
            true,
        )
        .await
        .expect("steal the lock");
    };
    let (result, ()) = tokio::join!(rollout, steal);
    let error = result.expect_err("the rollout must stop");
    let RolloutError::LockLost {
        cluster, finished, ..
    } = &error
    else {
        panic!("not a lost lock: {error}");
    };
    assert_eq!(cluster, EKS);
    assert!(finished.iter().all(|c| c == EKS), "{finished:?}");
    let text = error.to_string();
    assert!(
        text.contains("thief@elsewhere") && text.contains("--resume"),
        "{text}"
    );

    // Nothing changed in waves 2 and 3; wave 1 runs v2.
    for cluster in [AKS, GKE] {
        assert_eq!(fx.revision(cluster).await, Some(v1.clone()), "{cluster}");
        assert_eq!(fx.image(cluster), "registry.example/web:1", "{cluster}");
    }
    assert_eq!(fx.image(EKS), "registry.example/web:2");
    // The thief keeps its lock; ours is released everywhere else.
    assert_eq!(fx.lock_holder(EKS).as_deref(), Some("thief@elsewhere"));
    assert_eq!(fx.lock_holder(AKS), None);
    assert_eq!(fx.lock_holder(GKE), None);
    // Audited as aborted; journaled for --resume.
    let ends: Vec<_> = fx
        .audit
        .records()
        .into_iter()
        .filter(|r| r.entry.action == AuditAction::RolloutEnd)
        .collect();
    let last = ends.last().expect("rollout-end");
    assert_eq!(last.entry.outcome, Some(AuditOutcome::Aborted));
    assert!(
        last.entry
            .message
            .as_deref()
            .is_some_and(|m| m.contains("lost")),
        "{:?}",
        last.entry.message
    );
    assert!(fx.journal().load().expect("journal").is_some());

    // The thief leaves; the rollout resumes where it stopped.
    release_lease(eks.client(), EKS, &name, &thief)
        .await
        .expect("thief releases");
    let resumed = fx
        .run(
            &Counting::new(fx.fleet),
            DriverOptions {
                resume: true,
                ..fx.options()
            },
        )
        .await
        .expect("resumes");
    assert_eq!(resumed.outcome, Outcome::Succeeded, "{resumed:?}");
    assert!(
        !resumed
            .timeline
            .iter()
            .any(|(c, step, _)| c == EKS && *step == ClusterStep::Apply),
        "wave 1 re-applied: {:?}",
        resumed.timeline
    );
    for cluster in [EKS, AKS, GKE] {
        assert_eq!(fx.revision(cluster).await, Some(v2.clone()), "{cluster}");
    }
}
