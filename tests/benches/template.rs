//! Helm benchmark: a 200-object chart (the fixture chart with 190 extra
//! ConfigMaps) rendered for 10 clusters, each with its own values, as
//! `tidegate render` does (load from Git, `helm template` per cluster,
//! render with overlays and tracking metadata).
//!
//! - cold: an empty cache, so every cluster runs `helm template`;
//! - warm: the same commit again, served from the render cache;
//! - baseline, in the same run: `helm template` run 10 times in a row.
//!
//! Targets: cold ≤ 1.5× the baseline; warm < 20 ms. Prints medians.
//! Run: `cargo bench -p tidegate-tests --bench template` (needs `make template-tools`).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};
use tidegate_source::{GitSource, Overrides, Repo, desired};
use tidegate_template::{Templater, Tool, default_cache_dir};
use tidegate_tests::{GitFixture, workspace_root};

const CLUSTERS: usize = 10;
const EXTRA_CONFIGMAPS: usize = 190;
const RUNS: usize = 7;

fn generate() -> GitFixture {
    let mut env = String::from(
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: bench\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n",
    );
    for c in 0..CLUSTERS {
        env.push_str(&format!(
            "    - name: c{c}\n      provider: {{kubeconfig: {{context: c{c}}}}}\n      labels: {{region: r{c}}}\n"
        ));
    }
    env.push_str(&format!(
        "  apps:\n    - name: web\n      namespace: web\n      helm:\n        skipTests: true\n        values: {{extraConfigMaps: {EXTRA_CONFIGMAPS}}}\n      overlays:\n        - images: [{{name: ghcr.io/example/web, newTag: \"2.0.0\"}}]\n"
    ));
    for c in 0..CLUSTERS {
        env.push_str(&format!(
            "        - clusterSelector: {{matchLabels: {{region: r{c}}}}}\n          helm: {{values: {{region: r{c}}}}}\n"
        ));
    }
    let mut fx = GitFixture::new();
    fx.copy_dir(
        &workspace_root().join("tests/data/charts/web"),
        "manifests/web",
    )
    .write("environments/bench.yaml", env);
    fx.commit("a 200-object chart for 10 clusters");
    fx
}

/// Load, template and render; returns the number of objects.
fn render(fx: &GitFixture, templater: &Templater, git_cache: &Path) -> usize {
    let repo = Repo::open_local(fx.path()).expect("open");
    let commit = repo.resolve("HEAD").expect("HEAD");
    let (env, file) = desired::load_environment(&repo, &commit, "bench").expect("env");
    let mut d = desired::load_desired(
        &GitSource::new(git_cache),
        &repo,
        &commit,
        env,
        file,
        &Overrides::default(),
    )
    .expect("desired");
    templater.expand_blocking(&mut d);
    let rendered =
        tidegate_render::render_environment(&d.environment, &d.env_file, &d.commit.sha, &d.apps)
            .unwrap_or_else(|e| panic!("{e}"));
    rendered
        .clusters
        .iter()
        .flat_map(|c| &c.apps)
        .map(|a| a.objects.len())
        .sum()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let helm = Tool::Helm
        .locate(&default_cache_dir())
        .unwrap_or_else(|| panic!("{}", Tool::Helm.install_help(&default_cache_dir())));
    let fx = generate();
    let chart = fx.path().join("manifests/web");
    let git_cache = tempfile::tempdir().expect("git cache");
    let home = tempfile::tempdir().expect("home");
    let (mut baseline, mut cold, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    let mut objects = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        for c in 0..CLUSTERS {
            let out = Command::new(&helm)
                .args([
                    "template",
                    "web",
                    chart.to_str().expect("path"),
                    "--namespace",
                    "web",
                    "--include-crds",
                    "--skip-tests",
                ])
                .args([
                    "--set",
                    &format!("extraConfigMaps={EXTRA_CONFIGMAPS}"),
                    "--set",
                    &format!("region=r{c}"),
                ])
                .env("HOME", home.path())
                .output()
                .expect("helm");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        baseline.push(start.elapsed());

        let cache = tempfile::tempdir().expect("cache");
        let templater = Templater::from_env().with_cache_dir(cache.path().to_path_buf());
        let start = Instant::now();
        objects = render(&fx, &templater, git_cache.path());
        cold.push(start.elapsed());

        let start = Instant::now();
        assert_eq!(render(&fx, &templater, git_cache.path()), objects);
        warm.push(start.elapsed());
    }
    let (baseline, cold, warm) = (median(baseline), median(cold), median(warm));
    println!(
        "{objects} objects ({} per cluster) for {CLUSTERS} clusters, median of {RUNS} runs:",
        objects / CLUSTERS
    );
    println!("  helm template x{CLUSTERS} (baseline)   {}", ms(baseline));
    println!(
        "  tidegate cold render            {}  = {:.2}x the baseline (target <= 1.5x)",
        ms(cold),
        cold.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "  tidegate warm render (cached)   {}  (target < 20 ms)",
        ms(warm)
    );
}
