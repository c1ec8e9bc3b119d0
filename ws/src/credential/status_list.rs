//! The `BitstringStatusListCredential` of one status list (W3C Bitstring Status
//! List v1.0), built, like the badges (`document.rs`), as its JSON and its RDF
//! statements in one pass: `id` the URL it is published at, the issuer's DID,
//! `validFrom` when it was made, and a `BitstringStatusList` subject (purpose
//! revocation) whose `encodedList` is the list's bits, GZIP-compressed, in
//! multibase base64url. Signed with the same key and cryptosuite as the badges
//! (`Issuer::issue_status_list`); a verifier requires the two issuers to match.

use std::io::Write as _;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::document::{
    CONTEXT_VC2, CREDENTIAL_SUBJECT, ISSUER, REVOCATION, STATUS_PURPOSE, VALID_FROM,
    VERIFIABLE_CREDENTIAL,
};
use super::rdf::{Quad, Term, RDF_TYPE, XSD_DATETIME};
use super::CredentialError;

const STATUS_LIST_CREDENTIAL: &str =
    "https://www.w3.org/ns/credentials/status#BitstringStatusListCredential";
const STATUS_LIST: &str = "https://www.w3.org/ns/credentials/status#BitstringStatusList";
const ENCODED_LIST: &str = "https://www.w3.org/ns/credentials/status#encodedList";
const MULTIBASE: &str = "https://w3id.org/security#multibase";

/// What a status list credential says.
pub struct ListFacts<'a> {
    /// Where it is published (its `id`, the entries' `statusListCredential`).
    pub url: &'a str,
    pub issuer: &'a str,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub valid_from: &'a str,
    /// `u` + base64url of the GZIP of the bits.
    pub encoded_list: &'a str,
}

/// `encodedList` of a whole list's bytes.
pub fn encode(bitmap: &[u8]) -> Result<String, CredentialError> {
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    gz.write_all(bitmap)
        .and_then(|_| gz.finish())
        .map(|z| {
            format!(
                "u{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(z)
            )
        })
        .map_err(|e| CredentialError::Data(format!("the status list (gzip: {e})")))
}

/// The bytes of an `encodedList`, at most `max` of them.
pub fn decode(encoded: &str, max: usize) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let b64 = encoded
        .strip_prefix('u')
        .ok_or("encodedList is not multibase base64url (no leading 'u')")?;
    let z = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|e| format!("encodedList is not base64url: {e}"))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&z[..])
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("encodedList is not GZIP: {e}"))?;
    if out.len() > max {
        return Err(format!("encodedList holds more than {max} bytes"));
    }
    Ok(out)
}

/// The list credential without its proof, and its statements.
pub fn document(f: &ListFacts) -> (Map<String, Value>, Vec<Quad>) {
    let id = Term::iri(f.url);
    let subject = Term::iri(format!("{}#list", f.url));
    let mut g = vec![
        Quad {
            s: id.clone(),
            p: RDF_TYPE,
            o: Term::iri(VERIFIABLE_CREDENTIAL),
        },
        Quad {
            s: id.clone(),
            p: RDF_TYPE,
            o: Term::iri(STATUS_LIST_CREDENTIAL),
        },
        Quad {
            s: id.clone(),
            p: ISSUER,
            o: Term::iri(f.issuer),
        },
        Quad {
            s: id.clone(),
            p: VALID_FROM,
            o: Term::typed(f.valid_from, XSD_DATETIME),
        },
        Quad {
            s: id,
            p: CREDENTIAL_SUBJECT,
            o: subject.clone(),
        },
        Quad {
            s: subject.clone(),
            p: RDF_TYPE,
            o: Term::iri(STATUS_LIST),
        },
        Quad {
            s: subject.clone(),
            p: STATUS_PURPOSE,
            o: Term::str(REVOCATION),
        },
    ];
    g.push(Quad {
        s: subject,
        p: ENCODED_LIST,
        o: Term::typed(f.encoded_list, MULTIBASE),
    });
    let json = serde_json::json!({
        "@context": [CONTEXT_VC2],
        "id": f.url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": f.issuer,
        "validFrom": f.valid_from,
        "credentialSubject": {
            "id": format!("{}#list", f.url),
            // A string: verifiers match it by `type === "BitstringStatusList"`.
            "type": "BitstringStatusList",
            "statusPurpose": REVOCATION,
            "encodedList": f.encoded_list,
        },
    });
    let Value::Object(json) = json else {
        unreachable!("a JSON object literal")
    };
    (json, g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_iri_is_the_pinned_context() {
        let vc: Value =
            serde_json::from_str(include_str!("../../../contexts/credentials-v2.jsonld")).unwrap();
        let vc = &vc["@context"];
        let list = &vc["BitstringStatusList"]["@context"];
        let vcs = &vc["VerifiableCredential"]["@context"];
        assert_eq!(vc["BitstringStatusListCredential"], STATUS_LIST_CREDENTIAL);
        assert_eq!(vc["BitstringStatusList"]["@id"], STATUS_LIST);
        assert_eq!(list["encodedList"]["@id"], ENCODED_LIST);
        assert_eq!(list["encodedList"]["@type"], MULTIBASE);
        assert_eq!(list["statusPurpose"], STATUS_PURPOSE);
        assert_eq!(vcs["issuer"]["@id"], ISSUER);
        assert_eq!(vcs["validFrom"]["@id"], VALID_FROM);
        assert_eq!(vcs["credentialSubject"]["@id"], CREDENTIAL_SUBJECT);
    }

    #[test]
    fn the_encoded_list_gives_back_its_bits_and_refuses_more_than_a_list() {
        let mut bits = vec![0u8; 16_384];
        bits[0] = 0x80;
        bits[16_383] = 0x01;
        let e = encode(&bits).unwrap();
        assert!(e.starts_with('u') && !e.contains('=') && !e.contains('+'));
        assert_eq!(decode(&e, 16_384).unwrap(), bits);
        assert!(decode(&e, 16_383).unwrap_err().contains("more than"));
        assert!(decode("zabc", 10).is_err());
    }
}
