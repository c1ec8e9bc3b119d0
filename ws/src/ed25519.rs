//! Ed25519 signing and checking with `ed25519-dalek` for keys that are Ed25519
//! (all keys `testamur keygen` makes).
//!
//! sequoia still builds, hashes and armors the OpenPGP signature packets; only the
//! curve arithmetic is done here, through sequoia's [`crypto::Signer`] trait (the
//! extension point meant for hardware tokens). The reason is speed: with the
//! OpenSSL 3.0 backend an Ed25519 signature costs ~70 µs and a check ~140 µs,
//! which was half of a certificate's whole CPU time; dalek needs a fraction of
//! that. Keys of other algorithms keep sequoia's own backend.

use openpgp::crypto::hash::Hash;
use openpgp::crypto::mpi;
use openpgp::packet::key::{PublicParts, UnspecifiedRole};
use openpgp::packet::Key;
use openpgp::types::{Curve, HashAlgorithm, PublicKeyAlgorithm, SignatureType};
use sequoia_openpgp as openpgp;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

/// An Ed25519 signing key taken out of a sequoia key pair.
pub struct Ed25519 {
    public: Key<PublicParts, UnspecifiedRole>,
    signing: SigningKey,
    verifying: VerifyingKey,
}

impl Ed25519 {
    /// The key pair's secret as a dalek key, if it is an (unencrypted) Ed25519 key
    /// and dalek derives the same public key from it as the certificate has.
    pub fn from_keypair(pair: &openpgp::crypto::KeyPair) -> Option<Self> {
        let public = pair.public().clone();
        let q = match (public.pk_algo(), public.mpis()) {
            (
                PublicKeyAlgorithm::EdDSA,
                mpi::PublicKey::EdDSA {
                    curve: Curve::Ed25519,
                    q,
                },
            ) => q.decode_point(&Curve::Ed25519).ok()?.0.to_vec(),
            _ => return None,
        };
        let seed: [u8; 32] = pair.secret().map(|s| match s {
            mpi::SecretKeyMaterial::EdDSA { scalar } => {
                let padded = scalar.value_padded(32);
                <[u8; 32]>::try_from(&padded[..]).ok()
            }
            _ => None,
        })?;
        let signing = SigningKey::from_bytes(&seed);
        let verifying = signing.verifying_key();
        (verifying.as_bytes()[..] == q[..]).then_some(Self {
            public,
            signing,
            verifying,
        })
    }

    /// Checks an OpenPGP signature made by this key over the data `hash` has
    /// taken in (see [`crate::sign::Hashed`]): the digest of the data and the
    /// signature's hashed fields, its two-byte prefix, and the Ed25519 signature
    /// over it (strict: no malleable encodings).
    pub fn verify_hash(
        &self,
        sig: &openpgp::packet::Signature,
        mut hash: openpgp::crypto::hash::Context,
    ) -> Result<(), String> {
        if sig.typ() != SignatureType::Binary {
            return Err(format!(
                "a {} signature, not a binary document signature",
                sig.typ()
            ));
        }
        if sig.pk_algo() != PublicKeyAlgorithm::EdDSA {
            return Err(format!("made with {}, not EdDSA", sig.pk_algo()));
        }
        sig.hash(&mut hash).map_err(|e| e.to_string())?;
        let digest = hash.into_digest().map_err(|e| e.to_string())?;
        if digest.get(..2) != Some(&sig.digest_prefix()[..]) {
            return Err("the digest does not match the signature's digest prefix".into());
        }
        let mpi::Signature::EdDSA { r, s } = sig.mpis() else {
            return Err("not an EdDSA signature".into());
        };
        let mut bytes = [0u8; 64];
        for (half, m) in [r, s].into_iter().enumerate() {
            let v = m.value_padded(32).map_err(|e| e.to_string())?;
            bytes[half * 32..half * 32 + 32].copy_from_slice(&v);
        }
        self.verifying
            .verify_strict(&digest, &ed25519_dalek::Signature::from_bytes(&bytes))
            .map_err(|_| "the Ed25519 signature does not verify with this key".into())
    }

    /// A sequoia signer over this key, for `serialize::stream::Signer`.
    pub fn signer(&self) -> SignerRef<'_> {
        SignerRef(self)
    }
}

/// A borrowed [`Ed25519`] as a sequoia [`openpgp::crypto::Signer`].
pub struct SignerRef<'a>(&'a Ed25519);

impl openpgp::crypto::Signer for SignerRef<'_> {
    fn public(&self) -> &Key<PublicParts, UnspecifiedRole> {
        &self.0.public
    }

    fn sign(&mut self, _hash: HashAlgorithm, digest: &[u8]) -> openpgp::Result<mpi::Signature> {
        let sig = self.0.signing.sign(digest).to_bytes();
        Ok(mpi::Signature::EdDSA {
            r: mpi::MPI::new(&sig[..32]),
            s: mpi::MPI::new(&sig[32..]),
        })
    }
}
