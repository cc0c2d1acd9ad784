//! Helm charts and Kustomize directories as app sources.
//!
//! Between loading (`tidegate-source`, which reads the commit) and rendering
//! (`tidegate-render`, which is pure), the apps whose source is `helm:` or
//! `kustomize:` are turned into plain YAML by the real tools, per cluster:
//! `helm template` (the chart directory in the commit, or a chart fetched
//! from a Helm repository or OCI registry and verified by digest) and
//! `kustomize build`. Tidegate's own overlays then apply to their output in
//! render, like to any other manifests.
//!
//! Each run is a child process with a time limit, an output size limit, a
//! clean environment (a private `HOME`, no `HELM_*` of the user's), no
//! network, and the commit's files materialised in a private temporary
//! directory — never the user's work tree. Outputs are cached by everything
//! they depend on (the source tree's Git id, the app's settings, the values
//! and cluster facts of the cluster, the tool binary), so re-rendering an
//! unchanged commit runs nothing.
//!
//! Architecture invariant: this crate does I/O (processes, files, HTTPS) so
//! that `render` does not; every problem becomes a [`Diagnostic`] at the
//! app's line in the environment file, and every app is tried before the
//! problems are returned.

mod cache;
mod chart;
mod helm;
mod kustomize;
mod process;
mod tools;

pub use cache::RenderCache;
pub use chart::{ChartFetcher, ChartRef, FetchError, sha256_digest};
pub use helm::{HelmInputs, split_output};
pub use process::{RunError, RunLimits};
pub use tools::{HELM_VERSION, KUSTOMIZE_VERSION, Tool, default_cache_dir};

use futures::{StreamExt, stream};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
};
use tidegate_core::{
    Diagnostic, Diagnostics,
    environment::{App, ChartOrigin, HelmCapabilities, Located},
    files::{FileContent, SourceFile, Templated},
    paths,
};
use tidegate_source::{Desired, SourceTree, desired::short};
use tracing::{Instrument, debug_span};

/// What clusters reported about themselves for Helm's `.Capabilities`, by
/// cluster name (see [`Templater::expand_with_facts`]).
pub type ClusterFacts = BTreeMap<String, HelmCapabilities>;

/// Default largest output of one `helm template` / `kustomize build`.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 << 20;

/// Renders Helm and Kustomize apps. Cheap to create; holds no processes.
#[derive(Debug, Clone)]
pub struct Templater {
    /// Where `make template-tools` put the tools (`<dir>/helm/<version>/bin`).
    tools_dir: PathBuf,
    cache_dir: PathBuf,
    max_output: usize,
    parallelism: usize,
    fetcher: ChartFetcher,
    cache: RenderCache,
}

/// One distinct run: a chart or kustomization with one set of inputs.
#[derive(Debug, Clone, serde::Serialize)]
enum Job {
    Helm {
        chart: ChartSource,
        /// Replaces the chart's name in Helm's `# Source:` paths.
        prefix: String,
        inputs: Box<HelmInputs>,
    },
    Kustomize {
        dir: String,
        network: bool,
    },
}

#[derive(Debug, Clone, serde::Serialize)]
enum ChartSource {
    /// A directory of the materialised tree.
    Tree(String),
    /// Fetched into the cache.
    Remote {
        repo_url: String,
        chart: String,
        version: String,
        digest: Option<String>,
    },
}

/// A problem of one app: the message and what to do.
type Problem = (String, String);

/// One cluster's job and its time limit, or why there is none.
type ClusterJob = Result<(Job, std::time::Duration), Vec<Diagnostic>>;

/// What one app needs: its distinct jobs and which cluster gets which.
struct AppPlan {
    index: usize,
    name: String,
    line: Option<u64>,
    outputs: Vec<Planned>,
    clusters: BTreeMap<String, usize>,
    problems: Diagnostics,
}

struct Planned {
    job: Job,
    key: String,
    tool: PathBuf,
    timeout: std::time::Duration,
    files: Option<Vec<SourceFile>>,
}

impl Templater {
    /// A templater caching under `cache_dir` (tools, charts, rendered output).
    pub fn new(cache_dir: PathBuf) -> Templater {
        Templater {
            fetcher: ChartFetcher::from_env(&cache_dir),
            cache: RenderCache::new(&cache_dir),
            tools_dir: cache_dir.clone(),
            cache_dir,
            max_output: DEFAULT_MAX_OUTPUT_BYTES,
            parallelism: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }

    /// A templater on Tidegate's cache directory ([`default_cache_dir`]).
    pub fn from_env() -> Templater {
        Templater::new(default_cache_dir())
    }

    /// Keeps fetched charts and rendered output under `dir` instead (the
    /// tools are still looked for where they were).
    pub fn with_cache_dir(mut self, dir: PathBuf) -> Templater {
        self.fetcher = self.fetcher.in_dir(&dir);
        self.cache = RenderCache::new(&dir);
        self.cache_dir = dir;
        self
    }

    /// Looks for the tools under `dir` (`<dir>/helm/<version>/bin/helm`)
    /// before `PATH`, instead of the cache directory.
    pub fn with_tools_dir(mut self, dir: PathBuf) -> Templater {
        self.tools_dir = dir;
        self
    }

    /// Fetches charts trusting the CAs of `ca_pem` too, without credentials
    /// (tests and embedders; the CLI configures this from the environment).
    pub fn with_trusted_ca(mut self, ca_pem: &[u8]) -> Templater {
        self.fetcher = ChartFetcher::new(&self.cache_dir, Ok(Some(ca_pem.to_vec())));
        self
    }

    /// [`Templater::expand`] for callers without a Tokio runtime (or inside
    /// one that must not block): runs on its own thread and runtime.
    pub fn expand_blocking(&self, desired: &mut Desired) {
        self.expand_blocking_with_facts(desired, &ClusterFacts::new());
    }

    /// [`Templater::expand_with_facts`] for callers without a Tokio runtime.
    pub fn expand_blocking_with_facts(&self, desired: &mut Desired, facts: &ClusterFacts) {
        if desired.tree.is_none() {
            return;
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(self.expand_with_facts(desired, facts)),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start a runtime for helm/kustomize")
                    }
                }
            });
        });
    }

    /// Limits the output of each run to `bytes`.
    pub fn with_max_output(mut self, bytes: usize) -> Templater {
        self.max_output = bytes;
        self
    }

    /// Renders every Helm and Kustomize app of `desired` for every cluster
    /// of its environment (expand `discover:` entries first) and stores the
    /// output in its [`tidegate_source::AppSource::templated`]. Problems are
    /// stored there too, so render reports them with everyone else's.
    ///
    /// Helm's `.Capabilities` are what the environment declares
    /// (`kubeVersion`, `apiVersions`), else Helm's built-in defaults: the
    /// offline render. [`Templater::expand_with_facts`] adds what the
    /// clusters report.
    pub async fn expand(&self, desired: &mut Desired) {
        self.expand_with_facts(desired, &ClusterFacts::new()).await;
    }

    /// [`Templater::expand`] with what each cluster reported about itself
    /// (its version and served API versions, by cluster name), used where
    /// the environment declares nothing: declared values win
    /// ([`HelmCapabilities::or_discovered`]). A cluster missing from `facts`
    /// (unreachable, or not asked) renders with the declared values or
    /// Helm's defaults. The facts are part of the render cache key.
    pub async fn expand_with_facts(&self, desired: &mut Desired, facts: &ClusterFacts) {
        let span = debug_span!("template", environment = %desired.environment.metadata.name);
        self.expand_in_span(desired, facts).instrument(span).await;
    }

    async fn expand_in_span(&self, desired: &mut Desired, facts: &ClusterFacts) {
        let Some(tree) = desired.tree.as_ref() else {
            return;
        };
        let mut plans = self.plan(desired, tree, facts);
        let pending = plans
            .iter()
            .flat_map(|p| &p.outputs)
            .any(|o| o.files.is_none());
        if pending {
            self.run_pending(&mut plans, tree, &desired.env_file, &desired.commit.sha)
                .await;
        }
        for plan in plans {
            let outputs = plan
                .outputs
                .into_iter()
                .map(|o| o.files.unwrap_or_default())
                .collect();
            if let Some(source) = desired.apps.get_mut(plan.index) {
                source.templated = Some(Templated {
                    outputs,
                    clusters: plan.clusters,
                    problems: plan.problems,
                });
            }
        }
    }

    /// Jobs per app and cluster, with their cache keys; cached outputs filled in.
    fn plan(&self, desired: &Desired, tree: &SourceTree, facts: &ClusterFacts) -> Vec<AppPlan> {
        let env = &desired.environment;
        let files: HashSet<&str> = tree.files.iter().map(|f| f.path.as_str()).collect();
        let read = |path: &str| -> Option<Vec<u8>> {
            tree.files
                .iter()
                .find(|f| f.path == path)
                .and_then(|f| match &f.content {
                    FileContent::Bytes(b) => Some(b.clone()),
                    _ => None,
                })
        };
        let mut plans = Vec::new();
        for (index, source) in desired.apps.iter().enumerate() {
            let Some(app) = env.spec.apps.iter().find(|a| a.name == source.app) else {
                continue;
            };
            if app.helm.is_none() && app.kustomize.is_none() {
                continue;
            }
            let mut plan = AppPlan {
                index,
                name: app.name.clone(),
                line: app.line(),
                outputs: Vec::new(),
                clusters: BTreeMap::new(),
                problems: Diagnostics::default(),
            };
            let at = |message: String, help: String| {
                Diagnostic::new(format!("app {}: {message}", app.name))
                    .at(&desired.env_file, app.line())
                    .help(help)
            };
            let tool = if app.helm.is_some() {
                Tool::Helm
            } else {
                Tool::Kustomize
            };
            let Some(binary) = tool.locate(&self.tools_dir) else {
                plan.problems.push(at(
                    format!("{} is not installed", tool.name()),
                    tool.install_help(&self.tools_dir),
                ));
                plans.push(plan);
                continue;
            };
            let fingerprint = tools::fingerprint(&binary);
            let dir = match paths::join_within(&tree.root, app.manifests_dir()) {
                Ok(d) => d,
                Err(e) => {
                    plan.problems.push(at(
                        format!("path: {e}"),
                        "keep the app's directory inside spec.source.path".into(),
                    ));
                    plans.push(plan);
                    continue;
                }
            };
            let jobs: Vec<(String, ClusterJob)> = env
                .spec
                .clusters
                .iter()
                .map(|cluster| {
                    let job = match (&app.helm, &app.kustomize) {
                        (Some(helm), _) => helm_job(
                            app,
                            helm,
                            cluster,
                            facts.get(&cluster.name),
                            &dir,
                            &files,
                            &desired.commit.sha,
                        )
                        .map(|j| (j, helm.time_limit())),
                        (None, Some(k)) => {
                            kustomize_job(k, &dir, &tree.root, &files, &read, &desired.commit.sha)
                                .map(|j| (j, k.time_limit()))
                        }
                        (None, None) => Err(Vec::new()),
                    };
                    let job =
                        job.map_err(|found| found.into_iter().map(|(m, h)| at(m, h)).collect());
                    (cluster.name.clone(), job)
                })
                .collect();
            let mut by_key: HashMap<String, usize> = HashMap::new();
            for (cluster, job) in jobs {
                let (job, timeout) = match job {
                    Ok(j) => j,
                    Err(found) => {
                        // The same problem in every cluster is reported once.
                        for d in found {
                            if !plan.problems.iter().any(|p| p.message == d.message) {
                                plan.problems.push(d);
                            }
                        }
                        continue;
                    }
                };
                let Ok(described) = serde_json::to_string(&job) else {
                    continue;
                };
                let key = cache::key(&[
                    "tidegate-template/1",
                    tool.name(),
                    &fingerprint,
                    &tree.id,
                    &described,
                ]);
                let next = plan.outputs.len();
                let slot = *by_key.entry(key.clone()).or_insert(next);
                if slot == next {
                    let files = self.cache.get(&key);
                    plan.outputs.push(Planned {
                        job,
                        key,
                        tool: binary.clone(),
                        timeout,
                        files,
                    });
                }
                plan.clusters.insert(cluster, slot);
            }
            plans.push(plan);
        }
        plans
    }

    /// Materialises the tree, fetches remote charts and runs every job
    /// without a cached output, a few at a time.
    async fn run_pending(
        &self,
        plans: &mut [AppPlan],
        tree: &SourceTree,
        env_file: &str,
        commit: &str,
    ) {
        let workdir = match materialise(tree) {
            Ok(w) => w,
            Err(e) => {
                for plan in plans.iter_mut() {
                    plan.problems.push(
                        Diagnostic::new(format!(
                            "app {}: cannot write the commit's files to a temporary directory: {e}",
                            plan.name
                        ))
                        .at(env_file, plan.line)
                        .help("check that the temporary directory (TMPDIR) is writable"),
                    );
                }
                return;
            }
        };
        let root = &workdir.path().join("tree");
        // Fetch each remote chart once.
        let mut charts: Vec<ChartRef> = Vec::new();
        for o in plans
            .iter()
            .flat_map(|p| &p.outputs)
            .filter(|o| o.files.is_none())
        {
            if let Job::Helm {
                chart:
                    ChartSource::Remote {
                        repo_url,
                        chart,
                        version,
                        digest,
                    },
                ..
            } = &o.job
            {
                let r = ChartRef {
                    repo_url: repo_url.clone(),
                    chart: chart.clone(),
                    version: version.clone(),
                    digest: digest.clone(),
                };
                if !charts.contains(&r) {
                    charts.push(r);
                }
            }
        }
        let fetched: Vec<(ChartRef, Result<PathBuf, FetchError>)> =
            stream::iter(charts.into_iter().map(|c| async move {
                let r = self.fetcher.fetch(&c).await;
                (c, r)
            }))
            .buffer_unordered(self.parallelism)
            .collect()
            .await;
        let mut work = Vec::new();
        for (p, plan) in plans.iter().enumerate() {
            for (o, out) in plan.outputs.iter().enumerate() {
                if out.files.is_none() {
                    work.push((p, o));
                }
            }
        }
        let results: Vec<(usize, usize, Result<Vec<SourceFile>, Problem>)> = {
            let plans = &*plans;
            let fetched = &fetched;
            let workdir = &workdir;
            stream::iter(work.into_iter().enumerate().map(|(n, (p, o))| async move {
                let out = &plans[p].outputs[o];
                let home = workdir.path().join(format!("home-{n}"));
                let result = self.run_job(out, root, &home, fetched).await;
                (p, o, result)
            }))
            .buffer_unordered(self.parallelism)
            .collect()
            .await
        };
        // The tools' messages name repository paths, not our temporary ones.
        let temp = format!("{}/", root.display());
        let work = format!("{}/", workdir.path().display());
        // The same problem from several outputs of an app (a template error
        // in every cluster's values) is reported once, naming the clusters.
        let mut found: BTreeMap<(usize, Option<String>, String, String), Vec<String>> =
            BTreeMap::new();
        for (p, o, result) in results {
            let plan = &mut plans[p];
            let clusters = plan
                .clusters
                .iter()
                .filter(|(_, slot)| **slot == o)
                .map(|(c, _)| c.clone());
            let problems: Vec<(Option<String>, String, String)> = match result {
                Ok(files) => {
                    let hooks = helm::check_hooks(&files);
                    if hooks.is_empty() {
                        self.cache.put(&plan.outputs[o].key, &files);
                        plan.outputs[o].files = Some(files);
                    }
                    hooks
                        .into_iter()
                        .map(|h| (Some(h.object), format!("{}: {}", h.file, h.message), h.help))
                        .collect()
                }
                Err((message, help)) => vec![(
                    None,
                    message.replace(&temp, "").replace(&work, ""),
                    format!("{help} (commit {})", short(commit)),
                )],
            };
            for (object, message, help) in problems {
                found
                    .entry((p, object, message, help))
                    .or_default()
                    .extend(clusters.clone());
            }
        }
        for ((p, object, message, help), mut clusters) in found {
            let plan = &mut plans[p];
            clusters.sort();
            clusters.dedup();
            let which = if clusters.len() < plan.clusters.len() {
                format!(" (clusters {})", clusters.join(", "))
            } else {
                String::new()
            };
            let mut d = Diagnostic::new(format!("app {}: {message}{which}", plan.name))
                .at(env_file, plan.line)
                .help(help);
            if let Some(object) = object {
                d = d.for_object(object);
            }
            plan.problems.push(d);
        }
    }

    /// One `helm template` or `kustomize build`.
    async fn run_job(
        &self,
        planned: &Planned,
        root: &Path,
        home: &Path,
        fetched: &[(ChartRef, Result<PathBuf, FetchError>)],
    ) -> Result<Vec<SourceFile>, Problem> {
        std::fs::create_dir_all(home)
            .map_err(|e| (format!("cannot create a private HOME: {e}"), String::new()))?;
        let limits = RunLimits {
            timeout: planned.timeout,
            max_output: self.max_output,
        };
        let (args, network, what, prefix) = match &planned.job {
            Job::Helm {
                chart,
                prefix,
                inputs,
            } => {
                let path = match chart {
                    ChartSource::Tree(dir) => root.join(dir),
                    ChartSource::Remote {
                        repo_url,
                        chart,
                        version,
                        digest,
                    } => {
                        let found = fetched.iter().find(|(c, _)| {
                            c.repo_url == *repo_url
                                && c.chart == *chart
                                && c.version == *version
                                && c.digest == *digest
                        });
                        match found.map(|(_, r)| r) {
                            Some(Ok(p)) => p.clone(),
                            Some(Err(e)) => {
                                return Err((
                                    format!("chart {chart} {version} from {}: {e}", chart::redact(repo_url)),
                                    "check helm.repoURL, chart, version and digest (credentials: TIDEGATE_HELM_USERNAME/TIDEGATE_HELM_PASSWORD; CA: TIDEGATE_HELM_CA_FILE)".into(),
                                ));
                            }
                            None => return Err(("chart was not fetched".into(), String::new())),
                        }
                    }
                };
                for (i, v) in inputs.values.iter().enumerate() {
                    let file = home.join(format!("values-{i}.json"));
                    std::fs::write(&file, v.to_string())
                        .map_err(|e| (format!("cannot write values: {e}"), String::new()))?;
                }
                (
                    inputs.args(&path, root, home),
                    false,
                    format!("helm template of {prefix}"),
                    Some(prefix.clone()),
                )
            }
            Job::Kustomize { dir, network } => (
                vec!["build".into(), root.join(dir).into()],
                *network,
                format!("kustomize build of {dir}"),
                None,
            ),
        };
        let out = process::run(&planned.tool, &args, root, home, network, limits)
            .await
            .map_err(|e| {
                let help = match &e {
                    RunError::TimedOut(_) => "raise the app's `timeout`, or find the template that loops",
                    RunError::TooLarge(_) => "the output is too large to be a set of Kubernetes objects; check the chart's loops",
                    _ => "fix the chart or kustomization; the message above is the tool's own",
                };
                (format!("{what} failed: {e}"), help.to_string())
            })?;
        let text = String::from_utf8(out).map_err(|_| {
            (
                format!("{what} wrote output that is not UTF-8"),
                String::new(),
            )
        })?;
        Ok(match (&planned.job, prefix) {
            (Job::Helm { .. }, Some(prefix)) => split_output(&text, &prefix),
            (Job::Kustomize { dir, .. }, _) => vec![SourceFile {
                path: format!("{dir}/kustomization.yaml"),
                content: FileContent::Bytes(text.into_bytes()),
            }],
            _ => Vec::new(),
        })
    }
}

/// The `helm template` inputs of one app for one cluster.
fn helm_job(
    app: &Located<App>,
    helm: &tidegate_core::environment::HelmSource,
    cluster: &tidegate_core::environment::Cluster,
    discovered: Option<&HelmCapabilities>,
    dir: &str,
    files: &HashSet<&str>,
    commit: &str,
) -> Result<Job, Vec<Problem>> {
    let (chart, prefix) = match helm.origin() {
        ChartOrigin::Directory => {
            let chart_file = format!("{dir}/Chart.yaml");
            if !files.contains(chart_file.as_str()) {
                return Err(vec![(
                    format!("no Chart.yaml in {dir:?} at commit {}", short(commit)),
                    "point the app's `path` at a chart directory, or set helm.repoURL, chart and version for a published chart".into(),
                )]);
            }
            (ChartSource::Tree(dir.to_string()), dir.to_string())
        }
        ChartOrigin::Repository(url) | ChartOrigin::Oci(url) => {
            let chart = helm.chart.clone().unwrap_or_default();
            let version = helm.version.clone().unwrap_or_default();
            let prefix = format!("{chart}-{version}.tgz");
            (
                ChartSource::Remote {
                    repo_url: url.to_string(),
                    chart,
                    version,
                    digest: helm.digest.clone(),
                },
                prefix,
            )
        }
    };
    let mut value_files = Vec::new();
    let mut missing = Vec::new();
    for vf in &helm.value_files {
        let path = paths::normalize(&format!("{dir}/{vf}"))
            .ok()
            .filter(|p| files.contains(p.as_str()));
        match path {
            Some(p) => value_files.push(p),
            None => missing.push((
                format!(
                    "values file {vf:?} does not exist at commit {} (looked for {dir}/{vf})",
                    short(commit)
                ),
                "valueFiles are relative to the app's directory; commit the file or fix the name"
                    .into(),
            )),
        }
    }
    if !missing.is_empty() {
        return Err(missing);
    }
    let labels = cluster.selector_labels();
    let mut values: Vec<serde_json::Value> = helm.values.iter().cloned().collect();
    for overlay in app.overlays.iter().filter(|o| {
        o.cluster_selector
            .as_ref()
            .is_none_or(|s| s.matches(&labels))
    }) {
        let Some(h) = &overlay.helm else { continue };
        values.extend(h.values.iter().cloned());
    }
    let HelmCapabilities {
        kube_version,
        api_versions,
    } = app
        .helm_capabilities(cluster)
        .unwrap_or_default()
        .or_discovered(discovered);
    Ok(Job::Helm {
        chart,
        prefix,
        inputs: Box::new(HelmInputs {
            release: helm
                .release_name
                .clone()
                .unwrap_or_else(|| app.name.clone()),
            namespace: helm
                .namespace
                .clone()
                .or_else(|| app.namespace.clone())
                .unwrap_or_else(|| "default".into()),
            value_files,
            values,
            include_crds: helm.include_crds,
            skip_tests: helm.skip_tests,
            kube_version,
            api_versions,
        }),
    })
}

/// The `kustomize build` of one app (the same for every cluster).
fn kustomize_job(
    k: &tidegate_core::environment::KustomizeSource,
    dir: &str,
    root: &str,
    files: &HashSet<&str>,
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
    commit: &str,
) -> Result<Job, Vec<Problem>> {
    if kustomize::kustomization_file(files, dir).is_none() {
        return Err(vec![(
            format!(
                "no kustomization.yaml in {dir:?} at commit {}",
                short(commit)
            ),
            "point the app's `path` at a directory with a kustomization.yaml".into(),
        )]);
    }
    let problems = kustomize::check(files, read, root, dir, k.allow_remote_bases);
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|(file, message, help)| (format!("{file}: {message}"), help))
            .collect());
    }
    Ok(Job::Kustomize {
        dir: dir.to_string(),
        network: k.allow_remote_bases,
    })
}

/// Writes the tree's files under `tree/` of a private temporary directory
/// (0700); the tools' homes go beside it, out of every chart's way.
fn materialise(tree: &SourceTree) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("tidegate-template-")
        .tempdir()?;
    let root = dir.path().join("tree");
    std::fs::create_dir_all(&root)?;
    for file in &tree.files {
        let FileContent::Bytes(bytes) = &file.content else {
            continue;
        };
        if paths::normalize(&file.path).as_deref() != Ok(file.path.as_str()) {
            continue;
        }
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    Ok(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;
    use tidegate_core::Environment;

    #[test]
    fn discovered_facts_fill_only_what_is_not_declared_and_change_the_job() {
        let text = "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nspec:\n  source: {repoURL: .}\n  clusters:\n    - name: pinned\n      provider: {kubeconfig: {}}\n      labels: {pin: 'yes'}\n    - name: free\n      provider: {kubeconfig: {}}\n  apps:\n    - name: web\n      helm: {}\n      overlays:\n        - clusterSelector: {matchLabels: {pin: 'yes'}}\n          helm: {kubeVersion: 1.31.5}\n";
        let env = Environment::parse(text, "environments/t.yaml").unwrap();
        let app = &env.spec.apps[0];
        let helm = app.helm.as_ref().unwrap();
        let files: HashSet<&str> = ["m/web/Chart.yaml"].into_iter().collect();
        let discovered = HelmCapabilities {
            kube_version: Some("v1.37.2".into()),
            api_versions: vec!["apps/v1".into(), "x.example/v1".into()],
        };
        let inputs = |cluster: usize, facts: Option<&HelmCapabilities>| {
            let job = helm_job(
                app,
                helm,
                &env.spec.clusters[cluster],
                facts,
                "m/web",
                &files,
                "c",
            )
            .unwrap();
            let described = serde_json::to_string(&job).unwrap();
            let Job::Helm { inputs, .. } = job else {
                panic!("not a helm job")
            };
            (inputs, described)
        };
        let (pinned, _) = inputs(0, Some(&discovered));
        assert_eq!(
            pinned.kube_version.as_deref(),
            Some("1.31.5"),
            "declared wins"
        );
        assert_eq!(pinned.api_versions, discovered.api_versions);
        let (free, with_facts) = inputs(1, Some(&discovered));
        assert_eq!(free.kube_version.as_deref(), Some("v1.37.2"));
        let (offline, without) = inputs(1, None);
        assert_eq!(offline.kube_version, None, "helm's default");
        assert!(offline.api_versions.is_empty());
        // The facts are part of what the render cache key is made of.
        assert_ne!(with_facts, without);
    }
}
