//! ws.conf `[credentials]`: the Open Badges 3.0 credential published beside each
//! certificate, its Ed25519 key and the issuer's identifier.
//!
//! ```toml
//! [credentials]
//! key = "credential.key"                 # Ed25519, PKCS#8 PEM, mode 0600
//! issuer = "did:web:certs.example.org"   # or "did:key" (the demo's)
//! ```
//!
//! A `did:web` identifier resolves to a URL under `storage.base_url`, where the
//! workserver publishes the DID document: `did:web:certs.example.org` to
//! `https://certs.example.org/.well-known/did.json`, `did:web:example.org:certs`
//! to `https://example.org/certs/did.json`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{existing_file, ConfigError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CredentialsFile {
    key: PathBuf,
    issuer: String,
}

#[derive(Debug, Clone)]
pub struct CredentialsConfig {
    pub key: PathBuf,
    pub issuer: IssuerDid,
}

/// Which DID names the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerDid {
    /// `did:key` of the credential key.
    Key,
    /// A `did:web` identifier and where its DID document goes in storage.
    Web { did: String, document_path: String },
}

impl CredentialsFile {
    pub(super) fn validate(
        &self,
        file: &Path,
        base: &Path,
        base_url: &str,
    ) -> Result<CredentialsConfig, ConfigError> {
        let key = existing_file(file, "credentials.key", base, &self.key)?;
        let issuer = match self.issuer.as_str() {
            "did:key" => IssuerDid::Key,
            did => {
                let url = did_web_url(did)
                    .map_err(|e| ConfigError::key(file, "credentials.issuer", e))?;
                let Some(document_path) = url.strip_prefix(base_url) else {
                    return Err(ConfigError::key(
                        file,
                        "credentials.issuer",
                        format!(
                            "{did} resolves to {url}, which is not under storage.base_url \
                             ({base_url}), where the workserver publishes its DID document; \
                             use the did:web of the storage's host, e.g. \
                             \"{}\"",
                            suggest(base_url)
                        ),
                    ));
                };
                IssuerDid::Web {
                    did: did.to_owned(),
                    document_path: document_path.to_owned(),
                }
            }
        };
        Ok(CredentialsConfig { key, issuer })
    }
}

/// The https URL of a did:web identifier's DID document (did:web method
/// specification, "Read (Resolve)"): `:` separates path segments, `%3A` is a port.
pub fn did_web_url(did: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!(
            "must be \"did:key\" or a did:web identifier such as \
             \"did:web:certs.example.org\" ({why})"
        )
    };
    let rest = did
        .strip_prefix("did:web:")
        .ok_or_else(|| bad("no did:web: prefix"))?;
    if rest.len() > 200 {
        return Err(bad("longer than 200 characters"));
    }
    let mut parts = rest.split(':');
    let host = parts.next().unwrap_or_default().replace("%3A", ":");
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        && !host.starts_with(['.', '-', ':']);
    if !host_ok {
        return Err(bad(
            "the host must be a domain name, with %3A before a port",
        ));
    }
    let path: Vec<&str> = parts.collect();
    if path.iter().any(|p| {
        p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-~".contains(c))
    }) {
        return Err(bad("path segments are letters, digits and . _ - ~"));
    }
    Ok(match path.is_empty() {
        true => format!("https://{host}/.well-known/did.json"),
        false => format!("https://{host}/{}/did.json", path.join("/")),
    })
}

/// The did:web whose document lands at the root of `base_url`.
fn suggest(base_url: &str) -> String {
    let Some(rest) = base_url.strip_prefix("https://") else {
        return "did:web:certs.example.org (storage.base_url must then be https://certs.example.org/)".into();
    };
    let mut segs = rest.trim_end_matches('/').split('/');
    let host = segs.next().unwrap_or_default().replace(':', "%3A");
    let path: Vec<&str> = segs.collect();
    match path.is_empty() {
        true => format!("did:web:{host}"),
        false => format!("did:web:{host}:{}", path.join(":")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_web_resolves_as_the_method_says() {
        assert_eq!(
            did_web_url("did:web:w3c-ccg.github.io").unwrap(),
            "https://w3c-ccg.github.io/.well-known/did.json"
        );
        assert_eq!(
            did_web_url("did:web:w3c-ccg.github.io:user:alice").unwrap(),
            "https://w3c-ccg.github.io/user/alice/did.json"
        );
        assert_eq!(
            did_web_url("did:web:example.com%3A3000").unwrap(),
            "https://example.com:3000/.well-known/did.json"
        );
        for bad in [
            "did:web:",
            "did:web:a/b",
            "did:web:a::b",
            "did:key:z6Mk",
            "did:web:-x",
            "did:web:a:b c",
        ] {
            assert!(did_web_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_suggestion_resolves_under_the_base_url() {
        for base in [
            "https://certs.example.org/",
            "https://cdn.example.org/a/b/",
            "https://h:8443/",
        ] {
            let did = suggest(base);
            let url = did_web_url(&did).unwrap();
            assert!(url.starts_with(base), "{base}: {did} -> {url}");
        }
    }
}
