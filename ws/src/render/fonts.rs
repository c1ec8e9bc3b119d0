//! Font files and font stacks: loading each font once per process, what it can draw,
//! and its metrics for layout and for the PDF font dictionaries.
//!
//! Font data lives for the whole process (templates are loaded once at start-up and
//! never unloaded), so it is leaked into `'static` memory and the parsed shaping
//! faces can borrow it without self-referential structs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::faces::{self, cmap_points, FaceInfo, Region};

use rustybuzz::ttf_parser;
use testamur_common::catalog::Coverage;

fn is_presentation_form(cp: u32) -> bool {
    matches!(cp, 0xFB00..=0xFDFF | 0xFE70..=0xFEFF)
}

/// Index of a font in its [`FontBook`].
pub type FontIdx = usize;

#[derive(Debug, thiserror::Error)]
#[error("font {path}: {detail}")]
pub struct FontError {
    pub path: String,
    pub detail: String,
}

pub struct Font {
    pub path: PathBuf,
    pub index: u32,
    pub data: &'static [u8],
    pub face: rustybuzz::Face<'static>,
    pub units_per_em: f32,
    /// Typographic extent above and below the baseline, in em (descent positive).
    pub ascent: f32,
    pub descent: f32,
    pub cap_height: f32,
    /// Glyph bounding box of the whole font, in font units.
    pub bbox: [f32; 4],
    pub postscript_name: String,
    pub cff: bool,
    /// The character a glyph stands for, for glyphs the font's cmap maps to directly
    /// (the inverse of the cmap; for the PDF's ToUnicode map).
    pub glyph_chars: HashMap<u16, char>,
    pub coverage: Coverage,
}

impl Font {
    fn load(path: &Path, index: u32, data: &'static [u8]) -> Result<Self, FontError> {
        let err = |detail: String| FontError {
            path: format!(
                "{}{}",
                path.display(),
                if index > 0 {
                    format!("#{index}")
                } else {
                    String::new()
                }
            ),
            detail,
        };
        let face = rustybuzz::Face::from_slice(data, index).ok_or_else(|| {
            err("not an OpenType/TrueType font (or no face at that index)".into())
        })?;
        let upem = face.units_per_em().max(1) as f32;
        let ascent = face.ascender() as f32 / upem;
        let descent = -(face.descender() as f32) / upem;
        let cap_height = face
            .capital_height()
            .map(|h| h as f32 / upem)
            .unwrap_or(ascent * 0.7);
        let gb = face.global_bounding_box();
        let postscript_name = face
            .names()
            .into_iter()
            .find(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
            .and_then(|n| n.to_string())
            .unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "Font".into())
            })
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let mut glyph_chars = HashMap::new();
        let mut points = Vec::new();
        if let Some(cmap) = face.tables().cmap {
            cmap_points(&cmap, |cp, g| {
                points.push(cp);
                // Presentation forms (Arabic contextual forms, ligatures) are what
                // the shaper produces from ordinary letters; text extraction must
                // give the letters back, so those glyphs take their cluster's text.
                if let Some(c) = char::from_u32(cp).filter(|_| !is_presentation_form(cp)) {
                    glyph_chars.entry(g).or_insert(c);
                }
            });
        }
        if points.is_empty() {
            return Err(err("the font maps no Unicode characters".into()));
        }
        let cff = face.tables().cff.is_some();
        Ok(Self {
            path: path.to_owned(),
            index,
            data,
            units_per_em: upem,
            ascent,
            descent,
            cap_height,
            bbox: [
                gb.x_min as f32,
                gb.y_min as f32,
                gb.x_max as f32,
                gb.y_max as f32,
            ],
            postscript_name,
            cff,
            glyph_chars,
            coverage: Coverage::from_code_points(points),
            face,
        })
    }

    /// The advance width the font itself gives a glyph, in font units.
    pub fn advance(&self, gid: u16) -> u16 {
        self.face
            .glyph_hor_advance(ttf_parser::GlyphId(gid))
            .unwrap_or(0)
    }
}

/// Every font the templates use and every face of the font directories, each
/// loaded at most once: the templates' own fonts at start-up, the others the first
/// time a certificate needs them.
#[derive(Default)]
pub struct FontBook {
    slots: Vec<Slot>,
    by_file: HashMap<(PathBuf, u32), FontIdx>,
    /// Faces of the font directories, tried after a stack's own fonts.
    fallback: Vec<FontIdx>,
    /// What they cover together.
    fallback_coverage: Coverage,
    /// File contents by path, shared by the faces of a collection.
    files: Mutex<HashMap<PathBuf, &'static [u8]>>,
    /// Compressed subsets by font and glyph set: the fonts of a template's fixed
    /// text give the same subset on every certificate.
    subsets: Mutex<HashMap<SubsetKey, Arc<Vec<u8>>>>,
    /// Shaping plans by font and buffer properties: building one costs as much as
    /// shaping a name.
    plans: Mutex<HashMap<PlanKey, Arc<rustybuzz::ShapePlan>>>,
}

/// A face known by its cheap scan, loaded whole on first use.
struct Slot {
    info: FaceInfo,
    font: OnceLock<Result<Font, FontError>>,
}

/// A subset's cache key: the font, its glyphs, the subsetting options.
type SubsetKey = (FontIdx, Vec<u16>, u32);

type PlanKey = (
    FontIdx,
    rustybuzz::Direction,
    Option<rustybuzz::Script>,
    Option<rustybuzz::Language>,
);

/// Subsets kept at most (each a few KB); the cache starts over when full.
const SUBSET_CACHE: usize = 512;

impl FontBook {
    /// Loads `spec` (a path, optionally `#N` for the N-th face of a collection,
    /// relative paths against `base`) unless it is loaded already.
    pub fn load(&mut self, base: &Path, spec: &str) -> Result<FontIdx, FontError> {
        let (file, index) = match spec.rsplit_once('#') {
            Some((f, i)) if i.parse::<u32>().is_ok() => (f, i.parse().unwrap_or(0)),
            _ => (spec, 0),
        };
        let path = base.join(file);
        if !self.by_file.contains_key(&(path.clone(), index)) {
            if let Some((f, i)) = spec.rsplit_once('#').filter(|_| !path.is_file()) {
                if base.join(f).is_file() {
                    return Err(FontError {
                        path: base.join(f).display().to_string(),
                        detail: format!(
                            "`#{i}` is not a face number: write #0 for the first face of a \
                             collection, #1 for the second, ..."
                        ),
                    });
                }
            }
            if !path.is_file() {
                return Err(FontError {
                    path: path.display().to_string(),
                    detail: "no such file; install the font (scripts/setup.sh installs \
                             fonts-dejavu-core, fonts-noto-core and fonts-noto-cjk) or \
                             change the font stack"
                        .into(),
                });
            }
            // Every face of the file, so that a CJK collection's regional faces
            // are there to switch to.
            for info in faces::scan_file(&path) {
                self.add(info);
            }
        }
        let i = match self.by_file.get(&(path.clone(), index)) {
            Some(&i) => i,
            None if faces::face_count(&path).is_some_and(|n| index >= n) => {
                return Err(FontError {
                    path: format!("{}#{index}", path.display()),
                    detail: self.no_such_face(&path, index),
                })
            }
            // Not found by the scan: a slot whose load says why.
            None => self.add(FaceInfo {
                path: path.clone(),
                index,
                family: String::new(),
                coverage: Coverage::default(),
                weight: 400,
                serif: false,
                text_face: false,
                region: None,
            }),
        };
        match self.slot_font(i) {
            Ok(font) => {
                if self.slots[i].info.coverage.ranges().is_empty() {
                    let cov = font.coverage.clone();
                    self.slots[i].info.coverage = cov;
                }
                Ok(i)
            }
            Err(e) => Err(FontError {
                path: e.path.clone(),
                detail: e.detail.clone(),
            }),
        }
    }

    /// Why `#index` names no face of `path`: how many it has, and which.
    fn no_such_face(&self, path: &Path, index: u32) -> String {
        let n = faces::face_count(path).unwrap_or(1);
        if n <= 1 {
            return format!(
                "the file holds one face, not a collection; there is no #{index}: write the \
                 path without `#{index}` (or with #0)"
            );
        }
        let names: Vec<String> = (0..n)
            .map(|i| match self.by_file.get(&(path.to_owned(), i)) {
                Some(&f) if !self.slots[f].info.family.is_empty() => {
                    format!("#{i} {}", self.slots[f].info.family)
                }
                _ => format!("#{i}"),
            })
            .collect();
        format!(
            "the file holds {n} faces, #0 to #{}; there is no #{index}. The faces: {} \
             (`fc-query` lists them too)",
            n - 1,
            names.join(", ")
        )
    }

    fn add(&mut self, info: FaceInfo) -> FontIdx {
        let key = (info.path.clone(), info.index);
        if let Some(&i) = self.by_file.get(&key) {
            return i;
        }
        self.slots.push(Slot {
            info,
            font: OnceLock::new(),
        });
        let i = self.slots.len() - 1;
        self.by_file.insert(key, i);
        i
    }

    /// Adds the text faces of `dirs` as the fallback of every stack.
    pub fn add_fallback_dirs(&mut self, dirs: &[PathBuf]) {
        let known: Vec<FaceInfo> = self.slots.iter().map(|s| s.info.clone()).collect();
        for info in faces::scan_dirs(dirs, &known) {
            let i = self.add(info);
            if !self.fallback.contains(&i) {
                self.fallback.push(i);
            }
        }
        self.fallback_coverage =
            Coverage::union_all(self.fallback.iter().map(|&f| &self.slots[f].info.coverage));
    }

    fn slot_font(&self, i: FontIdx) -> &Result<Font, FontError> {
        let slot = &self.slots[i];
        slot.font.get_or_init(|| {
            let path = &slot.info.path;
            let data = {
                let mut files = match self.files.lock() {
                    Ok(f) => f,
                    Err(p) => p.into_inner(),
                };
                match files.get(path) {
                    Some(d) => *d,
                    None => match std::fs::read(path) {
                        Ok(bytes) => {
                            let d: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                            files.insert(path.clone(), d);
                            d
                        }
                        Err(e) => {
                            return Err(FontError {
                                path: path.display().to_string(),
                                detail: format!("{e}; reinstall the font package"),
                            })
                        }
                    },
                }
            };
            Font::load(path, slot.info.index, data)
        })
    }

    /// Whether font `i` has a glyph for `c` (from its cmap, without loading it).
    pub fn covers(&self, i: FontIdx, c: char) -> bool {
        self.slots
            .get(i)
            .is_some_and(|s| s.info.coverage.contains(c))
    }

    pub fn info(&self, i: FontIdx) -> Option<&FaceInfo> {
        self.slots.get(i).map(|s| &s.info)
    }

    /// Loads font `i` if needed; false if it cannot be loaded (then it is not used).
    pub fn usable(&self, i: FontIdx) -> bool {
        i < self.slots.len() && self.slot_font(i).is_ok()
    }

    /// The fallback face for `c` after a stack's own fonts: one that has it, as
    /// near the weight the stack asks as there is, serif or sans like the stack,
    /// `current` first when it has `c` (so a word stays in one font).
    pub fn fallback_for(
        &self,
        c: char,
        want: &StackStyle,
        current: Option<FontIdx>,
    ) -> Option<FontIdx> {
        if let Some(f) = current.filter(|&f| self.fallback.contains(&f) && self.covers(f, c)) {
            return Some(f);
        }
        let mut best: Option<((u16, bool), FontIdx)> = None;
        for &f in &self.fallback {
            let info = &self.slots[f].info;
            if !info.coverage.contains(c) {
                continue;
            }
            let score = (info.weight.abs_diff(want.weight), info.serif != want.serif);
            if best.as_ref().is_none_or(|(s, _)| score < *s) && self.usable(f) {
                best = Some((score, f));
            }
        }
        best.map(|(_, f)| f)
    }

    /// Coverage of every fallback face.
    pub fn fallback_coverage(&self) -> &Coverage {
        &self.fallback_coverage
    }

    /// The face of the same collection for `region` when `i` is a regional CJK
    /// face and that face has `c` too; else `i`.
    pub fn regional(&self, i: FontIdx, region: Region, c: char) -> FontIdx {
        let Some(info) = self.info(i) else { return i };
        if info.region.is_none() || info.region == Some(region) {
            return i;
        }
        self.slots
            .iter()
            .enumerate()
            .find(|(_, s)| {
                s.info.path == info.path
                    && s.info.region == Some(region)
                    && s.info.family.contains("Mono") == info.family.contains("Mono")
                    && s.info.coverage.contains(c)
            })
            .map(|(j, _)| j)
            .filter(|&j| self.usable(j))
            .unwrap_or(i)
    }

    /// Font `i`, loaded. Only indices that [`FontBook::usable`] accepted are
    /// handed out, so the first stack font stands in for a failed one.
    pub fn get(&self, i: FontIdx) -> &Font {
        match self.slots.get(i).map(|_| self.slot_font(i)) {
            Some(Ok(f)) => f,
            _ => self
                .slots
                .iter()
                .find_map(|s| s.font.get().and_then(|r| r.as_ref().ok()))
                .expect("a font book holds at least one loaded font"),
        }
    }

    /// The deflated subset of font `i` with the glyphs `gids` (sorted, as given to
    /// `remap` in this order), computed once per glyph set and compressed at
    /// `level`. None if the font cannot be subset (it is then not embedded).
    pub fn packed_subset(
        &self,
        i: FontIdx,
        gids: &[u16],
        remap: &subsetter::GlyphRemapper,
        level: u32,
    ) -> Option<Arc<Vec<u8>>> {
        let key = (i, gids.to_vec(), level);
        if let Some(hit) = self.subsets.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Some(hit);
        }
        let font = self.get(i);
        let data = subsetter::subset(font.data, font.index, remap).ok()?;
        let packed = Arc::new(super::deflate::deflate(&super::sfnt::strip(&data), level));
        if let Ok(mut c) = self.subsets.lock() {
            if c.len() >= SUBSET_CACHE {
                c.clear();
            }
            c.insert(key, packed.clone());
        }
        Some(packed)
    }
}

impl FontBook {
    /// The shaping plan for font `i` and a buffer with these properties (after
    /// `guess_segment_properties`), made once.
    pub fn shape_plan(
        &self,
        i: FontIdx,
        buf: &rustybuzz::UnicodeBuffer,
    ) -> Arc<rustybuzz::ShapePlan> {
        // No script (text of only common characters) stays none, as in
        // `rustybuzz::shape`.
        let script = Some(buf.script()).filter(|s| *s != rustybuzz::script::UNKNOWN);
        let key = (i, buf.direction(), script, buf.language());
        if let Some(hit) = self.plans.lock().ok().and_then(|p| p.get(&key).cloned()) {
            return hit;
        }
        let plan = Arc::new(rustybuzz::ShapePlan::new(
            &self.get(i).face,
            key.1,
            key.2,
            key.3.as_ref(),
            &[],
        ));
        if let Ok(mut p) = self.plans.lock() {
            // Bounded by fonts x scripts x directions: no eviction needed.
            p.insert(key, plan.clone());
        }
        plan
    }
}

/// Fonts tried in order for each run of text, then the font directories.
#[derive(Debug, Clone)]
pub struct FontStack {
    pub name: String,
    pub fonts: Vec<FontIdx>,
    pub style: StackStyle,
}

/// What a stack's fallback faces should look like: its first font's weight and
/// whether it is a serif.
#[derive(Debug, Clone, Default)]
pub struct StackStyle {
    pub weight: u16,
    pub serif: bool,
}

impl FontStack {
    pub fn new(name: String, fonts: Vec<FontIdx>, book: &FontBook) -> Self {
        let style = fonts
            .first()
            .and_then(|&f| book.info(f))
            .map(|i| StackStyle {
                weight: i.weight,
                serif: i.serif,
            })
            .unwrap_or(StackStyle {
                weight: 400,
                serif: false,
            });
        Self { name, fonts, style }
    }

    /// Every character the stack draws: its fonts' and the fallback faces'.
    pub fn coverage(&self, book: &FontBook) -> Coverage {
        let own = self
            .fonts
            .iter()
            .filter_map(|&f| book.info(f))
            .map(|i| &i.coverage);
        Coverage::union_all(own.chain([book.fallback_coverage()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CJK: &str = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc";
    const SERIF: &str = "/usr/share/fonts/truetype/noto/NotoSerif-Regular.ttf";

    /// Issue 13 item 7: a face index past the end of a collection says how many
    /// faces there are and which indexes are valid.
    #[test]
    fn a_bad_face_index_says_how_many_faces_the_file_has() {
        let mut book = FontBook::default();
        let e = book.load(Path::new("/"), &format!("{CJK}#9")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("font {CJK}#9: ")), "{msg}");
        assert!(
            msg.contains("holds 5 faces, #0 to #4; there is no #9")
                && msg.contains("#0 Noto Serif CJK JP")
                && msg.contains("#2 Noto Serif CJK SC")
                && msg.contains("#4 Noto Serif CJK HK"),
            "{msg}"
        );
        assert!(book.load(Path::new("/"), &format!("{CJK}#4")).is_ok());
        let e = book
            .load(Path::new("/"), &format!("{SERIF}#1"))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("holds one face, not a collection; there is no #1"),
            "{e}"
        );
        let e = book
            .load(Path::new("/"), &format!("{CJK}#two"))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("font {CJK}: `#two` is not a face number")),
            "{e}"
        );
    }
}
