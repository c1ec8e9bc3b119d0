//! What a font file can draw, read cheaply: the table directory, `cmap`, `OS/2` and
//! `name` of each face, without reading the glyphs. Used at start-up for every font
//! of the configured font directories (the fallback after a template's own stack),
//! so that hundreds of installed fonts cost a few milliseconds and are loaded whole
//! only when a certificate needs one.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rustybuzz::ttf_parser;
use testamur_common::catalog::Coverage;

/// Regional face of a CJK font collection (Noto CJK: one face per region).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    Jp,
    Kr,
    Sc,
    Tc,
    Hk,
}

impl Region {
    /// From the last word of a family name ("Noto Serif CJK JP").
    fn from_family(family: &str) -> Option<Region> {
        if !family.contains("CJK") {
            return None;
        }
        Some(match family.rsplit(' ').next()? {
            "JP" => Region::Jp,
            "KR" => Region::Kr,
            "SC" => Region::Sc,
            "TC" => Region::Tc,
            "HK" => Region::Hk,
            _ => return None,
        })
    }

    /// The face a BCP 47 language tag asks for Han characters: `ja` JP, `ko` KR,
    /// `zh-Hant`, `zh-TW`, `zh-HK`, `zh-MO` TC, other `zh` SC; None for the rest.
    pub fn for_lang(lang: &str) -> Option<Region> {
        let lower = lang.to_ascii_lowercase();
        let mut parts = lower.split(['-', '_']);
        match parts.next()? {
            "ja" => Some(Region::Jp),
            "ko" => Some(Region::Kr),
            "zh" => {
                let traditional = parts.any(|p| matches!(p, "hant" | "tw" | "hk" | "mo"));
                Some(if traditional { Region::Tc } else { Region::Sc })
            }
            _ => None,
        }
    }

    /// The face for a text: kana asks for Japanese, hangul for Korean; Han only
    /// for the language given (request, then template), else Simplified Chinese.
    pub fn for_text(text: &str, langs: &[Option<&str>]) -> Region {
        let mut hangul = false;
        for c in text.chars() {
            match c as u32 {
                0x3040..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F | 0x1B000..=0x1B16F => {
                    return Region::Jp
                }
                0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xAC00..=0xD7FF => {
                    hangul = true
                }
                _ => {}
            }
        }
        if hangul {
            return Region::Kr;
        }
        langs
            .iter()
            .flatten()
            .find_map(|l| Region::for_lang(l))
            .unwrap_or(Region::Sc)
    }
}

/// One face of a font file, as far as choosing it goes.
#[derive(Debug, Clone)]
pub struct FaceInfo {
    pub path: PathBuf,
    pub index: u32,
    pub family: String,
    pub coverage: Coverage,
    /// OS/2 usWeightClass (400 regular, 700 bold).
    pub weight: u16,
    pub serif: bool,
    /// Upright, normal width, not monospaced and not a UI variant: a face for names.
    pub text_face: bool,
    pub region: Option<Region>,
}

/// The code points a cmap maps to a real glyph (not .notdef), with the glyph, as
/// both the cheap scan and the full load read them: from the first
/// full-repertoire subtable (format 12, which includes the BMP), else the first
/// format 4 one, as text engines do (the others repeat it); else all of them.
pub fn cmap_points(cmap: &ttf_parser::cmap::Table<'_>, mut each: impl FnMut(u32, u16)) {
    use ttf_parser::cmap::Format;
    let unicode = || cmap.subtables.into_iter().filter(|s| s.is_unicode());
    let chosen = unicode()
        .find(|s| matches!(s.format, Format::SegmentedCoverage(_)))
        .or_else(|| unicode().find(|s| matches!(s.format, Format::SegmentMappingToDeltaValues(_))));
    let subs: Vec<_> = match chosen {
        Some(s) => vec![s],
        None => unicode().collect(),
    };
    for sub in subs {
        sub.codepoints(|cp| {
            if let (Some(_), Some(g)) = (char::from_u32(cp), sub.glyph_index(cp)) {
                if g.0 != 0 {
                    each(cp, g.0);
                }
            }
        });
    }
}

/// What [`cmap_points`] covers, as ranges.
pub fn cmap_coverage(cmap: &ttf_parser::cmap::Table<'_>) -> Coverage {
    let mut points = Vec::new();
    cmap_points(cmap, |cp, _| points.push(cp));
    Coverage::from_code_points(points)
}

fn read_at(f: &mut File, offset: u64, len: usize) -> Option<Vec<u8>> {
    if len > 64 << 20 {
        return None;
    }
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// How many faces the font file `path` holds: a collection's count, 1 for a
/// single font; None when it is not a font file.
pub fn face_count(path: &Path) -> Option<u32> {
    let mut f = File::open(path).ok()?;
    let head = read_at(&mut f, 0, 12)?;
    match &head[0..4] {
        b"ttcf" => be32(&head, 8),
        [0, 1, 0, 0] | b"OTTO" | b"true" => Some(1),
        _ => None,
    }
}

/// Every face of `path` (one, or each of a collection) that a PDF can embed and
/// the shaper can use; empty when the file is not a font.
pub fn scan_file(path: &Path) -> Vec<FaceInfo> {
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let Some(head) = read_at(&mut f, 0, 12) else {
        return Vec::new();
    };
    let offsets: Vec<u64> = if &head[0..4] == b"ttcf" {
        let n = be32(&head, 8).unwrap_or(0).min(256) as usize;
        let Some(dir) = read_at(&mut f, 12, 4 * n) else {
            return Vec::new();
        };
        (0..n)
            .filter_map(|i| be32(&dir, 4 * i).map(u64::from))
            .collect()
    } else {
        vec![0]
    };
    // The faces of a collection usually share one cmap: read it once.
    let mut cmaps = Vec::new();
    offsets
        .iter()
        .enumerate()
        .filter_map(|(i, &off)| scan_face(&mut f, path, i as u32, off, &mut cmaps))
        .collect()
}

fn scan_face(
    f: &mut File,
    path: &Path,
    index: u32,
    offset: u64,
    cmaps: &mut Vec<((u64, usize), Coverage)>,
) -> Option<FaceInfo> {
    let hdr = read_at(f, offset, 12)?;
    let n = u16::from_be_bytes(hdr.get(4..6)?.try_into().ok()?) as usize;
    let dir = read_at(f, offset + 12, 16 * n)?;
    let table = |tag: &[u8; 4]| -> Option<(u64, usize)> {
        (0..n).find_map(|i| {
            let rec = dir.get(16 * i..16 * i + 16)?;
            (&rec[0..4] == tag).then(|| Some((be32(rec, 8)? as u64, be32(rec, 12)? as usize)))?
        })
    };
    // What rustybuzz needs to load the face and the PDF writer to embed it.
    for need in [b"head", b"hhea", b"maxp", b"hmtx"] {
        table(need)?;
    }
    table(b"glyf").or_else(|| table(b"CFF "))?;
    let cmap_at = table(b"cmap")?;
    let coverage = match cmaps.iter().find(|(at, _)| *at == cmap_at) {
        Some((_, c)) => c.clone(),
        None => {
            let cmap_data = read_at(f, cmap_at.0, cmap_at.1)?;
            let cmap = ttf_parser::cmap::Table::parse(&cmap_data)?;
            let c = cmap_coverage(&cmap);
            cmaps.push((cmap_at, c.clone()));
            c
        }
    };
    if coverage.ranges().is_empty() {
        return None;
    }
    let os2 = table(b"OS/2").and_then(|(o, l)| read_at(f, o, l));
    let os2 = os2.as_deref().and_then(ttf_parser::os2::Table::parse);
    let weight = os2.map(|t| t.weight().to_number()).unwrap_or(400);
    let upright = os2.is_none_or(|t| t.style() == ttf_parser::Style::Normal);
    let normal_width = os2.is_none_or(|t| t.width() == ttf_parser::Width::Normal);
    let names = table(b"name").and_then(|(o, l)| read_at(f, o, l));
    let family = names
        .as_deref()
        .and_then(ttf_parser::name::Table::parse)
        .and_then(|t| {
            let fam = |id| {
                t.names
                    .into_iter()
                    .find(|n| n.name_id == id && n.is_unicode())
                    .and_then(|n| n.to_string())
            };
            fam(ttf_parser::name_id::TYPOGRAPHIC_FAMILY)
                .or_else(|| fam(ttf_parser::name_id::FAMILY))
        })
        .unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let plain = !family.contains("Mono") && !family.contains(" UI") && !family.ends_with("UI");
    Some(FaceInfo {
        path: path.to_owned(),
        index,
        serif: family.contains("Serif"),
        region: Region::from_family(&family),
        text_face: upright && normal_width && plain,
        family,
        coverage,
        weight,
    })
}

/// Font directories searched when `index.toml` does not set `font_dirs`: where
/// Debian's fonts-noto-core, fonts-noto-cjk and fonts-dejavu-core install.
pub const DEFAULT_DIRS: &[&str] = &[
    "/usr/share/fonts/truetype/noto",
    "/usr/share/fonts/opentype/noto",
    "/usr/share/fonts/truetype/dejavu",
];

/// The text faces of every font file in `dirs` (and their subfolders), in path
/// order, besides the files `known` (already scanned); folders that do not exist
/// are skipped.
pub fn scan_dirs(dirs: &[PathBuf], known: &[FaceInfo]) -> Vec<FaceInfo> {
    let mut files = Vec::new();
    let mut todo: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| {
                let x = x.to_ascii_lowercase();
                x == "ttf" || x == "otf" || x == "ttc" || x == "otc"
            }) {
                files.push(p);
            }
        }
    }
    files.sort();
    files.dedup();
    let (mut again, files): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .partition(|p| known.iter().any(|k| &k.path == p));
    again.dedup();
    // Spread over the cores: start-up waits for this.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .flat_map(|p| scan_file(p))
                        .filter(|f| f.text_face)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // In path order, whatever finishes first.
        let mut all: Vec<FaceInfo> = parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .chain(
                known
                    .iter()
                    .filter(|k| k.text_face && again.contains(&k.path))
                    .cloned(),
            )
            .collect();
        all.sort_by(|a, b| (&a.path, a.index).cmp(&(&b.path, b.index)));
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_from_text_and_lang() {
        assert_eq!(Region::for_text("山田 たろう", &[Some("zh")]), Region::Jp);
        assert_eq!(Region::for_text("김민준", &[]), Region::Kr);
        assert_eq!(Region::for_text("陳大文", &[Some("zh-Hant")]), Region::Tc);
        assert_eq!(Region::for_text("陳大文", &[Some("zh-HK")]), Region::Tc);
        assert_eq!(Region::for_text("陈大文", &[Some("zh-Hans")]), Region::Sc);
        assert_eq!(Region::for_text("山田", &[None, Some("ja")]), Region::Jp);
        assert_eq!(Region::for_text("山田", &[Some("en"), None]), Region::Sc);
    }

    #[test]
    fn noto_cjk_faces_in_order() {
        let faces = scan_file(Path::new(
            "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
        ));
        let regions: Vec<_> = faces.iter().map(|f| f.region).collect();
        assert_eq!(
            regions,
            [Region::Jp, Region::Kr, Region::Sc, Region::Tc, Region::Hk].map(Some)
        );
        assert!(faces.iter().all(|f| f.serif && f.coverage.contains('山')));
    }
}
