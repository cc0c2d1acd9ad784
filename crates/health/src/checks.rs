//! Custom health checks per group and kind, and which check decides.
//!
//! Resolution order: checks from the environment file (in file order),
//! then scripts from the repository's checks directory, then the built-in
//! rules. Within each source an exact group/kind beats a wildcard one.
//! Patterns use `*` for any run of characters; in directory names (Argo
//! CD's layout) `_` means the same, so `_.crossplane.io/_/health.lua`
//! covers every kind of every Crossplane group.

use crate::cel::{CelCheck, CelCompileError, CelExprs};
use crate::context::Context;
use crate::lua::{LuaScript, LuaSyntaxError};
use crate::status::Health;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The file name of a Lua check in Argo CD's layout
/// (`<dir>/<group>/<kind>/health.lua`).
pub const LUA_FILE_NAME: &str = "health.lua";

/// The checks that apply on top of the built-in rules. Cheap to share
/// (`Arc`) between threads; `Default` is "built-in rules only".
#[derive(Debug, Default)]
pub struct HealthChecks {
    entries: Vec<Entry>,
    /// The environment's `ingressWithoutClass`, if set.
    pub(crate) ingress_without_class: Option<crate::IngressWithoutClass>,
    /// The environment's `statusGracePeriod`, if set.
    pub(crate) status_grace: Option<std::time::Duration>,
}

/// Which check gave a verdict. API boundary: `status` and `plan` print it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum CheckSource {
    /// Tidegate's own rules for the kind.
    BuiltIn,
    /// A Lua script, by its repository path (or the environment file and
    /// line for an inline script).
    Lua {
        /// Where the script was read from.
        file: String,
    },
    /// CEL expressions of an environment file.
    Cel {
        /// The environment file.
        file: String,
        /// The line of the check's entry.
        line: u64,
    },
}

/// A health and the check that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The health.
    pub health: Health,
    /// Which check decided.
    pub check: CheckSource,
}

/// A custom check that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A Lua script does not compile.
    #[error("{0}")]
    Lua(#[from] LuaSyntaxError),
    /// CEL expressions do not compile.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Cel(Vec<CelCompileError>),
    /// A file in the checks directory is not at `<group>/<kind>/health.lua`.
    #[error(
        "{file}: not a health check: expected <group>/<kind>/{LUA_FILE_NAME} under the checks directory"
    )]
    Layout {
        /// The file.
        file: String,
    },
}

/// Where a check was configured: lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    Environment,
    Repository,
}

#[derive(Debug)]
struct Entry {
    origin: Origin,
    group: String,
    kind: String,
    check: Check,
    source: CheckSource,
}

#[derive(Debug)]
enum Check {
    Lua(LuaScript),
    Cel(CelCheck),
}

// === impl HealthChecks ===

impl HealthChecks {
    /// Built-in rules only.
    pub fn new() -> Self {
        HealthChecks::default()
    }

    /// True when no custom check is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds CEL expressions from an environment file (`file`, `line`) for
    /// `group` / `kind` (`*` wildcards).
    pub fn add_cel(
        &mut self,
        group: &str,
        kind: &str,
        exprs: &CelExprs,
        file: &str,
        line: u64,
    ) -> Result<(), CheckError> {
        let check = CelCheck::compile(exprs).map_err(CheckError::Cel)?;
        self.push(Entry {
            origin: Origin::Environment,
            group: group.to_string(),
            kind: kind.to_string(),
            check: Check::Cel(check),
            source: CheckSource::Cel {
                file: file.to_string(),
                line,
            },
        });
        Ok(())
    }

    /// Adds an inline Lua script from an environment file; `name` (e.g.
    /// `environments/prod.yaml:42`) names it in messages.
    pub fn add_inline_lua(
        &mut self,
        group: &str,
        kind: &str,
        name: &str,
        text: &str,
    ) -> Result<(), CheckError> {
        let script = LuaScript::compile(name, text)?;
        self.push(Entry {
            origin: Origin::Environment,
            group: group.to_string(),
            kind: kind.to_string(),
            check: Check::Lua(script),
            source: CheckSource::Lua {
                file: name.to_string(),
            },
        });
        Ok(())
    }

    /// Adds the scripts of a checks directory in Argo CD's layout: `files`
    /// are `(path, text)` with paths relative to the repository, under
    /// `dir`. Files other than `health.lua` (tests, test data, actions)
    /// are ignored; every script that cannot be used is returned, the
    /// others are added.
    pub fn add_lua_directory<'a>(
        &mut self,
        dir: &str,
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Vec<CheckError> {
        let mut problems = Vec::new();
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        for (path, text) in files {
            let Some(relative) = path.strip_prefix(&prefix) else {
                continue;
            };
            if !relative.ends_with(LUA_FILE_NAME) {
                continue;
            }
            let parts: Vec<&str> = relative.split('/').collect();
            let [group, kind, LUA_FILE_NAME] = parts.as_slice() else {
                problems.push(CheckError::Layout {
                    file: path.to_string(),
                });
                continue;
            };
            match LuaScript::compile(path, text) {
                Ok(script) => self.push(Entry {
                    origin: Origin::Repository,
                    group: directory_pattern(group),
                    kind: directory_pattern(kind),
                    check: Check::Lua(script),
                    source: CheckSource::Lua {
                        file: path.to_string(),
                    },
                }),
                Err(e) => problems.push(e.into()),
            }
        }
        problems
    }

    /// The custom check for `group` / `kind`, if one applies.
    pub fn source_for(&self, group: &str, kind: &str) -> CheckSource {
        self.find(group, kind)
            .map_or(CheckSource::BuiltIn, |e| e.source.clone())
    }

    /// The health of the live object of `group` / `kind` (`None`:
    /// Missing) and the check that decided it. Never fails.
    pub fn assess(&self, ctx: &Context, group: &str, kind: &str, live: Option<&Value>) -> Verdict {
        let built_in = |ctx: &Context| Verdict {
            health: crate::assess_with(ctx, group, kind, live),
            check: CheckSource::BuiltIn,
        };
        let (Some(obj), Some(entry)) = (live, self.find(group, kind)) else {
            return built_in(ctx);
        };
        if let Some(h) = crate::being_deleted(group, kind, obj) {
            return Verdict {
                health: h,
                check: CheckSource::BuiltIn,
            };
        }
        let health = match &entry.check {
            Check::Lua(script) => script.assess(obj, ctx.now),
            Check::Cel(check) => check.assess(obj),
        };
        Verdict {
            health,
            check: entry.source.clone(),
        }
    }

    fn find(&self, group: &str, kind: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| glob(&e.group, group) && glob(&e.kind, kind))
    }

    /// Inserts keeping the order: origin, then exact before wildcard, then
    /// insertion order.
    fn push(&mut self, entry: Entry) {
        let rank = |e: &Entry| (e.origin, wildcards(&e.group) + wildcards(&e.kind));
        let at = self
            .entries
            .iter()
            .position(|e| rank(e) > rank(&entry))
            .unwrap_or(self.entries.len());
        self.entries.insert(at, entry);
    }
}

// === impl CheckSource ===

impl fmt::Display for CheckSource {
    /// `built-in`, `Lua health/example.com/Widget/health.lua`, `CEL environments/prod.yaml:42`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckSource::BuiltIn => f.write_str("built-in"),
            CheckSource::Lua { file } => write!(f, "Lua {file}"),
            CheckSource::Cel { file, line } => write!(f, "CEL {file}:{line}"),
        }
    }
}

/// A directory name of Argo CD's layout as a pattern: `_` is a wildcard.
fn directory_pattern(name: &str) -> String {
    name.replace('_', "*")
}

fn wildcards(pattern: &str) -> usize {
    pattern.matches('*').count()
}

/// Matches `text` against `pattern`, where `*` is any run of characters.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let mut pieces: Vec<&str> = rest.split('*').collect();
    let last = pieces.pop().unwrap_or("");
    for piece in pieces {
        match remaining.find(piece) {
            Some(at) => remaining = &remaining[at + piece.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shell_stars() {
        assert!(glob("*", ""));
        assert!(glob("*", "Widget"));
        assert!(glob("*.crossplane.io", "pkg.crossplane.io"));
        assert!(!glob("*.crossplane.io", "crossplane.io.evil"));
        assert!(glob("Widget", "Widget"));
        assert!(!glob("Widget", "Widgets"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert!(!glob("ab*b", "ab"));
        assert!(glob("ab*b", "abb"));
    }

    #[test]
    fn directory_names_use_underscore_as_wildcard() {
        assert_eq!(directory_pattern("_.crossplane.io"), "*.crossplane.io");
        assert_eq!(directory_pattern("_"), "*");
    }
}
