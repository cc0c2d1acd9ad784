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

/// Load, template and render: the number of objects, and the time of the
/// template stage alone.
fn render(fx: &GitFixture, templater: &Templater, git_cache: &Path) -> (usize, Duration) {
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
    let start = Instant::now();
    templater.expand_blocking(&mut d);
    let stage = start.elapsed();
    let rendered =
        tidegate_render::render_environment(&d.environment, &d.env_file, &d.commit.sha, &d.apps)
            .unwrap_or_else(|e| panic!("{e}"));
    let objects = rendered
        .clusters
        .iter()
        .flat_map(|c| &c.apps)
        .map(|a| a.objects.len())
        .sum();
    (objects, stage)
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
    let mut times: [Vec<Duration>; 5] = Default::default();
    let mut objects = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        for c in 0..CLUSTERS {
            let out = Command::new(&helm)
                .args(["template", "web", chart.to_str().expect("path")])
                .args(["--namespace", "web", "--include-crds", "--skip-tests"])
                .args(["--set", &format!("extraConfigMaps={EXTRA_CONFIGMAPS}")])
                .args(["--set", &format!("region=r{c}")])
                .env("HOME", home.path())
                .output()
                .expect("helm");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        times[0].push(start.elapsed());

        let cache = tempfile::tempdir().expect("cache");
        let templater = Templater::from_env().with_cache_dir(cache.path().to_path_buf());
        let start = Instant::now();
        let (n, stage) = render(&fx, &templater, git_cache.path());
        times[1].push(start.elapsed());
        times[2].push(stage);
        objects = n;

        let start = Instant::now();
        let (again, stage) = render(&fx, &templater, git_cache.path());
        assert_eq!(again, objects);
        times[3].push(start.elapsed());
        times[4].push(stage);
    }
    let [baseline, cold, cold_stage, warm, warm_stage] = times.map(median);
    println!(
        "{objects} objects ({} per cluster) for {CLUSTERS} clusters, median of {RUNS} runs:",
        objects / CLUSTERS
    );
    println!(
        "  helm template x{CLUSTERS} (baseline)     {}",
        ms(baseline)
    );
    println!(
        "  tidegate cold render               {}  = {:.2}x the baseline (target <= 1.5x)",
        ms(cold),
        cold.as_secs_f64() / baseline.as_secs_f64()
    );
    println!("    of which the template stage     {}", ms(cold_stage));
    println!(
        "  tidegate warm render (cached)      {}  (load + template stage + render of every object)",
        ms(warm)
    );
    println!(
        "    of which the template stage     {}  (target < 20 ms: no tool runs)",
        ms(warm_stage)
    );
}
