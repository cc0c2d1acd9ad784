//! Maintenance windows and freezes (issue 15, item 3) through the
//! `tidegate` binary on the three local clusters: a wave-2 cluster whose
//! window is closed waits while the rest of its wave goes ahead and is done
//! when the window opens; `plan` says when; `--ignore-windows --reason`
//! overrides a freeze and is audited.

use super::{
    output_text,
    safety::{AKS, EKS, Env, GKE, stderr, stdout},
};
use std::time::{SystemTime, UNIX_EPOCH};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The minute and hour of a Unix time in UTC (cron's first two fields).
fn cron_fields(unix: u64) -> (u64, u64) {
    ((unix / 60) % 60, (unix / 3600) % 24)
}

/// The `spec.rollout` of these tests (indented by 4): two wave-2 clusters
/// in flight at once, and `windows`/`freezes` as given.
fn rollout(extra: &str) -> String {
    format!(
        "    maxSurge: 2\n    maxUnavailable: 0\n    progressDeadline: 60s\n    bakeTime: 1s\n{extra}"
    )
}

/// The window of `gke` opens at the first minute boundary at least 30 s
/// away (so that wave 1 and aks are done while it is still closed): the
/// others go ahead, gke waits and is applied once its window opens.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_window_holds_one_wave_2_cluster_while_the_others_proceed() {
    let start = now_secs();
    let mut opens = (start / 60 + 1) * 60;
    if opens - start < 30 {
        opens += 60;
    }
    let (minute, hour) = cron_fields(opens);
    let windows = format!(
        "    windows:\n      - name: gke-nights\n        schedule: \"{minute} {hour} * * *\"\n        duration: 10m\n        timeZone: UTC\n        clusters: [{GKE}]\n"
    );
    let mut env = Env::new(
        "win-wait",
        &[(EKS, 1), (AKS, 2), (GKE, 2)],
        &rollout(&windows),
    )
    .await;
    let v1 = env.web("v1", "web:1", false);

    // `plan` says that gke is closed now, why, and when it opens.
    let out = env.run(&["plan", "--env", env.name()]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let plan = stdout(&out);
    let gke_line = plan
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(GKE))
        .nth(1)
        .unwrap_or_default();
    assert!(
        gke_line.contains("WINDOW CLOSED (outside its window gke-nights): touched not before ")
            && gke_line.contains(&format!("T{hour:02}:{minute:02}:00Z"))
            && gke_line.contains("its wave waits for it"),
        "{plan}"
    );
    assert!(
        !plan.contains(&format!("{EKS}\n    WINDOW")),
        "only gke has a window: {plan}"
    );

    let mut rollout = env.spawn(&["sync", "--env", env.name()]);
    env.until("aks applied in wave 2", |e| {
        e.inventory(AKS, "revision") == v1
    })
    .await;
    let aks_done = now_secs();
    assert!(
        aks_done < opens,
        "the test's premise: aks is done before gke's window opens ({aks_done} >= {opens})"
    );
    assert_eq!(
        env.inventory(GKE, "revision"),
        "",
        "gke was touched while its window was closed"
    );
    let status = rollout.wait().expect("the rollout ends");
    assert!(status.success(), "{status}");
    assert_eq!(env.inventory(GKE, "revision"), v1);

    // The audit trail says why gke waited and until when; its apply came
    // once the window was open.
    let closed = env.entries(&["window-closed"]);
    assert_eq!(closed.len(), 1, "{closed:?}");
    let entry = &closed[0].entry;
    assert_eq!(entry.cluster.as_deref(), Some(GKE));
    assert_eq!(
        entry.details.get("opensAt").map(String::as_str),
        gke_line
            .split("touched not before ")
            .nth(1)
            .and_then(|rest| rest.split([',', ' ']).next()),
        "{entry:?}"
    );
    assert_eq!(
        entry.details.get("policy").map(String::as_str),
        Some("wait")
    );
    let applies = env.entries(&["apply"]);
    let gke_apply = applies
        .iter()
        .filter(|r| r.entry.cluster.as_deref() == Some(GKE))
        .map(|r| r.time_ms)
        .min()
        .expect("gke applied");
    assert!(
        gke_apply >= i64::try_from(opens * 1000).unwrap_or(i64::MAX),
        "gke applied at {gke_apply} ms, before its window opened at {opens} s"
    );
    for cluster in [EKS, AKS] {
        let first = applies
            .iter()
            .filter(|r| r.entry.cluster.as_deref() == Some(cluster))
            .map(|r| r.time_ms)
            .min()
            .expect("applied");
        assert!(first < gke_apply, "{cluster} did not go ahead of gke");
    }
}

/// A freeze on every cluster: a single-cluster sync is refused naming it,
/// `--ignore-windows` without a reason is refused, and with one the fleet
/// rollout goes ahead at once and the reason is in the audit trail.
#[tokio::test(flavor = "multi_thread")]
async fn ignore_windows_overrides_a_freeze_and_is_audited() {
    // Started at this minute, for an hour: on now.
    let (minute, hour) = cron_fields(now_secs());
    let freezes = format!(
        "    freezes:\n      - name: release-freeze\n        schedule: \"{minute} {hour} * * *\"\n        duration: 1h\n"
    );
    let mut env = Env::new(
        "win-override",
        &[(EKS, 1), (AKS, 2), (GKE, 2)],
        &rollout(&freezes),
    )
    .await;
    let v1 = env.web("v1", "web:1", false);

    let out = env.run(&["plan", "--env", env.name()]);
    assert!(
        stdout(&out).contains("WINDOW CLOSED (frozen by release-freeze until "),
        "{}",
        output_text(&out)
    );

    let out = env.run(&["sync", "--env", env.name(), "--cluster", EKS]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("is frozen by release-freeze")
            && stderr(&out).contains("--ignore-windows --reason"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.inventory(EKS, "revision"), "");

    let out = env.run(&["sync", "--env", env.name(), "--ignore-windows"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("--ignore-windows needs --reason"),
        "{}",
        output_text(&out)
    );

    env.sync_fleet(&["--ignore-windows", "--reason", "INC-42: hotfix"], 0);
    for cluster in [EKS, AKS, GKE] {
        assert_eq!(env.inventory(cluster, "revision"), v1, "{cluster}");
    }
    let ignored = env.entries(&["windows-ignored"]);
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert!(
        ignored[0]
            .entry
            .message
            .as_deref()
            .is_some_and(|m| m.contains("INC-42: hotfix")),
        "{ignored:?}"
    );
    assert!(env.entries(&["window-closed"]).is_empty());
}
