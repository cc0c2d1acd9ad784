//! Custom health checks: Lua scripts in Argo CD's layout (the test CRD
//! scripts under `tests/checks/`), the sandbox, CEL expressions, and the
//! order in which checks are resolved.

use serde_json::{Value, json};
use std::fs;
use std::path::Path;
use tidegate_health::{
    CelExprs, CheckError, CheckSource, Context, HealthChecks, HealthStatus, LuaScript,
};

/// `(path, text)` of every file under `tests/checks`, with paths as in a
/// repository whose checks directory is `health`.
fn checks_dir() -> Vec<(String, String)> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
        for entry in fs::read_dir(dir).expect("checks directory") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_string();
            let rel = format!("{prefix}/{name}");
            if path.is_dir() {
                walk(&path, &rel, out);
            } else {
                out.push((rel, fs::read_to_string(&path).expect("text")));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/checks"),
        "health",
        &mut out,
    );
    out
}

fn repository_checks() -> HealthChecks {
    let files = checks_dir();
    let mut checks = HealthChecks::new();
    let problems = checks.add_lua_directory(
        "health",
        files.iter().map(|(p, t)| (p.as_str(), t.as_str())),
    );
    assert!(problems.is_empty(), "{problems:?}");
    checks
}

fn widget(spec_widgets: i64, status: Value) -> Value {
    json!({"apiVersion": "example.tidegate.dev/v1", "kind": "Widget",
           "metadata": {"name": "w", "generation": 1},
           "spec": {"widgets": spec_widgets}, "status": status})
}

fn run(script: &str, obj: &Value) -> tidegate_health::Health {
    LuaScript::compile("health/example.com/Test/health.lua", script)
        .expect("compiles")
        .assess(obj, None)
}

#[test]
fn lua_checks_in_argo_cd_layout_decide_for_their_kind() {
    let checks = repository_checks();
    let ctx = Context::default();
    let v = checks.assess(
        &ctx,
        "example.tidegate.dev",
        "Widget",
        Some(&widget(3, json!({"widgetsReady": 1}))),
    );
    assert_eq!(v.health.status, HealthStatus::Progressing, "{:?}", v);
    assert_eq!(v.health.reason, "1 of 3 widgets ready");
    assert_eq!(
        v.check,
        CheckSource::Lua {
            file: "health/example.tidegate.dev/Widget/health.lua".into()
        }
    );
    let v = checks.assess(
        &ctx,
        "example.tidegate.dev",
        "Widget",
        Some(&widget(3, json!({"widgetsReady": 3}))),
    );
    assert_eq!(v.health.status, HealthStatus::Healthy, "{:?}", v);
    let broken = widget(
        3,
        json!({"conditions": [{"type": "Broken", "status": "True", "message": "gears jammed"}]}),
    );
    let v = checks.assess(&ctx, "example.tidegate.dev", "Widget", Some(&broken));
    assert_eq!(
        (v.health.status, v.health.reason.as_str()),
        (HealthStatus::Degraded, "gears jammed")
    );
    assert_eq!(
        v.check.to_string(),
        "Lua health/example.tidegate.dev/Widget/health.lua"
    );
}

#[test]
fn wildcard_directories_cover_other_groups_and_kinds_exact_wins() {
    let checks = repository_checks();
    let gadget = json!({"apiVersion": "parts.tidegate.dev/v1", "kind": "Gadget", "metadata": {"name": "g"},
                        "status": {"conditions": [{"type": "Ready", "status": "False", "message": "no parts"}]}});
    let v = checks.assess(
        &Context::default(),
        "parts.tidegate.dev",
        "Gadget",
        Some(&gadget),
    );
    assert_eq!(v.health.status, HealthStatus::Degraded);
    assert_eq!(
        v.check.to_string(),
        "Lua health/_.tidegate.dev/_/health.lua"
    );
    // The exact directory beats the wildcard for Widget.
    assert_eq!(
        checks
            .source_for("example.tidegate.dev", "Widget")
            .to_string(),
        "Lua health/example.tidegate.dev/Widget/health.lua"
    );
    // Other groups keep the built-in rules.
    assert_eq!(
        checks.source_for("apps", "Deployment"),
        CheckSource::BuiltIn
    );
    assert_eq!(
        checks.source_for("tidegate.dev.evil.com", "Widget"),
        CheckSource::BuiltIn
    );
}

#[test]
fn environment_checks_win_over_the_directory_and_missing_objects_stay_missing() {
    let mut checks = repository_checks();
    checks
        .add_cel(
            "example.tidegate.dev",
            "*",
            &CelExprs {
                current: "status.widgetsReady >= 1".into(),
                ..CelExprs::default()
            },
            "environments/prod.yaml",
            42,
        )
        .expect("compiles");
    let v = checks.assess(
        &Context::default(),
        "example.tidegate.dev",
        "Widget",
        Some(&widget(3, json!({"widgetsReady": 1}))),
    );
    assert_eq!(v.health.status, HealthStatus::Healthy);
    assert_eq!(v.check.to_string(), "CEL environments/prod.yaml:42");
    let v = checks.assess(&Context::default(), "example.tidegate.dev", "Widget", None);
    assert_eq!(v.health.status, HealthStatus::Missing);
}

#[test]
fn objects_being_deleted_are_progressing_before_any_script_runs() {
    let checks = repository_checks();
    let mut w = widget(1, json!({"widgetsReady": 1}));
    w["metadata"]["deletionTimestamp"] = json!("2026-12-01T10:00:00Z");
    let v = checks.assess(
        &Context::default(),
        "example.tidegate.dev",
        "Widget",
        Some(&w),
    );
    assert_eq!(v.health.status, HealthStatus::Progressing);
    assert!(v.health.reason.contains("Pending deletion"));
}

#[test]
fn sandbox_refuses_os_execute() {
    let h = run(
        "os.execute('touch /tmp/tidegate-pwned')\nreturn {status='Healthy'}",
        &json!({}),
    );
    assert_eq!(h.status, HealthStatus::Unknown);
    assert!(
        h.reason
            .contains("os.execute is not available in health checks"),
        "{h}"
    );
    assert!(
        h.reason.contains("health/example.com/Test/health.lua:1"),
        "{h}"
    );
    assert!(!Path::new("/tmp/tidegate-pwned").exists());
}

#[test]
fn sandbox_refuses_io_open() {
    let h = run(
        "local f = io.open('/etc/passwd')\nreturn {status='Healthy', message=f:read('*a')}",
        &json!({}),
    );
    assert_eq!(h.status, HealthStatus::Unknown);
    assert!(
        h.reason
            .contains("io.open is not available in health checks"),
        "{h}"
    );
}

#[test]
fn sandbox_refuses_require_load_and_friends() {
    for call in [
        "require('os')",
        "dofile('/etc/passwd')",
        "loadfile('/etc/passwd')",
        "loadstring('return 1')",
        "load(function() end)",
        "getfenv(1)",
        "collectgarbage()",
        "debug.getinfo(1)",
        "pcall(error)",
    ] {
        let h = run(
            &format!("local x = {call}\nreturn {{status='Healthy'}}"),
            &json!({}),
        );
        assert_eq!(h.status, HealthStatus::Unknown, "{call}: {h}");
        assert!(
            h.reason.contains("is not available in health checks"),
            "{call}: {h}"
        );
    }
}

#[test]
fn sandbox_stops_an_endless_loop() {
    let h = run("local i = 0\nwhile true do i = i + 1 end", &json!({}));
    assert_eq!(h.status, HealthStatus::Unknown);
    assert!(h.reason.contains("instructions (an endless loop?)"), "{h}");
    assert!(
        h.reason.contains("health/example.com/Test/health.lua:2"),
        "{h}"
    );
}

#[test]
fn sandbox_stops_a_huge_allocation() {
    let h = run(
        "local s = string.rep('x', 1024 * 1024 * 1024)\nreturn {status='Healthy'}",
        &json!({}),
    );
    assert_eq!(h.status, HealthStatus::Unknown);
    assert!(h.reason.contains("memory limit"), "{h}");
    let h = run(
        "local t = {}\nfor i = 1, 100000000 do t[i] = {i} end\nreturn {status='Healthy'}",
        &json!({}),
    );
    assert_eq!(h.status, HealthStatus::Unknown);
    assert!(
        h.reason.contains("memory limit") || h.reason.contains("instructions"),
        "{h}"
    );
    // The thread's Lua keeps working after a script hit a limit.
    let ok = run(
        "return {status='Healthy', message=obj.kind}",
        &json!({"kind": "Widget"}),
    );
    assert_eq!(
        (ok.status, ok.reason.as_str()),
        (HealthStatus::Healthy, "Widget")
    );
}

#[test]
fn scripts_do_not_see_each_others_globals() {
    let first = run("leaked = 'yes'\nreturn {status='Healthy'}", &json!({}));
    assert_eq!(first.status, HealthStatus::Healthy);
    let second = run(
        "return {status='Healthy', message=tostring(leaked)}",
        &json!({}),
    );
    assert_eq!(second.reason, "nil");
}

#[test]
fn scripts_cannot_reach_the_shared_globals_through_their_environment() {
    let h = run(
        "local m = getmetatable(_ENV)\nif m then m.__index.tostring = nil end\nreturn {status='Healthy', message=tostring(m)}",
        &json!({}),
    );
    assert_eq!(h.reason, "false", "{h}");
    let h = run(
        "setmetatable(_ENV, nil)\nreturn {status='Healthy'}",
        &json!({}),
    );
    assert_eq!(h.status, HealthStatus::Unknown, "{h}");
    assert!(h.reason.contains("protected metatable"), "{h}");
    let ok = run("return {status='Healthy', message=tostring(1)}", &json!({}));
    assert_eq!(ok.reason, "1");
}

#[test]
fn scripts_written_for_gopher_lua_run_goto_unpack_and_getn() {
    let script = "local n = 0\nfor i, c in ipairs(obj.status.conditions) do\n  if c.status ~= 'True' then goto continue end\n  n = n + 1\n  ::continue::\nend\nlocal a, b = unpack({n, table.getn(obj.status.conditions)})\nreturn {status='Healthy', message=a .. ' of ' .. b}";
    let obj = json!({"status": {"conditions": [
        {"type": "A", "status": "True"}, {"type": "B", "status": "False"}, {"type": "C", "status": "True"}
    ]}});
    assert_eq!(run(script, &obj).reason, "2 of 3");
}

#[test]
fn scripts_cannot_change_the_libraries_for_later_scripts() {
    let h = run("string.format = nil\nreturn {status='Healthy'}", &json!({}));
    assert_eq!(h.status, HealthStatus::Unknown);
    assert!(h.reason.contains("string.format cannot be changed"), "{h}");
    let h = run(
        "rawset(string, 'format', nil)\nreturn {status='Healthy'}",
        &json!({}),
    );
    assert_eq!(h.status, HealthStatus::Unknown, "{h}");
    let ok = run(
        "return {status='Healthy', message=string.format('%d of %d', 1, 2)}",
        &json!({}),
    );
    assert_eq!(ok.reason, "1 of 2");
}

#[test]
fn a_syntax_error_is_reported_at_its_line() {
    let err = LuaScript::compile(
        "health/example.com/Test/health.lua",
        "local hs = {}\nif obj.status then\nreturn hs\n",
    )
    .expect_err("no end");
    assert_eq!(err.line, Some(4), "{err}");
    assert!(
        err.message
            .starts_with("health/example.com/Test/health.lua:4:"),
        "{err}"
    );
    let mut checks = HealthChecks::new();
    let problems = checks.add_lua_directory(
        "health",
        [("health/example.com/Test/health.lua", "hs = = 1")],
    );
    assert!(
        matches!(&problems[..], [CheckError::Lua(e)] if e.line == Some(1)),
        "{problems:?}"
    );
    let problems = checks.add_lua_directory("health", [("health/Test/health.lua", "return {}")]);
    assert!(
        matches!(&problems[..], [CheckError::Layout { .. }]),
        "{problems:?}"
    );
}

#[test]
fn runtime_errors_and_bad_results_are_unknown_with_file_and_line() {
    let h = run(
        "local x = obj.status.missing.field\nreturn {status='Healthy'}",
        &json!({"status": {}}),
    );
    assert_eq!(h.status, HealthStatus::Unknown);
    assert!(
        h.reason
            .starts_with("health/example.com/Test/health.lua:1:"),
        "{h}"
    );
    let h = run("return {status='Fine'}", &json!({}));
    assert_eq!(h.status, HealthStatus::Unknown);
    assert!(h.reason.contains("\"Fine\""), "{h}");
    let h = run("return 42", &json!({}));
    assert_eq!(h.status, HealthStatus::Unknown);
}

#[test]
fn lua_sees_json_as_argo_cd_does() {
    let obj = json!({"spec": {"list": [10, 20, 30], "gone": null, "flag": true}, "metadata": {"managedFields": [{"manager": "x"}]}});
    let h = run(
        "return {status='Healthy', message=#obj.spec.list .. ' ' .. obj.spec.list[1] .. ' ' .. tostring(obj.spec.gone) .. ' ' .. tostring(obj.spec.flag) .. ' ' .. tostring(obj.metadata.managedFields)}",
        &obj,
    );
    assert_eq!(h.reason, "3 10 nil true nil");
    let t = LuaScript::compile("t.lua", "return {status='Healthy', message=tostring(os.time({year=2026, month=12, day=1, hour=0}))}")
        .expect("compiles")
        .assess(&json!({}), Some("2026-12-01T10:00:00Z".parse().expect("time")));
    assert_eq!(t.reason, "1796083200");
}

fn cel(current: &str, in_progress: Option<&str>, failed: Option<&str>) -> HealthChecks {
    let mut checks = HealthChecks::new();
    checks
        .add_cel(
            "example.tidegate.dev",
            "Widget",
            &CelExprs {
                current: current.into(),
                in_progress: in_progress.map(Into::into),
                failed: failed.map(Into::into),
            },
            "environments/prod.yaml",
            7,
        )
        .expect("compiles");
    checks
}

#[test]
fn cel_checks_follow_flux_order() {
    let checks = cel(
        "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
        Some("status.conditions.exists(c, c.type == 'Reconciling' && c.status == 'True')"),
        Some("status.conditions.exists(c, c.type == 'Stalled' && c.status == 'True')"),
    );
    let with = |conds: Value| widget(1, json!({"conditions": conds}));
    let ctx = Context::default();
    let assess = |o: &Value| checks.assess(&ctx, "example.tidegate.dev", "Widget", Some(o));
    let v = assess(&with(json!([{"type": "Ready", "status": "True"}])));
    assert_eq!(v.health.status, HealthStatus::Healthy, "{v:?}");
    assert_eq!(
        v.check,
        CheckSource::Cel {
            file: "environments/prod.yaml".into(),
            line: 7
        }
    );
    let v = assess(&with(
        json!([{"type": "Ready", "status": "True"}, {"type": "Reconciling", "status": "True"}]),
    ));
    assert_eq!(v.health.status, HealthStatus::Progressing, "{v:?}");
    let v = assess(&with(json!([{"type": "Stalled", "status": "True"}])));
    assert_eq!(v.health.status, HealthStatus::Degraded, "{v:?}");
    let v = assess(&with(json!([{"type": "Ready", "status": "False"}])));
    assert_eq!(v.health.status, HealthStatus::Progressing, "{v:?}");
    // A field that does not exist yet: wait, as Flux does.
    let v = assess(&widget(1, json!({})));
    assert_eq!(v.health.status, HealthStatus::Progressing, "{v:?}");
    assert!(v.health.reason.contains("could not be evaluated"), "{v:?}");
}

#[test]
fn cel_non_boolean_results_are_unknown() {
    let checks = cel("status.widgetsReady", None, None);
    let v = checks.assess(
        &Context::default(),
        "example.tidegate.dev",
        "Widget",
        Some(&widget(1, json!({"widgetsReady": 3}))),
    );
    assert_eq!(v.health.status, HealthStatus::Unknown, "{v:?}");
}

#[test]
fn invalid_cel_is_refused_with_the_field_that_is_wrong() {
    let mut checks = HealthChecks::new();
    let err = checks
        .add_cel(
            "example.tidegate.dev",
            "Widget",
            &CelExprs {
                current: "status.ready ==".into(),
                in_progress: Some("(((".into()),
                failed: None,
            },
            "environments/prod.yaml",
            7,
        )
        .expect_err("invalid");
    let CheckError::Cel(errors) = err else {
        panic!("not a CEL error")
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
    assert_eq!(fields, ["inProgress", "current"]);
    assert!(checks.is_empty());
}

/// An environment file with `health` (YAML lines indented by 2 under `spec`).
fn environment(health: &str) -> tidegate_core::Environment {
    let text = format!(
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: dev\nspec:\n  source:\n    repoURL: .\n  clusters:\n    - name: dev\n      provider: {{gke: {{project: p, location: l, clusterName: c}}}}\n  apps:\n    - name: app\n  rollout:\n    progressDeadline: 7m\n{health}"
    );
    tidegate_core::Environment::parse(&text, "environments/dev.yaml").expect("valid environment")
}

#[test]
fn an_environment_builds_its_checks_and_settings() {
    let env = environment(
        "  health:\n    checks:\n      - group: \"*.tidegate.dev\"\n        kind: \"*\"\n        lua: |\n          return {status = \"Suspended\", message = obj.kind}\n",
    );
    let (checks, problems) = HealthChecks::for_environment(&env, "environments/dev.yaml", &[]);
    assert!(problems.is_empty(), "{problems}");
    let v = checks.assess(
        &Context::default(),
        "parts.tidegate.dev",
        "Gadget",
        Some(&json!({"kind": "Gadget"})),
    );
    assert_eq!(
        (v.health.status, v.health.reason.as_str()),
        (HealthStatus::Suspended, "Gadget")
    );
    assert_eq!(
        v.check.to_string(),
        "Lua environments/dev.yaml (check at line 17)"
    );
    // Settings: the provider's Ingress convention, the rollout's deadline as grace.
    let ctx = checks.context("gke", None);
    assert_eq!(
        ctx.ingress_without_class,
        tidegate_health::IngressWithoutClass::Wait
    );
    assert_eq!(ctx.status_grace, std::time::Duration::from_secs(420));
    assert_eq!(
        checks.context("eks", None).ingress_without_class,
        tidegate_health::IngressWithoutClass::Healthy
    );
}

#[test]
fn an_inline_lua_syntax_error_is_reported_at_its_line_in_the_environment_file() {
    let env = environment(
        "  health:\n    ingressWithoutClass: healthy\n    checks:\n      - group: example.com\n        kind: Widget\n        lua: |\n          local hs = {}\n          hs.status = = \"Healthy\"\n          return hs\n",
    );
    let (checks, problems) = HealthChecks::for_environment(&env, "environments/dev.yaml", &[]);
    let text = problems.to_string();
    assert_eq!(problems.len(), 1, "{text}");
    let p = problems.iter().next().expect("one problem");
    assert_eq!(
        (p.file.as_deref(), p.line),
        (Some("environments/dev.yaml"), Some(22)),
        "{text}"
    );
    assert!(checks.is_empty());
    assert_eq!(
        checks.context("gke", None).ingress_without_class,
        tidegate_health::IngressWithoutClass::Healthy
    );
}
