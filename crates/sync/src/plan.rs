//! Planning a sync: resolve, read live state, dry-run, diff. No writes.

use crate::{
    Engine, ObjectProblem, SyncError, SyncOptions, Target,
    dryrun::{Answer, Inputs},
    inventory::{self, Inventory, InventoryRef},
    live::LiveObject,
    verdicts::{self, Verdicts},
};
use futures::{StreamExt, stream};
use kube::api::{Patch, PatchParams};
use serde_json::Value;
use std::{collections::BTreeSet, sync::Arc};
use tidegate_cluster::{Resolved, dynamic_api, with_retries};
use tidegate_core::{
    ObjectKey, RenderedObject,
    tracking::{FIELD_MANAGER, TRACKING_ANNOTATION},
};
use tidegate_diff::{
    DiffInput, DiffStatus, IgnoreRule, ObjectDiff, Prediction, diff_object, normalized_eq, to_prune,
};
use tracing::{Instrument, debug, info_span};

/// One desired object and what the cluster makes of it.
#[derive(Debug, Clone)]
pub struct PlannedObject {
    /// The app it belongs to.
    pub app: String,
    /// The rendered object.
    pub object: RenderedObject,
    /// The resource serving it; `None` for a custom resource whose CRD is
    /// applied in this same sync (resolved after the CRD is Established).
    pub resolved: Option<Resolved>,
    /// The diff; `None` for deferred custom resources (treated as to-apply).
    pub diff: Option<ObjectDiff>,
    /// Apply with `force`: the only conflicting managers made imperative
    /// changes (`kubectl scale/edit/patch`, operation Update), which is drift
    /// to correct, not a competing declaration of ownership.
    pub force: bool,
    /// The live `resourceVersion` over which applying this object is known
    /// to change nothing (the dry run predicted exactly the live object, or
    /// an in-sync verdict said so); recorded as a verdict by a sync that
    /// writes. Never set for Secrets.
    pub no_op_at: Option<String>,
}

impl PlannedObject {
    /// True when applying would change the cluster.
    pub fn needs_apply(&self) -> bool {
        self.diff
            .as_ref()
            .is_none_or(|d| d.status != DiffStatus::InSync)
    }
}

/// An object that left Git but is still in the cluster.
#[derive(Debug, Clone)]
pub struct PruneCandidate {
    /// The app it belonged to.
    pub app: String,
    /// Its reference in the old inventory.
    pub reference: InventoryRef,
    /// How to reach it.
    pub resolved: Resolved,
    /// The diff (status `ToPrune`).
    pub diff: ObjectDiff,
}

/// Everything a sync would do to one cluster. API boundary.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The cluster.
    pub cluster: String,
    /// Environment name.
    pub environment: String,
    /// The revision being synced.
    pub revision: String,
    /// Desired objects in apply order.
    pub objects: Vec<PlannedObject>,
    /// Objects to prune, in apply order (deleted in reverse).
    pub prune: Vec<PruneCandidate>,
    /// The inventories after this sync, one per app of the environment.
    pub inventories: Vec<Inventory>,
    /// Inventories of apps that left the environment (deleted once pruned).
    pub departed: Vec<Inventory>,
    /// The inventories before it.
    pub previous: Vec<Inventory>,
    /// Problems that block the sync.
    pub problems: Vec<ObjectProblem>,
    /// How many objects' dry runs the in-sync verdicts kept in the
    /// cluster's inventories made unnecessary.
    pub verdicts_used: usize,
    /// Every object the plan read (desired and left to prune), present or not.
    pub read: BTreeSet<ObjectKey>,
    /// What it found of them: health can be judged from it without reading
    /// again ([`Engine::health_from`](crate::Engine::health_from)).
    pub live: crate::LiveMap,
}

impl Plan {
    /// Desired objects that are not in sync, plus prune candidates.
    pub fn changes(&self) -> usize {
        self.objects.iter().filter(|o| o.needs_apply()).count() + self.prune.len()
    }
}

impl Engine {
    /// Plans a sync of `target`: every problem is found here, before any write.
    pub async fn plan(
        &self,
        target: &Target<'_>,
        options: &SyncOptions,
    ) -> Result<Plan, SyncError> {
        let span = info_span!("plan", cluster = %self.cluster, environment = %target.environment.metadata.name);
        self.plan_inner(target, options).instrument(span).await
    }

    async fn plan_inner(
        &self,
        target: &Target<'_>,
        options: &SyncOptions,
    ) -> Result<Plan, SyncError> {
        let env_name = &target.environment.metadata.name;
        let wanted = |app: &str| options.apps.is_empty() || options.apps.iter().any(|a| a == app);
        let mut problems = Vec::new();

        // 1. Resolve every kind; custom resources of CRDs in this sync are deferred.
        let crds: BTreeSet<(String, String)> = target
            .rendered
            .apps
            .iter()
            .flat_map(|a| &a.objects)
            .filter(|o| {
                o.key.group == "apiextensions.k8s.io" && o.key.kind == "CustomResourceDefinition"
            })
            .filter_map(|o| {
                let spec = &o.manifest["spec"];
                Some((
                    spec["group"].as_str()?.to_string(),
                    spec["names"]["kind"].as_str()?.to_string(),
                ))
            })
            .collect();
        let mut objects = Vec::new();
        for app in target.rendered.apps.iter().filter(|a| wanted(&a.app)) {
            for object in &app.objects {
                let api_version = object.manifest["apiVersion"].as_str().unwrap_or_default();
                let mut object = object.clone();
                let resolved = self.resolver.resolve(api_version, &object.key.kind).await?;
                match &resolved {
                    None if crds.contains(&(object.key.group.clone(), object.key.kind.clone())) => {}
                    None => problems.push(problem(
                        &app.app,
                        &object,
                        format!("the cluster does not serve {api_version} {}", object.key.kind),
                        "install the CustomResourceDefinition (or add it to this app), or fix apiVersion/kind",
                    )),
                    Some(r) if !r.namespaced && object.key.namespace.is_some() => {
                        // Render guessed "namespaced" for a kind it did not know.
                        object.key.namespace = None;
                        if let Some(meta) = object.manifest_mut()["metadata"].as_object_mut() {
                            meta.remove("namespace");
                        }
                        let id = tidegate_core::tracking::tracking_id(env_name, &app.app, &object.key);
                        object.manifest_mut()["metadata"]["annotations"][TRACKING_ANNOTATION] = Value::String(id);
                    }
                    Some(r) if r.namespaced && object.key.namespace.is_none() => problems.push(problem(
                        &app.app,
                        &object,
                        format!("{} is namespaced in this cluster", object.key.kind),
                        "set metadata.namespace or the app's namespace",
                    )),
                    Some(_) => {}
                }
                objects.push(PlannedObject {
                    app: app.app.clone(),
                    object,
                    resolved,
                    diff: None,
                    force: false,
                    no_op_at: None,
                });
            }
        }

        // 2. Inventories: what was applied before, and what leaves Git now.
        let previous = inventory::read_all(&self.client, &self.cluster, env_name).await?;
        let desired_keys: BTreeSet<ObjectKey> =
            objects.iter().map(|o| o.object.key.clone()).collect();
        let apps_in_env: BTreeSet<&str> = target
            .environment
            .spec
            .apps
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        let mut stale: Vec<(String, InventoryRef)> = Vec::new();
        for inv in previous.iter().filter(|i| wanted(&i.app)) {
            let desired_count = objects.iter().filter(|o| o.app == inv.app).count();
            if desired_count == 0
                && !inv.objects.is_empty()
                && apps_in_env.contains(inv.app.as_str())
                && !options.allow_empty
            {
                problems.push(ObjectProblem {
                    app: inv.app.clone(),
                    key: ObjectKey::new("", "ConfigMap", Some(inventory::INVENTORY_NAMESPACE), &Inventory::name(env_name, &inv.app)),
                    source: None,
                    message: format!(
                        "app {} renders no objects but {} are deployed; syncing would delete them all",
                        inv.app,
                        inv.objects.len()
                    ),
                    help: "if that is really wanted, pass --allow-empty".into(),
                });
            }
            for r in &inv.objects {
                if !desired_keys.contains(&r.key()) {
                    stale.push((inv.app.clone(), r.clone()));
                }
            }
        }

        // The inventory is written after the apply; a name the API server
        // would refuse must stop the sync before anything is applied, or the
        // applied objects could never be pruned.
        for app in target.rendered.apps.iter().filter(|a| wanted(&a.app)) {
            let name = Inventory::name(env_name, &app.app);
            if !tidegate_core::names::is_dns_subdomain(&name)
                || !tidegate_core::names::is_label_value(env_name)
                || !tidegate_core::names::is_label_value(&app.app)
            {
                problems.push(ObjectProblem {
                    app: app.app.clone(),
                    key: ObjectKey::new("", "ConfigMap", Some(inventory::INVENTORY_NAMESPACE), &name),
                    source: None,
                    message: format!(
                        "the inventory {name:?} is not a valid ConfigMap name, so this sync could not record what it applies"
                    ),
                    help: "rename the environment and app to DNS labels (lower-case letters, digits and '-')".into(),
                });
            }
        }

        // 3. Live state: one read per kind (this environment's objects), GETs for the rest.
        let mut stale_resolved = Vec::new();
        for (app, r) in stale {
            match self.resolver.resolve(&r.api_version, &r.kind).await? {
                Some(res) => stale_resolved.push((app, r, res)),
                None => debug!(kind = %r.kind, "kind of a stale object is gone; nothing to prune"),
            }
        }
        let to_read: Vec<(ObjectKey, Resolved)> = objects
            .iter()
            .filter_map(|o| Some((o.object.key.clone(), o.resolved.clone()?)))
            .chain(
                stale_resolved
                    .iter()
                    .map(|(_, r, res)| (r.key(), res.clone())),
            )
            .collect();
        let live = self.read_live(&to_read, Some(env_name)).await?;
        let read: BTreeSet<ObjectKey> = to_read.iter().map(|(k, _)| k.clone()).collect();

        // 4. Dry-run apply and diff every resolved object.
        let ignore: Vec<IgnoreRule> = target
            .environment
            .spec
            .sync
            .ignore_differences
            .iter()
            .map(|i| IgnoreRule(i.value.clone()))
            .collect();
        // At most `dry_run_concurrency` in flight; answers in object order.
        // The futures are made first, not mapped inside the stream: a
        // closure over references there makes the sync future unprovably
        // `Send` (rust-lang/rust#102211), and the fleet driver needs it `Send`.
        // In-sync verdicts kept in the inventories (any app of this
        // environment; an inventory a sync did not finish vouches for nothing).
        let mut verdicts = Verdicts::default();
        let now = Verdicts::now();
        for inv in previous.iter().filter(|i| !i.incomplete()) {
            verdicts.extend(&inv.verdicts, now);
        }
        let verdicts_used = std::sync::atomic::AtomicUsize::new(0);
        let dry_runs: Vec<_> = objects
            .iter()
            .map(|o| {
                self.dry_run(
                    o,
                    options.force_conflicts,
                    live.get(&o.object.key),
                    (&verdicts, &verdicts_used),
                )
            })
            .collect();
        let mut dry_runs: Vec<Result<Arc<Value>, kube::Error>> = stream::iter(dry_runs)
            .buffered(self.dry_run_concurrency)
            .collect()
            .await;
        // Conflicts only with imperative edits are drift: predict with force.
        for (o, outcome) in objects.iter_mut().zip(dry_runs.iter_mut()) {
            if let Err(kube::Error::Api(s)) = outcome
                && s.code == 409
                && let Some(live_object) = live.get(&o.object.key)
                && only_imperative(s, live_object)
            {
                o.force = true;
                *outcome = self
                    .dry_run(o, true, Some(live_object), (&verdicts, &verdicts_used))
                    .await;
            }
        }
        let new_namespaces: BTreeSet<String> = objects
            .iter()
            .filter(|o| o.object.key.group.is_empty() && o.object.key.kind == "Namespace")
            .filter(|o| !live.contains_key(&o.object.key))
            .map(|o| o.object.key.name.clone())
            .collect();
        for (o, outcome) in objects.iter_mut().zip(dry_runs) {
            if o.resolved.is_none() {
                continue;
            }
            let live_object = live.get(&o.object.key).map(|v| &**v);
            if let (Ok(predicted), Some(l)) = (&outcome, live_object)
                && !o.force
                && verdicts::eligible(&o.object.key)
                && normalized_eq(predicted, l)
            {
                o.no_op_at = l["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_string);
            }
            let refused;
            let prediction = match &outcome {
                Ok(v) => Prediction::DryRun(v),
                Err(kube::Error::Api(s))
                    if s.code == 404
                        && o.object
                            .key
                            .namespace
                            .as_ref()
                            .is_some_and(|ns| new_namespaces.contains(ns)) =>
                {
                    // Its namespace is created by this sync: the server can only
                    // dry-run the object once that exists (it is applied after
                    // it). A dry-run create in `default` still catches an
                    // invalid object (422) before anything is written.
                    if let Some(s) = self.invalid_elsewhere(o).await {
                        problems.push(problem(
                            &o.app,
                            &o.object,
                            format!(
                                "the API server rejects this object ({} {}, checked by a dry-run create in namespace default, as its own namespace is created by this sync): {}",
                                s.code, s.reason, s.message
                            ),
                            "fix the manifest",
                        ));
                        continue;
                    }
                    refused = format!(
                        "namespace {} is created by this sync, so the server cannot dry-run this object yet",
                        o.object.key.namespace.as_deref().unwrap_or_default()
                    );
                    Prediction::Refused(&refused)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    problems.push(conflict(&o.app, &o.object, s));
                    continue;
                }
                // RBAC refused the identity: say which permission, not "fix the manifest".
                Err(e) if rbac_denial(e).is_some() => {
                    if let Some(f) = rbac_denial(e) {
                        problems.push(problem(
                            &o.app,
                            &o.object,
                            format!("the API server refuses to apply this object: {f}"),
                            &f.fix(),
                        ));
                    }
                    continue;
                }
                // Server-side apply answers 500 when the object does not fit
                // its type's schema: a rejection of the manifest, not an
                // outage. Matching the text here can only make the plan
                // stricter (a problem), never fall back to a weaker check.
                Err(kube::Error::Api(s))
                    if (400..500).contains(&s.code)
                        || (s.code == 500
                            && s.message.contains("failed to create typed patch object")) =>
                {
                    problems.push(problem(
                        &o.app,
                        &o.object,
                        format!(
                            "the API server rejects this object ({} {}): {}",
                            s.code, s.reason, s.message
                        ),
                        rejection_help(s),
                    ));
                    continue;
                }
                Err(e) => {
                    return Err(SyncError::Cluster(tidegate_cluster::ClusterError::Api {
                        cluster: self.cluster.clone(),
                        what: format!("dry-run apply of {}", o.object.key),
                        error: clone_error(e),
                    }));
                }
            };
            o.diff = Some(diff_object(DiffInput {
                key: &o.object.key,
                desired: &o.object.manifest,
                live: live_object,
                prediction,
                ignore: &ignore,
            }));
        }

        // Hook Jobs are dry-run too: a bad hook stops the sync before any write.
        problems.extend(
            self.check_hooks(target, &options.apps, &new_namespaces)
                .await?,
        );

        // 5. What to prune: only objects that still carry our tracking id.
        let mut prune = Vec::new();
        for (app, reference, resolved) in stale_resolved {
            let key = reference.key();
            let Some(object) = live.get(&key) else {
                continue;
            };
            let tracked = object["metadata"]["annotations"][TRACKING_ANNOTATION]
                .as_str()
                .is_some_and(|id| id.starts_with(&format!("{env_name}/{app}/")));
            if !tracked {
                debug!(%key, "not pruning: tracking annotation missing or foreign");
                continue;
            }
            prune.push(PruneCandidate {
                diff: to_prune(&key, object),
                app,
                reference,
                resolved,
            });
        }
        prune.sort_by_key(|p| {
            let k = p.diff.key.clone();
            (tidegate_core::object::apply_phase(&k.group, &k.kind), k)
        });
        // A prune the identity may not make fails here, before any write
        // (a dry-run delete is authorized like a delete), not half-way
        // through the sync: a missing permission is no fault of the revision.
        if options.prune || target.environment.spec.sync.prune {
            problems.extend(self.check_prune_permissions(&prune).await);
        }

        // 6. The inventories after the sync.
        let inventories: Vec<Inventory> = target
            .rendered
            .apps
            .iter()
            .filter(|a| wanted(&a.app))
            .map(|a| {
                let mut refs: Vec<InventoryRef> = objects
                    .iter()
                    .filter(|o| o.app == a.app)
                    .map(|o| InventoryRef {
                        api_version: o.object.manifest["apiVersion"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        kind: o.object.key.kind.clone(),
                        namespace: o.object.key.namespace.clone(),
                        name: o.object.key.name.clone(),
                    })
                    .collect();
                refs.sort();
                Inventory {
                    environment: env_name.clone(),
                    app: a.app.clone(),
                    revision: target.revision.to_string(),
                    objects: refs,
                    healthy_revision: previous
                        .iter()
                        .find(|p| p.app == a.app)
                        .and_then(|p| p.healthy_revision.clone()),
                    applying_from: None,
                    verdicts: Verdicts::default(),
                }
            })
            .collect();
        let departed: Vec<Inventory> = previous
            .iter()
            .filter(|i| wanted(&i.app) && !apps_in_env.contains(i.app.as_str()))
            .cloned()
            .collect();
        let verdicts_used = verdicts_used.into_inner();
        Ok(Plan {
            verdicts_used,
            read,
            live,
            cluster: self.cluster.clone(),
            environment: env_name.clone(),
            revision: target.revision.to_string(),
            objects,
            prune,
            inventories,
            departed,
            previous,
            problems,
        })
    }

    /// A dry-run delete of every prune candidate: a problem for each one
    /// refused for want of an RBAC permission (other answers prove nothing
    /// here; the prune itself reports them).
    async fn check_prune_permissions(&self, prune: &[PruneCandidate]) -> Vec<ObjectProblem> {
        let mut problems = Vec::new();
        for p in prune {
            let key = &p.diff.key;
            let api = dynamic_api(&self.client, &p.resolved, key.namespace.as_deref());
            let params = kube::api::DeleteParams {
                dry_run: true,
                ..kube::api::DeleteParams::default()
            };
            if let Err(e) = with_retries("dry-run delete of a prune candidate", || {
                api.delete(&key.name, &params)
            })
            .await
                && let Some(f) = tidegate_cluster::Forbidden::of(&e)
            {
                problems.push(ObjectProblem {
                    app: p.app.clone(),
                    key: key.clone(),
                    source: None,
                    message: format!("left Git and is to be pruned, but {f}"),
                    help: f.fix(),
                });
            }
        }
        problems
    }

    /// For an object whose namespace does not exist yet: a dry-run create of
    /// it in `default`. Only a 422 (the object itself is invalid) counts;
    /// anything else (it exists there, quota, admission that depends on the
    /// namespace) proves nothing and is ignored.
    async fn invalid_elsewhere(&self, o: &PlannedObject) -> Option<kube::core::Status> {
        let resolved = o.resolved.as_ref().filter(|r| r.namespaced)?;
        let mut manifest = (*o.object.manifest).clone();
        manifest["metadata"]["namespace"] = Value::String("default".into());
        let object: kube::api::DynamicObject = serde_json::from_value(manifest).ok()?;
        let api = dynamic_api(&self.client, resolved, Some("default"));
        let params = kube::api::PostParams {
            dry_run: true,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        match with_retries("dry-run create", || api.create(&params, &object)).await {
            Err(kube::Error::Api(s)) if s.code == 422 => Some(*s),
            _ => None,
        }
    }

    /// The server's answer to a dry-run apply of `o` (with `force`) over
    /// `live`, from the dry-run cache while neither changed.
    async fn dry_run(
        &self,
        o: &PlannedObject,
        force: bool,
        live: Option<&LiveObject>,
        (verdicts, used): (&Verdicts, &std::sync::atomic::AtomicUsize),
    ) -> Result<Arc<Value>, kube::Error> {
        let Some(resolved) = &o.resolved else {
            return Ok(Arc::new(Value::Null));
        };
        let key = &o.object.key;
        let version = live.and_then(|v| v["metadata"]["resourceVersion"].as_str());
        // Serialized once for both hashes (verdict and dry-run cache).
        let serialized = serde_json::to_vec(&*o.object.manifest).unwrap_or_default();
        // Known to change nothing: the server would predict the live object.
        if !force
            && let Some(live) = live
            && verdicts.in_sync(key, &verdicts::desired_hash_of(&serialized), version)
        {
            used.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(live.clone());
        }
        let inputs = Inputs::of(&serialized, version);
        drop(serialized);
        match self.dry_run_cache.get(&self.cluster, key, force, &inputs) {
            Some(Answer::Predicted(v)) => return Ok(v),
            Some(Answer::Conflict(s)) => return Err(kube::Error::Api(s)),
            None => {}
        }
        let api = dynamic_api(&self.client, resolved, key.namespace.as_deref());
        let mut params = PatchParams::apply(FIELD_MANAGER).dry_run();
        params.force = force;
        let patch = Patch::Apply(&*o.object.manifest);
        // The semaphore is never closed; without a permit, send anyway.
        let permit = self.dry_run_permits.acquire().await.ok();
        let answer = with_retries("dry-run apply", || api.patch(&key.name, &params, &patch))
            .await
            .map(|result| Arc::new(serde_json::to_value(result).unwrap_or(Value::Null)));
        drop(permit);
        match &answer {
            Ok(v) => {
                let answer = Answer::Predicted(v.clone());
                self.dry_run_cache
                    .put(&self.cluster, key, force, inputs, answer);
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let answer = Answer::Conflict(s.clone());
                self.dry_run_cache
                    .put(&self.cluster, key, force, inputs, answer);
            }
            Err(_) => {}
        }
        answer
    }
}

/// A problem with one object. The message may quote the API server, which
/// echoes repository content: control characters are escaped.
fn problem(app: &str, object: &RenderedObject, message: String, help: &str) -> ObjectProblem {
    ObjectProblem {
        app: app.to_string(),
        key: object.key.clone(),
        source: Some(object.provenance.to_string()),
        message: tidegate_core::printable::printable(&message).into_owned(),
        help: help.to_string(),
    }
}

/// A field-manager conflict, with every field and its other owner.
fn conflict(app: &str, object: &RenderedObject, status: &kube::core::Status) -> ObjectProblem {
    let fields: Vec<String> = status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .map(|c| format!("{} ({})", c.field, c.message))
                .collect()
        })
        .unwrap_or_default();
    problem(
        app,
        object,
        if fields.is_empty() {
            format!("conflict with another field manager: {}", status.message)
        } else {
            format!(
                "conflict with another field manager on {}",
                fields.join(", ")
            )
        },
        "let Tidegate own these fields with --force-conflicts, or stop the other manager from changing them",
    )
}

/// True when every manager named in a conflict changed the object only
/// imperatively (managedFields operation `Update`), never with server-side apply.
fn only_imperative(status: &kube::core::Status, live: &Value) -> bool {
    let managers: Vec<&str> = status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .filter_map(|c| c.message.split('"').nth(1))
                .collect()
        })
        .unwrap_or_default();
    let entries = live["metadata"]["managedFields"].as_array();
    !managers.is_empty()
        && managers.iter().all(|m| {
            entries.is_some_and(|e| {
                let mine: Vec<&Value> = e.iter().filter(|f| f["manager"] == *m).collect();
                !mine.is_empty() && mine.iter().all(|f| f["operation"] == "Update")
            })
        })
}

/// What to do about a dry run the server rejected. Every 4xx rejection
/// (other than a conflict) stops the sync: the status code and reason decide
/// the hint, never the message, which echoes repository content.
fn rejection_help(status: &kube::core::Status) -> &'static str {
    match (status.code, status.reason.as_str()) {
        (400, "BadRequest") => {
            "fix the manifest; if an admission webhook cannot dry-run, declare it `sideEffects: None` (or NoneOnDryRun)"
        }
        (403, _) => {
            "the request is forbidden (RBAC, an admission policy or a quota): fix the manifest or the policy"
        }
        (405, _) => "the server does not accept apply for this kind: remove the object from Git",
        _ => "fix the manifest (the dry run of server-side apply failed)",
    }
}

/// A 403 of the RBAC authorizer (the verb it refused is known).
fn rbac_denial(e: &kube::Error) -> Option<tidegate_cluster::Forbidden> {
    tidegate_cluster::Forbidden::of(e).filter(|f| f.verb.is_some())
}

fn clone_error(e: &kube::Error) -> kube::Error {
    match e {
        kube::Error::Api(s) => kube::Error::Api(s.clone()),
        other => kube::Error::Service(other.to_string().into()),
    }
}
