//! Diffs users can trust: what differs between an object in the cluster and
//! what applying Git's version would make of it.
//!
//! The default is a **server-side diff**: the sync engine asks the API server
//! for a server-side-apply dry run of the desired object, and this crate
//! compares that prediction with the live object. Both come from the server,
//! so defaulted fields, quantity formats and admission changes are identical
//! on both sides and are never reported as drift. When the dry run is refused,
//! a **client-side diff** compares only the fields Tidegate sets, and the
//! result says so.
//!
//! Before comparing, both sides are [normalized](normalize::normalize)
//! (server bookkeeping removed), `ignoreDifferences` rules are applied
//! (JSON pointers, and fields owned by named field managers), and Secret
//! values are [masked](secret). Each differing field is reported with its
//! current owner from `managedFields`.
//!
//! Architecture invariant: pure. No HTTP, no clock; everything is a function
//! of the objects handed in.

mod ignore;
mod normalize;
mod owners;
mod project;
mod secret;
mod text;

pub use ignore::IgnoreRule;
pub use normalize::{normalize, normalized_eq};
pub use owners::owners_of;
pub use secret::MASK;
pub use text::unified;

use serde::Serialize;
use serde_json::Value;
use tidegate_core::ObjectKey;

/// The state of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "PascalCase")]
pub enum DiffStatus {
    /// The cluster already matches Git.
    InSync,
    /// The cluster differs from Git.
    OutOfSync,
    /// The object is in Git but not in the cluster.
    Missing,
    /// The object is in the cluster (inventory) but no longer in Git.
    ToPrune,
}

/// How the comparison was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "camelCase")]
pub enum DiffMode {
    /// Live object vs. the server's dry-run prediction.
    ServerSide,
    /// Only the fields Tidegate sets, compared client-side, because the dry run was refused.
    ClientSide {
        /// Why the server-side dry run could not be used.
        reason: String,
    },
}

/// What the server predicts for the desired object, or why it could not.
#[derive(Debug, Clone, Copy)]
pub enum Prediction<'a> {
    /// The result of a server-side apply dry run.
    DryRun(&'a Value),
    /// The dry run was refused (e.g. forbidden); fall back to client-side.
    Refused(&'a str),
}

/// A field that differs, with who owns it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// RFC 6902 operation: add, remove or replace.
    pub op: String,
    /// JSON pointer of the field.
    pub path: String,
    /// Field managers that own the field in the live object (empty when nobody does).
    pub owners: Vec<String>,
}

/// The diff of one object. API boundary.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectDiff {
    /// The object.
    pub key: ObjectKey,
    /// The verdict.
    pub status: DiffStatus,
    /// How it was reached.
    #[serde(flatten)]
    pub mode: DiffMode,
    /// RFC 6902 patch from the live object to the desired result (Secret values masked).
    pub patch: json_patch::Patch,
    /// The differing fields and their owners.
    pub changes: Vec<FieldChange>,
    /// The live object, normalized and masked (`None` when missing, and
    /// when in sync: there is nothing to show, and a plan of thousands of
    /// objects need not keep two copies of each).
    #[serde(skip)]
    pub before: Option<Value>,
    /// The desired result, normalized and masked (`None` when to be
    /// pruned, and when in sync).
    #[serde(skip)]
    pub after: Option<Value>,
}

/// The inputs of [`diff_object`].
#[derive(Debug, Clone, Copy)]
pub struct DiffInput<'a> {
    /// The object.
    pub key: &'a ObjectKey,
    /// The rendered (desired) manifest.
    pub desired: &'a Value,
    /// The live object, if it exists.
    pub live: Option<&'a Value>,
    /// The server's prediction for `desired`.
    pub prediction: Prediction<'a>,
    /// `ignoreDifferences` rules (those not matching `key` are skipped).
    pub ignore: &'a [IgnoreRule],
}

/// Compares a desired object with the live one.
pub fn diff_object(input: DiffInput<'_>) -> ObjectDiff {
    // Most objects of a plan are in sync: when the prediction is the live
    // object once normalized, nothing is copied, ignored, masked or diffed
    // (ignore rules and masking remove or mask the same fields on both
    // sides, so equal objects stay equal).
    if let (Prediction::DryRun(predicted), Some(live)) = (input.prediction, input.live)
        && normalized_eq(predicted, live)
    {
        return ObjectDiff {
            key: input.key.clone(),
            status: DiffStatus::InSync,
            mode: DiffMode::ServerSide,
            patch: json_patch::Patch(Vec::new()),
            changes: Vec::new(),
            before: None,
            after: None,
        };
    }
    full_diff(input)
}

/// [`diff_object`] without its in-sync shortcut.
fn full_diff(input: DiffInput<'_>) -> ObjectDiff {
    let (mode, predicted) = match input.prediction {
        Prediction::DryRun(v) => (DiffMode::ServerSide, v.clone()),
        Prediction::Refused(reason) => (
            DiffMode::ClientSide {
                reason: reason.to_string(),
            },
            input.desired.clone(),
        ),
    };
    let mut after = normalize(predicted);
    let Some(live) = input.live else {
        secret::mask(input.key, None, Some(&mut after));
        let patch = json_patch::diff(&Value::Null, &after);
        return ObjectDiff {
            key: input.key.clone(),
            status: DiffStatus::Missing,
            mode,
            changes: Vec::new(),
            patch,
            before: None,
            after: Some(after),
        };
    };
    let mut before = normalize(live.clone());
    if let DiffMode::ClientSide { .. } = mode {
        before = project::project(&before, &after);
    }
    for rule in input.ignore.iter().filter(|r| r.matches(input.key)) {
        rule.apply(live, &mut before);
        rule.apply(live, &mut after);
    }
    secret::mask(input.key, Some(&mut before), Some(&mut after));
    let patch = json_patch::diff(&before, &after);
    let changes = patch
        .0
        .iter()
        .map(|op| {
            let (name, path) = op_parts(op);
            FieldChange {
                op: name.to_string(),
                owners: owners_of(live, &path),
                path,
            }
        })
        .collect::<Vec<_>>();
    let in_sync = changes.is_empty();
    ObjectDiff {
        key: input.key.clone(),
        status: if in_sync {
            DiffStatus::InSync
        } else {
            DiffStatus::OutOfSync
        },
        mode,
        patch,
        changes,
        before: (!in_sync).then_some(before),
        after: (!in_sync).then_some(after),
    }
}

/// An object in the cluster's inventory that Git no longer has.
pub fn to_prune(key: &ObjectKey, live: &Value) -> ObjectDiff {
    let mut before = normalize(live.clone());
    secret::mask(key, Some(&mut before), None);
    ObjectDiff {
        key: key.clone(),
        status: DiffStatus::ToPrune,
        mode: DiffMode::ServerSide,
        patch: json_patch::diff(&before, &Value::Null),
        changes: Vec::new(),
        before: Some(before),
        after: None,
    }
}

fn op_parts(op: &json_patch::PatchOperation) -> (&'static str, String) {
    use json_patch::PatchOperation as P;
    match op {
        P::Add(o) => ("add", o.path.to_string()),
        P::Remove(o) => ("remove", o.path.to_string()),
        P::Replace(o) => ("replace", o.path.to_string()),
        P::Move(o) => ("move", o.path.to_string()),
        P::Copy(o) => ("copy", o.path.to_string()),
        P::Test(o) => ("test", o.path.to_string()),
    }
}

#[cfg(test)]
mod tests;
