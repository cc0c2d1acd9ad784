//! Why a cluster could not be reached, decided from the error's type and
//! the types of its causes — never from its text, which changes with kube,
//! hyper and rustls versions and with the operating system's wording.

use crate::ClusterError;
use std::{error::Error as StdError, fmt, io};

/// The reason a cluster could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// The API server (or the credential plugin) refused the identity:
    /// HTTP 401/403, or the credentials could not be obtained.
    Auth,
    /// The TLS handshake failed (untrusted certificate, not TLS, ...).
    Tls,
    /// The connection or an answer timed out.
    Timeout,
    /// No connection: refused, reset, unreachable host, DNS failure.
    Connection,
    /// The kubeconfig (context, user, certificates) could not be used.
    Config,
    /// Anything else (an unexpected answer from the API server, ...).
    Other,
}

impl Unreachable {
    /// The short word shown in tables and JSON (`auth`, `tls`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Unreachable::Auth => "auth",
            Unreachable::Tls => "tls",
            Unreachable::Timeout => "timeout",
            Unreachable::Connection => "connection",
            Unreachable::Config => "config",
            Unreachable::Other => "other",
        }
    }

    /// Why `error` happened.
    pub fn of(error: &ClusterError) -> Self {
        match error {
            ClusterError::Kubeconfig { .. } => Unreachable::Config,
            ClusterError::Client { error, .. } | ClusterError::Api { error, .. } => {
                Self::of_kube(error)
            }
            _ => Unreachable::Other,
        }
    }

    /// Why a kube request failed.
    pub fn of_kube(error: &kube::Error) -> Self {
        match error {
            kube::Error::Api(status) if matches!(status.code, 401 | 403) => Unreachable::Auth,
            kube::Error::Api(_) => Unreachable::Other,
            kube::Error::Auth(_) => Unreachable::Auth,
            kube::Error::RustlsTls(_) | kube::Error::TlsRequired => Unreachable::Tls,
            kube::Error::InferConfig(_) | kube::Error::InferKubeconfig(_) => Unreachable::Config,
            other => Self::of_causes(other),
        }
    }

    /// The most specific reason among the causes of a transport error: a
    /// TLS failure beats a timeout, which beats a failed connection (a
    /// handshake failure is reported by hyper as a connect error too).
    fn of_causes(error: &(dyn StdError + 'static)) -> Self {
        let mut found = Unreachable::Other;
        let mut next: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(cause) = next {
            found = found.max_with(Self::of_one(cause));
            next = cause.source();
        }
        found
    }

    /// What one error in a chain says on its own.
    fn of_one(cause: &(dyn StdError + 'static)) -> Self {
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return Unreachable::Tls;
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            // An io::Error's `source()` skips the error it wraps (hyper-rustls
            // wraps the rustls error in two of them): look inside.
            let inner = io
                .get_ref()
                .map_or(Unreachable::Other, |inner| Self::of_causes(inner));
            let own = match io.kind() {
                io::ErrorKind::TimedOut => Unreachable::Timeout,
                io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
                | io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => Unreachable::Connection,
                _ => Unreachable::Other,
            };
            return own.max_with(inner);
        }
        if let Some(hyper) = cause.downcast_ref::<hyper_util::client::legacy::Error>()
            && hyper.is_connect()
        {
            return Unreachable::Connection;
        }
        Unreachable::Other
    }

    /// The more specific of two reasons.
    fn max_with(self, other: Self) -> Self {
        let rank = |r: Self| match r {
            Unreachable::Tls => 3,
            Unreachable::Timeout => 2,
            Unreachable::Connection => 1,
            _ => 0,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::{io::AsyncWriteExt, net::TcpListener};

    /// A client for an API server at `url` that trusts nothing special.
    fn client(url: &str, timeout: Duration) -> kube::Client {
        crate::install_crypto_provider();
        let mut config = kube::Config::new(url.parse().expect("test URL"));
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        kube::Client::try_from(config).expect("test client")
    }

    async fn reason_for(url: &str, timeout: Duration) -> Unreachable {
        let error = client(url, timeout)
            .apiserver_version()
            .await
            .expect_err("nothing serves the Kubernetes API there");
        Unreachable::of_kube(&error)
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connection_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let url = format!("https://127.0.0.1:{port}");
        assert_eq!(
            reason_for(&url, Duration::from_secs(5)).await,
            Unreachable::Connection
        );
    }

    #[tokio::test]
    async fn a_server_that_does_not_speak_tls_is_a_tls_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let url = format!("https://127.0.0.1:{port}");
        assert_eq!(
            reason_for(&url, Duration::from_secs(5)).await,
            Unreachable::Tls
        );
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let url = format!("https://127.0.0.1:{port}");
        assert_eq!(
            reason_for(&url, Duration::from_millis(300)).await,
            Unreachable::Timeout
        );
    }

    #[test]
    fn refused_credentials_are_auth_and_other_answers_are_not() {
        let api = |code: u16| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("no", "Test").with_code(code),
            ))
        };
        assert_eq!(Unreachable::of_kube(&api(401)), Unreachable::Auth);
        assert_eq!(Unreachable::of_kube(&api(403)), Unreachable::Auth);
        assert_eq!(Unreachable::of_kube(&api(500)), Unreachable::Other);
    }
}
