//! The `OpenBadgeCredential` of one published version, built twice from the same
//! facts in one pass: as the JSON that is published and as the RDF statements a
//! JSON-LD processor gets from that JSON with the pinned contexts
//! (`contexts/`), which the proof signs. Each property below names the IRI its
//! term expands to in those contexts; `tests::every_iri_is_the_pinned_contexts`
//! checks them against the context files, and the integration test has Digital
//! Bazaar's verifier (a real JSON-LD processor) check the signatures.
//!
//! Shape (OB 3.0 required fields and the learner's name):
//! credential `urn:uuid:{verify_uuid}`, types VerifiableCredential +
//! OpenBadgeCredential, `name` (the course), `issuer` (a Profile: the DID, the
//! org's name), `validFrom` (the issued date), `credentialSubject` (an
//! AchievementSubject: the learner's `name` as given, also as an IdentityObject
//! of type `name`, unhashed; the `achievement`: the course, with an id derived
//! from the issuer and the course id, name, description and criteria), and
//! `credentialStatus` (a BitstringStatusListEntry, purpose revocation: the
//! version's entry in its status list, `status_list.rs`) when the job gave one.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use testamur_common::ids::PublicUuid;

use super::did::IssuerId;
use super::rdf::{Quad, Term, RDF_TYPE, XSD_DATETIME};
use super::CredentialError;

pub const CONTEXT_VC2: &str = "https://www.w3.org/ns/credentials/v2";
pub const CONTEXT_OB3: &str = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json";

// IRIs by term (the context and scope that define each, as the test checks).
pub(super) const VERIFIABLE_CREDENTIAL: &str =
    "https://www.w3.org/2018/credentials#VerifiableCredential";
const OPEN_BADGE_CREDENTIAL: &str =
    "https://purl.imsglobal.org/spec/vc/ob/vocab.html#OpenBadgeCredential";
const PROFILE: &str = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#Profile";
const ACHIEVEMENT_SUBJECT: &str =
    "https://purl.imsglobal.org/spec/vc/ob/vocab.html#AchievementSubject";
const ACHIEVEMENT_TYPE: &str = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#Achievement";
const IDENTITY_OBJECT: &str = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#IdentityObject";
const NAME: &str = "https://schema.org/name";
const DESCRIPTION: &str = "https://schema.org/description";
pub(super) const ISSUER: &str = "https://www.w3.org/2018/credentials#issuer";
pub(super) const VALID_FROM: &str = "https://www.w3.org/2018/credentials#validFrom";
pub(super) const CREDENTIAL_SUBJECT: &str = "https://www.w3.org/2018/credentials#credentialSubject";
const ACHIEVEMENT: &str = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#achievement";
const IDENTIFIER: &str = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#identifier";
const IDENTITY_HASH: &str = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#identityHash";
const IDENTITY_TYPE: &str = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#identityType";
const HASHED: &str = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#hashed";
/// The OB context types `hashed` with this IRI (https, not XML Schema's http).
const OB_BOOLEAN: &str = "https://www.w3.org/2001/XMLSchema#boolean";
const CRITERIA: &str = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#Criteria";
const NARRATIVE: &str = "https://purl.imsglobal.org/spec/vc/ob/vocab.html#narrative";
// The proof's terms (VC 2.0 context, DataIntegrityProof's scope).
const DATA_INTEGRITY_PROOF: &str = "https://w3id.org/security#DataIntegrityProof";
const CREATED: &str = "http://purl.org/dc/terms/created";
const CRYPTOSUITE: &str = "https://w3id.org/security#cryptosuite";
const CRYPTOSUITE_STRING: &str = "https://w3id.org/security#cryptosuiteString";
const PROOF_PURPOSE: &str = "https://w3id.org/security#proofPurpose";
const ASSERTION_METHOD: &str = "https://w3id.org/security#assertionMethod";
const VERIFICATION_METHOD: &str = "https://w3id.org/security#verificationMethod";
// The status entry's terms (VC 2.0 context, BitstringStatusListEntry's scope).
const CREDENTIAL_STATUS: &str = "https://www.w3.org/2018/credentials#credentialStatus";
const STATUS_LIST_ENTRY: &str = "https://www.w3.org/ns/credentials/status#BitstringStatusListEntry";
pub(super) const STATUS_PURPOSE: &str = "https://www.w3.org/ns/credentials/status#statusPurpose";
const STATUS_LIST_INDEX: &str = "https://www.w3.org/ns/credentials/status#statusListIndex";
const STATUS_LIST_CREDENTIAL: &str =
    "https://www.w3.org/ns/credentials/status#statusListCredential";
/// The one status purpose testamur's lists have.
pub const REVOCATION: &str = "revocation";

pub const CRYPTOSUITE_NAME: &str = "eddsa-rdfc-2022";

/// What a credential says, from the job.
pub struct Facts<'a> {
    pub verify_uuid: &'a PublicUuid,
    /// The learner's name as given (the username when the LMS gave none).
    pub learner: &'a str,
    pub course_id: &'a str,
    /// The course's name (its id when the LMS gave none).
    pub course_name: &'a str,
    pub org: Option<&'a str>,
    /// `YYYY-MM-DD`.
    pub issued_date: &'a str,
    /// When the proof is made (`YYYY-MM-DDTHH:MM:SSZ`, the same for every attempt of
    /// a job); None: the issued date at midnight.
    pub signed_at: Option<String>,
    /// The template's noun ("Certificate").
    pub noun: &'a str,
    /// The version's entry in a status list.
    pub status: Option<StatusRef>,
}

/// A credential's entry in a status list: the list credential's URL, the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRef {
    pub list_url: String,
    pub index: u32,
}

impl Facts<'_> {
    /// The proof's `created`.
    pub fn created(&self) -> Result<String, CredentialError> {
        match &self.signed_at {
            Some(t) => Ok(t.clone()),
            None => self.valid_from(),
        }
    }

    /// `validFrom`: the issued date at midnight UTC.
    pub fn valid_from(&self) -> Result<String, CredentialError> {
        let d = self.issued_date;
        let ok = d.len() == 10
            && d.bytes()
                .enumerate()
                .all(|(i, c)| matches!(i, 4 | 7) && c == b'-' || c.is_ascii_digit());
        if !ok {
            return Err(CredentialError::Data(format!(
                "the issued date {d:?} (not YYYY-MM-DD)"
            )));
        }
        Ok(format!("{d}T00:00:00Z"))
    }

    /// The achievement's id: a name-based UUID (RFC 9562 version 8, from
    /// SHA-256) of the issuer and the course, the same for every learner of it.
    fn achievement_id(&self, issuer: &str) -> String {
        let h = Sha256::digest(format!(
            "testamur achievement\0{issuer}\0{}",
            self.course_id
        ));
        let mut b = [0u8; 16];
        b.copy_from_slice(&h[..16]);
        b[6] = (b[6] & 0x0f) | 0x80;
        b[8] = (b[8] & 0x3f) | 0x80;
        format!("urn:uuid:{}", uuid::Uuid::from_bytes(b).hyphenated())
    }
}

/// Builds a JSON object and its statements about one subject together.
struct Node<'g> {
    json: Map<String, Value>,
    subject: Term,
    graph: &'g mut Vec<Quad>,
}

impl<'g> Node<'g> {
    fn new(graph: &'g mut Vec<Quad>, subject: Term, types: &[(&str, &'static str)]) -> Self {
        let mut json = Map::new();
        if let Term::Iri(id) = &subject {
            json.insert("id".into(), id.clone().into());
        }
        if !types.is_empty() {
            let names: Vec<Value> = types.iter().map(|(t, _)| (*t).into()).collect();
            json.insert("type".into(), names.into());
        }
        for (_, iri) in types {
            graph.push(Quad {
                s: subject.clone(),
                p: RDF_TYPE,
                o: Term::iri(*iri),
            });
        }
        Self {
            json,
            subject,
            graph,
        }
    }

    /// A string property (`datatype` from the term's definition, if it has one).
    fn text(&mut self, term: &str, iri: &'static str, value: &str, datatype: Option<&'static str>) {
        self.json.insert(term.into(), value.into());
        self.graph.push(Quad {
            s: self.subject.clone(),
            p: iri,
            o: Term::Literal(value.to_owned(), datatype),
        });
    }

    /// A property whose value is another node (already built into the graph).
    fn node(&mut self, term: &str, iri: &'static str, value: Map<String, Value>, object: Term) {
        self.json.insert(term.into(), value.into());
        self.link(iri, object);
    }

    fn link(&mut self, iri: &'static str, object: Term) {
        self.graph.push(Quad {
            s: self.subject.clone(),
            p: iri,
            o: object,
        });
    }
}

/// The credential without its proof, and its statements.
pub fn document(
    f: &Facts,
    issuer: &IssuerId,
) -> Result<(Map<String, Value>, Vec<Quad>), CredentialError> {
    let valid_from = f.valid_from()?;
    let mut g = Vec::new();
    let credential_id = Term::iri(format!("urn:uuid:{}", f.verify_uuid));
    let did = Term::iri(issuer.did.clone());

    let issuer_json = {
        let mut n = Node::new(&mut g, did.clone(), &[("Profile", PROFILE)]);
        if let Some(org) = f.org {
            n.text("name", NAME, org, None);
        }
        n.json
    };

    let achievement = Term::iri(f.achievement_id(&issuer.did));
    let criteria_json = {
        let mut n = Node::new(&mut g, Term::Blank(2), &[]);
        let what = match f.org {
            Some(org) => format!("Completed {} ({}) at {org}.", f.course_name, f.course_id),
            None => format!("Completed {} ({}).", f.course_name, f.course_id),
        };
        n.text("narrative", NARRATIVE, &what, None);
        n.json
    };
    let achievement_json = {
        let mut n = Node::new(
            &mut g,
            achievement.clone(),
            &[("Achievement", ACHIEVEMENT_TYPE)],
        );
        n.text("name", NAME, f.course_name, None);
        n.text(
            "description",
            DESCRIPTION,
            &format!("{} for {}", f.noun, f.course_name),
            None,
        );
        n.node("criteria", CRITERIA, criteria_json, Term::Blank(2));
        n.json
    };
    let identity_json = {
        let mut n = Node::new(
            &mut g,
            Term::Blank(1),
            &[("IdentityObject", IDENTITY_OBJECT)],
        );
        n.json.insert("type".into(), "IdentityObject".into());
        n.text("identityHash", IDENTITY_HASH, f.learner, None);
        n.text("identityType", IDENTITY_TYPE, "name", None);
        n.json.insert("hashed".into(), false.into());
        n.link(HASHED, Term::typed("false", OB_BOOLEAN));
        n.json
    };
    let subject_json = {
        let mut n = Node::new(
            &mut g,
            Term::Blank(0),
            &[("AchievementSubject", ACHIEVEMENT_SUBJECT)],
        );
        n.text("name", NAME, f.learner, None);
        n.json
            .insert("identifier".into(), json!([Value::Object(identity_json)]));
        n.link(IDENTIFIER, Term::Blank(1));
        n.node("achievement", ACHIEVEMENT, achievement_json, achievement);
        n.json
    };

    let mut n = Node::new(
        &mut g,
        credential_id,
        &[
            ("VerifiableCredential", VERIFIABLE_CREDENTIAL),
            ("OpenBadgeCredential", OPEN_BADGE_CREDENTIAL),
        ],
    );
    n.json
        .insert("@context".into(), json!([CONTEXT_VC2, CONTEXT_OB3]));
    n.text("name", NAME, f.course_name, None);
    n.node("issuer", ISSUER, issuer_json, did);
    n.text("validFrom", VALID_FROM, &valid_from, Some(XSD_DATETIME));
    n.node(
        "credentialSubject",
        CREDENTIAL_SUBJECT,
        subject_json,
        Term::Blank(0),
    );
    let mut json = n.json;
    if let Some(s) = &f.status {
        let entry = Term::iri(format!("{}#{}", s.list_url, s.index));
        let mut e = Node::new(
            &mut g,
            entry.clone(),
            &[("BitstringStatusListEntry", STATUS_LIST_ENTRY)],
        );
        // A string: verifiers match the entry by `type === "BitstringStatusListEntry"`.
        e.json
            .insert("type".into(), "BitstringStatusListEntry".into());
        e.text("statusPurpose", STATUS_PURPOSE, REVOCATION, None);
        e.text(
            "statusListIndex",
            STATUS_LIST_INDEX,
            &s.index.to_string(),
            None,
        );
        e.json
            .insert("statusListCredential".into(), s.list_url.clone().into());
        e.link(STATUS_LIST_CREDENTIAL, Term::iri(s.list_url.clone()));
        let entry_json = e.json;
        json.insert("credentialStatus".into(), entry_json.into());
        g.push(Quad {
            s: Term::iri(format!("urn:uuid:{}", f.verify_uuid)),
            p: CREDENTIAL_STATUS,
            o: entry,
        });
    }
    Ok((json, g))
}

/// The proof without its value (JSON), and the statements of the proof options
/// document (the proof with the credential's `@context`), which are hashed.
pub fn proof_options(created: &str, verification_method: &str) -> (Map<String, Value>, Vec<Quad>) {
    let mut g = Vec::new();
    let mut n = Node::new(
        &mut g,
        Term::Blank(0),
        &[("DataIntegrityProof", DATA_INTEGRITY_PROOF)],
    );
    // A string: verifiers match the suite by `proof.type === "DataIntegrityProof"`.
    n.json.insert("type".into(), "DataIntegrityProof".into());
    n.text("created", CREATED, created, Some(XSD_DATETIME));
    n.json
        .insert("verificationMethod".into(), verification_method.into());
    n.link(VERIFICATION_METHOD, Term::iri(verification_method));
    n.text(
        "cryptosuite",
        CRYPTOSUITE,
        CRYPTOSUITE_NAME,
        Some(CRYPTOSUITE_STRING),
    );
    n.json
        .insert("proofPurpose".into(), "assertionMethod".into());
    n.link(PROOF_PURPOSE, Term::iri(ASSERTION_METHOD));
    let json = n.json;
    (json, g)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pinned context documents, as JSON.
    fn contexts() -> (Value, Value) {
        let vc: Value =
            serde_json::from_str(include_str!("../../../contexts/credentials-v2.jsonld")).unwrap();
        let ob: Value =
            serde_json::from_str(include_str!("../../../contexts/ob-v3p0-context-3.0.3.json"))
                .unwrap();
        (vc["@context"].clone(), ob["@context"].clone())
    }

    /// The IRI of `term` in `ctx` (a string or an object's `@id`).
    fn iri(ctx: &Value, term: &str) -> String {
        let d = &ctx[term];
        d.as_str()
            .or_else(|| d["@id"].as_str())
            .unwrap_or_else(|| panic!("{term} is not in the context"))
            .to_owned()
    }

    #[test]
    fn every_iri_is_the_pinned_contexts() {
        let (vc, ob) = contexts();
        let vcs = &vc["VerifiableCredential"]["@context"];
        let dip = &vc["DataIntegrityProof"]["@context"];
        let entry = &vc["BitstringStatusListEntry"]["@context"];
        let subj = &ob["AchievementSubject"]["@context"];
        let idobj = &ob["IdentityObject"]["@context"];
        let ach = &ob["Achievement"]["@context"];
        let cases: &[(&Value, &str, &str)] = &[
            (&vc, "VerifiableCredential", VERIFIABLE_CREDENTIAL),
            (&ob, "OpenBadgeCredential", OPEN_BADGE_CREDENTIAL),
            (&ob, "Profile", PROFILE),
            (&ob, "AchievementSubject", ACHIEVEMENT_SUBJECT),
            (&ob, "Achievement", ACHIEVEMENT_TYPE),
            (&ob, "IdentityObject", IDENTITY_OBJECT),
            (&vc, "name", NAME),
            (&ob, "name", NAME),
            (vcs, "name", NAME),
            (&ob, "description", DESCRIPTION),
            (vcs, "issuer", ISSUER),
            (vcs, "validFrom", VALID_FROM),
            (vcs, "credentialSubject", CREDENTIAL_SUBJECT),
            (subj, "achievement", ACHIEVEMENT),
            (subj, "identifier", IDENTIFIER),
            (idobj, "identityHash", IDENTITY_HASH),
            (idobj, "identityType", IDENTITY_TYPE),
            (idobj, "hashed", HASHED),
            (ach, "criteria", CRITERIA),
            (&ob, "narrative", NARRATIVE),
            (&vc, "DataIntegrityProof", DATA_INTEGRITY_PROOF),
            (dip, "created", CREATED),
            (dip, "cryptosuite", CRYPTOSUITE),
            (dip, "proofPurpose", PROOF_PURPOSE),
            (dip, "verificationMethod", VERIFICATION_METHOD),
            (vcs, "credentialStatus", CREDENTIAL_STATUS),
            (&vc, "BitstringStatusListEntry", STATUS_LIST_ENTRY),
            (entry, "statusPurpose", STATUS_PURPOSE),
            (entry, "statusListIndex", STATUS_LIST_INDEX),
            (entry, "statusListCredential", STATUS_LIST_CREDENTIAL),
            (
                &dip["proofPurpose"]["@context"],
                "assertionMethod",
                ASSERTION_METHOD,
            ),
        ];
        for (ctx, term, want) in cases {
            assert_eq!(&iri(ctx, term), want, "{term}");
        }
        // Datatypes the statements give.
        assert_eq!(vcs["validFrom"]["@type"], XSD_DATETIME);
        assert_eq!(dip["created"]["@type"], XSD_DATETIME);
        assert_eq!(dip["cryptosuite"]["@type"], CRYPTOSUITE_STRING);
        assert_eq!(idobj["hashed"]["@type"], OB_BOOLEAN);
        assert_eq!(vcs["credentialStatus"]["@type"], "@id");
        assert_eq!(entry["statusListCredential"]["@type"], "@id");
        for (ctx, term) in [
            (&ob, "name"),
            (vcs, "name"),
            (&ob, "narrative"),
            (idobj, "identityHash"),
            (entry, "statusPurpose"),
            (entry, "statusListIndex"),
        ] {
            assert!(ctx[term].get("@type").is_none(), "{term} is a plain string");
        }
    }
}
