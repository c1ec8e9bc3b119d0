//! Rendering a one-page certificate PDF with printpdf: one embedded, subset font;
//! text centred and shrunk to fit its box.
//!
//! The font is parsed once per process ([`Renderer::new`]) and shared by every job.
//! Output is deterministic: the document dates come from the issued date and the
//! font resource id is fixed, so the same job renders the same bytes.

use std::path::Path;

use printpdf::{
    Color, FontId, Mm, Op, ParsedFont, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point,
    Pt, Rect, Rgb, TextItem,
};
use sha2::{Digest, Sha256};
use testamur_common::wire::JobCertificate;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot load the font {path}: {detail}")]
    Font { path: String, detail: String },
    #[error("the certificate has no learner name to print")]
    NoName,
    #[error("the font cannot draw these characters of the {field}: {chars}")]
    Unsupported { field: &'static str, chars: String },
}

/// Page size: A4 landscape.
const PAGE_W: f32 = 297.0;
const PAGE_H: f32 = 210.0;

pub struct Renderer {
    font: ParsedFont,
    units_per_em: f32,
}

/// What the renderer needs besides the job: where the certificate can be verified.
pub struct RenderContext<'a> {
    pub verify_url: &'a str,
}

impl Renderer {
    pub fn new(font_path: &Path) -> Result<Self, RenderError> {
        let err = |detail: String| RenderError::Font {
            path: font_path.display().to_string(),
            detail,
        };
        let bytes = std::fs::read(font_path).map_err(|e| err(e.to_string()))?;
        let mut warnings = Vec::new();
        let font = ParsedFont::from_bytes(&bytes, 0, &mut warnings)
            .ok_or_else(|| err("not a TrueType/OpenType font printpdf can parse".into()))?;
        let units_per_em = font.font_metrics.units_per_em.max(1) as f32;
        Ok(Self { font, units_per_em })
    }

    /// Characters of `text` the font has no glyph for.
    pub fn missing_chars(&self, text: &str) -> String {
        let mut missing: Vec<char> = text
            .chars()
            .filter(|c| !c.is_whitespace() && self.font.lookup_glyph_index(*c as u32).is_none())
            .collect();
        missing.dedup();
        missing.into_iter().collect()
    }

    /// Width of `text` at `size` points.
    fn width_pt(&self, text: &str, size: f32) -> f32 {
        let units: u32 = text
            .chars()
            .map(|c| {
                self.font
                    .lookup_glyph_index(c as u32)
                    .map(|g| self.font.get_horizontal_advance(g) as u32)
                    .unwrap_or(0)
            })
            .sum();
        units as f32 / self.units_per_em * size
    }

    pub fn render(
        &self,
        cert: &JobCertificate,
        ctx: &RenderContext<'_>,
    ) -> Result<Vec<u8>, RenderError> {
        let name = cert.name.as_deref().ok_or(RenderError::NoName)?;
        let course = cert
            .course_name
            .as_deref()
            .unwrap_or(cert.course_id.as_str());
        for (field, text) in [
            ("name", name),
            ("course name", course),
            ("org", cert.org.as_deref().unwrap_or("")),
        ] {
            let missing = self.missing_chars(text);
            if !missing.is_empty() {
                return Err(RenderError::Unsupported {
                    field,
                    chars: missing,
                });
            }
        }

        let mut doc = PdfDocument::new("Certificate");
        let date = issued_datetime(&cert.issued_date);
        doc.metadata.info.creation_date = date;
        doc.metadata.info.modification_date = date;
        doc.metadata.info.metadata_date = date;
        doc.metadata.info.identifier = cert.cert_id.to_string();
        doc.metadata.info.producer = "testamur".into();
        doc.metadata.info.creator = "testamur".into();
        // Six capital letters and `+` before the font name mark an embedded subset
        // (PDF 32000 9.6.4); fixed so that the output is deterministic.
        let font_id = FontId("TMSUBA".into());
        doc.resources
            .fonts
            .map
            .insert(font_id.clone(), printpdf::PdfFont::new(self.font.clone()));
        let font = PdfFontHandle::External(font_id);

        let ink = Color::Rgb(Rgb {
            r: 0.13,
            g: 0.16,
            b: 0.24,
            icc_profile: None,
        });
        let accent = Color::Rgb(Rgb {
            r: 0.55,
            g: 0.42,
            b: 0.16,
            icc_profile: None,
        });
        let mut ops = vec![
            Op::SetOutlineColor {
                col: accent.clone(),
            },
            Op::SetOutlineThickness { pt: Pt(2.5) },
            Op::DrawRectangle {
                rectangle: rect(10.0, 10.0, PAGE_W - 20.0, PAGE_H - 20.0),
            },
            Op::SetOutlineThickness { pt: Pt(0.8) },
            Op::DrawRectangle {
                rectangle: rect(14.0, 14.0, PAGE_W - 28.0, PAGE_H - 28.0),
            },
        ];
        let line = |ops: &mut Vec<Op>,
                    text: &str,
                    y_mm: f32,
                    max_size: f32,
                    min_size: f32,
                    col: &Color| {
            let box_w = Mm(PAGE_W - 50.0).into_pt().0;
            let mut size = max_size;
            while size > min_size && self.width_pt(text, size) > box_w {
                size -= 0.5;
            }
            let w = self.width_pt(text, size);
            let x = (Mm(PAGE_W).into_pt().0 - w) / 2.0;
            ops.extend([
                Op::StartTextSection,
                Op::SetFillColor { col: col.clone() },
                Op::SetFont {
                    font: font.clone(),
                    size: Pt(size),
                },
                Op::SetTextCursor {
                    pos: Point {
                        x: Pt(x),
                        y: Mm(y_mm).into_pt(),
                    },
                },
                Op::ShowText {
                    items: vec![TextItem::Text(text.to_owned())],
                },
                Op::EndTextSection,
            ]);
        };
        let title = match cert.designation.as_deref() {
            Some(d) => format!("Certificate of {d}"),
            None => "Certificate of Achievement".to_owned(),
        };
        line(&mut ops, &title, 165.0, 30.0, 14.0, &accent);
        line(&mut ops, "This is to certify that", 140.0, 14.0, 10.0, &ink);
        line(&mut ops, name, 118.0, 34.0, 12.0, &ink);
        line(
            &mut ops,
            "has successfully completed",
            100.0,
            14.0,
            10.0,
            &ink,
        );
        line(&mut ops, course, 82.0, 22.0, 10.0, &ink);
        if let Some(org) = cert.org.as_deref() {
            line(
                &mut ops,
                &format!("offered by {org}"),
                68.0,
                14.0,
                8.0,
                &ink,
            );
        }
        line(
            &mut ops,
            &format!("Issued {}", human_date(&cert.issued_date)),
            45.0,
            13.0,
            8.0,
            &ink,
        );
        line(
            &mut ops,
            &format!(
                "Certificate {} · verify at {}",
                cert.cert_id, ctx.verify_url
            ),
            22.0,
            8.0,
            5.0,
            &ink,
        );

        let page = PdfPage::new(Mm(PAGE_W), Mm(PAGE_H), ops);
        let opts = PdfSaveOptions {
            subset_fonts: true,
            optimize: true,
            ..Default::default()
        };
        let mut warnings = Vec::new();
        let mut pdf = doc.with_pages(vec![page]).save(&opts, &mut warnings);
        fix_trailer_id(&mut pdf);
        Ok(pdf)
    }
}

/// printpdf writes a random file identifier (`/ID[(..32..)(..32..)]` in the
/// trailer). Replace it, in place and at the same length, with one derived from the
/// document's content, so the same job always yields the same bytes (PDF 32000
/// 14.4 suggests a content digest for it anyway). The trailer follows the xref
/// table, so no offset changes.
fn fix_trailer_id(pdf: &mut [u8]) {
    const MARK: &[u8] = b"/ID[(";
    let Some(start) = pdf.windows(MARK.len()).rposition(|w| w == MARK) else {
        return;
    };
    let first = start + MARK.len();
    let second = first + 32 + 2; // ")("
    if pdf.len() < second + 33 || &pdf[first + 32..second] != b")(" || pdf[second + 32] != b')' {
        return;
    }
    let digest = Sha256::digest(&pdf[..start]);
    let id = hex::encode_upper(&digest[..16]);
    pdf[first..first + 32].copy_from_slice(id.as_bytes());
    pdf[second..second + 32].copy_from_slice(id.as_bytes());
}

fn rect(x: f32, y: f32, w: f32, h: f32) -> Rect {
    Rect {
        x: Mm(x).into_pt(),
        y: Mm(y).into_pt(),
        width: Mm(w).into_pt(),
        height: Mm(h).into_pt(),
        mode: Some(printpdf::PaintMode::Stroke),
        winding_order: None,
    }
}

fn parse_date(iso: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(iso, &fmt).ok()
}

fn issued_datetime(iso: &str) -> printpdf::OffsetDateTime {
    let ts = parse_date(iso)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .unwrap_or(0);
    printpdf::OffsetDateTime::from_unix_timestamp(ts).unwrap_or_else(|_| {
        printpdf::OffsetDateTime::from_unix_timestamp(0).expect("the epoch is a valid date")
    })
}

/// `2026-11-23` -> `November 23, 2026`.
pub fn human_date(iso: &str) -> String {
    match parse_date(iso) {
        Some(d) => format!("{} {}, {}", d.month(), d.day(), d.year()),
        None => iso.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use testamur_common::ids::{CertId, CourseId, PublicUuid, Username};

    use super::*;

    const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

    fn job(name: &str) -> JobCertificate {
        let course = CourseId::parse("course-v1:X+Y+Z").unwrap();
        let user = Username::parse("u1").unwrap();
        JobCertificate {
            cert_id: CertId::for_pair(&course, &user),
            course_id: course,
            username: user,
            name: Some(name.into()),
            course_name: Some("Course".into()),
            org: Some("Org".into()),
            grade: None,
            designation: None,
            issued_date: "2026-11-23".into(),
            template: None,
            download_uuid: Some(PublicUuid::parse("9f1a0d42-ef42-4dab-ac9f-1b12c197066b").unwrap()),
            verify_uuid: Some(PublicUuid::parse("25daeae4-5d47-4404-99cb-6c9a703aa14c").unwrap()),
        }
    }

    #[test]
    fn same_job_renders_identical_bytes() {
        let r = Renderer::new(Path::new(FONT))
            .expect("fonts-dejavu-core is installed by scripts/setup.sh");
        let ctx = RenderContext {
            verify_url: "https://x/cert/1/",
        };
        let a = r.render(&job("Zoë Ångström"), &ctx).unwrap();
        let b = r.render(&job("Zoë Ångström"), &ctx).unwrap();
        assert!(a == b, "two renders of the same job differ");
        let c = r.render(&job("Someone Else"), &ctx).unwrap();
        assert!(a != c);
        assert!(a.len() < 60_000, "{} bytes: is the font subset?", a.len());
    }

    #[test]
    fn unsupported_characters_are_named() {
        let r = Renderer::new(Path::new(FONT)).unwrap();
        let ctx = RenderContext {
            verify_url: "https://x/",
        };
        match r.render(&job("李雷 Smith"), &ctx) {
            Err(RenderError::Unsupported { field, chars }) => {
                assert_eq!(field, "name");
                assert_eq!(chars, "李雷");
            }
            other => panic!("expected Unsupported, got {:?}", other.map(|b| b.len())),
        }
    }

    #[test]
    fn human_dates() {
        assert_eq!(super::human_date("2026-11-23"), "November 23, 2026");
        assert_eq!(super::human_date("garbage"), "garbage");
    }
}
