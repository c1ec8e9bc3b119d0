//! Artwork a template brings: background pages from designers' PDFs and PNG images
//! (signatures). Each is parsed, converted and compressed once, when the template is
//! loaded, into a ready-made block of PDF objects; rendering a certificate only copies
//! that block into the document under fresh object numbers.
//!
//! The background is the overlay model: the first page of the designer's PDF becomes
//! a form XObject drawn under the text, never merged page by page.

use std::collections::HashMap;
use std::path::Path;

use super::deflate::deflate;
use pdf_writer::{Chunk, Filter, Finish, Name, Obj, Rect, Ref, Str};

/// PDF objects numbered from 1 in their own space; object 1 is the one to draw.
pub struct Artwork {
    pub chunk: Chunk,
    /// How many object numbers the chunk uses (1..=count).
    pub count: i32,
}

impl Artwork {
    /// Copies the objects into `out`, numbered from `first`; returns the drawable's ref.
    pub fn place(&self, out: &mut Chunk, first: i32) -> Ref {
        self.chunk
            .renumber_into(out, |r| Ref::new(first + r.get() - 1));
        Ref::new(first)
    }
}

pub struct Background {
    pub art: Artwork,
    /// What an operator should know (`ws --check`, `preview`): pages that are not
    /// drawn, a page of another shape (stretched), fonts the PDF does not embed.
    pub warnings: Vec<String>,
}

pub struct Image {
    pub art: Artwork,
    pub width: u32,
    pub height: u32,
}

impl Background {
    /// The first page of the PDF at `path`, scaled to fill a `page` (pt) page.
    pub fn load(path: &Path, page: (f32, f32)) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc = lopdf::Document::load_mem(&bytes)
            .map_err(|e| format!("{}: not a PDF lopdf can read: {e}", path.display()))?;
        let pages = doc.get_pages();
        let (_, &page_id) = pages
            .iter()
            .next()
            .ok_or_else(|| format!("{}: the PDF has no pages", path.display()))?;
        let page_dict = doc.get_dictionary(page_id).map_err(|e| e.to_string())?;
        let media = inherited(&doc, page_dict, b"MediaBox")
            .and_then(|o| o.as_array().ok().cloned())
            .and_then(|a| {
                let n: Vec<f32> = a.iter().filter_map(|o| o.as_float().ok()).collect();
                (n.len() == 4).then(|| [n[0], n[1], n[2], n[3]])
            })
            .unwrap_or([0.0, 0.0, page.0, page.1]);
        let content = doc
            .get_page_content_with_limit(page_id, 64 << 20)
            .map_err(|e| format!("{}: page content: {e}", path.display()))?;
        let resources: Option<lopdf::Object> = inherited(&doc, page_dict, b"Resources").cloned();

        let mut copier = Copier {
            doc: &doc,
            map: HashMap::new(),
            queue: Vec::new(),
            next: 2,
            chunk: Chunk::new(),
        };
        let mut res_refs = Vec::new();
        if let Some(r) = &resources {
            collect_refs(r, &mut res_refs);
        }
        let res_refs: Vec<Ref> = res_refs.iter().map(|&id| copier.reference(id)).collect();
        let packed = deflate(&content, 6);
        let (w, h) = (media[2] - media[0], media[3] - media[1]);
        {
            let mut form = copier.chunk.form_xobject(Ref::new(1), &packed);
            form.filter(Filter::FlateDecode);
            form.bbox(Rect::new(media[0], media[1], media[2], media[3]));
            if w > 0.0 && h > 0.0 {
                // Stretch the artwork's page onto ours.
                let (sx, sy) = (page.0 / w, page.1 / h);
                form.matrix([sx, 0.0, 0.0, sy, -media[0] * sx, -media[1] * sy]);
            }
            if let Some(res) = &resources {
                write_mapped(
                    form.insert(Name(b"Resources")),
                    res,
                    &mut res_refs.into_iter(),
                );
            }
            form.finish();
        }
        copier.drain();
        let count = copier.next - 1;
        Ok(Self {
            art: Artwork {
                chunk: copier.chunk,
                count,
            },
            warnings: warnings(&doc, page_id, pages.len(), (w, h), page),
        })
    }
}

/// Warnings about the background (see [`Background::warnings`]); sizes in pt.
fn warnings(
    doc: &lopdf::Document,
    page_id: lopdf::ObjectId,
    pages: usize,
    art: (f32, f32),
    page: (f32, f32),
) -> Vec<String> {
    const MM: f32 = 72.0 / 25.4;
    let mut out = Vec::new();
    if pages > 1 {
        out.push(format!(
            "the PDF has {pages} pages; only the first is drawn"
        ));
    }
    if art.0 > 0.0 && art.1 > 0.0 && ((art.0 / art.1) / (page.0 / page.1) - 1.0).abs() > 0.01 {
        out.push(format!(
            "its page is {:.0} x {:.0} mm and the template's {:.0} x {:.0} mm: it is stretched to fit; make the artwork the template's page size",
            art.0 / MM,
            art.1 / MM,
            page.0 / MM,
            page.1 / MM
        ));
    }
    let fonts = doc.get_page_fonts(page_id).unwrap_or_default();
    let mut missing: Vec<String> = fonts
        .values()
        .filter(|f| !font_embedded(doc, f))
        .map(|f| {
            f.get(b"BaseFont")
                .and_then(|n| n.as_name())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_else(|_| "(unnamed)".into())
        })
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        out.push(format!(
            "fonts not embedded in the PDF: {}; readers substitute their own, so the artwork looks different everywhere: export it with fonts embedded (or text as outlines)",
            missing.join(", ")
        ));
    }
    out
}

/// Whether a font dictionary carries its font program (Type 3 fonts are drawn
/// by the PDF itself; a composite font's is in its descendant).
fn font_embedded(doc: &lopdf::Document, font: &lopdf::Dictionary) -> bool {
    let subtype = font
        .get(b"Subtype")
        .and_then(|s| s.as_name())
        .unwrap_or(b"");
    if subtype == b"Type3" {
        return true;
    }
    let font = if subtype == b"Type0" {
        match font
            .get_deref(b"DescendantFonts", doc)
            .and_then(|a| a.as_array())
            .ok()
            .and_then(|a| a.first())
            .and_then(|d| doc.dereference(d).ok())
            .and_then(|(_, d)| d.as_dict().ok())
        {
            Some(d) => d,
            None => return false,
        }
    } else {
        font
    };
    font.get_deref(b"FontDescriptor", doc)
        .and_then(|d| d.as_dict())
        .is_ok_and(|d| {
            [&b"FontFile"[..], b"FontFile2", b"FontFile3"]
                .iter()
                .any(|k| d.has(k))
        })
}

fn inherited<'a>(
    doc: &'a lopdf::Document,
    dict: &'a lopdf::Dictionary,
    key: &[u8],
) -> Option<&'a lopdf::Object> {
    let mut d = dict;
    for _ in 0..32 {
        if let Ok(o) = d.get(key) {
            return doc.dereference(o).ok().map(|(_, o)| o);
        }
        let parent = d.get(b"Parent").and_then(|p| p.as_reference()).ok()?;
        d = doc.get_dictionary(parent).ok()?;
    }
    None
}

/// Copies objects of a lopdf document into a pdf-writer chunk, renumbering
/// references as it goes.
struct Copier<'a> {
    doc: &'a lopdf::Document,
    map: HashMap<lopdf::ObjectId, i32>,
    queue: Vec<lopdf::ObjectId>,
    next: i32,
    chunk: Chunk,
}

impl Copier<'_> {
    fn reference(&mut self, id: lopdf::ObjectId) -> Ref {
        let n = *self.map.entry(id).or_insert_with(|| {
            let n = self.next;
            self.next += 1;
            self.queue.push(id);
            n
        });
        Ref::new(n)
    }

    fn drain(&mut self) {
        while let Some(id) = self.queue.pop() {
            let r = Ref::new(self.map[&id]);
            let Ok(obj) = self.doc.get_object(id) else {
                self.chunk.indirect(r).primitive(pdf_writer::Null);
                continue;
            };
            let obj = obj.clone();
            match &obj {
                lopdf::Object::Stream(s) => {
                    let mut dict = s.dict.clone();
                    dict.remove(b"Length");
                    let mut refs = Vec::new();
                    collect_refs(&lopdf::Object::Dictionary(dict.clone()), &mut refs);
                    let mapped: Vec<Ref> = refs.iter().map(|&id| self.reference(id)).collect();
                    let mut st = self.chunk.stream(r, &s.content);
                    let mut it = mapped.into_iter();
                    for (k, v) in dict.iter() {
                        write_mapped(st.insert(Name(k)), v, &mut it);
                    }
                    st.finish();
                }
                other => {
                    let mut refs = Vec::new();
                    collect_refs(other, &mut refs);
                    let mapped: Vec<Ref> = refs.iter().map(|&id| self.reference(id)).collect();
                    let mut it = mapped.into_iter();
                    write_mapped(self.chunk.indirect(r), other, &mut it);
                }
            }
        }
    }
}

/// References in `o` in the order [`write_mapped`] meets them.
fn collect_refs(o: &lopdf::Object, out: &mut Vec<lopdf::ObjectId>) {
    match o {
        lopdf::Object::Reference(id) => out.push(*id),
        lopdf::Object::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        lopdf::Object::Dictionary(d) => d.iter().for_each(|(_, x)| collect_refs(x, out)),
        lopdf::Object::Stream(s) => s.dict.iter().for_each(|(_, x)| collect_refs(x, out)),
        _ => {}
    }
}

fn write_mapped(obj: Obj<'_>, o: &lopdf::Object, refs: &mut impl Iterator<Item = Ref>) {
    match o {
        lopdf::Object::Null => obj.primitive(pdf_writer::Null),
        lopdf::Object::Boolean(b) => obj.primitive(*b),
        lopdf::Object::Integer(i) => {
            obj.primitive((*i).clamp(i32::MIN as i64, i32::MAX as i64) as i32)
        }
        lopdf::Object::Real(f) => obj.primitive(*f),
        lopdf::Object::Name(n) => obj.primitive(Name(n)),
        lopdf::Object::String(s, _) => obj.primitive(Str(s)),
        lopdf::Object::Reference(_) => match refs.next() {
            Some(r) => obj.primitive(r),
            None => obj.primitive(pdf_writer::Null),
        },
        lopdf::Object::Array(a) => {
            let mut arr = obj.array();
            for x in a {
                write_mapped(arr.push(), x, refs);
            }
        }
        lopdf::Object::Dictionary(d) => {
            let mut dict = obj.dict();
            for (k, v) in d.iter() {
                write_mapped(dict.insert(Name(k)), v, refs);
            }
        }
        // A stream can only be an indirect object; a direct one is invalid input.
        lopdf::Object::Stream(_) => obj.primitive(pdf_writer::Null),
    }
}

impl Image {
    /// A PNG (any colour type; transparency kept as a soft mask).
    pub fn load_png(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder
            .read_info()
            .map_err(|e| format!("{}: not a PNG: {e}", path.display()))?;
        let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
        let info = reader
            .next_frame(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (w, h) = (info.width, info.height);
        let px = (w * h) as usize;
        let (rgb, alpha, gray): (Vec<u8>, Option<Vec<u8>>, bool) = match info.color_type {
            png::ColorType::Rgb => (buf[..px * 3].to_vec(), None, false),
            png::ColorType::Rgba => {
                let rgb = buf[..px * 4]
                    .chunks(4)
                    .flat_map(|p| [p[0], p[1], p[2]])
                    .collect();
                let a: Vec<u8> = buf[..px * 4].chunks(4).map(|p| p[3]).collect();
                (rgb, Some(a), false)
            }
            png::ColorType::Grayscale => (buf[..px].to_vec(), None, true),
            png::ColorType::GrayscaleAlpha => {
                let g = buf[..px * 2].chunks(2).map(|p| p[0]).collect();
                let a: Vec<u8> = buf[..px * 2].chunks(2).map(|p| p[1]).collect();
                (g, Some(a), true)
            }
            png::ColorType::Indexed => {
                return Err(format!("{}: indexed PNG was not expanded", path.display()))
            }
        };
        let mut chunk = Chunk::new();
        let data = deflate(&rgb, 9);
        let mut img = chunk.image_xobject(Ref::new(1), &data);
        img.filter(Filter::FlateDecode);
        img.width(w as i32);
        img.height(h as i32);
        if gray {
            img.color_space().device_gray();
        } else {
            img.color_space().device_rgb();
        }
        img.bits_per_component(8);
        if alpha.is_some() {
            img.s_mask(Ref::new(2));
        }
        img.finish();
        let mut count = 1;
        if let Some(a) = alpha {
            let data = deflate(&a, 9);
            let mut mask = chunk.image_xobject(Ref::new(2), &data);
            mask.filter(Filter::FlateDecode);
            mask.width(w as i32);
            mask.height(h as i32);
            mask.color_space().device_gray();
            mask.bits_per_component(8);
            mask.finish();
            count = 2;
        }
        Ok(Self {
            art: Artwork { chunk, count },
            width: w,
            height: h,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::{dictionary, Document, Object, Stream};

    const A4_LANDSCAPE: (f32, f32) = (841.89, 595.28);

    /// Issue 13 item 7: a background with two pages, of another shape and with a
    /// font it does not embed loads, with a warning for each.
    #[test]
    fn a_background_that_will_not_look_as_designed_is_warned_about() {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        let content = doc.add_object(Stream::new(
            dictionary! {},
            b"BT /F1 48 Tf 72 72 Td (Hi) Tj ET".to_vec(),
        ));
        let mut kids = Vec::new();
        for _ in 0..2 {
            let page = doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => pages_id, "Contents" => content,
                "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } },
            });
            kids.push(Object::Reference(page));
        }
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => kids, "Count" => 2,
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let path = std::env::temp_dir().join(format!("tm-bg-{}.pdf", std::process::id()));
        doc.save(&path).unwrap();
        let w = Background::load(&path, A4_LANDSCAPE).unwrap().warnings;
        let _ = std::fs::remove_file(&path);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("2 pages"), "{w:?}");
        assert!(
            w[1].contains("216 x 279 mm") && w[1].contains("stretched"),
            "{w:?}"
        );
        assert!(w[2].contains("Helvetica"), "{w:?}");
        // The shipped artwork is as designed.
        let shipped =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/art/classic-border.pdf");
        let w = Background::load(&shipped, A4_LANDSCAPE).unwrap().warnings;
        assert!(w.is_empty(), "{w:?}");
    }
}
