//! Cluster CA certificates as the clouds return them: base64 of PEM.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Decodes a CA bundle given as base64 of PEM (EKS, GKE, kubeconfig
/// `certificate-authority-data`) or as PEM, into DER certificates.
pub fn decode_ca(data: &str) -> Result<Vec<Vec<u8>>, String> {
    let trimmed = data.trim();
    let pem = if trimmed.starts_with("-----BEGIN") {
        trimmed.to_string()
    } else {
        let compact: String = trimmed.split_whitespace().collect();
        let bytes = STANDARD
            .decode(compact)
            .map_err(|e| format!("CA data is not base64: {e}"))?;
        String::from_utf8(bytes).map_err(|_| "CA data is not base64 of PEM".to_string())?
    };
    let mut certs = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        if line == "-----BEGIN CERTIFICATE-----" {
            current = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let body = current.take().ok_or("END without BEGIN in CA PEM")?;
            certs.push(
                STANDARD
                    .decode(body)
                    .map_err(|e| format!("CA PEM body is not base64: {e}"))?,
            );
        } else if let Some(body) = current.as_mut() {
            body.push_str(line);
        }
    }
    if certs.is_empty() {
        return Err("no certificate in CA data".into());
    }
    Ok(certs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAEC\nAwQ=\n-----END CERTIFICATE-----\n";

    #[test]
    fn base64_of_pem_and_plain_pem_decode_to_der() {
        let encoded = STANDARD.encode(PEM);
        assert_eq!(decode_ca(&encoded).unwrap(), vec![vec![0, 1, 2, 3, 4]]);
        assert_eq!(decode_ca(PEM).unwrap(), vec![vec![0, 1, 2, 3, 4]]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_ca("not base64!").is_err());
        assert!(decode_ca(&STANDARD.encode("no pem here")).is_err());
    }
}
