//! The credential signing key: Ed25519, kept as a PKCS#8 PEM file (`PRIVATE
//! KEY`), the form `openssl genpkey -algorithm ed25519` and `testamur keygen`
//! write. Separate from the OpenPGP key: the two sign different formats and can
//! be rotated apart (a did:web issuer keeps its DID when its key changes).

use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::SigningKey;

/// RFC 8410's PKCS#8 v1 encoding of an Ed25519 private key, up to the 32-byte seed:
/// SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the credential key {path}: {detail}")]
    Read { path: String, detail: String },
    #[error(
        "the credential key {path} is readable by group or others (anyone who can read it \
         can issue credentials in your name); run `chmod 600 {path}`"
    )]
    Permissions { path: String },
    #[error(
        "the credential key {path} is not an Ed25519 private key in PKCS#8 PEM ({detail}); \
         make one with `testamur keygen --out DIR` (credential.key) or \
         `openssl genpkey -algorithm ed25519 -out credential.key`"
    )]
    Format { path: String, detail: String },
}

/// Reads an Ed25519 key from a PEM file only its owner may read.
pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
    let p = || path.display().to_string();
    let read = |detail: String| KeyError::Read { path: p(), detail };
    if testamur_common::secret::group_or_other_access(path).map_err(|e| read(e.to_string()))? {
        return Err(KeyError::Permissions { path: p() });
    }
    let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
    from_pem(&text).map_err(|detail| KeyError::Format { path: p(), detail })
}

/// The key in a PKCS#8 PEM text.
pub fn from_pem(text: &str) -> Result<SigningKey, String> {
    let body = text
        .split("-----BEGIN PRIVATE KEY-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END PRIVATE KEY-----").next())
        .ok_or("no -----BEGIN PRIVATE KEY----- block")?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("bad base64: {e}"))?;
    let seed = der
        .strip_prefix(&PKCS8_PREFIX[..])
        .filter(|s| s.len() == 32)
        .ok_or("not an RFC 8410 Ed25519 key (another algorithm, or a PKCS#8 v2 key)")?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| "bad length".to_owned())?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A new key as PKCS#8 PEM (from the operating system's random source).
pub fn generate_pem() -> Result<String, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    Ok(to_pem(&SigningKey::from_bytes(&seed)))
}

pub fn to_pem(key: &SigningKey) -> String {
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_openssl_writes() {
        // RFC 8410 section 10.3's example private key.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let k = from_pem(pem).unwrap();
        assert_eq!(
            hex::encode(k.as_bytes()),
            "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842"
        );
        assert_eq!(to_pem(&k), pem);
        assert_eq!(from_pem(&generate_pem().unwrap()).map(|_| ()), Ok(()));
        assert!(
            from_pem("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----")
                .unwrap_err()
                .contains("RFC 8410")
        );
        assert!(from_pem("").unwrap_err().contains("BEGIN"));
    }

    #[test]
    fn a_key_others_can_read_is_refused_with_the_command_that_fixes_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential.key");
        std::fs::write(&path, generate_pem().unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&path).is_ok());
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(load(&path), Err(KeyError::Format { .. })));
        let missing = load(&dir.path().join("absent.key")).unwrap_err();
        assert!(matches!(missing, KeyError::Read { .. }), "{missing}");
    }
}
