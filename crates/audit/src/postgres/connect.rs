//! Connecting to PostgreSQL: the pool, TLS, and the runtime the async
//! driver runs on behind the store's blocking interface.

use crate::AuditError;
use crate::location::{PgTls, PgUrl};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::sync::Arc;

/// How long to wait for the server when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections per store: a writer, a reader and headroom.
const POOL_SIZE: usize = 4;

/// A private tokio runtime: the store's methods block the calling thread
/// (like the SQLite store's) and may be called from inside another runtime,
/// so the driver's futures run here and the caller waits on a channel.
pub(crate) struct Runner {
    rt: Option<tokio::runtime::Runtime>,
}

impl Runner {
    pub(crate) fn new() -> Result<Self, AuditError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tidegate-audit-pg")
            .enable_all()
            .build()
            .map_err(|e| AuditError::Postgres(format!("cannot start its runtime: {e}")))?;
        Ok(Runner { rt: Some(rt) })
    }

    /// Runs `fut` on the store's runtime and waits for its result.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, AuditError>> + Send + 'static,
    ) -> Result<T, AuditError> {
        let Some(rt) = &self.rt else {
            return Err(AuditError::Postgres("the store is closed".into()));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| AuditError::Postgres("the database task stopped".into()))?
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Never blocks, so dropping a store inside an async task is fine.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The connection pool for `url` (connections are made on first use).
pub(crate) fn pool(url: &PgUrl) -> Result<Pool, AuditError> {
    let mut config = url.config()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match &url.tls {
        PgTls::Off => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        }
        tls => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(url, tls)?);
            Manager::from_config(config, connector, manager_config)
        }
    };
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| AuditError::Postgres(format!("connection pool: {e}")))
}

/// rustls with the aws-lc-rs provider (the workspace's one TLS stack) and
/// the roots `tls` names; the server's name is always verified.
fn client_config(url: &PgUrl, tls: &PgTls) -> Result<rustls::ClientConfig, AuditError> {
    let bad = |reason: String| AuditError::Location {
        location: url.display.clone(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    match tls {
        PgTls::Off => {}
        PgTls::SystemRoots => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(bad(
                    "sslmode asks for TLS but the system has no CA certificates (install ca-certificates, or add sslrootcert=FILE)".into(),
                ));
            }
            roots.add_parsable_certificates(found.certs);
        }
        PgTls::CaFile(path) => {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            let pem = std::fs::read(path)
                .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(bad(format!(
                    "sslrootcert {} holds no usable CA certificate (PEM expected)",
                    path.display()
                )));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
