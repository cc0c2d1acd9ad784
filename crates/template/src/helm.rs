//! `helm template`: its arguments, its output split per template, and its
//! hooks mapped to sync phases (or refused).

use std::{ffi::OsString, path::Path};
use tidegate_core::{
    files::{FileContent, SourceFile},
    hooks::{HELM_HOOK_ANNOTATION, HookKind, classify_hook},
};

/// Everything one `helm template` run depends on (serialized into the cache key).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HelmInputs {
    /// `.Release.Name`.
    pub release: String,
    /// `.Release.Namespace`.
    pub namespace: String,
    /// Values files, as paths inside the materialised tree, in order.
    pub value_files: Vec<String>,
    /// Inline values then the selected overlays' values, in order.
    pub values: Vec<serde_json::Value>,
    /// `--include-crds`.
    pub include_crds: bool,
    /// `--skip-tests`.
    pub skip_tests: bool,
    /// `--kube-version`.
    pub kube_version: Option<String>,
    /// `--api-versions`.
    pub api_versions: Vec<String>,
}

impl HelmInputs {
    /// The arguments of `helm template` for `chart` (a directory or `.tgz`);
    /// `values_dir` holds `values-<i>.json` for the inline values.
    pub fn args(&self, chart: &Path, tree: &Path, values_dir: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "template".into(),
            self.release.clone().into(),
            chart.into(),
            "--namespace".into(),
            self.namespace.clone().into(),
        ];
        if self.include_crds {
            args.push("--include-crds".into());
        }
        if self.skip_tests {
            args.push("--skip-tests".into());
        }
        if let Some(v) = &self.kube_version {
            args.push("--kube-version".into());
            args.push(v.into());
        }
        for a in &self.api_versions {
            args.push("--api-versions".into());
            args.push(a.into());
        }
        for f in &self.value_files {
            args.push("--values".into());
            args.push(tree.join(f).into());
        }
        for i in 0..self.values.len() {
            args.push("--values".into());
            args.push(values_dir.join(format!("values-{i}.json")).into());
        }
        args
    }
}

/// Splits `helm template` output into one file per template, using Helm's
/// `# Source: <chart>/<path>` comments; `prefix` replaces the chart's name
/// (the chart's directory in the repository, or `<chart>-<version>.tgz`).
pub fn split_output(text: &str, prefix: &str) -> Vec<SourceFile> {
    let mut files: Vec<(String, String)> = Vec::new();
    for doc in documents(text) {
        if doc.trim().is_empty() {
            continue;
        }
        let source = doc
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .map(|s| s.trim().split_once('/').map_or(s.trim(), |(_, rest)| rest));
        let path = match source {
            Some(rest) => format!("{prefix}/{rest}"),
            None => format!("{prefix}/(helm output)"),
        };
        match files.iter_mut().find(|(p, _)| *p == path) {
            Some((_, text)) => {
                text.push_str("---\n");
                text.push_str(doc);
            }
            None => files.push((path, doc.to_string())),
        }
    }
    files
        .into_iter()
        .map(|(path, text)| SourceFile {
            path,
            content: FileContent::Bytes(text.into_bytes()),
        })
        .collect()
}

/// The documents of a YAML stream, split on `---` lines.
fn documents(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            out.push(&text[start..pos]);
            start = pos + line.len();
        }
        pos += line.len();
    }
    out.push(&text[start..]);
    out
}

/// A hook that Tidegate cannot map, with the template it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookProblem {
    /// The template file (as in [`split_output`]).
    pub file: String,
    /// The object, `Kind name`.
    pub object: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every hook in the rendered files that has no sync phase.
pub fn check_hooks(files: &[SourceFile]) -> Vec<HookProblem> {
    let mut out = Vec::new();
    for file in files {
        let FileContent::Bytes(bytes) = &file.content else {
            continue;
        };
        if !contains(bytes, HELM_HOOK_ANNOTATION.as_bytes()) {
            continue; // most templates: no need to parse them here
        }
        let Ok(docs) = tidegate_render::yaml::parse_documents(bytes, &file.path) else {
            continue; // render reports unreadable YAML with its line
        };
        for doc in docs {
            let Some(hook) = doc
                .root
                .at(&["metadata", "annotations", HELM_HOOK_ANNOTATION])
                .and_then(|n| n.as_str())
            else {
                continue;
            };
            let str_at = |p: &[&str]| {
                doc.root
                    .at(p)
                    .and_then(|n| n.as_str())
                    .unwrap_or("?")
                    .to_string()
            };
            let object = format!("{} {}", str_at(&["kind"]), str_at(&["metadata", "name"]));
            let (message, help) = match classify_hook(hook) {
                HookKind::Phase(_) => continue,
                HookKind::Test => (
                    format!("test hook (helm.sh/hook: {hook}): Tidegate does not run Helm tests"),
                    "set `skipTests: true` in the app's helm section to leave test hooks out".to_string(),
                ),
                HookKind::Refused(why) => (
                    format!("Helm hook not supported: {why}"),
                    "Tidegate maps pre-install/pre-upgrade hooks before the sync's other objects and post-install/post-upgrade hooks after them; remove or change this hook (docs/environments.md, Helm hooks)".to_string(),
                ),
            };
            out.push(HookProblem {
                file: file.path.clone(),
                object,
                message,
                help,
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;

    #[test]
    fn output_is_split_per_template_and_hooks_are_checked() {
        let out = "---\n# Source: web/templates/a.yaml\nkind: A\nmetadata: {name: a}\n---\n# Source: web/templates/a.yaml\nkind: A\nmetadata: {name: b}\n---\n# Source: web/charts/db/templates/t.yaml\nkind: Pod\nmetadata:\n  name: t\n  annotations: {helm.sh/hook: test}\n---\n# Source: web/templates/d.yaml\nkind: Job\nmetadata:\n  name: d\n  annotations:\n    helm.sh/hook: pre-delete\n";
        let files = split_output(out, "manifests/web");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "manifests/web/templates/a.yaml",
                "manifests/web/charts/db/templates/t.yaml",
                "manifests/web/templates/d.yaml"
            ]
        );
        let FileContent::Bytes(a) = &files[0].content else {
            panic!()
        };
        assert_eq!(
            String::from_utf8_lossy(a),
            "# Source: web/templates/a.yaml\nkind: A\nmetadata: {name: a}\n---\n# Source: web/templates/a.yaml\nkind: A\nmetadata: {name: b}\n"
        );
        let problems = check_hooks(&files);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].object, "Pod t");
        assert!(problems[0].help.contains("skipTests"));
        assert_eq!(problems[1].file, "manifests/web/templates/d.yaml");
        assert!(
            problems[1].message.contains("delete or rollback"),
            "{}",
            problems[1].message
        );
    }
}
