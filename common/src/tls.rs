//! Loading TLS material (PEM files) into rustls configs.
//!
//! The process-wide crypto provider is aws-lc-rs; [`install_crypto_provider`] must
//! run once at startup, before any config is built.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {detail}")]
    Read {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("{what} {path} contains no PEM certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("TLS setup with {path} failed: {detail}")]
    Rustls { path: PathBuf, detail: String },
}

/// Install aws-lc-rs as rustls' process-wide provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Read {
            what,
            path: path.to_owned(),
            detail: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read {
            what,
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// A server config from the certificate (chain) file, its key, and optionally a
/// CA chain file whose certificates are sent after the server's own.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    chain_file: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    install_crypto_provider();
    let mut certs = read_certs("ssl_certfile", cert_file)?;
    if let Some(chain) = chain_file {
        certs.extend(read_certs("ssl_ca_certs", chain)?);
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Read {
        what: "ssl_key",
        path: key_file.to_owned(),
        detail: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls {
            path: key_file.to_owned(),
            detail: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client config that trusts exactly the CA certificates in `ca_file`
/// (or the bundled Mozilla roots are not used: a private CA is the norm here).
pub fn client_config(ca_file: &Path) -> Result<rustls::ClientConfig, TlsError> {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs("ssl_ca_certs", ca_file)? {
        roots.add(cert).map_err(|e| TlsError::Rustls {
            path: ca_file.to_owned(),
            detail: e.to_string(),
        })?;
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}
