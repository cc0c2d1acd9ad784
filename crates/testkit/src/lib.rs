//! Real Kubernetes control planes on loopback for Tidegate's tests and demo.
//!
//! A [`Fleet`] is a set of local clusters (3 by default), each made of real
//! binaries built from Go modules by `tests/cluster/build.sh`:
//!
//! * `etcd` (one per cluster, or one shared by every API server with a
//!   distinct `--etcd-prefix`: see [`EtcdMode`]),
//! * `kube-apiserver` with its own CA, a serving certificate for 127.0.0.1,
//!   RBAC authorization and service-account keys,
//! * `kube-controller-manager` running the deployment, replicaset,
//!   garbage-collector, namespace, serviceaccount, statefulset, daemonset, job
//!   and endpointslice controllers,
//! * `kube-scheduler`,
//! * `kwok`, which simulates the one fake Node of each cluster and moves pods
//!   through their lifecycle (scheduled pods become Running and Ready, so
//!   Deployments really roll out without kubelets),
//! * a token-review webhook (`tidegate-testkit token-webhook`, see
//!   [`testkit_binary`]) that accepts EKS bearer tokens the way
//!   aws-iam-authenticator and STS do, offline: signed with the fake
//!   [`TEST_AWS_ACCESS_KEY_ID`] / [`TEST_AWS_SECRET_ACCESS_KEY`] for the
//!   cluster id [`ClusterInfo::eks_cluster_id`] (see [`EksTokenVerifier`]).
//!
//! Every process listens on 127.0.0.1 only. The kubeconfig written for a fleet
//! has one context per cluster, named after the example prod environment:
//! `eks-us-east-1`, `aks-westeurope`, `gke-us-central1`, then `kind-4`,
//! `kind-5`... (see [`cluster_name`]).
//!
//! A pod labelled `tidegate.dev/test-fail-readiness: "true"`
//! ([`FAIL_READINESS_LABEL`]) goes Running but never Ready, so a rollout that
//! carries it never completes: use it to simulate a bad release.
//!
//! # In integration tests
//!
//! ```no_run
//! # async fn demo() -> Result<(), tidegate_testkit::Error> {
//! let fleet = tidegate_testkit::shared_fleet().await?;
//! let ns = tidegate_testkit::TestNamespace::create(fleet, "rollout")?;
//! for cluster in fleet.clusters() {
//!     // Build a client for `cluster.context` from `fleet.kubeconfig()`
//!     // and work in `ns.name()`.
//!     let _ = (&cluster.context, ns.name());
//! }
//! # Ok(()) }
//! ```
//!
//! [`shared_fleet`] reuses the clusters named by `TIDEGATE_TEST_KUBECONFIG`
//! when it is set (as written by `tidegate-testkit up`), and otherwise starts
//! a fleet of its own for the test process, in a temporary state directory,
//! with ephemeral ports. That fleet is stopped when the test process exits,
//! whatever the way: a watchdog process kills every recorded process group
//! once the test process is gone (statics are never dropped, and a panic or a
//! `SIGKILL` must not leave clusters behind). A [`Fleet`] started directly
//! with [`Fleet::start`] also stops its processes in `Drop`.
//!
//! # Command line
//!
//! The `tidegate-testkit` binary starts and stops a fleet for people and for
//! `make clusters-up` / `make clusters-down`:
//!
//! ```text
//! tidegate-testkit up [--clusters 3] [--state-dir .tidegate/clusters]
//! tidegate-testkit status
//! tidegate-testkit down [--purge]
//! ```
//!
//! `up` prints the kubeconfig path and returns once every cluster is ready;
//! the processes keep running in their own process groups until `down`.
//!
//! # Environment variables
//!
//! | variable | meaning |
//! |---|---|
//! | `TIDEGATE_TEST_KUBECONFIG` | kubeconfig of an already running fleet (from `up`); [`shared_fleet`] reuses it instead of starting clusters |
//! | `TIDEGATE_CLUSTERS_STATE_DIR` | state directory of `up`/`status`/`down` (default `.tidegate/clusters` under the current directory) |
//! | `TIDEGATE_CLUSTER_BIN_DIR` | one directory holding all six binaries, instead of the build cache |
//! | `TIDEGATE_CACHE_DIR` | root of the build cache (default `${XDG_CACHE_HOME:-$HOME/.cache}/tidegate`), as in `build.sh` |
//! | `TIDEGATE_TEST_CLUSTERS` | number of clusters [`shared_fleet`] starts (default 3) |
//! | `TIDEGATE_TEST_KEEP_STATE` | `1`: keep the temporary state directory of a test fleet (logs) |
//! | `TIDEGATE_TESTKIT_BIN` | the `tidegate-testkit` binary that serves the token webhooks (default: see [`testkit_binary`]) |
//!
//! # State directory layout
//!
//! ```text
//! <state>/
//!   kubeconfig              one context per cluster (admin, O=system:masters)
//!   fleet.json              clusters, ports, processes (read by status/down/reuse)
//!   pids                    "<pid> <cluster>/<component>" per line; each pid leads its process group
//!   kwok-stages.yaml        the kwok stages (see FAIL_READINESS_LABEL)
//!   etcd/                   the shared etcd's data and log (EtcdMode::Shared)
//!   <cluster>/
//!     pki/                  ca, apiserver, token-webhook, admin, controller-manager, scheduler certs and keys; sa.key/sa.pub
//!     *.kubeconfig          kubeconfigs of the controller manager, scheduler, kwok, and of the token webhook (for the API server)
//!     node.yaml             the cluster's fake Node
//!     etcd-data/            etcd data (EtcdMode::PerCluster)
//!     logs/<component>.log  stdout and stderr of each process
//! ```
//!
//! # Binaries
//!
//! [`Binaries::locate`] looks in `TIDEGATE_CLUSTER_BIN_DIR` when set, otherwise
//! in the cache that `tests/cluster/build.sh` fills:
//! `<cache>/k8s/`[`KUBERNETES_VERSION`]`/bin`, `<cache>/etcd/`[`ETCD_VERSION`]`/bin`
//! and `<cache>/kwok/`[`KWOK_VERSION`]`/bin`.

mod bins;
mod eks_auth;
mod error;
mod fleet;
pub mod http;
mod kubeconfig;
mod namespace;
mod pki;
mod process;
mod webhook;

pub use bins::{
    Binaries, ETCD_VERSION, KUBERNETES_VERSION, KWOK_VERSION, cache_dir, testkit_binary,
};
pub use eks_auth::{
    AwsIdentity, EksTokenVerifier, TEST_AWS_ACCESS_KEY_ID, TEST_AWS_ACCOUNT_ID,
    TEST_AWS_SECRET_ACCESS_KEY, TEST_AWS_USER_ARN, TEST_AWS_USER_ID,
};
pub use error::Error;
pub use fleet::{
    CRASHLOOP_LABEL, ClusterInfo, ClusterPorts, DEFAULT_BASE_PORT, EXIT_CODE_ANNOTATION, EtcdMode,
    FAIL_READINESS_LABEL, Fleet, FleetOptions, IMAGE_PULL_FAIL_LABEL, JOB_FAIL_LABEL, PortPlan,
    TERMINATION_MESSAGE_ANNOTATION, cluster_name, default_state_dir, shared_fleet,
};
pub use namespace::TestNamespace;
pub use process::{ProcessRecord, stop_recorded};
pub use webhook::{TOKEN_WEBHOOK_PATH, TokenWebhookOptions, run_token_webhook, token_review};

/// The kwok stages every cluster runs (node initialize and heartbeat, pod
/// ready, pod unready for [`FAIL_READINESS_LABEL`], pod complete, pod delete,
/// and the failures of [`CRASHLOOP_LABEL`], [`IMAGE_PULL_FAIL_LABEL`] and
/// [`JOB_FAIL_LABEL`]).
pub const KWOK_STAGES: &str = include_str!("../kwok/stages.yaml");

/// Static bearer tokens every API server of a fleet accepts (`--token-auth-file`;
/// user `tidegate-e2e`, group `system:masters`), for tests of token-based
/// (cloud) access. Loopback test clusters only: never reuse this anywhere else.
pub const TEST_BEARER_TOKENS: [&str; 3] = [
    "tidegate-e2e-token-1",
    "tidegate-e2e-token-2",
    "tidegate-e2e-token-3",
];

/// Environment variable naming the kubeconfig of running clusters to reuse.
pub const ENV_TEST_KUBECONFIG: &str = "TIDEGATE_TEST_KUBECONFIG";
/// Environment variable naming the state directory of `up`/`status`/`down`.
pub const ENV_STATE_DIR: &str = "TIDEGATE_CLUSTERS_STATE_DIR";
/// Environment variable naming one directory that holds every binary.
pub const ENV_BIN_DIR: &str = "TIDEGATE_CLUSTER_BIN_DIR";
/// Environment variable naming the root of the build cache.
pub const ENV_CACHE_DIR: &str = "TIDEGATE_CACHE_DIR";
/// Environment variable naming the `tidegate-testkit` binary that serves the
/// token webhooks (default: found beside the running executable, see
/// [`testkit_binary`]).
pub const ENV_TESTKIT_BIN: &str = "TIDEGATE_TESTKIT_BIN";
/// Environment variable with the number of clusters a test fleet starts.
pub const ENV_TEST_CLUSTERS: &str = "TIDEGATE_TEST_CLUSTERS";
/// Environment variable that keeps the temporary state of a test fleet.
pub const ENV_TEST_KEEP_STATE: &str = "TIDEGATE_TEST_KEEP_STATE";

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
