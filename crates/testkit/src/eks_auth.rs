//! What EKS checks of a bearer token, offline: the checks of
//! aws-iam-authenticator's `Verify` and of the STS `GetCallerIdentity` call
//! it makes with the token's presigned URL.
//!
//! On EKS, the API server hands a `k8s-aws-v1.` token to
//! aws-iam-authenticator (a token-review webhook), which decodes the
//! presigned STS URL inside it, checks its shape, and sends it to STS with
//! the header `x-k8s-aws-id: <its cluster id>`; STS recomputes the SigV4
//! signature with the caller's secret key and answers with the caller's ARN.
//! [`EksTokenVerifier`] does both halves itself: there is no STS offline, so
//! it recomputes the signature with the one key pair it knows,
//! [`TEST_AWS_ACCESS_KEY_ID`] / [`TEST_AWS_SECRET_ACCESS_KEY`].

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// The access key id of the only AWS identity the local clusters' token
/// webhooks know. Fake: no AWS account has it, and real STS rejects it.
pub const TEST_AWS_ACCESS_KEY_ID: &str = "AKIATIDEGATEE2ETEST1";
/// Its secret access key (fake, public on purpose: it only signs tokens for
/// the local test clusters).
pub const TEST_AWS_SECRET_ACCESS_KEY: &str = "tidegate/e2e/FAKE+secret/not/an/AWS/key0";
/// The account of that identity.
pub const TEST_AWS_ACCOUNT_ID: &str = "000000000000";
/// The IAM user of that identity, and the Kubernetes user name a valid token
/// authenticates as (group `system:masters`).
pub const TEST_AWS_USER_ARN: &str = "arn:aws:iam::000000000000:user/tidegate-e2e";
/// The IAM unique id of that user.
pub const TEST_AWS_USER_ID: &str = "AIDATIDEGATEE2EUSER01";

/// The token prefix of aws-iam-authenticator's v1 tokens.
const PREFIX: &str = "k8s-aws-v1.";
/// aws-iam-authenticator refuses longer tokens.
const MAX_TOKEN_BYTES: usize = 4096;
/// The header naming the cluster, which the signature must cover.
const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// STS accepts a presigned GetCallerIdentity URL for 15 minutes after its
/// X-Amz-Date (whatever its X-Amz-Expires), and refuses one dated more than
/// 15 minutes ahead of its clock.
const VALIDITY: Duration = Duration::from_secs(15 * 60);
/// The largest X-Amz-Expires accepted. aws-iam-authenticator 0.3.0 and older
/// accepted 0..=60, newer ones accept 0..=900 and STS ignores the value;
/// `aws eks get-token` and Tidegate send 60, so anything larger is a client
/// that differs from them and is refused here.
const MAX_EXPIRES: u64 = 60;
/// The query parameters aws-iam-authenticator allows (compared in lower case).
const ALLOWED_PARAMETERS: [&str; 9] = [
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
];

/// Who a valid token belongs to, as STS would answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsIdentity {
    /// The caller's ARN ([`TEST_AWS_USER_ARN`]).
    pub arn: String,
    /// Its account ([`TEST_AWS_ACCOUNT_ID`]).
    pub account: String,
    /// Its unique id ([`TEST_AWS_USER_ID`]).
    pub user_id: String,
    /// The access key id the token was signed with.
    pub access_key_id: String,
}

/// Verifies EKS bearer tokens for one cluster id, like aws-iam-authenticator
/// plus STS (see the module docs).
#[derive(Clone)]
pub struct EksTokenVerifier {
    cluster_id: String,
    access_key_id: String,
    secret_access_key: String,
}

impl std::fmt::Debug for EksTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksTokenVerifier")
            .field("cluster_id", &self.cluster_id)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

fn format_error(message: impl std::fmt::Display) -> String {
    format!("input token was not properly formatted: {message}")
}

fn sts_error(message: impl std::fmt::Display) -> String {
    format!("sts getCallerIdentity failed: {message}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac
}

/// Percent-decodes a query component as Go's `url.ParseQuery` does (`+` is a space).
fn query_unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let digits = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(digits, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// SigV4's URI encoding: every byte but the unreserved characters as `%XX`.
fn sigv4_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The region of an STS host: `sts.<region>.amazonaws.com` (or `.com.cn` in
/// China regions), or the global `sts.amazonaws.com` (us-east-1).
fn sts_region(host: &str) -> Option<String> {
    if host == "sts.amazonaws.com" {
        return Some("us-east-1".into());
    }
    let rest = host.strip_prefix("sts.")?;
    let region = match rest.strip_suffix(".amazonaws.com.cn") {
        Some(region) if region.starts_with("cn-") => region,
        Some(_) => return None,
        None => rest.strip_suffix(".amazonaws.com")?,
    };
    let valid = region.split('-').count() >= 3
        && region.ends_with(|c: char| c.is_ascii_digit())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| region.to_string())
}

/// Seconds since the epoch of an `X-Amz-Date` (`20260102T030405Z`).
fn parse_amz_date(text: &str) -> Option<i64> {
    if text.len() != 16 {
        return None;
    }
    let date = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", text).ok()?;
    let zoned = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?;
    Some(zoned.timestamp().as_second())
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The parts of a decoded token URL.
struct PresignedUrl {
    host: String,
    /// Query parameters as sent (decoded), in order.
    params: Vec<(String, String)>,
}

impl PresignedUrl {
    /// Scheme, host, path and query, checked like aws-iam-authenticator does.
    fn parse(url: &str) -> Result<PresignedUrl, String> {
        let Some(rest) = url.strip_prefix("https://") else {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            return Err(format_error(format!(
                "unexpected scheme {scheme:?} in pre-signed URL"
            )));
        };
        if rest.contains('#') {
            return Err(format_error("unexpected fragment in pre-signed URL"));
        }
        let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (host, rest) = rest.split_at(host_end);
        if sts_region(host).is_none() {
            return Err(format_error(format!(
                "unexpected hostname {host:?} in pre-signed URL"
            )));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path != "/" {
            return Err(format_error("unexpected path in pre-signed URL"));
        }
        let mut params: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(key), Some(value)) = (query_unescape(key), query_unescape(value)) else {
                return Err(format_error("malformed query parameter"));
            };
            if !ALLOWED_PARAMETERS.contains(&key.to_ascii_lowercase().as_str()) {
                return Err(format_error(format!(
                    "non-whitelisted query parameter {key:?}"
                )));
            }
            if params.iter().any(|(k, _)| k.eq_ignore_ascii_case(&key)) {
                return Err(format_error(
                    "query parameter with multiple values not supported",
                ));
            }
            params.push((key, value));
        }
        Ok(PresignedUrl {
            host: host.to_string(),
            params,
        })
    }

    /// A parameter by name, in any case.
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A parameter that must be there.
    fn require(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format_error(format!("{name} parameter missing from pre-signed URL")))
    }
}

impl EksTokenVerifier {
    /// A verifier for `cluster_id` that knows the test identity
    /// ([`TEST_AWS_ACCESS_KEY_ID`], [`TEST_AWS_SECRET_ACCESS_KEY`]).
    pub fn new(cluster_id: impl Into<String>) -> EksTokenVerifier {
        EksTokenVerifier::with_credentials(
            cluster_id,
            TEST_AWS_ACCESS_KEY_ID,
            TEST_AWS_SECRET_ACCESS_KEY,
        )
    }

    /// A verifier for `cluster_id` that knows one other key pair.
    pub fn with_credentials(
        cluster_id: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> EksTokenVerifier {
        EksTokenVerifier {
            cluster_id: cluster_id.into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        }
    }

    /// The cluster id (`x-k8s-aws-id`) tokens must be signed for.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Checks `token` at time `now`: on success, who it belongs to; otherwise
    /// why it is refused (worded like aws-iam-authenticator's errors: "input
    /// token was not properly formatted: ..." or "sts getCallerIdentity
    /// failed: ...").
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<AwsIdentity, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(format_error("token is too large"));
        }
        let Some(encoded) = token.strip_prefix(PREFIX) else {
            return Err(format_error(format!(
                "token is missing expected {PREFIX:?} prefix"
            )));
        };
        let decoded = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|e| format_error(format!("not unpadded base64url: {e}")))?;
        let url = String::from_utf8(decoded).map_err(|_| format_error("not a UTF-8 URL"))?;
        let url = PresignedUrl::parse(&url)?;
        let region = sts_region(&url.host).unwrap_or_default();

        if url.get("Action") != Some("GetCallerIdentity") {
            return Err(format_error(
                "unexpected action parameter in pre-signed URL",
            ));
        }
        if url.get("Version") != Some("2011-06-15") {
            return Err(format_error(
                "unexpected version parameter in pre-signed URL (want 2011-06-15)",
            ));
        }
        let algorithm = url.require("X-Amz-Algorithm")?;
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err(format_error(format!(
                "unsupported X-Amz-Algorithm {algorithm:?}"
            )));
        }
        let mut signed: Vec<String> = url
            .require("X-Amz-SignedHeaders")?
            .split(';')
            .map(str::to_ascii_lowercase)
            .collect();
        signed.sort();
        if !signed.iter().any(|h| h == CLUSTER_ID_HEADER) {
            return Err(format_error(format!(
                "client did not sign the {CLUSTER_ID_HEADER} header in the pre-signed URL"
            )));
        }
        if !signed.iter().any(|h| h == "host") {
            return Err(format_error(
                "client did not sign the host header in the pre-signed URL",
            ));
        }
        if let Some(other) = signed
            .iter()
            .find(|h| *h != "host" && *h != CLUSTER_ID_HEADER)
        {
            return Err(format_error(format!(
                "signed header {other:?} is not one aws-iam-authenticator sends to STS"
            )));
        }
        let expires = url.require("X-Amz-Expires")?;
        match expires.parse::<u64>() {
            Ok(seconds) if seconds <= MAX_EXPIRES => {}
            _ => {
                return Err(format_error(format!(
                    "invalid X-Amz-Expires parameter in pre-signed URL: {expires} (at most {MAX_EXPIRES})"
                )));
            }
        }
        let amz_date = url.require("X-Amz-Date")?;
        let Some(signed_at) = parse_amz_date(amz_date) else {
            return Err(format_error(format!(
                "error parsing X-Amz-Date parameter {amz_date:?} (format 20060102T150405Z)"
            )));
        };
        let age = unix_seconds(now) - signed_at;
        let validity = i64::try_from(VALIDITY.as_secs()).unwrap_or(i64::MAX);
        if age > validity {
            return Err(format_error(format!(
                "X-Amz-Date parameter is expired (15 minute expiration) {amz_date}: signed {age} s ago"
            )));
        }
        if -age > validity {
            return Err(sts_error(format!(
                "SignatureNotYetCurrent: X-Amz-Date {amz_date} is {} s in the future",
                -age
            )));
        }

        // What STS checks: the key, the credential scope, the signature.
        let credential = url.require("X-Amz-Credential")?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, day, scope_region, service, terminator] = scope[..] else {
            return Err(sts_error(format!(
                "IncompleteSignature: malformed X-Amz-Credential {credential:?}"
            )));
        };
        if access_key_id != self.access_key_id {
            return Err(sts_error(format!(
                "InvalidClientTokenId: the access key id {access_key_id} is not the test identity's ({})",
                self.access_key_id
            )));
        }
        if url.get("X-Amz-Security-Token").is_some() {
            return Err(sts_error(
                "InvalidClientTokenId: the test identity has long-term keys only, no session token is valid",
            ));
        }
        if day != &amz_date[..8]
            || scope_region != region
            || service != "sts"
            || terminator != "aws4_request"
        {
            return Err(sts_error(format!(
                "SignatureDoesNotMatch: credential scope {day}/{scope_region}/{service}/{terminator} \
                 does not match the date {amz_date} and the host {} (want {}/{region}/sts/aws4_request)",
                url.host,
                &amz_date[..8]
            )));
        }
        let signature = url.require("X-Amz-Signature")?;
        let Some(signature) = unhex(signature).filter(|s| s.len() == 32) else {
            return Err(sts_error(
                "IncompleteSignature: X-Amz-Signature is not 64 hex digits",
            ));
        };

        let mut query: Vec<(String, String)> = url
            .params
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("X-Amz-Signature"))
            .map(|(k, v)| (sigv4_escape(k), sigv4_escape(v)))
            .collect();
        query.sort();
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let headers: String = signed
            .iter()
            .map(|h| {
                let value = if h == "host" {
                    url.host.as_str()
                } else {
                    self.cluster_id.as_str()
                };
                format!("{h}:{value}\n")
            })
            .collect();
        let canonical_request = format!(
            "GET\n/\n{}\n{headers}\n{}\n{}",
            query.join("&"),
            signed.join(";"),
            hex(&Sha256::digest(b""))
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{day}/{region}/sts/aws4_request\n{}",
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let mut key = format!("AWS4{}", self.secret_access_key).into_bytes();
        for part in [day, region.as_str(), "sts", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes())
                .finalize()
                .into_bytes()
                .to_vec();
        }
        // Constant-time comparison.
        hmac_sha256(&key, string_to_sign.as_bytes())
            .verify_slice(&signature)
            .map_err(|_| {
                sts_error(format!(
                    "SignatureDoesNotMatch: the request signature we calculated does not match \
                     the signature you provided (signed with another secret key, or for another \
                     cluster id than {:?}?)",
                    self.cluster_id
                ))
            })?;
        Ok(AwsIdentity {
            arn: TEST_AWS_USER_ARN.into(),
            account: TEST_AWS_ACCOUNT_ID.into(),
            user_id: TEST_AWS_USER_ID.into(),
            access_key_id: access_key_id.to_string(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
