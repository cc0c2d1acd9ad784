//! `tidegate audit`: read, verify, report on and export the audit trail.

use crate::{
    args::{
        AuditArgs, AuditCommand, AuditExportArgs, AuditExportFormat, AuditKeygenArgs, AuditLogArgs,
        AuditLogOutput, AuditMigrateArgs, AuditReportArgs, AuditReportFormat, AuditVerifyArgs,
        AuditVerifyOutput, AuditWindow,
    },
    output::Style,
};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tidegate_audit::{
    AuditStore, Filter, Location, PgStore, SqliteStore, now_ms, signing, time::parse_time,
};
use tidegate_report::{Format, ReportOptions, log};

/// Dispatches `tidegate audit <command>`.
pub fn run(args: &AuditArgs, style: &Style) -> anyhow::Result<ExitCode> {
    let path = crate::args::audit_db_path(args.audit_db.as_deref());
    match &args.command {
        AuditCommand::Log(a) => log_cmd(&path, a),
        AuditCommand::Verify(a) => verify(&path, a, style),
        AuditCommand::Report(a) => report(&path, a),
        AuditCommand::Export(a) => export(&path, a),
        AuditCommand::Keygen(a) => keygen(a),
        AuditCommand::Migrate(a) => migrate(&path, a),
    }
}

fn time_arg(name: &str, value: Option<&str>, now: i64) -> anyhow::Result<Option<i64>> {
    value
        .map(|v| parse_time(v, now).map_err(|e| anyhow::anyhow!("--{name}: {e}")))
        .transpose()
}

fn window_filter(w: &AuditWindow, now: i64, default_since: Option<&str>) -> anyhow::Result<Filter> {
    Ok(Filter {
        environment: w.env.clone(),
        since_ms: time_arg("since", w.since.as_deref().or(default_since), now)?,
        until_ms: time_arg("until", w.until.as_deref(), now)?,
        ..Filter::default()
    })
}

/// Opens the log for reading only: auditors verify read-only copies, and
/// a reader never migrates or otherwise changes the file.
fn open(path: &Path) -> anyhow::Result<AuditStore> {
    Ok(AuditStore::open_read_only(path)?)
}

/// Writes to FILE or stdout.
fn emit(output: Option<&PathBuf>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(file) => {
            std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))
        }
        None => Ok(crate::sink::write_stdout(text)?),
    }
}

fn log_cmd(path: &Path, a: &AuditLogArgs) -> anyhow::Result<ExitCode> {
    let store = open(path)?;
    let mut filter = window_filter(&a.window, now_ms(), None)?;
    filter.cluster.clone_from(&a.cluster);
    filter.app.clone_from(&a.app);
    filter.actions.clone_from(&a.action);
    let records = store.records(&filter)?;
    let text = match a.output {
        AuditLogOutput::Table => log::table(&records),
        AuditLogOutput::Json => serde_json::to_string_pretty(&records)? + "\n",
    };
    emit(None, &text)?;
    Ok(ExitCode::SUCCESS)
}

fn verify(path: &Path, a: &AuditVerifyArgs, style: &Style) -> anyhow::Result<ExitCode> {
    // Only signing the head (--signing-key) writes.
    let store = match &a.signing_key {
        Some(_) => AuditStore::open_existing(path)?,
        None => open(path)?,
    };
    let trusted = a
        .public_key
        .as_deref()
        .map(signing::load_verifying_key)
        .transpose()?;
    let report = store.verify(trusted.as_ref())?;
    let mut signed = None;
    if report.ok()
        && let Some(key_path) = &a.signing_key
    {
        let key = signing::load_signing_key(key_path)?;
        signed = store.sign_head(&key)?;
    }
    match a.output {
        AuditVerifyOutput::Json => {
            let value = serde_json::json!({
                "database": store.describe(),
                "ok": report.ok(),
                "entries": report.entries,
                "head": report.head.as_ref().map(|(seq, hash)| serde_json::json!({"seq": seq, "hash": hash})),
                "signedHead": report.signed_head,
                "problem": report.problem.as_ref().map(|p| serde_json::json!({"detail": p.to_string(), "kind": p})),
                "newSignature": signed,
            });
            emit(None, &(serde_json::to_string_pretty(&value)? + "\n"))?;
        }
        AuditVerifyOutput::Text => match &report.problem {
            None => {
                let mut line = format!("{} verified {} entries", style.ok("ok"), report.entries);
                if let Some((seq, hash)) = &report.head {
                    line.push_str(&format!(", head #{seq} {}", &hash[..hash.len().min(16)]));
                }
                if let Some(s) = report.signed_head {
                    line.push_str(&format!(", signed up to #{s}"));
                }
                if let Some(s) = &signed {
                    line.push_str(&format!("; head #{} signed now", s.seq));
                }
                outln!("{line}");
            }
            Some(problem) => {
                outln!(
                    "{} audit log {} failed verification: {problem} ({} entries verified before it)",
                    style.error("TAMPERED"),
                    store.describe(),
                    report.entries
                );
            }
        },
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report(path: &Path, a: &AuditReportArgs) -> anyhow::Result<ExitCode> {
    let store = open(path)?;
    let now = now_ms();
    if let Some(at) = &a.at {
        let at_ms = parse_time(at, now).map_err(|e| anyhow::anyhow!("--at: {e}"))?;
        let filter = Filter {
            environment: a.window.env.clone(),
            until_ms: Some(at_ms.saturating_add(1)),
            ..Filter::default()
        };
        let records = store.records(&filter)?;
        let rows = tidegate_report::running_at(&records, at_ms);
        let text = match a.format {
            AuditReportFormat::Json => serde_json::to_string_pretty(&rows)? + "\n",
            AuditReportFormat::Csv => {
                let mut s = String::from("environment,cluster,app,revision,since,via,seq\n");
                for r in &rows {
                    let fields = text_fields(r).map(tidegate_report::csv_field);
                    s.push_str(&fields.join(","));
                    s.push_str(&format!(",{}\n", r.seq));
                }
                s
            }
            AuditReportFormat::Html => {
                anyhow::bail!("--at prints a table: use --format md, json or csv")
            }
            AuditReportFormat::Md => {
                let mut s = format!(
                    "# What ran where at {}\n\n| Environment | Cluster | App | Revision | Since | Via | Seq |\n|---|---|---|---|---|---|---:|\n",
                    tidegate_audit::time::format_ms(at_ms)
                );
                for r in &rows {
                    let [environment, cluster, app, revision, since, via] =
                        text_fields(r).map(tidegate_report::md_cell);
                    s.push_str(&format!(
                        "| {environment} | {cluster} | {app} | `{revision}` | {since} | {via} | {} |\n",
                        r.seq
                    ));
                }
                s
            }
        };
        emit(a.output.as_ref(), &text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let filter = window_filter(&a.window, now, Some("30d"))?;
    let opts = ReportOptions {
        since_ms: filter.since_ms.unwrap_or(0),
        until_ms: filter.until_ms.unwrap_or(now),
        environment: a.window.env.clone(),
    };
    let records = store.records(&filter)?;
    let built = tidegate_report::build(&records, &opts);
    let format = match a.format {
        AuditReportFormat::Md => Format::Markdown,
        AuditReportFormat::Html => Format::Html,
        AuditReportFormat::Json => Format::Json,
        AuditReportFormat::Csv => Format::Csv,
    };
    let text = tidegate_report::render(&built, &records, format)?;
    emit(a.output.as_ref(), &text)?;
    if let Some(file) = &a.output {
        errln!("wrote {} ({} entries)", file.display(), records.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// The text columns of a "what ran where" row, in table order.
fn text_fields(r: &tidegate_report::RunningAt) -> [&str; 6] {
    [
        &r.environment,
        &r.cluster,
        &r.app,
        &r.revision,
        &r.since,
        &r.via,
    ]
}

fn export(path: &Path, a: &AuditExportArgs) -> anyhow::Result<ExitCode> {
    let store = open(path)?;
    let filter = window_filter(&a.window, now_ms(), None)?;
    let mut out: Box<dyn Write> = match &a.output {
        Some(file) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut io_error = None;
    store.for_each(&filter, |record| {
        let line = match a.format {
            AuditExportFormat::Jsonl => Some(log::jsonl_line(&record)),
            AuditExportFormat::Cdevents => log::cdevent(&record, &a.source).map(|v| v.to_string()),
        };
        if let Some(line) = line
            && io_error.is_none()
            && let Err(e) = writeln!(out, "{line}")
        {
            io_error = Some(e);
        }
        Ok(())
    })?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn keygen(a: &AuditKeygenArgs) -> anyhow::Result<ExitCode> {
    let key = signing::generate_key(&a.out)?;
    let public = signing::public_key_hex(&key.verifying_key());
    let mut pub_path = a.out.clone().into_os_string();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    std::fs::write(&pub_path, format!("{public}\n"))
        .with_context(|| format!("writing {}", pub_path.display()))?;
    outln!(
        "secret key: {} (keep it off the audit host's disk if you can)\npublic key: {} = {public}",
        a.out.display(),
        pub_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `tidegate audit migrate --to postgres://…`: copies the SQLite trail at
/// `path` and verifies the copy.
fn migrate(path: &Path, a: &AuditMigrateArgs) -> anyhow::Result<ExitCode> {
    let source = match Location::parse(path)? {
        Location::Sqlite(p) => SqliteStore::open_read_only(&p)?,
        Location::Postgres(u) => anyhow::bail!(
            "--audit-db is already PostgreSQL ({}): migrate copies an SQLite trail; point --audit-db (or TIDEGATE_AUDIT_DB) at the SQLite file",
            u.display
        ),
    };
    let target = match Location::parse(Path::new(&a.to))? {
        Location::Postgres(u) => PgStore::open(&u)?,
        Location::Sqlite(_) => anyhow::bail!(
            "--to {}: migrate copies into PostgreSQL; give a postgres://… URL",
            tidegate_audit::location::redact(&a.to)
        ),
    };
    let report = tidegate_audit::migrate(&source, &target)?;
    let head = report
        .head
        .as_ref()
        .map(|(seq, hash)| format!(", head #{seq} {}", &hash[..hash.len().min(16)]))
        .unwrap_or_default();
    outln!(
        "copied {} of {} entries ({} already there) and {} signed heads from {} to {}; the copy verifies{head}",
        report.copied,
        report.entries,
        report.already_there,
        report.signed_heads_copied,
        source.path().display(),
        target.display()
    );
    Ok(ExitCode::SUCCESS)
}
