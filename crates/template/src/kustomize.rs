//! Kustomize directories: the kustomization and everything it builds on
//! must be in the commit; remote bases are refused unless allowed.

use std::collections::{BTreeSet, HashSet};
use tidegate_core::paths;

/// The file names Kustomize reads as a kustomization.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// A problem in a kustomization: `(file, message, help)`.
pub type Problem = (String, String, String);

/// The kustomization file of `dir`, if the tree has one.
pub fn kustomization_file(files: &HashSet<&str>, dir: &str) -> Option<String> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|f| join(dir, f))
        .find(|p| files.contains(p.as_str()))
}

/// Checks `dir`'s kustomization and, recursively, the bases and components
/// it names: each must be a path inside `root`, present at the commit, or —
/// with `allow_remote` — a remote URL. `read` gives a file's bytes.
pub fn check(
    files: &HashSet<&str>,
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
    root: &str,
    dir: &str,
    allow_remote: bool,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut todo = vec![dir.to_string()];
    while let Some(dir) = todo.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some(file) = kustomization_file(files, &dir) else {
            continue;
        };
        let Some(bytes) = read(&file) else { continue };
        let Ok(doc) = serde_saphyr::from_slice::<serde_json::Value>(&bytes) else {
            continue; // kustomize reports unreadable YAML in its own words
        };
        for field in ["resources", "bases", "components"] {
            for entry in doc[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str())
            {
                if is_remote(entry) {
                    if !allow_remote {
                        problems.push((
                            file.clone(),
                            format!("remote base {entry:?} in {field} is refused: a render reads only what the commit holds"),
                            "copy the base into the repository, or set `allowRemoteBases: true` in the app's kustomize section".into(),
                        ));
                    }
                    continue;
                }
                let target = match paths::normalize(&format!("{dir}/{entry}")) {
                    Ok(t) if paths::is_within(root, &t) => t,
                    _ => {
                        problems.push((
                            file.clone(),
                            format!("{field} entry {entry:?} leaves {root:?} (spec.source.path)"),
                            "keep bases and components inside spec.source.path".into(),
                        ));
                        continue;
                    }
                };
                let prefix = format!("{target}/");
                if files.contains(target.as_str()) {
                    continue;
                }
                if files.iter().any(|f| f.starts_with(&prefix)) {
                    todo.push(target);
                } else {
                    problems.push((
                        file.clone(),
                        format!("{field} entry {entry:?} ({target}) does not exist at this commit"),
                        "commit the base or component, or fix the path (relative to the kustomization's directory)".into(),
                    ));
                }
            }
        }
    }
    problems
}

/// What Kustomize would fetch: URLs and Git/GitHub references.
fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.contains("?ref=")
        || entry.starts_with("git@")
        || ["github.com/", "gitlab.com/", "bitbucket.org/"]
            .iter()
            .any(|h| entry.starts_with(h))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_missing_and_escaping_bases_are_reported() {
        let tree = [
            (
                "m/app/overlay/kustomization.yaml",
                "resources: [../base, https://github.com/x/y//base?ref=v1, ../../../etc, ../nope]\ncomponents: [../comp]\n",
            ),
            (
                "m/app/base/kustomization.yaml",
                "resources: [deploy.yaml, github.com/acme/base]\n",
            ),
            ("m/app/base/deploy.yaml", "kind: Deployment\n"),
            ("m/app/comp/kustomization.yaml", "kind: Component\n"),
        ];
        let files: HashSet<&str> = tree.iter().map(|(p, _)| *p).collect();
        let read = |p: &str| {
            tree.iter()
                .find(|(f, _)| *f == p)
                .map(|(_, t)| t.as_bytes().to_vec())
        };
        let problems = check(&files, &read, "m", "m/app/overlay", false);
        let messages: Vec<&str> = problems.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(problems.len(), 4, "{messages:#?}");
        assert!(
            messages
                .iter()
                .any(|m| m.contains("remote base \"https://github.com/x/y//base?ref=v1\""))
        );
        assert!(messages.iter().any(|m| m.contains("github.com/acme/base")));
        assert!(
            messages
                .iter()
                .any(|m| m.contains("\"../../../etc\" leaves"))
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("\"../nope\" (m/app/nope) does not exist"))
        );
        assert_eq!(
            problems
                .iter()
                .filter(|p| p.0 == "m/app/base/kustomization.yaml")
                .count(),
            1
        );
        let allowed = check(&files, &read, "m", "m/app/overlay", true);
        assert_eq!(allowed.len(), 2, "{allowed:?}");
    }
}
