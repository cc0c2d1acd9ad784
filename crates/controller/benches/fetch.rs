//! CPU of the controller's fetch (`Application::load_head`) of an unchanged
//! head: the first load renders, later loads of the same commit reuse it.
//! The sizes of `make bench-fleet` (10 clusters × 10 apps × 100 objects:
//! a Deployment, ~10% Services, the rest ConfigMaps) in a real Git
//! repository. Both paths run interleaved in the same process (a fresh
//! `GitApplication` renders every time, as before the memo), so the ratio
//! holds on a loaded machine.
//!
//! `cargo bench -p tidegate-controller --bench fetch` (add `-- 5` for runs).

use std::{path::Path, process::Command, time::Instant};
use tidegate_app::{ClusterAccess, client_factory};
use tidegate_controller::{Application, GitApplication};

const CLUSTERS: usize = 10;
const APPS: usize = 10;
const OBJECTS: usize = 100;

fn app_manifests(app: usize) -> String {
    let mut out = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a{app}-web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: a{app}-web\n  template:\n    metadata:\n      labels:\n        app: a{app}-web\n    spec:\n      containers:\n        - name: app\n          image: registry.example/web:1\n"
    );
    for i in 1..OBJECTS {
        if i % 10 == 0 {
            out.push_str(&format!("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a{app}-svc-{i}\nspec:\n  selector:\n    app: a{app}-web\n  ports:\n    - port: 80\n"));
        } else {
            out.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a{app}-cm-{i}\ndata:\n  LOG_LEVEL: info\n  CHANGE: \"0\"\n"));
        }
    }
    out
}

fn environment() -> String {
    let clusters: String = (0..CLUSTERS)
        .map(|c| {
            format!(
                "    - name: c{c}\n      provider:\n        kubeconfig:\n          context: c{c}\n"
            )
        })
        .collect();
    let apps: String = (0..APPS)
        .map(|a| format!("    - name: app{a}\n      namespace: bench\n"))
        .collect();
    format!(
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: bench\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n{clusters}  apps:\n{apps}"
    )
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@tidegate.dev",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "git {args:?} failed");
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 (utime, stime) counted from the state (field 3).
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn app(repo: &Path) -> GitApplication {
    let audit = repo.join(".audit.db");
    GitApplication::new(
        Some(repo.to_string_lossy().into_owned()),
        None,
        client_factory(&ClusterAccess {
            kubeconfig_only: true,
            kubeconfig: None,
        }),
        audit,
    )
    .expect("opens")
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("tidegate-fetch-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("environments")).expect("mkdir");
    std::fs::write(dir.join("environments/bench.yaml"), environment()).expect("write");
    for a in 0..APPS {
        let d = dir.join(format!("manifests/app{a}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("all.yaml"), app_manifests(a)).expect("write");
    }
    std::fs::write(dir.join(".gitignore"), ".audit.db*\n").expect("write");
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "bench"]);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let warm = app(&dir);
    let first = rt.block_on(warm.load_head("bench")).expect("loads");
    let objects: usize = first
        .rendered
        .clusters
        .iter()
        .flat_map(|c| &c.apps)
        .map(|a| a.objects.len())
        .sum();
    drop(first);
    let (mut fresh, mut reused) = (Vec::new(), Vec::new());
    let (mut fresh_wall, mut reused_wall) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let cold = app(&dir);
        let (c0, t0) = (cpu_seconds(), Instant::now());
        drop(rt.block_on(cold.load_head("bench")).expect("loads"));
        fresh.push(cpu_seconds() - c0);
        fresh_wall.push(t0.elapsed().as_secs_f64());
        let (c0, t0) = (cpu_seconds(), Instant::now());
        drop(rt.block_on(warm.load_head("bench")).expect("loads"));
        reused.push(cpu_seconds() - c0);
        reused_wall.push(t0.elapsed().as_secs_f64());
    }
    assert_eq!(warm.renders(), 1, "the unchanged head was rendered once");
    let (f, r) = (median(fresh), median(reused));
    println!(
        "fetch of an unchanged head, {objects} objects ({CLUSTERS} clusters), medians of {runs}:"
    );
    println!(
        "  rendered every time: CPU {f:.3} s, wall {:.3} s",
        median(fresh_wall)
    );
    println!(
        "  rendering reused:    CPU {r:.3} s, wall {:.3} s",
        median(reused_wall)
    );
    println!("  CPU ratio reused/rendered: {:.3}", r / f.max(0.001));
    let _ = std::fs::remove_dir_all(&dir);
}
