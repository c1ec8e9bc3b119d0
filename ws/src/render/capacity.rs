//! What fits where, decided when the templates are loaded:
//!
//! - for each template, how much of each request field its boxes hold at their
//!   smallest sizes: the limits the catalogue carries ([`TemplateInfo::max_width`]),
//!   so that the CC refuses a longer value at submit with a 422 naming the field
//!   and the limit instead of queueing a certificate that cannot be drawn;
//! - that the text every certificate of a template shares (fixed text, the noun,
//!   dates, certificate ids, the verify URL) fits its box at the block's smallest
//!   size, so a template that could not print it stops the workserver at start-up
//!   rather than failing its jobs.
//!
//! Limits are counted as [`testamur_common::catalog::text_width`] counts: one
//! column a character, two for a wide (CJK) character, none for a combining mark;
//! a column is taken as wide as the mean capital letter A–Z of the block's font
//! stack, so text of ordinary letters (capitals included) within the limit fits
//! with room to spare.
//!
//! [`TemplateInfo::max_width`]: testamur_common::catalog::TemplateInfo::max_width

use std::collections::BTreeMap;
use std::path::Path;

use super::faces::Region;
use super::fields::{self, Piece};
use super::fonts::{FontBook, FontStack};
use super::layout::{self, FitSpec};
use super::template::{terr, Template, TemplateError, TextBlock};

/// Request fields whose length the CC checks: the catalogue's text fields and the
/// course id (printed by `{course_id}`, and by `{course_name}` when a request has
/// no course name, which the CC checks as the course name).
pub(super) const REQUEST_FIELDS: &[&str] = &[
    "name",
    "course_name",
    "org",
    "grade",
    "designation",
    "course_id",
];

/// A verify URL as long as usual ones, for limits computed before the
/// workserver's own is known (the start-up check uses the real one).
pub const SAMPLE_VERIFY_URL: &str =
    "https://certificates.example.org/cert/00000000-0000-4000-8000-000000000000/";

/// Columns left free on each line: what breaking lines between characters, the
/// last resort, can leave empty at the end of a line (a wide character).
const SLACK_PER_LINE: usize = 2;

/// The fit spec of a block.
pub fn spec(block: &TextBlock) -> FitSpec {
    FitSpec {
        width_pt: block.width,
        height_pt: block.height,
        min_size: block.min_size,
        max_size: block.max_size,
        max_lines: block.max_lines,
        leading: block.leading,
    }
}

/// What a block prints besides request fields, with every other field at its
/// widest (the longest date, the widest certificate id); the request fields it
/// prints (a field twice is listed twice; `grade` where the grade sentence's
/// fallback prints it); and what it prints when every request field is empty, if
/// each has a fallback.
struct Parts {
    rest: String,
    fields: Vec<&'static str>,
    all_fallbacks: Option<String>,
}

fn parts(
    t: &Template,
    block: &TextBlock,
    widest: &dyn Fn(&[String]) -> String,
    verify_url: &str,
) -> Parts {
    let mut rest = String::new();
    let mut fields = Vec::new();
    let mut all_fallbacks = Some(String::new());
    for p in &block.pieces {
        let (name, fallback) = match p {
            Piece::Lit(s) => {
                rest.push_str(s);
                if let Some(a) = &mut all_fallbacks {
                    a.push_str(s);
                }
                continue;
            }
            Piece::Field { name, fallback } => (name.as_str(), fallback),
        };
        if let Some(f) = REQUEST_FIELDS.iter().find(|f| **f == name) {
            fields.push(*f);
            all_fallbacks = match (all_fallbacks, fallback) {
                (Some(mut a), Some(f)) => {
                    a.push_str(f);
                    Some(a)
                }
                _ => None,
            };
            continue;
        }
        let value = match name {
            "noun" => t.noun.clone(),
            "date" => match &t.fixed_date {
                Some(d) => d.clone(),
                None => widest(&dates()),
            },
            "cert_id" => widest(&hex_ids()),
            "verify_url" if t.verification => verify_url.to_owned(),
            "disclaimer" => t.disclaimer.clone().unwrap_or_default(),
            "grade_sentence" => {
                // Every fixed sentence, and the fallback around `{grade}`.
                let mut variants: Vec<String> = t.grade.sentences.values().cloned().collect();
                if t.grade.fallback.contains("{grade}") {
                    fields.push("grade");
                    variants.push(t.grade.fallback.replace("{grade}", ""));
                } else {
                    variants.push(t.grade.fallback.clone());
                }
                widest(&variants)
            }
            _ => String::new(),
        };
        let value = match (value.trim().is_empty(), fallback) {
            (true, Some(f)) => f.clone(),
            _ => value,
        };
        rest.push_str(&value);
        if let Some(a) = &mut all_fallbacks {
            a.push_str(&value);
        }
    }
    Parts {
        rest,
        fields,
        all_fallbacks,
    }
}

/// Every rolling date's wording, for the widest one (the year as written by the
/// issued date; its digits matter little, `2088` stands for wide ones).
fn dates() -> Vec<String> {
    let mut out = Vec::new();
    for m in 1..=12u8 {
        for d in 1..=31u8 {
            if let Some(s) = fields::long_date(&format!("2088-{m:02}-{d:02}")) {
                out.push(s);
            }
        }
    }
    out
}

/// Certificate ids of each hex digit, for the widest one.
fn hex_ids() -> Vec<String> {
    "0123456789abcdef"
        .chars()
        .map(|c| c.to_string().repeat(32))
        .collect()
}

/// Checks that a template's shared text fits (with `verify_url` for the verify
/// URL; with `only_verify_url`, only the blocks that print it) and computes its
/// request fields' limits, in columns (the smallest over the blocks printing each
/// field).
pub fn check_template(
    file: &Path,
    t: &Template,
    stacks: &[FontStack],
    book: &FontBook,
    verify_url: &str,
    only_verify_url: bool,
) -> Result<BTreeMap<String, u32>, TemplateError> {
    let mut limits: BTreeMap<String, u32> = BTreeMap::new();
    let blocks = t
        .texts
        .iter()
        .chain(t.signatories.iter().flat_map(|s| [&s.name, &s.title]));
    for block in blocks {
        let prints_url = block
            .pieces
            .iter()
            .any(|p| matches!(p, Piece::Field { name, .. } if name == "verify_url"));
        if only_verify_url && !prints_url {
            continue;
        }
        let stack = &stacks[block.stack];
        let region = Region::for_text("", &[t.lang.as_deref()]);
        let width_of = |s: &str| {
            layout::shape(s, stack, book, region)
                .map(|sh| sh.total_width())
                .unwrap_or(0.0)
        };
        let widest = |variants: &[String]| -> String {
            variants
                .iter()
                .map(|v| (width_of(v), v))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let parts = parts(t, block, &widest, verify_url);
        if parts.fields.is_empty() {
            shared_text_fits(file, t, block, stacks, book, &parts.rest)?;
            continue;
        }
        if let Some(text) = &parts.all_fallbacks {
            shared_text_fits(file, t, block, stacks, book, text)?;
        }
        let room = room_for_fields(file, block, stack, book, region, &parts, &width_of)?;
        for f in parts.fields {
            let l = limits.entry(f.to_owned()).or_insert(room);
            *l = (*l).min(room);
        }
    }
    Ok(limits)
}

/// The columns each request field of `block` gets: what its lines hold at the
/// smallest size, less its other text, shared by the fields it prints.
fn room_for_fields(
    file: &Path,
    block: &TextBlock,
    stack: &FontStack,
    book: &FontBook,
    region: Region,
    parts: &Parts,
    width_of: &dyn Fn(&str) -> f32,
) -> Result<u32, TemplateError> {
    const CAPITALS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let capitals = layout::shape(CAPITALS, stack, book, region).map_err(|_| {
        terr(
            file,
            format!("{}.font", block.key),
            "its fonts have no Latin capitals",
        )
    })?;
    let column = (capitals.total_width() / CAPITALS.len() as f32).max(0.1);
    // Lines as far apart as the Latin and CJK fonts need: scripts whose fonts
    // are taller still (Arabic, Indic, Thai, Tibetan) may get fewer lines, so
    // their values close to the limit can fail the job instead (never printed
    // below the smallest size).
    let (asc, desc) = capitals.extent(book);
    let (cjk_asc, cjk_desc) = layout::shape("王", stack, book, region)
        .map(|s| s.extent(book))
        .unwrap_or((0.0, 0.0));
    let line_em = (asc.max(cjk_asc) + desc.max(cjk_desc)).max(0.5);
    let lines = layout::lines_in(
        block.height / block.min_size,
        line_em,
        line_em * block.leading.max(1.0),
    );
    let per_line =
        ((block.width / block.min_size / column).floor() as usize).saturating_sub(SLACK_PER_LINE);
    let rest = (width_of(&parts.rest) / column).ceil() as usize;
    let room = (lines * per_line).saturating_sub(rest) / parts.fields.len().max(1);
    if room == 0 {
        let what = parts
            .fields
            .iter()
            .map(|f| format!("{{{f}}}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(terr(
            file,
            &block.key,
            format!(
                "the box leaves no room for {what} at {} pt, the smallest size ({lines} line(s) \
                 of about {per_line} characters, {rest} of them taken by the rest of the text): \
                 make the box wider or taller, or the smallest size smaller",
                block.min_size
            ),
        ));
    }
    Ok(room.min(u32::MAX as usize) as u32)
}

/// Text that is the same on many certificates must fit its box at the smallest
/// size (on more lines than `max_lines` if the box has room for them).
fn shared_text_fits(
    file: &Path,
    t: &Template,
    block: &TextBlock,
    stacks: &[FontStack],
    book: &FontBook,
    text: &str,
) -> Result<(), TemplateError> {
    if text.trim().is_empty() {
        return Ok(());
    }
    let region = Region::for_text(text, &[t.lang.as_deref()]);
    let shaped = match layout::shape(text, &stacks[block.stack], book, region) {
        Ok(s) => s,
        Err(u) => {
            return Err(terr(
                file,
                &block.key,
                format!(
                    "no font of its stack can draw {} of `{text}`; {}",
                    testamur_common::scripts::describe(&u.0),
                    testamur_common::scripts::install_hint(&u.0)
                ),
            ))
        }
    };
    match layout::fit(&shaped, book, &spec(block)) {
        Some(_) => Ok(()),
        None => Err(terr(
            file,
            &block.key,
            format!(
                "`{text}` does not fit its box at {} pt, its smallest size, even on every line \
                 the box holds: make the box wider or taller, the smallest size smaller, or the \
                 text shorter",
                block.min_size
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::SAMPLE_VERIFY_URL;
    use crate::render::{RenderContext, RenderError, Renderer};

    fn shipped() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates")
    }

    fn renderer() -> &'static Renderer {
        static R: OnceLock<Renderer> = OnceLock::new();
        R.get_or_init(|| Renderer::load(&shipped()).expect("the shipped templates load"))
    }

    /// `unit` repeated while it fits in `columns` columns, then `pad` while it fits.
    fn text_of(unit: &str, pad: char, columns: usize) -> String {
        let w = testamur_common::columns::width;
        let mut s = String::new();
        while w(&s) + w(unit) <= columns {
            s.push_str(unit);
        }
        let mut s = s.trim_end().to_owned();
        while w(&s) + w(&pad.to_string()) <= columns {
            s.push(pad);
        }
        s
    }

    fn render_with(template: &str, field: &str, value: &str) -> Result<(), RenderError> {
        let mut j = crate::sample::job(crate::sample::Script::Latin, 1, Some(template));
        match field {
            "name" => j.name = Some(value.into()),
            "course_name" => j.course_name = Some(value.into()),
            "org" => j.org = Some(value.into()),
            "designation" => j.designation = Some(value.into()),
            "grade" => j.grade = Some(value.into()),
            other => panic!("no field {other}"),
        }
        renderer()
            .render(
                &j,
                &RenderContext {
                    verify_url: SAMPLE_VERIFY_URL,
                    signature: None,
                },
            )
            .map(|_| ())
    }

    /// Issue 13 item 6: every request field of the shipped templates has a limit;
    /// values at the limit in scripts whose fonts are no taller than the Latin
    /// one fit at or above the smallest size (on more lines if need be), and one
    /// column more is a 422. In taller scripts a value at the limit fits or is an
    /// error naming the block: it is never drawn below the smallest size.
    #[test]
    fn values_at_the_limit_fit_and_longer_ones_are_refused() {
        let units = [
            ("Latin", "Maximiliana Bartholomea ", 'x', true),
            ("Latin capitals", "ALEXANDRA FITZGERALD ", 'E', true),
            ("CJK", "王小明", '李', true),
            ("Cyrillic", "Анастасия Кузнецова ", 'а', true),
            ("Greek", "Αλέξανδρος Παπαδόπουλος ", 'α', true),
            ("Hebrew", "שרה לוי ", 'ש', true),
            ("Arabic", "محمد عبد الله ", 'ا', false),
            ("Devanagari", "प्रिया शर्मा ", 'क', false),
            ("Thai", "สมชาย ใจดี ", 'ก', false),
            ("Bengali", "রবীন্দ্রনাথ ঠাকুর ", 'ক', false),
            ("Tamil", "முத்துலட்சுமி ரெட்டி ", 'க', false),
        ];
        let cat = renderer().catalog();
        for (template, info) in &cat.templates {
            for f in ["name", "course_name", "org", "designation", "grade"] {
                let Some(&max) = info.max_width.get(f) else {
                    panic!("{template}: no limit for {f}: {:?}", info.max_width)
                };
                assert!((20..500).contains(&max), "{template}.{f}: {max}");
                for (script, unit, pad, must_fit) in units {
                    let v = text_of(unit, pad, max as usize);
                    assert!(
                        cat.check(template, &[(f, &v)]).is_ok(),
                        "{template}.{f} {script}"
                    );
                    match render_with(template, f, &v) {
                        Ok(()) => {}
                        Err(RenderError::DoesNotFit { .. }) if !must_fit => {}
                        Err(e) => panic!("{template}.{f}, {script} at {max}: {e}"),
                    }
                    let longer = format!("{v}{pad}");
                    let e = cat.check(template, &[(f, &longer)]).unwrap_err();
                    assert_eq!(e.field, f);
                    assert!(
                        e.message.contains(&format!("room for {max} characters")),
                        "{}",
                        e.message
                    );
                }
            }
        }
    }

    /// Text the CC would refuse is not drawn below the smallest size either: the
    /// workserver's error names the template, the block and the field.
    #[test]
    fn text_that_does_not_fit_is_an_error_naming_template_block_and_field() {
        let e = render_with("classic", "name", &"Maximiliana Bartholomea ".repeat(10)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, RenderError::DoesNotFit { .. }), "{msg}");
        assert!(
            msg.contains("the name does not fit template `classic`")
                && msg.contains("(text[3])")
                && msg.contains("at 16 pt")
                && msg.contains("room for about"),
            "{msg}"
        );
    }

    /// A copy of the shipped templates with `classic.toml` edited.
    fn with_classic(edit: impl Fn(String) -> String) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let src = shipped();
        std::fs::create_dir_all(dir.path().join("art")).unwrap();
        for e in std::fs::read_dir(src.join("art")).unwrap().flatten() {
            std::fs::copy(e.path(), dir.path().join("art").join(e.file_name())).unwrap();
        }
        for f in ["index.toml", "letter.toml", "classic.toml"] {
            let mut text = std::fs::read_to_string(src.join(f)).unwrap();
            if f == "classic.toml" {
                text = edit(text);
            }
            std::fs::write(dir.path().join(f), text).unwrap();
        }
        dir
    }

    #[test]
    fn shared_text_that_does_not_fit_stops_the_templates_from_loading() {
        // Fixed text too long for its box at its one size.
        let t = with_classic(|s| {
            s.replace(
                "text = \"This is to certify that\"",
                "text = \"This is to certify, to whom it may concern, now and forever, that\"",
            )
            .replace(
                "width = 217\nheight = 8\nfont = \"serif\"\nsize = 13",
                "width = 100\nheight = 8\nfont = \"serif\"\nsize = 13",
            )
        });
        let e = Renderer::load(t.path()).err().expect("refused").to_string();
        assert!(
            e.contains("classic.toml: `text[2]`: `This is to certify")
                && e.contains("does not fit its box at 13 pt"),
            "{e}"
        );
        // A name box with no room at its smallest size.
        let t = with_classic(|s| {
            s.replace(
                "width = 237\nheight = 22\nfont = \"serif-bold\"\nsize = [16, 40]",
                "width = 5\nheight = 22\nfont = \"serif-bold\"\nsize = [16, 40]",
            )
        });
        let e = Renderer::load(t.path()).err().expect("refused").to_string();
        assert!(
            e.contains("classic.toml: `text[3]`: the box leaves no room for {name} at 16 pt"),
            "{e}"
        );
    }

    #[test]
    fn a_verify_url_too_long_for_its_box_is_found_at_start_up() {
        let r = renderer();
        assert!(r.check_verify_url(SAMPLE_VERIFY_URL).is_ok());
        let long = format!(
            "https://{}.example.org/cert/00000000-0000-4000-8000-000000000000/",
            "x".repeat(400)
        );
        let e = r.check_verify_url(&long).unwrap_err().to_string();
        assert!(
            e.contains("classic.toml: `text[8]`: `Certificate ") && e.contains(&long),
            "{e}"
        );
    }
}
