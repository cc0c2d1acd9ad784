//! Manifest files → base objects, with every problem found reported.

use crate::yaml::{self, Node, NodeValue};
use tidegate_core::{
    Diagnostic, Diagnostics, ObjectKey, Provenance,
    files::{FileContent, SourceFile},
    object::{is_cluster_scoped, split_api_version},
};

/// An object as written in Git, before overlays. Cluster-independent.
#[derive(Debug, Clone)]
pub struct BaseObject {
    /// Identity as written (the app's namespace is filled in by render).
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` as written.
    pub namespace: Option<String>,
    /// The manifest.
    pub manifest: serde_json::Value,
    /// Where it came from.
    pub provenance: Provenance,
}

impl BaseObject {
    /// The object's group.
    pub fn group(&self) -> &str {
        split_api_version(&self.api_version).0
    }

    /// The key once the app's default namespace is applied.
    pub fn key(&self, default_namespace: &str) -> ObjectKey {
        let group = self.group();
        let namespace = if is_cluster_scoped(group, &self.kind) {
            None
        } else {
            Some(self.namespace.as_deref().unwrap_or(default_namespace))
        };
        ObjectKey::new(group, &self.kind, namespace, &self.name)
    }
}

/// What [`load_app`] read.
#[derive(Debug, Default)]
pub struct LoadedApp {
    /// Every object whose identity could be read.
    pub objects: Vec<BaseObject>,
    /// Every problem found.
    pub problems: Diagnostics,
    /// False when a file or document could not be turned into an object.
    pub complete: bool,
}

/// Reads every file of one app into base objects; problems in one document
/// never hide problems in another.
pub fn load_app(files: &[SourceFile], commit: &str) -> LoadedApp {
    let mut objects = Vec::new();
    let mut problems = Diagnostics::default();
    let mut complete = true;
    for file in files {
        let bytes = match &file.content {
            FileContent::Bytes(b) => b,
            FileContent::TooLarge { size } => {
                complete = false;
                problems.push(
                    Diagnostic::new(format!("file is {size} bytes, over the size limit"))
                        .at(&file.path, Some(1))
                        .help(
                            "split it into smaller files; Kubernetes objects are at most ~1.5 MiB",
                        ),
                );
                continue;
            }
            FileContent::EscapingSymlink { target } => {
                complete = false;
                problems.push(
                    Diagnostic::new(format!(
                        "symlink to {target:?} points outside the app's manifests directory (or at nothing)"
                    ))
                    .at(&file.path, Some(1))
                    .help("copy the file into the directory instead of linking to it"),
                );
                continue;
            }
        };
        let docs = match yaml::parse_documents(bytes, &file.path) {
            Ok(docs) => docs,
            Err(d) => {
                complete = false;
                problems.push(d);
                continue;
            }
        };
        for doc in docs {
            let (identified, found) = check_document(&doc.root, &file.path);
            problems.extend(found);
            if !identified {
                complete = false;
                continue;
            }
            let str_at =
                |path: &[&str]| doc.root.at(path).and_then(Node::as_str).map(str::to_string);
            objects.push(BaseObject {
                api_version: str_at(&["apiVersion"]).unwrap_or_default(),
                kind: str_at(&["kind"]).unwrap_or_default(),
                name: str_at(&["metadata", "name"]).unwrap_or_default(),
                namespace: str_at(&["metadata", "namespace"]),
                manifest: doc.root.to_json(),
                provenance: Provenance {
                    commit: commit.to_string(),
                    path: file.path.clone(),
                    document: doc.index,
                    line: doc.root.line.max(1),
                },
            });
        }
    }
    LoadedApp {
        objects,
        problems,
        complete,
    }
}

/// Checks one document: a mapping with string `apiVersion`, `kind` and
/// `metadata.name`, and only strings where Kubernetes expects strings.
/// Returns whether the object's identity is readable (so it can still be
/// rendered and matched by overlays), and the problems found.
fn check_document(root: &Node, file: &str) -> (bool, Diagnostics) {
    let mut problems = Diagnostics::default();
    let line = root.line.max(1);
    if !matches!(root.value, NodeValue::Map(_)) {
        problems.push(
            Diagnostic::new(format!(
                "a manifest document must be a mapping, found {}",
                root.type_name()
            ))
            .at(file, Some(line))
            .help("each YAML document is one Kubernetes object with apiVersion, kind and metadata"),
        );
        return (false, problems);
    }
    for (path, what) in [
        (&["apiVersion"][..], "apiVersion"),
        (&["kind"][..], "kind"),
        (&["metadata", "name"][..], "metadata.name"),
    ] {
        match root.at(path) {
            Some(Node {
                value: NodeValue::String(s),
                ..
            }) if !s.is_empty() => {}
            Some(node) if !matches!(node.value, NodeValue::Null) => problems.push(
                Diagnostic::new(format!("{what} must be a non-empty string, found {}", node.type_name()))
                    .at(file, Some(node.line.max(line)))
                    .help(format!("quote the value of {what}")),
            ),
            _ => problems.push(
                Diagnostic::new(format!("document has no {what}"))
                    .at(file, Some(line))
                    .help(format!("every Kubernetes object needs apiVersion, kind and metadata.name; add {what}")),
            ),
        }
    }
    if let Some(ns) = root.at(&["metadata", "namespace"])
        && ns.as_str().is_none()
    {
        problems.push(
            Diagnostic::new(format!(
                "metadata.namespace must be a string, found {}",
                ns.type_name()
            ))
            .at(file, Some(ns.line))
            .help("quote the namespace"),
        );
    }
    let identified = problems.is_empty();
    check_string_maps(root, file, &mut problems);
    (identified, problems)
}

/// Labels, annotations, ConfigMap/Secret data and container env values must
/// be strings. Kubernetes reads YAML 1.1, where unquoted `yes`, `on`, `true`
/// are booleans and `8080` a number, and rejects them there; we say so with
/// the line instead of letting the API server fail later.
fn check_string_maps(root: &Node, file: &str, problems: &mut Diagnostics) {
    let kind = root.at(&["kind"]).and_then(Node::as_str).unwrap_or("");
    let mut maps: Vec<(String, &Node)> = Vec::new();
    for field in ["labels", "annotations"] {
        if let Some(node) = root.at(&["metadata", field]) {
            maps.push((format!("metadata.{field}"), node));
        }
    }
    if matches!(kind, "ConfigMap" | "Secret") {
        for field in ["data", "stringData", "binaryData"] {
            if let Some(node) = root.get(field) {
                maps.push((field.to_string(), node));
            }
        }
    }
    for (what, map) in maps {
        if let NodeValue::Map(entries) = &map.value {
            for (key, value) in entries {
                let what = format!("{what}.{key}");
                if kind == "Secret" {
                    require_string_masked(value, &what, file, problems);
                } else {
                    require_string(value, &what, file, problems);
                }
            }
        }
    }
    check_env_values(root, file, problems);
}

/// Walks the whole object for container `env` lists (`[{name, value}]`).
fn check_env_values(node: &Node, file: &str, problems: &mut Diagnostics) {
    match &node.value {
        NodeValue::Map(entries) => {
            for (key, child) in entries {
                if key == "env"
                    && let NodeValue::Seq(items) = &child.value
                {
                    for item in items {
                        if let (Some(name), Some(value)) = (item.get("name"), item.get("value")) {
                            let name = name.as_str().unwrap_or("?");
                            require_string(value, &format!("env {name} value"), file, problems);
                        }
                    }
                }
                check_env_values(child, file, problems);
            }
        }
        NodeValue::Seq(items) => items
            .iter()
            .for_each(|i| check_env_values(i, file, problems)),
        _ => {}
    }
}

/// [`require_string`] for Secret data: the message never shows the value.
fn require_string_masked(value: &Node, what: &str, file: &str, problems: &mut Diagnostics) {
    let hint = match &value.value {
        NodeValue::String(_) | NodeValue::Null => return,
        NodeValue::Bool(_) => {
            "it reads as a boolean (value not shown: Secret data; Kubernetes parses YAML 1.1, where unquoted yes/no/on/off/true/false are booleans)"
        }
        NodeValue::Number(_) => "it reads as a number (value not shown: Secret data)",
        NodeValue::Seq(_) | NodeValue::Map(_) => "it is not a scalar",
    };
    problems.push(
        Diagnostic::new(format!("{what} must be a string, but {hint}"))
            .at(file, Some(value.line))
            .help("quote the value"),
    );
}

fn require_string(value: &Node, what: &str, file: &str, problems: &mut Diagnostics) {
    let hint = match &value.value {
        NodeValue::String(_) | NodeValue::Null => return,
        NodeValue::Bool(b) => format!(
            "it reads as the boolean {b} (Kubernetes parses YAML 1.1, where unquoted yes/no/on/off/true/false are booleans)"
        ),
        NodeValue::Number(n) => format!("it reads as the number {n}"),
        NodeValue::Seq(_) | NodeValue::Map(_) => format!("it is {}", value.type_name()),
    };
    problems.push(
        Diagnostic::new(format!("{what} must be a string, but {hint}"))
            .at(file, Some(value.line))
            .help("quote the value, e.g. \"yes\" or \"8080\""),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            content: FileContent::Bytes(text.as_bytes().to_vec()),
        }
    }

    #[test]
    fn loads_multi_document_files_with_provenance() {
        let f = file(
            "m/a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n---\n# c\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: x\n",
        );
        let LoadedApp {
            objects: objs,
            problems,
            complete,
        } = load_app(&[f], "abc");
        assert!(problems.is_empty() && complete, "{problems}");
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].provenance.line, 9);
        assert_eq!(objs[1].provenance.document, 1);
        assert_eq!(objs[1].key("default").to_string(), "apps/Deployment x/d");
        assert_eq!(objs[0].key("web").to_string(), "ConfigMap web/a");
    }

    #[test]
    fn reports_every_problem_with_lines() {
        let f = file(
            "m/bad.yaml",
            "kind: ConfigMap\nmetadata:\n  name: a\ndata:\n  ENABLED: yes\n  PORT: 8080\n---\napiVersion: v1\nkind: Pod\nmetadata: {}\n",
        );
        let LoadedApp {
            objects: objs,
            problems,
            complete,
        } = load_app(&[f], "abc");
        assert_eq!(objs.len(), 0, "no identity, no object");
        assert!(!complete);
        let all = problems.sorted().to_string();
        assert!(
            all.contains("m/bad.yaml:1: document has no apiVersion"),
            "{all}"
        );
        assert!(
            all.contains(
                "m/bad.yaml:5: data.ENABLED must be a string, but it reads as the boolean true"
            ),
            "{all}"
        );
        assert!(
            all.contains("m/bad.yaml:6: data.PORT must be a string"),
            "{all}"
        );
        assert!(
            all.contains("m/bad.yaml:8: document has no metadata.name"),
            "{all}"
        );
    }
}
