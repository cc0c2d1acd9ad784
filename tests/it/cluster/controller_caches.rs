//! Rollouts run by `tidegate controller` read the state the controller
//! already holds: its connected engines, whose live state is the watch
//! caches, with their discovery and dry-run answers. Measured by the
//! requests each rollout reports ("rollout finished", summed over the
//! clusters), against the CLI rolling out the same kind of change with
//! fresh connections.

use super::controller::{CLUSTERS, Followed, json_log_lines, watching_many};
use super::rollout::deployment;

/// Requests a rollout sent, from its "rollout finished" log line.
#[derive(Debug, Clone, Copy)]
struct Sent {
    reads: u64,
    dry_runs: u64,
    writes: u64,
}

fn sent(line: &serde_json::Value) -> Sent {
    let n = |k: &str| {
        line["fields"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    Sent {
        reads: n("reads"),
        dry_runs: n("dry_runs"),
        writes: n("writes"),
    }
}

/// The rollouts the controller finished so far, in order.
fn finished(f: &Followed) -> Vec<Sent> {
    f.log_lines("rollout finished").iter().map(sent).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_controller_rollout_reads_its_watch_caches_and_sends_far_fewer_requests_than_the_cli() {
    let mut f = watching_many("ctl-caches").await;

    // A change of one object, rolled out by the controller.
    f.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:2", false),
    );
    let v2 = f.git.commit("v2");
    f.wait_all_at(&v2).await;
    f.wait("the v2 rollout finished", |f| finished(f).len() >= 2)
        .await;
    let controller = *finished(&f).last().expect("v2");
    for c in CLUSTERS {
        assert_eq!(
            f.web(c, "{.spec.template.spec.containers[0].image}"),
            "registry.example/web:2"
        );
    }

    // Drift in every cluster: corrected by one rollout that reads the
    // caches too.
    for c in CLUSTERS {
        f.kubectl(
            c,
            &["scale", "deployment", "web", "-n", &f.env, "--replicas=3"],
        );
    }
    f.wait("drift corrected in every cluster", |f| {
        CLUSTERS.iter().all(|c| f.web(c, "{.spec.replicas}") == "2")
    })
    .await;
    f.wait("the drift rollout finished", |f| finished(f).len() >= 3)
        .await;
    let drift = *finished(&f).last().expect("drift");
    assert!(f.stop().success());

    // The same kind of change rolled out by the CLI: fresh connections,
    // LISTs of the live objects, no dry-run answers kept.
    f.git.write(
        "manifests/app/web.yaml",
        deployment("registry.example/web:3", false),
    );
    f.git.commit("v3");
    let home = tempfile::tempdir().expect("home");
    let out = super::isolated_command(home.path())
        .args(["--repo", &f.git.path().display().to_string()])
        .args(["--log-format", "json", "sync", "--env", &f.env])
        .env("RUST_LOG", "tidegate_fleet=info")
        .env("TIDEGATE_ACCESS", "kubeconfig")
        .env("KUBECONFIG", f.fleet.kubeconfig())
        .output()
        .expect("tidegate sync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let cli = sent(
        json_log_lines(&stderr, "rollout finished")
            .first()
            .unwrap_or_else(|| panic!("no request counts from the CLI:\n{stderr}")),
    );

    // Both wrote the change (apply, inventory, locks, journal...).
    assert!(
        controller.writes > 0 && cli.writes > 0,
        "{controller:?} {cli:?}"
    );
    // The controller read the live objects from its caches: at most half
    // the CLI's reads (the CLI lists each kind in every cluster for its
    // pre-flight, again for each apply, and at every health poll; both read
    // the inventories, locks and the rollout's pods), and it sent no more
    // dry runs. Without the caches both read alike.
    assert!(
        controller.reads * 2 <= cli.reads,
        "controller {controller:?} against CLI {cli:?}"
    );
    assert!(
        controller.dry_runs <= cli.dry_runs,
        "controller {controller:?} against CLI {cli:?}"
    );
    assert!(
        drift.reads * 2 <= cli.reads,
        "drift rollout {drift:?} against CLI {cli:?}"
    );
    eprintln!(
        "requests per rollout: controller change {controller:?}, controller drift {drift:?}, CLI change {cli:?}"
    );
}
