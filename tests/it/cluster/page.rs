//! The live fleet page (`/fleet`) of a controller managing the three local
//! clusters, read by real headless Chromium (Debian's `chromium`): the grid
//! shows each cluster's revision and health; the rollout view shows wave 1
//! in progress and then done (DOM checks over time, polled until a state
//! or a generous deadline), then a bad release's failed cluster and
//! rollback; a Secret changed by kubectl shows as drift whose diff never
//! holds its value. Screenshots are kept under `target/page-artifacts/`.

use super::server::{CLUSTERS, Served, WAIT, http};
use base64::Engine as _;
use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

/// Chromium, or `None` when it is missing and TIDEGATE_SKIP_CHROMIUM=1.
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        assert_eq!(
            std::env::var("TIDEGATE_SKIP_CHROMIUM").as_deref(),
            Ok("1"),
            "chromium is not installed: `apt-get install chromium` (Debian; `make test-deps`), or set TIDEGATE_SKIP_CHROMIUM=1 to skip this test"
        );
        eprintln!("chromium not installed; skipped (TIDEGATE_SKIP_CHROMIUM=1)");
    }
    found
}

/// Where screenshots go: `target/page-artifacts/`.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("page-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// A headless browser with its own profile.
struct Browser {
    binary: &'static str,
    profile: tempfile::TempDir,
}

impl Browser {
    fn run(&self, extra: &[String], url: &str) -> std::process::Output {
        Command::new(self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(extra)
            .arg(url)
            .output()
            .expect("run chromium")
    }

    /// The DOM of `url` after it loaded (scripts run).
    fn dom(&self, url: &str) -> String {
        let out = self.run(&["--dump-dom".into()], url);
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the DOM of `url` until `done` holds; returns that DOM.
    async fn until(
        &self,
        s: &Served,
        url: &str,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let dom = self.dom(url);
            if done(&dom) {
                return dom;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}\n--- DOM\n{dom}\n--- controller log\n{}",
                s.logs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// A screenshot of `url` in `target/page-artifacts/<name>.png`, checked non-empty.
    fn screenshot(&self, url: &str, name: &str) {
        let file = artifacts().join(format!("{name}.png"));
        let _ = std::fs::remove_file(&file);
        let out = self.run(&[format!("--screenshot={}", file.display())], url);
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "{} is empty ({size} bytes)", file.display());
    }
}

/// The `<tr>` of the grid for `cluster` (up to its end).
fn row<'d>(dom: &'d str, cluster: &str) -> &'d str {
    let start = dom
        .find(&format!("data-cluster=\"{cluster}\""))
        .unwrap_or(dom.len());
    let rest = &dom[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

/// The v2 Deployment: like v1's, but each pod must stay Ready 6 s before
/// it counts as available, so every wave runs for a while.
fn slow_deployment(image: &str) -> String {
    super::rollout::deployment(image, false).replace(
        "  progressDeadlineSeconds: 600\n",
        "  progressDeadlineSeconds: 600\n  minReadySeconds: 6\n",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_sees_the_grid_a_rollout_wave_by_wave_and_a_bad_release_rolled_back() {
    let Some(binary) = chromium() else { return };
    let browser = Browser {
        binary,
        profile: tempfile::tempdir().expect("profile"),
    };
    let mut s = Served::new("page-roll", "1s").await;
    let address = s.start().await;
    let base = format!("http://{address}");
    let v1 = s.git.head();
    s.wait("every cluster at v1", |s| s.all_at(&v1)).await;

    // The grid: every cluster at v1, Healthy, with its wave.
    let grid = format!("{base}/fleet");
    let dom = browser
        .until(&s, &grid, "the grid at v1", |dom| {
            CLUSTERS.iter().all(|c| {
                let r = row(dom, c);
                r.contains(&v1[..12]) && r.contains(">Healthy<")
            })
        })
        .await;
    assert!(dom.contains("id=\"fleet-grid\""));
    for (wave, c) in CLUSTERS.iter().enumerate() {
        let r = row(&dom, c);
        assert!(
            r.contains(&format!("<td class=\"num\">{}</td>", wave + 1)),
            "{r}"
        );
        assert!(r.contains(">Synced<"), "{r}");
    }
    browser.screenshot(&grid, "fleet-grid");

    // A new release: the rollout view shows wave 1 in progress, then done.
    s.git.write(
        "manifests/app/web.yaml",
        slow_deployment("registry.example/web:2"),
    );
    let v2 = s.git.commit("v2");
    let view = format!("{base}/fleet/rollouts/{}", s.env);
    browser
        .until(&s, &view, "wave 1 of v2 in progress", |dom| {
            dom.contains(&v2) && dom.contains("id=\"wave-1\" data-state=\"running\"")
        })
        .await;
    browser.screenshot(&view, "rollout-wave-1-running");
    browser
        .until(&s, &view, "wave 1 of v2 done", |dom| {
            dom.contains(&v2) && dom.contains("id=\"wave-1\" data-state=\"done\"")
        })
        .await;
    let dom = browser
        .until(&s, &view, "v2 rolled out", |dom| {
            dom.contains(&v2) && dom.contains("data-outcome=\"succeeded\"")
        })
        .await;
    for wave in 1..=3 {
        assert!(
            dom.contains(&format!("id=\"wave-{wave}\" data-state=\"done\"")),
            "{dom}"
        );
    }
    assert!(
        dom.contains("id=\"gates\"") && dom.contains("<td>bake 1.0s</td>"),
        "{dom}"
    );
    assert!(
        dom.contains("<th scope=\"row\">maxSurge</th><td>3 (0 in flight)</td>"),
        "{dom}"
    );
    browser.screenshot(&view, "rollout-succeeded");
    browser
        .until(&s, &grid, "the grid at v2", |dom| {
            CLUSTERS
                .iter()
                .all(|c| row(dom, c).contains(&v2[..12]) && row(dom, c).contains(">Healthy<"))
        })
        .await;

    // A bad release: wave 1's cluster never turns Healthy, fails at the
    // progress deadline and is rolled back.
    s.git.write(
        "manifests/app/web.yaml",
        super::rollout::deployment("registry.example/web:3", true),
    );
    let v3 = s.git.commit("v3 (bad)");
    let dom = browser
        .until(&s, &view, "v3 rolled back", |dom| {
            dom.contains(&v3) && dom.contains("data-outcome=\"rolled-back\"")
        })
        .await;
    let eks = CLUSTERS[0];
    assert!(
        dom.contains(&format!("data-cluster=\"{eks}\" data-state=\"RolledBack\"")),
        "{dom}"
    );
    assert!(dom.contains("id=\"wave-1\" data-state=\"failed\""), "{dom}");
    assert!(
        dom.contains("id=\"failure\""),
        "the failure is shown: {dom}"
    );
    browser.screenshot(&view, "rollout-rolled-back");
    s.wait("every cluster back at v2", |s| s.all_at(&v2)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_changed_by_kubectl_shows_as_drift_without_its_value() {
    let Some(binary) = chromium() else { return };
    let browser = Browser {
        binary,
        profile: tempfile::tempdir().expect("profile"),
    };
    const FROM_GIT: &str = "from-git-s3cret-value";
    const FROM_KUBECTL: &str = "changed-by-kubectl-42";
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let mut s = Served::new("page-secret", "1h").await;
    s.git.write(
        "manifests/app/secret.yaml",
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  password: {}\n",
            b64(FROM_GIT)
        ),
    );
    let v1 = s.git.commit("v1 with a Secret");
    let address = s.start().await;
    s.wait("every cluster at v1", |s| s.all_at(&v1)).await;
    let eks = CLUSTERS[0];
    s.fleet
        .kubectl(
            eks,
            &[
                "patch",
                "secret",
                "db",
                "-n",
                &s.env,
                "--type=merge",
                "-p",
                &format!("{{\"data\":{{\"password\":\"{}\"}}}}", b64(FROM_KUBECTL)),
            ],
        )
        .expect("kubectl patch");
    let page = format!("http://{address}/fleet/clusters/{}/{eks}", s.env);
    let dom = browser
        .until(&s, &page, "the Secret shown drifted", |dom| {
            dom.contains("data-kind=\"Secret\" data-name=\"db\" data-drift=\"drifted\"")
        })
        .await;
    assert!(dom.contains("********"), "the diff shows the mask: {dom}");
    // Each object's health, judged from its live object, as text.
    assert!(
        dom.contains("<td class=\"health h-Healthy\">Healthy</td>"),
        "each object's health: {dom}"
    );
    let (status, body) = http(
        &address,
        "GET",
        &page.replace(&format!("http://{address}"), ""),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    for text in [&dom, &body] {
        for secret in [FROM_GIT, FROM_KUBECTL] {
            assert!(!text.contains(secret), "{secret} on the page");
            assert!(
                !text.contains(&b64(secret)),
                "base64 of {secret} on the page"
            );
        }
    }
    browser.screenshot(&page, "cluster-secret-drift");
}
