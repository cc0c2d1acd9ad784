//! Server mode on the three local clusters: `tidegate controller --listen`
//! serves the API, tokens are minted with `tidegate token create` in the
//! management cluster (eks-us-east-1, the test namespace), and the CLI runs
//! `--server URL` commands through it: identities in the controller's
//! audit trail, roles (403), no token (401), refused flags, the approval
//! rule (self-approval refused, and allowed where the controller's flag
//! says), and the same output as a standalone run.

use super::{controller::inventory_revisions, controller::json_log_lines, fleet, isolated_command};
use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tidegate_audit::{AuditStore, Filter, Record};
use tidegate_testkit::{Fleet, TestNamespace};
use tidegate_tests::GitFixture;

const CLUSTERS: [&str; 3] = ["eks-us-east-1", "aks-westeurope", "gke-us-central1"];
const MANAGEMENT: &str = "eks-us-east-1";
/// Generous bound for anything the clusters and the controller do; never a
/// performance check.
const WAIT: Duration = Duration::from_secs(150);

fn web(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: app\n          image: {image}\n"
    )
}

fn colour(colour: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{colour}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n      version: {colour}\n  template:\n    metadata:\n      labels:\n        app: web\n        version: {colour}\n    spec:\n      containers:\n        - name: app\n          image: registry.example/web:{colour}\n"
    )
}

/// An environment over the three clusters, one wave each; `extra` goes at
/// the end of `spec.rollout`, `tail` after it.
fn environment(env: &str, path: &str, extra: &str, tail: &str) -> String {
    let mut clusters = String::new();
    for (i, name) in CLUSTERS.iter().enumerate() {
        clusters.push_str(&format!(
            "    - name: {name}\n      provider:\n        kubeconfig:\n          context: {name}\n      wave: {}\n",
            i + 1
        ));
    }
    format!(
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: {path}\n  clusters:\n{clusters}  apps:\n    - name: app\n      namespace: {env}\n  rollout:\n    maxSurge: 1\n    maxUnavailable: 0\n    progressDeadline: 30s\n    bakeTime: 1s\n{extra}  sync:\n    selfHeal: false\n    interval: 1h\n{tail}"
    )
}

const APPROVE_WAVE_2: &str = "    waves:\n      - wave: 2\n        approval: required\n";
const BLUE_GREEN: &str = "  blueGreen:\n    - app: app\n      services: [web]\n      selectorKey: version\n      colors:\n        blue:\n          deployment: web-blue\n        green:\n          deployment: web-green\n      activeColor: blue\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n    version: blue\n  ports:\n    - port: 80\n      targetPort: 8080\n";

/// Two environments (`a`: plain; `b`: blue-green, self-approval allowed by
/// the controller), a controller serving the API, and tokens.
struct Served {
    fleet: &'static Fleet,
    git: GitFixture,
    _a_ns: TestNamespace,
    _b_ns: TestNamespace,
    a: String,
    b: String,
    state: tempfile::TempDir,
    home: tempfile::TempDir,
    controller: Option<Child>,
    url: String,
    tokens: BTreeMap<&'static str, String>,
}

impl Served {
    async fn start() -> Served {
        let fleet = fleet().await;
        let a_ns = TestNamespace::create(fleet, "api-a").expect("namespace");
        let b_ns = TestNamespace::create(fleet, "api-b").expect("namespace");
        let (a, b) = (a_ns.name().to_string(), b_ns.name().to_string());
        let mut git = GitFixture::new();
        git.write(
            &format!("environments/{a}.yaml"),
            environment(&a, "manifests", "", ""),
        );
        git.write(
            &format!("environments/{b}.yaml"),
            environment(&b, "bluegreen", "", BLUE_GREEN),
        );
        git.write("manifests/app/web.yaml", web("registry.example/web:1"));
        git.write("bluegreen/app/blue.yaml", colour("blue"));
        git.write("bluegreen/app/green.yaml", colour("green"));
        git.write("bluegreen/app/service.yaml", SERVICE);
        git.commit("v1");
        let mut s = Served {
            fleet,
            git,
            _a_ns: a_ns,
            _b_ns: b_ns,
            a,
            b,
            state: tempfile::tempdir().expect("state"),
            home: tempfile::tempdir().expect("home"),
            controller: None,
            url: String::new(),
            tokens: BTreeMap::new(),
        };
        // Tokens first: the controller reads them from the Secret.
        let (a, b) = (s.a.clone(), s.b.clone());
        for (name, roles) in [
            (
                "alice",
                vec![format!("{a}=approver"), format!("{b}=approver")],
            ),
            ("bob", vec![format!("{a}=approver")]),
            ("viewer", vec![format!("{a}=viewer"), format!("{b}=viewer")]),
        ] {
            let token = s.mint(name, &roles);
            s.tokens.insert(name, token);
        }
        s.launch();
        s
    }

    /// `tidegate token create` in the management cluster's test namespace.
    fn mint(&self, name: &str, roles: &[String]) -> String {
        let mut command = isolated_command(self.home.path());
        command
            .args(["token", "create", "--name", name])
            .arg("--kubeconfig")
            .arg(self.fleet.kubeconfig())
            .args(["--context", MANAGEMENT, "--namespace", &self.a]);
        for role in roles {
            command.args(["--role", role]);
        }
        let output = command.output().expect("tidegate token create");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }

    fn log(&self) -> PathBuf {
        self.state.path().join("controller.log")
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn audit_db(&self) -> PathBuf {
        self.state.path().join("audit.db")
    }

    /// The controller for both environments, serving on a free port, its
    /// tokens in the test namespace, self-approval allowed in `b` only.
    fn launch(&mut self) {
        let log = std::fs::File::create(self.log()).expect("log file");
        let child = Command::new(super::tidegate_bin())
            .args(["--repo", &self.git.path().display().to_string()])
            .args(["--log-format", "json", "controller"])
            .args(["--env", &self.a, "--env", &self.b])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--leader-election-context", MANAGEMENT])
            .args(["--leader-election-namespace", &self.a])
            .arg(format!("--allow-self-approval={}", self.b))
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .env("KUBECONFIG", self.fleet.kubeconfig())
            .env("TIDEGATE_AUDIT_DB", self.audit_db())
            .env("XDG_STATE_HOME", self.state.path())
            .env("XDG_CACHE_HOME", self.state.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tidegate controller");
        self.controller = Some(child);
        let message = "serving /healthz, /readyz, /metrics and webhooks";
        let deadline = Instant::now() + WAIT;
        while json_log_lines(&self.logs(), message).is_empty() {
            assert!(Instant::now() < deadline, "not serving:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
        let line = &json_log_lines(&self.logs(), message)[0];
        self.url = format!(
            "http://{}",
            line["fields"]["address"].as_str().expect("address")
        );
    }

    /// `tidegate --server URL <args>` with `token`'s API token (none: no
    /// token at all); nothing of this process's environment reaches it.
    fn client(&self, token: Option<&str>, args: &[&str]) -> Command {
        let mut command = isolated_command(self.home.path());
        command.env("TIDEGATE_SERVER", &self.url).args(args);
        if let Some(name) = token {
            let file = self.home.path().join(format!("{name}.token"));
            std::fs::write(&file, &self.tokens[name]).expect("token file");
            command.arg("--token-file").arg(file);
        }
        command
    }

    /// Runs a client command: (exit code, stdout, stderr).
    fn run(&self, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
        let output = self.client(token, args).output().expect("tidegate runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// The same command standalone, with the controller's repository,
    /// kubeconfig and audit trail.
    fn standalone(&self, args: &[&str]) -> (i32, String, String) {
        let output = isolated_command(self.home.path())
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .env("KUBECONFIG", self.fleet.kubeconfig())
            .env("TIDEGATE_AUDIT_DB", self.audit_db())
            .args(["--repo", &self.git.path().display().to_string()])
            .args(args)
            .output()
            .expect("tidegate runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn revisions(&self, env: &str) -> BTreeMap<String, String> {
        inventory_revisions(self.fleet, env, &CLUSTERS)
    }

    fn wait(&self, what: &str, mut done: impl FnMut(&Served) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}\n--- controller log\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn all_at(&self, env: &str, sha: &str) -> bool {
        self.revisions(env).values().all(|r| r == sha)
    }

    /// The controller's audit trail for `env`.
    fn audit(&self, env: &str) -> Vec<Record> {
        AuditStore::open_read_only(&self.audit_db())
            .expect("the controller's audit trail")
            .records(&Filter {
                environment: Some(env.to_string()),
                ..Filter::default()
            })
            .expect("records")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.controller.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `issuer:subject` of a record's authenticated actor, or `local:<identity>`.
fn who(r: &Record) -> String {
    match &r.entry.actor.authenticated {
        Some(a) => format!("{}:{}", a.issuer, a.subject),
        None => format!("local:{}", r.entry.actor.identity),
    }
}

fn summary(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| {
            format!(
                "#{} {} {} to={:?}\n",
                r.seq,
                r.entry.action.as_str(),
                who(r),
                r.entry.to.as_ref().map(|t| &t.sha[..8])
            )
        })
        .collect()
}

/// Waits for a client child process; (exit code, stdout, stderr).
fn finish(child: Child) -> (i32, String, String) {
    let output = child.wait_with_output().expect("the client ends");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_cli_in_server_mode_syncs_approves_rolls_back_and_switches_as_the_tokens_identity() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut s = rt.block_on(Served::start());
    let (a, b) = (s.a.clone(), s.b.clone());
    let v1 = s.git.head();
    s.wait(
        "both environments at v1 (the controller's own rollout)",
        |s| {
            s.all_at(&a, &v1)
                && s.all_at(&b, &v1)
                // Its rollouts ended (locks released): the inventory shows
                // v1 before the last health gate is passed.
                && json_log_lines(
                    &s.logs(),
                    "rollout succeeded: every cluster is Healthy at the revision",
                )
                .len()
                    == 2
        },
    );

    // No token: 401, said so, nothing runs.
    let (code, _, err) = s.run(None, &["status", "--env", &a]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("401") && err.contains("TIDEGATE_TOKEN"),
        "{err}"
    );

    // The fleet page asks for the same tokens: none → 401 with the login
    // form; a viewer sees its environments.
    let address = s.url.trim_start_matches("http://").to_string();
    let (status, body) = tidegate_tests::http_request(&address, "GET", "/fleet", &[], b"");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("/fleet/login"), "{body}");
    let bearer = vec![("Authorization", format!("Bearer {}", s.tokens["viewer"]))];
    let (status, body) = tidegate_tests::http_request(&address, "GET", "/fleet", &bearer, b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&a) && body.contains(&b), "{body}");

    // Flags naming paths or clusters are refused, whoever asks.
    let (code, _, err) = s.run(
        Some("alice"),
        &["status", "--env", &a, "--kubeconfig", "/etc/passwd"],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("400") && err.contains("--kubeconfig is not accepted"),
        "{err}"
    );
    let (code, _, err) = s.run(
        Some("alice"),
        &["--repo", "https://evil.example/x.git", "sync", "--env", &a],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--repo is not accepted"), "{err}");

    // The same output in both modes (the controller runs the same code).
    for args in [
        vec!["status", "--env", a.as_str()],
        vec!["plan", "--env", a.as_str()],
        vec!["history", "--env", a.as_str()],
    ] {
        let served = s.run(Some("viewer"), &args);
        let local = s.standalone(&args);
        assert_eq!(served, local, "{args:?}: served vs standalone");
        assert!(!served.1.is_empty(), "{args:?} printed nothing");
    }

    // v2 (approval required for wave 2 in both environments).
    s.git.write(
        &format!("environments/{a}.yaml"),
        environment(&a, "manifests", APPROVE_WAVE_2, ""),
    );
    s.git.write(
        &format!("environments/{b}.yaml"),
        environment(&b, "bluegreen", APPROVE_WAVE_2, BLUE_GREEN),
    );
    s.git
        .write("manifests/app/web.yaml", web("registry.example/web:2"));
    s.git.write(
        "bluegreen/app/blue.yaml",
        colour("blue").replace("replicas: 1", "replicas: 2"),
    );
    let v2 = s.git.commit("v2");

    // A viewer cannot sync: 403 naming the role and environment; nothing changes.
    let (code, _, err) = s.run(Some("viewer"), &["sync", "--env", &a]);
    assert_eq!(code, 2);
    assert!(
        err.contains("403")
            && err.contains(&format!("may not sync in environment {a}"))
            && err.contains("needs role deployer"),
        "{err}"
    );
    assert!(s.all_at(&a, &v1), "a refused sync changed nothing");

    // Alice syncs a; wave 2 waits for an approval.
    let sync = s
        .client(Some("alice"), &["sync", "--env", &a])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sync");
    s.wait("wave 1 of a at v2", |s| s.revisions(&a)[CLUSTERS[0]] == v2);
    // Alice started it: she may not approve it (default rule).
    let (code, _, err) = s.run(Some("alice"), &["approve", "--env", &a, "--wave", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("403") && err.contains("it started this rollout"),
        "{err}"
    );
    // Bob may.
    let (code, out, err) = s.run(Some("bob"), &["approve", "--env", &a, "--wave", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("approved wave 2"), "{out}");
    let (code, out, err) = finish(sync);
    assert_eq!(
        code,
        0,
        "sync through the server:\n{out}\n{err}\n{}",
        s.logs()
    );
    assert!(
        !out.is_empty() || !err.is_empty(),
        "the sync's output was streamed back"
    );
    assert!(s.all_at(&a, &v2));

    // In b the controller allows self-approval: alice approves her own rollout.
    let sync = s
        .client(Some("alice"), &["sync", "--env", &b])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sync b");
    s.wait("wave 1 of b at v2", |s| s.revisions(&b)[CLUSTERS[0]] == v2);
    let (code, out, err) = s.run(Some("alice"), &["approve", "--env", &b, "--wave", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = finish(sync);
    assert_eq!(code, 0, "sync of b:\n{out}\n{err}");
    assert!(s.all_at(&b, &v2));

    // Switch b to green, through the server (v3: b without approvals; a
    // switch's waves do not take approvals, see the report).
    s.git.write(
        &format!("environments/{b}.yaml"),
        environment(&b, "bluegreen", "", BLUE_GREEN),
    );
    s.git.commit("v3");
    let (code, out, err) = s.run(
        Some("alice"),
        &[
            "switch",
            "--env",
            &b,
            "--app",
            "app",
            "--to",
            "green",
            "--reason",
            "release",
            "--no-push",
        ],
    );
    assert_eq!(code, 0, "switch:\n{out}\n{err}\n{}", s.logs());
    // The switch made through the API is counted by the controller's /metrics.
    let address = s.url.trim_start_matches("http://").to_string();
    let (_, metrics) = tidegate_tests::http_request(&address, "GET", "/metrics", &[], b"");
    let counted =
        format!("tidegate_switches_total{{env=\"{b}\",app=\"app\",outcome=\"succeeded\"}} 1");
    assert!(metrics.contains(&counted), "{counted} not in:\n{metrics}");
    let selector = s
        .fleet
        .kubectl(
            CLUSTERS[2],
            &[
                "get",
                "service",
                "web",
                "-n",
                &b,
                "-o",
                "jsonpath={.spec.selector.version}",
            ],
        )
        .expect("service");
    assert_eq!(selector, "green");

    // Roll a back to v1, through the server (bob approves its wave 2).
    let mut rollback = s
        .client(Some("alice"), &["rollback", "--env", &a, "--to", &v1])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rollback");
    // (The rollback waits for an approval of wave 2 only if v1 asks for
    // one; bob gives it either way.)
    let deadline = Instant::now() + WAIT;
    let mut approval = None;
    while !s.all_at(&a, &v1) && Instant::now() < deadline {
        if approval.is_none() && s.revisions(&a)[CLUSTERS[0]] == v1 {
            approval = Some(s.run(
                Some("bob"),
                &["approve", "--env", &a, "--wave", "2", "--revision", &v1],
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    if !s.all_at(&a, &v1) {
        let _ = rollback.kill();
    }
    let (code, out, err) = finish(rollback);
    if let Some((code, out, err)) = approval {
        assert!(
            code == 0 || err.contains("does not wait for approval"),
            "{out}{err}"
        );
    }
    assert!(s.all_at(&a, &v1), "rollback not done\n{}", s.logs());
    assert_eq!(code, 0, "rollback:\n{out}\n{err}");

    // Every change made through the API is the token's identity's.
    let trail_a = s.audit(&a);
    let trail_b = s.audit(&b);
    let started_v2 = trail_a
        .iter()
        .find(|r| {
            r.entry.action.as_str() == "rollout-start"
                && r.entry.to.as_ref().is_some_and(|t| t.sha == v2)
        })
        .unwrap_or_else(|| panic!("no rollout-start of v2:\n{}", summary(&trail_a)));
    assert_eq!(
        who(started_v2),
        "tidegate-token:alice",
        "{}",
        summary(&trail_a)
    );
    assert_eq!(started_v2.entry.actor.trigger.as_str(), "api");
    let approvals: Vec<String> = trail_a
        .iter()
        .filter(|r| r.entry.action.as_str() == "approve")
        .map(who)
        .collect();
    assert!(
        approvals.iter().all(|w| w == "tidegate-token:bob") && !approvals.is_empty(),
        "{approvals:?}"
    );
    let applies_v2: Vec<String> = trail_a
        .iter()
        .filter(|r| {
            r.entry.action.as_str() == "apply" && r.entry.to.as_ref().is_some_and(|t| t.sha == v2)
        })
        .map(who)
        .collect();
    assert!(
        !applies_v2.is_empty() && applies_v2.iter().all(|w| w == "tidegate-token:alice"),
        "{}",
        summary(&trail_a)
    );
    let rolled_back = trail_a
        .iter()
        .filter(|r| r.seq > started_v2.seq && r.entry.to.as_ref().is_some_and(|t| t.sha == v1))
        .map(who)
        .collect::<Vec<_>>();
    assert!(
        !rolled_back.is_empty()
            && rolled_back
                .iter()
                .all(|w| w == "tidegate-token:alice" || w == "tidegate-token:bob"),
        "{}",
        summary(&trail_a)
    );
    let switches: Vec<String> = trail_b
        .iter()
        .filter(|r| r.entry.action.as_str() == "switch")
        .map(who)
        .collect();
    assert!(
        !switches.is_empty() && switches.iter().all(|w| w == "tidegate-token:alice"),
        "{}",
        summary(&trail_b)
    );
    let self_approved: Vec<String> = trail_b
        .iter()
        .filter(|r| r.entry.action.as_str() == "approve")
        .map(who)
        .collect();
    assert!(
        self_approved.len() == 1 && self_approved.iter().all(|w| w == "tidegate-token:alice"),
        "{}",
        summary(&trail_b)
    );
    // No token reached the controller's log.
    let logs = s.logs();
    for token in s.tokens.values() {
        assert!(
            !logs.contains(&token[20..]),
            "a token secret in the controller's log"
        );
    }
}
