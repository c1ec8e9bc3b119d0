//! Loading a templates directory: `index.toml` (default template, course mapping,
//! font stacks, font directories) plus one TOML file per template, into the
//! [`Templates`] the renderer draws with and the [`Catalog`] the workserver
//! registers (the CC checks every submission against that catalogue's coverage).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use testamur_common::catalog::{Catalog, CourseRule, TemplateInfo, TEXT_FIELDS};

use super::capacity;
use super::faces;
use super::fields::Piece;
use super::fonts::{FontBook, FontStack};
use super::template::{read_toml, template_from_toml, terr, TemplateError, Templates};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexFile {
    default: String,
    #[serde(default)]
    courses: BTreeMap<String, CourseEntry>,
    fonts: BTreeMap<String, Vec<String>>,
    /// Folders whose fonts are tried after each stack's own (default
    /// [`faces::DEFAULT_DIRS`]; `[]` for none). Relative to the templates folder.
    #[serde(default)]
    font_dirs: Option<Vec<PathBuf>>,
}

/// A course rule's value: the template's name, or a table that also gives the
/// language of the course's names (`{ template = "classic", lang = "ja" }`).
enum CourseEntry {
    Template(String),
    Table(CourseTable),
}

impl<'de> Deserialize<'de> for CourseEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CourseEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a template name, or a table such as { template = \"classic\", lang = \"ja\" }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CourseEntry, E> {
                Ok(CourseEntry::Template(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<CourseEntry, A::Error> {
                CourseTable::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(CourseEntry::Table)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CourseTable {
    template: String,
    #[serde(default)]
    lang: Option<String>,
}

impl CourseEntry {
    fn parts(&self) -> (&str, Option<&str>) {
        match self {
            CourseEntry::Template(t) => (t, None),
            CourseEntry::Table(t) => (&t.template, t.lang.as_deref()),
        }
    }
}

impl Templates {
    /// Loads `dir/index.toml` and every other `*.toml` in `dir` as a template.
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let index_path = dir.join("index.toml");
        let index: IndexFile = read_toml(&index_path)?;
        let mut fonts = FontBook::default();
        let mut stacks = Vec::new();
        let mut stack_ids = BTreeMap::new();
        for (name, specs) in &index.fonts {
            if specs.is_empty() {
                return Err(terr(
                    &index_path,
                    format!("fonts.{name}"),
                    "a font stack needs at least one font",
                ));
            }
            let mut ids = Vec::new();
            for spec in specs {
                let id = fonts
                    .load(dir, spec)
                    .map_err(|e| terr(&index_path, format!("fonts.{name}"), e))?;
                ids.push(id);
            }
            stack_ids.insert(name.clone(), stacks.len());
            stacks.push(FontStack::new(name.clone(), ids, &fonts));
        }
        let dirs: Vec<PathBuf> = match &index.font_dirs {
            Some(d) => d.iter().map(|p| dir.join(p)).collect(),
            None => faces::DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
        };
        let t0 = std::time::Instant::now();
        fonts.add_fallback_dirs(&dirs);
        tracing::debug!(dirs = ?dirs, ms = t0.elapsed().as_millis() as u64, "font directories scanned");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| terr(dir, "templates", e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "toml")
                    && p.file_name().is_some_and(|n| n != "index.toml")
            })
            .collect();
        files.sort();
        let mut templates = BTreeMap::new();
        let mut versions = BTreeMap::new();
        let mut limits = BTreeMap::new();
        for file in &files {
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(file).map_err(|e| terr(file, "(file)", e))?;
            let t = template_from_toml(file, &text, &name, dir, &stack_ids, &index.fonts)?;
            versions.insert(name.clone(), version(&text, &t, &stacks, &index.fonts));
            let sample_url = capacity::SAMPLE_VERIFY_URL;
            limits.insert(
                name.clone(),
                capacity::check_template(file, &t, &stacks, &fonts, sample_url, false)?,
            );
            templates.insert(name, t);
        }
        if templates.is_empty() {
            return Err(terr(
                dir,
                "templates",
                "no template files (*.toml besides index.toml)",
            ));
        }
        let known = templates.keys().cloned().collect::<Vec<_>>().join(", ");
        if !templates.contains_key(&index.default) {
            return Err(terr(
                &index_path,
                "default",
                format!("no template `{}`; there are: {known}", index.default),
            ));
        }
        let mut courses = Vec::new();
        for (course, entry) in &index.courses {
            let (template, lang) = entry.parts();
            if let Some(l) = lang {
                testamur_common::request::parse_lang(l).map_err(|e| {
                    terr(&index_path, format!("courses.\"{course}\".lang"), e.message)
                })?;
            }
            if !templates.contains_key(template) {
                return Err(terr(
                    &index_path,
                    format!("courses.\"{course}\""),
                    format!("no template `{template}`; there are: {known}"),
                ));
            }
            courses.push(CourseRule {
                course: course.clone(),
                template: template.to_owned(),
                lang: lang.map(str::to_owned),
            });
        }
        // Exact ids first, then prefixes, longest first: the most specific rule wins.
        courses.sort_by_key(|r| (r.course.ends_with('*'), std::cmp::Reverse(r.course.len())));
        let mut infos = BTreeMap::new();
        let mut used_stacks = BTreeMap::new();
        for (name, t) in &templates {
            let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let blocks = t
                .texts
                .iter()
                .chain(t.signatories.iter().flat_map(|s| [&s.name, &s.title]));
            for b in blocks {
                for p in &b.pieces {
                    if let Piece::Field { name: f, .. } = p {
                        let f = if f == "grade_sentence" {
                            "grade"
                        } else {
                            f.as_str()
                        };
                        if TEXT_FIELDS.contains(&f) {
                            let stack = &stacks[b.stack].name;
                            let v = fields.entry(f.to_owned()).or_default();
                            if !v.contains(stack) {
                                v.push(stack.clone());
                            }
                            used_stacks.insert(stack.clone(), b.stack);
                        }
                    }
                }
            }
            infos.insert(
                name.clone(),
                TemplateInfo {
                    fields,
                    version: versions.remove(name).unwrap_or_default(),
                    max_width: limits.remove(name).unwrap_or_default(),
                },
            );
        }
        let coverage = used_stacks
            .into_iter()
            .map(|(name, i)| (name, stacks[i].coverage(&fonts)))
            .collect();
        let catalog = Catalog {
            default: index.default.clone(),
            courses,
            templates: infos,
            coverage,
        };
        Ok(Self {
            fonts,
            stacks,
            templates,
            catalog,
        })
    }
}

/// A template's version: a digest of its file, the artwork it draws (as loaded)
/// and its font stacks as `index.toml` writes them. Equal on every workserver that
/// has the same template; any edit of these gives a new one. (Font files are not
/// read: a font package update keeps the version.)
fn version(
    text: &str,
    t: &super::template::Template,
    stacks: &[FontStack],
    specs: &BTreeMap<String, Vec<String>>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    part(text.as_bytes());
    if let Some(bg) = &t.background {
        part(bg.art.chunk.as_bytes());
    }
    for s in &t.signatories {
        if let Some(img) = &s.image {
            part(img.art.chunk.as_bytes());
        }
    }
    let mut used: Vec<&str> = t
        .texts
        .iter()
        .chain(t.signatories.iter().flat_map(|s| [&s.name, &s.title]))
        .map(|b| stacks[b.stack].name.as_str())
        .collect();
    used.sort_unstable();
    used.dedup();
    for name in used {
        part(name.as_bytes());
        for spec in specs.get(name).into_iter().flatten() {
            part(spec.as_bytes());
        }
    }
    hex::encode(&h.finalize()[..6])
}

impl Templates {
    /// Checks the blocks that print the verify URL with `verify_url` (see
    /// [`capacity::check_template`]).
    pub fn check_verify_url(&self, verify_url: &str) -> Result<(), TemplateError> {
        for t in self.templates.values() {
            capacity::check_template(&t.file, t, &self.stacks, &self.fonts, verify_url, true)?;
        }
        Ok(())
    }
}
