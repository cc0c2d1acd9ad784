//! Manifest files as read from a commit's tree by the source stage and
//! consumed by render (which turns unusable entries into diagnostics).

/// Limits applied while reading a directory from a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Files larger than this are not loaded ([`FileContent::TooLarge`]).
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // Kubernetes stores objects of at most ~1.5 MiB; a file of several
        // large CRDs still fits in 4 MiB.
        Limits {
            max_file_bytes: 4 << 20,
        }
    }
}

/// One manifest file (`.yaml`, `.yml` or `.json`) found under a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// What the tree holds there.
    pub content: FileContent,
}

/// What a tree entry turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// The file's bytes (for a symlink inside the directory: its target's).
    Bytes(Vec<u8>),
    /// The file is larger than [`Limits::max_file_bytes`].
    TooLarge {
        /// Its size in bytes.
        size: u64,
    },
    /// A symlink whose target is outside the directory being read, or missing.
    EscapingSymlink {
        /// The link's target as written.
        target: String,
    },
}

/// The manifest files of one app, as read from a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSource {
    /// The app's name (from `spec.apps`).
    pub app: String,
    /// Its manifest files, sorted by path (empty for Helm and Kustomize apps).
    pub files: Vec<SourceFile>,
    /// For Helm and Kustomize apps: what the tool rendered, per cluster.
    /// Render uses it instead of `files`.
    pub templated: Option<Templated>,
}

/// The output of `helm template` or `kustomize build` for every cluster of
/// an environment. Clusters whose inputs are equal share one output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Templated {
    /// The distinct outputs, each split into files (one per chart template).
    pub outputs: Vec<Vec<SourceFile>>,
    /// Cluster name → index into `outputs`.
    pub clusters: std::collections::BTreeMap<String, usize>,
    /// What went wrong (the tool's message at the app's line); render
    /// reports these with every other problem.
    pub problems: crate::Diagnostics,
}

impl Templated {
    /// The files rendered for `cluster`, if it was rendered.
    pub fn for_cluster(&self, cluster: &str) -> Option<&[SourceFile]> {
        self.clusters
            .get(cluster)
            .and_then(|i| self.outputs.get(*i))
            .map(Vec::as_slice)
    }
}

/// Totals that one app and one environment may read and render, so a small
/// repository cannot make Tidegate parse gigabytes (one blob can be
/// referenced by many files). The limit in force is named in every error;
/// see `docs/limits.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes of manifest files per app.
    pub app_bytes: u64,
    /// Manifest files per app.
    pub app_files: usize,
    /// Objects per app.
    pub app_objects: usize,
    /// Bytes of manifest files per environment (all apps).
    pub environment_bytes: u64,
    /// Manifest files per environment (all apps).
    pub environment_files: usize,
    /// Objects per environment and cluster (all apps).
    pub environment_objects: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            app_bytes: 16 << 20,
            app_files: 1_000,
            app_objects: 5_000,
            environment_bytes: 64 << 20,
            environment_files: 5_000,
            environment_objects: 20_000,
        }
    }
}
