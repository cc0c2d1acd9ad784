use super::*;
use crate::stub::{Answer, serve};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

// 2026-01-02T03:04:05Z
const TIME: u64 = 1_767_323_045;

pub(crate) fn credentials() -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("session/token+with=odd chars".into()),
        None,
        "test",
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// RFC 3986 encoding as SigV4 wants it: only unreserved characters stay.
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An independent SigV4 query-string signature of the decoded URL.
fn expected_signature(
    host: &str,
    params: &[(String, String)],
    cluster: &str,
    secret: &str,
    region: &str,
) -> String {
    let mut canonical: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    canonical.sort();
    let query: Vec<String> = canonical.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let creq = format!(
        "GET\n/\n{}\nhost:{host}\nx-k8s-aws-id:{cluster}\n\nhost;x-k8s-aws-id\n{}",
        query.join("&"),
        hex(&Sha256::digest(b""))
    );
    let amz_date = "20260102T030405Z";
    let scope = format!("20260102/{region}/sts/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(creq.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), "20260102");
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, "sts");
    let k_signing = hmac(&k_service, "aws4_request");
    hex(&hmac(&k_signing, &string_to_sign))
}

#[test]
fn token_golden_matches_an_independent_sigv4_computation() {
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(TIME);
    let url = sts_presigned_url(&credentials(), "us-west-2", "prod-eks", time).unwrap();
    let token = eks_token(&url);

    assert!(token.starts_with("k8s-aws-v1."), "{token}");
    let encoded = &token["k8s-aws-v1.".len()..];
    assert!(!encoded.contains('='), "padding in {token}");
    assert!(
        !encoded.contains('+') && !encoded.contains('/'),
        "not base64url: {token}"
    );
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap();
    assert_eq!(decoded, url);

    let rest = decoded.strip_prefix("https://").unwrap();
    let (host, path_query) = rest.split_once('/').unwrap();
    assert_eq!(host, "sts.us-west-2.amazonaws.com");
    let (path, query) = path_query.split_once('?').unwrap();
    assert_eq!(path, "");
    let params: Vec<(String, String)> = query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} missing from {decoded}"))
    };
    const ALLOWED: [&str; 9] = [
        "Action",
        "Version",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ];
    for (k, _) in &params {
        assert!(
            ALLOWED.contains(&k.as_str()),
            "query parameter {k} not allow-listed"
        );
    }
    assert_eq!(get("Action"), "GetCallerIdentity");
    assert_eq!(get("Version"), "2011-06-15");
    assert_eq!(get("X-Amz-Expires"), "60");
    assert_eq!(get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
    assert_eq!(get("X-Amz-Date"), "20260102T030405Z");
    assert_eq!(
        get("X-Amz-Credential"),
        "AKIDEXAMPLE/20260102/us-west-2/sts/aws4_request"
    );
    assert_eq!(get("X-Amz-Security-Token"), "session/token+with=odd chars");
    let signed: Vec<&str> = get("X-Amz-SignedHeaders").split(';').collect();
    assert_eq!(signed, ["host", "x-k8s-aws-id"]);
    assert_eq!(
        get("X-Amz-Signature"),
        expected_signature(
            host,
            &params,
            "prod-eks",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "us-west-2"
        )
    );
}

#[test]
fn china_regions_use_the_cn_sts_host() {
    let url = sts_presigned_url(&credentials(), "cn-north-1", "c", SystemTime::now()).unwrap();
    assert!(
        url.starts_with("https://sts.cn-north-1.amazonaws.com.cn/?"),
        "{url}"
    );
}

#[tokio::test]
async fn token_lifetime_is_14_minutes_or_the_credentials_expiry() {
    let long = EksTokenSource {
        credentials: SharedCredentialsProvider::new(credentials()),
        region: "us-east-1".into(),
        cluster: "c".into(),
    };
    let token = long.token().await.unwrap();
    let left = token
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        left > Duration::from_secs(13 * 60) && left <= TOKEN_LIFETIME,
        "{left:?}"
    );

    let soon = SystemTime::now() + Duration::from_secs(120);
    let short = EksTokenSource {
        credentials: SharedCredentialsProvider::new(Credentials::new(
            "A",
            "B",
            None,
            Some(soon),
            "t",
        )),
        region: "us-east-1".into(),
        cluster: "c".into(),
    };
    assert_eq!(short.token().await.unwrap().expires_at(), soon);
}

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";

fn describe(name: &str, status: &str, team: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    serde_json::json!({"cluster": {
        "name": name,
        "arn": format!("arn:aws:eks:us-east-1:123456789012:cluster/{name}"),
        "createdAt": 1.7e9,
        "version": "1.31",
        "endpoint": format!("https://{name}.gr7.us-east-1.eks.amazonaws.com"),
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "certificateAuthority": {"data": STANDARD.encode(CA_PEM)},
        "status": status,
        "platformVersion": "eks.5",
        "tags": {"team": team, "tidegate.dev/wave": "1"},
    }})
    .to_string()
}

pub(crate) fn eks_stub(seen: &crate::stub::Seen) -> Answer {
    let ok = |body: String| (200, Vec::new(), body);
    let path = seen.target.split('?').next().unwrap_or_default();
    match path {
        "/clusters" if seen.target.contains("nextToken=page2") => {
            ok(r#"{"clusters":["c-gamma","c-creating"]}"#.into())
        }
        "/clusters" => ok(r#"{"clusters":["c-beta","c-alpha"],"nextToken":"page2"}"#.into()),
        "/clusters/c-alpha" => ok(describe("c-alpha", "ACTIVE", "payments")),
        "/clusters/c-beta" => ok(describe("c-beta", "ACTIVE", "search")),
        "/clusters/c-gamma" => ok(describe("c-gamma", "ACTIVE", "payments")),
        "/clusters/c-creating" => ok(describe("c-creating", "CREATING", "payments")),
        "/clusters/forbidden" => (
            403,
            vec![("x-amzn-errortype".into(), "AccessDeniedException".into())],
            r#"{"message":"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: eks:DescribeCluster"}"#.into(),
        ),
        "/clusters/busy" => (
            429,
            vec![("x-amzn-errortype".into(), "ThrottlingException".into())],
            r#"{"message":"Rate exceeded"}"#.into(),
        ),
        _ => (
            404,
            vec![("x-amzn-errortype".into(), "ResourceNotFoundException".into())],
            r#"{"message":"No cluster found for name: missing."}"#.into(),
        ),
    }
}

#[tokio::test]
async fn discovery_pages_skips_inactive_filters_by_tags_and_sorts() {
    let (url, log) = serve(eks_stub).await;
    let eks = EksDiscovery::with_credentials("us-east-1", credentials(), &url);
    let all = eks.list(&BTreeMap::new()).await.unwrap();
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["c-alpha", "c-beta", "c-gamma"]);
    let alpha = &all[0];
    assert_eq!(
        alpha.endpoint.server,
        "https://c-alpha.gr7.us-east-1.eks.amazonaws.com"
    );
    assert_eq!(alpha.endpoint.ca, vec![vec![0, 1, 2]]);
    assert_eq!(alpha.version, "1.31");
    assert_eq!(alpha.status, "ACTIVE");
    assert_eq!(alpha.tags["team"], "payments");

    let payments = eks
        .list(&BTreeMap::from([(
            "team".to_string(),
            "payments".to_string(),
        )]))
        .await
        .unwrap();
    let names: Vec<&str> = payments.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["c-alpha", "c-gamma"]);

    // Requests are SigV4-signed by the SDK, and the second page was asked for.
    let log = log.lock().unwrap();
    assert!(log.iter().any(|s| s.target.contains("nextToken=page2")));
    assert!(log.iter().all(|s| {
        s.header("authorization")
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))
    }));
}

#[tokio::test]
async fn error_answers_say_which_cluster_which_call_and_what_to_fix() {
    let (url, _log) = serve(eks_stub).await;
    let eks = EksDiscovery::with_credentials("us-east-1", credentials(), &url);

    let missing = eks.describe("missing").await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
    let text = missing.to_string();
    assert!(
        text.starts_with("missing: eks:DescribeCluster failed: HTTP 404 ResourceNotFoundException"),
        "{text}"
    );
    assert!(
        text.contains("No cluster found for name: missing."),
        "{text}"
    );
    assert!(text.contains("check the name, region"), "{text}");

    let forbidden = eks.describe("forbidden").await.unwrap_err().to_string();
    assert!(
        forbidden.contains("HTTP 403 AccessDeniedException"),
        "{forbidden}"
    );
    assert!(
        forbidden.contains("grant eks:ListClusters and eks:DescribeCluster"),
        "{forbidden}"
    );

    let busy = eks.describe("busy").await.unwrap_err().to_string();
    assert!(busy.contains("ThrottlingException"), "{busy}");
    assert!(busy.contains("throttled"), "{busy}");
}
