//! Where the audit trail lives: an SQLite file (the default) or a
//! PostgreSQL database, chosen by the `--audit-db` / `TIDEGATE_AUDIT_DB`
//! value.
//!
//! - a path, or `sqlite://PATH` (`sqlite:///abs/path`): an SQLite file;
//! - `postgres://…` or `postgresql://…`: a PostgreSQL database, in libpq's
//!   URL form. `sslmode=disable|allow|prefer` (or none) connects without
//!   TLS; `sslmode=require|verify-ca|verify-full` connects with TLS and
//!   always verifies the server's certificate and host name, against the
//!   system's roots or, with `sslrootcert=FILE`, against that CA bundle.

use crate::AuditError;
use std::path::{Path, PathBuf};

/// A parsed audit database location.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgUrl),
}

/// TLS to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTls {
    /// Plain TCP or a Unix socket.
    Off,
    /// TLS with the server's certificate verified against the system's roots.
    SystemRoots,
    /// TLS with the server's certificate verified against this PEM bundle.
    CaFile(PathBuf),
}

/// A PostgreSQL URL, split into what the driver reads and the TLS choice.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    /// The URL without `sslmode` and `sslrootcert`, for `tokio_postgres::Config`.
    pub(crate) driver_url: String,
    /// TLS.
    pub tls: PgTls,
    /// The URL as given, password hidden: for messages.
    pub display: String,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgUrl")
            .field("url", &self.display)
            .field("tls", &self.tls)
            .finish()
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(u) => f.write_str(&u.display),
        }
    }
}

impl Location {
    /// Reads a `--audit-db` value (see the module docs).
    pub fn parse(value: &Path) -> Result<Self, AuditError> {
        let Some(text) = value.to_str() else {
            return Ok(Location::Sqlite(value.to_path_buf()));
        };
        if let Some(rest) = text.strip_prefix("sqlite://") {
            if rest.is_empty() {
                return Err(AuditError::Location {
                    location: text.to_string(),
                    reason: "no file after sqlite:// (write sqlite:///abs/path.db or a plain path)"
                        .into(),
                });
            }
            return Ok(Location::Sqlite(PathBuf::from(rest)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return PgUrl::parse(text).map(Location::Postgres);
        }
        Ok(Location::Sqlite(value.to_path_buf()))
    }

    /// True for PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

impl PgUrl {
    /// Parses a `postgres://` URL.
    pub fn parse(url: &str) -> Result<Self, AuditError> {
        let display = redact(url);
        let bad = |reason: String| AuditError::Location {
            location: display.clone(),
            reason,
        };
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut kept = Vec::new();
        let mut mode = None;
        let mut root = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => mode = Some(percent_decode(value)),
                "sslrootcert" => root = Some(PathBuf::from(percent_decode(value))),
                _ => kept.push(pair),
            }
        }
        let tls = match mode.as_deref() {
            None | Some("disable" | "allow" | "prefer") => {
                if root.is_some() {
                    return Err(bad(
                        "sslrootcert is set but TLS is off: add sslmode=verify-full".into(),
                    ));
                }
                PgTls::Off
            }
            Some("require" | "verify-ca" | "verify-full") => match root {
                Some(path) => PgTls::CaFile(path),
                None => PgTls::SystemRoots,
            },
            Some(other) => {
                return Err(bad(format!(
                    "sslmode={other} is not known (use disable, require or verify-full)"
                )));
            }
        };
        let mut driver_url = base.to_string();
        if !kept.is_empty() {
            driver_url.push('?');
            driver_url.push_str(&kept.join("&"));
        }
        driver_url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| bad(format!("not a PostgreSQL URL the driver accepts: {e}")))?;
        Ok(PgUrl {
            driver_url,
            tls,
            display,
        })
    }

    /// The driver's configuration.
    pub(crate) fn config(&self) -> Result<tokio_postgres::Config, AuditError> {
        self.driver_url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| AuditError::Location {
                location: self.display.clone(),
                reason: e.to_string(),
            })
    }
}

/// An `--audit-db` value for messages: a path as it is, a URL with its
/// password hidden.
pub fn describe(value: &Path) -> String {
    let text = value.to_string_lossy();
    if text.contains("://") {
        redact(&text)
    } else {
        value.display().to_string()
    }
}

/// `url` with the password (in the user-info part or a `password=`
/// parameter) replaced by `***`.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => format!("{userinfo}@{host}"),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_string(),
    };
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_sqlite_urls_are_sqlite() {
        assert_eq!(
            Location::parse(Path::new("/var/lib/audit.db")).expect("parses"),
            Location::Sqlite("/var/lib/audit.db".into())
        );
        assert_eq!(
            Location::parse(Path::new("sqlite:///var/lib/audit.db")).expect("parses"),
            Location::Sqlite("/var/lib/audit.db".into())
        );
        assert_eq!(
            Location::parse(Path::new("sqlite://rel/a.db")).expect("parses"),
            Location::Sqlite("rel/a.db".into())
        );
        assert!(Location::parse(Path::new("sqlite://")).is_err());
    }

    #[test]
    fn postgres_urls_choose_tls_and_hide_the_password() {
        let Location::Postgres(u) = Location::parse(Path::new(
            "postgres://tide:s3cret@db.example:5432/audit?sslmode=verify-full&sslrootcert=/etc/ca%20bundle.pem&application_name=x",
        ))
        .expect("parses") else {
            panic!("not postgres");
        };
        assert_eq!(u.tls, PgTls::CaFile("/etc/ca bundle.pem".into()));
        assert!(!u.display.contains("s3cret"), "{}", u.display);
        assert!(!format!("{u:?}").contains("s3cret"));
        assert_eq!(
            u.driver_url,
            "postgres://tide:s3cret@db.example:5432/audit?application_name=x"
        );
        let Location::Postgres(u) =
            Location::parse(Path::new("postgresql://h/db?sslmode=require")).expect("parses")
        else {
            panic!("not postgres");
        };
        assert_eq!(u.tls, PgTls::SystemRoots);
        let Location::Postgres(u) = Location::parse(Path::new("postgres://h/db")).expect("parses")
        else {
            panic!("not postgres");
        };
        assert_eq!(u.tls, PgTls::Off);
        let err = Location::parse(Path::new("postgres://u:pw@h/db?sslmode=sometimes"))
            .expect_err("refused");
        assert!(err.to_string().contains("sslmode=sometimes"), "{err}");
        assert!(!err.to_string().contains("pw@"), "{err}");
        assert_eq!(
            redact("postgres://u:pw@h/db?password=x&a=b"),
            "postgres://u:***@h/db?password=***&a=b"
        );
    }
}
