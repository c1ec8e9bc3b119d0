//! The template catalogue: which templates a workserver can render, which course maps
//! to which template, and which characters each template can draw in each field.
//!
//! A workserver builds it from its templates directory and sends it when it registers;
//! the CC keeps it in Redis and checks every submission against it, so a name that no
//! configured font can draw is a 422 at submit time, never a box in a PDF or a failed
//! job. Both sides choose a template with [`Catalog::resolve`], so they always agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::request::FieldError;

/// Request fields a template may print, as named in the API.
pub const TEXT_FIELDS: &[&str] = &["name", "course_name", "org", "grade", "designation"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Template used when neither the request nor a course rule picks one.
    pub default: String,
    /// Course rules in the order they are tried: exact matches first, then prefixes
    /// (a pattern ending in `*`), longest first.
    pub courses: Vec<CourseRule>,
    pub templates: BTreeMap<String, TemplateInfo>,
    /// Characters each font stack can draw, by stack name.
    pub coverage: BTreeMap<String, Coverage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseRule {
    /// An exact course id, or a prefix followed by `*`.
    pub course: String,
    pub template: String,
    /// Language of the course's names when a request gives none (BCP 47): picks
    /// the CJK face of a Han-only name before the template's own default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

impl CourseRule {
    pub fn matches(&self, course_id: &str) -> bool {
        match self.course.strip_suffix('*') {
            Some(prefix) => course_id.starts_with(prefix),
            None => course_id == self.course,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateInfo {
    /// Request field -> the font stacks that print it (one per text block that
    /// uses the field; every one of them must be able to draw the value).
    pub fields: BTreeMap<String, Vec<String>>,
    /// A digest of what the template draws (its file, the artwork it reads, its
    /// font stacks): two workservers with equal versions print alike. Jobs are
    /// pinned to a version at submit and leased only to workservers that have it
    /// (see [`crate::catalogs`]). Empty from workservers that predate versions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Request field -> the most columns of it ([`crate::columns::width`]) the
    /// template's boxes hold at their smallest sizes; a wider value is refused at
    /// submit. A field not listed has only the API's own limit.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::json_int::u32_map"
    )]
    pub max_width: BTreeMap<String, u32>,
}

/// A set of Unicode scalar values as sorted, disjoint, inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Coverage(Vec<(u32, u32)>);

/// Read as sent by a workserver: pairs of code points (0 to 0x10FFFF, `12.0` is
/// 12), in any order; they are sorted and merged here, and a pair whose end is
/// before its start covers nothing.
impl<'de> Deserialize<'de> for Coverage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs: Vec<(crate::json_int::CodePoint, crate::json_int::CodePoint)> =
            Vec::deserialize(d)?;
        let ranges = pairs
            .into_iter()
            .map(|(s, e)| (s.0, e.0))
            .filter(|(s, e)| s <= e)
            .collect();
        Ok(Coverage::default().union(&Coverage(ranges)))
    }
}

impl Coverage {
    /// From any code points, in any order, with duplicates.
    pub fn from_code_points(points: impl IntoIterator<Item = u32>) -> Self {
        let mut v: Vec<u32> = points.into_iter().collect();
        // A font's cmap lists its code points in order: no sort needed then.
        if !v.is_sorted() {
            v.sort_unstable();
        }
        v.dedup();
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for p in v {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == p => *end = p,
                _ => ranges.push((p, p)),
            }
        }
        Self(ranges)
    }

    pub fn union(&self, other: &Coverage) -> Coverage {
        Coverage::union_all([self, other])
    }

    /// The union of many coverages, merged in one pass.
    pub fn union_all<'a>(all: impl IntoIterator<Item = &'a Coverage>) -> Coverage {
        // The faces of a font family often cover the same: merge each set once.
        let mut distinct: Vec<&Coverage> = Vec::new();
        for c in all {
            if !distinct
                .iter()
                .any(|d| d.0.len() == c.0.len() && d.0 == c.0)
            {
                distinct.push(c);
            }
        }
        if let [one] = distinct[..] {
            return one.clone();
        }
        let mut all: Vec<(u32, u32)> = distinct.iter().flat_map(|c| c.0.iter().copied()).collect();
        all.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(all.len());
        for (s, e) in all {
            match out.last_mut() {
                Some((_, end)) if s <= end.saturating_add(1) => *end = (*end).max(e),
                _ => out.push((s, e)),
            }
        }
        Coverage(out)
    }

    pub fn contains(&self, c: char) -> bool {
        let c = c as u32;
        let i = self.0.partition_point(|&(_, end)| end < c);
        self.0.get(i).is_some_and(|&(start, _)| start <= c)
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.0
    }
}

/// Characters that need no glyph: spaces, and invisible format characters that
/// shaping consumes (joiners, direction marks, variation selectors).
pub fn needs_no_glyph(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{180E}'
            | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
            | '\u{E0100}'..='\u{E01EF}')
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("unknown template `{name}`; this cluster has: {known}")]
    UnknownTemplate { name: String, known: String },
    #[error("template `{template}` (from {via}) is not in the catalogue")]
    Dangling { template: String, via: String },
}

impl Catalog {
    /// The template for a request: its `template` field, else the first course rule
    /// that matches, else the default.
    pub fn resolve<'a>(
        &'a self,
        requested: Option<&'a str>,
        course_id: &str,
    ) -> Result<&'a str, CatalogError> {
        if let Some(name) = requested.filter(|n| !n.is_empty()) {
            return match self.templates.contains_key(name) {
                true => Ok(name),
                false => Err(CatalogError::UnknownTemplate {
                    name: name.to_owned(),
                    known: self
                        .templates
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            };
        }
        let chosen = self
            .courses
            .iter()
            .find(|r| r.matches(course_id))
            .map(|r| (r.template.as_str(), r.course.as_str()))
            .unwrap_or((self.default.as_str(), "default"));
        match self.templates.contains_key(chosen.0) {
            true => Ok(chosen.0),
            false => Err(CatalogError::Dangling {
                template: chosen.0.to_owned(),
                via: chosen.1.to_owned(),
            }),
        }
    }

    /// The language a course rule gives the course's names, if any.
    pub fn course_lang(&self, course_id: &str) -> Option<&str> {
        self.courses
            .iter()
            .find(|r| r.matches(course_id))
            .and_then(|r| r.lang.as_deref())
    }

    /// The first field value that `template` cannot draw, with the font stack
    /// and the distinct characters (in order) that no font of it has.
    pub fn missing(
        &self,
        template: &str,
        fields: &[(&'static str, &str)],
    ) -> Option<(&'static str, String, Vec<char>)> {
        let info = self.templates.get(template)?;
        for &(field, value) in fields {
            let Some(stacks) = info.fields.get(field) else {
                continue;
            };
            for stack in stacks {
                let Some(cov) = self.coverage.get(stack) else {
                    continue;
                };
                let mut missing: Vec<char> = Vec::new();
                for c in value.chars() {
                    if !needs_no_glyph(c) && !cov.contains(c) && !missing.contains(&c) {
                        missing.push(c);
                    }
                }
                if !missing.is_empty() {
                    return Some((field, stack.clone(), missing));
                }
            }
        }
        None
    }

    /// The first field value wider than `template`'s boxes hold (see
    /// [`TemplateInfo::max_width`]): the field, the value's width and the limit.
    pub fn too_wide(
        &self,
        template: &str,
        fields: &[(&'static str, &str)],
    ) -> Option<(&'static str, usize, u32)> {
        let info = self.templates.get(template)?;
        fields.iter().find_map(|&(field, value)| {
            let max = *info.max_width.get(field)?;
            let w = crate::columns::width(value);
            (w > max as usize).then_some((field, w, max))
        })
    }

    /// Checks that `template` can draw every given field value. The error names the
    /// field, the characters that no font can draw (whole, with code points) and
    /// their scripts; or the field and the limit when the value is longer than the
    /// template's box holds at its smallest size.
    pub fn check(&self, template: &str, fields: &[(&'static str, &str)]) -> Result<(), FieldError> {
        let Some((field, _stack, missing)) = self.missing(template, fields) else {
            return match self.too_wide(template, fields) {
                None => Ok(()),
                Some((field, width, max)) => Err(FieldError {
                    field,
                    message: format!(
                        "the {} is too long for template `{template}`: at its smallest print \
                         size the template has room for {max} characters of it, this one takes \
                         {width} (a CJK or other wide character counts as 2, a combining mark \
                         as 0); send a shorter {}",
                        field.replace('_', " "),
                        field.replace('_', " "),
                    ),
                }),
            };
        };
        let scripts = crate::scripts::scripts(&missing);
        Err(FieldError {
            field,
            message: format!(
                "no font of template `{template}` can draw {}: {} (script{}: {}); send the \
                 {} as written in another script, or ask the operator to install a font \
                 for {}",
                if missing.len() == 1 {
                    "this character"
                } else {
                    "these characters"
                },
                crate::scripts::describe(&missing),
                if scripts.len() == 1 { "" } else { "s" },
                scripts.join(", "),
                field.replace('_', " "),
                scripts.join(", "),
            ),
        })
    }

    /// A digest of the catalogue's content: equal catalogues have equal digests.
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_as_sent_is_sorted_and_merged() {
        let c: Coverage =
            serde_json::from_str("[[300, 400.0], [65, 90], [350, 500], [10, 5], [91, 91]]")
                .unwrap();
        assert_eq!(c.ranges(), &[(65, 91), (300, 500)]);
        assert!(c.contains('Z') && c.contains('[') && !c.contains('a'));
        assert!(serde_json::from_str::<Coverage>("[[0, 1114112]]").is_err());
        assert!(serde_json::from_str::<Coverage>("[[-1, 5]]").is_err());
        assert!(serde_json::from_str::<Coverage>("[[1.5, 5]]").is_err());
    }

    fn catalog() -> Catalog {
        let mut templates = BTreeMap::new();
        let fields: BTreeMap<String, Vec<String>> =
            [("name".to_owned(), vec!["latin".to_owned()])].into();
        templates.insert(
            "a".to_owned(),
            TemplateInfo {
                fields: fields.clone(),
                version: "a1".into(),
                max_width: [("name".to_owned(), 12)].into(),
            },
        );
        templates.insert(
            "b".to_owned(),
            TemplateInfo {
                fields,
                version: "b1".into(),
                max_width: BTreeMap::new(),
            },
        );
        templates.insert(
            "c".to_owned(),
            TemplateInfo {
                fields: BTreeMap::new(),
                version: String::new(),
                max_width: BTreeMap::new(),
            },
        );
        Catalog {
            default: "a".into(),
            courses: vec![
                CourseRule {
                    course: "course-v1:X+1+2026".into(),
                    template: "c".into(),
                    lang: None,
                },
                CourseRule {
                    course: "course-v1:X+*".into(),
                    template: "b".into(),
                    lang: Some("ja".into()),
                },
            ],
            templates,
            coverage: [(
                "latin".to_owned(),
                Coverage::from_code_points((0x20..0x7f).chain([0xe9])),
            )]
            .into(),
        }
    }

    #[test]
    fn precedence_request_then_course_then_default() {
        let c = catalog();
        assert_eq!(c.resolve(Some("c"), "course-v1:X+9+9").unwrap(), "c");
        assert_eq!(c.resolve(None, "course-v1:X+1+2026").unwrap(), "c");
        assert_eq!(c.resolve(None, "course-v1:X+9+9").unwrap(), "b");
        assert_eq!(c.resolve(None, "course-v1:Y+1+1").unwrap(), "a");
        assert_eq!(c.resolve(Some(""), "course-v1:Y+1+1").unwrap(), "a");
        let e = c.resolve(Some("nope"), "x").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("a, b, c"), "{e}");
        assert_eq!(c.course_lang("course-v1:X+9+9"), Some("ja"));
        assert_eq!(c.course_lang("course-v1:X+1+2026"), None);
        assert_eq!(c.course_lang("course-v1:Y+1+1"), None);
    }

    #[test]
    fn coverage_names_missing_characters() {
        let c = catalog();
        assert!(c.check("a", &[("name", "José Smith")]).is_ok());
        let e = c.check("a", &[("name", "李 Smith\u{200D}")]).unwrap_err();
        assert_eq!(e.field, "name");
        assert!(e.message.contains("李 (U+674E, Han)"), "{}", e.message);
        assert!(e.message.contains("(script: Han)"), "{}", e.message);
        assert!(!e.message.contains('\u{FFFD}'), "{}", e.message);
        // A template that does not print the name accepts anything.
        assert!(c.check("c", &[("name", "李")]).is_ok());
    }

    /// Issue 13 item 6: a value longer than the template's box holds is refused,
    /// naming the field and the limit; wide characters count two columns.
    #[test]
    fn a_value_wider_than_the_box_is_refused_with_the_limit() {
        let c = catalog();
        assert!(c.check("a", &[("name", "José Smithé")]).is_ok());
        // 12 characters and a joiner, which takes no room.
        assert!(c.check("a", &[("name", "Jose Smithes\u{200D}")]).is_ok());
        assert!(c.check("a", &[("name", "Jose Smithess")]).is_err());
        let e = c.check("a", &[("name", "José Smith-Jones")]).unwrap_err();
        assert_eq!(e.field, "name");
        assert!(
            e.message.contains("template `a`")
                && e.message.contains("room for 12 characters")
                && e.message.contains("takes 16"),
            "{}",
            e.message
        );
        // Another template with no limit, and a field without one.
        assert!(c.check("b", &[("name", &"x".repeat(400))]).is_ok());
        assert!(c.check("a", &[("org", &"x".repeat(400))]).is_ok());
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""max_width":{"name":12}"#), "{json}");
        assert!(!json.contains(r#""max_width":{}"#), "{json}");
        let back: Catalog = serde_json::from_str(&json.replace(":12}", ":12.0}")).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn coverage_ranges() {
        let cov = Coverage::from_code_points([5, 1, 2, 3, 9, 10, 3]);
        assert_eq!(cov.ranges(), &[(1, 3), (5, 5), (9, 10)]);
        let u = cov.union(&Coverage::from_code_points([4, 11, 20]));
        assert_eq!(u.ranges(), &[(1, 5), (9, 11), (20, 20)]);
        assert!(u.contains('\u{14}') && !u.contains('\u{13}'));
    }
}
