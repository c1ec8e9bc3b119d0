//! xqueue submissions: the envelope `get_submission` returns, the LMS's body
//! mapped to the CC's submit body, and the `put_result` bodies the LMS expects
//! (the old certificate agent's format). Pure functions, no I/O.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use testamur_common::ids::{CertId, CourseId, Username};
use testamur_common::state::Action;
use testamur_common::wire::{CertificateView, SubmitRequest};

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

    /// A stable key for the submission: sha256 of its header (hex). The header
    /// carries xqueue's submission id and pull key, so it is unique per pull.
    pub fn key(&self) -> String {
        hex::encode(Sha256::digest(self.header.as_bytes()))
    }

    /// The `Idempotency-Key` sent with the CC submit.
    pub fn idempotency_key(&self) -> String {
        format!("xqueue-{}", self.key())
    }

    /// xqueue's `submission_id` from the header, for logs (else a short key).
    pub fn submission_id(&self) -> String {
        serde_json::from_str::<Value>(&self.header)
            .ok()
            .and_then(|h| match h.get("submission_id") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
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
    pub course_id: String,
    pub cert_id: Option<CertId>,
    /// The template asked for (after `[template_map]`) and the LMS value it
    /// came from, for error messages.
    pub template: Option<(String, String)>,
    pub request: SubmitRequest,
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

/// The template for an LMS `template_pdf`: the mapped name, else the value without
/// a trailing `.pdf`; empty means "none" (the CC's course rules or default).
pub fn template_for(template_pdf: &str, map: &BTreeMap<String, String>) -> Option<String> {
    let t = template_pdf.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(mapped) = map.get(t) {
        return Some(mapped.clone());
    }
    let stripped = t
        .strip_suffix(".pdf")
        .or_else(|| t.strip_suffix(".PDF"))
        .unwrap_or(t);
    (!stripped.is_empty()).then(|| stripped.to_owned())
}

/// Map the LMS's body to a CC request.
pub fn parse_body(body: &str, map: &BTreeMap<String, String>) -> Result<Job, Malformed> {
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
    get("course_id")?.ok_or_else(|| bad("`course_id` is missing".into()))?;
    let cert_id = match (
        CourseId::parse(course_id.clone()),
        Username::parse(username.clone()),
    ) {
        (Ok(c), Ok(u)) => Some(CertId::for_pair(&c, &u)),
        // The CC names the problem in its 422.
        _ => None,
    };
    let mut request = SubmitRequest {
        action: Some(action.as_str().to_owned()),
        username: Some(username.clone()),
        course_id: Some(course_id.clone()),
        ..Default::default()
    };
    let mut template = None;
    if action.renders() {
        request.name = get("name")?;
        request.course_name = get("course_name")?;
        request.grade = get("grade")?;
        request.designation = get("designation")?;
        request.issued_date = get("issued_date")?.map(issued_date);
        if let Some(pdf) = get("template_pdf")? {
            if let Some(t) = template_for(&pdf, map) {
                request.template = Some(t.clone());
                template = Some((t, pdf));
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
        request,
    })
}

/// The success body: what the old certificate agent posted. For a delete the
/// uuids and URL are empty strings (the files are gone; the LMS ignores them).
pub fn success_body(job: &Job, view: &CertificateView) -> String {
    let s = |v: Option<String>| {
        if job.action == Action::Delete {
            String::new()
        } else {
            v.unwrap_or_default()
        }
    };
    json!({
        "action": job.lms_action,
        "download_uuid": s(view.download_uuid.as_ref().map(|u| u.to_string())),
        "verify_uuid": s(view.verify_uuid.as_ref().map(|u| u.to_string())),
        "username": job.username,
        "course_id": job.course_id,
        "url": s(view.download_url.clone()),
    })
    .to_string()
}

/// The failure body: a short `error`, the details in `error_reason`.
pub fn error_body(error: &str, error_reason: &str, username: &str, course_id: &str) -> String {
    json!({
        "error": error,
        "error_reason": error_reason,
        "username": username,
        "course_id": course_id,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> BTreeMap<String, String> {
        [("MITx-cert.pdf".to_owned(), "letter".to_owned())].into()
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

    #[test]
    fn body_maps_to_submit_request() {
        let j = parse_body(
            r#"{"action": "create", "username": "ada", "course_id": "course-v1:X+Y+Z",
                "course_name": "Engines", "name": "Ada", "grade": 0.93,
                "template_pdf": "MITx-cert.pdf", "issued_date": "2024-03-01T10:00:00Z",
                "designation": "", "extra": [1]}"#,
            &map(),
        )
        .unwrap();
        assert_eq!(j.lms_action, "create");
        assert_eq!(j.action, Action::Add);
        assert_eq!(j.request.action.as_deref(), Some("add"));
        assert_eq!(j.request.template.as_deref(), Some("letter"));
        assert_eq!(j.request.grade.as_deref(), Some("0.93"));
        assert_eq!(j.request.issued_date.as_deref(), Some("2024-03-01"));
        assert_eq!(j.request.designation, None);
        assert!(j.cert_id.is_some());

        assert_eq!(template_for("fancy.pdf", &map()).as_deref(), Some("fancy"));
        assert_eq!(template_for("  ", &map()), None);
        assert_eq!(template_for("plain", &map()).as_deref(), Some("plain"));

        let d = parse_body(
            r#"{"action": "delete", "username": "ada", "course_id": "c", "template_pdf": "x.pdf"}"#,
            &map(),
        )
        .unwrap();
        assert_eq!(d.request.template, None);
        assert_eq!(d.request.name, None);
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
