//! Writing the one-page PDF: laid-out text as CID fonts (subset with `subsetter`,
//! Identity-H encoding, a ToUnicode map so text extracts), rectangles, images,
//! the QR code and the background form.
//!
//! Everything is drawn in two passes: [`Page`] collects what to draw and which
//! glyphs each font needs; [`Page::finish`] subsets the fonts (which renumbers the
//! glyphs) and then writes the content stream with the new glyph ids.
//!
//! Determinism: object numbers, subset tags and the file id derive from the content
//! only, and the document dates come from the issued date.

use std::collections::BTreeMap;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use sha2::{Digest, Sha256};

use super::artwork::Artwork;
use super::deflate::deflate;
use super::fonts::{FontBook, FontIdx};
use super::layout::Glyph;
use super::signature_slot::{pdf_time, write_signature_slot};
pub use super::signature_slot::{SignatureSlot, BYTE_RANGE_PLACEHOLDER};
use super::template::Rgb;

/// Which font objects a run's glyphs go into. Text whose characters repeat
/// across certificates (course, date, fixed text, ids and URLs, which are written
/// in a fixed alphabet) shares font objects whose subsets are then the same on
/// most certificates and come from the cache; the glyphs of the learner's name,
/// which vary freely, go into small subsets of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Glyphs {
    Repeating,
    Name,
}

/// A run of glyphs to draw at a baseline.
struct TextRun {
    font: (FontIdx, Glyphs),
    size: f32,
    color: Rgb,
    x: f32,
    y: f32,
    glyphs: Vec<Glyph>,
    /// The run's logical text when it is left-to-right; written as ActualText so
    /// that text extraction gets it in typed order even where shaping reorders
    /// glyphs (Devanagari vowel signs, ligatures).
    actual_text: Option<String>,
}

enum Draw {
    Text(TextRun),
    /// x, y, w, h, colour, stroke width (0 = fill).
    Rect([f32; 4], Rgb, f32),
    Line([f32; 4], Rgb, f32),
    /// Artwork index, and the transform placing the unit square (images) or the
    /// form's own space (background).
    Art(usize, [f32; 6]),
    /// Filled unit squares of a QR code: origin, module size, dark modules.
    Qr([f32; 3], Vec<(u16, u16, u16)>),
}

#[derive(Default)]
struct FontUse {
    /// Original glyph id -> text it stands for (first seen wins).
    glyphs: BTreeMap<u16, String>,
}

pub struct Meta<'a> {
    pub title: &'a str,
    pub subject: &'a str,
    /// `YYYY-MM-DD`.
    pub date: &'a str,
    /// Room for the PDF's own signature (`crate::pdf_sign` fills it in).
    pub signature: Option<SignatureSlot>,
}

pub struct Page<'a> {
    book: &'a FontBook,
    size: (f32, f32),
    draws: Vec<Draw>,
    fonts: BTreeMap<(FontIdx, Glyphs), FontUse>,
    arts: Vec<&'a Artwork>,
}

impl<'a> Page<'a> {
    pub fn new(book: &'a FontBook, size: (f32, f32)) -> Self {
        Self {
            book,
            size,
            draws: Vec::new(),
            fonts: BTreeMap::new(),
            arts: Vec::new(),
        }
    }

    pub fn rect(&mut self, r: [f32; 4], color: Rgb, stroke: f32) {
        self.draws.push(Draw::Rect(r, color, stroke));
    }

    pub fn line(&mut self, l: [f32; 4], color: Rgb, width: f32) {
        self.draws.push(Draw::Line(l, color, width));
    }

    pub fn art(&mut self, art: &'a Artwork, transform: [f32; 6]) {
        self.arts.push(art);
        self.draws.push(Draw::Art(self.arts.len() - 1, transform));
    }

    pub fn qr(&mut self, origin: [f32; 3], dark: Vec<(u16, u16, u16)>) {
        self.draws.push(Draw::Qr(origin, dark));
    }

    /// A run of shaped glyphs (visual order) with its logical text.
    #[allow(clippy::too_many_arguments)]
    pub fn text(
        &mut self,
        font: FontIdx,
        size: f32,
        color: Rgb,
        x: f32,
        y: f32,
        glyphs: Vec<Glyph>,
        para: &str,
        range: std::ops::Range<usize>,
        rtl: bool,
        group: Glyphs,
    ) {
        let f = self.book.get(font);
        let usage = self.fonts.entry((font, group)).or_default();
        // What each glyph stands for, for the ToUnicode map: the character the font
        // maps to it when there is one (this also gets mirrored brackets right), else
        // the text of its cluster (ligatures and contextual forms) on the first glyph
        // of the cluster. Right-to-left clusters are stored reversed: extractors
        // put RTL text back into logical order by reversing it.
        let mut seen_cluster = None;
        for g in &glyphs {
            if usage.glyphs.contains_key(&g.gid) {
                seen_cluster = Some(g.cluster);
                continue;
            }
            let s = match f.glyph_chars.get(&g.gid) {
                Some(c) => c.to_string(),
                None if seen_cluster == Some(g.cluster) => String::new(),
                None => {
                    let end = cluster_end(&glyphs, g.cluster, range.end);
                    let t = para.get(g.cluster..end).unwrap_or("");
                    if rtl {
                        t.chars().rev().collect()
                    } else {
                        t.to_owned()
                    }
                }
            };
            seen_cluster = Some(g.cluster);
            usage.glyphs.insert(g.gid, s);
        }
        // ActualText only where the glyphs, read in order, do not spell the run's
        // text (reordered vowel signs, multi-glyph clusters): elsewhere extractors
        // do better with plain glyphs (word boxes per word).
        let logical = para.get(range).unwrap_or("");
        let spelled: String = glyphs
            .iter()
            .filter_map(|g| usage.glyphs.get(&g.gid).map(String::as_str))
            .collect();
        let actual_text = (!rtl && spelled != logical).then(|| logical.to_owned());
        self.draws.push(Draw::Text(TextRun {
            font: (font, group),
            size,
            color,
            x,
            y,
            glyphs,
            actual_text,
        }));
    }

    pub fn finish(self, meta: &Meta<'_>) -> Vec<u8> {
        let mut pdf = Pdf::new();
        let catalog_id = Ref::new(1);
        let pages_id = Ref::new(2);
        let page_id = Ref::new(3);
        let content_id = Ref::new(4);
        let info_id = Ref::new(5);
        let field_id = Ref::new(6);
        let sig_id = Ref::new(7);
        let mut next = 8;
        let mut alloc = |n: i32| {
            let r = next;
            next += n;
            r
        };

        // Fonts: subset, then write.
        let mut fonts = self.fonts;
        for (&(idx, group), usage) in fonts.iter_mut() {
            if group == Glyphs::Repeating {
                pad_hex_digits(self.book.get(idx), usage);
            }
        }
        let mut written: BTreeMap<(FontIdx, Glyphs), Written> = BTreeMap::new();
        for (i, (&(idx, group), usage)) in fonts.iter().enumerate() {
            let font = self.book.get(idx);
            let gids: Vec<u16> = usage.glyphs.keys().copied().collect();
            let mut remap = subsetter::GlyphRemapper::new();
            for &g in &gids {
                remap.remap(g);
            }
            // Repeating text's subsets are made once and kept: compress them
            // well. A name's subset is made for one certificate: compress fast.
            let level = match group {
                Glyphs::Repeating => 6,
                Glyphs::Name => 1,
            };
            let subset = self.book.packed_subset(idx, &gids, &remap, level);
            let base = alloc(5);
            let (type0, cid, desc, file, cmap) = (
                Ref::new(base),
                Ref::new(base + 1),
                Ref::new(base + 2),
                Ref::new(base + 3),
                Ref::new(base + 4),
            );
            let tag = subset_tag(&font.postscript_name, &gids);
            let base_font = format!("{tag}+{}", font.postscript_name);
            let upem = font.units_per_em;
            let scale = |v: f32| v * 1000.0 / upem;

            pdf.type0_font(type0)
                .base_font(Name(base_font.as_bytes()))
                .encoding_predefined(Name(b"Identity-H"))
                .descendant_font(cid)
                .to_unicode(cmap);
            let system_info = SystemInfo {
                registry: Str(b"Adobe"),
                ordering: Str(b"Identity"),
                supplement: 0,
            };
            let mut cid_font = pdf.cid_font(cid);
            cid_font
                .subtype(if font.cff {
                    CidFontType::Type0
                } else {
                    CidFontType::Type2
                })
                .base_font(Name(base_font.as_bytes()))
                .system_info(system_info)
                .font_descriptor(desc)
                .default_width(0.0);
            if !font.cff {
                cid_font.cid_to_gid_map_predefined(Name(b"Identity"));
            }
            // Widths by new glyph id (= CID), which are consecutive from 1.
            let mut by_new: Vec<(u16, f32)> = gids
                .iter()
                .filter_map(|&g| remap.get(g).map(|n| (n, scale(font.advance(g) as f32))))
                .collect();
            by_new.sort_by_key(|p| p.0);
            if let Some(&(first, _)) = by_new.first() {
                cid_font
                    .widths()
                    .consecutive(first, by_new.iter().map(|p| p.1));
            }
            cid_font.finish();

            let mut flags = FontFlags::NON_SYMBOLIC;
            if font.postscript_name.contains("Serif") {
                flags |= FontFlags::SERIF;
            }
            let mut d = pdf.font_descriptor(desc);
            d.name(Name(base_font.as_bytes()))
                .flags(flags)
                .bbox(Rect::new(
                    scale(font.bbox[0]),
                    scale(font.bbox[1]),
                    scale(font.bbox[2]),
                    scale(font.bbox[3]),
                ))
                .italic_angle(0.0)
                .ascent(font.ascent * 1000.0)
                .descent(-font.descent * 1000.0)
                .cap_height(font.cap_height * 1000.0)
                .stem_v(80.0);
            if subset.is_some() {
                if font.cff {
                    d.font_file3(file);
                } else {
                    d.font_file2(file);
                }
            }
            d.finish();
            if let Some(packed) = &subset {
                let mut s = pdf.stream(file, packed);
                s.filter(Filter::FlateDecode);
                if font.cff {
                    s.pair(Name(b"Subtype"), Name(b"OpenType"));
                }
                s.finish();
            }

            let mut to_unicode = UnicodeCmap::new(Name(b"Custom"), system_info);
            for (&g, text) in &usage.glyphs {
                if let Some(n) = remap.get(g) {
                    if !text.is_empty() {
                        to_unicode.pair_with_multiple(n, text.chars());
                    }
                }
            }
            let cmap_data = to_unicode.finish();
            pdf.stream(cmap, cmap_data.as_slice());
            written.insert(
                (idx, group),
                Written {
                    name: format!("F{i}"),
                    remap,
                    type0,
                },
            );
        }

        // Artwork (background, images), each under its own object numbers.
        let mut art_refs = Vec::new();
        for art in &self.arts {
            let first = alloc(art.count);
            let mut chunk = pdf_writer::Chunk::new();
            art_refs.push(art.place(&mut chunk, first));
            pdf.extend(&chunk);
        }

        // The content stream.
        let mut c = Content::new();
        for d in &self.draws {
            match d {
                Draw::Rect(r, col, stroke) => {
                    c.save_state();
                    if *stroke > 0.0 {
                        c.set_stroke_rgb(col.0, col.1, col.2);
                        c.set_line_width(*stroke);
                        c.rect(r[0], r[1], r[2], r[3]);
                        c.stroke();
                    } else {
                        c.set_fill_rgb(col.0, col.1, col.2);
                        c.rect(r[0], r[1], r[2], r[3]);
                        c.fill_nonzero();
                    }
                    c.restore_state();
                }
                Draw::Line(l, col, w) => {
                    c.save_state();
                    c.set_stroke_rgb(col.0, col.1, col.2);
                    c.set_line_width(*w);
                    c.move_to(l[0], l[1]);
                    c.line_to(l[2], l[3]);
                    c.stroke();
                    c.restore_state();
                }
                Draw::Art(i, m) => {
                    c.save_state();
                    c.transform(*m);
                    let name = format!("X{i}");
                    c.x_object(Name(name.as_bytes()));
                    c.restore_state();
                }
                Draw::Qr([x, y, m], dark) => {
                    // In module units (integers: a short content stream), rows
                    // downwards from the top-left corner.
                    c.save_state();
                    c.transform([*m, 0.0, 0.0, *m, *x, *y]);
                    c.set_fill_rgb(0.0, 0.0, 0.0);
                    for &(col, row, len) in dark {
                        c.rect(col as f32, -(row as f32) - 1.0, len as f32, 1.0);
                    }
                    c.fill_nonzero();
                    c.restore_state();
                }
                Draw::Text(run) => {
                    if let Some(w) = written.get(&run.font) {
                        write_run(&mut c, run, self.book, w);
                    }
                }
            }
        }
        let content = c.finish();
        // Level 1: each content stream is compressed once; level 6 would save
        // about 400 bytes for four times the time.
        let packed = deflate(content.as_slice(), 1);

        {
            let mut catalog = pdf.catalog(catalog_id);
            catalog.pages(pages_id);
            if meta.signature.is_some() {
                catalog.form().fields([field_id]).sig_flags(
                    pdf_writer::types::SigFlags::SIGNATURES_EXIST
                        | pdf_writer::types::SigFlags::APPEND_ONLY,
                );
            }
        }
        pdf.pages(pages_id).kids([page_id]).count(1);
        if let Some(slot) = &meta.signature {
            write_signature_slot(&mut pdf, slot, field_id, sig_id, page_id);
        }
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, self.size.0, self.size.1))
            .parent(pages_id)
            .contents(content_id);
        if meta.signature.is_some() {
            page.annotations([field_id]);
        }
        let mut res = page.resources();
        {
            let mut fonts = res.fonts();
            for w in written.values() {
                fonts.pair(Name(w.name.as_bytes()), w.type0);
            }
        }
        {
            let mut xo = res.x_objects();
            for (i, r) in art_refs.iter().enumerate() {
                let name = format!("X{i}");
                xo.pair(Name(name.as_bytes()), *r);
            }
        }
        res.finish();
        page.finish();
        pdf.stream(content_id, &packed).filter(Filter::FlateDecode);

        let date = pdf_date(meta.date);
        let mut info = pdf.document_info(info_id);
        info.title(TextStr(meta.title))
            .subject(TextStr(meta.subject))
            .producer(TextStr("testamur"))
            .creator(TextStr("testamur"));
        if let Some(d) = date {
            info.creation_date(d).modified_date(d);
        }
        info.finish();
        // The file identifier: a digest of the content, so equal documents are
        // byte-identical.
        let mut h = Sha256::new();
        h.update(&packed);
        h.update(meta.title.as_bytes());
        h.update(meta.subject.as_bytes());
        h.update(meta.date.as_bytes());
        let id = h.finalize()[..16].to_vec();
        pdf.set_file_id((id.clone(), id));
        pdf.finish()
    }
}

/// Characters of identifiers and URLs (hex digits of certificate ids and uuids).
const HEX_DIGITS: &str = "0123456789abcdef";

/// Adds all of [`HEX_DIGITS`] to a subset that draws any of them: the subsets of
/// repeating text then do not depend on which digits a certificate's id or verify
/// URL happens to contain, so they are the same from one certificate to the next
/// and come from the cache (the digits and most of a-f are there anyway).
fn pad_hex_digits(font: &super::fonts::Font, usage: &mut FontUse) {
    let uses_hex = usage
        .glyphs
        .values()
        .any(|t| t.len() == 1 && HEX_DIGITS.contains(t.as_str()));
    if !uses_hex {
        return;
    }
    for c in HEX_DIGITS.chars() {
        if let Some(g) = font.face.glyph_index(c) {
            usage.glyphs.entry(g.0).or_insert_with(|| c.to_string());
        }
    }
}

/// A font as written into the document.
struct Written {
    /// Resource name (`F0`, ...).
    name: String,
    remap: subsetter::GlyphRemapper,
    type0: Ref,
}

/// End (exclusive) of the cluster starting at `start`: the next larger cluster
/// offset among the run's glyphs, or the end of the run.
fn cluster_end(glyphs: &[Glyph], start: usize, run_end: usize) -> usize {
    glyphs
        .iter()
        .map(|g| g.cluster)
        .filter(|&c| c > start)
        .min()
        .unwrap_or(run_end)
        .min(run_end)
}

fn subset_tag(name: &str, gids: &[u16]) -> String {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    for g in gids {
        h.update(g.to_be_bytes());
    }
    h.finalize()[..6]
        .iter()
        .map(|b| (b'A' + b % 26) as char)
        .collect()
}

fn pdf_date(iso: &str) -> Option<pdf_writer::Date> {
    crate::signed_at::date_parts(iso).map(pdf_time)
}

/// Draws one run. Glyphs without offsets go out together in one `TJ`, with
/// adjustments where the shaped advance differs from the font's own (kerning);
/// a glyph with an offset (a mark) is placed on its own.
fn write_run(c: &mut Content, run: &TextRun, book: &FontBook, w: &Written) {
    let font = book.get(run.font.0);
    let upem = font.units_per_em;
    if let Some(t) = &run.actual_text {
        c.begin_marked_content_with_properties(Name(b"Span"))
            .properties()
            .actual_text(TextStr(t));
    }
    c.begin_text();
    c.set_fill_rgb(run.color.0, run.color.1, run.color.2);
    c.set_font(Name(w.name.as_bytes()), run.size);
    let mut pen = run.x;
    let mut i = 0;
    let glyphs = &run.glyphs;
    while i < glyphs.len() {
        let g = glyphs[i];
        if g.x_offset != 0.0 || g.y_offset != 0.0 {
            c.set_text_matrix([
                1.0,
                0.0,
                0.0,
                1.0,
                pen + g.x_offset * run.size,
                run.y + g.y_offset * run.size,
            ]);
            let code = w.remap.get(g.gid).unwrap_or(0).to_be_bytes();
            c.show(Str(&code));
            pen += g.advance * run.size;
            i += 1;
            continue;
        }
        c.set_text_matrix([1.0, 0.0, 0.0, 1.0, pen, run.y]);
        let mut j = i;
        let mut bytes = Vec::new();
        let mut pos = c.show_positioned();
        let mut items = pos.items();
        while j < glyphs.len() && glyphs[j].x_offset == 0.0 && glyphs[j].y_offset == 0.0 {
            let g = glyphs[j];
            bytes.extend_from_slice(&w.remap.get(g.gid).unwrap_or(0).to_be_bytes());
            let own = font.advance(g.gid) as f32 / upem;
            let adjust = (own - g.advance) * 1000.0;
            if adjust.abs() > 0.01 {
                items.show(Str(&bytes));
                bytes.clear();
                items.adjust(adjust);
            }
            pen += g.advance * run.size;
            j += 1;
        }
        if !bytes.is_empty() {
            items.show(Str(&bytes));
        }
        items.finish();
        pos.finish();
        i = j;
    }
    c.end_text();
    if run.actual_text.is_some() {
        c.end_marked_content();
    }
}
