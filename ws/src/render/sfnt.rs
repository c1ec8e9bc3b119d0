//! Dropping tables a PDF viewer never reads from an embedded font program.
//!
//! A font embedded in a PDF is drawn by glyph id: its `name` table (family and
//! copyright strings, ~1.5 KB in Noto) and `post` table (glyph names) are not
//! used (ISO 32000-2 §9.9 lists the tables a TrueType program needs). Dropping
//! them makes every certificate's subsets smaller and quicker to compress.

/// Tables left out of embedded font programs.
const DROPPED: [&[u8; 4]; 2] = [b"name", b"post"];

/// `font` (an sfnt: TrueType or OpenType) without the [`DROPPED`] tables, with
/// checksums recomputed. The font unchanged if it does not parse as an sfnt.
pub fn strip(font: &[u8]) -> Vec<u8> {
    try_strip(font).unwrap_or_else(|| font.to_vec())
}

fn try_strip(font: &[u8]) -> Option<Vec<u8>> {
    let u16_at = |o: usize| Some(u16::from_be_bytes(font.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_be_bytes(font.get(o..o + 4)?.try_into().ok()?));
    let num_tables = u16_at(4)? as usize;
    let mut tables = Vec::with_capacity(num_tables);
    for i in 0..num_tables {
        let rec = 12 + 16 * i;
        let tag: [u8; 4] = font.get(rec..rec + 4)?.try_into().ok()?;
        let (offset, length) = (u32_at(rec + 8)? as usize, u32_at(rec + 12)? as usize);
        let data = font.get(offset..offset.checked_add(length)?)?;
        if !DROPPED.contains(&&tag) {
            tables.push((tag, data));
        }
    }
    if tables.len() == num_tables {
        return None;
    }
    let n = tables.len() as u16;
    let entry_selector = 15 - n.leading_zeros() as u16; // floor(log2(n))
    let search_range = (1u16 << entry_selector) * 16;
    let mut out = Vec::with_capacity(font.len());
    out.extend_from_slice(font.get(0..4)?);
    for v in [n, search_range, entry_selector, n * 16 - search_range] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    let mut offset = 12 + 16 * tables.len();
    let mut head_at = None;
    for (tag, data) in &tables {
        out.extend_from_slice(tag);
        out.extend_from_slice(&checksum(data, tag == b"head").to_be_bytes());
        out.extend_from_slice(&(offset as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        if tag == b"head" {
            head_at = Some(offset);
        }
        offset += data.len().next_multiple_of(4);
    }
    for (_, data) in &tables {
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    // head.checkSumAdjustment (offset 8 in head): 0xB1B0AFBA minus the sum of
    // the whole font with it set to zero.
    if let Some(h) = head_at {
        out.get_mut(h + 8..h + 12)?.fill(0);
        let adjust = 0xB1B0_AFBAu32.wrapping_sub(checksum(&out, false));
        out.get_mut(h + 8..h + 12)?
            .copy_from_slice(&adjust.to_be_bytes());
    }
    Some(out)
}

/// The sfnt checksum: the sum of big-endian u32s, zero-padded; for `head`, with
/// its checkSumAdjustment field counted as zero.
fn checksum(data: &[u8], head: bool) -> u32 {
    let mut sum = 0u32;
    for (i, chunk) in data.chunks(4).enumerate() {
        if head && i == 2 {
            continue;
        }
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        sum = sum.wrapping_add(u32::from_be_bytes(word));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_name_and_post_and_keeps_a_loadable_font() {
        let data = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
            .expect("fonts-dejavu-core is installed (scripts/setup.sh)");
        let mut remap = subsetter::GlyphRemapper::new();
        for g in [0u16, 36, 37, 38] {
            remap.remap(g);
        }
        let subset = subsetter::subset(&data, 0, &remap).expect("subsets");
        let stripped = strip(&subset);
        assert!(stripped.len() < subset.len());
        let face = rustybuzz::ttf_parser::Face::parse(&stripped, 0).expect("still a font");
        assert_eq!(face.number_of_glyphs(), 4);
        let tags: Vec<_> = face
            .raw_face()
            .table_records
            .into_iter()
            .map(|r| r.tag)
            .collect();
        for t in [b"name", b"post"] {
            assert!(!tags.contains(&rustybuzz::ttf_parser::Tag::from_bytes(t)));
        }
        for t in [b"glyf", b"loca", b"head", b"hmtx", b"maxp"] {
            assert!(tags.contains(&rustybuzz::ttf_parser::Tag::from_bytes(t)));
        }
        // The whole font sums to the magic number once the adjustment is in.
        assert_eq!(checksum(&stripped, false), 0xB1B0_AFBA);
        // Not a font: returned as it came.
        assert_eq!(strip(b"not a font"), b"not a font".to_vec());
    }

    /// Records an outline's commands, to compare two fonts' drawings of a glyph.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl rustybuzz::ttf_parser::OutlineBuilder for Recorder {
        fn move_to(&mut self, x: f32, y: f32) {
            self.0.push(format!("M{x} {y}"));
        }
        fn line_to(&mut self, x: f32, y: f32) {
            self.0.push(format!("L{x} {y}"));
        }
        fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
            self.0.push(format!("Q{x1} {y1} {x} {y}"));
        }
        fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
            self.0.push(format!("C{x1} {y1} {x2} {y2} {x} {y}"));
        }
        fn close(&mut self) {
            self.0.push("Z".into());
        }
    }

    /// The subsets of Noto CJK's CFF fonts (subroutines by the thousand over 19
    /// font dicts, which vendor/subsetter/PATCHES.md reads from their INDEX on
    /// demand) draw every glyph exactly as the whole font does.
    #[test]
    fn cff_subsets_keep_every_outline() {
        use rustybuzz::ttf_parser::{cff, Face, GlyphId, RawFace, Tag};
        for (file, face_index) in [
            ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
            ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 0),
        ] {
            let data = std::fs::read(file).expect("fonts-noto-cjk is installed (scripts/setup.sh)");
            let face = Face::parse(&data, face_index).expect("a font");
            let glyphs = face.number_of_glyphs() as u32;
            let mut x = 1u32;
            for set in 0..40u32 {
                let mut gids = vec![0u16];
                for _ in 0..(1 + set % 8) {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    gids.push(((x >> 8) % glyphs) as u16);
                }
                let mut remap = subsetter::GlyphRemapper::new();
                for &g in &gids {
                    remap.remap(g);
                }
                let subset = subsetter::subset(&data, face_index, &remap).expect("subsets");
                let cff_data = RawFace::parse(&subset, 0)
                    .ok()
                    .and_then(|f| f.table(Tag::from_bytes(b"CFF ")))
                    .expect("the subset has a CFF table");
                let sub = cff::Table::parse(cff_data).expect("a CFF table");
                for &g in &gids {
                    let (mut want, mut got) = (Recorder::default(), Recorder::default());
                    let a = face.outline_glyph(GlyphId(g), &mut want);
                    let new = remap.get(g).expect("remapped");
                    let b = sub.outline(GlyphId(new), &mut got).ok();
                    assert_eq!(a, b, "{file} glyph {g}: bounding box");
                    assert!(
                        !want.0.is_empty() || g == 0 || a.is_none(),
                        "{file} glyph {g}"
                    );
                    assert_eq!(want.0, got.0, "{file} glyph {g} (new id {new})");
                }
            }
        }
    }
}
