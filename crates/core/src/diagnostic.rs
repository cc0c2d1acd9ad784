//! Problems found in user input, reported all at once.
//!
//! A [`Diagnostic`] says *where* (file and line, cluster, object), *what* went
//! wrong, and *how to fix it*. Stages that read user input never stop at the
//! first problem: they collect [`Diagnostics`] so a user sees everything that
//! is wrong in one run.

use crate::printable::printable;
use std::fmt;

/// One problem in user input. API boundary: the CLI prints these as they are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// Path of the file, relative to the repository root.
    pub file: Option<String>,
    /// 1-based line in `file`.
    pub line: Option<u64>,
    /// The cluster being rendered, when the problem is specific to one.
    pub cluster: Option<String>,
    /// The object concerned, as `group/Kind namespace/name`.
    pub object: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem with only a message; add context with the builder methods.
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            file: None,
            line: None,
            cluster: None,
            object: None,
            message: message.into(),
            help: None,
        }
    }

    /// Sets the file and, when known, the line.
    pub fn at(mut self, file: impl Into<String>, line: Option<u64>) -> Self {
        self.file = Some(file.into());
        self.line = line;
        self
    }

    /// Sets the cluster.
    pub fn in_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }

    /// Sets the object.
    pub fn for_object(mut self, object: impl fmt::Display) -> Self {
        self.object = Some(object.to_string());
        self
    }

    /// Sets the hint that tells the user how to fix the problem.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Every part is shown through [`printable`]: file names, object names and
/// messages quote repository content, which must not reach a terminal raw.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().map(printable);
        let cluster = self.cluster.as_deref().map(printable);
        let object = self.object.as_deref().map(printable);
        match (file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            _ => {}
        }
        if let Some(cluster) = cluster {
            write!(f, "[cluster {cluster}] ")?;
        }
        if let Some(object) = object {
            write!(f, "{object}: ")?;
        }
        f.write_str(&printable(&self.message))?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {}", printable(help))?;
        }
        Ok(())
    }
}

/// Every problem found in one pass, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one problem.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Adds every problem of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Sorts by file, line, then message, and drops exact repeats (the same
    /// problem found once per cluster is reported once per cluster, not more).
    pub fn sorted(mut self) -> Self {
        self.0.sort();
        self.0.dedup();
        self
    }

    /// `Ok(value)` when empty, `Err(self)` otherwise.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self.sorted())
        }
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_cluster_object_and_help() {
        let d = Diagnostic::new("patch target matches nothing")
            .at("environments/prod.yaml", Some(12))
            .in_cluster("eks-us-east-1")
            .for_object("apps/Deployment web/api")
            .help("check the kind and name");
        assert_eq!(
            d.to_string(),
            "environments/prod.yaml:12: [cluster eks-us-east-1] apps/Deployment web/api: \
             patch target matches nothing\n  help: check the kind and name"
        );
    }

    #[test]
    fn sorted_orders_by_file_then_line_and_dedups() {
        let a = Diagnostic::new("x").at("b.yaml", Some(1));
        let b = Diagnostic::new("y").at("a.yaml", Some(9));
        let all = Diagnostics(vec![a.clone(), b.clone(), a.clone()]).sorted();
        assert_eq!(all.0, vec![b, a]);
    }
}
