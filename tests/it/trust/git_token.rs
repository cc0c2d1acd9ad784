//! `TIDEGATE_GIT_TOKEN` goes only to the hosts the operator named, and
//! never over plain HTTP (issue #20, item 2). A local Git "server" answers
//! every request with `401 Basic` and records the `Authorization` headers
//! it receives.

use super::{run, text};
use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tidegate_tests::GitFixture;

const TOKEN: &str = "s3cret-git-token-0451";

/// The `Authorization` headers (and request lines) a server received.
type Seen = Arc<Mutex<Vec<String>>>;

/// Reads one request head and answers 401 asking for Basic credentials.
fn answer(stream: impl Read + Write, seen: &Seen) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line.trim().is_empty() {
            break;
        }
        let header = line.trim_end().to_string();
        if header.to_ascii_lowercase().starts_with("authorization:") {
            seen.lock().expect("lock").push(header);
        }
        line.clear();
    }
    let stream = reader.get_mut();
    let _ = stream.write_all(
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let _ = stream.flush();
}

/// A server on 127.0.0.1 (plain, or TLS with `tls`); its port and what it saw.
fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Seen::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = record.clone();
            let tls = tls.clone();
            std::thread::spawn(move || match tls {
                Some(config) => {
                    if let Ok(conn) = rustls::ServerConnection::new(config) {
                        answer(rustls::StreamOwned::new(conn, stream), &seen);
                    }
                }
                None => answer(stream, &seen),
            });
        }
    });
    (port, seen)
}

/// A TLS configuration for 127.0.0.1 and the certificate (PEM) to trust.
fn tls_config() -> (Arc<rustls::ServerConfig>, String) {
    crate::cluster::install_crypto_provider();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("tls config");
    (Arc::new(config), pem)
}

/// A configuration repository whose environment reads its manifests from `url`.
fn repository(url: &str) -> GitFixture {
    let mut git = GitFixture::new();
    git.write(
        "environments/test.yaml",
        format!(
            "apiVersion: tidegate.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: test\nspec:\n  source:\n    repoURL: {url}\n    path: manifests\n  clusters:\n    - name: c1\n      provider:\n        kubeconfig: {{context: c1}}\n  apps:\n    - name: app\n      namespace: app\n"
        ),
    );
    git.commit("manifests elsewhere");
    git
}

fn render(repo: &Path, home: &Path, extra: &[(&str, &str)]) -> std::process::Output {
    let mut envs = vec![("TIDEGATE_GIT_TOKEN", TOKEN)];
    envs.extend_from_slice(extra);
    run(repo, home, &envs, &["render", "--env", "test"])
}

#[test]
fn the_git_token_is_never_sent_over_plain_http() {
    let (port, seen) = serve(None);
    let host = format!("127.0.0.1:{port}");
    let git = repository(&format!("http://{host}/fleet.git"));
    let home = tempfile::tempdir().expect("home");
    // Not even to a host the operator named.
    for hosts in ["", host.as_str()] {
        let output = render(
            git.path(),
            home.path(),
            &[("TIDEGATE_GIT_TOKEN_HOSTS", hosts)],
        );
        let all = text(&output);
        assert_ne!(output.status.code(), Some(0), "{all}");
        assert!(
            seen.lock().expect("lock").is_empty(),
            "the server received credentials: {:?}",
            seen.lock().expect("lock")
        );
        assert!(all.contains("never sent over plain HTTP"), "{all}");
        assert!(!all.contains(TOKEN), "{all}");
    }
}

#[test]
fn the_git_token_goes_only_to_hosts_the_operator_named() {
    let (config, pem) = tls_config();
    let (port, seen) = serve(Some(config));
    let host = format!("127.0.0.1:{port}");
    let git = repository(&format!("https://{host}/fleet.git"));
    let home = tempfile::tempdir().expect("home");
    let ca = home.path().join("ca.pem");
    std::fs::write(&ca, pem).expect("ca");
    let ca = ca.display().to_string();

    // Only the environment file (repository content) names this host.
    let output = render(git.path(), home.path(), &[("SSL_CERT_FILE", &ca)]);
    let all = text(&output);
    assert_ne!(output.status.code(), Some(0), "{all}");
    assert!(
        seen.lock().expect("lock").is_empty(),
        "credentials sent to a host only the repository named: {:?}",
        seen.lock().expect("lock")
    );
    assert!(
        all.contains(&format!("TIDEGATE_GIT_TOKEN is not sent to {host}"))
            && all.contains("TIDEGATE_GIT_TOKEN_HOSTS"),
        "{all}"
    );
    assert!(!all.contains("no usable credentials"), "{all}");

    // The operator names the host: the token is sent, once, and the
    // message says it was refused (not that there were no credentials).
    let output = render(
        git.path(),
        home.path(),
        &[("SSL_CERT_FILE", &ca), ("TIDEGATE_GIT_TOKEN_HOSTS", &host)],
    );
    let all = text(&output);
    let received = seen.lock().expect("lock").clone();
    assert_eq!(received.len(), 1, "{received:?}\n{all}");
    assert!(
        received[0].starts_with("Authorization: Basic"),
        "{received:?}"
    );
    assert!(
        all.contains("refused TIDEGATE_GIT_TOKEN (user x-access-token)"),
        "{all}"
    );
    assert!(!all.contains(TOKEN), "{all}");
}
