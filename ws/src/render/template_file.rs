//! The template file as written (`NAME.toml`, docs/TEMPLATES.md): its keys and
//! their defaults, and reading TOML with errors that name the line (the checked
//! [`super::template::Template`] is built from these in `template.rs`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::fields::GradeRules;
use super::template::{terr, TemplateError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TemplateFile {
    #[serde(default)]
    pub(super) description: String,
    pub(super) page: PageFile,
    #[serde(default)]
    pub(super) background: Option<PathBuf>,
    #[serde(default = "default_noun")]
    pub(super) noun: String,
    #[serde(default = "default_date")]
    pub(super) date: String,
    #[serde(default)]
    pub(super) grade: GradeRules,
    #[serde(default)]
    pub(super) disclaimer: Option<String>,
    #[serde(default = "yes")]
    pub(super) verification: bool,
    /// Language (BCP 47) of the names when a request has none: picks the CJK face
    /// of names in Han characters only (docs/TEMPLATES.md).
    #[serde(default)]
    pub(super) lang: Option<String>,
    #[serde(default)]
    pub(super) qr: Option<QrSpec>,
    #[serde(default)]
    pub(super) frame: Vec<FrameSpec>,
    #[serde(default)]
    pub(super) text: Vec<TextFile>,
    #[serde(default)]
    pub(super) signatory: Vec<SignatoryFile>,
}

fn default_noun() -> String {
    "Certificate".into()
}
fn default_date() -> String {
    "rolling".into()
}
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageFile {
    pub(super) size: String,
    pub(super) orientation: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrSpec {
    /// Left and top edge and side, in mm from the top-left corner of the page.
    pub x: f32,
    pub y: f32,
    pub size: f32,
}

/// A decorative rectangle (borders, rules).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameSpec {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    #[serde(default = "default_color")]
    pub color: String,
    /// Line width in pt; 0 fills the rectangle instead.
    #[serde(default = "default_thickness")]
    pub thickness: f32,
}

fn default_color() -> String {
    "#222a3d".into()
}
fn default_thickness() -> f32 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TextFile {
    pub(super) text: String,
    pub(super) x: f32,
    pub(super) y: f32,
    pub(super) width: f32,
    pub(super) height: f32,
    pub(super) font: String,
    /// `[min, max]` in pt, or one size.
    pub(super) size: SizeFile,
    #[serde(default = "default_color")]
    pub(super) color: String,
    #[serde(default = "default_align")]
    pub(super) align: String,
    #[serde(default = "one")]
    pub(super) max_lines: usize,
    #[serde(default = "default_leading")]
    pub(super) leading: f32,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum SizeFile {
    One(f32),
    Range([f32; 2]),
}

fn default_align() -> String {
    "center".into()
}
fn one() -> usize {
    1
}
fn default_leading() -> f32 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignatoryFile {
    pub(super) name: String,
    pub(super) title: String,
    #[serde(default)]
    pub(super) image: Option<PathBuf>,
    pub(super) x: f32,
    pub(super) y: f32,
    pub(super) width: f32,
    pub(super) font: String,
    #[serde(default = "default_color")]
    pub(super) color: String,
}

pub(super) fn read_toml<T: serde::de::DeserializeOwned>(file: &Path) -> Result<T, TemplateError> {
    let text = std::fs::read_to_string(file).map_err(|e| terr(file, "(file)", e))?;
    parse_toml(file, &text)
}

pub(super) fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
) -> Result<T, TemplateError> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().to_owned();
        let key = match e.span() {
            Some(span) => format!("line {}", line_of(text, span.start)),
            None => "(file)".into(),
        };
        terr(file, key, msg)
    })
}

/// The 1-based line of byte `offset` in `text` (an offset at the start of a line
/// is on that line, not the one before).
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let before = &text.as_bytes()[..offset.min(text.len())];
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Block {
        width: f32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct File {
        block: Block,
    }

    /// Issue 13 item 7: a misspelt key is reported on its own line.
    #[test]
    fn a_toml_error_names_the_line_it_is_on() {
        let text = "# a template\n\n[block]\nwidht = 3\n";
        let e = parse_toml::<File>(Path::new("t.toml"), text).unwrap_err();
        assert_eq!(e.key, "line 4", "{e:?}");
        assert_eq!(line_of("a\nb", 0), 1);
        assert_eq!(line_of("a\nb", 2), 2);
        assert_eq!(line_of("a\n", 99), 2);
    }
}
