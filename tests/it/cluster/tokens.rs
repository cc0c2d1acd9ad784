//! `tidegate token create|list|revoke` against a real local cluster as the
//! management cluster, and authentication with what it stored
//! (docs/auth.md).

use super::{client, fleet, isolated_command};
use base64::Engine;
use tidegate_auth::{
    Action, ApprovalRule, AuthError, AuthFailure, Identity, Role, TokenStore, authorize,
    authorize_approval,
};
use tidegate_testkit::TestNamespace;

const CONTEXT: &str = "eks-us-east-1";
const DAY: i64 = 86_400;

/// Runs `tidegate -vvv token <args>` against the test namespace; returns
/// (exit code, stdout, stderr).
fn token(
    fleet: &tidegate_testkit::Fleet,
    home: &std::path::Path,
    ns: &str,
    args: &[&str],
) -> (i32, String, String) {
    let output = isolated_command(home)
        // Every library's trace events too: the token must not reach them.
        .env("RUST_LOG", "trace")
        .args(["--color", "never", "-vvv", "token"])
        .args(args)
        .arg("--kubeconfig")
        .arg(fleet.kubeconfig())
        .args(["--context", CONTEXT, "--namespace", ns])
        .output()
        .expect("tidegate runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Everything stored in the token Secret, its data values decoded.
fn stored_secret(fleet: &tidegate_testkit::Fleet, ns: &str) -> String {
    let json = fleet
        .kubectl(
            CONTEXT,
            &[
                "get",
                "secret",
                "tidegate-api-tokens",
                "-n",
                ns,
                "-o",
                "json",
            ],
        )
        .expect("the token Secret exists");
    let secret: serde_json::Value = serde_json::from_str(&json).expect("secret json");
    let mut all = json.clone();
    for value in secret["data"].as_object().expect("data").values() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().expect("string"))
            .expect("base64");
        all.push_str(&String::from_utf8(bytes).expect("utf-8"));
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_created_listed_revoked_and_authenticate_from_the_management_cluster() {
    let fleet = fleet().await;
    let ns = TestNamespace::create(fleet, "tokens").expect("namespace");
    let env = ns.name();
    let home = tempfile::tempdir().expect("home");

    // Create: the token on stdout, once; nothing of it in the logs.
    let (code, alice_token, log) = token(
        fleet,
        home.path(),
        env,
        &[
            "create",
            "--name",
            "alice",
            "--role",
            &format!("{env}=deployer"),
            "--role",
            "*=viewer",
            "--expires",
            "30d",
        ],
    );
    assert_eq!(code, 0, "{log}");
    let alice_token = alice_token.trim().to_string();
    assert!(
        alice_token.starts_with("tgt_") && alice_token.len() == 85,
        "{alice_token}"
    );
    assert!(
        log.contains("storing the digest of a new API token"),
        "ran at trace: {log}"
    );
    let alice_secret = alice_token[21..].to_string();
    assert!(!log.contains(&alice_secret), "token in the logs:\n{log}");
    let alice_id = alice_token[4..20].to_string();
    assert!(log.contains(&alice_id), "{log}");

    let (code, bob_token, log) = token(
        fleet,
        home.path(),
        env,
        &[
            "create",
            "--name",
            "bob",
            "--role",
            &format!("{env}=approver"),
            "--expires",
            "never",
        ],
    );
    assert_eq!(code, 0, "{log}");
    let bob_token = bob_token.trim().to_string();
    let bob_secret = bob_token[21..].to_string();

    // The stored object holds digests, never a token.
    let stored = stored_secret(fleet, env);
    for secret in [&alice_secret, &bob_secret] {
        assert!(
            !stored.contains(secret.as_str()),
            "token in the Secret:\n{stored}"
        );
    }
    assert!(
        stored.contains(&alice_id) && stored.contains("\"hash\""),
        "{stored}"
    );

    // List: both, active, no token, no digest.
    let (code, listed, log) = token(fleet, home.path(), env, &["list", "--output", "json"]);
    assert_eq!(code, 0, "{log}");
    let rows: serde_json::Value = serde_json::from_str(&listed).expect("list json");
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(rows.iter().all(|r| r["state"] == "active"), "{listed}");
    assert!(
        !listed.contains(&alice_secret) && !listed.contains("hash"),
        "{listed}"
    );

    // A valid token authenticates to its identity and roles.
    let store = TokenStore::new(client(fleet, CONTEXT).await, env);
    let now = jiff::Timestamp::now().as_second();
    let alice = store
        .authenticate(&alice_token, now)
        .await
        .expect("alice authenticates");
    assert_eq!(alice.identity, Identity::token("alice"));
    assert_eq!(alice.roles.role_in(env), Some(Role::Deployer));
    assert_eq!(alice.roles.role_in("elsewhere"), Some(Role::Viewer));
    assert!(authorize(&alice, env, Action::Sync).is_ok());
    assert!(authorize(&alice, "elsewhere", Action::Sync).is_err());
    let bob = store
        .authenticate(&bob_token, now)
        .await
        .expect("bob authenticates");
    let rule = ApprovalRule::new();
    assert!(authorize_approval(&bob, env, &alice.identity, &rule).is_ok());
    assert!(authorize_approval(&bob, env, &bob.identity, &rule).is_err());

    // Expired from its expiry on; a token without expiry never expires.
    let expired = store.authenticate(&alice_token, now + 31 * DAY).await;
    assert!(
        matches!(expired, Err(AuthError::Failed(AuthFailure::Expired { .. }))),
        "{expired:?}"
    );
    assert!(
        store
            .authenticate(&bob_token, now + 3650 * DAY)
            .await
            .is_ok()
    );

    // A forged secret for a real id fails.
    let forged = format!("{}{}", &alice_token[..21], "0".repeat(64));
    let refused = store.authenticate(&forged, now).await;
    assert!(
        matches!(refused, Err(AuthError::Failed(AuthFailure::WrongSecret(_)))),
        "{refused:?}"
    );

    // Revoke: alice no longer authenticates, bob still does.
    let (code, _, log) = token(fleet, home.path(), env, &["revoke", &alice_id]);
    assert_eq!(code, 0, "{log}");
    let revoked = store.authenticate(&alice_token, now).await;
    assert!(
        matches!(revoked, Err(AuthError::Failed(AuthFailure::Revoked { .. }))),
        "{revoked:?}"
    );
    assert!(store.authenticate(&bob_token, now).await.is_ok());
    let (code, listed, _) = token(fleet, home.path(), env, &["list"]);
    assert_eq!(code, 0);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&alice_id) && l.contains("revoked")),
        "{listed}"
    );

    // Creations and the revocation are in the local audit trail, with the
    // Unix user, the token's id, name and roles, and no token.
    let trail = tidegate_audit::SqliteStore::open_read_only(&home.path().join("audit.db"))
        .expect("audit trail");
    let records = trail.records(&Default::default()).expect("records");
    let actions: Vec<String> = records
        .iter()
        .map(|r| format!("{} {}", r.entry.action, r.entry.details["token_name"]))
        .collect();
    assert_eq!(
        actions,
        [
            "token-create alice",
            "token-create bob",
            "token-revoke alice"
        ]
    );
    assert_eq!(records[0].entry.details["token_id"], alice_id);
    assert_eq!(records[0].entry.actor.authenticated, None);
    let bodies = serde_json::to_string(&records).expect("json");
    for secret in [&alice_secret, &bob_secret] {
        assert!(!bodies.contains(secret.as_str()), "{bodies}");
    }
    assert!(trail.verify(None).expect("verify").ok());

    // Revoking again, or an unknown id, is an error that says so.
    let (code, _, log) = token(fleet, home.path(), env, &["revoke", &alice_id]);
    assert_ne!(code, 0);
    assert!(log.contains("already revoked"), "{log}");
    let (code, _, log) = token(fleet, home.path(), env, &["revoke", "0123456789abcdef"]);
    assert_ne!(code, 0);
    assert!(
        log.contains("no API token has id 0123456789abcdef"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_create_refuses_bad_roles_and_a_missing_namespace_with_the_fix() {
    let fleet = fleet().await;
    let home = tempfile::tempdir().expect("home");
    let (code, out, log) = token(
        fleet,
        home.path(),
        "tg-no-such-namespace",
        &["create", "--name", "x", "--role", "prod=viewer"],
    );
    assert_eq!(code, 1, "{log}");
    assert!(out.is_empty(), "no token printed: {out}");
    assert!(
        log.contains("kubectl create namespace tg-no-such-namespace"),
        "{log}"
    );

    let (code, out, log) = token(
        fleet,
        home.path(),
        "tg-no-such-namespace",
        &[
            "create",
            "--name",
            "x",
            "--role",
            "prod=root",
            "--expires",
            "soon",
        ],
    );
    assert_eq!(code, 1, "{log}");
    assert!(out.is_empty());
    assert!(
        log.contains("unknown role `root`") && log.contains("`soon` is not a lifetime"),
        "{log}"
    );
}

/// A client of the management cluster acting as ServiceAccount `sa` of
/// `ns` (impersonation), to check what the RBAC of docs/auth.md allows.
async fn client_as(fleet: &tidegate_testkit::Fleet, ns: &str, sa: &str) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(fleet.kubeconfig()).expect("reading the kubeconfig");
    let options = kube::config::KubeConfigOptions {
        context: Some(CONTEXT.to_string()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kubeconfig context");
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{sa}"));
    kube::Client::try_from(config).expect("kube client")
}

#[tokio::test(flavor = "multi_thread")]
async fn get_on_the_one_secret_is_enough_to_authenticate_and_update_is_needed_to_mint() {
    let fleet = fleet().await;
    let ns = TestNamespace::create(fleet, "tokrbac").expect("namespace");
    let env = ns.name();
    let kubectl = |args: &[&str]| {
        fleet
            .kubectl(CONTEXT, &[args, &["-n", env]].concat())
            .expect("kubectl")
    };
    // The controller's role: get on the token Secret by name, nothing else.
    kubectl(&["create", "serviceaccount", "controller"]);
    kubectl(&[
        "create",
        "role",
        "token-reader",
        "--verb=get",
        "--resource=secrets",
        "--resource-name=tidegate-api-tokens",
    ]);
    kubectl(&[
        "create",
        "rolebinding",
        "token-reader",
        "--role=token-reader",
        &format!("--serviceaccount={env}:controller"),
    ]);
    // A token administrator: get and update on the same Secret.
    kubectl(&["create", "serviceaccount", "admin"]);
    kubectl(&[
        "create",
        "role",
        "token-admin",
        "--verb=get,update",
        "--resource=secrets",
        "--resource-name=tidegate-api-tokens",
    ]);
    kubectl(&[
        "create",
        "rolebinding",
        "token-admin",
        "--role=token-admin",
        &format!("--serviceaccount={env}:admin"),
    ]);

    let now = jiff::Timestamp::now().as_second();
    let new = |name: &str| tidegate_auth::NewToken {
        name: name.to_string(),
        roles: tidegate_auth::Roles::parse([format!("{env}=viewer").as_str()]).expect("roles"),
        lifetime: Some(DAY),
        created_by: "test".into(),
    };
    // The first token creates the Secret (cluster admin here).
    let owner = TokenStore::new(client(fleet, CONTEXT).await, env);
    let (_, first) = owner.create(new("first"), now).await.expect("first token");

    let controller = TokenStore::new(client_as(fleet, env, "controller").await, env);
    let who = controller
        .authenticate(first.expose(), now)
        .await
        .expect("the controller's get is enough to authenticate");
    assert_eq!(who.identity, Identity::token("first"));
    let refused = controller.create(new("sneaky"), now).await;
    let Err(tidegate_auth::StoreError::Kube {
        source: kube::Error::Api(status),
        ..
    }) = refused
    else {
        panic!("the controller minted a token: {refused:?}");
    };
    assert_eq!(status.code, 403);

    let admin = TokenStore::new(client_as(fleet, env, "admin").await, env);
    let (_, second) = admin.create(new("second"), now).await.expect("admin mints");
    assert!(controller.authenticate(second.expose(), now).await.is_ok());
    assert_eq!(owner.load().await.expect("load").iter().count(), 2);
}
