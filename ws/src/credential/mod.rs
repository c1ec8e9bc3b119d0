//! Open Badges 3.0 credentials: every published version of a certificate also as
//! an `OpenBadgeCredential` (W3C Verifiable Credentials Data Model 2.0) with an
//! embedded Data Integrity proof of the `eddsa-rdfc-2022` cryptosuite, which a
//! learner can keep in a wallet and anyone can check offline.
//!
//! - [`document`]: the credential's JSON and the same statements as RDF.
//! - [`rdf`]: RDFC-1.0 canonical N-Quads, which the proof signs.
//! - [`did`]: the issuer's identifier, `did:key` or `did:web`, and its DID document.
//! - [`key`]: the Ed25519 key file.
//! - [`multibase`]: base58-btc for keys and proof values.
//! - [`status_list`]: the signed Bitstring Status List credential of a list.
//! - [`check`]: checking a published credential offline (`testamur verify`).
//!
//! The proof (Data Integrity EdDSA Cryptosuites v1.0, section 3.3): SHA-256 of
//! the canonical proof options (the proof without `proofValue`, with the
//! credential's `@context`) followed by SHA-256 of the canonical credential
//! without its proof, signed with Ed25519; `proofValue` is that signature in
//! multibase base58-btc. Everything is deterministic: Ed25519 has no nonce,
//! `created` is when the CC accepted the job's request (the same for every
//! attempt), so a retried job publishes the same bytes.

pub mod check;
pub mod did;
pub mod document;
pub mod key;
pub mod multibase;
pub mod rdf;
pub mod status_list;

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use testamur_common::config::CredentialsConfig;

use self::did::IssuerId;
pub use self::document::Facts;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Key(#[from] key::KeyError),
    #[error("cannot make the credential's proof: {0}")]
    Canon(#[from] rdf::CanonError),
    #[error("the credential's proof did not verify with its own key: {0}")]
    Verify(String),
    #[error("the credential cannot hold {0}")]
    Data(String),
}

/// Who issues credentials, with what key.
pub struct Issuer {
    id: IssuerId,
    key: crate::ed25519::Seed,
    verifying: VerifyingKey,
}

impl Issuer {
    /// The issuer ws.conf's `[credentials]` describes (reads the key file).
    pub fn load(cfg: &CredentialsConfig) -> Result<Self, CredentialError> {
        Ok(Self::new(key::load(&cfg.key)?, cfg.issuer.clone()))
    }

    /// `did` is `"did:key"` (derived from the key) or a `did:web:…` identifier.
    pub fn new(key: SigningKey, did: testamur_common::config::IssuerDid) -> Self {
        let verifying = key.verifying_key();
        Self {
            id: IssuerId::new(did, verifying.as_bytes()),
            key: crate::ed25519::Seed::new(key),
            verifying,
        }
    }

    /// The issuer of an Ed25519 key given by its 32-byte seed (tests, benches).
    pub fn from_seed(seed: &[u8; 32], did: testamur_common::config::IssuerDid) -> Self {
        Self::new(SigningKey::from_bytes(seed), did)
    }

    pub fn did(&self) -> &str {
        &self.id.did
    }

    /// The `did:web` DID document and its path in storage (`None` for did:key,
    /// which is its own document).
    pub fn did_document(&self) -> Option<(&str, Vec<u8>)> {
        self.id.document()
    }

    /// The signed credential of one published version, as published (JSON, a
    /// final newline). Its proof is checked with the public key before it is
    /// returned.
    pub fn issue(&self, facts: &Facts) -> Result<Vec<u8>, CredentialError> {
        let created = facts.created()?;
        let (doc, statements) = document::document(facts, &self.id)?;
        self.sign(doc, &statements, &created)
    }

    /// The signed status list credential of a list's bytes, to be published at
    /// `url`, valid from `now` (`YYYY-MM-DDTHH:MM:SSZ`, also the proof's time).
    pub fn issue_status_list(
        &self,
        url: &str,
        bitmap: &[u8],
        now: &str,
    ) -> Result<Vec<u8>, CredentialError> {
        let encoded = status_list::encode(bitmap)?;
        let (doc, statements) = status_list::document(&status_list::ListFacts {
            url,
            issuer: &self.id.did,
            valid_from: now,
            encoded_list: &encoded,
        });
        self.sign(doc, &statements, now)
    }

    /// `doc` with its proof made at `created`, as published (JSON, a final newline).
    fn sign(
        &self,
        mut doc: serde_json::Map<String, serde_json::Value>,
        statements: &[rdf::Quad],
        created: &str,
    ) -> Result<Vec<u8>, CredentialError> {
        let options = document::proof_options(created, &self.id.verification_method);
        let hash = Self::hash_data(statements, &options.1)?;
        let signature = ed25519_dalek::Signature::from_bytes(&self.key.sign(&hash));
        self.verifying
            .verify_strict(&hash, &signature)
            .map_err(|e| CredentialError::Verify(e.to_string()))?;
        let mut proof = options.0;
        proof.insert(
            "proofValue".into(),
            multibase::z(&signature.to_bytes()).into(),
        );
        doc.insert("proof".into(), proof.into());
        let mut out =
            serde_json::to_vec_pretty(&doc).map_err(|e| CredentialError::Data(e.to_string()))?;
        out.push(b'\n');
        Ok(out)
    }

    /// What the proof signs: SHA-256 of the canonical proof options, then of the
    /// canonical credential.
    pub(super) fn hash_data(
        statements: &[rdf::Quad],
        proof_options: &[rdf::Quad],
    ) -> Result<[u8; 64], CredentialError> {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&Sha256::digest(
            rdf::canonical_nquads(proof_options)?.as_bytes(),
        ));
        out[32..].copy_from_slice(&Sha256::digest(
            rdf::canonical_nquads(statements)?.as_bytes(),
        ));
        Ok(out)
    }
}
