//! Text layout: font fallback per run, shaping (rustybuzz), bidirectional order
//! (unicode-bidi), line breaking and shrink-to-fit into a box.
//!
//! The steps follow UAX #9: embedding levels for the whole paragraph, shaping of
//! runs in logical order, line breaking on logical text, then visual reordering of
//! each line. Widths scale linearly with the font size, so text is shaped once and
//! fitted by arithmetic.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use rustybuzz::{Direction, UnicodeBuffer};
use testamur_common::catalog::needs_no_glyph;
use unicode_bidi::{BidiInfo, Level};

use super::faces::Region;
use super::fonts::{FontBook, FontIdx, FontStack};

/// One shaped glyph; lengths in em.
#[derive(Debug, Clone, Copy)]
pub struct Glyph {
    pub gid: u16,
    /// Byte offset in the paragraph of the cluster this glyph belongs to.
    pub cluster: usize,
    pub advance: f32,
    pub x_offset: f32,
    pub y_offset: f32,
}

/// A run of text in one font and one direction, in logical order; its glyphs are
/// in visual order (as the shaper returns them).
#[derive(Debug, Clone)]
pub struct ShapedRun {
    pub font: FontIdx,
    pub range: Range<usize>,
    pub rtl: bool,
    pub glyphs: Vec<Glyph>,
}

#[derive(Debug)]
pub struct Unsupported(pub Vec<char>);

/// A paragraph, shaped.
pub struct Shaped {
    pub text: String,
    pub runs: Vec<ShapedRun>,
    /// Sum of the glyph advances of each cluster, indexed by the cluster's byte offset.
    advance_at: Vec<f32>,
}

/// Shapes `text` with the fonts of `stack`, choosing for each character the first
/// font that has it, then a face of the font directories (see
/// [`FontBook::fallback_for`]); regional CJK faces are switched to `region`'s.
/// Spaces, marks and joiners stay in the font of the run around them when it has
/// them, so words are not split between fonts.
pub fn shape(
    text: &str,
    stack: &FontStack,
    book: &FontBook,
    region: Region,
) -> Result<Shaped, Unsupported> {
    let bidi = BidiInfo::new(text, None);
    let levels = &bidi.levels;
    // Font for each char, by fallback.
    let mut missing = Vec::new();
    let mut chars: Vec<(usize, char, FontIdx)> = Vec::with_capacity(text.len());
    let mut current: Option<FontIdx> = None;
    for (i, c) in text.char_indices() {
        let sticky = c.is_whitespace()
            || needs_no_glyph(c)
            || is_mark(c)
            || matches!(c, '.' | ',' | '-' | '\'' | '(' | ')');
        let font = match current {
            Some(f) if sticky && (book.covers(f, c) || needs_no_glyph(c)) => Some(f),
            _ => stack
                .fonts
                .iter()
                .copied()
                .find(|&f| book.covers(f, c))
                .or_else(|| book.fallback_for(c, &stack.style, current))
                .map(|f| book.regional(f, region, c)),
        };
        let font = match (font, current) {
            (Some(f), _) => f,
            (None, Some(f)) if needs_no_glyph(c) => f,
            (None, _) if needs_no_glyph(c) => stack.fonts.first().copied().unwrap_or(0),
            (None, _) => {
                missing.push(c);
                continue;
            }
        };
        current = Some(font);
        chars.push((i, c, font));
    }
    if !missing.is_empty() {
        missing.sort_unstable();
        missing.dedup();
        return Err(Unsupported(missing));
    }
    // Runs of equal font and level.
    let mut runs = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let (s_byte, _, font) = chars[start];
        let level = levels[s_byte];
        let mut end = start + 1;
        while end < chars.len() && chars[end].2 == font && levels[chars[end].0] == level {
            end += 1;
        }
        let e_byte = chars.get(end).map(|c| c.0).unwrap_or(text.len());
        runs.push(shape_run(text, s_byte..e_byte, font, level.is_rtl(), book));
        start = end;
    }
    let mut advance_at = vec![0.0; text.len() + 1];
    for run in &runs {
        for g in &run.glyphs {
            advance_at[g.cluster] += g.advance;
        }
    }
    Ok(Shaped {
        text: text.to_owned(),
        runs,
        advance_at,
    })
}

fn is_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x0591..=0x05C7 | 0x0610..=0x061A | 0x064B..=0x065F
        | 0x0670 | 0x06D6..=0x06ED | 0x0900..=0x0903 | 0x093A..=0x094F | 0x0951..=0x0957
        | 0x0962..=0x0963 | 0x0E31 | 0x0E34..=0x0E3A | 0x0E47..=0x0E4E | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

fn shape_run(
    text: &str,
    range: Range<usize>,
    font: FontIdx,
    rtl: bool,
    book: &FontBook,
) -> ShapedRun {
    let f = book.get(font);
    let mut buf = UnicodeBuffer::new();
    buf.push_str(&text[range.clone()]);
    buf.set_direction(if rtl {
        Direction::RightToLeft
    } else {
        Direction::LeftToRight
    });
    buf.guess_segment_properties();
    let plan = book.shape_plan(font, &buf);
    let out = rustybuzz::shape_with_plan(&f.face, &plan, buf);
    let upem = f.units_per_em;
    let glyphs = out
        .glyph_infos()
        .iter()
        .zip(out.glyph_positions())
        .map(|(info, pos)| Glyph {
            gid: info.glyph_id as u16,
            cluster: range.start + info.cluster as usize,
            advance: pos.x_advance as f32 / upem,
            x_offset: pos.x_offset as f32 / upem,
            y_offset: pos.y_offset as f32 / upem,
        })
        .collect();
    ShapedRun {
        font,
        range,
        rtl,
        glyphs,
    }
}

/// A run of a laid-out line, ready to draw left to right.
#[derive(Debug, Clone)]
pub struct LineRun {
    pub font: FontIdx,
    pub rtl: bool,
    /// The logical text of the run.
    pub text: Range<usize>,
    pub glyphs: Vec<Glyph>,
}

#[derive(Debug, Clone)]
pub struct Line {
    /// Runs in visual order, left to right.
    pub runs: Vec<LineRun>,
    /// Width in em.
    pub width: f32,
    /// Largest ascent and descent of the fonts used, in em.
    pub ascent: f32,
    pub descent: f32,
}

/// Text fitted into a box: the font size chosen and the lines at that size.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub size: f32,
    pub lines: Vec<Line>,
    /// Distance between baselines, in em.
    pub line_height: f32,
    /// A word was broken between two characters to fit (it was wider than a line
    /// at the smallest size, or only lines filled to the edge held the text).
    pub split_words: bool,
}

impl Fitted {
    pub fn height_pt(&self) -> f32 {
        match self.lines.first() {
            None => 0.0,
            Some(_) => {
                let (a, d) = self.extent();
                ((self.lines.len() - 1) as f32 * self.line_height + a + d) * self.size
            }
        }
    }

    /// Ascent and descent over all lines, in em.
    pub fn extent(&self) -> (f32, f32) {
        self.lines.iter().fold((0.0f32, 0.0f32), |(a, d), l| {
            (a.max(l.ascent), d.max(l.descent))
        })
    }
}

/// Where a line may break: byte offsets where a new line may start.
fn break_points(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        if let Some(p) = prev {
            let after_space = p.is_whitespace() && !c.is_whitespace();
            let cjk = (is_cjk(p) || is_cjk(c))
                && !c.is_whitespace()
                && !p.is_whitespace()
                && !is_closing(c)
                && !is_opening(p);
            if after_space || cjk {
                out.push(i);
            }
        }
        prev = Some(c);
    }
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x2E80..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3FFFF)
}
fn is_closing(c: char) -> bool {
    matches!(
        c,
        '、' | '。' | '，' | '）' | '」' | '』' | '・' | 'ー' | ')' | ',' | '.'
    )
}
fn is_opening(c: char) -> bool {
    matches!(c, '（' | '「' | '『' | '(')
}

impl Shaped {
    /// Width in em of `range`, without the spaces at its ends.
    fn width(&self, range: Range<usize>) -> f32 {
        let r = self.trim(range);
        self.advance_at[r].iter().sum()
    }

    fn trim(&self, range: Range<usize>) -> Range<usize> {
        let s = &self.text[range.clone()];
        let start = range.start + (s.len() - s.trim_start().len());
        let end = range.end - (s.len() - s.trim_end().len());
        start..end.max(start)
    }

    /// Width in em of the whole text.
    pub fn total_width(&self) -> f32 {
        self.width(0..self.text.len())
    }

    /// Largest ascent and descent of the fonts the text is drawn with, in em.
    pub fn extent(&self, book: &FontBook) -> (f32, f32) {
        self.runs.iter().fold((0.0f32, 0.0f32), |(a, d), r| {
            let f = book.get(r.font);
            (a.max(f.ascent), d.max(f.descent))
        })
    }

    /// Byte offsets where a shaped cluster (a character with its marks, or a
    /// ligature) starts, besides 0: where a word may be split as a last resort.
    fn cluster_starts(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .runs
            .iter()
            .flat_map(|r| r.glyphs.iter().map(|g| g.cluster))
            .filter(|&c| c > 0)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Breaks into at most `max_lines` lines no wider than `width_em`, greedily,
    /// where `breaks` allows. None if that is impossible at this size.
    fn break_lines(
        &self,
        width_em: f32,
        max_lines: usize,
        breaks: Breaks,
    ) -> Option<Vec<Range<usize>>> {
        let words = break_points(&self.text);
        let clusters = match breaks {
            Breaks::Words => Vec::new(),
            Breaks::SplitLongWords => self.cluster_starts(),
            Breaks::Anywhere => {
                let mut all = self.cluster_starts();
                all.extend_from_slice(&words);
                all.sort_unstable();
                all.dedup();
                all
            }
        };
        // The last of `points` after `start` up to which the line still fits.
        let last_fitting = |points: &[usize], start: usize| {
            let mut best = None;
            for &p in points.iter().filter(|&&p| p > start) {
                if self.width(start..p) <= width_em {
                    best = Some(p);
                } else {
                    break;
                }
            }
            best
        };
        let mut lines = Vec::new();
        let mut start = 0;
        let end = self.text.len();
        while start < end {
            if lines.len() == max_lines {
                return None;
            }
            if self.width(start..end) <= width_em {
                lines.push(start..end);
                break;
            }
            let p = match breaks {
                Breaks::Words => last_fitting(&words, start),
                Breaks::SplitLongWords => {
                    last_fitting(&words, start).or_else(|| last_fitting(&clusters, start))
                }
                Breaks::Anywhere => last_fitting(&clusters, start),
            }?;
            lines.push(start..p);
            start = p;
        }
        Some(lines)
    }

    /// Lays out the given logical line ranges, reordering each for display.
    fn lines(&self, book: &FontBook, ranges: &[Range<usize>]) -> Vec<Line> {
        let bidi = BidiInfo::new(&self.text, None);
        let mut out = Vec::new();
        for range in ranges {
            let range = self.trim(range.clone());
            let mut line = Line {
                runs: Vec::new(),
                width: 0.0,
                ascent: 0.0,
                descent: 0.0,
            };
            if range.is_empty() {
                continue;
            }
            let Some(para) = bidi
                .paragraphs
                .iter()
                .find(|p| p.range.start <= range.start && range.end <= p.range.end)
            else {
                continue;
            };
            let (levels, visual) = bidi.visual_runs(para, range.clone());
            for vr in visual {
                let level: Level = levels[vr.start];
                let mut parts: Vec<&ShapedRun> = self
                    .runs
                    .iter()
                    .filter(|r| r.range.start < vr.end && vr.start < r.range.end)
                    .collect();
                if level.is_rtl() {
                    parts.reverse();
                }
                for run in parts {
                    let text = run.range.start.max(vr.start)..run.range.end.min(vr.end);
                    let glyphs: Vec<Glyph> = run
                        .glyphs
                        .iter()
                        .filter(|g| text.contains(&g.cluster))
                        .copied()
                        .collect();
                    if glyphs.is_empty() {
                        continue;
                    }
                    let f = book.get(run.font);
                    line.width += glyphs.iter().map(|g| g.advance).sum::<f32>();
                    line.ascent = line.ascent.max(f.ascent);
                    line.descent = line.descent.max(f.descent);
                    line.runs.push(LineRun {
                        font: run.font,
                        rtl: run.rtl,
                        text,
                        glyphs,
                    });
                }
            }
            out.push(line);
        }
        out
    }
}

/// How a text box wants its text fitted.
#[derive(Debug, Clone, Copy)]
pub struct FitSpec {
    pub width_pt: f32,
    pub height_pt: f32,
    pub min_size: f32,
    pub max_size: f32,
    pub max_lines: usize,
    /// Baseline distance as a multiple of the font's own line height (ascent+descent).
    pub leading: f32,
}

/// Where lines may break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaks {
    /// At spaces and between CJK characters.
    Words,
    /// There, and inside a word that is wider than a whole line.
    SplitLongWords,
    /// Between any two clusters: lines filled to the edge.
    Anywhere,
}

/// Most lines text may take when the block's `max_lines` do not hold it at its
/// smallest size (the box's height decides how many it gets, up to this).
pub const MAX_OVERFLOW_LINES: usize = 8;

/// How many lines of `line_em` (em), `line_height` (em) apart, a box `height_em`
/// high holds.
pub fn lines_in(height_em: f32, line_em: f32, line_height: f32) -> usize {
    if height_em + 1e-3 < line_em {
        return 0;
    }
    (((height_em + 1e-3 - line_em) / line_height).floor() as usize + 1).min(MAX_OVERFLOW_LINES)
}

/// The largest size in `min_size..=max_size` (in steps of 0.25 pt) at which the
/// text fits the box in at most `max_lines` lines. Text that does not fit even at
/// `min_size` gets more lines, as many as the box holds at `min_size` (again at
/// the largest size that fits), then, as a last resort, words broken between
/// characters. None if nothing of that fits: the text is never set below
/// `min_size` and never leaves its box.
pub fn fit(shaped: &Shaped, book: &FontBook, spec: &FitSpec) -> Option<Fitted> {
    let (asc, desc) = shaped.extent(book);
    let line_em = (asc + desc).max(0.5);
    let line_height = line_em * spec.leading.max(1.0);
    let max_lines = spec.max_lines.max(1);
    let min_size = spec.min_size.max(1.0);
    let total = shaped.total_width();
    let attempt = |lines: usize, breaks: Breaks| -> Option<Fitted> {
        // n lines hold at most n box widths: start no larger than that allows.
        let mut size = spec.max_size.max(min_size);
        if total > 0.0 {
            let cap = ((spec.width_pt * lines as f32 / total) * 4.0).floor() / 4.0;
            size = size.min(cap);
        }
        while size >= min_size {
            let width_em = spec.width_pt / size;
            if let Some(ranges) = shaped.break_lines(width_em, lines, breaks) {
                let height = ((ranges.len() - 1) as f32 * line_height + line_em) * size;
                if height <= spec.height_pt + 1e-3 {
                    return Some(Fitted {
                        size,
                        lines: shaped.lines(book, &ranges),
                        line_height,
                        split_words: breaks != Breaks::Words,
                    });
                }
            }
            if size == min_size {
                break;
            }
            size = (size - 0.25).max(min_size);
        }
        None
    };
    let room = lines_in(spec.height_pt / min_size, line_em, line_height).max(max_lines);
    attempt(max_lines, Breaks::Words)
        .or_else(|| {
            (room > max_lines)
                .then(|| attempt(room, Breaks::Words))
                .flatten()
        })
        .or_else(|| attempt(room, Breaks::SplitLongWords))
        .or_else(|| attempt(room, Breaks::Anywhere))
}

/// Layouts of text that repeats across certificates (course titles, dates, fixed
/// text), keyed by everything a layout depends on, so each is shaped and fitted
/// once. Bounded: it starts over when full.
#[derive(Default)]
pub struct LayoutCache {
    map: Mutex<HashMap<LayoutKey, Arc<Fitted>>>,
}

#[derive(PartialEq, Eq, Hash)]
struct LayoutKey {
    /// The font stack and the CJK face it was drawn with.
    stack: (usize, Region),
    /// The bits of the spec's sizes (width, height, min, max, leading).
    sizes: [u32; 5],
    max_lines: usize,
    text: String,
}

/// Layouts kept at most (a few KB each).
const LAYOUT_CACHE: usize = 2048;

impl LayoutCache {
    /// The layout of `text` in font stack `stack` fitted to `spec`, made by `make`
    /// unless it is cached.
    pub fn get_or_make<E>(
        &self,
        stack: (usize, Region),
        spec: &FitSpec,
        text: &str,
        make: impl FnOnce() -> Result<Fitted, E>,
    ) -> Result<Arc<Fitted>, E> {
        let key = LayoutKey {
            stack,
            sizes: [
                spec.width_pt.to_bits(),
                spec.height_pt.to_bits(),
                spec.min_size.to_bits(),
                spec.max_size.to_bits(),
                spec.leading.to_bits(),
            ],
            max_lines: spec.max_lines,
            text: text.to_owned(),
        };
        if let Some(hit) = self.map.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(hit);
        }
        let fitted = Arc::new(make()?);
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= LAYOUT_CACHE {
                m.clear();
            }
            m.insert(key, fitted.clone());
        }
        Ok(fitted)
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
