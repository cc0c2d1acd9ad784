//! A small HTTP/1.1 server for loopback test servers: the clusters' token
//! webhooks (over TLS) and the stub cloud APIs of the integration tests
//! ([`serve_stub`], plain HTTP; [`serve_stub_tls`], HTTPS for clients that
//! refuse plain HTTP, such as azure_core's bearer-token policy).
//!
//! It reads a request line, headers and a `Content-Length` body (a chunked
//! body is refused), answers with a `Content-Length` body, and keeps the
//! connection open for the next request unless the client asks to close it.
//! One thread per connection. Enough for the Go and hyper clients that talk
//! to it; not a general-purpose server.

use crate::{Error, Result};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Longest request head (request line and headers) accepted.
const MAX_HEAD: u64 = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// One HTTP request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON body.
    pub fn json(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "application/json".into(),
            body: body.into().into_bytes(),
        }
    }

    /// A plain-text body.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: body.into().into_bytes(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Status",
    }
}

/// Reads one line of the head into `line`, counting it against `budget`.
fn read_line(
    reader: &mut impl std::io::BufRead,
    line: &mut String,
    budget: &mut u64,
) -> std::io::Result<usize> {
    line.clear();
    let n = reader.by_ref().take(*budget).read_line(line)?;
    *budget = budget.saturating_sub(n as u64);
    if *budget == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "request head too long",
        ));
    }
    Ok(n)
}

/// Reads the next request; `Ok(None)` when the client closed the connection
/// between requests. `Err` for a request that cannot be served, with the
/// response to send before closing.
fn read_request<S: Read + Write>(
    reader: &mut BufReader<S>,
) -> std::io::Result<Option<Result<Request, Response>>> {
    let mut budget = MAX_HEAD;
    let mut line = String::new();
    // Empty lines before a request line are allowed (RFC 9112, 2.2).
    loop {
        if read_line(reader, &mut line, &mut budget)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Ok(Some(Err(Response::text(400, "malformed request line\n"))));
    };
    let (method, target) = (method.to_string(), target.to_string());
    let mut headers = Vec::new();
    loop {
        if read_line(reader, &mut line, &mut budget)? == 0 {
            return Ok(None);
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        let Some((name, value)) = text.split_once(':') else {
            return Ok(Some(Err(Response::text(400, "malformed header\n"))));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
    {
        return Ok(Some(Err(Response::text(411, "send a Content-Length\n"))));
    }
    let length = match request.header("content-length").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) if n <= MAX_BODY => n,
        Some(Ok(_)) => return Ok(Some(Err(Response::text(413, "body too large\n")))),
        Some(Err(_)) => return Ok(Some(Err(Response::text(400, "bad Content-Length\n")))),
    };
    if request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        let stream = reader.get_mut();
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        stream.flush()?;
    }
    request.body = vec![0; length];
    reader.read_exact(&mut request.body)?;
    Ok(Some(Ok(request)))
}

fn write_response(out: &mut impl Write, response: &Response, close: bool) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(&response.body);
    out.write_all(&message)?;
    out.flush()
}

/// Serves the requests of one connection with `handler` until the client
/// closes it (or asks to, or sends something unservable).
pub fn serve_connection<S: Read + Write>(
    stream: S,
    handler: &(dyn Fn(&Request) -> Response + Send + Sync),
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        match read_request(&mut reader)? {
            None => return Ok(()),
            Some(Err(refusal)) => return write_response(reader.get_mut(), &refusal, true),
            Some(Ok(request)) => {
                let close = request
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                let response = handler(&request);
                write_response(reader.get_mut(), &response, close)?;
                if close {
                    return Ok(());
                }
            }
        }
    }
}

/// Accepts connections until `stop` is set, serving each on a thread of its own.
pub(crate) fn accept_loop(
    listener: &TcpListener,
    stop: &AtomicBool,
    serve: Arc<dyn Fn(TcpStream) + Send + Sync>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match stream {
            Ok(stream) => {
                let serve = serve.clone();
                std::thread::spawn(move || serve(stream));
            }
            Err(e) => tracing::warn!(error = %e, "accepting a connection"),
        }
    }
}

/// A plain-HTTP server on 127.0.0.1 (an ephemeral port) answering every
/// request with a handler; stopped when dropped (connections already open
/// are served until their clients close them).
pub struct StubServer {
    url: String,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for StubServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubServer")
            .field("url", &self.url)
            .finish()
    }
}

impl StubServer {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Starts a [`StubServer`] answering with `handler` (for stub cloud APIs in
/// tests). A panic in the handler (a failed assertion) drops that
/// connection: the client sees the connection close without an answer.
pub fn serve_stub(
    handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
) -> std::io::Result<StubServer> {
    let handler: Arc<dyn Fn(&Request) -> Response + Send + Sync> = Arc::new(handler);
    start_stub("http", move |stream: TcpStream| {
        let _ = serve_connection(stream, &*handler);
    })
}

/// Like [`serve_stub`], over HTTPS with the certificate `cert` and key `key`
/// (PEM; e.g. a cluster's token-webhook certificate, valid for 127.0.0.1 and
/// signed by that cluster's CA): the URL is `https://127.0.0.1:<port>`.
pub fn serve_stub_tls(
    cert: &Path,
    key: &Path,
    handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
) -> Result<StubServer> {
    let config = tls_config(cert, key)?;
    let handler: Arc<dyn Fn(&Request) -> Response + Send + Sync> = Arc::new(handler);
    start_stub("https", move |tcp: TcpStream| {
        if let Ok(connection) = rustls::ServerConnection::new(config.clone()) {
            let _ = serve_connection(rustls::StreamOwned::new(connection, tcp), &*handler);
        }
    })
    .map_err(Error::io("starting a TLS stub server".to_string()))
}

/// Listens on an ephemeral loopback port and serves each connection with
/// `serve` on its own thread until the returned server is dropped.
fn start_stub(
    scheme: &str,
    serve: impl Fn(TcpStream) + Send + Sync + 'static,
) -> std::io::Result<StubServer> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let serve: Arc<dyn Fn(TcpStream) + Send + Sync> = Arc::new(serve);
    std::thread::spawn(move || accept_loop(&listener, &flag, serve));
    Ok(StubServer {
        url: format!("{scheme}://{addr}"),
        addr,
        stop,
    })
}

/// A TLS server configuration (HTTP/1.1) from a PEM certificate chain and key.
pub(crate) fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let tls = |what: String| move |e: rustls::Error| Error::Other(format!("{what}: {e}"));
    let pem = |path: &Path| {
        let path = path.display().to_string();
        move |e: rustls::pki_types::pem::Error| Error::Other(format!("reading {path}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(pem(cert))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pem(cert))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem(key))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls("TLS versions".into()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(tls(format!("the certificate {}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub() -> StubServer {
        serve_stub(|r| {
            Response::json(
                if r.path() == "/missing" { 404 } else { 200 },
                format!(
                    r#"{{"method":"{}","target":"{}","body":"{}"}}"#,
                    r.method,
                    r.target,
                    r.text()
                ),
            )
        })
        .expect("test step")
    }

    /// Sends `request` and reads one whole response.
    fn exchange(stream: &mut TcpStream, request: &str) -> String {
        stream.write_all(request.as_bytes()).expect("test step");
        let mut got = Vec::new();
        let mut buf = [0; 4096];
        loop {
            let n = stream.read(&mut buf).expect("test step");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
                head.lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.parse::<usize>().ok())
                    == Some(body.len())
            });
            if n == 0 || complete {
                return text;
            }
        }
    }

    #[test]
    fn keeps_connections_alive_and_reads_bodies() {
        let server = stub();
        let addr = server.url().trim_start_matches("http://").to_string();
        let mut stream = TcpStream::connect(&addr).expect("test step");
        let first = exchange(
            &mut stream,
            "POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
        assert!(
            first.ends_with(r#"{"method":"POST","target":"/a?x=1","body":"hello"}"#),
            "{first}"
        );
        // The same connection serves a second request.
        let second = exchange(&mut stream, "GET /missing HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(second.starts_with("HTTP/1.1 404 Not Found\r\n"), "{second}");
        assert!(second.contains("content-length: "), "{second}");
    }

    #[test]
    fn refuses_chunked_bodies_and_closes() {
        let server = stub();
        let addr = server.url().trim_start_matches("http://").to_string();
        let mut stream = TcpStream::connect(&addr).expect("test step");
        let answer = exchange(
            &mut stream,
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 411 "), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
    }
}
