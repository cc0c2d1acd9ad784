//! The metadata Tidegate puts on every object it manages.

use crate::object::ObjectKey;

/// Label on every managed object; the sync engine lists live objects by it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "tidegate";
/// Label naming the environment that manages an object, beside
/// [`MANAGED_BY_LABEL`]: live state is listed by both, so one environment's
/// reads never carry another's objects. Objects applied before this label
/// existed lack it; readers fetch those by name.
pub const ENVIRONMENT_LABEL: &str = "tidegate.dev/environment";
/// Annotation that ties a live object to one environment, app and object;
/// objects without it are never pruned.
pub const TRACKING_ANNOTATION: &str = "tidegate.dev/tracking-id";
/// Annotation ordering objects inside their kind's apply phase (an integer).
pub const SYNC_WAVE_ANNOTATION: &str = "tidegate.dev/sync-wave";
/// Field manager name for server-side apply.
pub const FIELD_MANAGER: &str = "tidegate";

/// The label selector of the objects Tidegate manages: all of them, or
/// (with `environment`) only one environment's.
pub fn managed_selector(environment: Option<&str>) -> String {
    match environment {
        Some(env) => format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{ENVIRONMENT_LABEL}={env}"),
        None => format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"),
    }
}

/// The tracking id `<env>/<app>/<group>/<kind>/<namespace>/<name>`. The core
/// group and a cluster-scoped object's namespace are empty, so the id always
/// has six `/`-separated parts.
pub fn tracking_id(env: &str, app: &str, key: &ObjectKey) -> String {
    format!(
        "{env}/{app}/{}/{}/{}/{}",
        key.group,
        key.kind,
        key.namespace.as_deref().unwrap_or(""),
        key.name
    )
}

/// The parts of a tracking id: environment, app and object key.
pub fn parse_tracking_id(id: &str) -> Option<(String, String, ObjectKey)> {
    let parts: Vec<&str> = id.split('/').collect();
    let [env, app, group, kind, namespace, name] = parts.as_slice() else {
        return None;
    };
    if env.is_empty() || app.is_empty() || kind.is_empty() || name.is_empty() {
        return None;
    }
    Some((
        env.to_string(),
        app.to_string(),
        ObjectKey {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
            name: name.to_string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_ids_round_trip() {
        let key = ObjectKey::new("apps", "Deployment", Some("web"), "api");
        let id = tracking_id("prod", "gin-app", &key);
        assert_eq!(id, "prod/gin-app/apps/Deployment/web/api");
        assert_eq!(
            parse_tracking_id(&id),
            Some(("prod".into(), "gin-app".into(), key))
        );
        let ns = ObjectKey::new("", "Namespace", None, "web");
        assert_eq!(tracking_id("dev", "a", &ns), "dev/a//Namespace//web");
        assert_eq!(
            parse_tracking_id("dev/a//Namespace//web").map(|t| t.2),
            Some(ns)
        );
        assert_eq!(parse_tracking_id("dev/a/Namespace/web"), None);
    }

    #[test]
    fn selectors_name_the_environment_when_given() {
        assert_eq!(
            managed_selector(None),
            "app.kubernetes.io/managed-by=tidegate"
        );
        assert_eq!(
            managed_selector(Some("prod")),
            "app.kubernetes.io/managed-by=tidegate,tidegate.dev/environment=prod"
        );
    }
}
