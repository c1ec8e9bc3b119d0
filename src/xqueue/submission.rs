//! xqueue submissions: the envelope `get_submission` returns and the LMS's body
//! mapped to the CC's submit body (the answers are [`super::answer`]). Pure
//! functions, no I/O.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use testamur_common::ids::{CertId, CourseId, PublicUuid, Username};
use testamur_common::state::Action;
use testamur_common::wire::SubmitRequest;

use super::answer::{parse_lms_uuid, EXAMPLE_URL_MAX, LMS_URL_MAX};
use super::mapping::{bcp47, course_name_for, Mapping};

/// One submission as xqueue handed it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Echoed back exactly in `put_result`.
    pub header: String,
    /// The LMS's JSON body, as a string.
    pub body: String,
}

impl Envelope {
    /// `get_submission`'s `content`: a JSON string (or, leniently, an object)
    /// holding `xqueue_header` and `xqueue_body`, each a JSON string.
    pub fn from_content(content: &Value) -> Result<Self, String> {
        let obj: Value = match content {
            Value::String(s) => {
                serde_json::from_str(s).map_err(|e| format!("content is not JSON: {e}"))?
            }
            v @ Value::Object(_) => v.clone(),
            other => {
                return Err(format!(
                    "content is neither a string nor an object: {other}"
                ))
            }
        };
        let text = |key: &str| -> Result<String, String> {
            match obj.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(v @ Value::Object(_)) => Ok(v.to_string()),
                Some(other) => Err(format!("`{key}` is not a string: {other}")),
                None => Err(format!("`{key}` is missing")),
            }
        };
        Ok(Self {
            header: text("xqueue_header")?,
            body: text("xqueue_body").or_else(|e| match obj.get("xqueue_body") {
                // A body that is not a string still gets answered (as malformed).
                Some(v) => Ok(v.to_string()),
                None => Err(e),
            })?,
        })
    }

    /// A stable key for the submission (hex sha256): of xqueue's `submission_id`
    /// and the body, so a copy xqueue hands out again under a new pull key (the
    /// LMS's callback failed, or the first copy took longer than
    /// `SUBMISSION_PROCESSING_DELAY`) is the same submission, while a reset
    /// xqueue reusing an id for another body is not. A header without a
    /// submission id (not xqueue's) is keyed by the whole header.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        match self.header_id() {
            Some(id) => {
                h.update(b"xqueue-submission\n");
                h.update(id.as_bytes());
                h.update(b"\n");
                h.update(self.body.as_bytes());
            }
            None => h.update(self.header.as_bytes()),
        }
        hex::encode(h.finalize())
    }

    fn header_id(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.header)
            .ok()
            .and_then(|h| match h.get("submission_id") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
    }

    /// The `Idempotency-Key` sent with the CC submit.
    pub fn idempotency_key(&self) -> String {
        format!("xqueue-{}", self.key())
    }

    /// xqueue's `submission_id` from the header, for logs (else a short key).
    pub fn submission_id(&self) -> String {
        self.header_id()
            .unwrap_or_else(|| format!("key:{}", &self.key()[..12]))
    }
}

/// A submission the CC can be asked to carry out.
#[derive(Debug, Clone)]
pub struct Job {
    /// As the LMS spelt it (`create` is echoed as `create`).
    pub lms_action: String,
    pub action: Action,
    pub username: String,
    /// Empty for a 2013 delete until [`Job::set_course`] (see `find_by`).
    pub course_id: String,
    pub cert_id: Option<CertId>,
    /// The template asked for, the LMS value it came from and what mapped it
    /// (for error messages).
    pub template: Option<TemplateAsked>,
    /// edx-platform's example certificate (`example_certificate: true`; its
    /// `username` is the example's uuid): answered to `update_example_certificate`.
    pub example: bool,
    /// A delete of the 2013 LMS: no `course_id`, the published uuids instead.
    pub find_by: Option<PublishedUuids>,
    /// A language the LMS sent that is no language tag (dropped, logged).
    pub ignored_lang: Option<String>,
    pub request: SubmitRequest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateAsked {
    pub template: String,
    pub template_pdf: String,
    pub by: String,
}

/// The uuids a 2013 delete names (`delete_verify_uuid`, `delete_download_uuid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedUuids {
    pub verify: PublicUuid,
    pub download: Option<PublicUuid>,
}

impl Job {
    /// The course a 2013 delete turned out to be about.
    pub fn set_course(&mut self, course_id: String) {
        self.cert_id = match (
            CourseId::parse(course_id.clone()),
            Username::parse(self.username.clone()),
        ) {
            (Ok(c), Ok(u)) => Some(CertId::for_pair(&c, &u)),
            _ => None,
        };
        self.request.course_id = Some(course_id.clone());
        self.course_id = course_id;
    }

    /// The longest `url` the LMS can store for this certificate.
    pub fn url_max(&self) -> usize {
        if self.example {
            EXAMPLE_URL_MAX
        } else {
            LMS_URL_MAX
        }
    }
}

/// A body that cannot become a CC request: answered with an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub reason: String,
    pub username: String,
    pub course_id: String,
}

fn field(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // The LMS sends the grade as a number (a fraction) in some versions.
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(format!("`{key}` must be a string, not {other}")),
    }
}

/// `issued_date`: testamur wants `YYYY-MM-DD`; an ISO date-time (as some LMS
/// versions send) is cut to its date. Anything else is passed on for the CC to judge.
fn issued_date(s: String) -> String {
    let b = s.as_bytes();
    let is_date = b.len() > 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && matches!(b[10], b'T' | b't' | b' ');
    if is_date {
        s[..10].to_owned()
    } else {
        s
    }
}

/// Map the LMS's body to a CC request.
pub fn parse_body(body: &str, mapping: &Mapping) -> Result<Job, Malformed> {
    let value: Value = serde_json::from_str(body).map_err(|e| Malformed {
        reason: format!("xqueue_body is not JSON: {e}"),
        username: String::new(),
        course_id: String::new(),
    })?;
    let Value::Object(obj) = value else {
        return Err(Malformed {
            reason: "xqueue_body is not a JSON object".into(),
            username: String::new(),
            course_id: String::new(),
        });
    };
    let username = field(&obj, "username").ok().flatten().unwrap_or_default();
    let course_id = field(&obj, "course_id").ok().flatten().unwrap_or_default();
    let bad = |reason: String| Malformed {
        reason,
        username: username.clone(),
        course_id: course_id.clone(),
    };
    let get = |key: &str| field(&obj, key).map_err(bad);
    let lms_action = get("action")?.ok_or_else(|| bad("`action` is missing".into()))?;
    let action = match lms_action.as_str() {
        "add" | "create" => Action::Add,
        "regen" => Action::Regen,
        "delete" => Action::Delete,
        other => {
            return Err(bad(format!(
                "unknown action `{other}`: expected add (or create), regen or delete"
            )))
        }
    };
    get("username")?.ok_or_else(|| bad("`username` is missing".into()))?;
    // The 2013 LMS's delete names the published uuids instead of the course.
    let find_by = match (action, get("course_id")?, get("delete_verify_uuid")?) {
        (_, Some(_), _) => None,
        (Action::Delete, None, Some(v)) => {
            let uuid = |key: &str, v: &str| {
                parse_lms_uuid(v)
                    .ok_or_else(|| bad(format!("`{key}` is not a uuid (32 hex digits): `{v}`")))
            };
            let verify = uuid("delete_verify_uuid", &v)?;
            let download = match get("delete_download_uuid")? {
                Some(d) => Some(uuid("delete_download_uuid", &d)?),
                None => None,
            };
            Some(PublishedUuids { verify, download })
        }
        (Action::Delete, None, None) => {
            return Err(bad(
                "`course_id` is missing (a delete without it must name the certificate's \
                 delete_verify_uuid, as the 2013 LMS does)"
                    .into(),
            ))
        }
        (_, None, _) => return Err(bad("`course_id` is missing".into())),
    };
    let cert_id = match (
        CourseId::parse(course_id.clone()),
        Username::parse(username.clone()),
    ) {
        (Ok(c), Ok(u)) => Some(CertId::for_pair(&c, &u)),
        // The CC names the problem in its 422.
        _ => None,
    };
    let example = get("example_certificate")?.as_deref() == Some("true");
    let mut request = SubmitRequest {
        action: Some(action.as_str().to_owned()),
        username: Some(username.clone()),
        course_id: find_by.is_none().then(|| course_id.clone()),
        ..Default::default()
    };
    let mut template = None;
    let mut ignored_lang = None;
    if action.renders() {
        request.name = get("name")?;
        request.course_name =
            get("course_name")?.or_else(|| course_name_for(&course_id, &mapping.course_names));
        request.grade = get("grade")?;
        request.designation = get("designation")?;
        request.issued_date = get("issued_date")?.map(issued_date);
        if let Some(pdf) = get("template_pdf")? {
            let choice = mapping.templates.resolve(&pdf, &course_id);
            if let Some(t) = choice.template {
                request.template = Some(t.clone());
                template = Some(TemplateAsked {
                    template: t,
                    template_pdf: pdf,
                    by: choice.by,
                });
            }
        }
        let lang = match get("lang")? {
            Some(l) => Some(l),
            None => get("language")?,
        };
        if let Some(l) = lang {
            match bcp47(&l) {
                Some(tag) => request.lang = Some(tag),
                None => ignored_lang = Some(l),
            }
        }
    } else {
        // Checked for shape only: a delete prints nothing.
        for key in [
            "name",
            "course_name",
            "grade",
            "designation",
            "issued_date",
            "template_pdf",
            "lang",
            "language",
        ] {
            get(key)?;
        }
    }
    Ok(Job {
        lms_action,
        action,
        username,
        course_id,
        cert_id,
        template,
        example,
        find_by,
        ignored_lang,
        request,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xqueue::mapping::TemplateMapping;
    use serde_json::json;

    fn map() -> Mapping {
        Mapping {
            templates: TemplateMapping {
                map: [("MITx-cert.pdf".to_owned(), "letter".to_owned())].into(),
                ..Default::default()
            },
            course_names: Default::default(),
        }
    }

    #[test]
    fn envelope_from_xqueue_content() {
        let content = json!(json!({
            "xqueue_header": "{\"submission_id\": 7, \"submission_key\": \"k\"}",
            "xqueue_body": "{\"action\": \"add\"}",
            "xqueue_files": "{}"
        })
        .to_string());
        let e = Envelope::from_content(&content).unwrap();
        assert_eq!(
            e.header,
            "{\"submission_id\": 7, \"submission_key\": \"k\"}"
        );
        assert_eq!(e.submission_id(), "7");
        assert_eq!(e.idempotency_key().len(), 7 + 64);
        assert!(Envelope::from_content(&json!(3)).is_err());
    }

    /// xqueue hands a submission out again under a new pull key: the same
    /// submission. Another body under the same id (a reset xqueue) is not.
    #[test]
    fn key_is_the_submission_not_the_pull() {
        let e = |key: &str, body: &str| Envelope {
            header: format!("{{\"submission_id\": 7, \"submission_key\": \"{key}\"}}"),
            body: body.into(),
        };
        assert_eq!(e("k1", "{}").key(), e("k2", "{}").key());
        assert_ne!(e("k1", "{}").key(), e("k1", "{\"a\": 1}").key());
        let other = Envelope {
            header: "{\"submission_id\": 8, \"submission_key\": \"k1\"}".into(),
            body: "{}".into(),
        };
        assert_ne!(e("k1", "{}").key(), other.key());
        let foreign = |h: &str| Envelope {
            header: h.into(),
            body: "{}".into(),
        };
        assert_ne!(foreign("{\"x\": 1}").key(), foreign("{\"x\": 2}").key());
    }

    #[test]
    fn body_maps_to_submit_request() {
        let j = parse_body(
            r#"{"action": "create", "username": "ada", "course_id": "course-v1:X+Y+Z",
                "course_name": "Engines", "name": "Ada", "grade": 0.93,
                "template_pdf": "MITx-cert.pdf", "issued_date": "2024-03-01T10:00:00Z",
                "designation": "", "language": "zh_HANT", "extra": [1]}"#,
            &map(),
        )
        .unwrap();
        assert_eq!(j.lms_action, "create");
        assert_eq!(j.action, Action::Add);
        assert_eq!(j.request.action.as_deref(), Some("add"));
        assert_eq!(j.request.template.as_deref(), Some("letter"));
        assert_eq!(j.template.as_ref().unwrap().by, "template_map");
        assert_eq!(j.request.grade.as_deref(), Some("0.93"));
        assert_eq!(j.request.issued_date.as_deref(), Some("2024-03-01"));
        assert_eq!(j.request.designation, None);
        assert_eq!(j.request.lang.as_deref(), Some("zh-Hant"));
        assert!(j.cert_id.is_some());
        assert!(!j.example);

        let d = parse_body(
            r#"{"action": "delete", "username": "ada", "course_id": "c", "template_pdf": "x.pdf"}"#,
            &map(),
        )
        .unwrap();
        assert_eq!(d.request.template, None);
        assert_eq!(d.request.name, None);
        assert_eq!(d.find_by, None);
    }

    /// edx-platform's example certificate: no course name, a uuid as username.
    #[test]
    fn example_certificates_get_a_course_name() {
        let j = parse_body(
            r#"{"action": "create", "course_id": "course-v1:edX+DemoX+Demo_Course",
                "name": "John Doë", "template_pdf": "certificate-template-edX-DemoX.pdf",
                "username": "6b1f0a8f3c2e4d5a9b7c1e2f3a4b5c6d", "example_certificate": true}"#,
            &map(),
        )
        .unwrap();
        assert!(j.example);
        assert_eq!(j.url_max(), EXAMPLE_URL_MAX);
        assert_eq!(j.request.course_name.as_deref(), Some("edX DemoX"));
        let bad = parse_body(
            r#"{"action": "create", "course_id": "c", "name": "N", "username": "u", "lang": "1x"}"#,
            &map(),
        )
        .unwrap();
        assert_eq!(bad.request.lang, None);
        assert_eq!(bad.ignored_lang.as_deref(), Some("1x"));
    }

    /// The 2013 LMS deletes by the uuids it stored, without a course_id.
    #[test]
    fn a_2013_delete_names_uuids() {
        let j = parse_body(
            r#"{"action": "delete", "username": "ada",
                "delete_verify_uuid": "0F8FAD5BD9CB469FA16570867728950E",
                "delete_download_uuid": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}"#,
            &map(),
        )
        .unwrap();
        let f = j.find_by.clone().unwrap();
        assert_eq!(f.verify.as_str(), "0f8fad5b-d9cb-469f-a165-70867728950e");
        assert_eq!(
            f.download.unwrap().as_str(),
            "7c9e6679-7425-40de-944b-e07fc1f90ae7"
        );
        assert_eq!((j.course_id.as_str(), j.cert_id.is_none()), ("", true));
        assert_eq!(j.request.course_id, None);
        let mut j = j;
        j.set_course("course-v1:X+Y+Z".into());
        assert!(j.cert_id.is_some());
        assert_eq!(j.request.course_id.as_deref(), Some("course-v1:X+Y+Z"));

        let m = parse_body(
            r#"{"action": "delete", "username": "ada", "delete_verify_uuid": "nope"}"#,
            &map(),
        )
        .unwrap_err();
        assert!(m.reason.contains("delete_verify_uuid"), "{}", m.reason);
        let m = parse_body(r#"{"action": "delete", "username": "ada"}"#, &map()).unwrap_err();
        assert!(m.reason.contains("course_id"), "{}", m.reason);
        let m = parse_body(
            r#"{"action": "create", "username": "ada", "delete_verify_uuid": "0f8fad5bd9cb469fa16570867728950e"}"#,
            &map(),
        )
        .unwrap_err();
        assert!(m.reason.contains("course_id"), "{}", m.reason);
    }

    #[test]
    fn malformed_bodies_keep_what_they_can() {
        let m = parse_body("not json", &map()).unwrap_err();
        assert!(m.reason.contains("not JSON"));
        let m = parse_body(
            r#"{"action": "print", "username": "u", "course_id": "c"}"#,
            &map(),
        )
        .unwrap_err();
        assert!(m.reason.contains("print"));
        assert_eq!((m.username.as_str(), m.course_id.as_str()), ("u", "c"));
        let m = parse_body(r#"{"action": "add", "course_id": "c"}"#, &map()).unwrap_err();
        assert!(m.reason.contains("username"));
        let m = parse_body(
            r#"{"action": "add", "username": "u", "course_id": "c", "name": {}}"#,
            &map(),
        )
        .unwrap_err();
        assert!(m.reason.contains("`name`"));
    }
}
