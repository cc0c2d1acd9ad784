//! Health benchmark: assessing 10,000 live objects of mixed kinds, one
//! third of them custom resources decided by Lua checks, on one thread.
//!
//! The objects are Deployments, Pods, Services, Jobs, ConfigMaps and custom
//! resources (cert-manager-like Certificates with conditions) of realistic
//! size, each carrying `managedFields` as live objects do. Three runs:
//! `built-in` (no custom check: the baseline), `lua` (Certificates decided
//! by a Lua script in Argo CD's contract) and `cel` (the same by CEL).
//! Target: `lua` under 100 ms per 10,000. Run with
//! `cargo bench -p tidegate-health --bench assess`; the medians and the
//! ratio to the baseline are printed at the end.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tidegate_health::{CelExprs, Context, HealthChecks, HealthStatus};

const OBJECTS: usize = 10_000;

const CERTIFICATE_LUA: &str = r#"
local hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for i, condition in ipairs(obj.status.conditions) do
    if condition.type == "Issuing" and condition.status == "True" then
      hs.status = "Progressing"
      hs.message = condition.message
      return hs
    end
  end
  for i, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" and condition.status == "False" then
      hs.status = "Degraded"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Ready" and condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for certificate"
return hs
"#;

fn managed_fields() -> Value {
    json!([{"manager": "tidegate", "operation": "Apply", "apiVersion": "v1", "time": "2026-12-01T10:00:00Z",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}}}},
           {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {}, "f:replicas": {}}}}])
}

fn metadata(name: &str) -> Value {
    json!({"name": name, "namespace": "shop", "generation": 3, "uid": "c4a1f0d2-6b3e-4f7a-8e19-2d5c7b9a0e44",
           "resourceVersion": "123456", "creationTimestamp": "2026-12-01T10:00:00Z",
           "labels": {"app": "shop", "app.kubernetes.io/managed-by": "tidegate"},
           "annotations": {"tidegate.dev/tracking-id": format!("prod/shop//x/shop/{name}")},
           "managedFields": managed_fields()})
}

/// `(group, kind, object)` for object `i`: every third a Certificate.
fn object(i: usize) -> (&'static str, &'static str, Value) {
    let name = format!("o-{i}");
    match i % 6 {
        0 | 3 => (
            "cert-manager.io",
            "Certificate",
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": metadata(&name),
                   "spec": {"secretName": name, "dnsNames": ["shop.example.com"], "issuerRef": {"name": "le", "kind": "ClusterIssuer"}},
                   "status": {"notAfter": "2027-03-01T10:00:00Z", "revision": 2, "conditions": [
                       {"type": "Ready", "status": if i.is_multiple_of(12) { "False" } else { "True" }, "reason": "Ready",
                        "message": "Certificate is up to date and has not expired", "observedGeneration": 3,
                        "lastTransitionTime": "2026-12-01T10:00:00Z"}]}}),
        ),
        1 => (
            "apps",
            "Deployment",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(&name),
                   "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}},
                   "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
                              "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                             {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}}),
        ),
        2 => (
            "",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata(&name),
                   "spec": {"restartPolicy": "Always", "containers": [{"name": "app", "image": "registry.example/app:1"}]},
                   "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                              "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-12-01T10:00:00Z"}}}]}}),
        ),
        4 => (
            "",
            "Service",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata(&name),
                   "spec": {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": name}}}),
        ),
        _ => (
            "",
            "ConfigMap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(&name), "data": {"LOG_LEVEL": "info", "FEATURE": "on"}}),
        ),
    }
}

fn assess_all(checks: &HealthChecks, objects: &[(&str, &str, Value)]) -> usize {
    let ctx = Context::default();
    objects
        .iter()
        .filter(|(g, k, o)| {
            checks.assess(&ctx, g, k, Some(o)).health.status == HealthStatus::Healthy
        })
        .count()
}

fn checks() -> (HealthChecks, HealthChecks, HealthChecks) {
    let built_in = HealthChecks::new();
    let mut lua = HealthChecks::new();
    let problems = lua.add_lua_directory(
        "health",
        [(
            "health/cert-manager.io/Certificate/health.lua",
            CERTIFICATE_LUA,
        )],
    );
    assert!(problems.is_empty(), "{problems:?}");
    let mut cel = HealthChecks::new();
    cel.add_cel(
        "cert-manager.io",
        "Certificate",
        &CelExprs {
            current: "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')".into(),
            in_progress: Some(
                "status.conditions.exists(c, c.type == 'Issuing' && c.status == 'True')".into(),
            ),
            failed: Some(
                "status.conditions.exists(c, c.type == 'Ready' && c.status == 'False')".into(),
            ),
        },
        "environments/prod.yaml",
        1,
    )
    .expect("compiles");
    (built_in, lua, cel)
}

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`), so runs
/// on a busy machine are not charged for the time other processes used.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The medians of `runs` runs of `f`: wall-clock time and this thread's
/// CPU time (when the system reports it).
fn median(runs: usize, mut f: impl FnMut()) -> (Duration, Option<Duration>) {
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (start, start_cpu) = (Instant::now(), thread_cpu_ns());
        f();
        wall.push(start.elapsed());
        if let (Some(a), Some(b)) = (start_cpu, thread_cpu_ns()) {
            cpu.push(Duration::from_nanos(b.saturating_sub(a)));
        }
    }
    wall.sort();
    cpu.sort();
    (wall[runs / 2], (cpu.len() == runs).then(|| cpu[runs / 2]))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn bench(c: &mut Criterion) {
    let objects: Vec<_> = (0..OBJECTS).map(object).collect();
    let (built_in, lua, cel) = checks();
    // The three verdicts agree on these objects (same rules, three ways).
    let healthy = assess_all(&built_in, &objects);
    assert_eq!(assess_all(&lua, &objects), healthy);
    assert_eq!(assess_all(&cel, &objects), healthy);
    let mut group = c.benchmark_group("assess 10k objects");
    group.sample_size(20);
    group.bench_function("built-in", |b| {
        b.iter(|| black_box(assess_all(&built_in, &objects)))
    });
    group.bench_function("lua", |b| b.iter(|| black_box(assess_all(&lua, &objects))));
    group.bench_function("cel", |b| b.iter(|| black_box(assess_all(&cel, &objects))));
    group.finish();
    let base = median(21, || {
        black_box(assess_all(&built_in, &objects));
    });
    let with_lua = median(21, || {
        black_box(assess_all(&lua, &objects));
    });
    let with_cel = median(21, || {
        black_box(assess_all(&cel, &objects));
    });
    for (name, (wall, cpu)) in [
        ("built-in", base),
        ("Lua checks", with_lua),
        ("CEL checks", with_cel),
    ] {
        eprintln!(
            "{name}: median of 21 runs over {OBJECTS} objects (1/3 custom resources), one thread: {} wall, {} on the CPU; {:.2}x built-in (target < 100 ms)",
            ms(wall),
            cpu.map_or("?".into(), ms),
            wall.as_secs_f64() / base.0.as_secs_f64(),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
