//! Helm hooks (`helm.sh/hook`) mapped to Tidegate's sync phases.
//!
//! Tidegate applies a chart's objects itself, so a hook is not run by Helm:
//! `pre-install`/`pre-upgrade` hooks are applied before every other object
//! of the sync, `post-install`/`post-upgrade` hooks after them, and test
//! hooks are left out with `skipTests`. Hooks with no such mapping
//! (delete and rollback hooks) are refused with a message.

use serde_json::Value;

/// The annotation that makes an object a Helm hook.
pub const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";

/// When an object is applied within a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncPhase {
    /// Before every ordinary object (Helm `pre-install`, `pre-upgrade`).
    Pre,
    /// Ordinary objects.
    Main,
    /// After every ordinary object (Helm `post-install`, `post-upgrade`).
    Post,
}

/// What a `helm.sh/hook` annotation means to Tidegate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookKind {
    /// Applied in this phase.
    Phase(SyncPhase),
    /// A test hook (`test`, `test-success`): left out with `skipTests`.
    Test,
    /// No mapping: the message says why.
    Refused(String),
}

/// Classifies a `helm.sh/hook` value (a comma-separated list of events).
pub fn classify_hook(value: &str) -> HookKind {
    let events: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let has = |names: &[&str]| events.iter().any(|e| names.contains(e));
    let pre = has(&["pre-install", "pre-upgrade"]);
    let post = has(&["post-install", "post-upgrade"]);
    let test = has(&["test", "test-success"]);
    let unknown: Vec<&str> = events
        .iter()
        .copied()
        .filter(|e| {
            ![
                "pre-install",
                "pre-upgrade",
                "post-install",
                "post-upgrade",
                "test",
                "test-success",
                "pre-delete",
                "post-delete",
                "pre-rollback",
                "post-rollback",
            ]
            .contains(e)
        })
        .collect();
    if !unknown.is_empty() {
        return HookKind::Refused(format!("unknown Helm hook event(s) {}", unknown.join(", ")));
    }
    match (pre, post, test) {
        (true, true, _) => HookKind::Refused(format!(
            "hook {value:?} is both a pre- and a post- hook; Tidegate applies an object once per sync"
        )),
        (true, false, _) => HookKind::Phase(SyncPhase::Pre),
        (false, true, _) => HookKind::Phase(SyncPhase::Post),
        (false, false, true) => HookKind::Test,
        (false, false, false) => HookKind::Refused(format!(
            "hook {value:?} runs only on delete or rollback, which Tidegate does not map to a sync phase"
        )),
    }
}

/// The sync phase of a manifest: its Helm hook's phase, else `Main`.
pub fn sync_phase(manifest: &Value) -> SyncPhase {
    match manifest["metadata"]["annotations"][HELM_HOOK_ANNOTATION]
        .as_str()
        .map(classify_hook)
    {
        Some(HookKind::Phase(p)) => p,
        _ => SyncPhase::Main,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_map_to_phases() {
        assert_eq!(
            classify_hook("pre-install,pre-upgrade"),
            HookKind::Phase(SyncPhase::Pre)
        );
        assert_eq!(
            classify_hook("post-upgrade"),
            HookKind::Phase(SyncPhase::Post)
        );
        assert_eq!(
            classify_hook("pre-install, pre-delete"),
            HookKind::Phase(SyncPhase::Pre)
        );
        assert_eq!(classify_hook("test"), HookKind::Test);
        assert!(matches!(classify_hook("pre-delete"), HookKind::Refused(_)));
        assert!(matches!(
            classify_hook("pre-install,post-install"),
            HookKind::Refused(_)
        ));
        assert!(matches!(classify_hook("crd-install"), HookKind::Refused(_)));
        let hook =
            serde_json::json!({"metadata": {"annotations": {"helm.sh/hook": "post-install"}}});
        assert_eq!(sync_phase(&hook), SyncPhase::Post);
        assert_eq!(sync_phase(&serde_json::json!({})), SyncPhase::Main);
    }
}
