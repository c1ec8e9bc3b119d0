//! Deterministic ECDSA P-256 signatures (RFC 6979) whose one expensive step,
//! the nonce's point `k×G`, is computed by aws-lc's P-256 assembly instead of
//! p256's portable arithmetic: a PDF signature was ~9 % of a certificate's CPU
//! time, most of it that multiplication (docs/PERFORMANCE.md).
//!
//! Everything else is p256's and the `rfc6979` crate's, exactly as
//! `p256::ecdsa::SigningKey::sign` does it (the tests check that both give the
//! same bytes): `k` from the HMAC-DRBG of RFC 6979 over the key and the message's
//! SHA-256, `r = x(k×G) mod n`, `s = k⁻¹(z + r·d) mod n`, no low-S normalisation
//! (P-256's convention). aws-lc's `EC_POINT_mul` with the generator is its
//! constant-time fixed-base multiplication; the nonce's bytes are wiped from its
//! big number when done. The caller still checks every signature with the public
//! key before it is used ([`super::PdfSigner::sign`]).

use std::ptr;

use aws_lc_sys as lc;
use ecdsa::DigestAlgorithm;
use p256::elliptic_curve::ops::{Invert, Reduce};
use p256::elliptic_curve::{Curve as _, PrimeField as _};
use p256::{FieldBytes, NistP256, NonZeroScalar, Scalar, U256};
use sha2::{Digest as _, Sha256};

use p256::ecdsa::Signature;

/// The digest RFC 6979's DRBG runs on: p256's SHA-256 (the `digest` version the
/// `rfc6979` crate takes).
type Drbg = <NistP256 as DigestAlgorithm>::Digest;

/// Why no signature was made: aws-lc refused a step (out of memory).
#[derive(Debug)]
pub struct EcdsaError(&'static str);

impl std::fmt::Display for EcdsaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "aws-lc failed to {}", self.0)
    }
}

/// Signs `msg` (hashed here with SHA-256) with `d`.
pub fn sign(d: &NonZeroScalar, msg: &[u8]) -> Result<Signature, EcdsaError> {
    let z: [u8; 32] = Sha256::digest(msg).into();
    let order = NistP256::ORDER;
    let mut kgen = rfc6979::KGenerator::<Drbg, U256>::new(&d.to_repr(), &z, &[], &order);
    let z = <Scalar as Reduce<U256>>::reduce(&U256::from_be_slice(&z));
    loop {
        let mut k_bytes = FieldBytes::default();
        kgen.fill_next_k(&mut k_bytes);
        let Some(k) = NonZeroScalar::from_repr(k_bytes).into_option() else {
            continue;
        };
        let x = base_mul_x(&k_bytes);
        k_bytes.fill(0);
        let x = x?;
        let r = <Scalar as Reduce<U256>>::reduce(&U256::from_be_slice(&x));
        let s = *<NonZeroScalar as Invert>::invert(&k) * (z + r * d.as_ref());
        // Zero r or s (probability ~2⁻²⁵⁶): the next k, as RFC 6979 says.
        if let Ok(sig) = Signature::from_scalars(r, s) {
            return Ok(sig);
        }
    }
}

/// The x coordinate (big-endian) of `k×G` on P-256, by aws-lc.
fn base_mul_x(k: &[u8]) -> Result<[u8; 32], EcdsaError> {
    // SAFETY: every pointer is checked for null right after it is made and freed
    // exactly once on every path (the guards); the group is aws-lc's static P-256
    // group, never freed; the buffers passed have the lengths given.
    unsafe {
        let group = lc::EC_group_p256();
        if group.is_null() {
            return Err(EcdsaError("give its P-256 group"));
        }
        let scalar = Bn(lc::BN_bin2bn(k.as_ptr(), k.len(), ptr::null_mut()));
        let point = Point(lc::EC_POINT_new(group));
        let x = Bn(lc::BN_new());
        if scalar.0.is_null() || point.0.is_null() || x.0.is_null() {
            return Err(EcdsaError("allocate"));
        }
        if lc::EC_POINT_mul(
            group,
            point.0,
            scalar.0,
            ptr::null(),
            ptr::null(),
            ptr::null_mut(),
        ) != 1
        {
            return Err(EcdsaError("multiply the generator"));
        }
        if lc::EC_POINT_get_affine_coordinates_GFp(
            group,
            point.0,
            x.0,
            ptr::null_mut(),
            ptr::null_mut(),
        ) != 1
        {
            return Err(EcdsaError("give the point's coordinates"));
        }
        let mut out = [0u8; 32];
        if lc::BN_bn2bin_padded(out.as_mut_ptr(), out.len(), x.0) != 1 {
            return Err(EcdsaError("write the coordinate"));
        }
        Ok(out)
    }
}

/// An aws-lc big number, wiped and freed when dropped.
struct Bn(*mut lc::BIGNUM);

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: made by BN_new/BN_bin2bn (or null, which BN_clear_free accepts).
        unsafe { lc::BN_clear_free(self.0) }
    }
}

/// An aws-lc point, freed when dropped.
struct Point(*mut lc::EC_POINT);

impl Drop for Point {
    fn drop(&mut self) {
        // SAFETY: made by EC_POINT_new (or null, which EC_POINT_free accepts).
        unsafe { lc::EC_POINT_free(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::SigningKey;

    #[test]
    fn signatures_are_the_bytes_p256_itself_makes() {
        for seed in 1u8..=40 {
            let key = SigningKey::from_slice(&[seed; 32]).unwrap();
            for len in [0usize, 1, 55, 56, 64, 170, 1000] {
                let msg: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
                let ours = sign(key.as_nonzero_scalar(), &msg).unwrap();
                let theirs: Signature = key.sign(&msg);
                assert_eq!(ours, theirs, "key {seed}, message of {len} bytes");
            }
        }
    }

    #[test]
    fn the_rfc_6979_test_vector_for_p256_sha256() {
        // RFC 6979 A.2.5, message "sample".
        let d = hex::decode("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
            .unwrap();
        let key = SigningKey::from_slice(&d).unwrap();
        let sig = sign(key.as_nonzero_scalar(), b"sample").unwrap();
        assert_eq!(
            hex::encode_upper(sig.to_bytes()),
            "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716\
             F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
        );
    }
}
