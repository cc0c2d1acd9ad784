//! The environment file: which clusters, which apps, how to roll out.
//!
//! One YAML file per environment under `environments/`. The format is
//! documented field by field in `docs/environments.md`; unknown fields are
//! errors so typos never pass silently.

mod analysis;
mod clusters;
mod located;
mod parse;
mod template;
mod values;
mod windows;

pub use analysis::{Analysis, CLUSTER_PLACEHOLDER, PrometheusSource};
pub use clusters::{Cloud, ClusterList, DEFAULT_WAVE_TAG, Discover, DiscoverEntry, FoundCluster};
pub use located::Located;
pub use parse::{API_VERSION, KIND};
pub use template::{
    ChartOrigin, DEFAULT_TEMPLATE_TIMEOUT, FactsNeeded, HelmCapabilities, HelmOverlay, HelmSource,
    KustomizeSource, is_sha256_digest,
};
pub use windows::{Closed, ClusterSchedule, MaintenanceWindow, Period, WindowPolicy};

use crate::{duration::GoDuration, intorpercent::IntOrPercent, selector::LabelSelector};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A parsed environment file. API boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    /// Always `tidegate.dev/v1alpha1`.
    pub api_version: String,
    /// Always `Environment`.
    pub kind: String,
    /// Name and labels.
    pub metadata: Metadata,
    /// What the environment contains.
    pub spec: EnvironmentSpec,
}

/// `metadata` of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The environment's name; must equal the file's base name.
    pub name: String,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `spec` of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// Where the manifests live.
    pub source: Source,
    /// The clusters of this environment, and `discover:` entries until
    /// they are expanded ([`Environment::add_discovered`]).
    pub clusters: ClusterList,
    /// The applications deployed to every cluster.
    pub apps: Vec<Located<App>>,
    /// Fleet rollout policy.
    #[serde(default)]
    pub rollout: Rollout,
    /// Blue-green switches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blue_green: Vec<Located<BlueGreen>>,
    /// Sync options.
    #[serde(default)]
    pub sync: SyncOptions,
    /// Custom health checks and health settings.
    #[serde(default, skip_serializing_if = "HealthOptions::is_unset")]
    pub health: HealthOptions,
}

/// Where the desired state is read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// `.` (the repository holding this environment file), a local path,
    /// `file://`, `https://`, `ssh://` or `user@host:path`.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Branch, tag or full commit SHA.
    #[serde(rename = "ref", default = "default_ref")]
    pub git_ref: String,
    /// Directory of the manifests inside the repository (with its line,
    /// for messages).
    #[serde(default = "default_manifests_path")]
    pub path: Located<String>,
}

fn default_ref() -> String {
    "HEAD".into()
}

fn default_manifests_path() -> Located<String> {
    Located::new("manifests".into())
}

/// One cluster of the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// Unique name in the environment.
    pub name: String,
    /// How Tidegate reaches the cluster.
    pub provider: Provider,
    /// The kubeconfig context used when access is forced to kubeconfig
    /// (`--access kubeconfig` / `TIDEGATE_ACCESS=kubeconfig`), e.g. for local runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<KubeconfigRef>,
    /// Labels used by overlays and wave selection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Rollout wave; lower waves go first. Clusters without one are
    /// auto-partitioned after the explicit waves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<u32>,
}

/// How a cluster is reached. Exactly one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Provider {
    /// A kubeconfig context.
    Kubeconfig(KubeconfigRef),
    /// Amazon EKS.
    Eks(EksCluster),
    /// Azure Kubernetes Service.
    Aks(AksCluster),
    /// Google Kubernetes Engine.
    Gke(GkeCluster),
}

impl Provider {
    /// `kubeconfig`, `eks`, `aks` or `gke`.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Kubeconfig(_) => "kubeconfig",
            Provider::Eks(_) => "eks",
            Provider::Aks(_) => "aks",
            Provider::Gke(_) => "gke",
        }
    }

    /// Which cloud cluster this is, e.g. `eks/us-east-1/prod` (resource
    /// groups are case-insensitive in Azure); `None` for kubeconfig contexts.
    pub fn cloud_id(&self) -> Option<String> {
        match self {
            Provider::Kubeconfig(_) => None,
            Provider::Eks(e) => Some(format!("eks/{}/{}", e.region, e.cluster_name)),
            Provider::Aks(a) => Some(format!(
                "aks/{}/{}/{}",
                a.subscription_id,
                a.resource_group.to_lowercase(),
                a.cluster_name
            )),
            Provider::Gke(g) => Some(format!(
                "gke/{}/{}/{}",
                g.project, g.location, g.cluster_name
            )),
        }
    }
}

/// A context in a kubeconfig file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeconfigRef {
    /// Context name; defaults to the cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Never used: kubeconfig files come from the operator (`--kubeconfig`,
    /// `$KUBECONFIG`, `~/.kube/config`), never from repository content, whose
    /// `exec` plugins would run anywhere `tidegate` reads the commit. Read
    /// only so that [`Environment::parse`] refuses it at its line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Located<String>>,
}

/// An EKS cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EksCluster {
    /// AWS region, e.g. `us-east-1`.
    pub region: String,
    /// EKS cluster name.
    pub cluster_name: String,
    /// IAM role to assume before calling EKS and signing the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// An AKS cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AksCluster {
    /// Azure subscription id.
    pub subscription_id: String,
    /// Resource group of the cluster.
    pub resource_group: String,
    /// AKS cluster name.
    pub cluster_name: String,
    /// Which Entra credential obtains the token.
    #[serde(default)]
    pub credential: AzureCredential,
}

/// The explicit Azure credential used for an AKS cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AzureCredential {
    /// Workload identity (federated token file).
    #[default]
    WorkloadIdentity,
    /// Managed identity from the instance metadata service.
    ManagedIdentity,
    /// Client id and secret from the environment.
    ClientSecret,
}

/// A GKE cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GkeCluster {
    /// Google Cloud project id.
    pub project: String,
    /// Region or zone, e.g. `us-central1`.
    pub location: String,
    /// GKE cluster name.
    pub cluster_name: String,
}

impl Cluster {
    /// The kubeconfig context to use for this cluster: the `provider.kubeconfig`
    /// or `kubeconfig` context when set, otherwise the cluster's name.
    pub fn kubeconfig_context(&self) -> &str {
        let explicit = match &self.provider {
            Provider::Kubeconfig(k) => k.context.as_deref(),
            _ => None,
        };
        explicit
            .or_else(|| self.kubeconfig.as_ref().and_then(|k| k.context.as_deref()))
            .unwrap_or(&self.name)
    }

    /// The cluster's labels plus the implicit `tidegate.dev/cluster` (its
    /// name) and `tidegate.dev/provider` labels that selectors can use.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("tidegate.dev/cluster".into(), self.name.clone());
        labels.insert("tidegate.dev/provider".into(), self.provider.name().into());
        labels
    }
}

/// One application: a directory of manifests plus overlays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct App {
    /// Unique name in the environment.
    pub name: String,
    /// Directory of the app's manifests, relative to `spec.source.path`;
    /// defaults to the app's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Namespace given to namespaced objects that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Overlays, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<Located<Overlay>>,
    /// The source is a Helm chart (rendered with `helm template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<Located<HelmSource>>,
    /// The source is a Kustomize directory (rendered with `kustomize build`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<Located<KustomizeSource>>,
}

impl App {
    /// The manifests directory relative to `spec.source.path`.
    pub fn manifests_dir(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.name)
    }
}

/// Changes applied on top of the base manifests, to every cluster or only to
/// clusters whose labels match `clusterSelector`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Overlay {
    /// Only clusters matching this selector get the overlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<LabelSelector>,
    /// Image overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Located<ImageOverride>>,
    /// Replica overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Located<ReplicaOverride>>,
    /// Patches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Located<Patch>>,
    /// Helm values and cluster facts (Helm apps only), used by `helm template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmOverlay>,
}

/// Replaces the tag, digest or name of every container image named `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageOverride {
    /// Image name as written in the manifests, without tag or digest.
    pub name: String,
    /// New image name (registry/repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// New tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    /// New digest (`sha256:...`); wins over the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Sets `spec.replicas` of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaOverride {
    /// Workload kind; defaults to `Deployment`.
    #[serde(default = "default_replica_kind")]
    pub kind: String,
    /// Workload name.
    pub name: String,
    /// Replica count.
    pub count: u32,
}

fn default_replica_kind() -> String {
    "Deployment".into()
}

/// A patch of the objects matching `target`: exactly one of `merge` or `json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    /// Which objects are patched.
    pub target: PatchTarget,
    /// A JSON merge patch (RFC 7386).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<serde_json::Value>,
    /// A JSON patch (RFC 6902).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
}

/// Selects objects by group, kind, name and namespace; absent parts match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchTarget {
    /// API group (empty for core); any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl PatchTarget {
    /// True when `key` is selected.
    pub fn matches(&self, key: &crate::ObjectKey) -> bool {
        self.group.as_ref().is_none_or(|g| *g == key.group)
            && self.kind.as_ref().is_none_or(|k| *k == key.kind)
            && self.name.as_ref().is_none_or(|n| *n == key.name)
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| key.namespace.as_ref() == Some(n))
    }
}

/// Fleet rollout policy (used by `tidegate sync --env`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// Most clusters in flight (changed, not yet healthy) at once; rounds up.
    #[serde(default = "default_max_surge")]
    pub max_surge: IntOrPercent,
    /// Most clusters unavailable at any moment; rounds down.
    #[serde(default = "default_max_unavailable")]
    pub max_unavailable: IntOrPercent,
    /// How long a cluster may take to become healthy.
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline: GoDuration,
    /// How long a wave must stay healthy before the next starts.
    #[serde(default)]
    pub bake_time: GoDuration,
    /// What happens when a wave fails.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// Per-wave settings such as manual approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Located<WavePolicy>>,
    /// Injected into every Deployment that sets no `spec.strategy` of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_strategy: Option<DeploymentStrategy>,
    /// Maintenance windows: the clusters they select change only while one
    /// of their windows is open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Located<MaintenanceWindow>>,
    /// Freezes (deny windows): the clusters they select never change while
    /// one is on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freezes: Vec<Located<MaintenanceWindow>>,
    /// What a wave does with a cluster whose window is closed.
    #[serde(default, skip_serializing_if = "is_default_window_policy")]
    pub window_policy: WindowPolicy,
    /// Metric analyses run during each wave's bake time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analyses: Vec<Located<Analysis>>,
    /// Where the analyses read each cluster's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Located<PrometheusSource>>,
    /// Failing a changed cluster as soon as its new pods show the release
    /// cannot work (crash loops, images that cannot be pulled), instead of
    /// at `progressDeadline`.
    #[serde(default)]
    pub fail_fast: FailFast,
}

/// `spec.rollout.failFast`: when a changed cluster fails without waiting
/// for `progressDeadline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailFast {
    /// On by default.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long a fatal pod state (CrashLoopBackOff, ImagePullBackOff, ...)
    /// or `ProgressDeadlineExceeded` must last before the cluster fails.
    #[serde(default = "default_fail_fast_grace")]
    pub grace: GoDuration,
}

impl Default for FailFast {
    fn default() -> Self {
        FailFast {
            enabled: true,
            grace: default_fail_fast_grace(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_fail_fast_grace() -> GoDuration {
    GoDuration(std::time::Duration::from_secs(5))
}

fn is_default_window_policy(p: &WindowPolicy) -> bool {
    *p == WindowPolicy::default()
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            max_surge: default_max_surge(),
            max_unavailable: default_max_unavailable(),
            progress_deadline: default_progress_deadline(),
            bake_time: GoDuration::default(),
            failure_policy: FailurePolicy::default(),
            waves: Vec::new(),
            deployment_strategy: None,
            windows: Vec::new(),
            freezes: Vec::new(),
            window_policy: WindowPolicy::default(),
            analyses: Vec::new(),
            prometheus: None,
            fail_fast: FailFast::default(),
        }
    }
}

fn default_max_surge() -> IntOrPercent {
    IntOrPercent::Int(1)
}

fn default_max_unavailable() -> IntOrPercent {
    IntOrPercent::Int(0)
}

fn default_progress_deadline() -> GoDuration {
    GoDuration(std::time::Duration::from_secs(600))
}

/// What a failed wave does to the fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailurePolicy {
    /// Roll every touched cluster back to its last good revision, then halt.
    #[default]
    Rollback,
    /// Stop and leave clusters as they are.
    Halt,
}

/// Settings of one wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WavePolicy {
    /// The wave number these settings apply to.
    pub wave: u32,
    /// Whether someone must run `tidegate approve` before the wave starts.
    #[serde(default)]
    pub approval: Approval,
}

/// Manual approval of a wave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Approval {
    /// The wave starts when the previous one has baked.
    #[default]
    None,
    /// The wave waits for `tidegate approve`.
    Required,
}

/// Workload-level surge limits written into Deployments' `spec.strategy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStrategy {
    /// `spec.strategy.rollingUpdate.maxSurge`.
    pub max_surge: IntOrPercent,
    /// `spec.strategy.rollingUpdate.maxUnavailable`.
    pub max_unavailable: IntOrPercent,
}

/// A blue-green switch of one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlueGreen {
    /// The app (from `spec.apps`).
    pub app: String,
    /// Services whose selector is switched.
    pub services: Vec<String>,
    /// Ingress whose backend flips between `<service>-<colour>` services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<String>,
    /// Selector key that carries the colour.
    #[serde(default = "default_selector_key")]
    pub selector_key: String,
    /// The two colours and their Deployments.
    pub colors: BTreeMap<String, ColorTarget>,
    /// The colour that receives traffic.
    pub active_color: String,
}

fn default_selector_key() -> String {
    "version".into()
}

/// The workload behind one colour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ColorTarget {
    /// The Deployment that runs this colour.
    pub deployment: String,
    /// When set, the colour's Deployment runs this many replicas whatever
    /// its manifest says: `0` is an idle colour scaled down
    /// (`tidegate switch --scale-down-after` writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

/// Sync options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncOptions {
    /// Delete objects removed from Git.
    #[serde(default)]
    pub prune: bool,
    /// Correct drift when it is detected (continuous sync).
    #[serde(default)]
    pub self_heal: bool,
    /// How often the controller reconciles.
    #[serde(default = "default_interval")]
    pub interval: GoDuration,
    /// Differences that are not drift.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<Located<IgnoreDifference>>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            prune: false,
            self_heal: false,
            interval: default_interval(),
            ignore_differences: Vec::new(),
        }
    }
}

fn default_interval() -> GoDuration {
    GoDuration(std::time::Duration::from_secs(180))
}

/// Fields of selected objects that diff ignores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IgnoreDifference {
    /// API group; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind.
    pub kind: String,
    /// Name; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// JSON pointers (RFC 6901) of ignored fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_pointers: Vec<String>,
    /// Field managers whose fields are ignored (e.g. an HPA's `spec.replicas`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields_managers: Vec<String>,
}

/// `spec.health`: custom health checks and health settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthOptions {
    /// Directory in the configuration repository with Lua checks in Argo
    /// CD's layout (`<group>/<kind>/health.lua`, `_` as a wildcard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_path: Option<Located<String>>,
    /// Checks written here; they win over the checks directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Located<HealthCheck>>,
    /// What an Ingress without class and address is; by default `wait` on
    /// GKE clusters, `healthy` elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_without_class: Option<IngressWithoutClass>,
    /// How long a custom resource may have no status before it is Unknown;
    /// by default `spec.rollout.progressDeadline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_grace_period: Option<GoDuration>,
}

impl HealthOptions {
    /// True when nothing is set (built-in rules, provider defaults).
    pub fn is_unset(&self) -> bool {
        *self == HealthOptions::default()
    }
}

/// A custom health check for a group and kind: exactly one of `cel` and `lua`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// API group (`""` for the core group); `*` matches any run of characters.
    pub group: String,
    /// Kind; `*` matches any run of characters.
    pub kind: String,
    /// CEL expressions, as Flux's `healthCheckExprs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<CelHealthCheck>,
    /// A Lua script with Argo CD's contract (`obj` in, `{status, message}` out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lua: Option<Located<String>>,
}

/// CEL expressions over the object's fields (`status`, `spec`, `metadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CelHealthCheck {
    /// True when the object is healthy.
    pub current: Located<String>,
    /// True while the object is being worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<Located<String>>,
    /// True when the object failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Located<String>>,
}

/// What an Ingress with neither a class nor an address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IngressWithoutClass {
    /// Healthy: no controller will serve it.
    Healthy,
    /// Progressing until it gets an address (GKE's built-in controller).
    Wait,
}

impl Environment {
    /// Looks a cluster up by name.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.spec
            .clusters
            .iter()
            .map(|c| &c.value)
            .find(|c| c.name == name)
    }

    /// Looks an app up by name.
    pub fn app(&self, name: &str) -> Option<&App> {
        self.spec
            .apps
            .iter()
            .map(|a| &a.value)
            .find(|a| a.name == name)
    }
}
