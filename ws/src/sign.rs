//! OpenPGP signing with sequoia: key generation, detached ASCII-armored
//! signatures, and in-process verification before anything is published.
//!
//! Keys are v4 (RFC 4880 profile) Ed25519 so that Debian's gpg 2.2 verifies them.

use std::path::Path;

use openpgp::cert::prelude::*;
use openpgp::crypto::KeyPair;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationHelper,
};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use sequoia_openpgp as openpgp;

use crate::ed25519::Ed25519;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot load the signing key {path}: {detail}")]
    Load { path: String, detail: String },
    #[error(
        "the signing key {path} is readable by group or others (anyone who can read it can \
         sign certificates); run `chmod 600 {path}`"
    )]
    Permissions { path: String },
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("the signature did not verify: {0}")]
    Verify(String),
}

/// A loaded signing key: the secret key pair plus the public certificate.
pub struct SigningKey {
    keypair: KeyPair,
    /// The same key for dalek, when it is Ed25519 (see `ed25519.rs`).
    ed25519: Option<Ed25519>,
    cert: openpgp::Cert,
    public_armored: String,
}

/// The SHA-256 of a document, taken in one pass and shared by everything that
/// needs it: its OpenPGP signature, the check of that signature, and the digest
/// reported with the document (each used to hash the whole PDF again).
#[derive(Clone)]
pub struct Hashed(openpgp::crypto::hash::Context);

/// The hash of every signature made here (see `sign_hashed_at`).
const HASH: openpgp::types::HashAlgorithm = openpgp::types::HashAlgorithm::SHA256;

impl Hashed {
    pub fn of(data: &[u8]) -> Result<Self, SignError> {
        let mut ctx = HASH
            .context()
            .map_err(|e| SignError::Sign(e.to_string()))?
            .for_signature(4);
        ctx.update(data);
        Ok(Self(ctx))
    }

    /// SHA-256 of the data alone.
    pub fn sha256(&self) -> Result<[u8; 32], SignError> {
        let digest = self
            .0
            .clone()
            .into_digest()
            .map_err(|e| SignError::Sign(e.to_string()))?;
        <[u8; 32]>::try_from(&digest[..]).map_err(|_| SignError::Sign("not a SHA-256".into()))
    }
}

impl SigningKey {
    /// Loads the secret key from `path`, which only its owner may read (0600,
    /// like every secret file): a group- or world-readable key is refused.
    pub fn load(path: &Path) -> Result<Self, SignError> {
        let err = |detail: String| SignError::Load {
            path: path.display().to_string(),
            detail,
        };
        if testamur_common::secret::group_or_other_access(path).map_err(|e| err(e.to_string()))? {
            return Err(SignError::Permissions {
                path: path.display().to_string(),
            });
        }
        let cert = openpgp::Cert::from_file(path).map_err(|e| err(e.to_string()))?;
        Self::from_cert(cert).map_err(|e| match e {
            SignError::Load { detail, .. } => err(detail),
            other => other,
        })
    }

    pub fn from_cert(cert: openpgp::Cert) -> Result<Self, SignError> {
        let err = |detail: String| SignError::Load {
            path: String::new(),
            detail,
        };
        let policy = StandardPolicy::new();
        let key = cert
            .keys()
            .unencrypted_secret()
            .with_policy(&policy, None)
            .supported()
            .alive()
            .revoked(false)
            .for_signing()
            .next()
            .ok_or_else(|| {
                err("no usable unencrypted signing key in it (expired, revoked or passphrase-protected?); make one with `testamur keygen`".into())
            })?;
        let keypair = key
            .key()
            .clone()
            .into_keypair()
            .map_err(|e| err(e.to_string()))?;
        let public_armored =
            String::from_utf8(cert.armored().to_vec().map_err(|e| err(e.to_string()))?)
                .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            ed25519: Ed25519::from_keypair(&keypair),
            keypair,
            cert,
            public_armored,
        })
    }

    /// The primary key's fingerprint, uppercase hex.
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint().to_hex()
    }

    /// The ASCII-armored public key (what verifiers import).
    pub fn public_key_armored(&self) -> &str {
        &self.public_armored
    }

    /// A detached, ASCII-armored signature over `data`, made now.
    pub fn sign_detached(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_detached_at(data, std::time::SystemTime::now())
    }

    /// A detached, ASCII-armored signature over `data` made at `at` (or at the
    /// signing key's creation, if that is later: verifiers refuse a signature
    /// older than its key). The same data and time give the same bytes: the
    /// packet is built here rather than by sequoia's `Signer`, which adds a random
    /// salt notation to every v4 signature, and Ed25519 (like RSA PKCS#1 v1.5)
    /// has no nonce. A retried job so publishes the same signature.
    pub fn sign_detached_at(
        &self,
        data: &[u8],
        at: std::time::SystemTime,
    ) -> Result<Vec<u8>, SignError> {
        self.sign_hashed_at(&Hashed::of(data)?, at)
    }

    /// [`Self::sign_detached_at`] over data already hashed.
    pub fn sign_hashed_at(
        &self,
        data: &Hashed,
        at: std::time::SystemTime,
    ) -> Result<Vec<u8>, SignError> {
        use openpgp::packet::signature::subpacket::{Subpacket, SubpacketArea, SubpacketValue};
        use openpgp::packet::signature::Signature4;
        use openpgp::serialize::Serialize as _;
        let e = |e: anyhow::Error| SignError::Sign(e.to_string());
        let public = self.keypair.public();
        let at = at.max(public.creation_time());
        let created = openpgp::types::Timestamp::try_from(at).map_err(e)?;
        // SHA-256 rather than sequoia's default SHA-512: it matches Ed25519's
        // 128-bit security level and is twice as fast where the CPU has SHA
        // extensions (hashing the PDF is much of signing and checking it).
        let hash_algo = HASH;
        let hashed = SubpacketArea::new(vec![
            Subpacket::new(SubpacketValue::SignatureCreationTime(created), false).map_err(e)?,
            Subpacket::new(
                SubpacketValue::IssuerFingerprint(public.fingerprint()),
                false,
            )
            .map_err(e)?,
        ])
        .map_err(e)?;
        let unhashed = SubpacketArea::new(vec![Subpacket::new(
            SubpacketValue::Issuer(public.keyid()),
            false,
        )
        .map_err(e)?])
        .map_err(e)?;
        let fields = |prefix: [u8; 2], mpis: openpgp::crypto::mpi::Signature| {
            Signature4::new(
                openpgp::types::SignatureType::Binary,
                public.pk_algo(),
                hash_algo,
                hashed.clone(),
                unhashed.clone(),
                prefix,
                mpis,
            )
        };
        // The digest covers the data and the signature's hashed fields (its
        // trailer), not the signature values: hash with placeholders first.
        let template = fields(
            [0, 0],
            openpgp::crypto::mpi::Signature::Unknown {
                mpis: Box::new([]),
                rest: Box::new([]),
            },
        );
        let mut hash = data.0.clone();
        openpgp::crypto::hash::Hash::hash(&template, &mut hash).map_err(e)?;
        let digest = hash.into_digest().map_err(e)?;
        let mpis = match &self.ed25519 {
            Some(k) => openpgp::crypto::Signer::sign(&mut k.signer(), hash_algo, &digest),
            None => openpgp::crypto::Signer::sign(&mut self.keypair.clone(), hash_algo, &digest),
        }
        .map_err(e)?;
        let sig = openpgp::Packet::from(openpgp::packet::Signature::from(fields(
            [digest[0], digest[1]],
            mpis,
        )));
        let mut out = Vec::with_capacity(512);
        {
            let mut w = openpgp::armor::Writer::new(&mut out, openpgp::armor::Kind::Signature)
                .map_err(|x| SignError::Sign(x.to_string()))?;
            sig.serialize(&mut w).map_err(e)?;
            w.finalize().map_err(|x| SignError::Sign(x.to_string()))?;
        }
        Ok(out)
    }

    /// Check a detached signature we just made over `data`: parse it and verify it
    /// against our signing (sub)key directly. One hash and one signature check; the
    /// certificate's own binding signatures were checked once, at load time.
    pub fn verify_detached(&self, data: &[u8], signature: &[u8]) -> Result<(), SignError> {
        let sig = parse_own(signature)?;
        let mut hash = sig
            .hash_algo()
            .context()
            .map_err(|e| SignError::Verify(e.to_string()))?
            .for_signature(sig.version());
        if let Some(salt) = sig.salt() {
            hash.update(salt);
        }
        hash.update(data);
        self.check(&sig, hash)
    }

    /// [`Self::verify_detached`] of a signature made by `sign_hashed_at`, over
    /// data already hashed (the hash the signature was made from: the check
    /// covers the signature's bytes, its fields and the curve arithmetic, not
    /// the hashing of the data).
    pub fn verify_hashed(&self, data: &Hashed, signature: &[u8]) -> Result<(), SignError> {
        let sig = parse_own(signature)?;
        if sig.version() != 4 || sig.hash_algo() != HASH {
            return Err(SignError::Verify(format!(
                "a version {} signature with {}, not version 4 with {HASH}",
                sig.version(),
                sig.hash_algo()
            )));
        }
        self.check(&sig, data.0.clone())
    }

    /// `sig` by our key over what `hash` (of its algorithm and version) took in.
    fn check(
        &self,
        sig: &openpgp::packet::Signature,
        hash: openpgp::crypto::hash::Context,
    ) -> Result<(), SignError> {
        if sig.typ() != openpgp::types::SignatureType::Binary {
            return Err(SignError::Verify(format!(
                "a {} signature, not a binary document signature",
                sig.typ()
            )));
        }
        match &self.ed25519 {
            Some(k) => k.verify_hash(sig, hash).map_err(SignError::Verify),
            None => sig
                .verify_hash(self.keypair.public(), hash)
                .map_err(|e| SignError::Verify(e.to_string())),
        }
    }
}

/// The one signature packet of an armored detached signature.
fn parse_own(signature: &[u8]) -> Result<openpgp::packet::Signature, SignError> {
    if signature.is_empty() {
        return Err(SignError::Verify("the signature is empty".into()));
    }
    // Dearmored here: sequoia's armor reader guesses its input's shape and
    // costs as much as the signature check itself.
    let packet = crate::armor::dearmor_signature(signature).map_err(SignError::Verify)?;
    match openpgp::Packet::from_bytes(&packet) {
        Ok(openpgp::Packet::Signature(sig)) => Ok(sig),
        Ok(other) => Err(SignError::Verify(format!(
            "a {} packet, not a signature",
            other.tag()
        ))),
        Err(e) => Err(SignError::Verify(e.to_string())),
    }
}

/// Check a detached signature over `data` against `cert`.
pub fn verify_detached(
    cert: &openpgp::Cert,
    data: &[u8],
    signature: &[u8],
) -> Result<(), SignError> {
    if signature.is_empty() {
        return Err(SignError::Verify("the signature is empty".into()));
    }
    let policy = StandardPolicy::new();
    let helper = Helper { cert };
    let mut v = DetachedVerifierBuilder::from_bytes(signature)
        .map_err(|e| SignError::Verify(e.to_string()))?
        .with_policy(&policy, None, helper)
        .map_err(|e| SignError::Verify(e.to_string()))?;
    v.verify_bytes(data)
        .map_err(|e| SignError::Verify(e.to_string()))
}

/// Load a public (or secret) key file for verification.
pub fn load_cert(path: &Path) -> Result<openpgp::Cert, SignError> {
    openpgp::Cert::from_file(path).map_err(|e| SignError::Load {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// The primary user id of a key, for messages.
pub fn signer_name(cert: &openpgp::Cert) -> String {
    cert.userids()
        .next()
        .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
        .unwrap_or_else(|| cert.fingerprint().to_hex())
}

struct Helper<'a> {
    cert: &'a openpgp::Cert,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<openpgp::Cert>> {
        Ok(vec![self.cert.clone()])
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure {
            if let MessageLayer::SignatureGroup { results } = layer {
                if results.iter().any(|r| r.is_ok()) {
                    return Ok(());
                }
                let why = results
                    .into_iter()
                    .filter_map(|r| r.err())
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(anyhow::anyhow!("no valid signature by this key ({why})"));
            }
        }
        Err(anyhow::anyhow!("no signature found"))
    }
}

/// A new Ed25519 signing key (v4). Returns (armored secret key, armored public key,
/// fingerprint).
pub fn generate_key(userid: &str) -> Result<(String, String, String), SignError> {
    let e = |e: anyhow::Error| SignError::Sign(e.to_string());
    let (cert, _rev) = CertBuilder::new()
        .set_profile(openpgp::Profile::RFC4880)
        .map_err(e)?
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_userid(userid)
        .add_signing_subkey()
        .generate()
        .map_err(e)?;
    let secret = String::from_utf8(cert.as_tsk().armored().to_vec().map_err(e)?)
        .map_err(|x| SignError::Sign(x.to_string()))?;
    let public = String::from_utf8(cert.armored().to_vec().map_err(e)?)
        .map_err(|x| SignError::Sign(x.to_string()))?;
    Ok((secret, public, cert.fingerprint().to_hex()))
}

/// The OpenPGP certificate type, for callers that do not depend on sequoia.
pub type Cert = openpgp::Cert;

/// Parse an armored or binary key.
pub fn parse_cert(bytes: &[u8]) -> Result<Cert, SignError> {
    openpgp::Cert::from_bytes(bytes).map_err(|e| SignError::Load {
        path: "<memory>".into(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_rejects_tampering() {
        let (secret, _public, _fp) = generate_key("test <t@example.org>").unwrap();
        let key =
            SigningKey::from_cert(openpgp::Cert::from_bytes(secret.as_bytes()).unwrap()).unwrap();
        let sig = key.sign_detached(b"hello").unwrap();
        assert!(String::from_utf8_lossy(&sig).starts_with("-----BEGIN PGP SIGNATURE-----"));
        key.verify_detached(b"hello", &sig).unwrap();
        assert!(key.verify_detached(b"hellO", &sig).is_err());
        assert!(key.verify_detached(b"hello", b"").is_err());
        // The full policy-checking verifier agrees.
        verify_detached(&key.cert, b"hello", &sig).unwrap();
        assert!(verify_detached(&key.cert, b"hellO", &sig).is_err());
        // A signature by another key is rejected.
        let (other, _, _) = generate_key("other <o@example.org>").unwrap();
        let other =
            SigningKey::from_cert(openpgp::Cert::from_bytes(other.as_bytes()).unwrap()).unwrap();
        let foreign = other.sign_detached(b"hello").unwrap();
        assert!(key.verify_detached(b"hello", &foreign).is_err());
        assert!(verify_detached(&key.cert, b"hello", &foreign).is_err());
    }

    #[test]
    fn a_signature_made_at_one_time_is_the_same_bytes_every_time() {
        let (secret, _, _) = generate_key("test <t@example.org>").unwrap();
        let key =
            SigningKey::from_cert(openpgp::Cert::from_bytes(secret.as_bytes()).unwrap()).unwrap();
        let at = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        let a = key.sign_detached_at(b"data", at).unwrap();
        assert_eq!(a, key.sign_detached_at(b"data", at).unwrap());
        verify_detached(&key.cert, b"data", &a).unwrap();
        assert_ne!(a, key.sign_detached_at(b"datA", at).unwrap());
        // Before the key existed: made at the key's creation instead (verifiers
        // refuse a signature older than its key).
        let early = key
            .sign_detached_at(b"data", std::time::UNIX_EPOCH)
            .unwrap();
        verify_detached(&key.cert, b"data", &early).unwrap();
        let sig = openpgp::Packet::from_bytes(&early).unwrap();
        let openpgp::Packet::Signature(sig) = sig else {
            panic!("{sig:?}")
        };
        assert_eq!(
            sig.signature_creation_time(),
            Some(key.keypair.public().creation_time())
        );
    }

    #[test]
    fn dalek_and_sequoias_own_backend_agree() {
        let (secret, _, _) = generate_key("test <t@example.org>").unwrap();
        let key =
            SigningKey::from_cert(openpgp::Cert::from_bytes(secret.as_bytes()).unwrap()).unwrap();
        assert!(key.ed25519.is_some(), "generated keys sign with dalek");
        // Signed by sequoia's OpenSSL backend, checked by dalek...
        let mut out = Vec::new();
        {
            use openpgp::serialize::stream::{Armorer, Message, Signer};
            let m = Armorer::new(Message::new(&mut out))
                .kind(openpgp::armor::Kind::Signature)
                .build()
                .unwrap();
            let mut w = Signer::new(m, key.keypair.clone())
                .unwrap()
                .detached()
                .build()
                .unwrap();
            std::io::Write::write_all(&mut w, b"data").unwrap();
            w.finalize().unwrap();
        }
        key.verify_detached(b"data", &out).unwrap();
        assert!(key.verify_detached(b"datA", &out).is_err());
        // ... and signed by dalek, checked by OpenSSL (the policy verifier).
        let sig = key.sign_detached(b"data").unwrap();
        verify_detached(&key.cert, b"data", &sig).unwrap();
        // A flipped bit in the signature value is caught by dalek.
        let pile = openpgp::PacketPile::from_bytes(&sig).unwrap();
        let mut bin = openpgp::serialize::SerializeInto::to_vec(&pile).unwrap();
        let last = bin.len() - 1;
        bin[last] ^= 1;
        let mut armored = Vec::new();
        {
            let mut w =
                openpgp::armor::Writer::new(&mut armored, openpgp::armor::Kind::Signature).unwrap();
            std::io::Write::write_all(&mut w, &bin).unwrap();
            w.finalize().unwrap();
        }
        let e = key.verify_detached(b"data", &armored).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("tm-key-{}", testamur_common::ids::random_hex(6)));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("signing.key");
        let (secret, _, _) = generate_key("test <t@example.org>").unwrap();
        std::fs::write(&path, secret).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = SigningKey::load(&path).err().expect("refused");
            assert!(matches!(e, SignError::Permissions { .. }), "{mode:o}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string())
                    && msg.contains(&format!("chmod 600 {}", path.display())),
                "{msg}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        SigningKey::load(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        SigningKey::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn other_algorithms_keep_sequoias_backend() {
        let (cert, _) = CertBuilder::new()
            .set_cipher_suite(CipherSuite::RSA2k)
            .add_userid("rsa <r@example.org>")
            .add_signing_subkey()
            .generate()
            .unwrap();
        let key = SigningKey::from_cert(cert).unwrap();
        assert!(key.ed25519.is_none());
        let sig = key.sign_detached(b"data").unwrap();
        key.verify_detached(b"data", &sig).unwrap();
        assert!(key.verify_detached(b"datA", &sig).is_err());
        verify_detached(&key.cert, b"data", &sig).unwrap();
    }
}
