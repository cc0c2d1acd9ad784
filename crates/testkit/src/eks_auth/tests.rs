use super::*;

/// A token built by Tidegate itself (`tidegate_cloud::sts_presigned_url`,
/// which signs with aws-sigv4, then `eks_token`) for cluster id
/// `eks-us-east-1` in us-east-1 with [`TEST_AWS_ACCESS_KEY_ID`] and
/// [`TEST_AWS_SECRET_ACCESS_KEY`] at [`GOLDEN_TIME`]. The testkit must not
/// depend on tidegate-cloud, so it was computed once and pasted here; the
/// end-to-end test (tests/it/cluster/eks.rs) checks the live path: tokens
/// that the `tidegate` binary makes at the current time.
pub(crate) const GOLDEN_TOKEN: &str = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtZWFzdC0xLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lBVElERUdBVEVFMkVURVNUMSUyRjIwMjYxMTI1JTJGdXMtZWFzdC0xJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNjExMjVUMTUwMjE3WiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TaWduYXR1cmU9Y2IwMThmZjg4YjQ1ZTZlNGM1ZjExMWUzZjViOGEzZmQ3MGJhMTA1NGE4ZDI2ZGEyNDI2NDU2NmFlZjNmNWVjNA";
/// Its X-Amz-Date, 2026-11-25T15:02:17Z, in seconds since the epoch.
pub(crate) const GOLDEN_TIME: u64 = 1_795_618_937;
/// The cluster id it was signed for.
pub(crate) const GOLDEN_CLUSTER: &str = "eks-us-east-1";

/// `GOLDEN_TIME` moved by `seconds`.
pub(crate) fn at(seconds: i64) -> SystemTime {
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(GOLDEN_TIME);
    if seconds >= 0 {
        base + Duration::from_secs(seconds.unsigned_abs())
    } else {
        base - Duration::from_secs(seconds.unsigned_abs())
    }
}

fn golden_url() -> String {
    let encoded = GOLDEN_TOKEN.strip_prefix(PREFIX).expect("test step");
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).expect("test step")).expect("test step")
}

/// The token of a URL, as Tidegate encodes it.
fn token(url: &str) -> String {
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(url))
}

/// The golden token with `from` replaced by `to` in its URL.
fn altered(from: &str, to: &str) -> String {
    let url = golden_url();
    assert!(url.contains(from), "{from} not in {url}");
    token(&url.replacen(from, to, 1))
}

fn rejected(verifier: &EksTokenVerifier, token: &str, now: SystemTime) -> String {
    match verifier.verify(token, now) {
        Ok(identity) => panic!("accepted: {identity:?}"),
        Err(reason) => reason,
    }
}

fn assert_rejected(token: &str, because: &str) {
    let reason = rejected(&EksTokenVerifier::new(GOLDEN_CLUSTER), token, at(0));
    assert!(reason.contains(because), "{reason}");
}

#[test]
fn the_golden_token_is_what_tidegate_sends() {
    let url = golden_url();
    assert!(
        url.starts_with(
            "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ),
        "{url}"
    );
    assert!(url.contains("&X-Amz-Date=20261125T150217Z&"), "{url}");
    assert!(url.contains("&X-Amz-Expires=60&"), "{url}");
    assert!(
        url.contains("&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&"),
        "{url}"
    );
    assert_eq!(parse_amz_date("20261125T150217Z"), Some(1_795_618_937));
}

#[test]
fn accepts_a_token_signed_with_the_test_key_for_its_cluster() {
    let verifier = EksTokenVerifier::new(GOLDEN_CLUSTER);
    // Right away, just before 15 minutes, and from a clock 14 minutes behind.
    for now in [at(0), at(15 * 60), at(-14 * 60)] {
        let identity = verifier.verify(GOLDEN_TOKEN, now).expect("accepted");
        assert_eq!(
            identity,
            AwsIdentity {
                arn: TEST_AWS_USER_ARN.into(),
                account: TEST_AWS_ACCOUNT_ID.into(),
                user_id: TEST_AWS_USER_ID.into(),
                access_key_id: TEST_AWS_ACCESS_KEY_ID.into(),
            }
        );
    }
}

#[test]
fn rejects_a_token_signed_with_another_secret_key() {
    let verifier = EksTokenVerifier::with_credentials(
        GOLDEN_CLUSTER,
        TEST_AWS_ACCESS_KEY_ID,
        "another-secret",
    );
    let reason = rejected(&verifier, GOLDEN_TOKEN, at(0));
    assert!(
        reason.starts_with("sts getCallerIdentity failed: SignatureDoesNotMatch"),
        "{reason}"
    );
}

#[test]
fn rejects_a_token_signed_for_another_cluster() {
    let reason = rejected(
        &EksTokenVerifier::new("aks-westeurope"),
        GOLDEN_TOKEN,
        at(0),
    );
    assert!(reason.contains("SignatureDoesNotMatch"), "{reason}");
    assert!(reason.contains("\"aks-westeurope\""), "{reason}");
}

#[test]
fn rejects_an_unknown_access_key_id_and_session_tokens() {
    let verifier = EksTokenVerifier::with_credentials(
        GOLDEN_CLUSTER,
        "AKIAOTHERKEY00000000",
        TEST_AWS_SECRET_ACCESS_KEY,
    );
    let reason = rejected(&verifier, GOLDEN_TOKEN, at(0));
    assert!(reason.contains("InvalidClientTokenId"), "{reason}");
    assert_rejected(
        &altered(
            "&X-Amz-Signature=",
            "&X-Amz-Security-Token=abc&X-Amz-Signature=",
        ),
        "no session token is valid",
    );
}

#[test]
fn rejects_expired_and_future_dates() {
    let verifier = EksTokenVerifier::new(GOLDEN_CLUSTER);
    let reason = rejected(&verifier, GOLDEN_TOKEN, at(15 * 60 + 1));
    assert!(
        reason.contains("X-Amz-Date parameter is expired (15 minute expiration)"),
        "{reason}"
    );
    let reason = rejected(&verifier, GOLDEN_TOKEN, at(-15 * 60 - 1));
    assert!(reason.contains("in the future"), "{reason}");
    assert_rejected(
        &altered(
            "X-Amz-Date=20261125T150217Z",
            "X-Amz-Date=2026-11-25T15:02:17Z",
        ),
        "error parsing X-Amz-Date",
    );
}

#[test]
fn rejects_query_parameters_that_are_not_allow_listed_or_repeated() {
    assert_rejected(
        &altered("&X-Amz-Signature=", "&X-Amz-Foo=1&X-Amz-Signature="),
        "non-whitelisted query parameter \"X-Amz-Foo\"",
    );
    assert_rejected(
        &altered(
            "&Version=2011-06-15",
            "&Version=2011-06-15&action=GetCallerIdentity",
        ),
        "multiple values",
    );
}

#[test]
fn rejects_tokens_that_do_not_sign_the_cluster_id_or_sign_other_headers() {
    assert_rejected(
        &altered(
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-SignedHeaders=host",
        ),
        "client did not sign the x-k8s-aws-id header",
    );
    assert_rejected(
        &altered(
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-SignedHeaders=x-k8s-aws-id",
        ),
        "did not sign the host header",
    );
    assert_rejected(
        &altered(
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-SignedHeaders=accept%3Bhost%3Bx-k8s-aws-id",
        ),
        "signed header \"accept\"",
    );
}

#[test]
fn rejects_a_long_x_amz_expires_and_other_actions_and_versions() {
    for expires in ["61", "900", "-1", "sixty"] {
        assert_rejected(
            &altered("X-Amz-Expires=60", &format!("X-Amz-Expires={expires}")),
            "invalid X-Amz-Expires",
        );
    }
    assert_rejected(
        &altered("Action=GetCallerIdentity", "Action=AssumeRole"),
        "unexpected action",
    );
    assert_rejected(
        &altered("Version=2011-06-15", "Version=2011-06-16"),
        "unexpected version",
    );
    assert_rejected(
        &altered(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Algorithm=AWS4-HMAC-SHA512",
        ),
        "unsupported X-Amz-Algorithm",
    );
}

#[test]
fn rejects_other_hosts_schemes_and_paths() {
    let host = "sts.us-east-1.amazonaws.com";
    for (url, because) in [
        (
            golden_url().replacen("https://", "http://", 1),
            "unexpected scheme \"http\"",
        ),
        (
            golden_url().replacen(host, "sts.us-east-1.amazonaws.com.evil.example", 1),
            "unexpected hostname",
        ),
        (
            golden_url().replacen(host, "sts.us-east-1.amazonaws.com:8443", 1),
            "unexpected hostname",
        ),
        (
            golden_url().replacen(host, "user@sts.us-east-1.amazonaws.com", 1),
            "unexpected hostname",
        ),
        (
            golden_url().replacen(".com/?", ".com/x?", 1),
            "unexpected path",
        ),
        (format!("{}#f", golden_url()), "fragment"),
    ] {
        assert_rejected(&token(&url), because);
    }
    // Another region in the host than in the credential scope.
    assert_rejected(
        &altered(host, "sts.eu-west-1.amazonaws.com"),
        "credential scope",
    );
}

#[test]
fn rejects_malformed_tokens_and_tampered_signatures() {
    assert_rejected(
        &GOLDEN_TOKEN.replacen("k8s-aws-v1.", "k8s-aws-v2.", 1),
        "prefix",
    );
    assert_rejected(&format!("{GOLDEN_TOKEN}="), "base64url");
    assert_rejected(&format!("{GOLDEN_TOKEN}{}", "A".repeat(4096)), "too large");
    let url = golden_url();
    let last = url.chars().last().expect("test step");
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &url[..url.len() - 1]);
    assert_rejected(&token(&tampered), "SignatureDoesNotMatch");
}

#[test]
fn sts_hosts_name_their_region() {
    assert_eq!(
        sts_region("sts.amazonaws.com").as_deref(),
        Some("us-east-1")
    );
    assert_eq!(
        sts_region("sts.eu-west-1.amazonaws.com").as_deref(),
        Some("eu-west-1")
    );
    assert_eq!(
        sts_region("sts.cn-north-1.amazonaws.com.cn").as_deref(),
        Some("cn-north-1")
    );
    for bad in [
        "sts.us-east-1.amazonaws.com.cn",
        "sts.evil.amazonaws.com",
        "sts..amazonaws.com",
        "iam.amazonaws.com",
        "sts.US-EAST-1.amazonaws.com",
    ] {
        assert_eq!(sts_region(bad), None, "{bad}");
    }
}
