//! The catalogues of the live workservers taken together, and the one rule for
//! which template, and which version of it, a submission is pinned to.
//!
//! During a rolling template update some workservers run the old templates and
//! some the new. A submission is accepted when some live workserver can draw it;
//! its template's name comes from the request, else from the course mapping of the
//! newest catalogue (the update being rolled out); its version is that of the
//! newest catalogue that has the template and can draw every field. The job is then
//! leased only to workservers with that version (cc/src/store/lease.lua), so no
//! certificate is drawn by a template other than the one it was accepted for.

use std::sync::Arc;

use crate::catalog::{Catalog, CatalogError};
use crate::request::FieldError;

/// Catalogues, newest registration first; empty when no workserver has sent one
/// (submissions are then neither checked nor pinned).
#[derive(Debug, Clone, Default)]
pub struct Catalogs(pub Vec<Arc<Catalog>>);

/// What a submission is pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub template: String,
    /// `""` from a workserver that sends no versions.
    pub version: String,
}

impl Pinned {
    /// The job's queue (`{template}@{version}`), see cc/src/store/mod.rs.
    pub fn queue(&self) -> String {
        format!("{}@{}", self.template, self.version)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No live catalogue has the template (or the newest maps the course to one
    /// it lacks): the `template` field's error.
    Template(CatalogError),
    /// Some catalogue has `template` but none can draw a field.
    Field { template: String, error: FieldError },
}

impl Catalogs {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The newest catalogue, whose course mapping and default apply.
    pub fn newest(&self) -> Option<&Catalog> {
        self.0.first().map(|c| &**c)
    }

    /// Pins a request to a template version (None when there is no catalogue).
    /// `fields` are the values the template would print.
    pub fn pin(
        &self,
        requested: Option<&str>,
        course_id: &str,
        fields: &[(&'static str, &str)],
    ) -> Result<Option<Pinned>, Refusal> {
        let Some(newest) = self.newest() else {
            return Ok(None);
        };
        let name = match requested.filter(|n| !n.is_empty()) {
            Some(n) if self.0.iter().any(|c| c.templates.contains_key(n)) => n.to_owned(),
            Some(n) => {
                return Err(Refusal::Template(CatalogError::UnknownTemplate {
                    name: n.to_owned(),
                    known: self.template_names().join(", "),
                }))
            }
            None => newest
                .resolve(None, course_id)
                .map_err(Refusal::Template)?
                .to_owned(),
        };
        let mut first_refusal = None;
        for c in self.0.iter().filter(|c| c.templates.contains_key(&name)) {
            match c.check(&name, fields) {
                Ok(()) => {
                    return Ok(Some(Pinned {
                        version: c.templates[&name].version.clone(),
                        template: name,
                    }))
                }
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        // A template found above is in some catalogue, so there was a refusal.
        let error = first_refusal.unwrap_or(FieldError {
            field: "template",
            message: format!("template `{name}` is in no catalogue"),
        });
        Err(Refusal::Field {
            template: name,
            error,
        })
    }

    /// The catalogue a pinned request was checked against (for the operator's log
    /// of a refusal, and the course language).
    pub fn with_template(&self, template: &str) -> Option<&Catalog> {
        self.0
            .iter()
            .find(|c| c.templates.contains_key(template))
            .map(|c| &**c)
    }

    /// Every template some live workserver has, sorted, once each.
    pub fn template_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .flat_map(|c| c.templates.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::catalog::{CourseRule, Coverage, TemplateInfo};

    /// A catalogue whose templates print the name in a stack covering `chars`.
    fn catalog(default: &str, templates: &[(&str, &str)], course: &str, chars: &str) -> Catalog {
        let fields: BTreeMap<String, Vec<String>> =
            [("name".to_owned(), vec!["s".to_owned()])].into();
        Catalog {
            default: default.into(),
            courses: vec![CourseRule {
                course: "course-v1:X+*".into(),
                template: course.into(),
                lang: None,
            }],
            templates: templates
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        TemplateInfo {
                            fields: fields.clone(),
                            version: v.to_string(),
                            max_width: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            coverage: [(
                "s".to_owned(),
                Coverage::from_code_points(chars.chars().map(|c| c as u32)),
            )]
            .into(),
        }
    }

    fn pin(
        c: &Catalogs,
        t: Option<&str>,
        course: &str,
        name: &str,
    ) -> Result<Option<Pinned>, Refusal> {
        c.pin(t, course, &[("name", name)])
    }

    fn pinned(t: &str, v: &str) -> Option<Pinned> {
        Some(Pinned {
            template: t.into(),
            version: v.into(),
        })
    }

    #[test]
    fn the_newest_catalogue_maps_courses_and_wins_versions() {
        let old = catalog("a", &[("a", "1"), ("gone", "1")], "a", "abc");
        let new = catalog("a", &[("a", "2"), ("b", "2")], "b", "abc");
        let c = Catalogs(vec![Arc::new(new), Arc::new(old)]);
        assert_eq!(
            pin(&c, None, "course-v1:X+1+1", "abc"),
            Ok(pinned("b", "2"))
        );
        assert_eq!(
            pin(&c, None, "course-v1:Y+1+1", "abc"),
            Ok(pinned("a", "2"))
        );
        // A template only the old workservers still have is accepted, for them.
        assert_eq!(
            pin(&c, Some("gone"), "course-v1:Y+1+1", "a"),
            Ok(pinned("gone", "1"))
        );
        assert!(matches!(
            pin(&c, Some("nope"), "x", "a"),
            Err(Refusal::Template(CatalogError::UnknownTemplate { known, .. })) if known == "a, b, gone"
        ));
        assert_eq!(Catalogs::default().pin(None, "x", &[]), Ok(None));
    }

    #[test]
    fn a_name_only_an_older_version_can_draw_is_pinned_to_it() {
        let old = catalog("a", &[("a", "1")], "a", "abcé");
        let new = catalog("a", &[("a", "2")], "a", "abc");
        let c = Catalogs(vec![Arc::new(new), Arc::new(old)]);
        assert_eq!(pin(&c, None, "z", "abé"), Ok(pinned("a", "1")));
        assert_eq!(pin(&c, None, "z", "ab"), Ok(pinned("a", "2")));
        // Nobody can draw it: the newest's refusal.
        let Err(Refusal::Field { template, error: e }) = pin(&c, None, "z", "abж") else {
            panic!("drawable?")
        };
        assert_eq!(template, "a");
        assert_eq!(e.field, "name");
        assert!(e.message.contains("U+0436"), "{}", e.message);
    }
}
