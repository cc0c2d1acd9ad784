//! Certificates and keys of one cluster, generated with rcgen (ECDSA P-256).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

use crate::{Error, Result};

/// Paths of a cluster's PKI files, under `<cluster>/pki`.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub ca_cert: PathBuf,
    pub apiserver_cert: PathBuf,
    pub apiserver_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub controller_manager_cert: PathBuf,
    pub controller_manager_key: PathBuf,
    pub scheduler_cert: PathBuf,
    pub scheduler_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
    pub token_webhook_cert: PathBuf,
    pub token_webhook_key: PathBuf,
}

fn name(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    dn
}

fn write(path: &Path, contents: &str, private: bool) -> Result<()> {
    std::fs::write(path, contents).map_err(Error::io(format!("writing {}", path.display())))?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(Error::io(format!("chmod {}", path.display())))?;
    }
    Ok(())
}

/// A serving certificate signed by `ca` for 127.0.0.1 and `names`.
fn serving(
    ca: &CertifiedIssuer<'_, KeyPair>,
    cn: &str,
    names: &[&str],
    cert_path: &Path,
    key_path: &Path,
) -> Result<()> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params.distinguished_name = name(cn, None);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    write(cert_path, &cert.pem(), false)?;
    write(key_path, &key.serialize_pem(), true)
}

/// Generates a CA, the API server's serving certificate (IP SAN 127.0.0.1),
/// the token webhook's, client certificates for the admin
/// (O=system:masters), the controller manager and the scheduler, and the
/// service-account signing key.
pub(crate) fn generate(dir: &Path, cluster: &str) -> Result<Pki> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let pki = Pki {
        ca_cert: dir.join("ca.crt"),
        apiserver_cert: dir.join("apiserver.crt"),
        apiserver_key: dir.join("apiserver.key"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        controller_manager_cert: dir.join("controller-manager.crt"),
        controller_manager_key: dir.join("controller-manager.key"),
        scheduler_cert: dir.join("scheduler.crt"),
        scheduler_key: dir.join("scheduler.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
        token_webhook_cert: dir.join("token-webhook.crt"),
        token_webhook_key: dir.join("token-webhook.key"),
    };

    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name(&format!("tidegate-testkit {cluster} CA"), None);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    write(&dir.join("ca.key"), &ca_key.serialize_pem(), true)?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    write(&pki.ca_cert, &ca.pem(), false)?;

    serving(
        &ca,
        "kube-apiserver",
        &[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
        &pki.apiserver_cert,
        &pki.apiserver_key,
    )?;
    serving(
        &ca,
        "tidegate-token-webhook",
        &["localhost"],
        &pki.token_webhook_cert,
        &pki.token_webhook_key,
    )?;

    for (cn, org, cert_path, key_path) in [
        (
            "tidegate-admin",
            Some("system:masters"),
            &pki.admin_cert,
            &pki.admin_key,
        ),
        (
            "system:kube-controller-manager",
            None,
            &pki.controller_manager_cert,
            &pki.controller_manager_key,
        ),
        (
            "system:kube-scheduler",
            None,
            &pki.scheduler_cert,
            &pki.scheduler_key,
        ),
    ] {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(cn, org);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        write(cert_path, &cert.pem(), false)?;
        write(key_path, &key.serialize_pem(), true)?;
    }

    let sa = KeyPair::generate()?;
    write(&pki.sa_key, &sa.serialize_pem(), true)?;
    write(&pki.sa_pub, &sa.public_key_pem(), false)?;
    Ok(pki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file() {
        let dir = tempfile::tempdir().expect("test step");
        let pki = generate(dir.path(), "eks-us-east-1").expect("test step");
        for path in [
            &pki.ca_cert,
            &pki.apiserver_cert,
            &pki.apiserver_key,
            &pki.admin_cert,
            &pki.admin_key,
            &pki.controller_manager_cert,
            &pki.controller_manager_key,
            &pki.scheduler_cert,
            &pki.scheduler_key,
            &pki.sa_key,
            &pki.sa_pub,
            &pki.token_webhook_cert,
            &pki.token_webhook_key,
        ] {
            let text = std::fs::read_to_string(path).expect("test step");
            assert!(text.starts_with("-----BEGIN "), "{}", path.display());
        }
    }
}
