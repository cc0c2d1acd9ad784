//! Starting, reusing and stopping a fleet of local clusters.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::kubeconfig::{self, Entry};
use crate::process::{self, Proc, ProcessRecord};
use crate::webhook::TOKEN_WEBHOOK_PATH;
use crate::{
    Binaries, ENV_STATE_DIR, ENV_TEST_CLUSTERS, ENV_TEST_KEEP_STATE, ENV_TEST_KUBECONFIG,
    ETCD_VERSION, Error, KUBERNETES_VERSION, KWOK_STAGES, KWOK_VERSION, Result, pki,
    testkit_binary,
};

/// Label that keeps a pod from ever becoming Ready (value `"true"`): kwok
/// moves such a pod to Running with Ready=False, so a rollout carrying it
/// stalls until its `progressDeadlineSeconds`.
pub const FAIL_READINESS_LABEL: &str = "tidegate.dev/test-fail-readiness";

/// Label that makes a pod crash-loop (value `"true"`): Running, never Ready,
/// its containers waiting in `CrashLoopBackOff` with a rising restartCount.
pub const CRASHLOOP_LABEL: &str = "tidegate.dev/test-crashloop";

/// Label that makes a pod's image pull fail (value `"true"`): it stays
/// Pending with its containers waiting in `ImagePullBackOff`.
pub const IMAGE_PULL_FAIL_LABEL: &str = "tidegate.dev/test-image-pull-fail";

/// Label that makes a Job's pod fail (value `"true"`) instead of exiting 0.
pub const JOB_FAIL_LABEL: &str = "tidegate.dev/test-job-fail";

/// Annotation of a Job's pod: the termination message its containers end
/// with (kwok pods have no logs; see docs/local-clusters.md).
pub const TERMINATION_MESSAGE_ANNOTATION: &str = "tidegate.dev/test-termination-message";

/// Annotation of a failing Job's pod: its exit code (default 1).
pub const EXIT_CODE_ANNOTATION: &str = "tidegate.dev/test-exit-code";

/// Default first port of [`PortPlan::Fixed`].
pub const DEFAULT_BASE_PORT: u16 = 26400;

/// How long an API server caches a token webhook's answer (success or
/// failure) for one token. Short, so that the webhook's time checks (a token
/// is valid for 15 minutes after it was signed) hold to within seconds, as
/// they do on EKS, and a refused token is asked about again soon; long
/// enough that a burst of requests with one token makes one review.
const TOKEN_WEBHOOK_CACHE_TTL: &str = "10s";

/// Controllers that each kube-controller-manager runs.
const CONTROLLERS: &str = "deployment-controller,replicaset-controller,\
garbage-collector-controller,namespace-controller,serviceaccount-controller,\
statefulset-controller,daemonset-controller,job-controller,endpointslice-controller";

/// The name (and kubeconfig context) of the `index`-th cluster (from 0):
/// the clusters of the example prod environment first, then `kind-<n>`.
pub fn cluster_name(index: usize) -> String {
    match index {
        0 => "eks-us-east-1".to_string(),
        1 => "aks-westeurope".to_string(),
        2 => "gke-us-central1".to_string(),
        n => format!("kind-{}", n + 1),
    }
}

/// The state directory of `up`/`status`/`down`: `TIDEGATE_CLUSTERS_STATE_DIR`,
/// else `.tidegate/clusters` under the current directory.
pub fn default_state_dir() -> PathBuf {
    match std::env::var_os(ENV_STATE_DIR).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(".tidegate").join("clusters"),
    }
}

/// How clusters store their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdMode {
    /// One etcd per cluster (the default): clusters share nothing, and one
    /// etcd's compaction or slowness affects only its cluster.
    #[default]
    PerCluster,
    /// One etcd for every API server, each with its own `--etcd-prefix`.
    Shared,
}

/// How ports are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPlan {
    /// Predictable ports: cluster `i` uses `base + 100*i` plus 43 (API
    /// server), 79/80 (etcd client/peer), 57 (controller manager), 59
    /// (scheduler) and 62 (token webhook), mirroring the usual 6443,
    /// 2379/2380, 10257, 10259 and aws-iam-authenticator's 21362.
    Fixed {
        /// The base port.
        base: u16,
    },
    /// Free ports picked by the kernel (for test processes, which may run
    /// beside a fleet started by `up`).
    Ephemeral,
}

/// The ports of one cluster (all on 127.0.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterPorts {
    /// kube-apiserver (HTTPS).
    pub apiserver: u16,
    /// etcd client port (for [`EtcdMode::Shared`], the shared etcd's).
    pub etcd_client: u16,
    /// etcd peer port.
    pub etcd_peer: u16,
    /// kube-controller-manager (HTTPS, health and metrics).
    pub controller_manager: u16,
    /// kube-scheduler (HTTPS, health and metrics).
    pub scheduler: u16,
    /// The token-review webhook (HTTPS); 0 for a cluster without one (started
    /// by an older testkit).
    #[serde(default)]
    pub token_webhook: u16,
}

/// One cluster of a fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Cluster name, which is also its kubeconfig context.
    pub context: String,
    /// API server URL.
    pub server: String,
    /// Its ports.
    pub ports: ClusterPorts,
    /// Name of its fake Node.
    pub node: String,
}

impl ClusterInfo {
    /// The EKS cluster id (`x-k8s-aws-id`) this cluster's API server accepts
    /// EKS tokens for, through its token webhook: its context name (use it as
    /// `clusterName` of a `provider: {eks: ...}` cluster). `None` when the
    /// cluster has no webhook (started by an older testkit, or attached
    /// through a kubeconfig alone).
    pub fn eks_cluster_id(&self) -> Option<&str> {
        (self.ports.token_webhook != 0).then_some(self.context.as_str())
    }
}

/// Options of [`Fleet::start`].
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Number of clusters.
    pub clusters: usize,
    /// State directory; `None` makes a temporary one, removed on stop.
    pub state_dir: Option<PathBuf>,
    /// Port allocation.
    pub ports: PortPlan,
    /// etcd layout.
    pub etcd: EtcdMode,
    /// Binaries; `None` uses [`Binaries::locate`].
    pub binaries: Option<Binaries>,
    /// The `tidegate-testkit` binary that serves the token webhooks; `None`
    /// uses [`testkit_binary`].
    pub testkit_binary: Option<PathBuf>,
    /// How long to wait for each cluster's `/readyz` and Node.
    pub ready_timeout: Duration,
    /// Delay between the starts of two API servers (startup is CPU-heavy).
    pub stagger: Duration,
    /// At most this many API servers starting (not yet answering
    /// `/readyz`) at once (default 10): twenty at once on two cores starve
    /// the shared etcd and an API server's post-start hooks fail, while
    /// fewer than ten at once made ten clusters start several times slower
    /// (an API server's start is mostly waiting). The next one starts when
    /// one of them is ready.
    pub max_starting: usize,
    /// Start a watchdog that stops the fleet when this process exits, even
    /// if it is killed (tests); off for `up`, whose fleet outlives it.
    pub watchdog: bool,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            clusters: 3,
            state_dir: None,
            ports: PortPlan::Ephemeral,
            etcd: EtcdMode::default(),
            binaries: None,
            testkit_binary: None,
            ready_timeout: Duration::from_secs(180),
            stagger: Duration::from_secs(2),
            max_starting: 10,
            watchdog: true,
        }
    }
}

/// What `fleet.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FleetState {
    kubernetes_version: String,
    etcd_version: String,
    kwok_version: String,
    etcd_mode: EtcdMode,
    kubeconfig: PathBuf,
    clusters: Vec<ClusterInfo>,
    processes: Vec<ProcessRecord>,
    started_unix: u64,
    startup_seconds: f64,
}

/// A set of local clusters, either started (and owned) by this process or
/// attached to (clusters started by `tidegate-testkit up`).
pub struct Fleet {
    state_dir: PathBuf,
    kubeconfig: PathBuf,
    clusters: Vec<ClusterInfo>,
    kubectl: PathBuf,
    children: Vec<Proc>,
    watchdog: Option<Child>,
    temp: Option<tempfile::TempDir>,
    owned: bool,
    startup: Duration,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("state_dir", &self.state_dir)
            .field("kubeconfig", &self.kubeconfig)
            .field("clusters", &self.clusters)
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
}

/// The ports of [`PortPlan::Fixed`], without checking that they are free.
fn fixed_ports(base: u16, clusters: usize) -> Result<Vec<ClusterPorts>> {
    (0..clusters)
        .map(|i| {
            let at = |offset: usize| -> Result<u16> {
                u16::try_from(usize::from(base) + 100 * i + offset)
                    .map_err(|_| Error::Other(format!("port base {base} too high")))
            };
            Ok(ClusterPorts {
                apiserver: at(43)?,
                etcd_client: at(79)?,
                etcd_peer: at(80)?,
                controller_manager: at(57)?,
                scheduler: at(59)?,
                token_webhook: at(62)?,
            })
        })
        .collect()
}

fn pick_ports(plan: PortPlan, clusters: usize) -> Result<Vec<ClusterPorts>> {
    let mut out = Vec::with_capacity(clusters);
    match plan {
        PortPlan::Fixed { base } => {
            out = fixed_ports(base, clusters)?;
            for (i, ports) in out.iter().enumerate() {
                for (port, what) in [
                    (ports.apiserver, "kube-apiserver"),
                    (ports.etcd_client, "etcd"),
                    (ports.etcd_peer, "etcd peer"),
                    (ports.controller_manager, "kube-controller-manager"),
                    (ports.scheduler, "kube-scheduler"),
                    (ports.token_webhook, "token webhook"),
                ] {
                    if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
                        return Err(Error::PortInUse {
                            port,
                            what: format!("{} {what}", cluster_name(i)),
                        });
                    }
                }
            }
        }
        PortPlan::Ephemeral => {
            // Hold every listener until all ports are chosen so none repeats.
            let mut held = Vec::new();
            let mut next = || -> Result<u16> {
                let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .map_err(Error::io("binding an ephemeral port"))?;
                let port = l
                    .local_addr()
                    .map_err(Error::io("reading an ephemeral port"))?
                    .port();
                held.push(l);
                Ok(port)
            };
            for _ in 0..clusters {
                out.push(ClusterPorts {
                    apiserver: next()?,
                    etcd_client: next()?,
                    etcd_peer: next()?,
                    controller_manager: next()?,
                    scheduler: next()?,
                    token_webhook: next()?,
                });
            }
        }
    }
    Ok(out)
}

fn path_arg(flag: &str, path: &Path) -> String {
    format!("--{flag}={}", path.display())
}

fn node_manifest(name: &str, cluster: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels:
    type: kwok
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    tidegate.dev/cluster: {cluster}
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
spec: {{}}
status:
  allocatable:
    cpu: "32"
    memory: 256Gi
    pods: "110"
  capacity:
    cpu: "32"
    memory: 256Gi
    pods: "110"
"#
    )
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(Error::io(format!("resolving {}", path.display())))
}

/// Runs kubectl and returns its standard output.
pub(crate) fn run_kubectl(
    kubectl: &Path,
    kubeconfig: &Path,
    context: &str,
    args: &[&str],
) -> Result<String> {
    let out = Command::new(kubectl)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--context={context}"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(Error::io(format!("running {}", kubectl.display())))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Kubectl {
            args: format!("--context={context} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl Fleet {
    /// Starts a fleet and returns once every API server answers `/readyz`
    /// and every fake Node is Ready. Blocks (call it from
    /// `tokio::task::spawn_blocking` in async code).
    pub fn start(options: FleetOptions) -> Result<Fleet> {
        let began = Instant::now();
        if options.clusters == 0 {
            return Err(Error::Other("a fleet needs at least one cluster".into()));
        }
        let bins = match options.binaries.clone() {
            Some(b) => {
                b.check()?;
                b
            }
            None => Binaries::locate()?,
        };
        let testkit = match options.testkit_binary.clone() {
            Some(path) => path,
            None => testkit_binary()?,
        };
        let (state_dir, temp) = match &options.state_dir {
            Some(dir) => {
                let dir = absolute(dir)?;
                let running: Vec<String> = process::read_pids(&dir)
                    .into_iter()
                    .filter(|(pid, _)| process::is_ours(*pid, &dir))
                    .map(|(_, name)| name)
                    .collect();
                if !running.is_empty() {
                    return Err(Error::Other(format!(
                        "clusters of {} are still running ({}): run `tidegate-testkit down` first",
                        dir.display(),
                        running.join(", ")
                    )));
                }
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .map_err(Error::io(format!("removing old state {}", dir.display())))?;
                }
                mkdir(&dir)?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("tidegate-testkit-")
                    .tempdir()
                    .map_err(Error::io("creating a temporary state directory"))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let ports = pick_ports(options.ports, options.clusters)?;
        let kubeconfig = state_dir.join("kubeconfig");
        let mut fleet = Fleet {
            state_dir: state_dir.clone(),
            kubeconfig: kubeconfig.clone(),
            clusters: Vec::new(),
            kubectl: bins.kubectl.clone(),
            children: Vec::new(),
            watchdog: None,
            temp,
            owned: true,
            startup: Duration::ZERO,
        };
        if options.watchdog {
            let cleanup = fleet.temp.is_some() && !keep_state();
            fleet.watchdog = Some(process::spawn_watchdog(
                std::process::id(),
                &state_dir,
                cleanup,
            )?);
        }
        // From here on, Drop stops whatever was started if anything fails.
        fleet.boot(&options, &bins, &testkit, &ports)?;
        fleet.startup = began.elapsed();
        fleet.write_state(options.etcd)?;
        tracing::info!(
            seconds = fleet.startup.as_secs_f64(),
            kubeconfig = %fleet.kubeconfig.display(),
            "fleet ready"
        );
        Ok(fleet)
    }

    fn boot(
        &mut self,
        options: &FleetOptions,
        bins: &Binaries,
        testkit: &Path,
        ports: &[ClusterPorts],
    ) -> Result<()> {
        let state_dir = self.state_dir.clone();
        let stages = state_dir.join("kwok-stages.yaml");
        std::fs::write(&stages, KWOK_STAGES)
            .map_err(Error::io(format!("writing {}", stages.display())))?;

        // Certificates and kubeconfigs.
        let mut pkis = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let name = cluster_name(i);
            let dir = state_dir.join(&name);
            mkdir(&dir.join("logs"))?;
            let pki = pki::generate(&dir.join("pki"), &name)?;
            let server = format!("https://127.0.0.1:{}", p.apiserver);
            for (file, user, cert, key) in [
                (
                    "controller-manager.kubeconfig",
                    "controller-manager",
                    &pki.controller_manager_cert,
                    &pki.controller_manager_key,
                ),
                (
                    "scheduler.kubeconfig",
                    "scheduler",
                    &pki.scheduler_cert,
                    &pki.scheduler_key,
                ),
                ("kwok.kubeconfig", "admin", &pki.admin_cert, &pki.admin_key),
            ] {
                kubeconfig::write(
                    &dir.join(file),
                    &[Entry {
                        context: &name,
                        server: &server,
                        ca: &pki.ca_cert,
                        client: Some((cert, key)),
                        user,
                    }],
                )?;
            }
            // The API server's way to its token webhook (no client credentials:
            // the webhook only answers whether a token is valid).
            kubeconfig::write(
                &dir.join("token-webhook.kubeconfig"),
                &[Entry {
                    context: &name,
                    server: &format!("https://127.0.0.1:{}{TOKEN_WEBHOOK_PATH}", p.token_webhook),
                    ca: &pki.ca_cert,
                    client: None,
                    user: "kube-apiserver",
                }],
            )?;
            let node = format!("kwok-{name}");
            let node_yaml = dir.join("node.yaml");
            std::fs::write(&node_yaml, node_manifest(&node, &name))
                .map_err(Error::io(format!("writing {}", node_yaml.display())))?;
            self.clusters.push(ClusterInfo {
                context: name,
                server,
                ports: *p,
                node,
            });
            pkis.push(pki);
        }
        let servers: Vec<String> = self.clusters.iter().map(|c| c.server.clone()).collect();
        let entries: Vec<Entry<'_>> = self
            .clusters
            .iter()
            .zip(&pkis)
            .zip(&servers)
            .map(|((c, pki), server)| Entry {
                context: &c.context,
                server,
                ca: &pki.ca_cert,
                client: Some((&pki.admin_cert, &pki.admin_key)),
                user: "admin",
            })
            .collect();
        kubeconfig::write(&self.kubeconfig, &entries)?;

        // etcd.
        let etcd_args = |name: &str, data: &Path, p: &ClusterPorts| -> Vec<String> {
            vec![
                format!("--name={name}"),
                path_arg("data-dir", data),
                format!("--listen-client-urls=http://127.0.0.1:{}", p.etcd_client),
                format!("--advertise-client-urls=http://127.0.0.1:{}", p.etcd_client),
                format!("--listen-peer-urls=http://127.0.0.1:{}", p.etcd_peer),
                format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                    p.etcd_peer
                ),
                format!("--initial-cluster={name}=http://127.0.0.1:{}", p.etcd_peer),
                // Test data: no fsync, small and quiet.
                "--unsafe-no-fsync=true".into(),
                "--snapshot-count=10000".into(),
                "--quota-backend-bytes=1073741824".into(),
                "--auto-compaction-mode=periodic".into(),
                "--auto-compaction-retention=5m".into(),
                "--log-level=warn".into(),
            ]
        };
        // What the API servers call, by name and port: etcd, token webhooks.
        let mut backends = Vec::new();
        match options.etcd {
            EtcdMode::Shared => {
                let dir = state_dir.join("etcd");
                let p = ports[0];
                let proc = process::spawn(
                    &state_dir,
                    "etcd",
                    &bins.etcd,
                    &etcd_args("tidegate-shared", &dir.join("data"), &p),
                    &dir.join("etcd.log"),
                )?;
                self.children.push(proc);
                backends.push(("etcd".to_string(), p.etcd_client));
            }
            EtcdMode::PerCluster => {
                for c in &self.clusters {
                    let dir = state_dir.join(&c.context);
                    let proc = process::spawn(
                        &state_dir,
                        &format!("{}/etcd", c.context),
                        &bins.etcd,
                        &etcd_args(&c.context, &dir.join("etcd-data"), &c.ports),
                        &dir.join("logs").join("etcd.log"),
                    )?;
                    self.children.push(proc);
                    backends.push((format!("{}/etcd", c.context), c.ports.etcd_client));
                }
            }
        }
        // Token webhooks (ready in milliseconds; waited for with etcd).
        for (c, pki) in self.clusters.clone().iter().zip(&pkis) {
            let name = format!("{}/token-webhook", c.context);
            let args = vec![
                "token-webhook".to_string(),
                format!("--listen=127.0.0.1:{}", c.ports.token_webhook),
                path_arg("cert", &pki.token_webhook_cert),
                path_arg("key", &pki.token_webhook_key),
                format!("--cluster-id={}", c.context),
            ];
            let log = state_dir
                .join(&c.context)
                .join("logs")
                .join("token-webhook.log");
            let proc = process::spawn(&state_dir, &name, testkit, &args, &log)?;
            self.children.push(proc);
            backends.push((name, c.ports.token_webhook));
        }
        for (name, port) in &backends {
            self.wait_until(name, Duration::from_secs(60), || {
                TcpStream::connect_timeout(
                    &SocketAddr::from((Ipv4Addr::LOCALHOST, *port)),
                    Duration::from_millis(500),
                )
                .is_ok()
            })?;
        }

        // API servers, staggered and at most `max_starting` starting at
        // once: their start is CPU-heavy.
        let shared_etcd = options.etcd == EtcdMode::Shared;
        let apiserver_args = |c: &ClusterInfo, pki: &pki::Pki| -> Result<Vec<String>> {
            let dir = state_dir.join(&c.context);
            let etcd_port = if shared_etcd {
                ports[0].etcd_client
            } else {
                c.ports.etcd_client
            };
            let mut args = vec![
                format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={}", c.ports.apiserver),
                path_arg("tls-cert-file", &pki.apiserver_cert),
                path_arg("tls-private-key-file", &pki.apiserver_key),
                path_arg("client-ca-file", &pki.ca_cert),
                "--authorization-mode=RBAC".into(),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                path_arg("service-account-key-file", &pki.sa_pub),
                path_arg("service-account-signing-key-file", &pki.sa_key),
                "--service-cluster-ip-range=10.96.0.0/16".into(),
                // The `kubernetes` Service's endpoints may not be a loopback
                // address; nothing in these clusters needs them.
                "--endpoint-reconciler-type=none".into(),
                "--allow-privileged=true".into(),
                // It taints new Nodes not-ready until the node lifecycle
                // controller (not run here) clears it; kwok Nodes are Ready.
                "--disable-admission-plugins=TaintNodesByCondition".into(),
                "--profiling=false".into(),
                path_arg("cert-dir", &dir.join("pki")),
            ];
            if shared_etcd {
                args.push(format!("--etcd-prefix=/{}/registry", c.context));
            }
            // Static test tokens (crate::TEST_BEARER_TOKENS) for cloud-access tests.
            let tokens_file = dir.join("pki").join("tokens.csv");
            let tokens: String = crate::TEST_BEARER_TOKENS
                .iter()
                .map(|t| format!("{t},tidegate-e2e,tidegate-e2e,\"system:masters\"\n"))
                .collect();
            std::fs::write(&tokens_file, tokens)
                .map_err(Error::io(format!("writing {}", tokens_file.display())))?;
            args.push(path_arg("token-auth-file", &tokens_file));
            // EKS tokens, checked by the cluster's token webhook (crate::webhook).
            args.extend([
                path_arg(
                    "authentication-token-webhook-config-file",
                    &dir.join("token-webhook.kubeconfig"),
                ),
                "--authentication-token-webhook-version=v1".into(),
                format!("--authentication-token-webhook-cache-ttl={TOKEN_WEBHOOK_CACHE_TTL}"),
            ]);
            Ok(args)
        };
        let clusters = self.clusters.clone();
        let spawn_apiserver = |i: usize| -> Result<Proc> {
            let c = &clusters[i];
            let dir = state_dir.join(&c.context);
            process::spawn(
                &state_dir,
                &format!("{}/kube-apiserver", c.context),
                &bins.kube_apiserver,
                &apiserver_args(c, &pkis[i])?,
                &dir.join("logs").join("kube-apiserver.log"),
            )
        };
        self.start_apiservers(options, &clusters, spawn_apiserver)?;
        let (kubectl, kubeconfig) = (self.kubectl.clone(), self.kubeconfig.clone());

        // Controller managers, schedulers, kwok: `max_starting` clusters'
        // at a time, the next group once these serve (their start, with
        // its first LISTs, is CPU-heavy too).
        let group = options.max_starting.max(1);
        for (i, (c, pki)) in self.clusters.clone().iter().zip(&pkis).enumerate() {
            if i > 0 && i % group == 0 {
                for c in &self.clusters.clone()[i - group..i] {
                    self.wait_serving(c, options.ready_timeout)?;
                }
            }
            let dir = state_dir.join(&c.context);
            let logs = dir.join("logs");
            let kcm = vec![
                path_arg("kubeconfig", &dir.join("controller-manager.kubeconfig")),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", c.ports.controller_manager),
                path_arg("cert-dir", &dir.join("pki")),
                "--leader-elect=false".into(),
                format!("--controllers={CONTROLLERS}"),
                // Each controller acts as its own service account, bound to
                // its bootstrap RBAC role (as in kubeadm clusters).
                "--use-service-account-credentials=true".into(),
                path_arg("service-account-private-key-file", &pki.sa_key),
                path_arg("root-ca-file", &pki.ca_cert),
                format!("--cluster-name={}", c.context),
                "--profiling=false".into(),
            ];
            let proc = process::spawn(
                &state_dir,
                &format!("{}/kube-controller-manager", c.context),
                &bins.kube_controller_manager,
                &kcm,
                &logs.join("kube-controller-manager.log"),
            )?;
            self.children.push(proc);
            let scheduler = vec![
                path_arg("kubeconfig", &dir.join("scheduler.kubeconfig")),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", c.ports.scheduler),
                path_arg("cert-dir", &dir.join("pki")),
                "--leader-elect=false".into(),
                "--profiling=false".into(),
            ];
            let proc = process::spawn(
                &state_dir,
                &format!("{}/kube-scheduler", c.context),
                &bins.kube_scheduler,
                &scheduler,
                &logs.join("kube-scheduler.log"),
            )?;
            self.children.push(proc);
            let kwok = vec![
                path_arg("kubeconfig", &dir.join("kwok.kubeconfig")),
                path_arg("config", &stages),
                "--manage-all-nodes=true".into(),
                "--node-port=0".into(),
                "--cidr=10.244.0.0/16".into(),
            ];
            let proc = process::spawn(
                &state_dir,
                &format!("{}/kwok", c.context),
                &bins.kwok,
                &kwok,
                &logs.join("kwok.log"),
            )?;
            self.children.push(proc);
        }

        // The controller managers and schedulers serve (TCP is enough: their
        // health endpoints need a client certificate of theirs), and the
        // service account controller has made `default/default`.
        for c in self.clusters.clone() {
            self.wait_serving(&c, options.ready_timeout)?;
            let what = format!("{} serviceaccount default/default", c.context);
            self.wait_until(&what, options.ready_timeout, || {
                run_kubectl(
                    &kubectl,
                    &kubeconfig,
                    &c.context,
                    &["get", "serviceaccount", "default", "--namespace=default"],
                )
                .is_ok()
            })?;
        }

        // One fake Node per cluster, Ready once kwok has initialised it.
        for c in self.clusters.clone() {
            let node_yaml = state_dir.join(&c.context).join("node.yaml");
            let file = node_yaml.to_string_lossy().into_owned();
            run_kubectl(
                &self.kubectl,
                &self.kubeconfig,
                &c.context,
                &["apply", "-f", &file],
            )?;
        }
        for c in self.clusters.clone() {
            let what = format!("{} node {} Ready", c.context, c.node);
            let jsonpath = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
            let node = format!("node/{}", c.node);
            self.wait_until(&what, options.ready_timeout, || {
                run_kubectl(
                    &kubectl,
                    &kubeconfig,
                    &c.context,
                    &["get", &node, "-o", jsonpath],
                )
                .is_ok_and(|out| out.trim() == "True")
            })?;
        }
        Ok(())
    }

    /// Waits until `c`'s controller manager and scheduler accept TCP
    /// connections (their health endpoints need a client certificate of
    /// theirs).
    fn wait_serving(&mut self, c: &ClusterInfo, timeout: Duration) -> Result<()> {
        for (what, port) in [
            ("kube-controller-manager", c.ports.controller_manager),
            ("kube-scheduler", c.ports.scheduler),
        ] {
            let what = format!("{} {what} on port {port}", c.context);
            self.wait_until(&what, timeout, || {
                TcpStream::connect_timeout(
                    &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                    Duration::from_millis(500),
                )
                .is_ok()
            })?;
        }
        Ok(())
    }

    /// Starts the API servers `stagger` apart with at most
    /// `options.max_starting` of them not yet answering `/readyz`; the next
    /// starts when one is ready. One that exits while starting (its
    /// post-start hooks time out against a busy etcd) is started once more;
    /// a failure says which clusters were ready, starting and not started.
    fn start_apiservers(
        &mut self,
        options: &FleetOptions,
        clusters: &[ClusterInfo],
        spawn: impl Fn(usize) -> Result<Proc>,
    ) -> Result<()> {
        let limit = options.max_starting.max(1);
        let (kubectl, kubeconfig) = (self.kubectl.clone(), self.kubeconfig.clone());
        // (cluster index, started at, restarts)
        let mut starting: Vec<(usize, Instant, u32)> = Vec::new();
        let mut ready = 0;
        let mut next = 0;
        let summary = |ready: usize, starting: &[(usize, Instant, u32)], next: usize| {
            let names = |idx: &mut dyn Iterator<Item = usize>| -> String {
                let list: Vec<&str> = idx.map(|i| clusters[i].context.as_str()).collect();
                if list.is_empty() {
                    "none".into()
                } else {
                    list.join(", ")
                }
            };
            format!(
                "{ready} of {} API servers ready; starting: {}; not started: {}",
                clusters.len(),
                names(&mut starting.iter().map(|s| s.0)),
                names(&mut (next..clusters.len()))
            )
        };
        loop {
            while starting.len() < limit && next < clusters.len() {
                if next > 0 {
                    std::thread::sleep(options.stagger);
                }
                self.children.push(spawn(next)?);
                starting.push((next, Instant::now(), 0));
                next += 1;
            }
            if starting.is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
            let mut k = 0;
            while k < starting.len() {
                let (i, _, restarts) = starting[k];
                let name = format!("{}/kube-apiserver", clusters[i].context);
                let exited = self
                    .children
                    .iter_mut()
                    .rposition(|p| p.record.name == name)
                    .and_then(|pos| match self.children[pos].child.try_wait() {
                        Ok(Some(status)) => Some((pos, status)),
                        _ => None,
                    });
                if let Some((pos, status)) = exited {
                    let proc = self.children.remove(pos);
                    if restarts > 0 {
                        return Err(Error::Other(format!(
                            "{name} exited twice while starting ({status}); {}; last lines of {}:\n{}",
                            summary(ready, &starting, next),
                            proc.record.log.display(),
                            process::tail(&proc.record.log, 30)
                        )));
                    }
                    tracing::warn!(%name, %status, "exited while starting; starting it again");
                    self.children.push(spawn(i)?);
                    starting[k] = (i, Instant::now(), restarts + 1);
                }
                k += 1;
            }
            if let Err(e) = self.check_children() {
                return Err(Error::Other(format!(
                    "{e}\n({})",
                    summary(ready, &starting, next)
                )));
            }
            let mut k = 0;
            while k < starting.len() {
                let (i, since, _) = starting[k];
                let context = &clusters[i].context;
                let up = run_kubectl(
                    &kubectl,
                    &kubeconfig,
                    context,
                    &["get", "--raw=/readyz", "--request-timeout=5s"],
                )
                .is_ok();
                if up {
                    starting.remove(k);
                    ready += 1;
                    continue;
                }
                if since.elapsed() >= options.ready_timeout {
                    return Err(Error::Timeout {
                        what: format!("{context} /readyz ({})", summary(ready, &starting, next)),
                        seconds: options.ready_timeout.as_secs(),
                    });
                }
                k += 1;
            }
        }
    }

    /// Polls `ready` every 250 ms until it holds, failing if one of the
    /// fleet's processes exits or `timeout` passes.
    fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_children()?;
            if ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Fails if an owned process has exited.
    fn check_children(&mut self) -> Result<()> {
        for p in &mut self.children {
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(Error::ProcessExited {
                    name: p.record.name.clone(),
                    status: status.to_string(),
                    log: p.record.log.clone(),
                    tail: process::tail(&p.record.log, 30),
                });
            }
        }
        Ok(())
    }

    fn write_state(&self, etcd_mode: EtcdMode) -> Result<()> {
        let state = FleetState {
            kubernetes_version: KUBERNETES_VERSION.into(),
            etcd_version: ETCD_VERSION.into(),
            kwok_version: KWOK_VERSION.into(),
            etcd_mode,
            kubeconfig: self.kubeconfig.clone(),
            clusters: self.clusters.clone(),
            processes: self.children.iter().map(|p| p.record.clone()).collect(),
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            startup_seconds: self.startup.as_secs_f64(),
        };
        let path = self.state_dir.join("fleet.json");
        let text = serde_json::to_string_pretty(&state).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, text).map_err(Error::io(format!("writing {}", path.display())))
    }

    /// Attaches to running clusters through their kubeconfig. Cluster
    /// details come from `fleet.json` beside it when present (as written by
    /// `up`), otherwise from the kubeconfig's contexts. The fleet is not
    /// owned: dropping it stops nothing.
    pub fn attach(kubeconfig: &Path) -> Result<Fleet> {
        let kubeconfig = absolute(kubeconfig)?;
        let state_dir = kubeconfig
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let kubectl = Binaries::locate()
            .map(|b| b.kubectl)
            .unwrap_or_else(|_| PathBuf::from("kubectl"));
        let state_file = state_dir.join("fleet.json");
        let clusters = if state_file.is_file() {
            let text = std::fs::read_to_string(&state_file)
                .map_err(Error::io(format!("reading {}", state_file.display())))?;
            let state: FleetState = serde_json::from_str(&text).map_err(|source| Error::State {
                path: state_file.clone(),
                source,
            })?;
            state.clusters
        } else {
            let out = Command::new(&kubectl)
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args(["config", "get-contexts", "-o", "name"])
                .output()
                .map_err(Error::io(format!("running {}", kubectl.display())))?;
            if !out.status.success() {
                return Err(Error::Kubectl {
                    args: "config get-contexts".into(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .map(|context| ClusterInfo {
                    context: context.to_string(),
                    server: String::new(),
                    ports: ClusterPorts {
                        apiserver: 0,
                        etcd_client: 0,
                        etcd_peer: 0,
                        controller_manager: 0,
                        scheduler: 0,
                        token_webhook: 0,
                    },
                    node: format!("kwok-{context}"),
                })
                .collect()
        };
        Ok(Fleet {
            state_dir,
            kubeconfig,
            clusters,
            kubectl,
            children: Vec::new(),
            watchdog: None,
            temp: None,
            owned: false,
            startup: Duration::ZERO,
        })
    }

    /// The kubeconfig with one context per cluster (admin credentials).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The clusters, in order.
    pub fn clusters(&self) -> &[ClusterInfo] {
        &self.clusters
    }

    /// The cluster whose context is `context`.
    pub fn cluster(&self, context: &str) -> Option<&ClusterInfo> {
        self.clusters.iter().find(|c| c.context == context)
    }

    /// The kubeconfig contexts, in order.
    pub fn contexts(&self) -> Vec<&str> {
        self.clusters.iter().map(|c| c.context.as_str()).collect()
    }

    /// How long [`Fleet::start`] took (zero for an attached fleet).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Whether this process started the clusters (and stops them on drop).
    pub fn is_owned(&self) -> bool {
        self.owned
    }

    /// Path of the kubectl binary used by the fleet.
    pub fn kubectl_path(&self) -> &Path {
        &self.kubectl
    }

    /// Runs `kubectl --kubeconfig=<fleet> --context=<context> args...` and
    /// returns its standard output.
    pub fn kubectl(&self, context: &str, args: &[&str]) -> Result<String> {
        run_kubectl(&self.kubectl, &self.kubeconfig, context, args)
    }

    /// Leaves the processes running when this value is dropped (used by
    /// `up`); stop them later with [`crate::stop_recorded`].
    pub fn detach(mut self) -> PathBuf {
        self.owned = false;
        self.children.clear();
        if let Some(temp) = self.temp.take() {
            let _ = temp.keep();
        }
        self.kubeconfig.clone()
    }

    /// Stops every owned process (SIGTERM, then SIGKILL after 10 s) and
    /// removes a temporary state directory (unless `TIDEGATE_TEST_KEEP_STATE`
    /// is set). Does nothing for an attached fleet.
    pub fn stop(&mut self) {
        if !self.owned {
            return;
        }
        self.owned = false;
        process::stop_children(&mut self.children, Duration::from_secs(10));
        let _ = std::fs::remove_file(self.state_dir.join("pids"));
        if let Some(mut watchdog) = self.watchdog.take() {
            if let Some(pid) = i32::try_from(watchdog.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = watchdog.wait();
        }
        if let Some(temp) = self.temp.take()
            && keep_state()
        {
            let dir = temp.keep();
            tracing::info!(state = %dir.display(), "kept the test fleet's state");
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

fn keep_state() -> bool {
    std::env::var(ENV_TEST_KEEP_STATE).is_ok_and(|v| !v.is_empty() && v != "0")
}

static SHARED: tokio::sync::OnceCell<Fleet> = tokio::sync::OnceCell::const_new();

/// The fleet shared by every test of this process: the clusters named by
/// `TIDEGATE_TEST_KUBECONFIG` when it is set, otherwise a fleet of
/// `TIDEGATE_TEST_CLUSTERS` (default 3) clusters started on first use, with
/// ephemeral ports and a temporary state directory, and stopped by its
/// watchdog when the process exits.
///
/// Build kube clients per test (a client is bound to the runtime that made
/// it, and each `#[tokio::test]` has its own).
pub async fn shared_fleet() -> Result<&'static Fleet> {
    SHARED
        .get_or_try_init(|| async {
            if let Some(path) = std::env::var_os(ENV_TEST_KUBECONFIG).filter(|v| !v.is_empty()) {
                return Fleet::attach(Path::new(&path));
            }
            let clusters = match std::env::var(ENV_TEST_CLUSTERS) {
                Ok(n) => n
                    .parse()
                    .map_err(|_| Error::Other(format!("{ENV_TEST_CLUSTERS}={n}: not a number")))?,
                Err(_) => 3,
            };
            tokio::task::spawn_blocking(move || {
                Fleet::start(FleetOptions {
                    clusters,
                    ..FleetOptions::default()
                })
            })
            .await
            .map_err(|e| Error::Other(format!("starting the fleet: {e}")))?
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(cluster_name(0), "eks-us-east-1");
        assert_eq!(cluster_name(1), "aks-westeurope");
        assert_eq!(cluster_name(2), "gke-us-central1");
        assert_eq!(cluster_name(3), "kind-4");
    }

    #[test]
    fn fixed_ports_mirror_the_usual_ones() {
        // Not pick_ports: whether these ports are free depends on what else
        // runs (the ephemeral ports of another fleet, say).
        let ports = fixed_ports(36400, 2).expect("test step");
        assert_eq!(ports[0].apiserver, 36443);
        assert_eq!(ports[0].etcd_client, 36479);
        assert_eq!(ports[1].apiserver, 36543);
        assert_eq!(ports[1].scheduler, 36559);
        assert_eq!(ports[1].token_webhook, 36562);
    }

    #[test]
    fn ephemeral_ports_are_distinct() {
        let ports = pick_ports(PortPlan::Ephemeral, 3).expect("test step");
        let mut all: Vec<u16> = ports
            .iter()
            .flat_map(|p| {
                [
                    p.apiserver,
                    p.etcd_client,
                    p.etcd_peer,
                    p.controller_manager,
                    p.scheduler,
                    p.token_webhook,
                ]
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 18);
    }

    #[test]
    fn stages_cover_every_lifecycle_step() {
        for stage in [
            "node-initialize",
            "node-heartbeat",
            "pod-ready",
            "pod-unready",
            "pod-complete",
            "pod-delete",
            "pod-job-failed",
            "pod-crashloop",
            "pod-crashloop-restart",
            "pod-image-pull-fail",
        ] {
            assert!(KWOK_STAGES.contains(&format!("name: {stage}\n")), "{stage}");
        }
        for marker in [
            FAIL_READINESS_LABEL,
            CRASHLOOP_LABEL,
            IMAGE_PULL_FAIL_LABEL,
            JOB_FAIL_LABEL,
            TERMINATION_MESSAGE_ANNOTATION,
            EXIT_CODE_ANNOTATION,
        ] {
            assert!(KWOK_STAGES.contains(marker), "{marker}");
        }
        // Every document parses as a kwok Stage.
        for doc in KWOK_STAGES.split("\n---\n").skip(1) {
            assert!(
                doc.starts_with("apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\n"),
                "{doc}"
            );
        }
    }
}
