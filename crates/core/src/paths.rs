//! Paths inside a repository, checked so untrusted content cannot escape its directory.

/// Why a path given in an environment file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is absolute.
    #[error("path {0:?} is absolute; write it relative to the repository root")]
    Absolute(String),
    /// The path climbs out of where it must stay.
    #[error("path {0:?} leaves the repository ('..' above its root)")]
    Escapes(String),
}

/// Normalizes a relative, `/`-separated repository path: drops `.` and empty
/// parts, resolves `..` and refuses any path that would climb above the root.
/// The root itself is the empty string.
pub fn normalize(path: &str) -> Result<String, PathError> {
    if path.starts_with('/') || path.contains('\\') && path.get(1..3) == Some(":\\") {
        return Err(PathError::Absolute(path.to_string()));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::Escapes(path.to_string()));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Joins two repository paths (`base` already normalized) and normalizes the result.
/// The result must stay inside `base`.
pub fn join_within(base: &str, rel: &str) -> Result<String, PathError> {
    if rel.starts_with('/') {
        return Err(PathError::Absolute(rel.to_string()));
    }
    let joined = if base.is_empty() {
        normalize(rel)?
    } else {
        normalize(&format!("{base}/{rel}"))?
    };
    if is_within(base, &joined) {
        Ok(joined)
    } else {
        Err(PathError::Escapes(rel.to_string()))
    }
}

/// True when `path` is `dir` or lies below it (both normalized).
pub fn is_within(dir: &str, path: &str) -> bool {
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_escapes() {
        assert_eq!(normalize("./manifests//app/"), Ok("manifests/app".into()));
        assert_eq!(normalize("a/../b"), Ok("b".into()));
        assert_eq!(normalize("."), Ok("".into()));
        assert!(matches!(normalize("../x"), Err(PathError::Escapes(_))));
        assert!(matches!(normalize("/etc"), Err(PathError::Absolute(_))));
        assert_eq!(join_within("manifests", "app"), Ok("manifests/app".into()));
        assert!(join_within("manifests", "../environments").is_err());
        assert!(join_within("manifests", "app/../../x").is_err());
        assert_eq!(join_within("", "a/b.yaml"), Ok("a/b.yaml".into()));
        assert!(is_within("manifests", "manifests/a.yaml"));
        assert!(!is_within("manifests", "manifests2/a.yaml"));
    }
}
