//! Built-in resources Tidegate reads and writes for its own records
//! (journals, gates, drift records), as dynamic `ApiResource`s.

use kube::api::ApiResource;

/// The core `v1` ConfigMap resource.
pub fn configmap_resource() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    }
}
