//! `tidegate token create|list|revoke`: API tokens of the controller's API,
//! kept as SHA-256 digests in a Secret of the management cluster
//! (`tidegate_auth::TokenStore`, docs/auth.md).

use super::controller::management_client;
use crate::{
    args::{TextOrJson, TokenArgs, TokenCommand, TokenCreateArgs, TokenListArgs},
    output::Style,
};
use anyhow::Context;
use serde::Serialize;
use std::process::ExitCode;
use tidegate_audit::{Action, Actor, AuditSink, Entry, SqliteStore, Trigger};
use tidegate_auth::record::rfc3339;
use tidegate_auth::{NewToken, Roles, StoreError, TokenId, TokenRecord, TokenStore, lifetime};

/// Runs one `tidegate token` subcommand.
pub async fn run(args: &TokenArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let client = management_client(args.kubeconfig.as_deref(), args.context.clone()).await?;
    let store = TokenStore::new(client, &args.namespace);
    let now = jiff::Timestamp::now().as_second();
    let me = Actor::local_user(Trigger::Cli).identity;
    match &args.command {
        TokenCommand::Create(create) => self::create(&store, args, create, &me, now, style).await,
        TokenCommand::List(list) => self::list(&store, list, now).await,
        TokenCommand::Revoke(revoke) => {
            let Ok(id) = TokenId::parse(&revoke.id) else {
                eprintln!(
                    "{} `{}` is not a token id (16 hex characters, as `tidegate token list` shows)",
                    style.error("error:"),
                    tidegate_core::printable::printable(&revoke.id)
                );
                return Ok(ExitCode::from(1));
            };
            let record = store.revoke(&id, &me, now).await?;
            eprintln!(
                "{} token {} ({}) revoked: it no longer authenticates",
                style.ok("✓"),
                record.id,
                record.name
            );
            audit(args, "token-revoke", &record)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn create(
    store: &TokenStore,
    root: &TokenArgs,
    args: &TokenCreateArgs,
    me: &str,
    now: i64,
    style: &Style,
) -> anyhow::Result<ExitCode> {
    let roles = Roles::parse(args.roles.iter().map(String::as_str));
    let lifetime = lifetime::parse(&args.expires);
    let (roles, lifetime) = match (roles, lifetime) {
        (Ok(roles), Ok(lifetime)) => (roles, lifetime),
        (roles, lifetime) => {
            for problem in [roles.err().map(|e| e.to_string()), lifetime.err()]
                .into_iter()
                .flatten()
            {
                eprintln!("{} {problem}", style.error("error:"));
            }
            return Ok(ExitCode::from(1));
        }
    };
    let new = NewToken {
        name: args.name.clone(),
        roles,
        lifetime,
        created_by: me.to_string(),
    };
    let (record, token) = match store.create(new, now).await {
        Ok(created) => created,
        Err(problem @ (StoreError::Invalid(_) | StoreError::NoNamespace(_))) => {
            eprintln!("{} {problem}", style.error("error:"));
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e).context("creating the token"),
    };
    let expires = record.expires_at.map_or_else(
        || "never expires".to_string(),
        |at| format!("expires {}", rfc3339(at)),
    );
    eprintln!(
        "{} token {} for {} (roles {}; {}), kept as a SHA-256 digest in {}/{}.",
        style.ok("✓"),
        record.id,
        record.name,
        record.roles,
        expires,
        store.namespace(),
        store.secret_name()
    );
    eprintln!(
        "{}",
        style.dim(
            "This is the only time the token is shown: store it now (e.g. in TIDEGATE_TOKEN)."
        )
    );
    println!("{}", token.expose());
    audit(root, "token-create", &record)?;
    Ok(ExitCode::SUCCESS)
}

/// Records a creation or revocation in the local audit trail (who, which
/// token, its name and roles; never the token).
fn audit(args: &TokenArgs, action: &str, record: &TokenRecord) -> anyhow::Result<()> {
    let path = args.audit.path();
    let mut entry = Entry::new(
        Actor::local_user(Trigger::Cli),
        Action::Other(action.into()),
    )
    .message(format!("API token {} ({})", record.id, record.name));
    entry.details = [
        ("token_id", record.id.to_string()),
        ("token_name", record.name.clone()),
        ("roles", record.roles.to_string()),
        ("namespace", args.namespace.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(
        record
            .expires_at
            .map(|at| ("expires_at".to_string(), rfc3339(at))),
    )
    .collect();
    SqliteStore::open(&path)
        .and_then(|store| store.append(entry))
        .with_context(|| {
            format!(
                "the token change was made but could not be recorded in the audit trail {}",
                path.display()
            )
        })?;
    Ok(())
}

/// One token as `token list` shows it: never the digest or the token.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    name: String,
    roles: Roles,
    state: &'static str,
    created_at: String,
    created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_by: Option<String>,
}

impl Row {
    fn of(record: &TokenRecord, now: i64) -> Row {
        Row {
            id: record.id.to_string(),
            name: record.name.clone(),
            roles: record.roles.clone(),
            state: record.state(now).as_str(),
            created_at: rfc3339(record.created_at),
            created_by: record.created_by.clone(),
            expires_at: record.expires_at.map(rfc3339),
            revoked_at: record.revoked_at.map(rfc3339),
            revoked_by: record.revoked_by.clone(),
        }
    }
}

async fn list(store: &TokenStore, args: &TokenListArgs, now: i64) -> anyhow::Result<ExitCode> {
    let tokens = store.load().await?;
    let rows: Vec<Row> = tokens.iter().map(|r| Row::of(r, now)).collect();
    match args.output {
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        TextOrJson::Text => {
            println!(
                "{:<16}  {:<20} {:<8} {:<20} {:<30} CREATED BY",
                "ID", "NAME", "STATE", "EXPIRES", "ROLES"
            );
            for r in &rows {
                println!(
                    "{:<16}  {:<20} {:<8} {:<20} {:<30} {}",
                    r.id,
                    r.name,
                    r.state,
                    r.expires_at.as_deref().unwrap_or("never"),
                    r.roles.to_string(),
                    r.created_by
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
