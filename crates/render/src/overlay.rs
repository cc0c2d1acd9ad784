//! Overlays: image and replica overrides, merge and JSON patches, and the
//! environment's Deployment strategy.

use serde_json::{Map, Value};
use tidegate_core::{
    ObjectKey,
    environment::{DeploymentStrategy, ImageOverride, Patch, ReplicaOverride},
};

/// Applies an image override to every container of `manifest`; returns how
/// many containers it changed.
pub fn apply_image(manifest: &mut Value, image: &ImageOverride) -> usize {
    let mut changed = 0;
    visit_containers(manifest, &mut |container| {
        let Some(current) = container.get("image").and_then(Value::as_str) else {
            return;
        };
        let (name, tag, digest) = split_image(current);
        if name != image.name {
            return;
        }
        let mut new = image.new_name.clone().unwrap_or_else(|| name.to_string());
        match (&image.digest, &image.new_tag) {
            (Some(d), _) => {
                new.push('@');
                new.push_str(d);
            }
            (None, Some(t)) => {
                new.push(':');
                new.push_str(t);
            }
            (None, None) => {
                if let Some(t) = tag {
                    new.push(':');
                    new.push_str(t);
                }
                if let Some(d) = digest {
                    new.push('@');
                    new.push_str(d);
                }
            }
        }
        container.insert("image".into(), Value::String(new));
        changed += 1;
    });
    changed
}

/// Calls `f` for every container, init container and ephemeral container
/// anywhere in the object (Pods, workload templates, CronJob templates, and
/// custom resources that embed pod specs).
fn visit_containers(value: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if matches!(
                    key.as_str(),
                    "containers" | "initContainers" | "ephemeralContainers"
                ) && let Value::Array(items) = child
                {
                    for item in items.iter_mut() {
                        if let Value::Object(container) = item {
                            f(container);
                        }
                    }
                } else {
                    visit_containers(child, f);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| visit_containers(i, f)),
        _ => {}
    }
}

/// Splits `registry:5000/repo/name:tag@sha256:...` into name, tag and digest.
pub fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(&rest[last_slash + i + 1..]),
            digest,
        ),
        None => (rest, None, digest),
    }
}

/// Sets `spec.replicas` when kind and name match; returns whether it did.
pub fn apply_replicas(key: &ObjectKey, manifest: &mut Value, r: &ReplicaOverride) -> bool {
    if key.kind != r.kind || key.name != r.name {
        return false;
    }
    if let Some(spec) = manifest.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("replicas".into(), r.count.into());
    } else if let Some(obj) = manifest.as_object_mut() {
        obj.insert("spec".into(), serde_json::json!({ "replicas": r.count }));
    }
    true
}

/// Applies a merge or JSON patch to a copy of `manifest` and returns the
/// patched copy; the original is never left half-patched.
///
/// JSON patches go through `json_patch::patch_unsafe` on that copy: the
/// undoing `json_patch::patch` panics (`unreachable!`) when a `move` removes
/// its source and then fails to add it, and an undo is not needed on a copy.
pub fn apply_patch(manifest: &Value, patch: &Patch) -> Result<Value, String> {
    let mut patched = manifest.clone();
    if let Some(merge) = &patch.merge {
        json_patch::merge(&mut patched, merge);
    }
    if let Some(ops) = &patch.json {
        let ops: json_patch::Patch = serde_json::from_value(ops.clone())
            .map_err(|e| format!("not a valid JSON patch (RFC 6902): {e}"))?;
        json_patch::patch_unsafe(&mut patched, &ops)
            .map_err(|e| format!("JSON patch failed: {e}"))?;
    }
    Ok(patched)
}

/// Writes the environment's strategy into a Deployment that sets none.
pub fn inject_strategy(key: &ObjectKey, manifest: &mut Value, strategy: &DeploymentStrategy) {
    if key.group != "apps" || key.kind != "Deployment" {
        return;
    }
    let Some(obj) = manifest.as_object_mut() else {
        return;
    };
    let spec = obj
        .entry("spec")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(spec) = spec.as_object_mut()
        && !spec.contains_key("strategy")
    {
        spec.insert(
            "strategy".into(),
            serde_json::json!({
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxSurge": strategy.max_surge.to_json(),
                    "maxUnavailable": strategy.max_unavailable.to_json(),
                }
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_image_references() {
        assert_eq!(split_image("nginx"), ("nginx", None, None));
        assert_eq!(split_image("nginx:1.27"), ("nginx", Some("1.27"), None));
        assert_eq!(
            split_image("localhost:5000/a/b:v1@sha256:ab"),
            ("localhost:5000/a/b", Some("v1"), Some("sha256:ab"))
        );
        assert_eq!(
            split_image("localhost:5000/a"),
            ("localhost:5000/a", None, None)
        );
    }

    #[test]
    fn image_overrides_touch_every_container_kind() {
        let mut m = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "image": "ghcr.io/x/app:1"}],
            "containers": [{"name": "a", "image": "ghcr.io/x/app:1"}, {"name": "b", "image": "other:2"}]
        }}}}}});
        let o = ImageOverride {
            name: "ghcr.io/x/app".into(),
            new_name: None,
            new_tag: Some("2".into()),
            digest: None,
        };
        assert_eq!(apply_image(&mut m, &o), 2);
        let spec = &m["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["image"], "ghcr.io/x/app:2");
        assert_eq!(spec["initContainers"][0]["image"], "ghcr.io/x/app:2");
        assert_eq!(spec["containers"][1]["image"], "other:2");
    }

    #[test]
    fn a_failing_move_is_an_error_and_leaves_the_object_alone() {
        let manifest = json!({"metadata": {"name": "a"}});
        let patch = Patch {
            target: Default::default(),
            merge: None,
            json: Some(json!([
                {"op": "add", "path": "/metadata/x", "value": 1},
                {"op": "move", "from": "/metadata/x", "path": "/nope/x"}
            ])),
        };
        let err = apply_patch(&manifest, &patch).expect_err("the move cannot succeed");
        assert!(err.starts_with("JSON patch failed"), "{err}");
        assert_eq!(manifest, json!({"metadata": {"name": "a"}}));
    }

    #[test]
    fn strategy_is_injected_only_when_absent() {
        let key = ObjectKey::new("apps", "Deployment", Some("n"), "d");
        let s = DeploymentStrategy {
            max_surge: tidegate_core::intorpercent::IntOrPercent::Percent(25),
            max_unavailable: tidegate_core::intorpercent::IntOrPercent::Int(0),
        };
        let mut bare = json!({"spec": {"replicas": 1}});
        inject_strategy(&key, &mut bare, &s);
        assert_eq!(
            bare["spec"]["strategy"]["rollingUpdate"],
            json!({"maxSurge": "25%", "maxUnavailable": 0})
        );
        let mut own = json!({"spec": {"strategy": {"type": "Recreate"}}});
        inject_strategy(&key, &mut own, &s);
        assert_eq!(own["spec"]["strategy"], json!({"type": "Recreate"}));
    }
}
