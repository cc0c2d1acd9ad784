//! Manifest files → base objects, with every problem found reported.

use crate::yaml::{self, Node, NodeValue};
use std::collections::HashMap;
use tidegate_core::{
    Diagnostic, Diagnostics, ObjectKey, Provenance,
    files::{Budget, FileContent, SourceFile},
    names,
    object::{is_cluster_scoped, split_api_version},
    printable::is_unprintable,
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

/// Parsed documents by file content, so a blob that many files (or
/// symlinks) share is parsed once per environment.
#[derive(Debug, Default)]
pub struct ParseCache<'a> {
    parsed: HashMap<&'a [u8], Vec<yaml::Document>>,
}

impl<'a> ParseCache<'a> {
    /// The documents of `bytes`, parsed on first use; errors are not cached
    /// (they name the file).
    fn documents(
        &mut self,
        bytes: &'a [u8],
        file: &str,
    ) -> Result<Vec<yaml::Document>, Diagnostic> {
        if let Some(docs) = self.parsed.get(bytes) {
            return Ok(docs.clone());
        }
        let docs = yaml::parse_documents(bytes, file)?;
        self.parsed.insert(bytes, docs.clone());
        Ok(docs)
    }
}

/// Reads every file of one app into base objects; problems in one document
/// never hide problems in another.
pub fn load_app(files: &[SourceFile], commit: &str) -> LoadedApp {
    load_app_cached(
        files,
        commit,
        &mut ParseCache::default(),
        Budget::default().app_objects,
    )
}

/// [`load_app`] with a cache shared by the apps of an environment; stops
/// reading once `max_objects` objects were read (and says so).
pub fn load_app_cached<'a>(
    files: &'a [SourceFile],
    commit: &str,
    cache: &mut ParseCache<'a>,
    max_objects: usize,
) -> LoadedApp {
    let mut objects = Vec::new();
    let mut problems = Diagnostics::default();
    let mut complete = true;
    for file in files {
        if file.path.chars().any(is_unprintable) {
            complete = false;
            problems.push(
                Diagnostic::new(
                    "the file name contains a control character (a newline, tab or terminal escape)",
                )
                .at(&file.path, Some(1))
                .help("rename the file; such names could inject text into Tidegate's output"),
            );
            continue;
        }
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
        let docs = match cache.documents(bytes, &file.path) {
            Ok(docs) => docs,
            Err(d) => {
                complete = false;
                problems.push(d);
                continue;
            }
        };
        if objects.len() + docs.len() > max_objects {
            complete = false;
            problems.push(
                Diagnostic::new(format!(
                    "the app reaches {} objects with this file, over the limit of {max_objects} objects per app; this file and the ones after it were not read",
                    objects.len() + docs.len()
                ))
                .at(&file.path, Some(1))
                .help("split the app (the limits are in docs/limits.md)"),
            );
            break;
        }
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
    check_identity_values(root, file, &mut problems);
    check_string_maps(root, file, &mut problems);
    (identified, problems)
}

/// `kind: List`, names and namespaces the API server would refuse (or that
/// would change the request URL), and `spec.replicas` outside int32.
fn check_identity_values(root: &Node, file: &str, problems: &mut Diagnostics) {
    let kind = root.at(&["kind"]).and_then(Node::as_str).unwrap_or("");
    if kind == "List" {
        problems.push(
            Diagnostic::new(
                "kind: List is a kubectl client-side wrapper, not an object the API server stores",
            )
            .at(file, Some(root.line.max(1)))
            .help("write each item as its own YAML document, separated by ---"),
        );
    }
    if let Some(node) = root.at(&["metadata", "name"])
        && let Some(name) = node.as_str()
        && !name.is_empty()
        && let Some(rule) = names::object_name_problem(kind, name)
    {
        problems.push(
            Diagnostic::new(format!("metadata.name {name:?} is not {rule}"))
                .at(file, Some(node.line.max(1)))
                .help("rename the object"),
        );
    }
    if let Some(node) = root.at(&["metadata", "namespace"])
        && let Some(ns) = node.as_str()
        && !names::is_dns_label(ns)
    {
        problems.push(
            Diagnostic::new(format!("metadata.namespace {ns:?} is not a DNS label"))
                .at(file, Some(node.line.max(1)))
                .help("use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"),
        );
    }
    if let Some(node) = root.at(&["spec", "replicas"]) {
        let in_range = match &node.value {
            NodeValue::Null => true,
            NodeValue::Number(n) => n
                .as_i64()
                .is_some_and(|v| (0..=i64::from(i32::MAX)).contains(&v)),
            _ => false,
        };
        if !in_range {
            problems.push(
                Diagnostic::new(format!(
                    "spec.replicas must be a whole number from 0 to 2147483647 (int32), found {}",
                    match &node.value {
                        NodeValue::Number(n) => n.to_string(),
                        _ => node.type_name().to_string(),
                    }
                ))
                .at(file, Some(node.line.max(1)))
                .help("write a plain count such as 3"),
            );
        }
    }
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
                require_string(value, &format!("{what}.{key}"), file, problems);
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

    #[test]
    fn the_object_limit_names_the_file_that_crosses_it() {
        let three = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";
        let files = [file("m/one.yaml", three), file("m/two.yaml", three)];
        let loaded = load_app_cached(&files, "abc", &mut ParseCache::default(), 4);
        assert!(!loaded.complete);
        assert_eq!(loaded.objects.len(), 3);
        let all = loaded.problems.to_string();
        assert!(
            all.contains("m/two.yaml:1: the app reaches 6 objects with this file, over the limit of 4 objects per app"),
            "{all}"
        );
    }

    #[test]
    fn names_that_would_change_the_request_url_are_refused() {
        let f = file(
            "m/x.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: \"ok?dryRun=All&x=\"\n",
        );
        let all = load_app(&[f], "abc").problems.to_string();
        assert!(
            all.contains("m/x.yaml:4: metadata.name \"ok?dryRun=All&x=\" is not a name Kubernetes can put in a URL"),
            "{all}"
        );
    }
}
