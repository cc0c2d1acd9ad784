//! Render benchmark: a generated repository of 200 apps × 25 objects (5,000
//! objects) rendered from a commit, as `tidegate render` does. Baselines in
//! the same run: reading the files from Git alone, and parsing them with
//! serde-saphyr alone, so the cost of Tidegate's own work shows as a ratio.
//!
//! Run: `cargo bench -p tidegate-tests --bench render`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tidegate_core::files::{FileContent, Limits};
use tidegate_source::{GitSource, Overrides, Repo, desired};
use tidegate_tests::GitFixture;

const APPS: usize = 200;
const OBJECTS_PER_APP: usize = 25;

fn generate() -> GitFixture {
    let mut fx = GitFixture::new();
    let mut env = String::from(
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: bench\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: c1\n      provider:\n        kubeconfig:\n          context: c1\n  apps:\n",
    );
    for a in 0..APPS {
        env.push_str(&format!(
            "    - name: app-{a}\n      namespace: ns-{a}\n      overlays:\n        - images:\n            - name: ghcr.io/example/app-{a}\n              newTag: \"2.0\"\n"
        ));
        // Per app: 8 ConfigMaps, 8 Services, 9 Deployments in three files.
        let mut cms = String::new();
        let mut svcs = String::new();
        let mut deps = String::new();
        for i in 0..OBJECTS_PER_APP {
            match i % 3 {
                0 => cms.push_str(&format!(
                    "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  labels:\n    app: app-{a}\ndata:\n  LOG_LEVEL: info\n  PORT: \"8080\"\n  GREETING: hello world {i}\n"
                )),
                1 => svcs.push_str(&format!(
                    "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\nspec:\n  selector:\n    app: app-{a}\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n"
                )),
                _ => deps.push_str(&format!(
                    "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dep-{i}\n  labels:\n    app: app-{a}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: app-{a}\n      idx: \"{i}\"\n  template:\n    metadata:\n      labels:\n        app: app-{a}\n        idx: \"{i}\"\n    spec:\n      containers:\n        - name: main\n          image: ghcr.io/example/app-{a}:1.0\n          env:\n            - name: MODE\n              value: production\n          resources:\n            requests:\n              cpu: 100m\n              memory: 64Mi\n"
                )),
            }
        }
        fx.write(&format!("manifests/app-{a}/configmaps.yaml"), cms);
        fx.write(&format!("manifests/app-{a}/services.yaml"), svcs);
        fx.write(&format!("manifests/app-{a}/deployments.yaml"), deps);
    }
    fx.write("environments/bench.yaml", env);
    fx.commit("generated");
    fx
}

fn render(fx: &GitFixture, cache: &std::path::Path) -> usize {
    let git = GitSource::new(cache);
    let repo = Repo::open_local(fx.path()).expect("open");
    let commit = repo.resolve("HEAD").expect("HEAD");
    let (env, file) = desired::load_environment(&repo, &commit, "bench").expect("env");
    let d = desired::load_desired(&git, &repo, &commit, env, file, &Overrides::default())
        .expect("desired");
    let rendered =
        tidegate_render::render_environment(&d.environment, &d.env_file, &d.commit.sha, &d.apps)
            .expect("render");
    rendered.clusters[0]
        .apps
        .iter()
        .map(|a| a.objects.len())
        .sum()
}

fn bench(c: &mut Criterion) {
    let fx = generate();
    let cache = tempfile::tempdir().expect("cache");
    let total = APPS * OBJECTS_PER_APP;
    assert_eq!(render(&fx, cache.path()), total, "every object renders");

    let repo = Repo::open_local(fx.path()).expect("open");
    let sha = repo.resolve("HEAD").expect("HEAD").sha;
    let mut group = c.benchmark_group("render_5000");
    group.sample_size(20);
    group.throughput(Throughput::Elements(total as u64));
    group.bench_function("baseline_git_read", |b| {
        b.iter(|| {
            black_box(
                repo.read_manifests(&sha, "manifests", Limits::default())
                    .expect("read")
                    .len(),
            )
        })
    });
    let files = repo
        .read_manifests(&sha, "manifests", Limits::default())
        .expect("read");
    group.bench_function("baseline_saphyr_parse", |b| {
        b.iter(|| {
            let mut n = 0;
            for f in &files {
                if let FileContent::Bytes(bytes) = &f.content {
                    let text = std::str::from_utf8(bytes).expect("utf8");
                    let docs: Vec<serde_json::Value> =
                        serde_saphyr::from_multiple(text).expect("parse");
                    n += docs.len();
                }
            }
            black_box(n)
        })
    });
    group.bench_function("tidegate_render_from_commit", |b| {
        b.iter(|| black_box(render(&fx, cache.path())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
