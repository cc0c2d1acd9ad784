use super::{
    access::{Access, COOKIE},
    fixture,
    model::FleetModel,
    render::{self, GridFilter},
    *,
};
use crate::auth::Authenticator;
use axum::body::Body;
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use tidegate_auth::{Roles, TokenRecord, TokenSet, token::generate};
use tidegate_controller::{Event, RolloutOutcome, view::ObjectState};
use tidegate_health::HealthStatus;
use tower::ServiceExt;

const EVIL: &str = "<script>alert(1)</script>";

fn model_with(env: &str, clusters: usize) -> Arc<FleetModel> {
    let model = Arc::new(FleetModel::new());
    fixture::feed(&model, &fixture::environment(env, clusters, 2), 2);
    model
}

fn page(model: Arc<FleetModel>, access: Access) -> Router {
    router(Page {
        model,
        access,
        audit: None,
    })
}

async fn get(app: &Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
    let mut req = axum::http::Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A token holding `grants` (e.g. `prod=viewer`) and the set that knows it.
fn token(grants: &[&str]) -> (String, TokenRecord) {
    let (value, hash) = generate().expect("token");
    let record = TokenRecord {
        id: value.id().clone(),
        name: "alice".into(),
        roles: Roles::parse(grants.iter().copied()).expect("roles"),
        hash,
        created_at: 0,
        created_by: "admin@host".into(),
        expires_at: None,
        revoked_at: None,
        revoked_by: None,
    };
    (value.expose().to_string(), record)
}

#[test]
fn names_from_git_and_clusters_are_shown_as_text() {
    let model = FleetModel::new();
    let mut view = fixture::environment("prod", 1, 1);
    view.clusters[0].name = EVIL.into();
    view.clusters[0].region = EVIL.into();
    view.active_colors = BTreeMap::from([(EVIL.to_string(), EVIL.to_string())]);
    fixture::feed(&model, &view, 0);
    model.record(&Event::Objects {
        environment: "prod".into(),
        cluster: EVIL.into(),
        app: EVIL.into(),
        objects: vec![ObjectState {
            kind: "ConfigMap".into(),
            namespace: EVIL.into(),
            name: EVIL.into(),
            drift: "drifted",
            diff: format!("-  name: {EVIL}\n+  name: x"),
            health: None,
        }],
    });
    model.record(&Event::RolloutFailed {
        environment: "prod".into(),
        failure: EVIL.into(),
    });
    let fleet = model.snapshot();
    let env = model.environment("prod");
    let pages = [
        render::fleet_page(&fleet, &GridFilter::default(), &|_| true).expect("fleet"),
        render::rollout_page("prod", env.as_ref(), None).expect("rollout"),
        render::cluster_page("prod", EVIL, env.as_ref()).expect("cluster"),
    ];
    for html in pages {
        assert!(!html.contains(EVIL), "unescaped name in:\n{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
    }
}

#[test]
fn the_grid_shows_each_cluster_and_filters_by_environment_cloud_and_label() {
    let model = FleetModel::new();
    fixture::feed(&model, &fixture::environment("prod", 6, 1), 0);
    fixture::feed(&model, &fixture::environment("staging", 3, 1), 0);
    let fleet = model.snapshot();
    let all = render::grid(&fleet, &GridFilter::default(), &|_| true);
    assert_eq!(all.len(), 9);
    let first = &all.iter().find(|r| r.env == "prod").expect("prod row");
    assert_eq!(first.revision, &fixture::REVISION[..12]);
    assert_eq!(first.health, "Healthy");
    assert_eq!(first.sync, "OutOfSync", "cluster 0 has a drifted object");
    assert_eq!(first.drifted, 1);
    assert_eq!(first.colors, "app-00=blue");
    assert_eq!(all.iter().filter(|r| r.sync == "Synced").count(), 7);
    let only = |env: Option<&str>, cloud: Option<&str>, label: Option<&str>| {
        let filter = GridFilter {
            env: env.map(String::from),
            cloud: cloud.map(String::from),
            label: label.map(String::from),
        };
        render::grid(&fleet, &filter, &|_| true).len()
    };
    assert_eq!(only(Some("staging"), None, None), 3);
    assert_eq!(only(None, Some("gke"), None), 3);
    assert_eq!(
        only(Some("prod"), Some("eks"), Some("tier=t0")),
        1,
        "eks clusters 0 and 3: tiers t0, t1"
    );
    assert_eq!(only(None, None, Some("tier")), 9);
    assert_eq!(only(None, None, Some("tier=none")), 0);
    assert_eq!(
        render::grid(&fleet, &GridFilter::default(), &|e| e == "prod").len(),
        6
    );
}

#[test]
fn the_cluster_view_shows_each_objects_health_as_text() {
    let model = FleetModel::new();
    let view = fixture::environment("prod", 1, 1);
    let cluster = view.clusters[0].name.clone();
    fixture::feed(&model, &view, 0);
    let object = |name: &str, drift, health| ObjectState {
        kind: "Deployment.apps".into(),
        namespace: "web".into(),
        name: name.into(),
        drift,
        diff: String::new(),
        health,
    };
    model.record(&Event::Objects {
        environment: "prod".into(),
        cluster: cluster.clone(),
        app: "web".into(),
        objects: vec![
            object("api", "in-sync", Some(HealthStatus::Degraded)),
            object("worker", "drifted", Some(HealthStatus::Progressing)),
            object("cron", "missing", None),
        ],
    });
    let env = model.environment("prod");
    let html = render::cluster_page("prod", &cluster, env.as_ref()).expect("cluster");
    assert!(html.contains(r#"<th scope="col">Health</th>"#), "{html}");
    // Health and drift are as of the drift check, and the page says when.
    assert!(
        html.contains("health and drift as of the drift check at <time datetime=\""),
        "{html}"
    );
    let row = |name: &str| {
        let start = html
            .find(&format!(r#"data-name="{name}""#))
            .unwrap_or_else(|| panic!("no row {name}:\n{html}"));
        let end = html[start..]
            .find("</tr>")
            .map_or(html.len(), |e| start + e);
        html[start..end].to_string()
    };
    assert!(
        row("api").contains(r#"<td class="health h-Degraded">Degraded</td>"#),
        "{}",
        row("api")
    );
    assert!(
        row("worker").contains(r#"<td class="health h-Progressing">Progressing</td>"#),
        "{}",
        row("worker")
    );
    assert!(
        row("cron").contains(r#"<td class="health">—</td>"#),
        "{}",
        row("cron")
    );
}

#[test]
fn the_rollout_view_shows_waves_gates_limits_and_outcome() {
    let model = model_with("prod", 25);
    let env = model.environment("prod");
    let html = render::rollout_page("prod", env.as_ref(), None).expect("rollout");
    assert!(html.contains(r#"id="wave-1" data-state="done""#), "{html}");
    assert!(
        html.contains(r#"id="wave-2" data-state="pending""#),
        "{html}"
    );
    // Wave 1 done, wave 2 pending: the bake and the analysis run, wave 2's approval waits.
    assert!(
        html.contains(r#"<td>bake 1m00s</td><td class="num">1</td><td class="g-running">running"#),
        "{html}"
    );
    assert!(
        html.contains(
            r#"<td>approval of wave 2</td><td class="num">1</td><td class="g-waiting">waiting"#
        ),
        "{html}"
    );
    assert!(html.contains("<td>10 (0 in flight)</td>"), "{html}");
    assert!(html.contains(r#"data-state="running""#));
    model.record(&Event::RolloutFailed {
        environment: "prod".into(),
        failure: "wave 2: cluster aks-westeurope-010 Degraded".into(),
    });
    fixture::end(&model, "prod", RolloutOutcome::RolledBack);
    let html =
        render::rollout_page("prod", model.environment("prod").as_ref(), None).expect("rollout");
    assert!(html.contains(r#"data-outcome="rolled-back""#), "{html}");
    assert!(html.contains("aks-westeurope-010 Degraded"));
    assert!(html.contains(r#"class="g-not reached""#) || html.contains("not reached"));
}

#[tokio::test]
async fn pages_are_served_with_a_strict_content_security_policy() {
    let app = page(model_with("prod", 3), Access::Open);
    for uri in [
        "/fleet",
        "/fleet/rollouts/prod",
        "/fleet/timeline",
        "/fleet/clusters/prod/eks-us-east-1-000",
    ] {
        let (status, headers, body) = get(&app, uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let csp = headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp");
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert!(body.starts_with("<!DOCTYPE html>"));
    }
    let (status, _, _) = get(&app, "/fleet/clusters/prod/nope", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get(&app, "/fleet/rollouts/nope", &[]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an environment without rollouts says so"
    );
    let (_, headers, js) = get(&app, "/fleet/static/live.js", &[]).await;
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("text/javascript")
    );
    assert!(js.contains("EventSource"));
}

#[tokio::test]
async fn with_tokens_a_viewer_sees_only_its_environments() {
    let model = model_with("prod", 2);
    fixture::feed(&model, &fixture::environment("staging", 2, 1), 0);
    let (viewer, record) = token(&["staging=viewer"]);
    let (_other, other) = token(&["prod=admin"]);
    let app = page(
        model,
        Access::Tokens(Arc::new(Authenticator::fixed(TokenSet::new([
            record, other,
        ])))),
    );

    let (status, headers, body) = get(&app, "/fleet", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    assert!(body.contains(r#"<form method="post" action="/fleet/login">"#));

    let bearer = format!("Bearer {viewer}");
    let (status, _, body) = get(&app, "/fleet", &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(r#"data-env="staging""#) && !body.contains(r#"data-env="prod""#),
        "{body}"
    );
    assert!(!body.contains(&viewer), "the token is never echoed");
    let (status, _, _) = get(&app, "/fleet/rollouts/prod", &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no role in prod");

    let cookie = format!("other=1; {COOKIE}={viewer}");
    let (status, _, _) = get(&app, "/fleet/rollouts/staging", &[("cookie", &cookie)]).await;
    assert_eq!(status, StatusCode::OK);
    let wrong = format!("{}x", &viewer);
    let (status, _, body) = get(
        &app,
        "/fleet",
        &[("authorization", &format!("Bearer {wrong}"))],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("not valid"));
}

#[tokio::test]
async fn the_login_form_sets_an_http_only_strict_cookie_for_a_valid_token_only() {
    let (viewer, record) = token(&["prod=viewer"]);
    let app = page(
        model_with("prod", 1),
        Access::Tokens(Arc::new(Authenticator::fixed(TokenSet::new([record])))),
    );
    let post = |body: String| {
        axum::http::Request::post("/fleet/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request")
    };
    let resp = app
        .clone()
        .oneshot(post(format!("token={viewer}")))
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()[header::SET_COOKIE]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(set.starts_with(&format!("{COOKIE}={viewer};")));
    for part in ["HttpOnly", "SameSite=Strict", "Path=/fleet"] {
        assert!(set.contains(part), "{set}");
    }
    assert_eq!(
        resp.headers()[header::LOCATION],
        "/fleet",
        "no token in the redirect"
    );

    let resp = app
        .clone()
        .oneshot(post("token=tgt_nope_nope".into()))
        .await
        .expect("login");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!resp.headers().contains_key(header::SET_COOKIE));
}

#[tokio::test]
async fn rollout_events_stream_the_live_part_as_server_sent_events() {
    let model = model_with("prod", 3);
    let app = page(model.clone(), Access::Open);
    let resp = app
        .clone()
        .oneshot(
            axum::http::Request::get("/fleet/rollouts/prod/events")
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("response");
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body();
    let first = body
        .frame()
        .await
        .expect("frame")
        .expect("ok")
        .into_data()
        .expect("data");
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(first.starts_with("event: rollout\n"), "{first}");
    assert!(first.contains(r#"data-outcome="running""#));
    fixture::end(&model, "prod", RolloutOutcome::Succeeded);
    let next = body
        .frame()
        .await
        .expect("frame")
        .expect("ok")
        .into_data()
        .expect("data");
    let next = String::from_utf8_lossy(&next).into_owned();
    assert!(next.contains(r#"data-outcome="succeeded""#), "{next}");
}

#[test]
fn commit_links_point_into_web_repositories_only() {
    let sha = fixture::REVISION;
    assert_eq!(
        commit_link("https://github.com/acme/fleet.git", sha).as_deref(),
        Some(format!("https://github.com/acme/fleet/commit/{sha}").as_str())
    );
    assert!(
        commit_link("https://gitlab.example.com/a/b", sha)
            .is_some_and(|u| u.contains("/-/commit/"))
    );
    assert_eq!(commit_link(".", sha), None);
    assert_eq!(commit_link("git@github.com:acme/fleet.git", sha), None);
    assert_eq!(
        commit_link("https://github.com/acme/fleet", "\"><script>"),
        None
    );
}

#[tokio::test]
async fn the_timeline_reads_a_real_audit_trail_filters_it_and_links_rollouts_and_commits() {
    use tidegate_audit::{Action, Actor, AuditSink, Entry, Revision, Trigger};
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("audit.db");
    let store = tidegate_audit::AuditStore::open(&path).expect("audit store");
    let sha = fixture::REVISION;
    for (env, cluster, action, who) in [
        ("prod", "eks-a", Action::RolloutStart, "alice"),
        (
            "prod",
            "gke-b",
            Action::DriftDetected,
            "tidegate-controller",
        ),
        ("staging", "eks-a", Action::Rollback, "bob"),
    ] {
        let entry = Entry::new(Actor::new(who, Trigger::Cli), action)
            .env(env)
            .cluster(cluster)
            .revisions(None, Some(Revision::sha(sha)))
            .message(EVIL);
        store.append(entry).expect("append");
    }
    drop(store);
    let model = model_with("prod", 1);
    model.record(&Event::Following {
        environment: "prod".into(),
        repo_url: "https://github.com/acme/fleet.git".into(),
        git_ref: "main".into(),
    });
    model.record(&Event::AuditVerified { ok: true });
    let app = router(Page {
        model,
        access: Access::Open,
        audit: Some(Arc::new(AuditAt::new(path))),
    });
    let (status, _, body) = get(&app, "/fleet/timeline", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.matches("<tr data-action=").count(), 3, "{body}");
    assert!(
        body.contains("id=\"audit-state\" class=\"audit-verified\""),
        "{body}"
    );
    assert!(
        body.contains(&format!("href=\"/fleet/rollouts/prod?revision={sha}\"")),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "href=\"https://github.com/acme/fleet/commit/{sha}\""
        )),
        "{body}"
    );
    assert!(!body.contains(EVIL), "messages are text");
    let (_, _, body) = get(&app, "/fleet/timeline?env=prod&action=drift-detected", &[]).await;
    assert_eq!(body.matches("<tr data-action=").count(), 1, "{body}");
    let (_, _, body) = get(&app, "/fleet/timeline?actor=bob&cluster=eks-a", &[]).await;
    assert_eq!(
        body.matches("<tr data-action=\"rollback\"").count(),
        1,
        "{body}"
    );
    assert_eq!(body.matches("<tr data-action=").count(), 1, "{body}");
}
