//! Rendering certificates: choosing the template, filling in its text, laying the
//! text out in every script, and writing the PDF.
//!
//! - [`template`]: the template format and loading a templates directory.
//! - [`fields`]: the values template text refers to (dates, grade sentence).
//! - [`fonts`]: font files and stacks, loaded once per process.
//! - [`faces`]: what installed fonts cover, read cheaply; CJK regional faces.
//! - `index`: loading a templates directory and its catalogue.
//! - [`layout`]: fallback, shaping, bidi, line breaking, shrink-to-fit.
//! - [`artwork`]: background PDFs and PNG images, converted once.
//! - [`deflate`]: stream compression with per-thread reused state.
//! - [`pdf`]: the PDF writer (subset CID fonts, ToUnicode, content stream).
//! - [`qr`]: the QR code of the verify URL.
//! - [`sfnt`]: dropping font tables a PDF does not need.
//!
//! Everything a template needs is loaded and checked at start-up; [`Renderer::render`]
//! is pure CPU work and gives byte-identical output for the same job.

pub mod artwork;
pub mod deflate;
pub mod faces;
pub mod fields;
pub mod fonts;
mod index;
pub mod layout;
pub mod pdf;
pub mod qr;
pub mod sfnt;
pub mod template;

use std::path::Path;

use testamur_common::catalog::Catalog;
use testamur_common::wire::JobCertificate;

use self::fields::Piece;
use self::layout::{FitSpec, Fitted, LayoutCache};
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
    #[error("{0}")]
    Template(String),
}

/// What the renderer needs besides the job: where the certificate can be verified.
pub struct RenderContext<'a> {
    pub verify_url: &'a str,
}

pub struct Rendered {
    pub pdf: Vec<u8>,
    pub template: String,
    /// Whether the template publishes a verification page (and prints its URL).
    pub verification: bool,
    /// What the template calls certificates.
    pub noun: String,
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
        let lang = cert.lang.as_deref().or_else(|| {
            self.templates
                .catalog
                .course_lang(cert.course_id.as_str())
        });
        let book = &self.templates.fonts;
        let mut page = pdf::Page::new(book, t.page);
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
            self.draw_block(&mut page, t, block, &text, lang)?;
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
                self.draw_block(&mut page, t, b, &text, lang)?;
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
        });
        Ok(Rendered {
            pdf,
            template: t.name.clone(),
            verification: t.verification,
            noun: t.noun.clone(),
        })
    }

    fn draw_block<'a>(
        &'a self,
        page: &mut pdf::Page<'a>,
        t: &Template,
        block: &TextBlock,
        text: &str,
        lang: Option<&str>,
    ) -> Result<(), RenderError> {
        let book = &self.templates.fonts;
        let region = faces::Region::for_text(text, &[lang, t.lang.as_deref()]);
        let spec = FitSpec {
            width_pt: block.width,
            height_pt: block.height,
            min_size: block.min_size,
            max_size: block.max_size,
            max_lines: block.max_lines,
            leading: block.leading,
        };
        let make = || -> Result<Fitted, RenderError> {
            let stack = &self.templates.stacks[block.stack];
            let shaped =
                layout::shape(text, stack, book, region).map_err(|u| RenderError::Unsupported {
                    template: t.name.clone(),
                    field: block_field(block),
                    chars: testamur_common::scripts::describe(&u.0),
                    hint: testamur_common::scripts::install_hint(&u.0),
                })?;
            let fitted = layout::fit(&shaped, book, &spec);
            if fitted.below_min {
                tracing::warn!(template = %t.name, size = fitted.size, "text only fits its box below the template's smallest size");
            }
            Ok(fitted)
        };
        if block.per_certificate {
            place(page, block, &make()?, text);
        } else {
            let fitted = self
                .layouts
                .get_or_make((block.stack, region), &spec, text, make)?;
            place(page, block, &fitted, text);
        }
        Ok(())
    }
}

/// Which request field a block prints, for error messages.
fn block_field(block: &TextBlock) -> String {
    block
        .pieces
        .iter()
        .find_map(|p| match p {
            Piece::Field { name, .. } => Some(name.replace('_', " ")),
            Piece::Lit(_) => None,
        })
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
