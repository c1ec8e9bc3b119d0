//! Checking a PDF's own signature offline (`testamur verify CERT.pdf`): the byte
//! range covers the whole file but the signature itself, its SHA-256 is the
//! signed message-digest attribute, and the ECDSA P-256 signature over the signed
//! attributes is by the key of the certificate the signer info names. Whether
//! that certificate is one to trust is the PDF reader's question (its CA);
//! `pdfsig` with the CA in an NSS database answers it (the tests do).

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use sha2::{Digest, Sha256};

use super::der::{self, Tlv};
use super::{find, OID_ECDSA_SHA256, OID_MESSAGE_DIGEST, OID_SIGNED_DATA};

/// What a signature that verified says.
#[derive(Debug)]
pub struct Checked {
    /// SHA-256 of the signer's certificate (hex).
    pub cert_sha256: String,
    /// The claimed signing time (`/M`), as written.
    pub signed_at: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckError {
    #[error("the PDF carries no signature (no /ByteRange)")]
    Unsigned,
    #[error("the signature is not one testamur makes ({0})")]
    Shape(String),
    #[error("the PDF was changed after it was signed ({0})")]
    Changed(String),
    #[error("the signature does not verify: {0}")]
    Invalid(String),
}

fn shape(s: impl Into<String>) -> CheckError {
    CheckError::Shape(s.into())
}

/// Checks the one signature of `pdf`.
pub fn check(pdf: &[u8]) -> Result<Checked, CheckError> {
    let at = find(pdf, b"/ByteRange [").ok_or(CheckError::Unsigned)? + b"/ByteRange [".len();
    let end = pdf[at..]
        .iter()
        .position(|&b| b == b']')
        .ok_or_else(|| shape("an unterminated /ByteRange"))?;
    let nums: Vec<usize> = std::str::from_utf8(&pdf[at..at + end])
        .map_err(|_| shape("a /ByteRange that is not numbers"))?
        .split_ascii_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| shape("a /ByteRange that is not numbers"))?;
    let [0, a, b, c] = nums[..] else {
        return Err(shape("a /ByteRange that is not [0 a b c]"));
    };
    if a >= b || b.checked_add(c) != Some(pdf.len()) {
        return Err(CheckError::Changed(
            "the signed byte range is not the whole file: bytes were added or removed".into(),
        ));
    }
    if pdf.get(a) != Some(&b'<') || pdf.get(b - 1) != Some(&b'>') {
        return Err(shape(
            "the byte range leaves out something else than /Contents",
        ));
    }
    let cms = hex::decode(&pdf[a + 1..b - 1]).map_err(|_| shape("/Contents is not hex"))?;
    let mut h = Sha256::new();
    h.update(&pdf[..a]);
    h.update(&pdf[b..]);
    let digest = h.finalize();

    let (info, _) = der::read(&cms).ok_or_else(|| shape("/Contents is not DER"))?;
    let info = kids(info)?;
    if info.first().map(|t| t.raw) != Some(&der::oid(OID_SIGNED_DATA)[..]) {
        return Err(shape("not a CMS SignedData"));
    }
    let signed = kids(*child(&kids(*child(&info, 1)?)?, 0)?)?;
    let certs = signed
        .iter()
        .find(|t| t.tag == 0xa0)
        .map(|t| der::children(t.content))
        .ok_or_else(|| shape("no certificates"))?
        .ok_or_else(|| shape("bad certificates"))?;
    let infos = kids(*signed.last().ok_or_else(|| shape("no signer"))?)?;
    let si = kids(*child(&infos, 0)?)?;
    let [_, sid, _, attrs, alg, sig] = si[..] else {
        return Err(shape("a signer info of another shape"));
    };
    if attrs.tag != 0xa0
        || der::children(alg.content).and_then(|a| a.first().map(|o| o.raw.to_vec()))
            != Some(der::oid(OID_ECDSA_SHA256))
    {
        return Err(shape("not ECDSA with SHA-256 over signed attributes"));
    }
    // The message digest it signed must be this file's.
    let mut signed_digest = None;
    for a in kids(attrs)? {
        let a = kids(a)?;
        if child(&a, 0)?.raw == der::oid(OID_MESSAGE_DIGEST) {
            signed_digest = Some(kids(*child(&a, 1)?)?.first().map(|d| d.content.to_vec()));
        }
    }
    if signed_digest.flatten().as_deref() != Some(&digest[..]) {
        return Err(CheckError::Changed(
            "the file's SHA-256 is not the one signed: it was changed after signing".into(),
        ));
    }
    // The certificate the signer info names, and its key.
    let cert = certs
        .iter()
        .find(|c| {
            der::cert_parts(c.raw).is_some_and(|p| der::seq(&[p.issuer, p.serial]) == sid.raw)
        })
        .ok_or_else(|| shape("the signer's certificate is not in the signature"))?;
    let parts = der::cert_parts(cert.raw).ok_or_else(|| shape("a bad certificate"))?;
    let point = parts
        .public_key
        .strip_prefix(&[0])
        .ok_or_else(|| shape("the signer's key is not an EC point"))?;
    let mut message = attrs.raw.to_vec();
    message[0] = 0x31;
    // aws-lc (the TLS stack's) checks the point is on P-256 and the signature.
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(&message, sig.content)
        .map_err(|_| {
            CheckError::Invalid(
                "the signature is not its certificate's (P-256) key's over this file".into(),
            )
        })?;
    Ok(Checked {
        cert_sha256: hex::encode(Sha256::digest(cert.raw)),
        signed_at: signing_time(pdf),
    })
}

/// The `/M` of the signature dictionary.
fn signing_time(pdf: &[u8]) -> Option<String> {
    let at = find(pdf, b"/M (")? + 4;
    let end = pdf[at..].iter().position(|&b| b == b')')?;
    String::from_utf8(pdf[at..at + end].to_vec()).ok()
}

fn kids(t: Tlv<'_>) -> Result<Vec<Tlv<'_>>, CheckError> {
    der::children(t.content).ok_or_else(|| shape("bad DER"))
}

fn child<'a, 'b>(v: &'b [Tlv<'a>], i: usize) -> Result<&'b Tlv<'a>, CheckError> {
    v.get(i).ok_or_else(|| shape("a CMS structure too short"))
}
