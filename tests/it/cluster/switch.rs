//! Blue-green switches on the three local clusters: a switch in waves (and
//! back), a switch refused by pre-checks, and a post-check failure in wave 2
//! that flips waves 1–2 back and reverts the commit.

use super::{fleet, kubeconfig_factory, output_text, tidegate_command};
use crate::pipeline::{At, NoApprovals, load_env_at, roll_out};
use futures::future::BoxFuture;
use std::{sync::Arc, time::Duration};
use tidegate_audit::{Action as AuditAction, Actor, MemorySink, Trigger};
use tidegate_fleet::{
    ClusterCheck, ClusterStep, DriverOptions, Outcome,
    switch::{SwitchOutcome, SwitchRequest, switch},
};
use tidegate_health::HealthStatus;
use tidegate_sync::{Audit, Engine, SyncOptions, Target};
use tidegate_testkit::{FAIL_READINESS_LABEL, Fleet, TestNamespace};
use tidegate_tests::GitFixture;

const CLUSTERS: [&str; 3] = ["eks-us-east-1", "aks-westeurope", "gke-us-central1"];

/// Reports `Degraded` for one cluster: a post-check that fails there.
struct FailIn(&'static str);
impl ClusterCheck for FailIn {
    fn check<'a>(&'a self, cluster: &'a str, _engine: &'a Engine) -> BoxFuture<'a, HealthStatus> {
        Box::pin(async move {
            if cluster == self.0 {
                HealthStatus::Degraded
            } else {
                HealthStatus::Healthy
            }
        })
    }
}

struct Fixture {
    fleet: &'static Fleet,
    git: GitFixture,
    ns: TestNamespace,
    env: String,
    audit: Arc<MemorySink>,
}

fn deployment(colour: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{colour}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n      version: {colour}\n  template:\n    metadata:\n      labels:\n        app: web\n        version: {colour}\n    spec:\n      containers:\n        - name: app\n          image: registry.example/web:{colour}\n"
    )
}

impl Fixture {
    /// `overlays` is extra YAML under the app (per-cluster patches).
    async fn new(prefix: &str, overlays: &str) -> Fixture {
        Fixture::with(
            prefix,
            overlays,
            "kubeconfig:\n          context: {name}",
            "",
            &[],
        )
        .await
    }

    /// Like [`Fixture::new`], with each cluster's `provider` (`{name}` is
    /// the cluster's name; `kubeconfig: {context}` is added when it is not
    /// a kubeconfig provider), `spec` fields after `rollout` and more files.
    async fn with(
        prefix: &str,
        overlays: &str,
        provider: &str,
        spec: &str,
        files: &[(&str, &str)],
    ) -> Fixture {
        let fleet = fleet().await;
        let ns = TestNamespace::create(fleet, prefix).expect("namespace");
        let env = ns.name().to_string();
        let mut clusters = String::new();
        for (i, name) in CLUSTERS.iter().enumerate() {
            let context = if provider.starts_with("kubeconfig:") {
                String::new()
            } else {
                format!("      kubeconfig:\n        context: {name}\n")
            };
            clusters.push_str(&format!(
                "    - name: {name}\n      provider:\n        {}\n{context}      wave: {}\n",
                provider.replace("{name}", name),
                i + 1
            ));
        }
        let mut git = GitFixture::new();
        git.write(
            &format!("environments/{env}.yaml"),
            format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n{overlays}  rollout:\n    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 20s\n    bakeTime: 1s\n{spec}  blueGreen:\n    - app: app\n      services: [web]\n      selectorKey: version\n      colors:\n        blue:\n          deployment: web-blue\n        green:\n          deployment: web-green\n      activeColor: blue\n"
            ),
        );
        git.write("manifests/app/blue.yaml", deployment("blue"));
        git.write("manifests/app/green.yaml", deployment("green"));
        git.write(
            "manifests/app/service.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n    version: blue\n  ports:\n    - port: 80\n      targetPort: 8080\n",
        );
        for (path, content) in files {
            git.write(path, *content);
        }
        git.commit("blue and green");
        Fixture {
            fleet,
            git,
            ns,
            env,
            audit: Arc::new(MemorySink::new()),
        }
    }

    fn options(&self) -> DriverOptions {
        DriverOptions {
            poll: Duration::from_millis(300),
            identity: "tests".into(),
            ..DriverOptions::default()
        }
    }

    fn audit(&self) -> Audit {
        Audit {
            sink: self.audit.clone(),
            actor: Actor::new("tests@local", Trigger::Cli),
        }
    }

    /// Rolls HEAD out (records each cluster's healthy revision).
    async fn rollout(&self) -> Outcome {
        roll_out(self.git.path(), &self.env, self.options(), None, None)
            .await
            .expect("rollout")
            .outcome
    }

    /// Syncs HEAD to every cluster without waiting for health.
    async fn sync_all(&self) {
        tidegate_cluster::install_crypto_provider();
        let (desired, rendered) = load_env_at(self.git.path(), &self.env, "HEAD").expect("valid");
        for c in &desired.environment.spec.clusters {
            let engine = Engine::connect(&kubeconfig_factory(fleet().await), c)
                .await
                .expect("connect");
            let target = Target {
                environment: &desired.environment,
                cluster: c,
                rendered: rendered
                    .clusters
                    .iter()
                    .find(|r| r.cluster == c.name)
                    .expect("rendered"),
                revision: &desired.commit.sha,
            };
            engine
                .sync(&target, &SyncOptions::default(), &|_| {})
                .await
                .expect("sync");
        }
    }

    async fn switch(&self, to: &str, extra: Option<Box<dyn ClusterCheck>>) -> SwitchOutcome {
        self.try_switch(to, extra).await.expect("switch runs")
    }

    async fn try_switch(
        &self,
        to: &str,
        extra: Option<Box<dyn ClusterCheck>>,
    ) -> Result<SwitchOutcome, tidegate_fleet::RolloutError> {
        let (desired, _) = load_env_at(self.git.path(), &self.env, "HEAD").expect("valid");
        let text =
            std::fs::read_to_string(self.git.path().join(&desired.env_file)).expect("env text");
        let request = SwitchRequest {
            repo_dir: self.git.path(),
            environment: &desired.environment,
            env_file: &desired.env_file,
            env_text: &text,
            app: "app",
            to,
            reason: Some("release 2"),
            push: false,
            author: ("Ada Lovelace", "ada@example.com"),
        };
        switch(
            &request,
            &kubeconfig_factory(fleet().await),
            &At(self.git.path().to_path_buf(), self.env.clone()),
            &|_| Box::new(NoApprovals),
            Some(self.audit()),
            self.options(),
            extra,
            &|_| {},
        )
        .await
    }

    fn selector(&self, cluster: &str) -> String {
        self.fleet
            .kubectl(
                cluster,
                &[
                    "get",
                    "service",
                    "web",
                    "-n",
                    self.ns.name(),
                    "-o",
                    "jsonpath={.spec.selector.version}",
                ],
            )
            .expect("service")
    }

    /// Runs `tidegate` on this environment's repository with the fleet's
    /// kubeconfig (every cluster reached through its context), `home`
    /// holding its state and audit trail.
    fn cli(&self, home: &std::path::Path, args: &[&str]) -> std::process::Output {
        tidegate_command(self.git.path(), home)
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .env("KUBECONFIG", self.fleet.kubeconfig())
            .args(args)
            .output()
            .expect("tidegate runs")
    }

    fn head_env(&self) -> String {
        let (desired, _) = load_env_at(self.git.path(), &self.env, "HEAD").expect("valid");
        desired.environment.spec.blue_green[0].active_color.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switch_flips_every_cluster_in_waves_and_back() {
    let fx = Fixture::new("bg-switch", "").await;
    assert_eq!(fx.rollout().await, Outcome::Succeeded);
    assert!(CLUSTERS.iter().all(|c| fx.selector(c) == "blue"));

    let outcome = fx.switch("green", None).await;
    let SwitchOutcome::Switched { commit, report } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        CLUSTERS.iter().all(|c| fx.selector(c) == "green"),
        "every Service selects green"
    );
    assert_eq!(fx.head_env(), "green", "Git says green");
    let head = tidegate_source::Repo::open_local(fx.git.path())
        .expect("repo")
        .resolve("HEAD")
        .expect("head");
    assert_eq!(head.sha, commit);
    assert!(
        head.summary.contains("from blue to green"),
        "{}",
        head.summary
    );
    let text = std::fs::read_to_string(fx.git.path().join(format!("environments/{}.yaml", fx.env)))
        .expect("env");
    assert!(
        text.contains("activeColor: green"),
        "the work tree follows the commit"
    );
    // One switch entry per cluster, in wave order.
    let switched: Vec<String> = fx
        .audit
        .records()
        .iter()
        .filter(|r| r.entry.action == AuditAction::Switch && r.entry.cluster.is_some())
        .filter_map(|r| r.entry.cluster.clone())
        .collect();
    assert_eq!(switched, CLUSTERS.map(String::from).to_vec());
    let healthy: Vec<Duration> = CLUSTERS
        .iter()
        .map(|c| {
            report
                .timeline
                .iter()
                .find(|(n, w, _)| n == c && *w == ClusterStep::Healthy)
                .map(|t| t.2)
                .expect("healthy")
        })
        .collect();
    assert!(
        healthy.windows(2).all(|w| w[0] <= w[1]),
        "wave order: {healthy:?}"
    );
    let entry = fx
        .audit
        .records()
        .into_iter()
        .find(|r| r.entry.action == AuditAction::Switch)
        .expect("entry");
    let selector = entry.entry.selector.expect("selector before/after");
    assert_eq!(
        selector.before.get("version").map(String::as_str),
        Some("blue")
    );
    assert_eq!(
        selector.after.get("version").map(String::as_str),
        Some("green")
    );

    let back = fx.switch("blue", None).await;
    assert!(matches!(back, SwitchOutcome::Switched { .. }), "{back:?}");
    assert!(CLUSTERS.iter().all(|c| fx.selector(c) == "blue"));
    assert_eq!(fx.head_env(), "blue");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switch_is_refused_when_green_is_not_ready_in_one_cluster() {
    let overlay = format!(
        "      overlays:\n        - clusterSelector:\n            matchLabels:\n              tidegate.dev/cluster: gke-us-central1\n          patches:\n            - target:\n                kind: Deployment\n                name: web-green\n              merge:\n                spec:\n                  template:\n                    metadata:\n                      labels:\n                        {FAIL_READINESS_LABEL}: \"true\"\n"
    );
    let fx = Fixture::new("bg-refused", &overlay).await;
    fx.sync_all().await;
    // Green becomes ready where it can (eks, aks); gke's green never does.
    for cluster in ["eks-us-east-1", "aks-westeurope"] {
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        loop {
            let ready = fx
                .fleet
                .kubectl(
                    cluster,
                    &[
                        "get",
                        "deployment",
                        "web-green",
                        "-n",
                        fx.ns.name(),
                        "-o",
                        "jsonpath={.status.readyReplicas}",
                    ],
                )
                .unwrap_or_default();
            if ready == "2" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "green never became ready in {cluster}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let before = fx.git.head();
    let outcome = fx.switch("green", None).await;
    let SwitchOutcome::Refused { problems } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        problems
            .iter()
            .any(|p| p.contains("gke-us-central1") && p.contains("web-green")),
        "{problems:?}"
    );
    assert!(
        problems.iter().all(|p| p.contains("gke-us-central1")),
        "only gke fails: {problems:?}"
    );
    let after = fx.git.head();
    assert_eq!(before, after, "nothing committed");
    assert!(
        CLUSTERS.iter().all(|c| fx.selector(c) == "blue"),
        "nothing flipped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_check_failure_in_wave_2_flips_back_and_reverts_the_commit() {
    let fx = Fixture::new("bg-revert", "").await;
    assert_eq!(fx.rollout().await, Outcome::Succeeded);
    let outcome = fx
        .switch("green", Some(Box::new(FailIn("aks-westeurope"))))
        .await;
    let SwitchOutcome::Reverted { report, revert, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        CLUSTERS.iter().all(|c| fx.selector(c) == "blue"),
        "waves 1–2 flipped back"
    );
    assert!(
        !report
            .timeline
            .iter()
            .any(|(c, w, _)| c == "gke-us-central1" && *w == ClusterStep::Apply),
        "wave 3 untouched"
    );
    let head = tidegate_source::Repo::open_local(fx.git.path())
        .expect("repo")
        .resolve("HEAD")
        .expect("head");
    assert_eq!(head.sha, revert);
    assert!(head.summary.starts_with("Revert"), "{}", head.summary);
    assert_eq!(fx.head_env(), "blue", "Git says blue again");
    let reverted: Vec<String> = fx
        .audit
        .records()
        .iter()
        .filter(|r| r.entry.action == AuditAction::SwitchReverted)
        .filter_map(|r| r.entry.cluster.clone())
        .collect();
    assert_eq!(reverted.len(), 2, "{reverted:?}");
    assert!(
        reverted.contains(&"eks-us-east-1".to_string())
            && reverted.contains(&"aks-westeurope".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switch_that_cannot_take_the_lock_takes_its_commit_back() {
    use tidegate_cluster::{Holder, acquire_lease, release_lease};
    let fx = Fixture::new("bg-locked", "").await;
    assert_eq!(fx.rollout().await, Outcome::Succeeded);
    let holder = Holder::this_process("someone-else");
    let (desired, _) = load_env_at(fx.git.path(), &fx.env, "HEAD").expect("valid");
    let lock = format!("tidegate-rollout-{}", fx.env);
    let mut clients = Vec::new();
    for c in &desired.environment.spec.clusters {
        let engine = Engine::connect(&kubeconfig_factory(fleet().await), c)
            .await
            .expect("connect");
        acquire_lease(
            engine.client(),
            &c.name,
            &lock,
            &holder,
            Duration::from_secs(60),
            false,
        )
        .await
        .expect("lock");
        clients.push((c.name.clone(), engine));
    }
    let err = fx.try_switch("green", None).await.expect_err("locked");
    assert!(err.to_string().contains("someone-else"), "{err}");
    assert_eq!(fx.head_env(), "blue", "the switch commit was taken back");
    let head = tidegate_source::Repo::open_local(fx.git.path())
        .expect("repo")
        .resolve("HEAD")
        .expect("head");
    assert!(head.summary.starts_with("Revert"), "{}", head.summary);
    assert!(
        CLUSTERS.iter().all(|c| fx.selector(c) == "blue"),
        "nothing flipped"
    );
    for (name, engine) in &clients {
        release_lease(engine.client(), name, &lock, &holder)
            .await
            .expect("release");
    }
}

/// `tidegate switch` judges its waves with the environment's health settings,
/// as `sync --env` does: here GKE clusters, whose built-in rule waits for a
/// class-less Ingress to get an address (no local cluster ever gives one), and
/// `spec.health.ingressWithoutClass: healthy` in the environment. A switch
/// that ignored the setting would wait out the deadline and flip back.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_switch_judges_health_with_the_environments_settings() {
    let fx = Fixture::with(
        "switch-health",
        "",
        "gke: {project: p, location: l, clusterName: {name}}",
        "  health:\n    ingressWithoutClass: healthy\n",
        &[(
            "manifests/app/ingress.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\nspec:\n  rules:\n    - http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend:\n              service:\n                name: web\n                port:\n                  number: 80\n",
        )],
    )
    .await;
    let env = &fx.env;
    let home = tempfile::tempdir().expect("home");
    let run = |args: &[&str]| fx.cli(home.path(), args);
    let out = run(&["sync", "--env", env]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let out = run(&[
        "switch",
        "--env",
        env,
        "--app",
        "app",
        "--to",
        "green",
        "--no-push",
        "--reason",
        "health settings",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("now serves green"),
        "{}",
        output_text(&out)
    );
}

/// `tidegate switch --scale-down-after`: after the switch and the wait, the
/// old colour runs 0 replicas in every cluster through a second commit
/// (`replicas: 0` under the colour), rolled out and audited as
/// `scale-down`; switching back to it is then refused by the pre-checks.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_switch_scales_the_old_colour_down_through_a_commit() {
    let fx = Fixture::new("switch-scale", "").await;
    let (fleet, git, env) = (fx.fleet, &fx.git, &fx.env);
    let home = tempfile::tempdir().expect("home");
    let run = |args: &[&str]| fx.cli(home.path(), args);
    let out = run(&["sync", "--env", env]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let switch_to = |to: &str| {
        run(&[
            "switch",
            "--env",
            env,
            "--app",
            "app",
            "--to",
            to,
            "--no-push",
            "--reason",
            "release 2",
            "--scale-down-after",
            "1s",
        ])
    };
    let out = switch_to("green");
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("now serves green")
            && stdout.contains("app blue scaled down to 0 replicas"),
        "{}",
        output_text(&out)
    );
    let replicas = |cluster: &str, colour: &str| {
        fleet
            .kubectl(
                cluster,
                &[
                    "get",
                    "deployment",
                    &format!("web-{colour}"),
                    "-n",
                    fx.ns.name(),
                    "-o",
                    "jsonpath={.spec.replicas}",
                ],
            )
            .expect("deployment")
    };
    for cluster in CLUSTERS {
        assert_eq!(replicas(cluster, "blue"), "0", "{cluster}");
        assert_eq!(replicas(cluster, "green"), "2", "{cluster}");
        assert_eq!(fx.selector(cluster), "green", "{cluster}");
    }
    // Git says so: blue has `replicas: 0` at HEAD, in its own commit.
    let (desired, _) = load_env_at(git.path(), env, "HEAD").expect("valid");
    let colours = &desired.environment.spec.blue_green[0].colors;
    assert_eq!(colours["blue"].replicas, Some(0));
    assert_eq!(colours["green"].replicas, None);
    let log = std::process::Command::new("git")
        .args(["log", "--format=%s", "-3"])
        .current_dir(git.path())
        .output()
        .expect("git log");
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.starts_with(&format!(
            "Scale down app blue in {env} (idle since the switch to green)\nSwitch app in {env} from blue to green\n"
        )),
        "{log}"
    );
    let store = tidegate_audit::SqliteStore::open_existing(&home.path().join("audit.db"))
        .expect("audit trail");
    let records = store
        .records(&tidegate_audit::Filter {
            environment: Some(env.clone()),
            actions: vec!["scale-down".into()],
            ..tidegate_audit::Filter::default()
        })
        .expect("records");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        records[0].entry.outcome,
        Some(tidegate_audit::Outcome::Success)
    );
    assert_eq!(
        records[0].entry.message.as_deref(),
        Some("blue → 0 replicas: release 2")
    );

    // Back to blue: refused before anything changes, saying what to do.
    let out = switch_to("blue");
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("blue is scaled down (`replicas: 0`"),
        "{}",
        output_text(&out)
    );
    for cluster in CLUSTERS {
        assert_eq!(fx.selector(cluster), "green", "{cluster}");
    }
}

/// `tidegate switch` in an environment whose wave 2 waits for an approval:
/// the switch's waves roll out the switch's own commit, so `tidegate
/// approve` at the new HEAD (that commit) lets wave 2 go on and the switch
/// finishes. (Its approvals were once keyed on no revision at all: the wait
/// never ended.)
#[tokio::test(flavor = "multi_thread")]
async fn tidegate_approve_lets_a_cli_switch_wave_go_on() {
    let mut fx = Fixture::new("switch-approve", "").await;
    assert_eq!(fx.rollout().await, Outcome::Succeeded);
    // From now on wave 2 waits for an approval.
    let file = format!("environments/{}.yaml", fx.env);
    let text = std::fs::read_to_string(fx.git.path().join(&file)).expect("env");
    fx.git.write(
        &file,
        text.replace(
            "    bakeTime: 1s\n",
            "    bakeTime: 1s\n    waves:\n      - wave: 2\n        approval: required\n",
        ),
    );
    fx.git.commit("wave 2 waits for an approval");
    let before = fx.git.head();

    let home = tempfile::tempdir().expect("home");
    let log = home.path().join("switch.log");
    /// Stops the switch if the test fails while it waits.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut switch = Running(
        tidegate_command(fx.git.path(), home.path())
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .env("KUBECONFIG", fx.fleet.kubeconfig())
            .args(["switch", "--env", &fx.env, "--app", "app", "--to", "green"])
            .args(["--no-push", "--reason", "release 2"])
            .stdout(std::fs::File::create(home.path().join("switch.out")).expect("out"))
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("tidegate switch runs"),
    );
    let until = |what: &str, done: &mut dyn FnMut() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what} in 180 s; switch log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    until("wait for the approval of wave 2", &mut || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("waiting for approval")
    });
    // The switch has committed; wave 1 is flipped, wave 2 is not.
    assert_ne!(fx.git.head(), before, "the switch commit is HEAD");
    assert_eq!(fx.head_env(), "green");
    assert_eq!(fx.selector(CLUSTERS[0]), "green");
    assert_eq!(fx.selector(CLUSTERS[1]), "blue");

    let out = fx.cli(home.path(), &["approve", "--env", &fx.env, "--wave", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let mut status = None;
    until("end of the switch after the approval", &mut || {
        status = switch.0.try_wait().expect("switch status");
        status.is_some()
    });
    let stdout = std::fs::read_to_string(home.path().join("switch.out")).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()) && stdout.contains("now serves green"),
        "{status:?}\n{stdout}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    for cluster in CLUSTERS {
        assert_eq!(fx.selector(cluster), "green", "{cluster}");
    }
}
