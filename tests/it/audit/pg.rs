//! A throw-away PostgreSQL server for the audit tests: started once per
//! test process on 127.0.0.1 (a free port, a temporary data directory, the
//! socket in that directory), one database per test; a watchdog stops it
//! and removes the directory when the test process ends.
//!
//! PostgreSQL refuses to run as root: as root the server runs as the
//! `postgres` user (`runuser`), with the directory given to it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The running server.
pub struct PgServer {
    bin: PathBuf,
    port: u16,
    /// The server's directory (data, socket, TLS files).
    dir: PathBuf,
    /// Run as this user (`Some("postgres")` when the tests run as root).
    run_as: Option<&'static str>,
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The server of this test process, started on first use.
pub fn server() -> &'static PgServer {
    match SERVER.get_or_init(start) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// A new empty database; its `postgres://` URL.
pub fn new_database(hint: &str) -> String {
    let s = server();
    let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
    let name: String = format!("t{n}_{hint}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    s.psql("postgres", &format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    s.url(&name)
}

/// The server's binaries: `TIDEGATE_PG_BIN`, else the newest
/// /usr/lib/postgresql/*/bin that has `initdb`.
fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TIDEGATE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn start() -> Result<PgServer, String> {
    let bin = find_bin().ok_or(
        "PostgreSQL's server binaries (initdb, pg_ctl, postgres) were not found in /usr/lib/postgresql/*/bin \
         (or TIDEGATE_PG_BIN): `make test-deps` installs them as root on Debian, or run `apt-get install postgresql`",
    )?;
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let run_as = root.then_some("postgres");
    let dir = tempfile::Builder::new()
        .prefix("tidegate-pg-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    write_tls_files(&dir)?;
    if root {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "PostgreSQL refuses to run as root and `chown postgres {}` failed: is there a `postgres` user (the Debian package creates it)?",
                dir.display()
            ));
        }
    }
    let data = dir.join("data");
    let server = PgServer {
        bin,
        port: 0,
        dir: dir.clone(),
        run_as,
    };
    server.run(
        "initdb",
        &[
            "-D",
            path_str(&data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
    )?;
    // A free port: bound then released (another process could take it in
    // between; then pg_ctl fails and says so).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("free port: {e}"))?
        .port();
    let options = format!(
        "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
         -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
        dir = path_str(&dir)
    );
    let log = dir.join("server.log");
    server
        .run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "start",
            ],
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })?;
    // The watchdog: when this test process is gone, stop the server and
    // remove its directory.
    let stop = server.command_line("pg_ctl");
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} -D '{data}' stop -m immediate >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        data = data.display(),
        dir = dir.display(),
    );
    let mut watchdog = Command::new("sh");
    watchdog
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut watchdog, 0);
    watchdog
        .spawn()
        .map_err(|e| format!("starting the server's watchdog: {e}"))?;
    Ok(PgServer { port, ..server })
}

/// A CA (`ca.pem`) and the server's certificate for 127.0.0.1 signed by
/// it (`server.crt`, `server.key` with mode 0600), so that clients can
/// connect with `sslmode=verify-full` (plain connections still work).
fn write_tls_files(dir: &Path) -> Result<(), String> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use std::os::unix::fs::PermissionsExt;
    let e = |e: rcgen::Error| format!("TLS files: {e}");
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).map_err(e)?;
    let leaf_key = KeyPair::generate().map_err(e)?;
    let leaf_cert = leaf
        .signed_by(&leaf_key, &Issuer::from_params(&ca, &ca_key))
        .map_err(e)?;
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    write("ca.pem", ca_cert.pem())?;
    write("server.crt", leaf_cert.pem())?;
    write("server.key", leaf_key.serialize_pem())?;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| format!("server.key: {e}"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

impl PgServer {
    /// The CA that signed the server's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// `tool` as a shell command line (as the `postgres` user when root).
    fn command_line(&self, tool: &str) -> String {
        let path = self.bin.join(tool);
        match self.run_as {
            Some(user) => format!("runuser -u {user} -- '{}'", path.display()),
            None => format!("'{}'", path.display()),
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(self.bin.join(tool));
                c
            }
            None => Command::new(self.bin.join(tool)),
        };
        let out = cmd
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{tool} {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `sql` with psql in database `db` (stopping at the first error);
    /// its output, unaligned and without headers.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}
