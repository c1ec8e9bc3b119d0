//! The QR code of a certificate's verify URL, as a grid of dark modules.
//!
//! Encoding (segments, error correction, placing the data and the fixed
//! patterns) is the `qrcode` crate's. Masking and the choice of mask are done
//! here, over bit rows: the crate masks module by module and scores each of the
//! eight masks with per-module closures, about 1 M instructions a mask (60 % of a
//! whole certificate's rendering); the same ISO 18004 rules, counted the same way
//! over bit rows and columns, cost a small fraction of that. A test checks that
//! the symbols are identical to the crate's own.

use qrcode::canvas::{Canvas, Module};
use qrcode::{bits, ec, Color, EcLevel, Version};

/// A QR code: `width` x `width` modules, row-major, `true` for dark.
pub struct Qr {
    pub width: usize,
    pub dark: Vec<bool>,
}

/// Encodes `data` at error correction level M. None if it is too long for any
/// QR code (more than about 2,300 bytes).
pub fn encode(data: &[u8]) -> Option<Qr> {
    let ec_level = EcLevel::M;
    let bits = bits::encode_auto(data, ec_level).ok()?;
    let version = bits.version();
    let width = version.width() as usize;
    if width > 64 || matches!(version, Version::Micro(_)) {
        // Past version 11 (URLs of more than about 250 bytes) a row no longer fits
        // a u64: the crate's own, slower choice.
        let code = qrcode::QrCode::with_error_correction_level(data, ec_level).ok()?;
        let dark = code.to_colors().iter().map(|c| *c == Color::Dark).collect();
        return Some(Qr { width, dark });
    }
    let (codewords, ec_words) =
        ec::construct_codewords(&bits.into_bytes(), version, ec_level).ok()?;
    let mut canvas = Canvas::new(version, ec_level);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&codewords, &ec_words);
    // The unmasked symbol as bit rows, and which modules the mask applies to
    // (data and error correction; everything else is a fixed pattern).
    let mut base = vec![0u64; width];
    let mut data = vec![0u64; width];
    for y in 0..width {
        for x in 0..width {
            match canvas.get(x as i16, y as i16) {
                Module::Masked(c) => base[y] |= u64::from(c == Color::Dark) << x,
                Module::Unmasked(c) => {
                    base[y] |= u64::from(c == Color::Dark) << x;
                    data[y] |= 1 << x;
                }
                Module::Empty => data[y] |= 1 << x,
            }
        }
    }
    let mut best: Option<(u32, Lines)> = None;
    for (pattern, format) in FORMAT_M.iter().enumerate() {
        let masks = &mask_rows()[pattern];
        let mut rows: Vec<u64> = (0..width)
            .map(|y| base[y] ^ (masks[y % 12] & data[y]))
            .collect();
        draw_format(&mut rows, width, *format);
        let lines = Lines::from_rows(rows, width);
        let score = penalty(&lines);
        // The first of equal scores wins, as in the crate.
        if best.as_ref().is_none_or(|(s, _)| score < *s) {
            best = Some((score, lines));
        }
    }
    best.map(|(_, l)| Qr {
        width,
        dark: (0..width * width)
            .map(|i| l.rows[i / width] >> (i % width) & 1 == 1)
            .collect(),
    })
}

/// Format information for error correction level M and masks 0-7 (ISO 18004
/// table C.1: BCH(15,5) code, XOR 101010000010010).
const FORMAT_M: [u16; 8] = [
    0x5412, 0x5125, 0x5e7c, 0x5b4b, 0x45f9, 0x40ce, 0x4f97, 0x4aa0,
];

/// Where the 15 format bits go, most significant first, as (x, y); negative
/// coordinates count from the far edge. Once beside the top-left finder, once
/// split between the other two.
const FORMAT_MAIN: [(i16, i16); 15] = [
    (0, 8),
    (1, 8),
    (2, 8),
    (3, 8),
    (4, 8),
    (5, 8),
    (7, 8),
    (8, 8),
    (8, 7),
    (8, 5),
    (8, 4),
    (8, 3),
    (8, 2),
    (8, 1),
    (8, 0),
];
const FORMAT_SIDE: [(i16, i16); 15] = [
    (8, -1),
    (8, -2),
    (8, -3),
    (8, -4),
    (8, -5),
    (8, -6),
    (8, -7),
    (-8, 8),
    (-7, 8),
    (-6, 8),
    (-5, 8),
    (-4, 8),
    (-3, 8),
    (-2, 8),
    (-1, 8),
];

fn draw_format(rows: &mut [u64], width: usize, format: u16) {
    let w = width as i16;
    for coords in [&FORMAT_MAIN, &FORMAT_SIDE] {
        for (k, &(x, y)) in coords.iter().enumerate() {
            let (x, y) = ((x + w) % w, (y + w) % w);
            let bit = 1u64 << x;
            if format >> (14 - k) & 1 == 1 {
                rows[y as usize] |= bit;
            } else {
                rows[y as usize] &= !bit;
            }
        }
    }
    // The dark module, always dark.
    rows[(w - 8) as usize] |= 1 << 8;
}

/// For each mask, the modules it inverts in a row, by row number modulo 12 (every
/// mask repeats vertically with a period dividing 12), for 64 columns.
fn mask_rows() -> &'static [[u64; 12]; 8] {
    static ROWS: std::sync::OnceLock<[[u64; 12]; 8]> = std::sync::OnceLock::new();
    ROWS.get_or_init(|| {
        let mut rows = [[0u64; 12]; 8];
        for (pattern, p) in rows.iter_mut().enumerate() {
            for (y, row) in p.iter_mut().enumerate() {
                *row = (0..64)
                    .filter(|&x| inverts(pattern, x, y))
                    .fold(0, |m, x| m | 1 << x);
            }
        }
        rows
    })
}

/// Whether data mask `pattern` (0-7) inverts the module in column x, row y.
fn inverts(pattern: usize, x: usize, y: usize) -> bool {
    match pattern {
        0 => (x + y).is_multiple_of(2),
        1 => y.is_multiple_of(2),
        2 => x.is_multiple_of(3),
        3 => (x + y).is_multiple_of(3),
        4 => (y / 2 + x / 3).is_multiple_of(2),
        5 => (x * y) % 2 + (x * y) % 3 == 0,
        6 => ((x * y) % 2 + (x * y) % 3).is_multiple_of(2),
        _ => ((x + y) % 2 + (x * y) % 3).is_multiple_of(2),
    }
}

/// A symbol as bit rows and bit columns (bit j of a line is its j-th module).
struct Lines {
    width: usize,
    rows: Vec<u64>,
    cols: Vec<u64>,
}

impl Lines {
    fn from_rows(rows: Vec<u64>, width: usize) -> Self {
        let mut cols = vec![0u64; width];
        for (y, row) in rows.iter().enumerate() {
            let mut r = *row;
            while r != 0 {
                let x = r.trailing_zeros() as usize;
                r &= r - 1;
                cols[x] |= 1 << y;
            }
        }
        Self { width, rows, cols }
    }
}

/// The low `n` bits set.
fn low(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// The penalty score of a masked symbol (ISO 18004 §7.8.3, rules N1-N4, counted
/// as the `qrcode` crate counts them), lower is better.
fn penalty(l: &Lines) -> u32 {
    let w = l.width;
    let all = low(w);
    let mut score = 0u32;
    for line in l.rows.iter().chain(&l.cols) {
        let line = *line;
        // N1: runs of five or more modules of one colour: 3 + (len - 5) each.
        // Bit j of `changes` is set where module j+1 differs from module j.
        let mut changes = (line ^ (line >> 1)) & low(w - 1);
        let mut start = 0;
        loop {
            let end = if changes == 0 {
                w
            } else {
                changes.trailing_zeros() as usize + 1
            };
            let run = (end - start) as u32;
            if run >= 5 {
                score += run - 2;
            }
            if changes == 0 {
                break;
            }
            changes &= changes - 1;
            start = end;
        }
        // N3: dark-light-dark x3-light-dark, with four light modules (or the edge)
        // before or after it: 40 each.
        let mut candidates = all >> 6;
        for (k, d) in [true, false, true, true, true, false, true]
            .into_iter()
            .enumerate()
        {
            let bits = if d { line } else { !line };
            candidates &= bits >> k;
        }
        while candidates != 0 {
            let j = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let before = j.saturating_sub(4);
            let dark_before = (line >> before) & low(j - before) != 0;
            let dark_after = (line >> (j + 7)) & low(4) & (all >> (j + 7)) != 0;
            if !dark_before || !dark_after {
                score += 40;
            }
        }
    }
    // The three finder patterns match N3 three times each way, and the crate
    // takes them off.
    score = score.saturating_sub(720);
    // N2: 2x2 blocks of one colour (overlapping): 3 each.
    for pair in l.rows.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let same_below = !(a ^ b);
        let same_right = !(a ^ (a >> 1));
        score += 3 * (same_below & (same_below >> 1) & same_right & low(w - 1)).count_ones();
    }
    // N4: how far the share of dark modules is from half.
    let n_dark: u32 = l.rows.iter().map(|r| r.count_ones()).sum();
    let ratio = n_dark * 200 / (w * w) as u32;
    score + ratio.abs_diff(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_symbol_as_the_qrcode_crate() {
        let urls = [
            "https://certs.example.org/cert/3f1c9a2e-5b7d-4e8f-9a0b-1c2d3e4f5a6b/".to_owned(),
            "https://x.org/".to_owned(),
            format!("https://verify.example.edu/{}/", "a".repeat(300)),
            "HELLO WORLD 12345".to_owned(),
        ];
        // Enough symbols that every rule decides some mask choice.
        let more = (0..400u64).map(|i| {
            format!(
                "https://certs{}.example.org/cert/{:08x}-1234-4abc-8def-{:012x}/",
                i % 7,
                i.wrapping_mul(2654435761) % (1 << 32),
                i * 104729
            )
        });
        for url in urls.into_iter().chain(more) {
            let ours = encode(url.as_bytes()).expect("encodes");
            let theirs =
                qrcode::QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M).unwrap();
            assert_eq!(ours.width, theirs.width(), "{url}");
            let theirs: Vec<bool> = theirs
                .to_colors()
                .iter()
                .map(|c| *c == qrcode::Color::Dark)
                .collect();
            assert!(
                ours.dark == theirs,
                "{url}: a different mask than the crate's"
            );
        }
    }

    #[test]
    fn too_long_is_none() {
        assert!(encode(&vec![b'x'; 5000]).is_none());
    }
}
