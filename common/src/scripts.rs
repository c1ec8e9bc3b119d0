//! Naming what cannot be drawn: the Unicode script of a character (for the 422 a
//! submission gets when no font of its template has a character) and the Debian
//! font package known to cover a script (for operators: the log and `testamur
//! preview`), so that the fix is one `apt-get install` when there is one.

use unicode_script::{Script, UnicodeScript};

/// The script's name as Unicode writes it, with spaces ("Old Italic").
pub fn script_name(c: char) -> String {
    c.script().full_name().replace('_', " ")
}

/// Scripts (with spaces, Unicode's names) that Debian 12's fonts-noto-core has a
/// font for, from its font file names.
const NOTO_CORE: &str = "Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese \
    Bamum Bassa_Vah Batak Bengali Bhaiksuki Brahmi Buginese Buhid Canadian_Aboriginal Carian \
    Caucasian_Albanian Chakma Cham Cherokee Coptic Cuneiform Cypriot Cyrillic Deseret Devanagari \
    Dogra Duployan Egyptian_Hieroglyphs Elbasan Elymaic Ethiopic Georgian Glagolitic Gothic \
    Grantha Greek Gujarati Gunjala_Gondi Gurmukhi Hanifi_Rohingya Hanunoo Hatran Hebrew \
    Imperial_Aramaic Inscriptional_Pahlavi Inscriptional_Parthian Javanese Kaithi Kannada \
    Kayah_Li Kharoshthi Khmer Khojki Khudawadi Lao Latin Lepcha Limbu Linear_A Linear_B Lisu \
    Lycian Lydian Mahajani Malayalam Mandaic Manichaean Marchen Masaram_Gondi Medefaidrin \
    Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi Mongolian Mro \
    Multani Myanmar Nabataean New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong Ogham Ol_Chiki \
    Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian \
    Old_South_Arabian Old_Turkic Oriya Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau \
    Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic Samaritan Saurashtra Sharada Shavian \
    Siddham SignWriting Sinhala Sogdian Sora_Sompeng Soyombo Sundanese Syloti_Nagri Syriac \
    Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tamil Tangut Telugu Thaana Thai Tibetan \
    Tifinagh Tirhuta Ugaritic Vai Wancho Warang_Citi Yezidi Yi Zanabazar_Square";

/// The Debian package with a font for `c`'s script, when one is known.
pub fn debian_package(c: char) -> Option<&'static str> {
    let s = c.script();
    if matches!(
        s,
        Script::Han | Script::Hiragana | Script::Katakana | Script::Hangul | Script::Bopomofo
    ) {
        return Some("fonts-noto-cjk");
    }
    let name = s.full_name();
    NOTO_CORE
        .split_whitespace()
        .any(|n| n == name)
        .then_some("fonts-noto-core")
}

/// "𐀀 (U+10000, Linear B), ..." for each distinct character, in order.
pub fn describe(chars: &[char]) -> String {
    chars
        .iter()
        .map(|&c| format!("{c} (U+{:04X}, {})", c as u32, script_name(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The distinct script names of `chars`, in order of first appearance.
pub fn scripts(chars: &[char]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for &c in chars {
        let n = script_name(c);
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// For operators: which package to install for `chars`, or that none is known.
pub fn install_hint(chars: &[char]) -> String {
    let mut pkgs: Vec<&str> = chars.iter().filter_map(|&c| debian_package(c)).collect();
    pkgs.sort_unstable();
    pkgs.dedup();
    match pkgs.is_empty() {
        true => "no Debian font package is known for them: put a font file that has them \
                 into one of the font directories (font_dirs in index.toml)"
            .into(),
        false => format!(
            "install {} (apt-get install {}) and restart the workserver",
            pkgs.join(", "),
            pkgs.join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_scripts_and_packages() {
        assert_eq!(script_name('\u{10000}'), "Linear B");
        assert_eq!(script_name('న'), "Telugu");
        assert_eq!(debian_package('న'), Some("fonts-noto-core"));
        assert_eq!(debian_package('の'), Some("fonts-noto-cjk"));
        assert_eq!(debian_package('\u{12F90}'), None);
        assert_eq!(
            describe(&['\u{12F90}']),
            "\u{12F90} (U+12F90, Cypro Minoan)"
        );
        assert_eq!(scripts(&['a', 'న', 'b']), ["Latin", "Telugu"]);
        assert!(install_hint(&['న']).contains("apt-get install fonts-noto-core"));
        assert!(install_hint(&['\u{12F90}']).contains("font_dirs"));
    }
}
