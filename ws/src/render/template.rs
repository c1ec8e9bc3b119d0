//! The template format (docs/TEMPLATES.md) and loading a templates directory:
//! `index.toml` (default template, course mapping, font stacks) plus one TOML file
//! per template. Everything is checked at start-up, and every error names the file
//! and the key, so a bad template stops the workserver before it takes a job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use testamur_common::catalog::Catalog;

use super::artwork::{Background, Image};
use super::fields::{parse_pieces, prints_name, varies_per_certificate, GradeRules, Piece};
use super::fonts::{FontBook, FontStack};
use super::pdf::Glyphs;
pub(super) use super::template_file::read_toml;
use super::template_file::{parse_toml, SizeFile, TemplateFile};
pub use super::template_file::{FrameSpec, QrSpec};

#[derive(Debug, thiserror::Error)]
#[error("{file}: `{key}`: {message}")]
pub struct TemplateError {
    pub file: String,
    pub key: String,
    pub message: String,
}

pub(super) fn terr(
    file: &Path,
    key: impl Into<String>,
    message: impl std::fmt::Display,
) -> TemplateError {
    TemplateError {
        file: file.display().to_string(),
        key: key.into(),
        message: message.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Align {
    Left,
    Center,
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rgb(pub f32, pub f32, pub f32);

/// A text block: where, in which fonts, how large.
#[derive(Debug, Clone)]
pub struct TextBlock {
    /// Where it is in the template file: `text[3]`, `signatory[0].name`.
    pub key: String,
    pub pieces: Vec<Piece>,
    /// Box, in pt from the bottom-left corner of the page (PDF space).
    pub x: f32,
    pub y_top: f32,
    pub width: f32,
    pub height: f32,
    pub stack: usize,
    pub min_size: f32,
    pub max_size: f32,
    pub color: Rgb,
    pub align: Align,
    pub max_lines: usize,
    pub leading: f32,
    /// The text changes from one certificate to the next (it prints the name, the
    /// certificate id or the verify URL); other text repeats across a course.
    pub per_certificate: bool,
    /// Which font objects the text's glyphs go into (see [`Glyphs`]).
    pub glyphs: Glyphs,
}

pub struct Signatory {
    pub image: Option<Image>,
    /// Image box and the blocks for name and title below it.
    pub image_box: [f32; 4],
    pub rule: [f32; 3],
    pub color: Rgb,
    pub name: TextBlock,
    pub title: TextBlock,
}

pub struct Template {
    pub name: String,
    /// The template file, for errors found after loading.
    pub file: PathBuf,
    pub description: String,
    /// Page size in pt.
    pub page: (f32, f32),
    pub background: Option<Background>,
    pub noun: String,
    /// None: the job's issued date, written out ("November 23rd, 2026").
    pub fixed_date: Option<String>,
    pub grade: GradeRules,
    pub disclaimer: Option<String>,
    pub verification: bool,
    /// Language of names that requests do not give one for (BCP 47).
    pub lang: Option<String>,
    /// QR code square (x, y bottom, side) in pt.
    pub qr: Option<[f32; 3]>,
    pub frames: Vec<(FrameSpec, Rgb, [f32; 4])>,
    pub texts: Vec<TextBlock>,
    pub signatories: Vec<Signatory>,
}

/// Every template of a workserver, their fonts and the course mapping.
pub struct Templates {
    pub fonts: FontBook,
    pub stacks: Vec<FontStack>,
    pub templates: BTreeMap<String, Template>,
    pub catalog: Catalog,
}

const MM: f32 = 72.0 / 25.4;

pub fn parse_color(s: &str) -> Option<Rgb> {
    let h = s.strip_prefix('#')?;
    if h.len() != 6 || !h.is_ascii() {
        return None;
    }
    let c = |i: usize| {
        u8::from_str_radix(&h[i..i + 2], 16)
            .ok()
            .map(|v| v as f32 / 255.0)
    };
    Some(Rgb(c(0)?, c(2)?, c(4)?))
}

impl Templates {
    /// Checks `text` as the template file `file` of the templates directory `dir`
    /// these were loaded from (its font stacks), exactly as [`Templates::load`]
    /// checks each template file. For the fuzz targets and tools.
    pub fn template_from_toml(
        &self,
        dir: &Path,
        file: &Path,
        text: &str,
    ) -> Result<Template, TemplateError> {
        let stack_ids: BTreeMap<String, usize> = self
            .stacks
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let stacks: BTreeMap<String, Vec<String>> = self
            .stacks
            .iter()
            .map(|s| (s.name.clone(), Vec::new()))
            .collect();
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        template_from_toml(file, text, &name, dir, &stack_ids, &stacks)
    }
}

pub(super) fn template_from_toml(
    file: &Path,
    text: &str,
    name: &str,
    dir: &Path,
    stack_ids: &BTreeMap<String, usize>,
    stacks: &BTreeMap<String, Vec<String>>,
) -> Result<Template, TemplateError> {
    let raw: TemplateFile = parse_toml(file, text)?;
    let (w, h) = match raw.page.size.to_ascii_lowercase().as_str() {
        "a4" => (595.28, 841.89),
        "letter" => (612.0, 792.0),
        other => {
            return Err(terr(
                file,
                "page.size",
                format!("`{other}`: use \"A4\" or \"letter\""),
            ))
        }
    };
    let page = match raw.page.orientation.as_str() {
        "portrait" => (w, h),
        "landscape" => (h, w),
        other => {
            return Err(terr(
                file,
                "page.orientation",
                format!("`{other}`: use \"landscape\" or \"portrait\""),
            ))
        }
    };
    let color = |key: &str, s: &str| {
        parse_color(s).ok_or_else(|| {
            terr(
                file,
                key,
                format!("`{s}` is not a colour; write it as \"#rrggbb\""),
            )
        })
    };
    let stack = |key: &str, s: &str| {
        stack_ids.get(s).copied().ok_or_else(|| {
            terr(
                file,
                key,
                format!(
                    "no font stack `{s}` in index.toml; there are: {}",
                    stacks.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    };
    // A box must lie on the page; the error names the key that puts it off.
    let in_page = |prefix: &str, x: f32, y: f32, bw: f32, bh: f32| {
        let (pw, ph) = (page.0 / MM, page.1 / MM);
        let slack = 0.5 / MM;
        let off = if x < 0.0 {
            Some(("x", "is left of the page".to_owned()))
        } else if y < 0.0 {
            Some(("y", "is above the page".to_owned()))
        } else if bw <= 0.0 {
            Some(("width", "must be more than 0".to_owned()))
        } else if bh <= 0.0 {
            Some(("height", "must be more than 0".to_owned()))
        } else if x + bw > pw + slack {
            Some((
                "width",
                format!(
                    "ends at x + width = {} mm, past the page's right edge ({pw:.0} mm)",
                    x + bw
                ),
            ))
        } else if y + bh > ph + slack {
            Some((
                "height",
                format!(
                    "ends at y + height = {} mm, below the page's bottom edge ({ph:.0} mm)",
                    y + bh
                ),
            ))
        } else {
            None
        };
        match off {
            None => Ok(()),
            Some((k, why)) => Err(terr(file, format!("{prefix}.{k}"), format!(
                "the box x={x} y={y} width={bw} height={bh} (mm from the top-left corner of the {pw:.0} x {ph:.0} mm page) {why}"
            ))),
        }
    };
    let mut texts = Vec::new();
    for (i, t) in raw.text.iter().enumerate() {
        let key = |k: &str| format!("text[{i}].{k}");
        in_page(&format!("text[{i}]"), t.x, t.y, t.width, t.height)?;
        let pieces = parse_pieces(&t.text).map_err(|e| terr(file, key("text"), e))?;
        let (min_size, max_size) = match t.size {
            SizeFile::One(s) => (s, s),
            SizeFile::Range([a, b]) => (a.min(b), a.max(b)),
        };
        if !(min_size >= 1.0 && max_size <= 400.0) {
            return Err(terr(
                file,
                key("size"),
                "sizes are in pt, between 1 and 400",
            ));
        }
        let align = match t.align.as_str() {
            "left" => Align::Left,
            "center" | "centre" => Align::Center,
            "right" => Align::Right,
            other => {
                return Err(terr(
                    file,
                    key("align"),
                    format!("`{other}`: use left, center or right"),
                ))
            }
        };
        if !(1..=4).contains(&t.max_lines) {
            return Err(terr(file, key("max_lines"), "between 1 and 4"));
        }
        texts.push(TextBlock {
            key: format!("text[{i}]"),
            per_certificate: varies_per_certificate(&pieces),
            glyphs: if prints_name(&pieces) {
                Glyphs::Name
            } else {
                Glyphs::Repeating
            },
            pieces,
            x: t.x * MM,
            y_top: page.1 - t.y * MM,
            width: t.width * MM,
            height: t.height * MM,
            stack: stack(&key("font"), &t.font)?,
            min_size,
            max_size,
            color: color(&key("color"), &t.color)?,
            align,
            max_lines: t.max_lines,
            leading: t.leading.max(1.0),
        });
    }
    let mut frames = Vec::new();
    for (i, f) in raw.frame.iter().enumerate() {
        in_page(&format!("frame[{i}]"), f.x, f.y, f.width, f.height)?;
        let c = color(&format!("frame[{i}].color"), &f.color)?;
        let rect = [
            f.x * MM,
            page.1 - (f.y + f.height) * MM,
            f.width * MM,
            f.height * MM,
        ];
        frames.push((f.clone(), c, rect));
    }
    let mut signatories = Vec::new();
    for (i, s) in raw.signatory.iter().enumerate() {
        let key = |k: &str| format!("signatory[{i}].{k}");
        // A signatory block is 30 mm high.
        in_page(&format!("signatory[{i}]"), s.x, s.y, s.width, 30.0).map_err(|e| {
            TemplateError {
                key: e.key.replace(".height", ".y"),
                ..e
            }
        })?;
        let c = color(&key("color"), &s.color)?;
        let st = stack(&key("font"), &s.font)?;
        let image = match &s.image {
            Some(p) => {
                Some(Image::load_png(&dir.join(p)).map_err(|e| terr(file, key("image"), e))?)
            }
            None => None,
        };
        let block = |k: &str,
                     text: &str,
                     top_mm: f32,
                     h_mm: f32,
                     size: f32|
         -> Result<TextBlock, TemplateError> {
            Ok(TextBlock {
                key: key(k),
                pieces: vec![Piece::Lit(text.to_owned())],
                x: s.x * MM,
                y_top: page.1 - (s.y + top_mm) * MM,
                width: s.width * MM,
                height: h_mm * MM,
                stack: st,
                min_size: size * 0.6,
                max_size: size,
                color: c,
                align: Align::Center,
                max_lines: 1,
                leading: 1.0,
                per_certificate: false,
                glyphs: Glyphs::Repeating,
            })
        };
        if s.name.contains(['{', '}']) || s.title.contains(['{', '}']) {
            return Err(terr(
                file,
                key("name"),
                "signatory names and titles are fixed text",
            ));
        }
        signatories.push(Signatory {
            image,
            image_box: [
                s.x * MM,
                page.1 - (s.y + 16.0) * MM,
                s.width * MM,
                15.0 * MM,
            ],
            rule: [s.x * MM, page.1 - (s.y + 17.0) * MM, s.width * MM],
            color: c,
            name: block("name", &s.name, 18.0, 6.0, 11.0)?,
            title: block("title", &s.title, 24.0, 5.0, 8.5)?,
        });
    }
    let qr = match raw.qr {
        Some(q) => {
            in_page("qr.x", q.x, q.y, q.size, q.size)?;
            Some([q.x * MM, page.1 - (q.y + q.size) * MM, q.size * MM])
        }
        None => None,
    };
    let background = match &raw.background {
        Some(p) => {
            Some(Background::load(&dir.join(p), page).map_err(|e| terr(file, "background", e))?)
        }
        None => None,
    };
    let fixed_date = match raw.date.as_str() {
        "rolling" => None,
        "" => {
            return Err(terr(
                file,
                "date",
                "write \"rolling\" (the issued date) or the date text to print",
            ))
        }
        text => Some(text.to_owned()),
    };
    Ok(Template {
        name: name.to_owned(),
        file: file.to_owned(),
        description: raw.description,
        page,
        background,
        noun: raw.noun,
        fixed_date,
        grade: raw.grade,
        disclaimer: raw.disclaimer,
        verification: raw.verification,
        lang: raw.lang.clone(),
        qr,
        frames,
        texts,
        signatories,
    })
}
