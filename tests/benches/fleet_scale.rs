//! The fleet-scale benchmark (`make bench-fleet`; not in `make test`): the
//! real `tidegate controller` process managing N real local clusters × M
//! apps × ~1,000 objects per cluster in 3 waves.
//!
//! 1. **Initial rollout**: the controller finds the fleet empty and rolls
//!    the head commit out (every object created), wave by wave.
//! 2. **Drift in every cluster at once**: `kubectl scale` of one Deployment
//!    in all N clusters at the same moment (threads), until every cluster
//!    shows Git's replicas again; `TIDEGATE_BENCH_RUNS` times (default 3).
//! 3. **Steady state**: each kube-apiserver's own `apiserver_request_total`
//!    (and `apiserver_longrunning_requests`) scraped before and after a quiet
//!    period (`TIDEGATE_BENCH_QUIET_SECS`, default 60), broken down by verb
//!    and resource, with watches and Lease traffic apart; the same period
//!    again after the controller stopped is the clusters' own baseline
//!    (kube-controller-manager, scheduler, kwok), subtracted. Tidegate's own
//!    counter (`tidegate_api_requests_total` of its `/metrics`) beside it.
//! 4. **A change rollout**: a commit changing one ConfigMap per app, with
//!    `bakeTime` B per wave (`TIDEGATE_BENCH_BAKE_SECS`, default 5): time
//!    from the controller's "new revision" to "rollout succeeded", against
//!    the gates' own time (3 × B); `TIDEGATE_BENCH_RUNS` times.
//! 5. The controller's peak RSS (`VmHWM`), steady RSS and CPU seconds
//!    (`utime + stime`) per phase; then a second controller started on the
//!    converged fleet (adopting it, as after a restart) for the steady RSS
//!    without rollout history and the requests of one start-up sync, and a
//!    one-object controller for the process's base RSS: bytes per cached
//!    object.
//!
//! Sizes: `TIDEGATE_BENCH_CLUSTERS` (default 10), `TIDEGATE_BENCH_APPS`
//! (default 10), `TIDEGATE_BENCH_OBJECTS` per cluster (default 1,000).
//! Clusters: `TIDEGATE_BENCH_KUBECONFIG` (running clusters, e.g.
//! `tidegate-testkit up --clusters 10 --ephemeral-ports --shared-etcd`; its
//! first N contexts are used), otherwise N are started here (shared etcd)
//! and stopped at the end. The `tidegate` binary is the build next to this
//! bench (`TIDEGATE_BENCH_BIN` names another, e.g. a release build).
//!
//! Prints a table (and `model:` lines, the inputs of docs/scale.md's load
//! model). Exits non-zero when a run failed; the targets are printed
//! beside the figures, not asserted (a loaded machine would fail them).

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use tidegate_testkit::{EtcdMode, Fleet, FleetOptions, TestNamespace};
use tidegate_tests::GitFixture;

const WAIT: Duration = Duration::from_secs(900);
const SUCCEEDED: &str = "rollout succeeded: every cluster is Healthy at the revision";
const NEW_REVISION: &str = "new revision: rolling it out";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// The sizes and timings of a run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    clusters: usize,
    apps: usize,
    objects: usize,
    runs: usize,
    quiet: u64,
    bake: u64,
}

/// One app's manifests: a Deployment `web` (1 replica; kwok runs its pod),
/// ~10% Services, the rest ConfigMaps; `change` goes into the first
/// ConfigMap.
fn app_manifests(app: usize, objects: usize, change: usize) -> String {
    let mut out = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a{app}-web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: a{app}-web\n  template:\n    metadata:\n      labels:\n        app: a{app}-web\n    spec:\n      containers:\n        - name: app\n          image: registry.example/web:1\n"
    );
    for i in 1..objects {
        if i % 10 == 0 {
            out.push_str(&format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a{app}-svc-{i}\nspec:\n  selector:\n    app: a{app}-web\n  ports:\n    - port: 80\n"
            ));
        } else {
            out.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a{app}-cm-{i}\ndata:\n  LOG_LEVEL: info\n  CHANGE: \"{}\"\n",
                if i == 1 { change } else { 0 }
            ));
        }
    }
    out
}

/// The wave of the `i`-th of `n` clusters: 10% (at least one) in wave 1,
/// the next 30% in wave 2, the rest in wave 3.
fn wave_of(i: usize, n: usize) -> usize {
    let first = n.div_ceil(10).max(1);
    let second = first + (n * 3).div_ceil(10).max(1);
    if i < first {
        1
    } else if i < second {
        2
    } else {
        3
    }
}

fn environment(env: &str, contexts: &[String], apps: usize, bake: u64) -> String {
    let clusters: String = contexts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "    - name: {c}\n      provider:\n        kubeconfig:\n          context: {c}\n      wave: {}\n",
                wave_of(i, contexts.len())
            )
        })
        .collect();
    let apps: String = (0..apps)
        .map(|a| format!("    - name: app{a}\n      namespace: {env}\n"))
        .collect();
    format!(
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n{apps}  rollout:\n    maxSurge: 25%\n    maxUnavailable: 0\n    progressDeadline: 600s\n    bakeTime: {bake}s\n  sync:\n    selfHeal: true\n    interval: 5s\n"
    )
}

/// A `tidegate controller` process and its JSON log.
struct Controller {
    child: Child,
    log: PathBuf,
    metrics: Option<String>,
    read: std::cell::RefCell<LogCursor>,
}

/// The part of a controller's log read so far: polling reads only what was
/// appended since (the log of a 10,000-object rollout is large; parsing it
/// whole every poll cost the machine the bench measures a core).
#[derive(Default)]
struct LogCursor {
    offset: u64,
    partial: String,
    lines: Vec<serde_json::Value>,
}

impl LogCursor {
    fn refresh(&mut self, log: &Path) {
        let Ok(mut file) = std::fs::File::open(log) else {
            return;
        };
        use std::io::Seek;
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = String::new();
        let Ok(read) = file.read_to_string(&mut fresh) else {
            return;
        };
        self.offset += read as u64;
        self.partial.push_str(&fresh);
        // Only whole lines; the rest waits for its newline.
        let Some(end) = self.partial.rfind('\n') else {
            return;
        };
        let rest = self.partial.split_off(end + 1);
        let whole = std::mem::replace(&mut self.partial, rest);
        self.lines.extend(
            whole
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()),
        );
    }
}

impl Controller {
    fn start(
        bin: &Path,
        git: &GitFixture,
        fleet: &Fleet,
        env: &str,
        state: &Path,
        label: &str,
    ) -> Controller {
        let log = state.join(format!("controller-{label}.log"));
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new(bin)
            .args(["--repo", &git.path().display().to_string()])
            .args(["--log-format", "json", "controller", "--env", env])
            .args(["--listen", "127.0.0.1:0"])
            .env("TIDEGATE_ACCESS", "kubeconfig")
            .env("KUBECONFIG", fleet.kubeconfig())
            .env("TIDEGATE_AUDIT_DB", state.join("audit.db"))
            .env("XDG_STATE_HOME", state)
            .env("XDG_CACHE_HOME", state.join("cache"))
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (make bench-fleet builds it)", bin.display()));
        let mut c = Controller {
            child,
            log,
            metrics: None,
            read: Default::default(),
        };
        let serving = c.wait_for("serving /healthz, /readyz, /metrics and webhooks", 1);
        c.metrics = serving[0]["fields"]["address"].as_str().map(str::to_string);
        c
    }

    fn lines(&self, message: &str) -> Vec<serde_json::Value> {
        let mut read = self.read.borrow_mut();
        read.refresh(&self.log);
        read.lines
            .iter()
            .filter(|v| v["fields"]["message"] == message)
            .cloned()
            .collect()
    }

    fn wait_for(&mut self, message: &str, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self.lines(message);
            if found.len() >= count {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the controller exited ({status}) before {message:?}; log: {}",
                    self.log.display()
                );
            }
            for failed in [
                "rollout FAILED: rolled back and quarantined; waiting for a newer commit",
                "rollout HALTED; waiting for a newer commit",
            ] {
                assert!(
                    self.lines(failed).is_empty(),
                    "{failed}; log: {}",
                    self.log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {message:?} in {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `VmHWM` and `VmRSS` in bytes.
    fn memory(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .expect(name)
                * 1024
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// CPU seconds so far (user + system).
    fn cpu(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    /// `tidegate_api_requests_total` by cluster and verb.
    fn requests(&self) -> BTreeMap<(String, String), f64> {
        let address = self.metrics.as_deref().expect("metrics address");
        let text = http_get(address, "/metrics");
        let mut out = BTreeMap::new();
        for (name, labels, value) in samples(&text) {
            if name == "tidegate_api_requests_total" {
                let key = (
                    labels.get("cluster").cloned().unwrap_or_default(),
                    labels.get("verb").cloned().unwrap_or_default(),
                );
                *out.entry(key).or_default() += value;
            }
        }
        out
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces): state is 3rd,
    // utime the 14th and stime the 15th of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn http_get(address: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the controller");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("response");
    body.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The samples of a Prometheus text exposition: name, labels, value.
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (head, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match head.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (head, ""),
        };
        let mut map = BTreeMap::new();
        // Label values of these metrics hold no commas or quotes.
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once('=') {
                map.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        out.push((name.to_string(), map, value));
    }
    out
}

/// One kube-apiserver's request counters, by "VERB resource[/sub]", and its
/// open long-running requests (watches) by resource.
#[derive(Debug, Default, Clone)]
struct ApiServer {
    requests: BTreeMap<String, f64>,
    open_watches: BTreeMap<String, f64>,
}

fn scrape(fleet: &Fleet, contexts: &[String]) -> Vec<ApiServer> {
    std::thread::scope(|s| {
        let handles: Vec<_> = contexts
            .iter()
            .map(|c| {
                s.spawn(move || {
                    let text = fleet
                        .kubectl(c, &["get", "--raw", "/metrics"])
                        .unwrap_or_else(|e| panic!("{c}: /metrics: {e}"));
                    let mut api = ApiServer::default();
                    for (name, labels, value) in samples(&text) {
                        let resource = match labels.get("subresource").filter(|s| !s.is_empty()) {
                            Some(sub) => format!("{}/{sub}", labels["resource"]),
                            None => labels.get("resource").cloned().unwrap_or_default(),
                        };
                        let verb = labels.get("verb").cloned().unwrap_or_default();
                        if name == "apiserver_request_total" {
                            *api.requests
                                .entry(format!("{verb} {resource}"))
                                .or_default() += value;
                        } else if name == "apiserver_longrunning_requests" && verb == "WATCH" {
                            *api.open_watches.entry(resource).or_default() += value;
                        }
                    }
                    api
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("scrape"))
            .collect()
    })
}

/// Requests per cluster per minute between two scrapes, by class: watches;
/// Lease renewals and node heartbeats (`leases`, kwok's `PATCH
/// nodes/status`); non-resource requests (`/metrics` scrapes, OpenAPI
/// discovery); everything else by "VERB resource".
#[derive(Debug, Default)]
struct Rates {
    watches: f64,
    leases: f64,
    non_resource: f64,
    other: BTreeMap<String, f64>,
    open_watches: f64,
    /// Every "VERB resource" (all classes).
    all: BTreeMap<String, f64>,
}

impl Rates {
    fn between(before: &[ApiServer], after: &[ApiServer], seconds: f64) -> Rates {
        let n = before.len() as f64;
        let per = 60.0 / seconds / n;
        let mut r = Rates::default();
        for (b, a) in before.iter().zip(after) {
            for (key, v) in &a.requests {
                let d = v - b.requests.get(key).copied().unwrap_or(0.0);
                if d <= 0.0 {
                    continue;
                }
                *r.all.entry(key.clone()).or_default() += d * per;
                let (verb, resource) = key.split_once(' ').unwrap_or((key, ""));
                if resource.is_empty() || resource.starts_with('/') {
                    r.non_resource += d * per;
                } else if verb == "WATCH" || verb == "WATCHLIST" {
                    r.watches += d * per;
                } else if resource == "leases" || resource == "nodes/status" {
                    r.leases += d * per;
                } else {
                    *r.other.entry(key.clone()).or_default() += d * per;
                }
            }
            r.open_watches += a.open_watches.values().sum::<f64>() / n;
        }
        r
    }

    fn other_total(&self) -> f64 {
        self.other.values().sum()
    }
}

fn time_ms(line: &serde_json::Value) -> f64 {
    let text = line["timestamp"].as_str().unwrap_or_default();
    let t: jiff::Timestamp = text.parse().expect("timestamp");
    t.as_millisecond() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// The phases of the controller's rollouts, from its JSON log: for every
/// rollout started by `start` (a message), the time to its first apply
/// (pre-flight and locks), each cluster's apply (from the progress line
/// that first shows it Applying to its "sync finished"), and the tail after
/// the last apply (last wave's health and bake, locks released); the first
/// `skip` rollouts left out.
#[derive(Debug, Default)]
struct Phases {
    to_first_apply: Vec<f64>,
    applies: Vec<f64>,
    tails: Vec<f64>,
}

fn phases(log: &Path, start: &str, skip: usize) -> Phases {
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut out = Phases::default();
    let mut i = 0;
    let mut skip = skip;
    while i < lines.len() {
        if lines[i]["fields"]["message"] != start {
            i += 1;
            continue;
        }
        if skip > 0 {
            skip -= 1;
            i += 1;
            continue;
        }
        let began = time_ms(&lines[i]);
        let mut applying: BTreeMap<String, f64> = BTreeMap::new();
        let mut first = None;
        let mut last_sync = None;
        let mut j = i + 1;
        while j < lines.len() {
            let l = &lines[j];
            let message = l["fields"]["message"].as_str().unwrap_or_default();
            if message == "rollout" {
                let progress = l["fields"]["progress"].as_str().unwrap_or_default();
                for entry in progress.split_whitespace() {
                    if let Some(cluster) = entry
                        .strip_suffix(":Applying:Healthy")
                        .or_else(|| entry.split_once(":Applying:").map(|(c, _)| c))
                    {
                        applying.entry(cluster.to_string()).or_insert(time_ms(l));
                        first.get_or_insert(time_ms(l));
                    }
                }
            } else if message == "sync finished" {
                let cluster = l["span"]["cluster"].as_str().unwrap_or_default();
                if let Some(from) = applying.get(cluster) {
                    out.applies.push((time_ms(l) - from) / 1000.0);
                }
                last_sync = Some(time_ms(l));
            } else if message == SUCCEEDED {
                if let Some(first) = first {
                    out.to_first_apply.push((first - began) / 1000.0);
                }
                if let Some(last) = last_sync {
                    out.tails.push((time_ms(l) - last) / 1000.0);
                }
                break;
            }
            j += 1;
        }
        i = j;
    }
    out
}

fn p90(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() * 9 / 10).copied().unwrap_or(f64::NAN)
}

/// Scales `deployment` in every cluster at once, then waits until every
/// cluster shows `replicas` again. Returns (all corrected, per-cluster
/// corrections) in seconds.
fn drift_everywhere(
    fleet: &Fleet,
    contexts: &[String],
    ns: &str,
    deployment: &str,
    to: usize,
) -> (f64, Vec<f64>) {
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in contexts {
            s.spawn(move || {
                fleet
                    .kubectl(
                        c,
                        &[
                            "scale",
                            "deployment",
                            deployment,
                            "-n",
                            ns,
                            &format!("--replicas={to}"),
                        ],
                    )
                    .unwrap_or_else(|e| panic!("{c}: kubectl scale: {e}"));
            });
        }
    });
    // One `kubectl wait` per cluster (a GET, then a watch) rather than
    // polling: ten kubectl processes every 200 ms took the CPU the
    // controller needs to correct the drift. A correction that lands before
    // its watch opens is seen by the GET (the time then includes kubectl's
    // start).
    let per: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = contexts
            .iter()
            .map(|c| {
                s.spawn(move || {
                    fleet
                        .kubectl(
                            c,
                            &[
                                "wait",
                                &format!("deployment/{deployment}"),
                                "-n",
                                ns,
                                "--for=jsonpath={.spec.replicas}=1",
                                &format!("--timeout={}s", WAIT.as_secs()),
                            ],
                        )
                        .unwrap_or_else(|e| panic!("{c}: drift never corrected: {e}"));
                    start.elapsed().as_secs_f64()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("wait"))
            .collect()
    });
    let all = per.iter().copied().fold(0.0, f64::max);
    (all, per)
}

fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("TIDEGATE_BENCH_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("bench path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("tidegate")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn sum_requests(
    after: &BTreeMap<(String, String), f64>,
    before: &BTreeMap<(String, String), f64>,
    verb: Option<&str>,
) -> f64 {
    after
        .iter()
        .filter(|((_, v), _)| verb.is_none_or(|w| w == v))
        .map(|(k, v)| v - before.get(k).copied().unwrap_or(0.0))
        .sum()
}

/// Commits an environment `<ns>-<name>` of one ConfigMap in each of
/// `contexts`; returns its name.
fn small_environment(git: &mut GitFixture, ns: &str, name: &str, contexts: &[String]) -> String {
    let env = format!("{ns}-{name}");
    let clusters: String = contexts
        .iter()
        .map(|c| {
            format!(
                "    - name: {c}\n      provider:\n        kubeconfig:\n          context: {c}\n"
            )
        })
        .collect();
    git.write(
        &format!("environments/{env}.yaml"),
        format!(
            "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {env}\nspec:\n  source:\n    repoURL: .\n    path: {name}\n  clusters:\n{clusters}  apps:\n    - name: {name}\n      namespace: {ns}\n  rollout:\n    maxSurge: 100%\n  sync:\n    interval: 5s\n"
        ),
    );
    git.write(
        &format!("{name}/{name}/cm.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-cm\ndata:\n  a: b\n"),
    );
    git.commit(name);
    env
}

/// RSS of controllers each managing one of `envs` (run side by side, each
/// with its own state), once they watch.
fn small_controllers(
    bin: &Path,
    git: &GitFixture,
    fleet: &Fleet,
    envs: &[String],
    state: &Path,
) -> Vec<u64> {
    let mut running: Vec<Controller> = envs
        .iter()
        .map(|env| {
            let dir = state.join(env);
            std::fs::create_dir_all(&dir).expect("state");
            Controller::start(bin, git, fleet, env, &dir, env)
        })
        .collect();
    for c in &mut running {
        c.wait_for("watching", 1);
    }
    std::thread::sleep(Duration::from_secs(3));
    let rss = running.iter().map(|c| c.memory().1).collect();
    for c in &mut running {
        c.stop();
    }
    rss
}

/// The wall time of each phase of a run, the controller's CPU seconds in
/// it and the load average at its end: where the 10-minute budget goes.
struct PhaseClock {
    at: Instant,
    rows: Vec<(String, f64, Option<f64>, String)>,
}

impl PhaseClock {
    fn new() -> PhaseClock {
        PhaseClock {
            at: Instant::now(),
            rows: Vec::new(),
        }
    }

    /// Ends the phase `name` (started when the previous one ended).
    fn end(&mut self, name: &str, cpu: Option<f64>) {
        let wall = self.at.elapsed().as_secs_f64();
        self.at = Instant::now();
        let load = load_average();
        eprintln!(
            "phase {name}: {wall:.1} s{}; load {load}",
            cpu.map(|c| format!(", controller CPU {c:.1} s"))
                .unwrap_or_default()
        );
        self.rows.push((name.to_string(), wall, cpu, load));
    }
}

fn main() {
    tidegate_cluster::install_crypto_provider();
    let started = Instant::now();
    let mut clock = PhaseClock::new();
    let sizes = Sizes {
        clusters: env_or("TIDEGATE_BENCH_CLUSTERS", 10usize),
        apps: env_or("TIDEGATE_BENCH_APPS", 10usize),
        objects: env_or("TIDEGATE_BENCH_OBJECTS", 1000usize),
        runs: env_or("TIDEGATE_BENCH_RUNS", 3usize),
        quiet: env_or("TIDEGATE_BENCH_QUIET_SECS", 60u64),
        bake: env_or("TIDEGATE_BENCH_BAKE_SECS", 5u64),
    };
    let per_app = (sizes.objects / sizes.apps.max(1)).max(1);
    let bin = binary();
    let fleet = match std::env::var_os("TIDEGATE_BENCH_KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(kc) => Fleet::attach(Path::new(&kc)).expect("TIDEGATE_BENCH_KUBECONFIG"),
        None => Fleet::start(FleetOptions {
            clusters: sizes.clusters,
            etcd: EtcdMode::Shared,
            ..FleetOptions::default()
        })
        .expect("starting the local clusters"),
    };
    let contexts: Vec<String> = fleet
        .contexts()
        .iter()
        .take(sizes.clusters)
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        contexts.len(),
        sizes.clusters,
        "the fleet has fewer than TIDEGATE_BENCH_CLUSTERS={} clusters",
        sizes.clusters
    );
    let fleet_ready = started.elapsed().as_secs_f64();
    clock.end("clusters ready", None);
    eprintln!(
        "{} clusters ready after {fleet_ready:.0} s; {} apps × {per_app} objects each; load {}",
        sizes.clusters,
        sizes.apps,
        load_average()
    );

    let mut ns = TestNamespace::create(&fleet, "bench-fleet").expect("namespace");
    let env = ns.name().to_string();
    let mut git = GitFixture::new();
    git.write(
        &format!("environments/{env}.yaml"),
        environment(&env, &contexts, sizes.apps, 0),
    );
    for a in 0..sizes.apps {
        git.write(
            &format!("manifests/app{a}/objects.yaml"),
            app_manifests(a, per_app, 0),
        );
    }
    git.commit("v0");
    let state = tempfile::tempdir().expect("state");

    // 1. The initial rollout: every object created.
    let mut ctl = Controller::start(&bin, &git, &fleet, &env, state.path(), "main");
    let new = ctl.wait_for(NEW_REVISION, 1).remove(0);
    let done = ctl.wait_for(SUCCEEDED, 1).remove(0);
    let initial = (time_ms(&done) - time_ms(&new)) / 1000.0;
    let watching = ctl.wait_for("watching", 1).remove(0);
    let cached = watching["fields"]["objects"].as_u64().unwrap_or(0);
    let cpu_initial = ctl.cpu();
    let (hwm_initial, rss_initial) = ctl.memory();
    eprintln!(
        "initial rollout {initial:.1} s; {cached} objects cached; load {}",
        load_average()
    );
    clock.end("controller start + initial rollout", Some(cpu_initial));

    // 2. Drift in every cluster at once.
    let mut drift_all = Vec::new();
    let mut drift_each = Vec::new();
    let cpu_before = ctl.cpu();
    for run in 0..sizes.runs {
        let done = ctl.lines(SUCCEEDED).len();
        let (all, per) = drift_everywhere(&fleet, &contexts, &env, "a0-web", 3 + run);
        drift_all.push(all);
        drift_each.extend(per);
        // The rollout that corrected it ends before the next run.
        ctl.wait_for(SUCCEEDED, done + 1);
        std::thread::sleep(Duration::from_secs(2));
        eprintln!(
            "drift run {run}: all {} clusters corrected in {all:.2} s",
            sizes.clusters
        );
    }
    let cpu_drift = ctl.cpu() - cpu_before;
    clock.end("drift runs", Some(cpu_drift));
    let (hwm_drift, _) = ctl.memory();
    let drift_rollouts = ctl.lines(SUCCEEDED).len() - 1;

    // 3. Steady state with the controller, once it has settled: after a
    // fleet-wide drift its queue still checks every (cluster, app) key
    // after the correcting rollout; the window starts when its own counter
    // of non-watch requests has stood still for 10 s (at most 5 minutes).
    let settle = Instant::now();
    loop {
        let before = ctl.requests();
        std::thread::sleep(Duration::from_secs(10));
        let after = ctl.requests();
        let sent =
            sum_requests(&after, &before, None) - sum_requests(&after, &before, Some("watch"));
        if sent == 0.0 {
            break;
        }
        if settle.elapsed() > Duration::from_secs(300) {
            eprintln!(
                "the controller never settled ({sent} requests in the last 10 s): the quiet window starts anyway"
            );
            break;
        }
    }
    eprintln!(
        "controller settled after {:.0} s",
        settle.elapsed().as_secs_f64()
    );
    let (_, rss_steady) = ctl.memory();
    let cpu_quiet_start = ctl.cpu();
    let tg_before = ctl.requests();
    let before = scrape(&fleet, &contexts);
    let quiet_start = Instant::now();
    std::thread::sleep(Duration::from_secs(sizes.quiet));
    let after = scrape(&fleet, &contexts);
    let quiet_secs = quiet_start.elapsed().as_secs_f64();
    let tg_after = ctl.requests();
    let cpu_quiet = ctl.cpu() - cpu_quiet_start;
    let with = Rates::between(&before, &after, quiet_secs);
    let tg_quiet = sum_requests(&tg_after, &tg_before, None)
        - sum_requests(&tg_after, &tg_before, Some("watch"));
    let tg_quiet_watches = sum_requests(&tg_after, &tg_before, Some("watch"));
    clock.end(
        "quiet period with the controller",
        Some(ctl.cpu() - cpu_drift - cpu_before),
    );

    // 4. Change rollouts with a bake per wave.
    let mut change = Vec::new();
    let mut change_requests = Vec::new();
    let cpu_change_start = ctl.cpu();
    for run in 1..=sizes.runs {
        let seen = ctl.lines(NEW_REVISION).len();
        let done = ctl.lines(SUCCEEDED).len();
        let tg0 = ctl.requests();
        git.write(
            &format!("environments/{env}.yaml"),
            environment(&env, &contexts, sizes.apps, sizes.bake),
        );
        for a in 0..sizes.apps {
            git.write(
                &format!("manifests/app{a}/objects.yaml"),
                app_manifests(a, per_app, run),
            );
        }
        git.commit(&format!("v{run}"));
        let new = ctl.wait_for(NEW_REVISION, seen + 1)[seen].clone();
        let end = ctl.wait_for(SUCCEEDED, done + 1)[done].clone();
        let took = (time_ms(&end) - time_ms(&new)) / 1000.0;
        change.push(took);
        change_requests.push(
            (sum_requests(&ctl.requests(), &tg0, None)
                - sum_requests(&ctl.requests(), &tg0, Some("watch")))
                / sizes.clusters as f64,
        );
        eprintln!(
            "change rollout {run}: {took:.1} s (gates {} s)",
            3 * sizes.bake
        );
    }
    let cpu_change = ctl.cpu() - cpu_change_start;
    clock.end("change rollouts", Some(cpu_change));
    let (hwm, _) = ctl.memory();
    let cpu_total = ctl.cpu();
    ctl.stop();

    // The clusters' own baseline: the same quiet period without a controller.
    std::thread::sleep(Duration::from_secs(5));
    let before = scrape(&fleet, &contexts);
    let base_start = Instant::now();
    std::thread::sleep(Duration::from_secs(sizes.quiet));
    let after = scrape(&fleet, &contexts);
    let baseline = Rates::between(&before, &after, base_start.elapsed().as_secs_f64());
    clock.end("controller stop + quiet period without it", None);

    // 5. A controller adopting the converged fleet (as after a restart).
    let adopt_start = Instant::now();
    let mut adopted = Controller::start(&bin, &git, &fleet, &env, state.path(), "adopting");
    let check = adopted.wait_for("start-up drift check done", 1).remove(0);
    let adopt_secs = adopt_start.elapsed().as_secs_f64();
    let adopt_cpu = adopted.cpu();
    std::thread::sleep(Duration::from_secs(3));
    let (_, adopt_rss) = adopted.memory();
    let count = |k: &str| check["fields"][k].as_u64().unwrap_or(0) as f64 / sizes.clusters as f64;
    let (adopt_reads, adopt_watches, adopt_dry, adopt_writes) = (
        count("reads"),
        count("watches"),
        count("dry_runs"),
        count("writes"),
    );
    adopted.stop();
    clock.end("adopting controller", Some(adopt_cpu));

    // The process's base (one cluster, one object) and what each cluster
    // adds (every cluster, one object each).
    let small = [
        small_environment(&mut git, &env, "one", &contexts[..1]),
        small_environment(&mut git, &env, "base", &contexts),
    ];
    let rss = small_controllers(&bin, &git, &fleet, &small, state.path());
    let (base_rss, clusters_rss) = (rss[0], rss[1]);
    clock.end("two one-object controllers", None);
    let total = started.elapsed().as_secs_f64();
    let drift_phases = phases(
        &ctl.log,
        "drift: correcting it through the fleet rollout (selfHeal)",
        0,
    );
    // The first "new revision" is the initial rollout.
    let change_phases = phases(&ctl.log, NEW_REVISION, 1);
    // Keep the controllers' logs (per-cluster timings for the simulation).
    let kept = tidegate_tests::workspace_root().join("target/bench-fleet");
    let _ = std::fs::create_dir_all(&kept);
    for log in [&ctl.log, &adopted.log] {
        if let Some(name) = log.file_name() {
            let _ = std::fs::copy(log, kept.join(name));
        }
    }

    // The table.
    let n = sizes.clusters;
    let bytes_per_object = (adopt_rss.saturating_sub(clusters_rss)) as f64
        / (cached as usize).saturating_sub(n).max(1) as f64;
    let bytes_per_cluster = (clusters_rss.saturating_sub(base_rss)) as f64 / (n - 1).max(1) as f64;
    let gates = 3.0 * sizes.bake as f64;
    println!(
        "\nfleet-scale benchmark: {n} clusters × {} apps × {per_app} objects ({cached} objects cached), 3 waves, maxSurge 25%; {}",
        sizes.apps,
        bin.display()
    );
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!("| initial rollout (every object created), s | {initial:.1} | — |");
    println!(
        "| change rollout (1 ConfigMap per app), 3 waves × bake {} s, median of {}, s | {:.1} (runs {:?}) | gates {gates:.0} s + < 5 s |",
        sizes.bake,
        change.len(),
        median(change.clone()),
        change
            .iter()
            .map(|c| (c * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    println!(
        "| overhead beyond the gates (median), s | {:.1} | < 5 |",
        median(change.clone()) - gates
    );
    println!(
        "| drift in all {n} clusters corrected (kubectl scale everywhere at once), median of {}, s | {:.2} (runs {:?}) | < 10 |",
        drift_all.len(),
        median(drift_all.clone()),
        drift_all
            .iter()
            .map(|c| (c * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    println!(
        "| drift corrected per cluster (median over runs × clusters), s | {:.2} | — |",
        median(drift_each.clone())
    );
    println!("| fleet rollouts run for the drift runs | {drift_rollouts} | — |");
    println!(
        "| steady state, per cluster per minute, with the controller: watches / Leases and node heartbeats / non-resource / other | {:.2} / {:.2} / {:.2} / {:.2} | — |",
        with.watches,
        with.leases,
        with.non_resource,
        with.other_total()
    );
    println!(
        "| steady state, the clusters alone (baseline): watches / Leases and node heartbeats / non-resource / other | {:.2} / {:.2} / {:.2} / {:.2} | — |",
        baseline.watches,
        baseline.leases,
        baseline.non_resource,
        baseline.other_total()
    );
    println!(
        "| steady state, the controller's share beyond watches and Leases (with − baseline), per cluster per minute | {:.2} | 0 |",
        with.other_total() - baseline.other_total()
    );
    println!(
        "| open watches per cluster, with − baseline | {:.1} | — |",
        with.open_watches - baseline.open_watches
    );
    println!(
        "| Tidegate's counter in the quiet period, per cluster per minute: non-watch / watch (re)opens | {:.2} / {:.2} | 0 / — |",
        tg_quiet * 60.0 / quiet_secs / n as f64,
        tg_quiet_watches * 60.0 / quiet_secs / n as f64
    );
    println!(
        "| controller peak RSS (VmHWM), MiB | {:.1} | < 400 |",
        mib(hwm)
    );
    println!(
        "| controller VmHWM after the initial rollout / after the drift runs, MiB; RSS after the initial rollout, MiB | {:.1} / {:.1}; {:.1} | — |",
        mib(hwm_initial),
        mib(hwm_drift),
        mib(rss_initial)
    );
    println!(
        "| controller RSS in the steady state after the drift runs, MiB | {:.1} | — |",
        mib(rss_steady)
    );
    println!(
        "| controller CPU, s: initial rollout / {} drift runs / quiet {:.0} s / {} change rollouts / total | {cpu_initial:.1} / {cpu_drift:.1} / {cpu_quiet:.1} / {cpu_change:.1} / {cpu_total:.1} | — |",
        sizes.runs, quiet_secs, sizes.runs
    );
    println!(
        "| a controller adopting the converged fleet: to start-up drift check done, s; RSS, MiB; CPU, s | {adopt_secs:.1}; {:.1}; {adopt_cpu:.1} | — |",
        mib(adopt_rss)
    );
    println!(
        "| the process's base RSS (1 cluster, 1 object), MiB | {:.1} | — |",
        mib(base_rss)
    );
    println!(
        "| RSS with {n} clusters × 1 object, MiB | {:.1} | — |",
        mib(clusters_rss)
    );
    println!(
        "| whole benchmark (clusters ready after {fleet_ready:.0} s), s | {total:.0} | < 600 |"
    );
    println!("\n| phase | wall, s | controller CPU, s | load average at its end |");
    println!("|---|---|---|---|");
    for (name, wall, cpu, load) in &clock.rows {
        println!(
            "| {name} | {wall:.1} | {} | {load} |",
            cpu.map(|c| format!("{c:.1}")).unwrap_or_else(|| "—".into())
        );
    }
    println!(
        "\nsteady state, requests per cluster per minute by verb and resource (with the controller | baseline):"
    );
    let keys: std::collections::BTreeSet<&String> =
        with.all.keys().chain(baseline.all.keys()).collect();
    for k in keys {
        println!(
            "  {k}: {:.2} | {:.2}",
            with.all.get(k).copied().unwrap_or(0.0),
            baseline.all.get(k).copied().unwrap_or(0.0)
        );
    }
    println!(
        "\nmodel: clusters={n} objects_per_cluster={} bytes_per_cached_object={bytes_per_object:.0} bytes_per_cluster={bytes_per_cluster:.0} base_rss_bytes={base_rss} clusters_rss_bytes={clusters_rss} adopt_rss_bytes={adopt_rss} peak_rss_bytes={hwm}",
        cached as usize / n
    );
    println!(
        "model: startup_requests_per_cluster reads={adopt_reads:.1} watches={adopt_watches:.1} dry_runs={adopt_dry:.1} writes={adopt_writes:.1}; change_rollout_requests_per_cluster={:.1}",
        median(change_requests)
    );
    println!(
        "model: cpu_us_per_object_startup_survey={:.1} cpu_us_per_object_change_rollout={:.1} cpu_us_per_object_drift_rollout={:.1}",
        adopt_cpu * 1e6 / cached.max(1) as f64,
        cpu_change * 1e6 / (sizes.runs * cached as usize).max(1) as f64,
        cpu_drift * 1e6 / (drift_rollouts.max(1) * cached as usize) as f64
    );
    for (what, p) in [("drift", &drift_phases), ("change", &change_phases)] {
        println!(
            "model: {what} rollouts: to first apply (pre-flight, locks) median {:.2} s {:?}; apply per cluster median {:.2} s p90 {:.2} s (n={}); after the last apply median {:.2} s",
            median(p.to_first_apply.clone()),
            p.to_first_apply
                .iter()
                .map(|x| (x * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            median(p.applies.clone()),
            p90(p.applies.clone()),
            p.applies.len(),
            median(p.tails.clone())
        );
    }
    println!(
        "model: drift_per_cluster_s median={:.2} change_overhead_s={:.2} load={}",
        median(drift_each),
        median(change) - gates,
        load_average()
    );
    // Clusters started here are stopped whole: deleting 10,000 objects
    // first would only keep their controller managers busy.
    if fleet.is_owned() {
        ns.keep();
    }
    drop(ns);
    let stopping = Instant::now();
    drop(fleet);
    eprintln!(
        "clusters stopped in {:.1} s; whole run {:.0} s",
        stopping.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
