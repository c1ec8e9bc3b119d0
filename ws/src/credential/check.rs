//! Checking a credential offline (`testamur verify --credential`): the proof of a
//! credential testamur issued, against the issuer's key (from the `did:key`
//! itself, or from the `did:web` DID document given as a file: nothing is fetched).
//!
//! This is not a general JSON-LD processor. The credential's facts (learner,
//! course, issuer, dates, ids) are read from it, the credential is built again
//! from them exactly as the workserver builds it (`document::document`), and
//! it must be equal, member for member, to the one given: then its RDF statements
//! are the ones we build, and the proof is checked over their canonical form. A
//! credential of any other shape is refused as such (`Shape`), never reported
//! valid; an independent verifier (Digital Bazaar's, as the tests run) checks
//! those.
//!
//! A status list credential (`--status-list`) is checked the same way (rebuilt
//! from its facts, its proof by the credential's issuer), then the credential's
//! bit in it is read.

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Map, Value};
use testamur_common::config::IssuerDid;
use testamur_common::ids::PublicUuid;

use super::did::IssuerId;
use super::document::{self, Facts, StatusRef, CRYPTOSUITE_NAME};
use super::{multibase, status_list, Issuer};
use testamur_common::status_list::{bit, STATUS_LIST_SIZE};

/// What a credential that verified says.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub id: String,
    pub issuer: String,
    pub learner: String,
    pub course: String,
    pub valid_from: String,
    /// Its entry in a status list, if it has one.
    pub status: Option<StatusRef>,
}

/// What a status list says of a credential that verified.
#[derive(Debug, PartialEq, Eq)]
pub struct Status {
    pub revoked: bool,
    /// When the list was made (its `validFrom`): it says nothing of later changes.
    pub as_of: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("not a credential: {0}")]
    NotJson(String),
    #[error(
        "not a credential as testamur issues it ({0}); this check knows only testamur's \
         credentials: use a general Verifiable Credentials verifier for others"
    )]
    Shape(String),
    #[error("cannot find the issuer's key: {0}")]
    Key(String),
    #[error("the proof does not verify: {0}")]
    Invalid(String),
}

fn shape(what: impl Into<String>) -> CheckError {
    CheckError::Shape(what.into())
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, CheckError> {
    let mut at = v;
    for p in path {
        at = at
            .get(p)
            .ok_or_else(|| shape(format!("no {}", path.join("."))))?;
    }
    at.as_str()
        .ok_or_else(|| shape(format!("{} is not a string", path.join("."))))
}

/// Checks a credential (the published JSON) and, for a `did:web` issuer, against
/// its DID document (the JSON published at the URL the DID resolves to).
pub fn check(json: &[u8], did_document: Option<&[u8]>) -> Result<Checked, CheckError> {
    let (doc, proof) = split(json, "credential")?;
    let p = Proof::of(&proof)?;
    let did = text(&doc, &["issuer", "id"])?;
    let (id, public) = signer(did, p.method, did_document)?;
    let created = p.created;

    // The facts, read back; then the credential they give must be this one.
    let cred_id = text(&doc, &["id"])?;
    let verify_uuid = cred_id
        .strip_prefix("urn:uuid:")
        .and_then(|u| PublicUuid::parse(u).ok())
        .ok_or_else(|| shape(format!("the id {cred_id:?} is not urn:uuid:<uuid>")))?;
    let course_name = text(&doc, &["name"])?;
    let org = doc
        .get("issuer")
        .and_then(|i| i.get("name"))
        .and_then(Value::as_str);
    let valid_from = text(&doc, &["validFrom"])?;
    let issued_date = valid_from
        .strip_suffix("T00:00:00Z")
        .ok_or_else(|| shape("validFrom is not a date at midnight UTC"))?;
    let achievement = doc
        .get("credentialSubject")
        .and_then(|s| s.get("achievement"))
        .ok_or_else(|| shape("no credentialSubject.achievement"))?;
    let noun = text(achievement, &["description"])?
        .strip_suffix(&format!(" for {course_name}"))
        .ok_or_else(|| shape("the achievement's description does not name the course"))?;
    let narrative = text(achievement, &["criteria", "narrative"])?;
    let tail = match org {
        Some(org) => format!(") at {org}."),
        None => ").".to_owned(),
    };
    let course_id = narrative
        .strip_prefix(&format!("Completed {course_name} ("))
        .and_then(|n| n.strip_suffix(&tail))
        .ok_or_else(|| shape("the criteria do not name the course"))?;
    let status = match doc.get("credentialStatus") {
        None => None,
        Some(s) => Some(StatusRef {
            list_url: text(s, &["statusListCredential"])?.to_owned(),
            index: text(s, &["statusListIndex"])?
                .parse()
                .ok()
                .filter(|i| *i < STATUS_LIST_SIZE)
                .ok_or_else(|| shape("statusListIndex is not an index of a status list"))?,
        }),
    };
    let facts = Facts {
        verify_uuid: &verify_uuid,
        learner: text(&doc, &["credentialSubject", "name"])?,
        course_id,
        course_name,
        org,
        issued_date,
        signed_at: Some(created.to_owned()),
        noun,
        status,
    };
    let (rebuilt, statements) =
        document::document(&facts, &id).map_err(|e| shape(e.to_string()))?;
    if Value::Object(rebuilt) != doc {
        return Err(shape(
            "it has members, or values, that testamur's credential of the same facts has not",
        ));
    }
    p.verify(&proof, &statements, &public, "credential")?;
    Ok(Checked {
        id: cred_id.to_owned(),
        issuer: did.to_owned(),
        learner: facts.learner.to_owned(),
        course: course_name.to_owned(),
        valid_from: valid_from.to_owned(),
        status: facts.status,
    })
}

/// Checks a status list credential (the JSON published at the credential's
/// `statusListCredential`) issued by the checked credential's issuer, and reads
/// that credential's bit in it.
pub fn check_status(
    list: &[u8],
    checked: &Checked,
    did_document: Option<&[u8]>,
) -> Result<Status, CheckError> {
    let entry = checked
        .status
        .as_ref()
        .ok_or_else(|| shape("the credential has no credentialStatus: no list names it"))?;
    let (doc, proof) = split(list, "status list")?;
    let p = Proof::of(&proof)?;
    let url = text(&doc, &["id"])?;
    if url != entry.list_url {
        return Err(shape(format!(
            "this is the status list {url}; the credential's is {}",
            entry.list_url
        )));
    }
    let issuer = text(&doc, &["issuer"])?;
    if issuer != checked.issuer {
        return Err(CheckError::Key(format!(
            "the status list was issued by {issuer}, the credential by {}",
            checked.issuer
        )));
    }
    let (_, public) = signer(issuer, p.method, did_document)?;
    let valid_from = text(&doc, &["validFrom"])?;
    let encoded = text(&doc, &["credentialSubject", "encodedList"])?;
    let (rebuilt, statements) = status_list::document(&status_list::ListFacts {
        url,
        issuer,
        valid_from,
        encoded_list: encoded,
    });
    if Value::Object(rebuilt) != doc {
        return Err(shape(
            "it has members, or values, that testamur's status lists have not",
        ));
    }
    p.verify(&proof, &statements, &public, "status list")?;
    let bits = status_list::decode(encoded, (STATUS_LIST_SIZE / 8) as usize).map_err(shape)?;
    let revoked = bit(&bits, entry.index).ok_or_else(|| {
        shape(format!(
            "the list holds {} entries, not the credential's {}",
            bits.len() * 8,
            entry.index
        ))
    })?;
    Ok(Status {
        revoked,
        as_of: valid_from.to_owned(),
    })
}

/// A signed document's members without its proof, and the proof.
fn split(json: &[u8], what: &str) -> Result<(Value, Value), CheckError> {
    let mut given: Map<String, Value> = serde_json::from_slice(json)
        .map_err(|e| CheckError::NotJson(format!("the {what}: {e}")))?;
    let proof = given
        .remove("proof")
        .ok_or_else(|| shape(format!("no proof: the {what} is not signed")))?;
    Ok((Value::Object(given), proof))
}

/// A proof's members, of testamur's one kind of proof.
struct Proof<'a> {
    created: &'a str,
    method: &'a str,
    value: &'a str,
}

impl<'a> Proof<'a> {
    fn of(proof: &'a Value) -> Result<Self, CheckError> {
        if proof.get("type").and_then(Value::as_str) != Some("DataIntegrityProof")
            || proof.get("cryptosuite").and_then(Value::as_str) != Some(CRYPTOSUITE_NAME)
        {
            return Err(shape(format!(
                "the proof is not a DataIntegrityProof of {CRYPTOSUITE_NAME}"
            )));
        }
        Ok(Self {
            created: text(proof, &["created"])?,
            method: text(proof, &["verificationMethod"])?,
            value: text(proof, &["proofValue"])?,
        })
    }

    /// The proof (as given) is testamur's, over `statements`, by `public`.
    fn verify(
        &self,
        proof: &Value,
        statements: &[super::rdf::Quad],
        public: &VerifyingKey,
        what: &str,
    ) -> Result<(), CheckError> {
        let (mut options_json, options) = document::proof_options(self.created, self.method);
        options_json.insert("proofValue".into(), self.value.into());
        if &Value::Object(options_json) != proof {
            return Err(shape("its proof has other members than testamur's proofs"));
        }
        let hash = Issuer::hash_data(statements, &options).map_err(|e| shape(e.to_string()))?;
        let signature = multibase::unz(self.value)
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| {
                CheckError::Invalid("proofValue is not a base58-btc Ed25519 signature".into())
            })?;
        public.verify_strict(&hash, &signature).map_err(|_| {
            CheckError::Invalid(format!(
                "the signature is not the issuer's over this {what}: it was changed after \
                 it was signed, or signed by another key"
            ))
        })
    }
}

/// The issuer's identifier and key for a proof made with `method`.
fn signer(
    did: &str,
    method: &str,
    did_document: Option<&[u8]>,
) -> Result<(IssuerId, VerifyingKey), CheckError> {
    let public = issuer_key(did, method, did_document)?;
    let issuer_did = match did.starts_with("did:key:") {
        true => IssuerDid::Key,
        false => IssuerDid::Web {
            did: did.to_owned(),
            document_path: String::new(),
        },
    };
    let id = IssuerId::new(issuer_did, public.as_bytes());
    if id.did != did || id.verification_method != method {
        return Err(CheckError::Key(format!(
            "the proof names {method}, which is not a key of {did}"
        )));
    }
    Ok((id, public))
}

/// The Ed25519 key of `method`: from a did:key identifier itself, or from the
/// did:web DID document, where it must be an assertion method of the DID.
fn issuer_key(
    did: &str,
    method: &str,
    did_document: Option<&[u8]>,
) -> Result<VerifyingKey, CheckError> {
    let key = |multikey: &str| {
        multibase::ed25519_from_multikey(multikey)
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(|| CheckError::Key(format!("{multikey:?} is not an Ed25519 Multikey")))
    };
    if let Some(multikey) = did.strip_prefix("did:key:") {
        return key(multikey);
    }
    if !did.starts_with("did:web:") {
        return Err(CheckError::Key(format!(
            "the issuer {did:?} is neither did:key nor did:web"
        )));
    }
    let bytes = did_document.ok_or_else(|| {
        CheckError::Key(format!(
            "the issuer is {did}: pass its DID document (--did-document did.json, the file \
             its did:web URL serves)"
        ))
    })?;
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| CheckError::Key(format!("the DID document is not JSON: {e}")))?;
    if doc.get("id").and_then(Value::as_str) != Some(did) {
        return Err(CheckError::Key(format!(
            "the DID document is not {did}'s (its id is {})",
            doc.get("id").unwrap_or(&Value::Null)
        )));
    }
    let asserts = doc
        .get("assertionMethod")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|m| m.as_str() == Some(method)));
    if !asserts {
        return Err(CheckError::Key(format!(
            "{method} is not an assertionMethod of the DID document (a retired key? add it \
             back to the document to check credentials it signed)"
        )));
    }
    let vm = doc
        .get("verificationMethod")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|m| m.get("id").and_then(Value::as_str) == Some(method))
        })
        .ok_or_else(|| CheckError::Key(format!("the DID document does not describe {method}")))?;
    if vm.get("controller").and_then(Value::as_str) != Some(did)
        || vm.get("type").and_then(Value::as_str) != Some("Multikey")
    {
        return Err(CheckError::Key(format!(
            "{method} is not a Multikey controlled by {did}"
        )));
    }
    key(vm
        .get("publicKeyMultibase")
        .and_then(Value::as_str)
        .ok_or_else(|| CheckError::Key(format!("{method} has no publicKeyMultibase")))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(vu: &PublicUuid) -> Facts<'_> {
        Facts {
            verify_uuid: vu,
            learner: "שרה לוי (Sarah) \"Q\"",
            course_id: "course-v1:X+(Y)+2026",
            course_name: "Intro (part 1) for all",
            org: Some("DemoX"),
            issued_date: "2026-11-23",
            signed_at: Some("2026-11-23T10:15:00Z".into()),
            noun: "Certificate",
            status: Some(StatusRef {
                list_url: "https://certs.example.org/status/0.json".into(),
                index: 94_567,
            }),
        }
    }

    fn web() -> IssuerDid {
        IssuerDid::Web {
            did: "did:web:certs.example.org".into(),
            document_path: ".well-known/did.json".into(),
        }
    }

    #[test]
    fn what_we_issue_checks_and_any_change_does_not() {
        let vu = PublicUuid::generate();
        let issuer = Issuer::from_seed(&[9; 32], IssuerDid::Key);
        let cred = issuer.issue(&facts(&vu)).unwrap();
        let ok = check(&cred, None).unwrap();
        assert_eq!(ok.id, format!("urn:uuid:{vu}"));
        assert_eq!(ok.learner, "שרה לוי (Sarah) \"Q\"");
        assert_eq!(ok.issuer, issuer.did());
        // Another learner: the shape holds, the signature does not.
        let text = String::from_utf8(cred.clone()).unwrap();
        let other = text.replace("(Sarah)", "(Mallory)");
        assert!(matches!(
            check(other.as_bytes(), None),
            Err(CheckError::Invalid(_))
        ));
        // A member more: refused as not ours (never valid).
        let mut v: Value = serde_json::from_slice(&cred).unwrap();
        v["credentialSubject"]["grade"] = "A".into();
        let extra = serde_json::to_vec(&v).unwrap();
        assert!(matches!(check(&extra, None), Err(CheckError::Shape(_))));
        // Another key's proof on this issuer's credential.
        let other_key = Issuer::from_seed(&[8; 32], IssuerDid::Key);
        let theirs: Value = serde_json::from_slice(&other_key.issue(&facts(&vu)).unwrap()).unwrap();
        let mut forged: Value = serde_json::from_slice(&cred).unwrap();
        forged["proof"]["proofValue"] = theirs["proof"]["proofValue"].clone();
        let forged = serde_json::to_vec(&forged).unwrap();
        assert!(matches!(check(&forged, None), Err(CheckError::Invalid(_))));
        assert!(matches!(check(b"{", None), Err(CheckError::NotJson(_))));
    }

    #[test]
    fn did_web_needs_the_document_that_lists_the_key() {
        let vu = PublicUuid::generate();
        let issuer = Issuer::from_seed(&[9; 32], web());
        let cred = issuer.issue(&facts(&vu)).unwrap();
        let (_, doc) = issuer.did_document().unwrap();
        assert!(check(&cred, Some(&doc)).is_ok());
        let err = check(&cred, None).unwrap_err();
        assert!(err.to_string().contains("--did-document"), "{err}");
        // The document of a rotated key does not vouch for the old one.
        let rotated = Issuer::from_seed(&[10; 32], web());
        let (_, newer) = rotated.did_document().unwrap();
        let err = check(&cred, Some(&newer)).unwrap_err();
        assert!(matches!(err, CheckError::Key(_)), "{err}");
        // Nor does another DID's document.
        let other = Issuer::from_seed(
            &[9; 32],
            IssuerDid::Web {
                did: "did:web:elsewhere.example".into(),
                document_path: ".well-known/did.json".into(),
            },
        );
        let (_, theirs) = other.did_document().unwrap();
        assert!(matches!(
            check(&cred, Some(&theirs)),
            Err(CheckError::Key(_))
        ));
    }

    #[test]
    fn a_status_list_tells_revoked_from_not_and_must_be_the_issuers_own() {
        let vu = PublicUuid::generate();
        let issuer = Issuer::from_seed(&[9; 32], IssuerDid::Key);
        let checked = check(&issuer.issue(&facts(&vu)).unwrap(), None).unwrap();
        let url = "https://certs.example.org/status/0.json";
        let mut bits = vec![0u8; 16_384];
        let clear = issuer
            .issue_status_list(url, &bits, "2026-12-03T10:00:00Z")
            .unwrap();
        bits[94_567 / 8] |= 0x80 >> (94_567 % 8);
        let set = issuer
            .issue_status_list(url, &bits, "2026-12-03T11:00:00Z")
            .unwrap();
        assert!(!check_status(&clear, &checked, None).unwrap().revoked);
        let s = check_status(&set, &checked, None).unwrap();
        assert!(s.revoked);
        assert_eq!(s.as_of, "2026-12-03T11:00:00Z");
        // The bits changed without a new proof.
        let mut forged: Value = serde_json::from_slice(&set).unwrap();
        let clear_v: Value = serde_json::from_slice(&clear).unwrap();
        forged["credentialSubject"]["encodedList"] =
            clear_v["credentialSubject"]["encodedList"].clone();
        let forged = serde_json::to_vec(&forged).unwrap();
        assert!(matches!(
            check_status(&forged, &checked, None),
            Err(CheckError::Invalid(_))
        ));
        // Another issuer's list, and another list.
        let other = Issuer::from_seed(&[8; 32], IssuerDid::Key);
        let theirs = other
            .issue_status_list(url, &bits, "2026-12-03T11:00:00Z")
            .unwrap();
        assert!(matches!(
            check_status(&theirs, &checked, None),
            Err(CheckError::Key(_))
        ));
        let elsewhere = issuer
            .issue_status_list(
                "https://certs.example.org/status/1.json",
                &bits,
                "2026-12-03T11:00:00Z",
            )
            .unwrap();
        assert!(matches!(
            check_status(&elsewhere, &checked, None),
            Err(CheckError::Shape(_))
        ));
    }
}
