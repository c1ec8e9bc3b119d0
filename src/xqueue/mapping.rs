//! What the bridge derives from an LMS body beyond copying fields: the testamur
//! template for a `template_pdf` (exact `[template_map]` entries, then
//! `[[template_rules]]` on the LMS's standard file names, then
//! `template_default`), a readable course name when the LMS sends none, and the
//! LMS's language code as a BCP 47 tag. Pure functions, no I/O.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One `[[template_rules]]` entry of xqueue.conf. Every matcher given must match;
/// `org`, `course` and `mode` match only the LMS's standard file names
/// (`certificate-template-{org}-{course}.pdf`, `...-verified.pdf`), `pdf` any value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRule {
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub course: Option<String>,
    /// `verified` (the `-verified` file) or `standard` (the other one).
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub pdf: Option<String>,
    /// The testamur template; `{org}`, `{course}` and `{mode}` are replaced; `""`:
    /// no template, the cluster's course rules and default decide.
    pub template: String,
}

/// What the bridge's configuration adds to LMS bodies (xqueue.conf's
/// `[template_map]`, `[[template_rules]]`, `template_default`, `[course_names]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    pub templates: TemplateMapping,
    /// course_id → the course name to print when the LMS sends none.
    pub course_names: BTreeMap<String, String>,
}

/// How `template_pdf` values become testamur templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateMapping {
    /// Exact `template_pdf` value → template.
    pub map: BTreeMap<String, String>,
    pub rules: Vec<TemplateRule>,
    /// When nothing else matched: a template, or `""` for "the cluster decides".
    /// Absent: the value without `.pdf` (the bridge's first behaviour).
    pub default: Option<String>,
}

/// The template chosen for a request and why (for error messages and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateChoice {
    /// None: the request names no template (course rules and default decide).
    pub template: Option<String>,
    /// `template_map`, `template_rules[N]`, `template_default` or `file name`.
    pub by: String,
}

/// A course key's org and course number (`course-v1:ORG+COURSE+RUN`, the old
/// `ORG/COURSE/RUN`, `ccx-v1:ORG+COURSE+RUN+ccx@N`).
pub fn org_and_course(course_id: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = match course_id.split_once(':') {
        Some((_, rest)) => rest.split('+').collect(),
        None => course_id.split('/').collect(),
    };
    match parts.as_slice() {
        [org, course, _run, ..] if !org.is_empty() && !course.is_empty() => Some((org, course)),
        _ => None,
    }
}

/// `verified` or `standard` when `pdf` is the LMS's own name for this course's
/// template (edx-platform's `certificate-template-{org}-{course}[-verified].pdf`).
pub fn standard_mode(pdf: &str, org: &str, course: &str) -> Option<&'static str> {
    let stem = format!("certificate-template-{org}-{course}");
    let rest = pdf.strip_prefix(&stem)?;
    match rest {
        ".pdf" => Some("standard"),
        "-verified.pdf" => Some("verified"),
        _ => None,
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

impl TemplateRule {
    /// A problem with the rule as written (for xqueue.conf's error), if any.
    pub fn problem(&self) -> Option<String> {
        if self.org.is_none() && self.course.is_none() && self.mode.is_none() && self.pdf.is_none()
        {
            return Some(
                "matches nothing in particular: give org, course, mode or pdf (for a \
                 catch-all, use template_default)"
                    .into(),
            );
        }
        if let Some(m) = &self.mode {
            if m != "verified" && m != "standard" {
                return Some(format!(
                    "mode `{m}`: must be \"verified\" (the LMS's -verified.pdf) or \"standard\""
                ));
            }
        }
        let mut rest = self.template.as_str();
        while let Some(i) = rest.find('{') {
            let Some(j) = rest[i..].find('}') else {
                return Some(format!("template `{}`: unclosed `{{`", self.template));
            };
            let slot = &rest[i + 1..i + j];
            if !matches!(slot, "org" | "course" | "mode") {
                return Some(format!(
                    "template `{}`: unknown placeholder `{{{slot}}}` (use {{org}}, {{course}} or {{mode}})",
                    self.template
                ));
            }
            rest = &rest[i + j + 1..];
        }
        None
    }

    /// The rule's template for `pdf` (of a course `org`/`course`), if it matches.
    fn apply(&self, pdf: &str, standard: Option<(&str, &str, &str)>) -> Option<String> {
        if let Some(p) = &self.pdf {
            if !glob(p, pdf) {
                return None;
            }
        }
        let needs_standard = self.org.is_some() || self.course.is_some() || self.mode.is_some();
        let (org, course, mode) = match standard {
            Some(s) => s,
            None if needs_standard => return None,
            None => ("", "", ""),
        };
        let ok = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| glob(w, have));
        if !(ok(&self.org, org) && ok(&self.course, course) && ok(&self.mode, mode)) {
            return None;
        }
        Some(
            self.template
                .replace("{org}", org)
                .replace("{course}", course)
                .replace("{mode}", mode),
        )
    }
}

impl TemplateMapping {
    /// The template for an LMS `template_pdf` of a request for `course_id`.
    /// An empty or absent value is no template (the CC's course rules decide).
    pub fn resolve(&self, template_pdf: &str, course_id: &str) -> TemplateChoice {
        let pdf = template_pdf.trim();
        let none = |by: &str| TemplateChoice {
            template: None,
            by: by.to_owned(),
        };
        if pdf.is_empty() {
            return none("no template_pdf");
        }
        let named = |t: String, by: String| TemplateChoice {
            template: (!t.trim().is_empty()).then_some(t),
            by,
        };
        if let Some(mapped) = self.map.get(pdf) {
            return named(mapped.clone(), "template_map".into());
        }
        let standard = org_and_course(course_id)
            .and_then(|(o, c)| standard_mode(pdf, o, c).map(|m| (o, c, m)));
        for (i, rule) in self.rules.iter().enumerate() {
            if let Some(t) = rule.apply(pdf, standard) {
                return named(t, format!("template_rules[{i}]"));
            }
        }
        if let Some(d) = &self.default {
            return named(d.clone(), "template_default".into());
        }
        let stripped = pdf
            .strip_suffix(".pdf")
            .or_else(|| pdf.strip_suffix(".PDF"))
            .unwrap_or(pdf);
        named(stripped.to_owned(), "file name".into())
    }
}

/// A course name for a request that has none (edx-platform's example
/// certificates; the 2013 LMS's creates): `[course_names]`, else "ORG COURSE"
/// from the course key (`course-v1:edX+DemoX+Demo_Course` → "edX DemoX"), else
/// None (the certificate then prints the course id).
pub fn course_name_for(course_id: &str, names: &BTreeMap<String, String>) -> Option<String> {
    if let Some(n) = names.get(course_id) {
        return Some(n.clone());
    }
    let (org, course) = org_and_course(course_id)?;
    Some(format!("{org} {}", course.replace('_', " ")))
}

/// The LMS's language code as a BCP 47 tag: Open edX writes `zh_HANS`, `pt_BR`
/// (course languages) or `zh-hans`, `zh-cn` (Django); BCP 47 wants `zh-Hans`,
/// `pt-BR`. Script subtags are title case, regions upper case, the rest lower
/// case. None when it is not a language tag at all.
pub fn bcp47(code: &str) -> Option<String> {
    let code = code.trim();
    if code.is_empty() || code.len() > testamur_common::request::MAX_LANG {
        return None;
    }
    let mut out = Vec::new();
    for (i, part) in code.split(['-', '_']).enumerate() {
        let ok_len = (1..=8).contains(&part.len());
        if !ok_len || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        if i == 0 {
            if !part.bytes().all(|b| b.is_ascii_alphabetic()) {
                return None;
            }
            out.push(part.to_ascii_lowercase());
        } else if part.len() == 4 && part.bytes().all(|b| b.is_ascii_alphabetic()) {
            let lower = part.to_ascii_lowercase();
            out.push(lower[..1].to_ascii_uppercase() + &lower[1..]);
        } else if part.len() == 2 && part.bytes().all(|b| b.is_ascii_alphabetic()) {
            out.push(part.to_ascii_uppercase());
        } else {
            out.push(part.to_ascii_lowercase());
        }
    }
    Some(out.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(org: Option<&str>, course: Option<&str>, mode: Option<&str>, t: &str) -> TemplateRule {
        TemplateRule {
            org: org.map(Into::into),
            course: course.map(Into::into),
            mode: mode.map(Into::into),
            pdf: None,
            template: t.into(),
        }
    }

    #[test]
    fn course_keys_and_standard_names() {
        assert_eq!(
            org_and_course("course-v1:MITx+6.002x+2024_T1"),
            Some(("MITx", "6.002x"))
        );
        assert_eq!(
            org_and_course("HarvardX/CS50/2012"),
            Some(("HarvardX", "CS50"))
        );
        assert_eq!(org_and_course("just-an-id"), None);
        // Hyphens inside org or course are why names are matched, not split.
        let (o, c) = org_and_course("course-v1:Big-Org+Intro-101+R").unwrap();
        assert_eq!(
            standard_mode("certificate-template-Big-Org-Intro-101-verified.pdf", o, c),
            Some("verified")
        );
        assert_eq!(
            standard_mode("certificate-template-Big-Org-Intro-101.pdf", o, c),
            Some("standard")
        );
        assert_eq!(
            standard_mode("certificate-template-Big-Org.pdf", o, c),
            None
        );
    }

    #[test]
    fn globs() {
        assert!(glob("MITx", "MITx"));
        assert!(!glob("MITx", "MITx2"));
        assert!(glob("6.*", "6.002x"));
        assert!(glob("*x", "6.002x"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert!(glob("*", ""));
        assert!(!glob("ab*ba", "aba"));
    }

    #[test]
    fn resolution_order_map_rules_default_file_name() {
        let m = TemplateMapping {
            map: [(
                "certificate-template-MITx-6.002x.pdf".to_owned(),
                "letter".to_owned(),
            )]
            .into(),
            rules: vec![
                rule(Some("MITx"), None, Some("verified"), "mit-{mode}"),
                rule(Some("Harvard*"), Some("CS*"), None, "{org}-{course}"),
                TemplateRule {
                    pdf: Some("old-*.pdf".into()),
                    ..rule(None, None, None, "")
                },
            ],
            default: Some("classic".into()),
        };
        let r = |pdf: &str, course: &str| {
            let c = m.resolve(pdf, course);
            (c.template, c.by)
        };
        let mit = "course-v1:MITx+6.002x+2024";
        assert_eq!(
            r("certificate-template-MITx-6.002x.pdf", mit),
            (Some("letter".into()), "template_map".into())
        );
        assert_eq!(
            r("certificate-template-MITx-6.002x-verified.pdf", mit),
            (Some("mit-verified".into()), "template_rules[0]".into())
        );
        assert_eq!(
            r(
                "certificate-template-HarvardX-CS50.pdf",
                "HarvardX/CS50/2012"
            ),
            (Some("HarvardX-CS50".into()), "template_rules[1]".into())
        );
        // The standard name of another course is not a standard name here.
        assert_eq!(
            r(
                "certificate-template-MITx-6.002x-verified.pdf",
                "course-v1:MITx+8.01+R"
            ),
            (Some("classic".into()), "template_default".into())
        );
        assert_eq!(
            r("old-physics.pdf", mit),
            (None, "template_rules[2]".into())
        );
        assert_eq!(r("", mit), (None, "no template_pdf".into()));
        let legacy = TemplateMapping::default();
        assert_eq!(
            legacy.resolve("fancy.pdf", mit).template.as_deref(),
            Some("fancy")
        );
        let cluster = TemplateMapping {
            default: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(cluster.resolve("fancy.pdf", mit).template, None);
    }

    #[test]
    fn rules_are_checked() {
        assert!(rule(None, None, None, "x").problem().is_some());
        assert!(rule(Some("a"), None, Some("honor"), "x")
            .problem()
            .unwrap()
            .contains("honor"));
        assert!(rule(Some("a"), None, None, "{run}")
            .problem()
            .unwrap()
            .contains("{run}"));
        assert!(rule(Some("a"), None, None, "{org")
            .problem()
            .unwrap()
            .contains("unclosed"));
        assert_eq!(
            rule(Some("a"), None, None, "t-{org}-{mode}").problem(),
            None
        );
    }

    #[test]
    fn course_names_and_languages() {
        let names: BTreeMap<String, String> =
            [("course-v1:A+B+C".to_owned(), "Bridges".to_owned())].into();
        assert_eq!(
            course_name_for("course-v1:A+B+C", &names).as_deref(),
            Some("Bridges")
        );
        assert_eq!(
            course_name_for("course-v1:edX+Open_DemoX+2024", &names).as_deref(),
            Some("edX Open DemoX")
        );
        assert_eq!(course_name_for("plain", &names), None);

        for (lms, tag) in [
            ("zh_HANS", "zh-Hans"),
            ("zh_HANT", "zh-Hant"),
            ("zh-hant", "zh-Hant"),
            ("zh-tw", "zh-TW"),
            ("pt_BR", "pt-BR"),
            ("JA", "ja"),
            (" ko ", "ko"),
            ("es-419", "es-419"),
            ("sr-Latn-RS", "sr-Latn-RS"),
        ] {
            assert_eq!(bcp47(lms).as_deref(), Some(tag), "{lms}");
        }
        for bad in ["", "1a", "zh--x", "not a tag", "zh_abcdefghi"] {
            assert_eq!(bcp47(bad), None, "{bad}");
        }
    }
}
