//! A minimal Prometheus HTTP API client: one instant query, one number.

use std::time::Duration;
use tidegate_core::printable::printable;
use tidegate_rollout::analysis::Measurement;

/// Largest answer read from Prometheus, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// How long one query may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest error text kept from Prometheus's JSON `error` field.
const MAX_ERROR_CHARS: usize = 200;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the Prometheus HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

/// Queries Prometheus servers without credentials.
#[derive(Debug, Clone)]
pub struct Prometheus {
    http: reqwest::Client,
}

impl Prometheus {
    /// A client with a timeout, no redirects and no default headers.
    pub fn new() -> Result<Prometheus, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tidegate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Prometheus { http })
    }

    /// The value of `query` now at the Prometheus at `base_url` (its API
    /// is under `/api/v1/`). Never fails: a missing or unusable value is
    /// [`Measurement::Inconclusive`] with the reason.
    pub async fn query(&self, base_url: &str, query: &str) -> Measurement {
        let url = format!("{}/api/v1/query", base_url.trim_end_matches('/'));
        let inconclusive = |why: String| Measurement::Inconclusive(why);
        let url = match reqwest::Url::parse_with_params(&url, [("query", query)]) {
            Ok(u) => u,
            Err(e) => return inconclusive(format!("Prometheus URL {base_url}: {e}")),
        };
        let response = match self.http.get(url).send().await {
            Ok(r) => r,
            Err(e) => {
                return inconclusive(format!("Prometheus {base_url} unreachable: {}", cause(&e)));
            }
        };
        let status = response.status();
        let body = match read_limited(response).await {
            Ok(b) => b,
            Err(why) => return inconclusive(format!("Prometheus {base_url}: {why}")),
        };
        match parse_answer(&body) {
            Ok(m) => m,
            Err(why) if status.is_success() => {
                inconclusive(format!("Prometheus {base_url}: {why}"))
            }
            Err(why) => inconclusive(format!("Prometheus {base_url} answered {status}: {why}")),
        }
    }
}

/// The innermost cause of a request error (e.g. "Connection refused").
fn cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(s) = source.source() {
        source = s;
    }
    if e.is_timeout() {
        return format!("no answer within {}s", TIMEOUT.as_secs());
    }
    source.to_string()
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {}", cause(&e)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("answer larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads an instant-query answer: a scalar or a vector of exactly one
/// sample gives its value; anything else is inconclusive (`Ok`), and an
/// answer that is not Prometheus's JSON is `Err`.
pub fn parse_answer(body: &[u8]) -> Result<Measurement, String> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| "the answer is not Prometheus JSON".to_string())?;
    let inconclusive = |why: String| Ok(Measurement::Inconclusive(why));
    match json["status"].as_str() {
        Some("success") => {}
        Some("error") => {
            let kind = json["errorType"].as_str().unwrap_or("error");
            let message: String = json["error"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(MAX_ERROR_CHARS)
                .collect();
            return inconclusive(format!(
                "the query was refused ({}): {}",
                printable(kind),
                printable(&message)
            ));
        }
        _ => return Err("the answer is not Prometheus JSON".into()),
    }
    let data = &json["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => {
            let series = data["result"].as_array().map_or(0, Vec::len);
            match series {
                0 => return inconclusive("no data: the query returned no series".into()),
                1 => &data["result"][0]["value"],
                n => {
                    return inconclusive(format!(
                        "the query returned {n} series, not one number: aggregate it, e.g. sum(...)"
                    ));
                }
            }
        }
        Some(other) => {
            return inconclusive(format!(
                "the query returned a {}, not one number",
                printable(other)
            ));
        }
        None => return Err("the answer has no resultType".into()),
    };
    let Some(text) = sample[1].as_str() else {
        return Err("the answer has no sample value".into());
    };
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Measurement::Value(v)),
        Ok(v) if v.is_nan() => {
            inconclusive("the value is NaN (e.g. 0/0: no traffic in the window)".into())
        }
        Ok(_) => inconclusive("the value is infinite (a division by zero?)".into()),
        Err(_) => Err("the sample value is not a number".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_testkit::http::{Response, serve_stub};

    fn parsed(body: &str) -> Result<Measurement, String> {
        parse_answer(body.as_bytes())
    }

    fn why(m: Result<Measurement, String>) -> String {
        match m {
            Ok(Measurement::Inconclusive(w)) | Err(w) => w,
            Ok(Measurement::Value(v)) => panic!("a value: {v}"),
        }
    }

    #[test]
    fn one_number_from_a_scalar_or_a_single_series() {
        assert_eq!(
            parsed(
                r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"0.25"]}}"#
            ),
            Ok(Measurement::Value(0.25))
        );
        assert_eq!(
            parsed(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"cluster":"a"},"value":[1700000000,"1e-3"]}]}}"#
            ),
            Ok(Measurement::Value(0.001))
        );
    }

    #[test]
    fn no_data_several_series_nan_and_errors_are_inconclusive() {
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(why(parsed(empty)).contains("no data"));
        let two = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]},{"metric":{},"value":[1,"2"]}]}}"#;
        assert!(why(parsed(two)).contains("2 series"));
        let nan = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#;
        assert!(why(parsed(nan)).contains("NaN"));
        let inf = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#;
        assert!(why(parsed(inf)).contains("infinite"));
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(why(parsed(matrix)).contains("a matrix"));
        let refused = "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse error \\u001b[31m\"}";
        let w = why(parsed(refused));
        assert!(
            w.contains("refused (bad_data): parse error") && !w.contains('\u{1b}'),
            "{w}"
        );
        assert!(parsed("<html>").is_err());
    }

    #[tokio::test]
    async fn queries_without_credentials_and_reports_an_unreachable_server() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let server = serve_stub(move |r| {
            if let Ok(mut l) = log.lock() {
                l.push(r.clone());
            }
            Response::json(
                200,
                r#"{"status":"success","data":{"resultType":"scalar","result":[1,"0.5"]}}"#,
            )
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let client = Prometheus::new().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("{}/", server.url());
        assert_eq!(
            client.query(&url, "sum(x{cluster=\"a b\"})").await,
            Measurement::Value(0.5)
        );
        let requests = seen.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].path(), "/api/v1/query");
        assert!(
            requests[0]
                .target
                .contains("query=sum%28x%7Bcluster%3D%22a+b%22%7D%29"),
            "{}",
            requests[0].target
        );
        assert!(requests[0].header("authorization").is_none());
        assert!(requests[0].header("cookie").is_none());

        // Nothing listens on a port just freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let m = client
            .query(&format!("http://127.0.0.1:{port}"), "up")
            .await;
        let Measurement::Inconclusive(why) = m else {
            panic!("{m:?}");
        };
        assert!(why.contains("unreachable"), "{why}");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let server = serve_stub(|_| Response {
            status: 302,
            content_type: "text/plain".into(),
            body: b"elsewhere".to_vec(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let client = Prometheus::new().unwrap_or_else(|e| panic!("{e}"));
        let m = client.query(server.url(), "up").await;
        let Measurement::Inconclusive(why) = m else {
            panic!("{m:?}");
        };
        assert!(why.contains("answered 302"), "{why}");
        assert!(!why.contains("elsewhere"));
    }
}
