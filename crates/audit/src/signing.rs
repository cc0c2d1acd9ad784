//! Ed25519 signatures over the chain head.
//!
//! A signed head says "entry `seq` has hash `hash`", signed with a key kept
//! outside the database. Anyone holding only the file can then neither cut
//! the tail off past a signed head nor rewrite the whole file: the signature
//! would no longer match, and a new one needs the private key.
//!
//! Key files: the 32-byte secret seed as 64 hex characters (a signing key),
//! or the 32-byte public key as 64 hex characters (a verifying key);
//! whitespace around them is ignored.

use crate::AuditError;
use crate::canonical::{hex, unhex};
use crate::entry::Seq;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::io::{Read, Write};
use std::path::Path;

/// The bytes signed for a head.
pub fn head_message(seq: Seq, hash: &str) -> Vec<u8> {
    format!("tidegate-audit-head\n{seq}\n{hash}").into_bytes()
}

fn read_32(path: &Path) -> Result<[u8; 32], AuditError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    let bytes = unhex(text.trim()).ok_or_else(|| AuditError::Key {
        path: path.to_path_buf(),
        reason: "expected 64 hex characters".into(),
    })?;
    bytes.try_into().map_err(|_| AuditError::Key {
        path: path.to_path_buf(),
        reason: "expected 32 bytes (64 hex characters)".into(),
    })
}

/// Reads a signing key (hex seed).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, AuditError> {
    Ok(SigningKey::from_bytes(&read_32(path)?))
}

/// Reads a verifying key (hex public key).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    VerifyingKey::from_bytes(&read_32(path)?).map_err(|e| AuditError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Creates a new signing key at `path` (mode 0600, never overwriting) from
/// the operating system's random source; returns it.
pub fn generate_key(path: &Path) -> Result<SigningKey, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(io)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    writeln!(file, "{}", hex(&seed)).map_err(io)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Hex of a public key.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex(key.as_bytes())
}

/// Signs a head; returns the signature as hex.
pub fn sign_head(key: &SigningKey, seq: Seq, hash: &str) -> String {
    hex(&key.sign(&head_message(seq, hash)).to_bytes())
}

/// Checks a stored head signature.
pub fn verify_head(public_key_hex: &str, seq: Seq, hash: &str, signature_hex: &str) -> bool {
    let Some(key) = unhex(public_key_hex)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
    else {
        return false;
    };
    let Some(sig) = unhex(signature_hex).and_then(|b| <[u8; 64]>::try_from(b).ok()) else {
        return false;
    };
    key.verify(&head_message(seq, hash), &Signature::from_bytes(&sig))
        .is_ok()
}
