//! Checking who sent a webhook: HMAC-SHA256 signatures over the raw body
//! (GitHub, Bitbucket) and shared tokens (GitLab, the generic endpoint),
//! all compared in constant time.

use crate::Secret;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// True when `header` is `sha256=<hex>` of the HMAC-SHA256 of `body` keyed
/// with `secret` (GitHub's `X-Hub-Signature-256`, Bitbucket's
/// `X-Hub-Signature`). The comparison takes the same time wherever the
/// first differing byte is.
pub fn hmac_sha256_valid(secret: &Secret, header: Option<&str>, body: &[u8]) -> bool {
    let Some(signature) = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(decode_hex)
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&signature).is_ok()
}

/// True when `given` equals the shared `token` (GitLab's `X-Gitlab-Token`,
/// a bearer token). Both are hashed first, so neither the comparison's time
/// nor its length reveals anything about the token.
pub fn token_valid(token: &Secret, given: Option<&str>) -> bool {
    let Some(given) = given else {
        return false;
    };
    let expected = Sha256::digest(token.expose().as_bytes());
    let given = Sha256::digest(given.as_bytes());
    expected.ct_eq(&given).into()
}

/// `Bearer <token>` from an `Authorization` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of GitHub's documentation ("Validating webhook deliveries").
    #[test]
    fn githubs_documented_example_verifies() {
        let secret = Secret::new("It's a Secret to Everybody");
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(hmac_sha256_valid(&secret, Some(header), b"Hello, World!"));
        assert!(!hmac_sha256_valid(&secret, Some(header), b"Hello, World?"));
        assert!(!hmac_sha256_valid(
            &Secret::new("another secret"),
            Some(header),
            b"Hello, World!"
        ));
    }

    #[test]
    fn malformed_or_missing_signatures_are_refused() {
        let secret = Secret::new("s");
        for header in [
            None,
            Some(""),
            Some("sha256="),
            Some("sha1=757107ea"),
            Some("sha256=zz"),
            Some("sha256=757"),
            Some("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
        ] {
            assert!(!hmac_sha256_valid(&secret, header, b"x"), "{header:?}");
        }
    }

    #[test]
    fn tokens_must_match_exactly() {
        let token = Secret::new("t0ken");
        assert!(token_valid(&token, Some("t0ken")));
        assert!(!token_valid(&token, Some("t0ken ")));
        assert!(!token_valid(&token, Some("t0ke")));
        assert!(!token_valid(&token, Some("")));
        assert!(!token_valid(&token, None));
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
    }
}
