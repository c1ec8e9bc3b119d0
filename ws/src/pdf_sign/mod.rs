//! The PDF's own signature, PAdES baseline B-B (ETSI EN 319 142-1): a detached
//! CMS SignedData (`/SubFilter /ETSI.CAdES.detached`) over the file's byte range,
//! made with the institution's X.509 certificate, so that PDF readers (Adobe,
//! poppler's `pdfsig`) show who signed it and that it is unchanged.
//!
//! - The renderer writes the signature field with placeholders (`render::pdf::
//!   SignatureSlot`); [`PdfSigner::sign`] fills in `/ByteRange` and `/Contents`
//!   in place, so the file is written once.
//! - ECDSA P-256 with SHA-256: what Adobe Acrobat and NSS (pdfsig) both accept,
//!   a tenth of RSA's cost per signature, and with RFC 6979 nonces deterministic:
//!   a retried job signs the same bytes. The claimed signing time is the
//!   dictionary's `/M` (the issued date, so that the PDF depends only on what it
//!   prints: a republished version is byte-identical), as PAdES asks: no CMS
//!   signing-time attribute. Signed attributes: content-type, message-digest and
//!   signing-certificate-v2 (the certificate's SHA-256, binding it to the signature).
//! - Every signature is checked with the certificate's key before it is written
//!   into the PDF; [`check`] verifies a whole signed PDF as a reader does
//!   (`testamur verify`, the tests).

pub mod check;
pub mod der;
mod ecdsa;

use std::path::Path;

use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::DecodePrivateKey as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use testamur_common::config::PdfSignatureConfig;

use crate::render::pdf::{SignatureSlot, BYTE_RANGE_PLACEHOLDER};

pub(crate) const OID_DATA: &str = "1.2.840.113549.1.7.1";
pub(crate) const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
pub(crate) const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
pub(crate) const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
pub(crate) const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
pub(crate) const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
pub(crate) const OID_SIGNING_CERT_V2: &str = "1.2.840.113549.1.9.16.2.47";

#[derive(Debug, thiserror::Error)]
pub enum PdfSignError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error(
        "the PDF signing key {path} is readable by group or others (anyone who can read it \
         can sign PDFs in your institution's name); run `chmod 600 {path}`"
    )]
    Permissions { path: String },
    #[error(
        "{path} is not an ECDSA P-256 private key in PKCS#8 PEM ({detail}); `testamur certs \
         init` makes a development one (pdf-signing.key)"
    )]
    Key { path: String, detail: String },
    #[error("{path} holds no certificate in PEM (-----BEGIN CERTIFICATE-----)")]
    NoCert { path: String },
    #[error("the first certificate of {path} is not an X.509 certificate of a P-256 key")]
    Cert { path: String },
    #[error(
        "the certificate in {cert} is not the certificate of the key in {key}: give the \
         signing certificate first in the file, then its chain"
    )]
    Mismatch { cert: String, key: String },
    #[error("the PDF has no signature field to fill in (a bug: it was rendered without one)")]
    NoSlot,
    #[error("the signature takes {need} bytes, more than the {room} reserved (a bug)")]
    TooBig { need: usize, room: usize },
    #[error("the PDF signature just made does not verify with the certificate's key (a fault: nothing was published)")]
    SelfCheck,
    #[error("the PDF signature could not be made: {0} (a fault: nothing was published)")]
    Sign(String),
}

/// Who signs PDFs, with what certificate chain.
pub struct PdfSigner {
    key: SigningKey,
    /// The signer's certificate, then the rest of its chain (DER).
    chain: Vec<Vec<u8>>,
    /// IssuerAndSerialNumber of the signer's certificate (DER).
    issuer_serial: Vec<u8>,
    cert_sha256: [u8; 32],
    /// The certificate's public key, parsed once by aws-lc, which checks every
    /// signature made.
    public: aws_lc_rs::signature::ParsedPublicKey,
}

impl PdfSigner {
    /// The signer ws.conf's `[pdf_signature]` describes.
    pub fn load(cfg: &PdfSignatureConfig) -> Result<Self, PdfSignError> {
        let (kp, cp) = (
            cfg.key.display().to_string(),
            cfg.cert.display().to_string(),
        );
        let read = |path: &str, e: &dyn std::fmt::Display| PdfSignError::Read {
            path: path.to_owned(),
            detail: e.to_string(),
        };
        if testamur_common::secret::group_or_other_access(&cfg.key).map_err(|e| read(&kp, &e))? {
            return Err(PdfSignError::Permissions { path: kp });
        }
        let pem = std::fs::read_to_string(&cfg.key).map_err(|e| read(&kp, &e))?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| PdfSignError::Key {
            path: kp.clone(),
            detail: e.to_string(),
        })?;
        let chain = read_certs(&cfg.cert)?;
        Self::new(key, chain).map_err(|e| match e {
            PdfSignError::Mismatch { .. } => PdfSignError::Mismatch {
                cert: cp.clone(),
                key: kp,
            },
            PdfSignError::Cert { .. } => PdfSignError::Cert { path: cp.clone() },
            other => other,
        })
    }

    /// `chain`: the signer's certificate (of `key`), then its chain, DER.
    pub fn new(key: SigningKey, chain: Vec<Vec<u8>>) -> Result<Self, PdfSignError> {
        let first = chain.first().ok_or(PdfSignError::NoCert {
            path: "the chain".into(),
        })?;
        let parts = der::cert_parts(first).ok_or(PdfSignError::Cert {
            path: "the certificate".into(),
        })?;
        let public = parts
            .public_key
            .strip_prefix(&[0])
            .and_then(|k| VerifyingKey::from_sec1_bytes(k).ok())
            .ok_or(PdfSignError::Cert {
                path: "the certificate".into(),
            })?;
        if &public != key.verifying_key() {
            return Err(PdfSignError::Mismatch {
                cert: "the certificate".into(),
                key: "the key".into(),
            });
        }
        Ok(Self {
            issuer_serial: der::seq(&[parts.issuer, parts.serial]),
            cert_sha256: Sha256::digest(first).into(),
            public: aws_lc_rs::signature::ParsedPublicKey::new(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
                &parts.public_key[1..],
            )
            .map_err(|_| PdfSignError::Cert {
                path: "the certificate".into(),
            })?,
            chain,
            key,
        })
    }

    /// SHA-256 of the signing certificate, hex (what `GET /verify` shows).
    pub fn cert_sha256_hex(&self) -> String {
        hex::encode(self.cert_sha256)
    }

    /// The signature field the renderer leaves for [`PdfSigner::sign`].
    pub fn slot(&self, time: [u16; 6]) -> SignatureSlot {
        // The certificates, the attributes (~170 bytes), the ECDSA signature
        // (at most 72) and the structure around them, with room to spare.
        let certs: usize = self.chain.iter().map(Vec::len).sum();
        SignatureSlot {
            time,
            contents_len: certs + 512,
        }
    }

    /// Signs a PDF rendered with [`PdfSigner::slot`]'s field, in place.
    pub fn sign(&self, pdf: &mut [u8]) -> Result<(), PdfSignError> {
        let range_at = find(pdf, BYTE_RANGE_PLACEHOLDER).ok_or(PdfSignError::NoSlot)?;
        let after = range_at + BYTE_RANGE_PLACEHOLDER.len();
        // `/Contents <...>` follows the byte range.
        let open = find(&pdf[after..], b"/Contents <")
            .map(|i| after + i + b"/Contents ".len())
            .ok_or(PdfSignError::NoSlot)?;
        let close = pdf[open..]
            .iter()
            .position(|&b| b == b'>')
            .map(|i| open + i + 1)
            .ok_or(PdfSignError::NoSlot)?;
        let range = [0, open, close, pdf.len() - close];
        let text = format!("/ByteRange [0 {} {} {}]", range[1], range[2], range[3]);
        let mut field = vec![b' '; BYTE_RANGE_PLACEHOLDER.len()];
        field[..text.len() - 1].copy_from_slice(&text.as_bytes()[..text.len() - 1]);
        *field.last_mut().ok_or(PdfSignError::NoSlot)? = b']';
        pdf[range_at..after].copy_from_slice(&field);

        let mut h = Sha256::new();
        h.update(&pdf[..open]);
        h.update(&pdf[close..]);
        let cms = self.cms(&h.finalize())?;
        let room = (close - open - 2) / 2;
        if cms.len() > room {
            return Err(PdfSignError::TooBig {
                need: cms.len(),
                room,
            });
        }
        let hex = hex::encode_upper(&cms);
        pdf[open + 1..open + 1 + hex.len()].copy_from_slice(hex.as_bytes());
        pdf[open + 1 + hex.len()..close - 1].fill(b'0');
        Ok(())
    }

    /// The CMS SignedData over a byte range's SHA-256. Its signature is checked
    /// with the certificate's key (by aws-lc's ECDSA verification: the signing
    /// side shares only aws-lc's multiplication of the generator) before it is
    /// returned: a faulty deterministic ECDSA signature can give the key
    /// away, and a wrong one must never be published.
    fn cms(&self, digest: &[u8]) -> Result<Vec<u8>, PdfSignError> {
        let sha256 = der::seq(&[&der::oid(OID_SHA256)]);
        let attrs = signed_attributes(digest, &self.cert_sha256);
        // Signed over as a SET OF (tag 0x31), stored as [0] IMPLICIT.
        let signature: Signature = ecdsa::sign(self.key.as_nonzero_scalar(), &attrs)
            .map_err(|e| PdfSignError::Sign(e.to_string()))?;
        self.public
            .verify_sig(&attrs, signature.to_der().as_bytes())
            .map_err(|_| PdfSignError::SelfCheck)?;
        let mut stored_attrs = attrs;
        stored_attrs[0] = 0xa0;
        let signer_info = der::seq(&[
            &der::int(1),
            &self.issuer_serial,
            &sha256,
            &stored_attrs,
            &der::seq(&[&der::oid(OID_ECDSA_SHA256)]),
            &der::octets(signature.to_der().as_bytes()),
        ]);
        let signed_data = der::seq(&[
            &der::int(1),
            &der::tlv(0x31, &sha256),
            &der::seq(&[&der::oid(OID_DATA)]),
            &der::tlv(0xa0, &self.chain.concat()),
            &der::tlv(0x31, &signer_info),
        ]);
        Ok(der::seq(&[
            &der::oid(OID_SIGNED_DATA),
            &der::tlv(0xa0, &signed_data),
        ]))
    }
}

/// The signed attributes, DER-encoded as a SET OF: content-type (data),
/// message-digest, signing-certificate-v2 (ESSCertIDv2 with the default SHA-256).
pub(crate) fn signed_attributes(digest: &[u8], cert_sha256: &[u8]) -> Vec<u8> {
    let attr = |oid: &str, value: Vec<u8>| der::seq(&[&der::oid(oid), &der::tlv(0x31, &value)]);
    der::set_of(vec![
        attr(OID_CONTENT_TYPE, der::oid(OID_DATA)),
        attr(OID_MESSAGE_DIGEST, der::octets(digest)),
        attr(
            OID_SIGNING_CERT_V2,
            der::seq(&[&der::seq(&[&der::seq(&[&der::octets(cert_sha256)])])]),
        ),
    ])
}

/// The certificates of a PEM file, in order.
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, PdfSignError> {
    let p = || path.display().to_string();
    let certs: Vec<Vec<u8>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| PdfSignError::Read {
            path: p(),
            detail: e.to_string(),
        })?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| PdfSignError::Read {
            path: p(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PdfSignError::NoCert { path: p() });
    }
    Ok(certs)
}

/// Where `needle` first is in `hay` (SIMD substring search).
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate as far as a signature reads one (issuer, serial, key),
    /// unsigned: the checks here are the signature's, not the chain's.
    fn cert_of(key: &SigningKey) -> Vec<u8> {
        let point = key.verifying_key().to_sec1_point(false);
        let alg = der::seq(&[&der::oid(OID_ECDSA_SHA256)]);
        let name = der::seq(&[]);
        let spki = der::seq(&[
            &der::seq(&[
                &der::oid("1.2.840.10045.2.1"),
                &der::oid("1.2.840.10045.3.1.7"),
            ]),
            &der::tlv(0x03, &[&[0u8][..], point.as_bytes()].concat()),
        ]);
        let tbs = der::seq(&[
            &der::tlv(0xa0, &der::int(2)),
            &der::int(7),
            &alg,
            &name,
            &der::seq(&[]),
            &name,
            &spki,
        ]);
        der::seq(&[&tbs, &alg, &der::tlv(0x03, &[0])])
    }

    fn slotted(contents_len: usize) -> Vec<u8> {
        let mut pdf = b"%PDF-1.7\n1 0 obj\n<< /Type /Sig /M (D:20261203101500Z) ".to_vec();
        pdf.extend_from_slice(BYTE_RANGE_PLACEHOLDER);
        pdf.extend_from_slice(b"\n  /Contents <");
        pdf.extend(std::iter::repeat_n(b'8', contents_len * 2));
        pdf.extend_from_slice(b"> >>\nendobj\n%%EOF\n");
        pdf
    }

    #[test]
    fn a_signed_pdf_checks_deterministically_and_any_change_does_not() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let signer = PdfSigner::new(key.clone(), vec![cert_of(&key)]).unwrap();
        let room = signer.slot([2026, 12, 3, 10, 15, 0]).contents_len;
        let mut a = slotted(room);
        signer.sign(&mut a).unwrap();
        let ok = check::check(&a).unwrap();
        assert_eq!(ok.signed_at.as_deref(), Some("D:20261203101500Z"));
        // RFC 6979: the same bytes sign the same way.
        let mut b = slotted(room);
        signer.sign(&mut b).unwrap();
        assert_eq!(a, b);
        // A byte changed, bytes appended, no signature at all.
        let mut changed = a.clone();
        changed[3] ^= 1;
        assert!(matches!(
            check::check(&changed),
            Err(check::CheckError::Changed(_))
        ));
        let mut longer = a.clone();
        longer.extend_from_slice(b"% more\n");
        assert!(matches!(
            check::check(&longer),
            Err(check::CheckError::Changed(_))
        ));
        assert_eq!(
            check::check(b"%PDF-1.7\n%%EOF\n").unwrap_err(),
            check::CheckError::Unsigned
        );
        // Another key's certificate in the signature: refused when loading.
        let other = SigningKey::from_slice(&[8u8; 32]).unwrap();
        assert!(matches!(
            PdfSigner::new(key, vec![cert_of(&other)]),
            Err(PdfSignError::Mismatch { .. })
        ));
        // Too little room is an error, never a truncated signature.
        let mut small = slotted(16);
        assert!(matches!(
            signer.sign(&mut small),
            Err(PdfSignError::TooBig { .. })
        ));
    }

    #[test]
    fn a_key_others_can_read_is_refused_with_the_command_that_fixes_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("pdf-signing.key");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cfg = PdfSignatureConfig {
            cert: dir.path().join("pdf-signing.pem"),
            key: key.clone(),
        };
        let err = PdfSigner::load(&cfg).err().unwrap().to_string();
        assert!(
            err.contains("chmod 600") && err.contains("pdf-signing.key"),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = PdfSigner::load(&cfg).err().unwrap().to_string();
        assert!(err.contains("not an ECDSA P-256 private key"), "{err}");
    }
}
