//! Ed25519 signing and checking with `ed25519-dalek` for keys that are Ed25519
//! (all keys `testamur keygen` makes).
//!
//! sequoia still builds, hashes and armors the OpenPGP signature packets; only the
//! curve arithmetic is done here, through sequoia's [`crypto::Signer`] trait (the
//! extension point meant for hardware tokens). The reason is speed: with the
//! OpenSSL 3.0 backend an Ed25519 signature costs ~70 µs and a check ~140 µs,
//! which was half of a certificate's whole CPU time; dalek needs a fraction of
//! that. Keys of other algorithms keep sequoia's own backend.
//!
//! [`Seed`] makes the signatures themselves with aws-lc (its Ed25519 is
//! s2n-bignum's x86_64/ARM assembly: about half of dalek's signing time here);
//! Ed25519 is deterministic, so the bytes are dalek's own (a test holds it), and
//! checks stay with dalek's `verify_strict`. The credential issuer signs with it too.

use openpgp::crypto::hash::Hash;
use openpgp::crypto::mpi;
use openpgp::packet::key::{PublicParts, UnspecifiedRole};
use openpgp::packet::Key;
use openpgp::types::{Curve, HashAlgorithm, PublicKeyAlgorithm, SignatureType};
use sequoia_openpgp as openpgp;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

/// An Ed25519 secret key that signs with aws-lc when aws-lc takes it and derives
/// the same public key as dalek (always, for a 32-byte seed), else with dalek.
pub struct Seed {
    dalek: SigningKey,
    aws: Option<Ed25519KeyPair>,
}

impl Seed {
    pub fn new(dalek: SigningKey) -> Self {
        let aws = Ed25519KeyPair::from_seed_unchecked(dalek.as_bytes())
            .ok()
            .filter(|p| p.public_key().as_ref() == dalek.verifying_key().as_bytes());
        Self { dalek, aws }
    }

    /// The 64-byte Ed25519 signature of `msg` (RFC 8032: the same bytes from
    /// either implementation).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        if let Some(pair) = &self.aws {
            if let Ok(sig) = <[u8; 64]>::try_from(pair.sign(msg).as_ref()) {
                return sig;
            }
        }
        self.dalek.sign(msg).to_bytes()
    }
}

/// An Ed25519 signing key taken out of a sequoia key pair.
pub struct Ed25519 {
    public: Key<PublicParts, UnspecifiedRole>,
    signing: Seed,
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
        (verifying.as_bytes()[..] == q[..]).then(|| Self {
            public,
            signing: Seed::new(signing),
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
        let sig = self.0.signing.sign(digest);
        Ok(mpi::Signature::EdDSA {
            r: mpi::MPI::new(&sig[..32]),
            s: mpi::MPI::new(&sig[32..]),
        })
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey};

    use super::Seed;

    /// aws-lc's signatures are dalek's bytes, for many keys and message lengths
    /// (published signatures stay byte-identical to earlier releases').
    #[test]
    fn aws_lc_signs_the_bytes_dalek_makes() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..200usize {
            let mut seed = [0u8; 32];
            seed.iter_mut().for_each(|b| *b = next() as u8);
            let msg: Vec<u8> = (0..(i * 7) % 300).map(|_| next() as u8).collect();
            let dalek = SigningKey::from_bytes(&seed);
            let key = Seed::new(dalek.clone());
            assert!(key.aws.is_some(), "aws-lc took seed {i}");
            assert_eq!(key.sign(&msg), dalek.sign(&msg).to_bytes(), "seed {i}");
            dalek
                .verifying_key()
                .verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&key.sign(&msg)))
                .expect("verifies");
        }
    }
}
