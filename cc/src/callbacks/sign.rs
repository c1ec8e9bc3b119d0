//! Callback signatures: `X-Testamur-Signature: sha256=<hex HMAC-SHA256 of the raw
//! body>`, keyed with the callback secret of the API key that made the request.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header value for `body`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    /// RFC 4231 test case 2.
    #[test]
    fn matches_rfc_4231() {
        assert_eq!(
            super::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
