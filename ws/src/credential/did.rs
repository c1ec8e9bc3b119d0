//! The issuer's decentralized identifier. `did:key` (the demo's) is the public
//! key itself and needs nothing published; `did:web:host[:path]` (production)
//! resolves to `https://host[/path]/did.json` (`/.well-known/did.json` without a
//! path), where the workserver publishes the DID document in storage at start.
//! Either way the verification method is `{did}#{multikey}`, so a rotated key is
//! a new method of the same did:web identifier.

use testamur_common::config::IssuerDid;

use super::multibase;

pub struct IssuerId {
    pub did: String,
    pub verification_method: String,
    multikey: String,
    /// did:web: where its DID document goes in storage.
    document_path: Option<String>,
}

impl IssuerId {
    pub fn new(did: IssuerDid, public: &[u8; 32]) -> Self {
        let multikey = multibase::ed25519_multikey(public);
        let (did, document_path) = match did {
            IssuerDid::Key => (format!("did:key:{multikey}"), None),
            IssuerDid::Web { did, document_path } => (did, Some(document_path)),
        };
        Self {
            verification_method: format!("{did}#{multikey}"),
            did,
            multikey,
            document_path,
        }
    }

    /// A did:web identifier's DID document (DID Core 1.0, one `Multikey`
    /// verification method for assertions) and its path in storage.
    pub fn document(&self) -> Option<(&str, Vec<u8>)> {
        let path = self.document_path.as_deref()?;
        let doc = serde_json::json!({
            "@context": [
                "https://www.w3.org/ns/did/v1",
                "https://w3id.org/security/multikey/v1"
            ],
            "id": self.did,
            "verificationMethod": [{
                "id": self.verification_method,
                "type": "Multikey",
                "controller": self.did,
                "publicKeyMultibase": self.multikey,
            }],
            "assertionMethod": [self.verification_method],
        });
        let mut bytes = serde_json::to_vec_pretty(&doc).ok()?;
        bytes.push(b'\n');
        Some((path, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_key_is_the_multikey_and_names_itself() {
        let id = IssuerId::new(IssuerDid::Key, &[7; 32]);
        let mk = multibase::ed25519_multikey(&[7; 32]);
        assert_eq!(id.did, format!("did:key:{mk}"));
        assert_eq!(id.verification_method, format!("did:key:{mk}#{mk}"));
        assert!(id.document().is_none());
    }

    #[test]
    fn did_web_publishes_its_document() {
        let id = IssuerId::new(
            IssuerDid::Web {
                did: "did:web:certs.example.org".into(),
                document_path: ".well-known/did.json".into(),
            },
            &[7; 32],
        );
        let (path, bytes) = id.document().unwrap();
        assert_eq!(path, ".well-known/did.json");
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["id"], "did:web:certs.example.org");
        assert_eq!(doc["assertionMethod"][0], id.verification_method);
        assert_eq!(doc["verificationMethod"][0]["controller"], id.did);
    }
}
