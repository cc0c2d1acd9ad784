//! Audit entries of maintenance windows: a cluster that waits for (or was
//! passed over until) its window, and windows overridden with a reason.

use tidegate_audit::{Action, Entry};
use tidegate_rollout::{machine::TransitionKind, windows::format_ms};

/// The audit entry of a window transition (`window-closed`,
/// `windows-ignored`); `None` for other transitions. `entry` makes an entry
/// of the rollout (actor, environment, revision) for an action.
pub(crate) fn entry(entry: impl Fn(Action) -> Entry, kind: &TransitionKind) -> Option<Entry> {
    match kind {
        TransitionKind::WindowClosed {
            cluster,
            reason,
            opens_at_ms,
            deferred,
        } => {
            let opens = format_ms(*opens_at_ms);
            let mut e = entry(Action::Other(kind.action().into()))
                .cluster(cluster)
                .message(format!(
                    "{reason}: {} until it opens at {opens}",
                    if *deferred {
                        "the wave goes on without it; the rollout comes back for it"
                    } else {
                        "it waits, and so does its wave's gate,"
                    }
                ));
            e.details.insert("opensAt".into(), opens);
            e.details.insert(
                "policy".into(),
                if *deferred { "skipAndReturn" } else { "wait" }.into(),
            );
            Some(e)
        }
        TransitionKind::WindowsIgnored { reason } => {
            Some(entry(Action::Other(kind.action().into())).message(format!(
                "maintenance windows and freezes ignored (--ignore-windows): {reason}"
            )))
        }
        _ => None,
    }
}
