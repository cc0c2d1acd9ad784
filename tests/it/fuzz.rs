//! Stable-Rust fuzzing of every parser entry point: the environment file,
//! manifest YAML, overlays (merge and JSON patches, image and replica
//! overrides), health assessment and metric-analysis success conditions.
//!
//! This is property-based, mutation-driven fuzzing with `proptest`, not
//! coverage-guided fuzzing (cargo-fuzz/libFuzzer need nightly Rust). Inputs
//! are the files of tests/data and the examples, mutated byte by byte, with
//! lines spliced in from other files and with tokens known to hurt YAML
//! readers (octal numbers, huge durations, aliases, control characters...);
//! overlays and live objects are generated from grammars. The property is
//! always the same: the entry point returns (a value or diagnostics) and
//! never panics.
//!
//! `make test` runs `TIDEGATE_FUZZ_CASES` cases per target (default 256);
//! `make fuzz` runs many more. A failure prints the input and the seed
//! (`PROPTEST_RNG_SEED`) to replay it.

use proptest::{
    prelude::*,
    test_runner::{Config, FileFailurePersistence, TestRunner},
};
use serde_json::{Value, json};
use std::sync::OnceLock;
use tidegate_core::{
    Environment,
    files::{AppSource, FileContent, SourceFile},
};
use tidegate_tests::{walk, workspace_root};

/// Tokens that broke or could break a YAML or duration reader.
const TOKENS: &[&str] = &[
    "0400",
    "08",
    "0x1F",
    "0b101",
    "1_000",
    "1e400",
    ".inf",
    ".nan",
    "~",
    "yes",
    "99999999999999999999999h",
    "5000000000000000h5000000000000000h",
    "0s",
    "-1s",
    "&a ",
    "*a",
    "<<: *a\n",
    "---\n",
    "...\n",
    "\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "|\n",
    ">-\n",
    "!!binary ",
    "!!int ",
    "!!float ",
    "? ",
    "%YAML 1.1\n",
    "\u{1b}[31m",
    "\0",
    "\u{2028}",
    "\t",
    "kind: List\n",
    "name: \"ok?dryRun=All&x=\"\n",
    "{op: move, from: /metadata/x, path: /nope/x}",
];

/// The corpus: every YAML file of tests/data and of the examples.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let root = workspace_root();
        ["tests/data", "environments", "manifests"]
            .iter()
            .flat_map(|d| walk(&root.join(d)))
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            })
            .filter_map(|p| std::fs::read(p).ok())
            .filter(|b| b.len() < 64 << 10)
            .collect()
    })
}

fn environments() -> Vec<&'static [u8]> {
    corpus()
        .iter()
        .filter(|b| b.windows(16).any(|w| w == b"kind: Environmen"))
        .map(Vec::as_slice)
        .collect()
}

/// One change to an input.
#[derive(Debug, Clone)]
enum Mutation {
    /// Insert a known-bad token at a position (a fraction of the length).
    Token(u32, usize),
    /// Replace one byte.
    Byte(u32, u8),
    /// Delete a run of bytes.
    Delete(u32, u8),
    /// Insert a line of another corpus file.
    Splice(u32, usize, u32),
    /// Repeat a run of bytes.
    Repeat(u32, u8, u8),
    /// Replace the value of a `key: value` line with a token.
    Value(u32, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<u32>(), 0..TOKENS.len()).prop_map(|(p, t)| Mutation::Token(p, t)),
        (any::<u32>(), any::<u8>()).prop_map(|(p, b)| Mutation::Byte(p, b)),
        (any::<u32>(), 1u8..32).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<u32>(), any::<usize>(), any::<u32>())
            .prop_map(|(p, f, l)| Mutation::Splice(p, f, l)),
        (any::<u32>(), 1u8..64, 2u8..16).prop_map(|(p, n, k)| Mutation::Repeat(p, n, k)),
        (any::<u32>(), 0..TOKENS.len()).prop_map(|(l, t)| Mutation::Value(l, t)),
    ]
}

fn at(position: u32, len: usize) -> usize {
    (position as usize) % (len + 1)
}

fn mutate(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for m in mutations {
        match *m {
            Mutation::Token(p, t) => {
                let i = at(p, bytes.len());
                bytes.splice(i..i, TOKENS[t].bytes());
            }
            Mutation::Byte(p, b) if !bytes.is_empty() => {
                let i = at(p, bytes.len() - 1);
                bytes[i] = b;
            }
            Mutation::Delete(p, n) => {
                let i = at(p, bytes.len());
                let end = (i + usize::from(n)).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Splice(p, f, l) => {
                let other = &corpus()[f % corpus().len()];
                let lines: Vec<&[u8]> = other.split(|b| *b == b'\n').collect();
                let line = lines[(l as usize) % lines.len()];
                let i = at(p, bytes.len());
                let mut insert = line.to_vec();
                insert.push(b'\n');
                bytes.splice(i..i, insert);
            }
            Mutation::Repeat(p, n, k) => {
                let i = at(p, bytes.len());
                let end = (i + usize::from(n)).min(bytes.len());
                let run = bytes[i..end].repeat(usize::from(k));
                bytes.splice(end..end, run);
            }
            Mutation::Value(l, t) => {
                // The n-th line with ": " gets a new value.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let lines: Vec<&str> = text.split('\n').collect();
                let keyed: Vec<usize> = (0..lines.len())
                    .filter(|i| lines[*i].contains(": "))
                    .collect();
                if let Some(&i) = keyed.get((l as usize) % keyed.len().max(1)) {
                    let (key, _) = lines[i].split_once(": ").unwrap_or((lines[i], ""));
                    let new = format!("{key}: {}", TOKENS[t].trim_end_matches('\n'));
                    let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
                    out[i] = new;
                    bytes = out.join("\n").into_bytes();
                }
            }
            Mutation::Byte(..) => {}
        }
    }
    bytes
}

/// Cases per target: `TIDEGATE_FUZZ_CASES`, default 256.
fn runner() -> TestRunner {
    let cases = std::env::var("TIDEGATE_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        max_shrink_iters: 256,
        ..Config::default()
    })
}

fn mutated(seeds: Vec<&'static [u8]>) -> impl Strategy<Value = Vec<u8>> {
    (0..seeds.len(), prop::collection::vec(mutation(), 0..8))
        .prop_map(move |(i, ms)| mutate(seeds[i], &ms))
}

#[test]
fn fuzz_environment_files() {
    assert!(environments().len() >= 20, "{} seeds", environments().len());
    runner()
        .run(&mutated(environments()), |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            let _ = Environment::parse(&text, "environments/fuzz.yaml");
            Ok(())
        })
        .expect("Environment::parse never panics");
}

#[test]
fn fuzz_manifest_yaml() {
    let seeds: Vec<&'static [u8]> = corpus().iter().map(Vec::as_slice).collect();
    assert!(seeds.len() >= 40, "{} seeds", seeds.len());
    runner()
        .run(&mutated(seeds), |bytes| {
            let file = SourceFile {
                path: "manifests/app/fuzz.yaml".into(),
                content: FileContent::Bytes(bytes),
            };
            let _ = tidegate_render::load_app(&[file], "0123456789abcdef");
            Ok(())
        })
        .expect("manifest loading never panics");
}

/// A JSON pointer from parts that exist, do not exist, index arrays or escape.
fn pointer() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("metadata".to_string()),
        Just("spec".to_string()),
        Just("data".to_string()),
        Just("x".to_string()),
        Just("nope".to_string()),
        Just("0".to_string()),
        Just("-".to_string()),
        Just("99999999999999999999".to_string()),
        Just("~1".to_string()),
        Just("~".to_string()),
        Just(String::new()),
        "[a-z]{1,3}",
    ];
    let built = prop::collection::vec(part, 0..4)
        .prop_map(|parts| parts.iter().map(|p| format!("/{p}")).collect::<String>());
    // Most pointers come from a small pool, so operations meet each other
    // (an `add` then a `move` from the same place, as in issue #20).
    prop_oneof![
        3 => built,
        7 => prop_oneof![
            Just("/metadata/x".to_string()),
            Just("/nope/x".to_string()),
            Just("/data/A".to_string()),
        ],
    ]
}

fn small_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z ]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn patch_op() -> impl Strategy<Value = Value> {
    let op = prop_oneof![
        Just("add"),
        Just("remove"),
        Just("replace"),
        Just("move"),
        Just("copy"),
        Just("test"),
    ];
    (op, pointer(), pointer(), small_value()).prop_map(
        |(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}),
    )
}

fn overlay() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(patch_op(), 0..8),
        small_value(),
        "[a-z:/.@0-9]{0,12}",
        any::<u32>(),
    )
        .prop_map(|(ops, merge, image, count)| {
            json!({
                "images": [{"name": "ghcr.io/example/app", "newTag": image}],
                "replicas": [{"name": "web", "count": count}],
                "patches": [
                    {"target": {"kind": "ConfigMap"}, "json": ops},
                    {"target": {}, "merge": merge},
                ]
            })
        })
}

const MANIFESTS: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  A: b\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: app\n          image: ghcr.io/example/app:1\n";

#[test]
fn fuzz_overlays() {
    let sources = vec![AppSource {
        app: "app".into(),
        files: vec![SourceFile {
            path: "manifests/app/all.yaml".into(),
            content: FileContent::Bytes(MANIFESTS.as_bytes().to_vec()),
        }],
        templated: None,
    }];
    runner()
        .run(&prop::collection::vec(overlay(), 1..3), |overlays| {
            let text = format!(
                "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: fuzz\nspec:\n  source:\n    repoURL: .\n  clusters:\n    - name: c1\n      provider:\n        kubeconfig: {{}}\n  apps:\n    - name: app\n      namespace: app\n      overlays: {}\n",
                Value::Array(overlays)
            );
            if let Ok(env) = Environment::parse(&text, "environments/fuzz.yaml") {
                let _ = tidegate_render::render_environment(
                    &env,
                    "environments/fuzz.yaml",
                    "0123456789abcdef",
                    &sources,
                );
            }
            Ok(())
        })
        .expect("overlays never panic");
}

const KINDS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("", "Pod"),
    ("", "Service"),
    ("", "PersistentVolumeClaim"),
    ("", "Namespace"),
    ("networking.k8s.io", "Ingress"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("example.com", "Widget"),
];

/// The objects of tests/data/drift (every built-in workload kind...), as
/// seeds for live objects.
fn drift_objects() -> &'static [Value] {
    static OBJECTS: OnceLock<Vec<Value>> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        walk(&workspace_root().join("tests/data/drift"))
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .flat_map(|t| serde_saphyr::from_multiple::<Value>(&t).unwrap_or_default())
            .filter(Value::is_object)
            .collect()
    })
}

/// A live object: a corpus object of tests/data/drift (with its own kind)
/// or a generated one, with generated `status` fields (conditions, counts,
/// timestamps) and, for generated ones, a generated `spec`.
fn live_object() -> impl Strategy<Value = Value> {
    let condition = (
        prop_oneof![
            Just("Available"),
            Just("Progressing"),
            Just("Ready"),
            Just("Complete"),
            Just("Failed"),
            Just("Established"),
        ],
        prop_oneof![Just("True"), Just("False"), Just("Unknown"), Just("")],
        small_value(),
    )
        .prop_map(|(t, s, reason)| json!({"type": t, "status": s, "reason": reason}));
    (
        small_value(),
        small_value(),
        prop::collection::vec(condition, 0..4),
        prop::collection::vec(any::<i64>(), 6),
        any::<bool>(),
        any::<Option<prop::sample::Index>>(),
    )
        .prop_map(|(spec, status, conditions, n, deleting, seed)| {
            let mut live = match seed {
                Some(i) if !drift_objects().is_empty() => {
                    let mut o = drift_objects()[i.index(drift_objects().len())].clone();
                    o["status"] = status;
                    o
                }
                _ => json!({
                    "metadata": {"name": "x", "generation": n[0]},
                    "spec": spec,
                    "status": status,
                }),
            };
            if let Some(s) = live["status"].as_object_mut() {
                s.insert("conditions".into(), Value::Array(conditions));
                s.insert("observedGeneration".into(), json!(n[1]));
                s.insert("replicas".into(), json!(n[2]));
                s.insert("readyReplicas".into(), json!(n[3]));
                s.insert("updatedReplicas".into(), json!(n[4]));
                s.insert("availableReplicas".into(), json!(n[5]));
            }
            if deleting {
                live["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            live
        })
}

#[test]
fn fuzz_health_assessment() {
    assert!(
        drift_objects().len() >= 20,
        "{} seeds",
        drift_objects().len()
    );
    runner()
        .run(&(0..KINDS.len(), live_object()), |(k, live)| {
            // A corpus object is assessed as its own kind and as another.
            let (group, kind) = KINDS[k];
            let _ = tidegate_health::assess(group, kind, Some(&live));
            if let (Some(api_version), Some(own)) =
                (live["apiVersion"].as_str(), live["kind"].as_str())
            {
                let own_group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
                let _ = tidegate_health::assess(own_group, own, Some(&live));
            }
            Ok(())
        })
        .expect("health assessment never panics");
}

/// Pieces of metric-analysis success conditions, valid and not.
const CONDITION_TOKENS: &[&str] = &[
    "result",
    "baseline",
    "median(baseline)",
    "mean(baseline)",
    "min(baseline)",
    "max(baseline)",
    "count(baseline)",
    "median(",
    "(",
    ")",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "&&",
    "||",
    "!",
    "+",
    "-",
    "*",
    "/",
    "0",
    "0.01",
    "1e400",
    "1e",
    ".",
    "1..2",
    "-0",
    "NaN",
    " ",
    "\u{0}",
    "é",
    "#",
];

/// Success conditions come from repository content: parsing and evaluating
/// any text returns (a condition, a verdict, or an error) and never panics.
#[test]
fn fuzz_analysis_conditions() {
    let token = proptest::sample::select(CONDITION_TOKENS);
    let text = proptest::collection::vec(token, 0..40).prop_map(|t| t.concat());
    let values = proptest::collection::vec(proptest::num::f64::ANY, 0..5);
    runner()
        .run(
            &(text, proptest::num::f64::ANY, values),
            |(text, result, baseline)| {
                if let Ok(condition) = tidegate_core::condition::Condition::parse(&text) {
                    let _ = condition.eval(result, &baseline);
                    let _ = condition.to_string();
                }
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
}
