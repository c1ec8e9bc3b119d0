//! Multibase base58-btc (`z…`) and the multicodec prefix of Ed25519 public keys:
//! how `did:key`, `Multikey` documents and Data Integrity proof values write
//! keys and signatures.

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// The multicodec varint of `ed25519-pub` (0xed).
pub const ED25519_PUB: [u8; 2] = [0xed, 0x01];

/// Base58 (Bitcoin alphabet) of `bytes`: leading zero bytes as `1`s.
pub fn base58(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    // Digits base 58, least significant first.
    let mut digits: Vec<u8> = Vec::with_capacity(bytes.len() * 138 / 100 + 1);
    for &b in &bytes[zeros..] {
        let mut carry = b as u32;
        for d in digits.iter_mut() {
            carry += (*d as u32) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(digits.iter().rev().map(|d| ALPHABET[*d as usize] as char));
    out
}

/// The bytes of a base58 string; `None` for a character outside the alphabet.
pub fn unbase58(s: &str) -> Option<Vec<u8>> {
    let zeros = s.bytes().take_while(|c| *c == b'1').count();
    let mut bytes: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.bytes().skip(zeros) {
        let mut carry = ALPHABET.iter().position(|a| *a == c)? as u32;
        for b in bytes.iter_mut() {
            carry += (*b as u32) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let mut out = vec![0u8; zeros];
    out.extend(bytes.iter().rev());
    Some(out)
}

/// Multibase base58-btc: `z` and the base58 of `bytes`.
pub fn z(bytes: &[u8]) -> String {
    format!("z{}", base58(bytes))
}

/// The bytes of a multibase base58-btc string (`z…`).
pub fn unz(s: &str) -> Option<Vec<u8>> {
    unbase58(s.strip_prefix('z')?)
}

/// An Ed25519 public key as a multikey (`z6Mk…`): what `did:key` and a
/// `Multikey`'s `publicKeyMultibase` hold.
pub fn ed25519_multikey(public: &[u8; 32]) -> String {
    let mut b = ED25519_PUB.to_vec();
    b.extend_from_slice(public);
    z(&b)
}

/// The Ed25519 public key in a multikey, if it is one.
pub fn ed25519_from_multikey(s: &str) -> Option<[u8; 32]> {
    let b = unz(s)?;
    let key = b.strip_prefix(&ED25519_PUB[..])?;
    key.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_matches_known_values() {
        // From the base58 draft (draft-msporny-base58) and Bitcoin's test vectors.
        assert_eq!(base58(b"Hello World!"), "2NEpo7TZRRrLZSi2U");
        assert_eq!(
            base58(b"The quick brown fox jumps over the lazy dog."),
            "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z"
        );
        assert_eq!(base58(&[0, 0, 0x28, 0x7f, 0xb4, 0xcd]), "11233QC4");
        assert_eq!(base58(&[]), "");
        for v in [
            &b"Hello World!"[..],
            &[0, 0, 0x28, 0x7f, 0xb4, 0xcd],
            &[0],
            &[],
        ] {
            assert_eq!(unbase58(&base58(v)).as_deref(), Some(v));
        }
        assert_eq!(unbase58("0OIl"), None);
    }

    #[test]
    fn an_ed25519_multikey_starts_z6mk() {
        // did:key's specification example (test vector of did-method-key).
        let k = "z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
        let public = ed25519_from_multikey(k).unwrap();
        assert_eq!(ed25519_multikey(&public), k);
        assert_eq!(
            ed25519_from_multikey("zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"),
            None
        );
    }
}
