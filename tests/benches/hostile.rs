//! Hostile-input benchmark: the two blow-ups of issue #20, timed with a
//! baseline in the same run.
//!
//! - `keys_124k`: one 1.5 MB ConfigMap with 124,000 keys, parsed by
//!   Tidegate's manifest reader (duplicate-key check included); baseline:
//!   serde-saphyr parsing the same text into `serde_json::Value`.
//! - `blob_x4`, `blob_x16`: a repository whose one 4 MB blob is committed
//!   as 4 (within the per-app limits: parsed once) or 16 files (over them:
//!   refused) of one app, read and rendered from the commit as `tidegate
//!   validate` does; baseline: reading the files from Git alone.
//!
//! Run: `cargo bench -p tidegate-tests --bench hostile` (release), or with
//! `--profile dev` for debug figures. `HOSTILE_RUNS` (default 5) sets the
//! runs per case; the median is printed. `HOSTILE_KEEP_REPO=DIR` also writes
//! the `blob_x16` repository to DIR, to measure `tidegate validate` on it.

use std::time::{Duration, Instant};
use tidegate_core::files::Limits;
use tidegate_source::{GitSource, Overrides, Repo, desired};
use tidegate_tests::GitFixture;

const KEYS: usize = 124_000;
const COPIES: usize = 16;

fn configmap_with_keys() -> String {
    let mut text =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: many-keys\ndata:\n");
    for i in 0..KEYS {
        text.push_str(&format!("  key{i:06}: v\n"));
    }
    text
}

/// One app whose `copies` files are the same 4 MB blob: 1,000 ConfigMaps
/// (under serde-saphyr's 1,024 documents per file) of 100 keys each.
fn repeated_blob_repo(copies: usize) -> GitFixture {
    let mut fx = GitFixture::new();
    fx.write(
        "environments/bench.yaml",
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: bench\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: c1\n      provider:\n        kubeconfig:\n          context: c1\n  apps:\n    - name: app\n      namespace: app\n",
    );
    let mut blob = String::new();
    for i in 0..1_000 {
        blob.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n"
        ));
        for k in 0..100 {
            blob.push_str(&format!(
                "  key-{k:03}: value-{i:04}-{k:03}-abcdefghijklmn\n"
            ));
        }
    }
    assert!(
        blob.len() > 3_900_000 && blob.len() < 4 << 20,
        "{}",
        blob.len()
    );
    for copy in 0..copies {
        fx.write(&format!("manifests/app/copy-{copy:02}.yaml"), &blob);
    }
    fx.commit("one blob, sixteen files");
    fx
}

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn report(case: &str, measured: Duration, baseline: Duration) {
    println!(
        "{case:<12} median {:>10.3} s   baseline {:>8.3} s   ratio {:>8.1}x",
        measured.as_secs_f64(),
        baseline.as_secs_f64(),
        measured.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
    );
}

fn main() {
    let runs: usize = std::env::var("HOSTILE_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);

    let text = configmap_with_keys();
    println!("keys_124k: {} bytes, {KEYS} keys, {runs} runs", text.len());
    let baseline = median(runs, || {
        let _: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).expect("serde-saphyr parses");
    });
    let measured = median(runs, || {
        let docs =
            tidegate_render::yaml::parse_documents(text.as_bytes(), "many.yaml").expect("valid");
        assert_eq!(docs.len(), 1);
    });
    report("keys_124k", measured, baseline);

    for copies in [4, COPIES] {
        blob_case(copies, runs);
    }
}

/// `copies` files of one blob, read and rendered from the commit. With 4
/// copies the app is within the limits and the blob is parsed once; with 16
/// it is over the per-app byte limit and refused before parsing.
fn blob_case(copies: usize, runs: usize) {
    let fx = repeated_blob_repo(copies);
    if copies == COPIES
        && let Ok(dir) = std::env::var("HOSTILE_KEEP_REPO")
    {
        let status = std::process::Command::new("cp")
            .args(["-a", &format!("{}/.", fx.path().display()), &dir])
            .status()
            .expect("cp");
        assert!(status.success(), "copying the repository to {dir}");
    }
    let case = format!("blob_x{copies}");
    println!("{case}: {copies} files of one 4 MB blob, {runs} runs");
    let repo = Repo::open_local(fx.path()).expect("open");
    let commit = repo.resolve("HEAD").expect("HEAD");
    let baseline = median(runs, || {
        let files = repo
            .read_manifests(&commit.sha, "manifests/app", Limits::default())
            .expect("read");
        assert_eq!(files.len(), copies);
    });
    let cache = tempfile::tempdir().expect("cache");
    let measured = median(runs, || {
        let git = GitSource::new(cache.path());
        let (env, file) = desired::load_environment(&repo, &commit, "bench").expect("env");
        // Refused (over the limits) or rendered (with duplicate objects):
        // either way it must come back.
        if let Ok(d) = desired::load_desired(&git, &repo, &commit, env, file, &Overrides::default())
        {
            let _ = tidegate_render::render_environment(
                &d.environment,
                &d.env_file,
                &d.commit.sha,
                &d.apps,
            );
        }
    });
    report(&case, measured, baseline);
}
