//! The audit trail as an auditor meets it (issue #20): a copy is read and
//! verified without being changed, and text someone recorded is shown, not
//! obeyed by the terminal, the Markdown renderer or the spreadsheet.

use super::{run, text};
use tidegate_audit::{Action, Actor, AuditSink, Entry, SqliteStore, Trigger};
use tidegate_tests::GitFixture;

/// Every file in `dir` with its bytes.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    tidegate_tests::walk(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p.display().to_string(), bytes)
        })
        .collect()
}

#[test]
fn readers_leave_an_audit_copy_exactly_as_it_was() {
    let home = tempfile::tempdir().expect("home");
    let copy = tempfile::tempdir().expect("auditor's folder");
    let db = copy.path().join("audit.db");
    {
        let store = SqliteStore::open(&db).expect("open");
        tidegate_audit::fixture::fleet_log(&store, 1_767_225_600_000, 3_600_000, 6, true)
            .expect("log");
        store.checkpoint().expect("checkpoint");
    }
    // An archived copy in rollback-journal mode, as `sqlite3 .backup` or a
    // file copy of a checkpointed log leaves it.
    rusqlite::Connection::open(&db)
        .and_then(|c| {
            c.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0))
        })
        .expect("journal mode");
    let before = snapshot(copy.path());
    assert_eq!(before.len(), 1, "only the database: {before:?}");
    let db_arg = db.display().to_string();
    let env = [("TIDEGATE_AUDIT_DB", db_arg.as_str())];
    for command in [
        &["audit", "verify"][..],
        &["audit", "log"],
        &["audit", "report", "--format", "md", "--since", "2025-01-01"],
        &["audit", "export", "--format", "jsonl"],
        &["history", "--env", "prod"],
    ] {
        let output = run(home.path(), home.path(), &env, command);
        assert!(output.status.success(), "{command:?}\n{}", text(&output));
        assert!(
            snapshot(copy.path()) == before,
            "`tidegate {}` changed the audit copy (or left -wal/-shm files): {:?}",
            command.join(" "),
            tidegate_tests::walk(copy.path())
        );
    }
}

/// A repository whose environment `prod` has wave 2 waiting for approval.
fn approvals_repository() -> GitFixture {
    let mut git = GitFixture::new();
    git.write(
        "environments/prod.yaml",
        "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: prod\nspec:\n  source:\n    repoURL: .\n    path: manifests\n  clusters:\n    - name: a\n      provider: {kubeconfig: {}}\n      wave: 1\n    - name: b\n      provider: {kubeconfig: {}}\n      wave: 2\n  apps:\n    - name: app\n      namespace: app\n  rollout:\n    waves:\n      - {wave: 2, approval: required}\n",
    );
    git.write(
        "manifests/app/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: a\n",
    );
    git.commit("prod");
    git
}

#[test]
fn approve_refuses_environments_and_waves_that_do_not_exist() {
    let git = approvals_repository();
    let home = tempfile::tempdir().expect("home");
    let approve = |args: &[&str]| {
        let mut all = vec!["approve"];
        all.extend_from_slice(args);
        run(git.path(), home.path(), &[], &all)
    };
    let output = approve(&["--env", "prd", "--wave", "2"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("known environments: prod"),
        "{}",
        text(&output)
    );

    let output = approve(&["--env", "prod", "--wave", "7"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("wave 7 of prod does not wait for approval")
            && text(&output).contains("the waves that do are 2"),
        "{}",
        text(&output)
    );
    // Nothing was recorded for either.
    assert!(!home.path().join("audit.db").exists(), "{}", text(&output));

    let output = approve(&["--env", "prod", "--wave", "2"]);
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn recorded_text_cannot_forge_rows_html_or_formulas() {
    let home = tempfile::tempdir().expect("home");
    let db = home.path().join("audit.db");
    let forged = "ok\r\x1b[2K42  2026-01-01T00:00:00Z  prod  -  -  rollback  success\n=HYPERLINK(\"http://x\")<img src=x onerror=alert(1)>";
    {
        let store = SqliteStore::open(&db).expect("open");
        let entry = Entry::new(Actor::new("mallory", Trigger::Cli), Action::Approve)
            .env("prod")
            .message(forged);
        store.append(entry).expect("append");
        let formula = Entry::new(Actor::new("@evil", Trigger::Cli), Action::Approve)
            .env("prod")
            .message("=cmd|' /C calc'!A0");
        store.append(formula).expect("append");
    }
    let log = run(home.path(), home.path(), &[], &["audit", "log"]);
    let stdout = String::from_utf8_lossy(&log.stdout);
    assert!(log.status.success(), "{}", text(&log));
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\r'),
        "control characters reach the terminal: {stdout:?}"
    );
    assert!(stdout.contains("ok\\r\\x1b[2K42"), "{stdout:?}");
    assert_eq!(stdout.lines().count(), 3, "a forged row: {stdout:?}");

    let report = |format: &str| {
        let output = run(
            home.path(),
            home.path(),
            &[],
            &["audit", "report", "--format", format],
        );
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let csv = report("csv");
    assert!(
        csv.contains(",'@evil,") && csv.contains(",'=cmd|' /C calc'!A0,"),
        "{csv}"
    );
    let evaluated = csv
        .lines()
        .flat_map(|l| l.split(','))
        .any(|cell| cell.trim_start_matches('"').starts_with(['=', '+', '@']));
    assert!(!evaluated, "{csv}");
    let markdown = report("md");
    assert!(
        !markdown.contains("<img") && markdown.contains("&lt;img"),
        "{markdown}"
    );
}
