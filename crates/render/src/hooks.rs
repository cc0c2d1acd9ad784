//! Sync hooks (`tidegate.dev/hook` Jobs) taken out of an app's objects.

use tidegate_core::{
    Diagnostic, Diagnostics, RenderedObject,
    sync_hooks::{HOOK_LABEL, hook_of},
    tracking::MANAGED_BY_LABEL,
};

/// Splits rendered objects into ordinary objects and hooks. A hook Tidegate
/// cannot run is reported at its file:line and left out of both.
pub(crate) fn split_hooks(
    objects: Vec<RenderedObject>,
    cluster: &str,
    problems: &mut Diagnostics,
) -> (Vec<RenderedObject>, Vec<RenderedObject>) {
    let mut plain = Vec::with_capacity(objects.len());
    let mut hooks = Vec::new();
    for mut o in objects {
        match hook_of(&o.manifest) {
            Ok(None) => plain.push(o),
            Ok(Some(spec)) => {
                // A hook is no managed object of the environment: readers
                // that list by the managed-by label never see it.
                if let Some(labels) = o.manifest_mut()["metadata"]["labels"].as_object_mut() {
                    labels.remove(MANAGED_BY_LABEL);
                }
                o.manifest_mut()["metadata"]["labels"][HOOK_LABEL] = spec.phase.as_str().into();
                hooks.push(o);
            }
            Err(problem) => problems.push(
                Diagnostic::new(problem.message)
                    .at(&o.provenance.path, Some(o.provenance.line))
                    .in_cluster(cluster)
                    .for_object(&o.key)
                    .help(problem.help),
            ),
        }
    }
    (plain, hooks)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;
    use serde_json::json;
    use tidegate_core::{ObjectKey, Provenance};

    fn object(kind: &str, annotations: serde_json::Value) -> RenderedObject {
        RenderedObject {
            key: ObjectKey::new("", kind, Some("web"), "migrate"),
            manifest: json!({"apiVersion": if kind == "Job" {"batch/v1"} else {"v1"}, "kind": kind,
                "metadata": {"name": "migrate", "annotations": annotations,
                    "labels": {"app.kubernetes.io/managed-by": "tidegate"}}})
            .into(),
            provenance: Provenance {
                commit: "c".into(),
                path: "manifests/web/migrate.yaml".into(),
                document: 0,
                line: 7,
            },
        }
    }

    #[test]
    fn hooks_leave_the_objects_and_bad_ones_are_reported_at_their_line() {
        let mut problems = Diagnostics::default();
        let (plain, hooks) = split_hooks(
            vec![
                object("Job", json!({"tidegate.dev/hook": "PreSync"})),
                object("ConfigMap", json!({})),
                object("Pod", json!({"tidegate.dev/hook": "PostSync"})),
            ],
            "eks",
            &mut problems,
        );
        assert_eq!(plain.len(), 1);
        assert_eq!(hooks.len(), 1);
        let labels = &hooks[0].manifest["metadata"]["labels"];
        assert_eq!(labels["tidegate.dev/hook"], "PreSync");
        assert!(labels.get("app.kubernetes.io/managed-by").is_none());
        let text = problems.to_string();
        assert!(text.contains("manifests/web/migrate.yaml:7"), "{text}");
        assert!(
            text.contains("must be a batch/v1 Job, but this is v1 Pod"),
            "{text}"
        );
    }
}
