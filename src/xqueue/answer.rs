//! The `put_result` bodies the LMS expects: the old certificate agent's format,
//! within the columns edx-platform's `GeneratedCertificate` stores them in
//! (uuids of 32 hex digits, `download_url` 128 and `error_reason` 512
//! characters). Pure functions, no I/O.

use serde_json::json;
use testamur_common::ids::PublicUuid;
use testamur_common::state::Action;
use testamur_common::wire::CertificateView;

use super::submission::Job;

/// edx-platform's `GeneratedCertificate.download_url` is a `CharField(max_length=128)`
/// (MySQL in strict mode refuses a longer value, and the LMS's handler fails).
pub const LMS_URL_MAX: usize = 128;
/// `ExampleCertificate.download_url` is a `CharField(max_length=255)`.
pub const EXAMPLE_URL_MAX: usize = 255;
/// What the layout adds to `storage.base_url`: `downloads/{36}/Certificate.pdf`.
pub const URL_AFTER_BASE: usize = "downloads/".len() + 36 + "/Certificate.pdf".len();
/// `GeneratedCertificate.error_reason` is a `CharField(max_length=512)`.
pub const ERROR_REASON_MAX: usize = 512;

/// A uuid as the LMS stores it (32 hex digits; the hyphenated form is accepted
/// too), in testamur's hyphenated form.
pub fn parse_lms_uuid(s: &str) -> Option<PublicUuid> {
    let s = s.trim();
    if s.len() != 32 && s.len() != 36 {
        return None;
    }
    let u = uuid::Uuid::try_parse(s).ok()?;
    PublicUuid::parse(&u.hyphenated().to_string()).ok()
}

/// A testamur uuid as the LMS stores it: 32 lowercase hex digits (the old
/// agent's `uuid4().hex`; the LMS's columns are `CharField(max_length=32)`).
pub fn lms_uuid(u: &PublicUuid) -> String {
    u.as_str().replace('-', "")
}

/// `s` cut to at most `max` characters (an ellipsis marks the cut).
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The success body: what the old certificate agent posted, the uuids as 32
/// hex digits. For a delete the uuids and URL are empty strings (the files are
/// gone; the LMS ignores them). Err: the URL is longer than the LMS stores.
pub fn success_body(job: &Job, view: &CertificateView) -> Result<String, String> {
    let deleted = job.action == Action::Delete;
    let s = |v: Option<String>| {
        if deleted {
            String::new()
        } else {
            v.unwrap_or_default()
        }
    };
    let url = s(view.download_url.clone());
    let n = url.chars().count();
    if n > job.url_max() {
        return Err(format!(
            "the certificate's download_url is {n} characters and the LMS stores at most {} \
             (edx-platform's download_url column); shorten the workservers' \
             `storage.base_url` (ws.conf) to at most {} characters: {url}",
            job.url_max(),
            job.url_max() - URL_AFTER_BASE
        ));
    }
    Ok(json!({
        "action": job.lms_action,
        "download_uuid": s(view.download_uuid.as_ref().map(lms_uuid)),
        "verify_uuid": s(view.verify_uuid.as_ref().map(lms_uuid)),
        "username": job.username,
        "course_id": job.course_id,
        "url": url,
    })
    .to_string())
}

/// The failure body: a short `error`, the details in `error_reason` (at most
/// 512 characters, what the LMS's column holds).
pub fn error_body(error: &str, error_reason: &str, username: &str, course_id: &str) -> String {
    json!({
        "error": truncate_chars(error, 200),
        "error_reason": truncate_chars(error_reason, ERROR_REASON_MAX),
        "username": username,
        "course_id": course_id,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xqueue::mapping::{Mapping, TemplateMapping};
    use crate::xqueue::submission::parse_body;
    use serde_json::Value;

    fn map() -> Mapping {
        Mapping {
            templates: TemplateMapping::default(),
            course_names: Default::default(),
        }
    }

    #[test]
    fn answers_fit_the_lms_columns() {
        let j = parse_body(
            r#"{"action": "add", "username": "ada", "course_id": "c", "name": "Ada"}"#,
            &map(),
        )
        .unwrap();
        let du = PublicUuid::generate();
        let vu = PublicUuid::generate();
        let mut view: CertificateView = serde_json::from_value(json!({
            "cert_id": j.cert_id.as_ref().unwrap().as_str(),
            "course_id": "c", "username": "ada", "state": "downloadable",
            "download_uuid": du.as_str(), "verify_uuid": vu.as_str(),
            "download_url": format!("https://c.example.org/downloads/{du}/Certificate.pdf"),
            "updated_at": "2026-01-01T00:00:00Z", "attempts": 1
        }))
        .unwrap();
        let body: Value = serde_json::from_str(&success_body(&j, &view).unwrap()).unwrap();
        for k in ["download_uuid", "verify_uuid"] {
            let u = body[k].as_str().unwrap();
            assert_eq!(u.len(), 32, "{body}");
            assert!(u
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        assert_eq!(body["download_uuid"], lms_uuid(&du));
        assert_eq!(
            parse_lms_uuid(body["verify_uuid"].as_str().unwrap()),
            Some(vu)
        );
        let long_base = format!("https://{}.example.org/", "x".repeat(60));
        view.download_url = Some(format!("{long_base}downloads/{du}/Certificate.pdf"));
        let e = success_body(&j, &view).unwrap_err();
        assert!(e.contains("128") && e.contains("storage.base_url"), "{e}");

        let reason = "y".repeat(2000);
        let b: Value = serde_json::from_str(&error_body("rejected", &reason, "u", "c")).unwrap();
        let r = b["error_reason"].as_str().unwrap();
        assert_eq!(r.chars().count(), ERROR_REASON_MAX);
        assert!(r.ends_with('…'));
        assert_eq!(truncate_chars("日本語", 3), "日本語");
        assert_eq!(truncate_chars("日本語", 2), "日…");
    }
}
