//! `tidegate controller` on the three local clusters, driven as a real
//! process in the background: new commits rolled out wave by wave with no
//! CLI, drift by `kubectl` corrected (selfHeal) or reported and left, a
//! never-ready revision rolled back, quarantined and not retried, and a
//! steady state that sends no request but its watches.

use super::{fleet, rollout::deployment};
use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tidegate_audit::{Filter, Record, SqliteStore};
use tidegate_testkit::{Fleet, TestNamespace};
use tidegate_tests::GitFixture;

pub(crate) const CLUSTERS: [&str; 3] = ["eks-us-east-1", "aks-westeurope", "gke-us-central1"];
/// Generous bound for anything the clusters and the controller do; never a
/// performance check.
const WAIT: Duration = Duration::from_secs(150);

/// An environment over the three clusters (waves 1, 2, 3; one cluster in
/// flight at a time) and the controller following it.
pub(crate) struct Followed {
    pub(crate) fleet: &'static Fleet,
    pub(crate) git: GitFixture,
    _ns: TestNamespace,
    pub(crate) env: String,
    pub(crate) state: tempfile::TempDir,
    controller: Option<Child>,
    /// More environments the controller follows (`--env`).
    more_envs: Vec<String>,
    /// The kubeconfig the controller uses instead of the fleet's.
    kubeconfig: Option<PathBuf>,
    /// More arguments of `tidegate controller` (`--notifications FILE`).
    pub(crate) args: Vec<String>,
}

/// The environment file of `env` over `clusters` (one wave each, in order).
fn environment_file(env: &str, clusters: &[&str], self_heal: bool) -> String {
    let mut listed = String::new();
    for (wave, name) in clusters.iter().enumerate() {
        listed.push_str(&format!(
            "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      wave: {}\n",
            wave + 1
        ));
    }
    format!(
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{listed}  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 12s\n    bakeTime: 1s\n    failurePolicy: rollback\n  sync:\n    selfHeal: {self_heal}\n    interval: 2s\n"
    )
}

impl Followed {
    /// Commits the environment (`selfHeal` as given, fetched every 2 s) with
    /// the Deployment `web` at `image`, plus `extra` files.
    pub(crate) async fn new(prefix: &str, self_heal: bool, extra: &[(String, String)]) -> Followed {
        Followed::over(prefix, &CLUSTERS, self_heal, extra).await
    }

    /// [`Followed::new`] over some clusters only.
    async fn over(
        prefix: &str,
        clusters: &[&str],
        self_heal: bool,
        extra: &[(String, String)],
    ) -> Followed {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        let env = ns.name().to_string();
        let mut git = GitFixture::new();
        git.write(
            &format!("environments/{env}.yaml"),
            environment_file(&env, clusters, self_heal),
        );
        git.write(
            "manifests/app/web.yaml",
            deployment("registry.example/web:1", false),
        );
        for (path, text) in extra {
            git.write(path, text);
        }
        git.commit("v1");
        Followed {
            fleet,
            git,
            _ns: ns,
            env,
            state: tempfile::tempdir().expect("state"),
            controller: None,
            more_envs: Vec::new(),
            kubeconfig: None,
            args: Vec::new(),
        }
    }

    pub(crate) fn audit_db(&self) -> PathBuf {
        self.state.path().join("audit.db")
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.state.path().join("controller.log")
    }

    /// Starts `tidegate controller --env E` in the background (JSON logs to a file).
    pub(crate) fn start(&mut self) {
        let log = std::fs::File::create(self.log()).expect("log file");
        let child = Command::new(super::tidegate_bin())
            .args(["--repo", &self.git.path().display().to_string()])
            .args(["--log-format", "json", "controller", "--env", &self.env])
            .args(self.more_envs.iter().flat_map(|e| ["--env", e.as_str()]))
            .args(&self.args)
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .env(
                "KUBECONFIG",
                self.kubeconfig
                    .as_deref()
                    .unwrap_or(self.fleet.kubeconfig()),
            )
            .env("TIDEGATE_AUDIT_DB", self.audit_db())
            .env("XDG_STATE_HOME", self.state.path())
            .env("XDG_CACHE_HOME", self.state.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tidegate controller");
        self.controller = Some(child);
    }

    /// Stops the controller with SIGTERM; its exit status.
    pub(crate) fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.controller.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the controller did not stop on SIGTERM:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// The JSON log lines whose message is `message`.
    pub(crate) fn log_lines(&self, message: &str) -> Vec<serde_json::Value> {
        json_log_lines(&self.logs(), message)
    }

    /// Audit records of this environment with one of `actions`.
    pub(crate) fn records(&self, actions: &[&str]) -> Vec<Record> {
        self.records_of(&self.env, actions)
    }

    /// Audit records of `env` with one of `actions`.
    fn records_of(&self, env: &str, actions: &[&str]) -> Vec<Record> {
        if !self.audit_db().exists() {
            return Vec::new();
        }
        let Ok(store) = SqliteStore::open_read_only(&self.audit_db()) else {
            return Vec::new();
        };
        store
            .records(&Filter {
                environment: Some(env.to_string()),
                actions: actions.iter().map(|a| a.to_string()).collect(),
                ..Filter::default()
            })
            .unwrap_or_default()
    }

    /// `kubectl` in one cluster.
    pub(crate) fn kubectl(&self, context: &str, args: &[&str]) -> String {
        self.fleet
            .kubectl(context, args)
            .unwrap_or_else(|e| panic!("kubectl {args:?} in {context}: {e}"))
    }

    /// A field of the Deployment `web` in one cluster.
    pub(crate) fn web(&self, context: &str, jsonpath: &str) -> String {
        self.kubectl(
            context,
            &[
                "get",
                "deployment",
                "web",
                "-n",
                &self.env,
                "-o",
                &format!("jsonpath={jsonpath}"),
            ],
        )
    }

    /// The revision each cluster's inventory records as applied.
    pub(crate) fn revisions(&self) -> BTreeMap<String, String> {
        self.revisions_of(&self.env, &CLUSTERS)
    }

    /// The revision the inventory of `env` records as applied in each of `clusters`.
    fn revisions_of(&self, env: &str, clusters: &[&str]) -> BTreeMap<String, String> {
        inventory_revisions(self.fleet, env, clusters)
    }

    /// Waits until `done` holds, showing the controller's log if it never does.
    pub(crate) async fn wait(&self, what: &str, mut done: impl FnMut(&Followed) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}\n--- controller log\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_for_revisions(&self, env: &str, clusters: &[&str], sha: &str) {
        self.wait(&format!("{env} at {sha} in {clusters:?}"), |f| {
            f.revisions_of(env, clusters).values().all(|r| r == sha)
        })
        .await;
    }

    pub(crate) async fn wait_all_at(&self, sha: &str) {
        self.wait(&format!("every cluster at {sha}"), |f| {
            f.revisions().values().all(|r| r == sha)
        })
        .await;
    }
}

impl Drop for Followed {
    fn drop(&mut self) {
        if let Some(mut child) = self.controller.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The clusters of the `sync` operations (intents) of `revision`, in order.
fn synced_clusters(records: &[Record], revision: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.entry.action.as_str() == "sync" && r.entry.outcome.is_none())
        .filter(|r| r.entry.to.as_ref().is_some_and(|t| t.sha == revision))
        .filter_map(|r| r.entry.cluster.clone())
        .collect()
}

pub(crate) fn order() -> Vec<String> {
    CLUSTERS.iter().map(|c| c.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn new_commits_roll_out_wave_by_wave_and_kubectl_drift_is_corrected_one_wave_at_a_time() {
    let mut f = Followed::new("ctl-follow", true, &[]).await;
    let v1 = f.git.head();
    f.start();
    f.wait_all_at(&v1).await;

    // A new commit, no CLI: rolled out wave by wave at the next fetch.
    f.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    let v2 = f.git.commit("v2");
    f.wait_all_at(&v2).await;
    let syncs = f.records(&["sync"]);
    assert_eq!(
        synced_clusters(&syncs, &v2),
        order(),
        "one wave after the other"
    );
    let starts = f.records(&["rollout-start"]);
    let v2_start = starts
        .iter()
        .find(|r| r.entry.to.as_ref().is_some_and(|t| t.sha == v2))
        .expect("a rollout of v2");
    assert_eq!(v2_start.entry.actor.trigger.as_str(), "controller-poll");
    assert!(
        v2_start
            .entry
            .actor
            .identity
            .starts_with("tidegate-controller/")
    );
    f.wait("every cluster Healthy at v2", |f| {
        f.log_lines("rollout succeeded: every cluster is Healthy at the revision")
            .len()
            >= 2
    })
    .await;
    // Every cluster's apply logs inside environment > rollout > wave > cluster spans.
    let spans: Vec<(u64, String)> = f
        .log_lines("sync finished")
        .iter()
        .filter_map(|line| {
            let spans = line["spans"].as_array()?;
            let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
            // The engine's own `sync` span may follow.
            let at = names
                .windows(4)
                .position(|w| w == ["environment", "rollout", "wave", "cluster"])?;
            let [environment, rollout, wave, cluster] = &spans[at..at + 4] else {
                return None;
            };
            let nested = environment["environment"] == f.env.as_str()
                && rollout["revision"] == v2.as_str()
                && wave["wave"] == cluster["wave"];
            if !nested {
                return None;
            }
            Some((
                wave["wave"].as_u64()?,
                cluster["cluster"].as_str()?.to_string(),
            ))
        })
        .collect();
    let expected: Vec<(u64, String)> = (1..).zip(order()).collect();
    assert_eq!(
        spans,
        expected,
        "one wave span per wave around its cluster's span: {:#?}",
        f.log_lines("sync finished")
    );

    // Drift in two clusters by kubectl: scale in wave 1, patch in wave 2.
    let before = f.records(&["sync"]).len();
    f.kubectl(
        CLUSTERS[0],
        &["scale", "deployment", "web", "-n", &f.env, "--replicas=5"],
    );
    f.kubectl(
        CLUSTERS[1],
        &[
            "patch",
            "deployment",
            "web",
            "-n",
            &f.env,
            "--type=strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/web:hacked"}]}}}}"#,
        ],
    );
    f.wait("the drift corrected in both clusters", |f| {
        f.web(CLUSTERS[0], "{.spec.replicas}") == "2"
            && f.web(CLUSTERS[1], "{.spec.template.spec.containers[0].image}")
                == "registry.example/web:2"
    })
    .await;
    let corrected = f.records(&["drift-corrected"]);
    let in_cluster = |c: &str| {
        corrected
            .iter()
            .find(|r| r.entry.cluster.as_deref() == Some(c))
            .unwrap_or_else(|| panic!("no drift-corrected in {c}: {corrected:#?}"))
    };
    let eks = in_cluster(CLUSTERS[0]);
    let aks = in_cluster(CLUSTERS[1]);
    let eks_message = eks.entry.message.clone().unwrap_or_default();
    let aks_message = aks.entry.message.clone().unwrap_or_default();
    assert!(
        eks_message.contains("/spec/replicas") && eks_message.contains("kubectl"),
        "{eks_message}"
    );
    assert!(
        aks_message.contains("/spec/template/spec/containers") && aks_message.contains("kubectl"),
        "{aks_message}"
    );
    assert_eq!(eks.entry.actor.trigger.as_str(), "drift");
    // One wave at a time: the wave-1 cluster before the wave-2 cluster, and
    // the third cluster (no drift) untouched.
    assert!(eks.seq < aks.seq, "wave 1 corrected before wave 2");
    let corrections: Vec<String> = f.records(&["sync"])[before..]
        .iter()
        .filter(|r| r.entry.outcome.is_none())
        .filter_map(|r| r.entry.cluster.clone())
        .collect();
    assert!(
        !corrections.iter().any(|c| c == CLUSTERS[2]),
        "the cluster without drift was not synced: {corrections:?}"
    );
    assert!(f.stop().success(), "SIGTERM stops it cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_self_heal_drift_is_reported_once_per_episode_and_left() {
    let mut f = Followed::new("ctl-report", false, &[]).await;
    let v1 = f.git.head();
    f.start();
    f.wait_all_at(&v1).await;
    f.wait("watching", |f| !f.log_lines("watching").is_empty())
        .await;
    f.kubectl(
        CLUSTERS[0],
        &["scale", "deployment", "web", "-n", &f.env, "--replicas=4"],
    );
    f.wait("drift-detected recorded", |f| {
        !f.records(&["drift-detected"]).is_empty()
    })
    .await;
    // More drift in the same episode is not recorded again.
    f.kubectl(
        CLUSTERS[0],
        &["scale", "deployment", "web", "-n", &f.env, "--replicas=3"],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let detected = f.records(&["drift-detected"]);
    assert_eq!(detected.len(), 1, "{detected:#?}");
    let message = detected[0].entry.message.clone().unwrap_or_default();
    assert!(
        message.contains("/spec/replicas") && message.contains("kubectl"),
        "{message}"
    );
    assert_eq!(detected[0].entry.cluster.as_deref(), Some(CLUSTERS[0]));
    assert_eq!(f.web(CLUSTERS[0], "{.spec.replicas}"), "3", "left as it is");
    assert!(f.records(&["drift-corrected"]).is_empty());
    assert!(f.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_never_ready_revision_is_rolled_back_quarantined_and_not_retried_then_a_good_one_rolls_out()
 {
    let mut f = Followed::new("ctl-bad", true, &[]).await;
    let v1 = f.git.head();
    f.start();
    f.wait_all_at(&v1).await;
    f.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:bad", true),
    );
    let bad = f.git.commit("never ready");
    f.wait("the bad revision quarantined", |f| {
        f.records(&["quarantine"])
            .iter()
            .any(|r| r.entry.to.as_ref().is_some_and(|t| t.sha == bad))
    })
    .await;
    f.wait("rolled back", |f| {
        f.log_lines("rollout FAILED: rolled back and quarantined; waiting for a newer commit")
            .len()
            == 1
    })
    .await;
    assert_eq!(
        f.revisions(),
        order().into_iter().map(|c| (c, v1.clone())).collect()
    );
    let syncs = f.records(&["sync"]);
    assert_eq!(
        synced_clusters(&syncs, &bad),
        [CLUSTERS[0]],
        "only wave 1 ever saw the bad revision"
    );
    // Several intervals (2 s) later: not retried.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let attempts = f
        .records(&["rollout-start"])
        .iter()
        .filter(|r| r.entry.to.as_ref().is_some_and(|t| t.sha == bad))
        .count();
    assert_eq!(attempts, 1, "the quarantined revision is not retried");
    // The rollout let go of the running revision's rendering: it was
    // loaded again, so drift is still corrected, to v1 and not to the
    // quarantined head.
    f.kubectl(
        CLUSTERS[1],
        &["scale", "deployment", "web", "-n", &f.env, "--replicas=5"],
    );
    f.wait("the drift after the rollback corrected to v1", |f| {
        f.web(CLUSTERS[1], "{.spec.replicas}") == "2"
    })
    .await;
    assert_ne!(
        f.web(CLUSTERS[1], "{.spec.template.spec.containers[0].image}"),
        "registry.example/web:bad",
        "the quarantined revision is never applied by a drift correction"
    );
    assert_eq!(
        f.revisions(),
        order().into_iter().map(|c| (c, v1.clone())).collect()
    );
    // A newer good commit rolls out.
    f.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:3", false),
    );
    let v3 = f.git.commit("fixed");
    f.wait_all_at(&v3).await;
    assert!(f.stop().success());
}

// `count` ConfigMaps for the steady-state check.
pub(crate) use tidegate_tests::configmaps;

/// The request counts of a JSON log line.
fn counts(line: &serde_json::Value) -> [u64; 4] {
    ["reads", "watches", "dry_runs", "writes"]
        .map(|k| line["fields"][k].as_u64().unwrap_or(u64::MAX))
}

/// The controller following `web` and 100 ConfigMaps (selfHeal on), once
/// every cluster runs them and the watch caches are listed.
pub(crate) async fn watching_many(prefix: &str) -> Followed {
    let mut f = Followed::new(
        prefix,
        true,
        &[("manifests/app/many.yaml".to_string(), configmaps(100))],
    )
    .await;
    let v1 = f.git.head();
    f.start();
    f.wait_all_at(&v1).await;
    f.wait("watching", |f| !f.log_lines("watching").is_empty())
        .await;
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn the_steady_state_sends_no_request_but_watches() {
    let mut f = watching_many("ctl-steady").await;
    let watching = f.log_lines("watching").remove(0);
    assert!(
        watching["fields"]["objects"].as_u64().unwrap_or_default() >= 3 * 101,
        "{watching}"
    );
    // A quiet period spanning several fetches of the source (every 2 s).
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(f.stop().success());
    let stopped = f
        .log_lines("controller stopped (requests of the watch caches and drift checks)")
        .pop()
        .unwrap_or_else(|| panic!("no final counts:\n{}", f.logs()));
    let [reads, _, dry_runs, writes] = counts(&stopped);
    let [reads0, _, dry_runs0, writes0] = counts(&watching);
    assert_eq!(
        (reads - reads0, dry_runs - dry_runs0, writes - writes0),
        (0, 0, 0),
        "requests other than watches in the quiet period: from {watching} to {stopped}"
    );
    assert!(
        counts(&stopped)[1] >= 3,
        "the watches are open and counted: {stopped}"
    );
}

/// An unreachable cluster holds up neither other environments nor other
/// clusters' drift correction: environment `cut` spans eks and gke, gke
/// reached through a forwarder the test cuts; environment `other` spans eks
/// and aks. While gke is cut, `other` rolls a new commit out and corrects
/// drift; `cut` writes nothing (gke counts against `maxUnavailable: 0`), is
/// reported (log at every try, `cluster-unreachable` once in the audit
/// trail) and retried with growing backoff; once the forwarder is back, the
/// new commit reaches both of `cut`'s clusters.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_cluster_is_reported_and_retried_while_other_environments_go_on() {
    use super::safety::{Cut, kubeconfig_through};
    let [eks, aks, gke] = CLUSTERS;
    let mut f = Followed::over("ctl-other", &[eks, aks], true, &[]).await;
    let cut_ns = TestNamespace::create(f.fleet, "ctl-cut").expect("namespace");
    let cut_env = cut_ns.name().to_string();
    f.git.write(
        &format!("environments/{cut_env}.yaml"),
        environment_file(&cut_env, &[eks, gke], true),
    );
    let v1 = f.git.commit("v1 of both environments");
    let (_, real) = kubeconfig_through(f.fleet, gke, 1, f.state.path());
    let mut forwarder = Cut::to(real).await;
    let (through, _) = kubeconfig_through(f.fleet, gke, forwarder.port, f.state.path());
    f.kubeconfig = Some(through);
    f.more_envs = vec![cut_env.clone()];
    f.start();
    f.wait("both environments at v1", |f| {
        f.revisions_of(&f.env, &[eks, aks])
            .values()
            .all(|r| *r == v1)
            && f.revisions_of(&cut_env, &[eks, gke])
                .values()
                .all(|r| *r == v1)
    })
    .await;

    forwarder.cut();
    f.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    let v2 = f.git.commit("v2");
    f.wait_for_revisions(&f.env.clone(), &[eks, aks], &v2).await;
    // Drift in `other` is corrected while gke is still cut.
    f.kubectl(
        aks,
        &["scale", "deployment", "web", "-n", &f.env, "--replicas=4"],
    );
    f.wait("the drift in aks corrected", |f| {
        f.web(aks, "{.spec.replicas}") == "2"
    })
    .await;
    let unreachable = |f: &Followed| -> Vec<u64> {
        f.log_lines("cluster unreachable; retrying with backoff (other environments go on)")
            .iter()
            .filter(|l| {
                l["fields"]["cluster"] == gke && l["span"]["environment"] == cut_env.as_str()
            })
            .filter_map(|l| l["fields"]["attempt"].as_u64())
            .collect()
    };
    f.wait("gke reported unreachable and retried", |f| {
        unreachable(f).len() >= 3
    })
    .await;
    let attempts = unreachable(&f);
    assert!(
        attempts.windows(2).all(|w| w[1] > w[0]),
        "every retry backs off further: {attempts:?}"
    );
    assert_eq!(
        synced_clusters(&f.records_of(&cut_env, &["sync"]), &v2),
        Vec::<String>::new(),
        "nothing written to `cut` while gke counts against maxUnavailable 0"
    );
    let reported = f.records_of(&cut_env, &["cluster-unreachable"]);
    assert_eq!(
        reported.len(),
        1,
        "reported once per episode: {reported:#?}"
    );
    assert_eq!(reported[0].entry.cluster.as_deref(), Some(gke));
    assert!(
        f.records_of(&f.env, &["cluster-unreachable"]).is_empty(),
        "`other` never saw gke"
    );

    forwarder.restore().await;
    f.wait_for_revisions(&cut_env, &[eks, gke], &v2).await;
    f.wait("gke recorded reachable again once the rollout ended", |f| {
        !f.records_of(&cut_env, &["cluster-reachable"]).is_empty()
    })
    .await;
    let back = f.records_of(&cut_env, &["cluster-reachable"]);
    assert_eq!(back.len(), 1, "one episode: {back:#?}");
    assert_eq!(back[0].entry.cluster.as_deref(), Some(gke));
    assert!(f.stop().success(), "SIGTERM stops it cleanly");
}

/// SIGTERM interrupts a rollout; it does not fail it: the app's SyncFail
/// hook does not run (no Job in any cluster, no `hook` entry), and the
/// audit trail closes the rollout as aborted and interrupted, resumable
/// from its journal (docs/rollouts.md, "Sync hooks").
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_interrupts_a_rollout_without_running_its_syncfail_hooks() {
    let mut f = Followed::new("ctl-term-hooks", true, &[]).await;
    let v1 = f.git.head();
    f.start();
    f.wait_all_at(&v1).await;
    // v2 bakes long in wave 1, and has a SyncFail hook.
    let env_file = format!("environments/{}.yaml", f.env);
    f.git.write(
        &env_file,
        environment_file(&f.env, &CLUSTERS, true).replace("bakeTime: 1s", "bakeTime: 120s"),
    );
    f.git.write(
        "manifests/app/page.yaml",
        super::hooks::hook_job("page", "SyncFail", 0, "paged the on-call"),
    );
    f.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    let v2 = f.git.commit("v2 with a SyncFail hook");
    f.wait("wave 1 applied", |f| f.revisions()[CLUSTERS[0]] == v2)
        .await;
    assert!(f.stop().success(), "SIGTERM stops it cleanly");

    let job = format!("page-{}", &v2[..8]);
    for c in CLUSTERS {
        let found = f
            .fleet
            .kubectl(c, &["get", "jobs", "-n", &f.env, "-o", "name"])
            .unwrap_or_default();
        assert!(!found.contains(&job), "{c}: no SyncFail Job: {found}");
    }
    let hooks = f.records(&["hook"]);
    assert!(
        hooks
            .iter()
            .all(|r| r.entry.details.get("phase").map(String::as_str) != Some("SyncFail")),
        "no SyncFail run recorded: {hooks:#?}"
    );
    let ends = f.records(&["rollout-end"]);
    let end = ends
        .iter()
        .rfind(|r| r.entry.to.as_ref().is_some_and(|t| t.sha == v2))
        .unwrap_or_else(|| panic!("the v2 rollout has an end: {ends:#?}"));
    assert_eq!(
        end.entry.outcome.map(|o| o.as_str().to_string()).as_deref(),
        Some("aborted")
    );
    assert_eq!(
        end.entry
            .details
            .get(tidegate_fleet::interrupt::INTERRUPTED_DETAIL)
            .map(String::as_str),
        Some("true"),
        "{end:#?}"
    );
    assert!(
        f.records(&["quarantine"]).is_empty(),
        "an interrupted revision is not quarantined"
    );
}

/// The JSON lines of a controller's `--log-format json` log whose message is `message`.
pub(crate) fn json_log_lines(log: &str, message: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

/// The revision the inventory of `env` records as applied in each of `clusters`.
pub(crate) fn inventory_revisions(
    fleet: &Fleet,
    env: &str,
    clusters: &[&str],
) -> BTreeMap<String, String> {
    clusters
        .iter()
        .map(|c| {
            let name = format!("tidegate.{env}.app");
            let text = fleet
                .kubectl(
                    c,
                    &[
                        "get",
                        "configmap",
                        &name,
                        "-n",
                        "tidegate-system",
                        "-o",
                        "jsonpath={.data.revision}",
                    ],
                )
                .unwrap_or_default();
            (c.to_string(), text)
        })
        .collect()
}
