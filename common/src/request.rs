//! A certificate request from an LMS, parsed from the loose wire body into a value
//! that can only hold valid requests.

use crate::ids::{CertId, CourseId, Username};
use crate::state::Action;
use crate::wire::SubmitRequest;

/// The longest learner name or free-text field we accept (characters).
pub const MAX_TEXT: usize = 500;

/// A rejected field: which one, and why (becomes a 422 with `field`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field_err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CertRequest {
    pub action: Action,
    pub course_id: CourseId,
    pub username: Username,
    /// Present for add and regen.
    pub name: Option<String>,
    pub course_name: Option<String>,
    pub org: Option<String>,
    pub grade: Option<String>,
    pub designation: Option<String>,
    /// `YYYY-MM-DD`, if the LMS gave one.
    pub issued_date: Option<String>,
    pub template: Option<String>,
    /// BCP 47 language tag, checked for form only.
    pub lang: Option<String>,
    pub callback_url: Option<String>,
}

impl CertRequest {
    pub fn cert_id(&self) -> CertId {
        CertId::for_pair(&self.course_id, &self.username)
    }

    pub fn parse(w: SubmitRequest) -> Result<Self, FieldError> {
        let action: Action = w
            .action
            .as_deref()
            .ok_or_else(|| field_err("action", "action is required: add, regen or delete"))?
            .parse()
            .map_err(|e: crate::state::UnknownAction| field_err("action", e.to_string()))?;
        let course_id = CourseId::parse(
            w.course_id
                .ok_or_else(|| field_err("course_id", "course_id is required"))?,
        )
        .map_err(|e| field_err("course_id", e.to_string()))?;
        let username = Username::parse(
            w.username
                .ok_or_else(|| field_err("username", "username is required"))?,
        )
        .map_err(|e| field_err("username", e.to_string()))?;
        let name = match (action.renders(), w.name) {
            (true, None) => {
                return Err(field_err("name", format!("name is required for {action}")))
            }
            (true, Some(n)) => Some(text("name", n)?),
            (false, n) => n.map(|n| text("name", n)).transpose()?,
        };
        let opt = |field: &'static str, v: Option<String>| -> Result<Option<String>, FieldError> {
            match v {
                Some(s) if s.trim().is_empty() => Ok(None),
                Some(s) => text(field, s).map(Some),
                None => Ok(None),
            }
        };
        let issued_date = w
            .issued_date
            .filter(|d| !d.trim().is_empty())
            .map(|d| date(&d))
            .transpose()?;
        // The scheme and address policy (https only, no private addresses unless
        // cc.conf allows them) is the CC's: see cc/src/callbacks/policy.rs.
        let callback_url = match w.callback_url.filter(|u| !u.trim().is_empty()) {
            Some(u) => {
                let u = u.trim();
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(field_err(
                        "callback_url",
                        "callback_url must be an https:// URL",
                    ));
                }
                if u.len() > 2000 || u.chars().any(|c| c.is_control() || c == ' ') {
                    return Err(field_err(
                        "callback_url",
                        "callback_url must be a URL of at most 2000 characters without spaces",
                    ));
                }
                Some(u.to_owned())
            }
            None => None,
        };
        Ok(Self {
            action,
            course_id,
            username,
            name,
            course_name: opt("course_name", w.course_name)?,
            org: opt("org", w.org)?,
            grade: opt("grade", w.grade)?,
            designation: opt("designation", w.designation)?,
            issued_date,
            template: opt("template", w.template)?,
            lang: w.lang.as_deref().map(parse_lang).transpose()?.flatten(),
            callback_url,
        })
    }
}

/// Longest language tag accepted (as in openapi.json).
pub const MAX_LANG: usize = 35;

/// A BCP 47 tag as far as its form goes: letters, then `-` and up to 8 letters or
/// digits per subtag (`ja`, `zh-Hant-TW`); blank is none.
pub fn parse_lang(s: &str) -> Result<Option<String>, FieldError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let mut parts = s.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    let rest_ok =
        parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !first_ok || !rest_ok || s.len() > MAX_LANG {
        return Err(field_err(
            "lang",
            format!(
                "lang must be a BCP 47 language tag of at most {MAX_LANG} characters, \
                 such as ja, ko, zh-Hans or zh-Hant"
            ),
        ));
    }
    Ok(Some(s.to_owned()))
}

fn text(field: &'static str, s: String) -> Result<String, FieldError> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(field_err(field, format!("{field} must not be empty")));
    }
    // Counted as sent (like the schema's maxLength), spaces included.
    if s.chars().count() > MAX_TEXT {
        return Err(field_err(
            field,
            format!("{field} is longer than {MAX_TEXT} characters"),
        ));
    }
    if let Some(c) = trimmed.chars().find(|c| c.is_control()) {
        return Err(field_err(
            field,
            format!("{field} contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(trimmed.to_owned())
}

fn date(s: &str) -> Result<String, FieldError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), &fmt)
        .map(|_| s.trim().to_owned())
        .map_err(|_| {
            field_err(
                "issued_date",
                format!("issued_date `{s}` is not a date like 2026-11-23"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(action: &str, name: Option<&str>) -> SubmitRequest {
        SubmitRequest {
            action: Some(action.into()),
            username: Some("u1".into()),
            course_id: Some("c1".into()),
            name: name.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn name_is_required_to_render() {
        assert_eq!(
            CertRequest::parse(req("add", None)).unwrap_err().field,
            "name"
        );
        assert_eq!(
            CertRequest::parse(req("regen", Some("  ")))
                .unwrap_err()
                .field,
            "name"
        );
        assert!(CertRequest::parse(req("delete", None)).is_ok());
        assert_eq!(
            CertRequest::parse(req("add", Some(" Zoë ")))
                .unwrap()
                .name
                .as_deref(),
            Some("Zoë")
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(
            CertRequest::parse(req("remove", Some("x")))
                .unwrap_err()
                .field,
            "action"
        );
        let mut r = req("add", Some("x"));
        r.issued_date = Some("23/11/2026".into());
        assert_eq!(CertRequest::parse(r).unwrap_err().field, "issued_date");
        let mut r = req("add", Some("x"));
        r.callback_url = Some("ftp://lms".into());
        assert_eq!(CertRequest::parse(r).unwrap_err().field, "callback_url");
        let mut r = req("add", Some("x"));
        r.username = None;
        assert_eq!(CertRequest::parse(r).unwrap_err().field, "username");
    }

    #[test]
    fn lang_is_a_bcp47_tag_or_none() {
        let with = |l: &str| {
            let mut r = req("add", Some("x"));
            r.lang = Some(l.into());
            CertRequest::parse(r)
        };
        for ok in ["ja", "zh-Hant", "zh-Hant-TW", "ko-KR", "x-klingon"] {
            assert_eq!(with(ok).unwrap().lang.as_deref(), Some(ok));
        }
        assert_eq!(with(" zh-TW\n").unwrap().lang.as_deref(), Some("zh-TW"));
        assert_eq!(with("  ").unwrap().lang, None);
        for bad in [
            "zh_TW",
            "-ja",
            "ja-",
            "日本語",
            "ja--JP",
            "abcdefghi",
            &"a-b".repeat(20),
        ] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.field, "lang");
            assert!(e.message.contains("zh-Hant"), "{}", e.message);
        }
    }
}
