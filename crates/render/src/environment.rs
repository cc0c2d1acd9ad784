//! Rendering a whole environment, cluster by cluster.

use crate::{
    manifest::{BaseObject, ParseCache, load_app_cached},
    overlay,
};
use serde::Serialize;
use serde_json::Value;
use std::{collections::BTreeMap, sync::Arc};
use tidegate_core::{
    Diagnostic, Diagnostics, Environment, ObjectKey, RenderedObject,
    environment::{App, Cluster, Located, Overlay},
    files::{AppSource, Budget},
    object::apply_phase,
    tracking::{
        ENVIRONMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, SYNC_WAVE_ANNOTATION,
        TRACKING_ANNOTATION, tracking_id,
    },
};
use tracing::debug_span;

/// Everything an environment renders to, per cluster. API boundary.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    /// Environment name.
    pub environment: String,
    /// Commit the manifests were read at.
    pub commit: String,
    /// One entry per cluster, in environment order.
    pub clusters: Vec<RenderedCluster>,
}

/// The objects of one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedCluster {
    /// Cluster name.
    pub cluster: String,
    /// One entry per app, in environment order.
    pub apps: Vec<RenderedApp>,
}

/// The objects of one app in one cluster, in apply order.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedApp {
    /// App name.
    pub app: String,
    /// The objects.
    pub objects: Vec<RenderedObject>,
    /// Its sync hooks (`tidegate.dev/hook` Jobs), kept apart from the
    /// objects: they are run by the sync, never diffed, pruned or
    /// recorded in the inventory (see `tidegate_core::sync_hooks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<RenderedObject>,
}

/// Renders every app for every cluster of `env`. `env_file` is the
/// environment file's path (for diagnostics) and `commit` the manifests' SHA.
pub fn render_environment(
    env: &Environment,
    env_file: &str,
    commit: &str,
    sources: &[AppSource],
) -> Result<Rendered, Diagnostics> {
    let _span = debug_span!("render", environment = %env.metadata.name).entered();
    let mut problems = Diagnostics::default();
    let mut bases: BTreeMap<&str, Bases> = BTreeMap::new();
    // Apps with documents whose identity is unreadable: an overlay aimed at
    // such an object would only repeat the real problem as "matches nothing".
    let mut incomplete: Vec<&str> = Vec::new();
    let budget = Budget::default();
    let mut cache = ParseCache::default();
    for app in &env.spec.apps {
        let Some(source) = sources.iter().find(|s| s.app == app.name) else {
            problems.push(
                Diagnostic::new(format!("no manifests were read for app {}", app.name))
                    .at(env_file, app.line()),
            );
            continue;
        };
        let namespace = app.namespace.as_deref().unwrap_or("default");
        let mut complete = true;
        let mut load = |files| {
            let loaded = load_app_cached(files, commit, &mut cache, budget.app_objects);
            complete &= loaded.complete;
            problems.extend(loaded.problems);
            problems.extend(duplicates(
                loaded
                    .objects
                    .iter()
                    .map(|o| (o.key(namespace), &o.provenance)),
                None,
            ));
            loaded.objects
        };
        let app_bases = match &source.templated {
            // Helm and Kustomize apps: what the tool rendered, per cluster.
            Some(t) => {
                let outputs = t
                    .outputs
                    .iter()
                    .map(|files| load(files.as_slice()))
                    .collect();
                complete &= t.problems.is_empty();
                problems.extend(t.problems.clone());
                Bases::PerCluster {
                    outputs,
                    clusters: &t.clusters,
                }
            }
            None if app.helm.is_some() || app.kustomize.is_some() => {
                complete = false;
                problems.push(
                    Diagnostic::new(format!(
                        "app {}: the chart or kustomization was not rendered",
                        app.name
                    ))
                    .at(env_file, app.line())
                    .help("Helm and Kustomize apps are rendered by tidegate-template before render_environment"),
                );
                Bases::Shared(Vec::new())
            }
            None => Bases::Shared(load(source.files.as_slice())),
        };
        if !complete {
            incomplete.push(&app.name);
        }
        bases.insert(&app.name, app_bases);
        check_selectors(env, env_file, app, &mut problems);
    }
    let mut clusters = Vec::new();
    for cluster in &env.spec.clusters {
        let labels = cluster.selector_labels();
        let mut apps = Vec::new();
        for app in &env.spec.apps {
            let base = bases
                .get(app.name.as_str())
                .map_or(&[][..], |b| b.for_cluster(&cluster.name));
            let mut found = Diagnostics::default();
            let objects = render_app(env, env_file, app, cluster, &labels, base, &mut found);
            if incomplete.contains(&app.name.as_str()) {
                found.0.retain(|d| !d.message.ends_with("matches nothing"));
            }
            let (objects, hooks) = crate::hooks::split_hooks(objects, &cluster.name, &mut found);
            problems.extend(found);
            apps.push(RenderedApp {
                app: app.name.clone(),
                objects,
                hooks,
            });
        }
        let count: usize = apps.iter().map(|a| a.objects.len()).sum();
        if count > budget.environment_objects {
            problems.push(
                Diagnostic::new(format!(
                    "{count} objects for one cluster, over the limit of {} per environment",
                    budget.environment_objects
                ))
                .at(env_file, None)
                .in_cluster(&cluster.name)
                .help("split the environment (the limits are in docs/limits.md)"),
            );
        }
        let all = apps
            .iter()
            .flat_map(|a| a.objects.iter().map(|o| (o.key.clone(), &o.provenance)));
        problems.extend(duplicates(all, Some(&cluster.name)));
        clusters.push(RenderedCluster {
            cluster: cluster.name.clone(),
            apps,
        });
    }
    problems.into_result(Rendered {
        environment: env.metadata.name.clone(),
        commit: commit.to_string(),
        clusters,
    })
}

/// An app's objects before overlays: the same for every cluster (plain
/// YAML), or one set per distinct Helm/Kustomize output.
enum Bases<'a> {
    Shared(Vec<BaseObject>),
    PerCluster {
        outputs: Vec<Vec<BaseObject>>,
        clusters: &'a BTreeMap<String, usize>,
    },
}

impl Bases<'_> {
    fn for_cluster(&self, cluster: &str) -> &[BaseObject] {
        match self {
            Bases::Shared(objects) => objects,
            Bases::PerCluster { outputs, clusters } => clusters
                .get(cluster)
                .and_then(|i| outputs.get(*i))
                .map_or(&[][..], Vec::as_slice),
        }
    }
}

/// An overlay whose cluster selector matches no cluster of the environment.
fn check_selectors(env: &Environment, env_file: &str, app: &App, problems: &mut Diagnostics) {
    for overlay in &app.overlays {
        if let Some(selector) = &overlay.cluster_selector
            && !env
                .spec
                .clusters
                .iter()
                .any(|c| selector.matches(&c.selector_labels()))
        {
            problems.push(
                Diagnostic::new(format!(
                    "app {}: overlay's clusterSelector matches no cluster of the environment",
                    app.name
                ))
                .at(env_file, overlay.line())
                .help("check the labels against spec.clusters[].labels (tidegate.dev/cluster and tidegate.dev/provider are implicit)"),
            );
        }
    }
}

/// One app for one cluster: overlays, namespace, strategy, tracking metadata.
fn render_app(
    env: &Environment,
    env_file: &str,
    app: &Located<App>,
    cluster: &Cluster,
    labels: &BTreeMap<String, String>,
    base: &[BaseObject],
    problems: &mut Diagnostics,
) -> Vec<RenderedObject> {
    let namespace = app.namespace.as_deref().unwrap_or("default");
    let mut objects: Vec<RenderedObject> = base
        .iter()
        .map(|b| {
            let key = b.key(namespace);
            let mut manifest = b.manifest.clone();
            if let (Some(ns), Some(meta)) = (&key.namespace, manifest["metadata"].as_object_mut()) {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            RenderedObject {
                key,
                manifest: manifest.into(),
                provenance: b.provenance.clone(),
            }
        })
        .collect();
    let overlays = app.overlays.iter().filter(|o| {
        o.cluster_selector
            .as_ref()
            .is_none_or(|s| s.matches(labels))
    });
    for overlay in overlays {
        apply_overlay(env_file, app, cluster, overlay, &mut objects, problems);
    }
    if let Some(strategy) = &env.spec.rollout.deployment_strategy {
        for o in &mut objects {
            overlay::inject_strategy(&o.key, Arc::make_mut(&mut o.manifest), strategy);
        }
    }
    for bg in env.spec.blue_green.iter().filter(|bg| bg.app == app.name) {
        apply_active_color(env_file, bg, cluster, &mut objects, problems);
        apply_color_replicas(env_file, bg, cluster, &mut objects, problems);
    }
    for o in &mut objects {
        inject_tracking(&env.metadata.name, &app.name, o);
    }
    objects.sort_by_cached_key(|o| {
        (
            tidegate_core::hooks::sync_phase(&o.manifest),
            apply_phase(&o.key.group, &o.key.kind),
            sync_wave(&o.manifest),
            o.key.clone(),
        )
    });
    objects
}

fn apply_overlay(
    env_file: &str,
    app: &App,
    cluster: &Cluster,
    overlay: &Overlay,
    objects: &mut [RenderedObject],
    problems: &mut Diagnostics,
) {
    let unmatched = |line: Option<u64>, what: String, help: &str| {
        Diagnostic::new(format!("app {}: {what} matches nothing", app.name))
            .at(env_file, line)
            .in_cluster(&cluster.name)
            .help(help.to_string())
    };
    for image in &overlay.images {
        let changed: usize = objects
            .iter_mut()
            .map(|o| overlay::apply_image(o.manifest_mut(), image))
            .sum();
        if changed == 0 {
            problems.push(unmatched(
                image.line(),
                format!("image override {:?}", image.name),
                "name the image as the manifests write it, without tag or digest",
            ));
        }
    }
    for replicas in &overlay.replicas {
        let matched = objects
            .iter_mut()
            .map(|o| overlay::apply_replicas(&o.key, Arc::make_mut(&mut o.manifest), replicas))
            .filter(|applied| *applied)
            .count();
        if matched == 0 {
            problems.push(unmatched(
                replicas.line(),
                format!("replica override of {} {:?}", replicas.kind, replicas.name),
                "check the workload's kind and metadata.name",
            ));
        }
    }
    for patch in &overlay.patches {
        let mut matched = 0;
        for o in objects.iter_mut().filter(|o| patch.target.matches(&o.key)) {
            matched += 1;
            let outcome = overlay::apply_patch(&o.manifest, patch).and_then(|patched| {
                if identity(&patched) == identity(&o.manifest) {
                    Ok(patched)
                } else {
                    Err("the patch changes the object's apiVersion, kind, name or namespace".into())
                }
            });
            match outcome {
                Ok(patched) => o.manifest = patched.into(),
                Err(message) => problems.push(
                    Diagnostic::new(format!("app {}: {message}", app.name))
                        .at(env_file, patch.line())
                        .in_cluster(&cluster.name)
                        .for_object(format!("{} ({})", o.key, o.provenance))
                        .help("check the patch's paths against the object (JSON pointers start at the object's root)"),
                ),
            }
        }
        if matched == 0 {
            problems.push(unmatched(
                patch.line(),
                format!("patch target {}", describe_target(&patch.target)),
                "check the target's group, kind, name and namespace",
            ));
        }
    }
}

/// Git decides which colour gets traffic: every Service of a blue-green entry
/// selects `activeColor` under `selectorKey`, and the entry's Ingress sends
/// its `<service>-<colour>` backends to the active colour.
/// A colour with `replicas:` set (an idle colour scaled down) runs that many.
fn apply_color_replicas(
    env_file: &str,
    bg: &Located<tidegate_core::environment::BlueGreen>,
    cluster: &Cluster,
    objects: &mut [RenderedObject],
    problems: &mut Diagnostics,
) {
    for (color, target) in &bg.colors {
        let Some(count) = target.replicas else {
            continue;
        };
        let replicas = tidegate_core::environment::ReplicaOverride {
            kind: "Deployment".into(),
            name: target.deployment.clone(),
            count,
        };
        let matched = objects
            .iter_mut()
            .filter(|o| o.key.group == "apps")
            .map(|o| overlay::apply_replicas(&o.key, Arc::make_mut(&mut o.manifest), &replicas))
            .fold(false, |a, b| a | b);
        if !matched {
            problems.push(
                Diagnostic::new(format!(
                    "blueGreen {}: colour {color} sets replicas, but Deployment {:?} is not among the app's objects",
                    bg.app, target.deployment
                ))
                .at(env_file, bg.line())
                .in_cluster(&cluster.name)
                .help("name the colour's Deployment as the app's manifests do"),
            );
        }
    }
}

fn apply_active_color(
    env_file: &str,
    bg: &Located<tidegate_core::environment::BlueGreen>,
    cluster: &Cluster,
    objects: &mut [RenderedObject],
    problems: &mut Diagnostics,
) {
    let active = &bg.active_color;
    for service in &bg.services {
        let found = objects
            .iter_mut()
            .find(|o| o.key.group.is_empty() && o.key.kind == "Service" && o.key.name == *service);
        match found {
            Some(o) => {
                let manifest = o.manifest_mut();
                if !manifest["spec"].is_object() {
                    manifest["spec"] = Value::Object(Default::default());
                }
                if !manifest["spec"]["selector"].is_object() {
                    manifest["spec"]["selector"] = Value::Object(Default::default());
                }
                manifest["spec"]["selector"][&bg.selector_key] = Value::String(active.clone());
            }
            None => problems.push(
                Diagnostic::new(format!(
                    "blueGreen {}: Service {service:?} is not among the app's objects",
                    bg.app
                ))
                .at(env_file, bg.line())
                .in_cluster(&cluster.name)
                .help("name a Service that the app's manifests define"),
            ),
        }
    }
    let Some(ingress) = &bg.ingress else { return };
    let Some(o) = objects.iter_mut().find(|o| {
        o.key.group == "networking.k8s.io" && o.key.kind == "Ingress" && o.key.name == *ingress
    }) else {
        problems.push(
            Diagnostic::new(format!(
                "blueGreen {}: Ingress {ingress:?} is not among the app's objects",
                bg.app
            ))
            .at(env_file, bg.line())
            .in_cluster(&cluster.name)
            .help("name an Ingress that the app's manifests define"),
        );
        return;
    };
    let colored = |name: &str| {
        bg.services
            .iter()
            .find(|s| bg.colors.keys().any(|c| name == format!("{s}-{c}")))
            .map(|s| format!("{s}-{active}"))
    };
    if let Some(rules) = o.manifest_mut()["spec"]["rules"].as_array_mut() {
        for path in rules
            .iter_mut()
            .filter_map(|r| r["http"]["paths"].as_array_mut())
            .flatten()
        {
            let name = path["backend"]["service"]["name"]
                .as_str()
                .map(str::to_string);
            if let Some(new) = name.as_deref().and_then(colored) {
                path["backend"]["service"]["name"] = Value::String(new);
            }
        }
    }
}

fn identity(v: &Value) -> [Option<&str>; 4] {
    [
        v["apiVersion"].as_str(),
        v["kind"].as_str(),
        v["metadata"]["name"].as_str(),
        v["metadata"]["namespace"].as_str(),
    ]
}

fn describe_target(t: &tidegate_core::environment::PatchTarget) -> String {
    let parts = [
        t.group.as_ref().map(|g| format!("group={g}")),
        t.kind.as_ref().map(|k| format!("kind={k}")),
        t.name.as_ref().map(|n| format!("name={n}")),
        t.namespace.as_ref().map(|n| format!("namespace={n}")),
    ];
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    format!("{{{}}}", parts.join(", "))
}

fn inject_tracking(env: &str, app: &str, object: &mut RenderedObject) {
    let id = tracking_id(env, app, &object.key);
    let Some(meta) = object.manifest_mut()["metadata"].as_object_mut() else {
        return;
    };
    for (field, key, value) in [
        ("labels", MANAGED_BY_LABEL, MANAGED_BY_VALUE.to_string()),
        ("labels", ENVIRONMENT_LABEL, env.to_string()),
        ("annotations", TRACKING_ANNOTATION, id),
    ] {
        let map = meta
            .entry(field)
            .or_insert_with(|| Value::Object(Default::default()));
        if !map.is_object() {
            *map = Value::Object(Default::default());
        }
        if let Some(map) = map.as_object_mut() {
            map.insert(key.into(), Value::String(value));
        }
    }
}

fn sync_wave(manifest: &Value) -> i64 {
    manifest["metadata"]["annotations"][SYNC_WAVE_ANNOTATION]
        .as_str()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Objects with the same key, each reported with both places.
fn duplicates<'a>(
    keys: impl Iterator<Item = (ObjectKey, &'a tidegate_core::Provenance)>,
    cluster: Option<&str>,
) -> Diagnostics {
    let mut seen: BTreeMap<ObjectKey, &tidegate_core::Provenance> = BTreeMap::new();
    let mut out = Diagnostics::default();
    for (key, provenance) in keys {
        if let Some(first) = seen.get(&key) {
            let mut d = Diagnostic::new(format!("duplicate object: also defined at {first}"))
                .at(&provenance.path, Some(provenance.line))
                .for_object(&key)
                .help("every object (group, kind, namespace, name) may be defined once per cluster; remove one");
            if let Some(c) = cluster {
                d = d.in_cluster(c);
            }
            out.push(d);
        } else {
            seen.insert(key, provenance);
        }
    }
    out
}
