//! Development TLS material: a private CA and a server certificate signed by it
//! (rcgen), and a document-signing certificate of the same CA for the PDFs' own
//! signature (PAdES). Production deployments bring their own files (see
//! certs/README.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The PDF signing certificate, then the CA's (the chain, PEM), and its key.
    pub pdf_cert: PathBuf,
    pub pdf_key: PathBuf,
}

/// Write `ca.pem`, `ca.key`, `server.pem` and `server.key` into `dir`; the server
/// certificate is valid for `hosts` (names or IP addresses). Keys are mode 0600.
pub fn generate(dir: &Path, hosts: &[String]) -> anyhow::Result<TlsFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let now = time::OffsetDateTime::now_utc();

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "testamur development CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut server = CertificateParams::new(hosts.to_vec())
        .context("a host name is not valid for a certificate")?;
    server.distinguished_name.push(
        DnType::CommonName,
        hosts.first().map(String::as_str).unwrap_or("localhost"),
    );
    server.use_authority_key_identifier_extension = true;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now - time::Duration::days(1);
    server.not_after = now + time::Duration::days(825);
    let server_key = KeyPair::generate()?;
    let issuer = Issuer::new(ca, ca_key);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    // Document signing: ECDSA P-256, digitalSignature + nonRepudiation, no
    // extended key usage (which NSS and Acrobat both accept for signing PDFs).
    let mut signer = CertificateParams::new(Vec::<String>::new())?;
    signer
        .distinguished_name
        .push(DnType::CommonName, "testamur development document signer");
    signer
        .distinguished_name
        .push(DnType::OrganizationName, "testamur");
    signer.use_authority_key_identifier_extension = true;
    signer.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    signer.not_before = now - time::Duration::days(1);
    signer.not_after = now + time::Duration::days(825);
    let signer_key = KeyPair::generate()?;
    let signer_cert = signer.signed_by(&signer_key, &issuer)?;

    let files = TlsFiles {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("ca.key"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        pdf_cert: dir.join("pdf-signing.pem"),
        pdf_key: dir.join("pdf-signing.key"),
    };
    crate::fsutil::write_public(
        &files.pdf_cert,
        format!("{}{}", signer_cert.pem(), ca_cert.pem()).as_bytes(),
    )?;
    crate::fsutil::write_private(&files.pdf_key, signer_key.serialize_pem().as_bytes())?;
    crate::fsutil::write_public(&files.ca_cert, ca_cert.pem().as_bytes())?;
    crate::fsutil::write_private(&files.ca_key, issuer.key().serialize_pem().as_bytes())?;
    crate::fsutil::write_public(&files.server_cert, server_cert.pem().as_bytes())?;
    crate::fsutil::write_private(&files.server_key, server_key.serialize_pem().as_bytes())?;
    Ok(files)
}
