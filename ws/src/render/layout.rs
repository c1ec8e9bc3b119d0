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
    /// The text only fitted below the template's smallest size.
    pub below_min: bool,
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

    /// Breaks into at most `max_lines` lines no wider than `width_em`, greedily.
    /// None if that is impossible at this size.
    fn break_lines(&self, width_em: f32, max_lines: usize) -> Option<Vec<Range<usize>>> {
        let points = break_points(&self.text);
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
            // The last break point after `start` that still fits.
            let mut best = None;
            for &p in points.iter().filter(|&&p| p > start) {
                if self.width(start..p) <= width_em {
                    best = Some(p);
                } else {
                    break;
                }
            }
            let p = best?;
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

/// The largest size in `min_size..=max_size` (in steps of 0.25 pt) at which the text
/// fits the box in at most `max_lines` lines. If it does not fit even at `min_size`,
/// it keeps shrinking (and says so in `below_min`): text never leaves its box.
pub fn fit(shaped: &Shaped, book: &FontBook, spec: &FitSpec) -> Fitted {
    let (asc, desc) = shaped.runs.iter().fold((0.0f32, 0.0f32), |(a, d), r| {
        let f = book.get(r.font);
        (a.max(f.ascent), d.max(f.descent))
    });
    let line_em = (asc + desc).max(0.5);
    let line_height = line_em * spec.leading.max(1.0);
    let max_lines = spec.max_lines.max(1);
    // n lines hold at most n box widths: start no larger than that allows.
    let total = shaped.width(0..shaped.text.len());
    let mut size = spec.max_size.max(1.0);
    if total > 0.0 {
        let cap = ((spec.width_pt * max_lines as f32 / total) * 4.0).floor() / 4.0;
        size = size.min(cap).max(1.0);
    }
    loop {
        let width_em = spec.width_pt / size;
        for n in 1..=max_lines {
            if let Some(ranges) = shaped.break_lines(width_em, n) {
                let height = ((ranges.len() - 1) as f32 * line_height + line_em) * size;
                if height <= spec.height_pt + 1e-3 {
                    return Fitted {
                        size,
                        lines: shaped.lines(book, &ranges),
                        line_height,
                        below_min: size < spec.min_size,
                    };
                }
            }
        }
        if size <= 1.0 {
            // Absurdly long text for its box; field length limits make this
            // unreachable for real templates.
            return Fitted {
                size,
                lines: shaped.lines(book, &[0..shaped.text.len()]),
                line_height,
                below_min: true,
            };
        }
        size = (size - 0.25).max(1.0);
    }
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
