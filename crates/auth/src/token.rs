//! The token format, generation and hashing.
//!
//! A token is `tgt_<id>_<secret>`: `id` is 16 lowercase hex characters (64
//! random bits, not secret: it names the stored record, so authentication
//! is one map lookup, never a scan), `secret` 64 lowercase hex characters
//! (256 bits from the operating system's random source).
//!
//! Only `SHA-256("tidegate-token-v1\0" || id || "\0" || secret)` is stored.
//! A password hashing function (bcrypt, scrypt, Argon2) would buy nothing:
//! those slow down guessing of *low-entropy* secrets chosen by people,
//! while guessing a 256-bit random secret from its digest is 2^255 SHA-256
//! evaluations on average, at any speed. A fast digest also keeps the check
//! per API request cheap. The id inside the digest binds it to its record,
//! so digests cannot be swapped between records. Digests are compared in
//! constant time ([`subtle`]).

use crate::error::{AuthFailure, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// The prefix every token starts with (recognizable by secret scanners).
pub const PREFIX: &str = "tgt_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const DOMAIN: &[u8] = b"tidegate-token-v1\0";

/// The non-secret id of a token (16 lowercase hex characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId(String);

impl TokenId {
    /// Reads an id, also given as `tgt_<id>` or a whole token (only the id
    /// part is kept).
    pub fn parse(text: &str) -> Result<Self, AuthFailure> {
        let text = text.trim();
        let bare = text.strip_prefix(PREFIX).unwrap_or(text);
        let id = bare.split('_').next().unwrap_or_default();
        if is_hex(id, ID_BYTES * 2) {
            Ok(TokenId(id.to_string()))
        } else {
            Err(AuthFailure::Malformed)
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TokenId {
    type Error = AuthFailure;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if is_hex(&value, ID_BYTES * 2) {
            Ok(TokenId(value))
        } else {
            Err(AuthFailure::Malformed)
        }
    }
}

impl From<TokenId> for String {
    fn from(id: TokenId) -> String {
        id.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole token, secret included. Shown once when created; its `Debug`
/// and `Display` show only the id.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenValue {
    id: TokenId,
    value: String,
}

impl TokenValue {
    /// The token's id.
    pub fn id(&self) -> &TokenId {
        &self.id
    }

    /// The token itself, to hand to its user once (never log it).
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for TokenValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenValue({PREFIX}{}_<redacted>)", self.id)
    }
}

impl fmt::Display for TokenValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}_<redacted>", self.id)
    }
}

/// The stored SHA-256 digest of a token (64 lowercase hex characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(String);

impl TokenHash {
    /// The digest of `secret` for token `id`.
    fn of(id: &TokenId, secret: &str) -> Self {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(id.as_str().as_bytes());
        h.update(b"\0");
        h.update(secret.as_bytes());
        TokenHash(tidegate_audit::canonical::hex(&h.finalize()))
    }

    /// True when `secret` is this digest's secret for `id`, compared in
    /// constant time.
    pub fn matches(&self, id: &TokenId, secret: &str) -> bool {
        let presented = TokenHash::of(id, secret);
        bool::from(presented.0.as_bytes().ct_eq(self.0.as_bytes()))
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new token: its value (show once) and the digest to store.
pub fn generate() -> Result<(TokenValue, TokenHash), StoreError> {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut id).map_err(|e| StoreError::Random(e.to_string()))?;
    getrandom::fill(&mut secret).map_err(|e| StoreError::Random(e.to_string()))?;
    let id = TokenId(tidegate_audit::canonical::hex(&id));
    let secret = tidegate_audit::canonical::hex(&secret);
    let hash = TokenHash::of(&id, &secret);
    let value = format!("{PREFIX}{id}_{secret}");
    Ok((TokenValue { id, value }, hash))
}

/// Splits a presented token into its id and secret; anything that is not
/// exactly `tgt_<16 hex>_<64 hex>` is [`AuthFailure::Malformed`] (the
/// presented text is never echoed).
pub fn parse(presented: &str) -> Result<(TokenId, &str), AuthFailure> {
    let rest = presented
        .strip_prefix(PREFIX)
        .ok_or(AuthFailure::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(AuthFailure::Malformed)?;
    if !is_hex(id, ID_BYTES * 2) || !is_hex(secret, SECRET_BYTES * 2) {
        return Err(AuthFailure::Malformed);
    }
    Ok((TokenId(id.to_string()), secret))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_has_the_format_and_256_bits_of_secret() {
        let (token, hash) = generate().expect("token");
        let value = token.expose();
        assert_eq!(value.len(), 4 + 16 + 1 + 64);
        let (id, secret) = parse(value).expect("parses");
        assert_eq!(&id, token.id());
        assert_eq!(secret.len(), 64);
        assert!(hash.matches(&id, secret));
        assert_eq!(hash.as_str().len(), 64);
        // Two tokens never share an id or a secret.
        let (other, _) = generate().expect("token");
        assert_ne!(other.id(), token.id());
        assert_ne!(parse(other.expose()).expect("parses").1, secret);
    }

    #[test]
    fn the_digest_is_sha256_of_the_domain_id_and_secret_not_the_secret() {
        let (token, hash) = generate().expect("token");
        let (id, secret) = parse(token.expose()).expect("parses");
        assert!(!hash.as_str().contains(secret));
        let mut h = Sha256::new();
        h.update(format!("tidegate-token-v1\0{id}\0{secret}").as_bytes());
        assert_eq!(hash.as_str(), tidegate_audit::canonical::hex(&h.finalize()));
    }

    #[test]
    fn a_wrong_secret_or_another_id_does_not_match() {
        let (token, hash) = generate().expect("token");
        let (id, secret) = parse(token.expose()).expect("parses");
        let mut wrong = secret.to_string();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(63.., last);
        assert!(!hash.matches(&id, &wrong));
        let (other, _) = generate().expect("token");
        assert!(!hash.matches(other.id(), secret));
    }

    #[test]
    fn malformed_tokens_are_refused_without_echo() {
        let (token, _) = generate().expect("token");
        let good = token.expose();
        let cases = [
            String::new(),
            good.replacen("tgt_", "tgx_", 1),
            good[..good.len() - 1].to_string(),
            format!("{good}0"),
            good.to_uppercase(),
            format!(" {good}"),
            good.replace('_', "-"),
        ];
        for case in cases {
            let err = parse(&case).expect_err(&case);
            assert_eq!(err, AuthFailure::Malformed);
            assert!(!err.to_string().contains(&good[4..20]), "{err}");
        }
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let (token, hash) = generate().expect("token");
        let secret = parse(token.expose()).expect("parses").1.to_string();
        for shown in [
            format!("{token:?}"),
            format!("{token}"),
            format!("{hash:?}"),
        ] {
            assert!(!shown.contains(&secret), "{shown}");
        }
        assert_eq!(format!("{token}"), format!("tgt_{}_<redacted>", token.id()));
    }

    #[test]
    fn an_id_is_read_from_itself_its_prefixed_form_or_a_whole_token() {
        let (token, _) = generate().expect("token");
        let id = token.id().as_str();
        for text in [
            id.to_string(),
            format!("tgt_{id}"),
            token.expose().to_string(),
        ] {
            assert_eq!(TokenId::parse(&text).expect("id").as_str(), id);
        }
        assert!(TokenId::parse("nothex").is_err());
    }
}
