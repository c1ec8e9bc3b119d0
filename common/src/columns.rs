//! How wide text counts against a template's length limits (the catalogue's
//! `max_width`): in columns, as terminals count them (Unicode's East Asian Width,
//! UAX #11): one for most characters, two for wide ones (CJK ideographs, kana,
//! hangul, fullwidth forms), none for combining marks and invisible format
//! characters. The CC and the workservers count the same way.

use unicode_width::UnicodeWidthChar;

/// The columns `text` takes.
pub fn width(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn wide_characters_count_two_and_marks_none() {
        assert_eq!(super::width("Zoë"), 3);
        // e + combining diaeresis
        assert_eq!(super::width("Zoe\u{308}"), 3);
        assert_eq!(super::width("王小明"), 6);
        assert_eq!(super::width("김민준 Kim"), 10);
        assert_eq!(super::width("\u{200D}"), 0);
    }
}
