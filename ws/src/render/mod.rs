//! Rendering certificates: choosing the template, filling in its text, laying the
//! text out in every script, and writing the PDF.
//!
//! - [`template`]: the template format and loading a templates directory.
//! - `template_file`: a template file's TOML keys and defaults.
//! - [`fields`]: the values template text refers to (dates, grade sentence).
//! - [`fonts`]: font files and stacks, loaded once per process.
//! - [`faces`]: what installed fonts cover, read cheaply; CJK regional faces.
//! - `index`: loading a templates directory and its catalogue.
//! - [`layout`]: fallback, shaping, bidi, line breaking, shrink-to-fit.
//! - `capacity`: what fits where: the fields' length limits of the catalogue, and
//!   the start-up check that text shared by all certificates fits its box.
//! - [`artwork`]: background PDFs and PNG images, converted once.
//! - [`deflate`]: stream compression with per-thread reused state.
//! - [`pdf`]: the PDF writer (subset CID fonts, ToUnicode, content stream).
//! - `signature_slot`: the signature field left for the PDF's own signature.
//! - [`qr`]: the QR code of the verify URL.
//! - [`sfnt`]: dropping font tables a PDF does not need.
//!
//! Everything a template needs is loaded and checked at start-up; [`Renderer::render`]
//! is pure CPU work and gives byte-identical output for the same job.

pub mod artwork;
mod capacity;
pub mod deflate;
pub mod faces;
pub mod fields;
pub mod fonts;
mod index;
pub mod layout;
pub mod pdf;
pub mod qr;
pub mod sfnt;
mod signature_slot;
pub mod template;
mod template_file;

use std::path::Path;

use testamur_common::catalog::Catalog;
use testamur_common::wire::JobCertificate;

use self::fields::Piece;
use self::layout::{Fitted, LayoutCache};
use self::template::{Align, Template, TemplateError, Templates, TextBlock};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the certificate has no learner name to print")]
    NoName,
    #[error(
        "no font of template `{template}` can draw these characters of the {field}: {chars}; \
         {hint}"
    )]
    Unsupported {
        template: String,
        field: String,
        /// Each character with its code point and script.
        chars: String,
        /// For operators: the font package to install, when one is known.
        hint: String,
    },
    #[error(
        "the {field} does not fit template `{template}`: not even on {lines} line(s) of its box \
         ({block}) at {min_size} pt, the template's smallest size{room}; send a shorter {field}"
    )]
    DoesNotFit {
        template: String,
        /// The block's key in the template file (`text[3]`).
        block: String,
        field: String,
        lines: usize,
        min_size: f32,
        /// What fits, from the catalogue's limit (", which has room for about N
        /// characters"), or nothing.
        room: String,
    },
    #[error("{0}")]
    Template(String),
}

/// Text set otherwise than its block asks, though never below its smallest size:
/// on more lines than `max_lines` (a long name gets a second line before it would
/// shrink further), or with a word broken between characters. For the workserver's
/// log and `testamur preview`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutNote {
    /// The block's key in the template file (`text[3]`).
    pub block: String,
    /// The request field it prints, or "fixed text".
    pub field: String,
    pub lines: usize,
    pub max_lines: usize,
    pub size: f32,
    pub split_words: bool,
}

impl std::fmt::Display for LayoutNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) set on {} line(s) at {} pt (max_lines = {})",
            self.block, self.field, self.lines, self.size, self.max_lines
        )?;
        if self.split_words {
            write!(f, ", a word broken between characters to fit")?;
        }
        Ok(())
    }
}

/// What the renderer needs besides the job: where the certificate can be verified.
pub struct RenderContext<'a> {
    pub verify_url: &'a str,
    /// Room for the PDF's own signature (PAdES), when the workserver signs PDFs.
    pub signature: Option<pdf::SignatureSlot>,
}

pub struct Rendered {
    pub pdf: Vec<u8>,
    pub template: String,
    /// Whether the template publishes a verification page (and prints its URL).
    pub verification: bool,
    /// What the template calls certificates.
    pub noun: String,
    /// Blocks set on more lines than they ask, or with a word broken.
    pub notes: Vec<LayoutNote>,
}

pub struct Renderer {
    templates: Templates,
    layouts: LayoutCache,
}

impl Renderer {
    /// Loads and checks every template in `dir` (see docs/TEMPLATES.md).
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        Ok(Self {
            templates: Templates::load(dir)?,
            layouts: LayoutCache::default(),
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.templates.catalog
    }

    /// Boxes of the text blocks that print a request field, as (field, [x, y, width,
    /// height]) in pt from the top-left corner of the page (as `pdftotext -bbox`
    /// reports words), for checking layouts.
    pub fn field_boxes(&self, template: &str) -> Vec<(String, [f32; 4])> {
        let Some(t) = self.templates.templates.get(template) else {
            return Vec::new();
        };
        t.texts
            .iter()
            .filter_map(|b| {
                b.pieces
                    .iter()
                    .find_map(|p| match p {
                        Piece::Field { name, .. } => Some(name.clone()),
                        Piece::Lit(_) => None,
                    })
                    .map(|f| (f, [b.x, t.page.1 - b.y_top, b.width, b.height]))
            })
            .collect()
    }

    /// What an operator should fix in the templates though they load (printed by
    /// `ws --check`, logged at start, shown by `preview`).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, t) in &self.templates.templates {
            for w in t.background.iter().flat_map(|b| &b.warnings) {
                out.push(format!("template `{name}`, background: {w}"));
            }
        }
        out
    }

    /// Checks that the text of the blocks printing the verify URL fits with this
    /// workserver's verify URLs (like `verify_url`, from its storage's base URL):
    /// at start-up and in `ws --check`.
    pub fn check_verify_url(&self, verify_url: &str) -> Result<(), TemplateError> {
        self.templates.check_verify_url(verify_url)
    }

    /// Per template, the most columns of each request field its boxes hold (what
    /// the CC refuses beyond), for `ws --check` and `preview`.
    pub fn limits(&self) -> Vec<(String, Vec<(String, u32)>)> {
        self.templates
            .catalog
            .templates
            .iter()
            .map(|(name, info)| {
                let l = info
                    .max_width
                    .iter()
                    .map(|(f, w)| (f.clone(), *w))
                    .collect();
                (name.clone(), l)
            })
            .collect()
    }

    pub fn template_names(&self) -> Vec<String> {
        self.templates.templates.keys().cloned().collect()
    }

    /// The template a job gets (request field, course mapping, default).
    pub fn template_for(&self, cert: &JobCertificate) -> Result<&Template, RenderError> {
        let name = self
            .templates
            .catalog
            .resolve(cert.template.as_deref(), cert.course_id.as_str())
            .map_err(|e| RenderError::Template(e.to_string()))?;
        self.templates
            .templates
            .get(name)
            .ok_or_else(|| RenderError::Template(format!("template `{name}` is not loaded")))
    }

    pub fn render(
        &self,
        cert: &JobCertificate,
        ctx: &RenderContext<'_>,
    ) -> Result<Rendered, RenderError> {
        let name = cert
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .ok_or(RenderError::NoName)?;
        let t = self.template_for(cert)?;
        let course = cert
            .course_name
            .as_deref()
            .unwrap_or(cert.course_id.as_str());
        let date = match &t.fixed_date {
            Some(d) => d.clone(),
            None => {
                fields::long_date(&cert.issued_date).unwrap_or_else(|| cert.issued_date.clone())
            }
        };
        let grade = cert.grade.as_deref().unwrap_or("");
        let values = |f: &str| -> String {
            match f {
                "name" => name.to_owned(),
                "course_name" => course.to_owned(),
                "course_id" => cert.course_id.to_string(),
                "org" => cert.org.clone().unwrap_or_default(),
                "grade" => grade.to_owned(),
                "designation" => cert.designation.clone().unwrap_or_default(),
                "date" => date.clone(),
                "cert_id" => cert.cert_id.to_string(),
                "noun" => t.noun.clone(),
                "grade_sentence" => t.grade.sentence(grade),
                "verify_url" if t.verification => ctx.verify_url.to_owned(),
                "disclaimer" => t.disclaimer.clone().unwrap_or_default(),
                _ => String::new(),
            }
        };
        // The names' language: the request's, else the course rule's (the
        // template's own default comes after both, in draw_block).
        let lang = cert
            .lang
            .as_deref()
            .or_else(|| self.templates.catalog.course_lang(cert.course_id.as_str()));
        let book = &self.templates.fonts;
        let mut page = pdf::Page::new(book, t.page);
        let mut notes = Vec::new();
        if let Some(bg) = &t.background {
            page.art(&bg.art, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        }
        for (f, color, r) in &t.frames {
            page.rect(*r, *color, f.thickness);
        }
        for block in &t.texts {
            let Some(text) = fields::fill(&block.pieces, &values) else {
                continue;
            };
            self.draw_block(&mut page, t, block, &text, lang, &mut notes)?;
        }
        for s in &t.signatories {
            if let Some(img) = &s.image {
                let [x, y, w, h] = s.image_box;
                // Fit the image into its box, keeping its aspect ratio, centred.
                let scale = (w / img.width as f32).min(h / img.height as f32);
                let (iw, ih) = (img.width as f32 * scale, img.height as f32 * scale);
                page.art(
                    &img.art,
                    [iw, 0.0, 0.0, ih, x + (w - iw) / 2.0, y + (h - ih) / 2.0],
                );
            }
            let [x, y, w] = s.rule;
            page.line([x, y, x + w, y], s.color, 0.6);
            for b in [&s.name, &s.title] {
                let text = fields::fill(&b.pieces, &values).unwrap_or_default();
                self.draw_block(&mut page, t, b, &text, lang, &mut notes)?;
            }
        }
        if let (true, Some([x, y, side])) = (t.verification, t.qr) {
            if let Some(code) = qr::encode(ctx.verify_url.as_bytes()) {
                let n = code.width;
                let m = side / n as f32;
                // Dark modules as horizontal runs: one rectangle each.
                let mut dark = Vec::new();
                for (row, line) in code.dark.chunks(n).enumerate() {
                    let mut col = 0;
                    while col < n {
                        if line[col] {
                            let start = col;
                            while col < n && line[col] {
                                col += 1;
                            }
                            dark.push((start as u16, row as u16, (col - start) as u16));
                        } else {
                            col += 1;
                        }
                    }
                }
                page.qr([x, y + side, m], dark);
            }
        }
        let title = format!("{} — {}", t.noun, name);
        let pdf = page.finish(&pdf::Meta {
            title: &title,
            subject: course,
            date: &cert.issued_date,
            signature: ctx.signature,
        });
        Ok(Rendered {
            pdf,
            template: t.name.clone(),
            verification: t.verification,
            noun: t.noun.clone(),
            notes,
        })
    }

    fn draw_block<'a>(
        &'a self,
        page: &mut pdf::Page<'a>,
        t: &Template,
        block: &TextBlock,
        text: &str,
        lang: Option<&str>,
        notes: &mut Vec<LayoutNote>,
    ) -> Result<(), RenderError> {
        let book = &self.templates.fonts;
        let region = faces::Region::for_text(text, &[lang, t.lang.as_deref()]);
        let spec = capacity::spec(block);
        let make = || -> Result<Fitted, RenderError> {
            let stack = &self.templates.stacks[block.stack];
            let shaped =
                layout::shape(text, stack, book, region).map_err(|u| RenderError::Unsupported {
                    template: t.name.clone(),
                    field: block_field(block),
                    chars: testamur_common::scripts::describe(&u.0),
                    hint: testamur_common::scripts::install_hint(&u.0),
                })?;
            layout::fit(&shaped, book, &spec).ok_or_else(|| self.does_not_fit(t, block, &shaped))
        };
        let (owned, cached);
        let fitted: &Fitted = if block.per_certificate {
            owned = make()?;
            &owned
        } else {
            cached = self
                .layouts
                .get_or_make((block.stack, region), &spec, text, make)?;
            &cached
        };
        if fitted.lines.len() > block.max_lines || fitted.split_words {
            notes.push(LayoutNote {
                block: block.key.clone(),
                field: block_field(block),
                lines: fitted.lines.len(),
                max_lines: block.max_lines,
                size: fitted.size,
                split_words: fitted.split_words,
            });
        }
        place(page, block, fitted, text);
        Ok(())
    }

    /// Why `shaped` has no layout in `block`: the lines the box holds at the
    /// smallest size, and the catalogue's limit for the field.
    fn does_not_fit(
        &self,
        t: &Template,
        block: &TextBlock,
        shaped: &layout::Shaped,
    ) -> RenderError {
        let (a, d) = shaped.extent(&self.templates.fonts);
        let line_em = (a + d).max(0.5);
        let lines = layout::lines_in(
            block.height / block.min_size,
            line_em,
            line_em * block.leading.max(1.0),
        )
        .max(block.max_lines);
        let field = block_field(block);
        let room = self
            .templates
            .catalog
            .templates
            .get(&t.name)
            .and_then(|i| i.max_width.get(&field.replace(' ', "_")))
            .map(|w| format!(", which has room for about {w} characters of it"))
            .unwrap_or_default();
        RenderError::DoesNotFit {
            template: t.name.clone(),
            block: block.key.clone(),
            field,
            lines,
            min_size: block.min_size,
            room,
        }
    }
}

/// Which request field a block prints, for error messages.
/// Which request field a block prints, for messages (`{grade_sentence}` prints
/// the grade); else its first field, else "fixed text".
fn block_field(block: &TextBlock) -> String {
    let names: Vec<&str> = block
        .pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Field { name, .. } if name == "grade_sentence" => Some("grade"),
            Piece::Field { name, .. } => Some(name.as_str()),
            Piece::Lit(_) => None,
        })
        .collect();
    names
        .iter()
        .find(|n| capacity::REQUEST_FIELDS.contains(n))
        .or(names.first())
        .map(|n| n.replace('_', " "))
        .unwrap_or_else(|| "fixed text".into())
}

/// Puts fitted lines into the block's box: centred vertically, aligned horizontally.
fn place<'a>(page: &mut pdf::Page<'a>, block: &TextBlock, fitted: &Fitted, text: &str) {
    let size = fitted.size;
    let (ascent, _) = fitted.extent();
    let top = block.y_top - (block.height - fitted.height_pt()).max(0.0) / 2.0;
    let mut baseline = top - ascent * size;
    for line in &fitted.lines {
        let w = line.width * size;
        let mut x = match block.align {
            Align::Left => block.x,
            Align::Center => block.x + (block.width - w) / 2.0,
            Align::Right => block.x + block.width - w,
        };
        for run in &line.runs {
            let adv: f32 = run.glyphs.iter().map(|g| g.advance).sum::<f32>() * size;
            if text[run.text.clone()].trim().is_empty() {
                // Spaces draw nothing; the gap is enough for extractors.
                x += adv;
                continue;
            }
            page.text(
                run.font,
                size,
                block.color,
                x,
                baseline,
                run.glyphs.clone(),
                text,
                run.text.clone(),
                run.rtl,
                block.glyphs,
            );
            x += adv;
        }
        baseline -= fitted.line_height * size;
    }
}
