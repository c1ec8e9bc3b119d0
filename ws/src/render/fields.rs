//! The words on a certificate: the values template text can refer to (`{name}`,
//! `{date}`, `{grade_sentence}`, ...), dates written out with ordinals, and the
//! grade sentence.

use std::collections::BTreeMap;

/// `2026-11-23` -> `November 23rd, 2026`. None for anything but a valid ISO date.
pub fn long_date(iso: &str) -> Option<String> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(iso, &fmt).ok()?;
    Some(format!(
        "{} {}{}, {}",
        d.month(),
        d.day(),
        ordinal_suffix(d.day()),
        d.year()
    ))
}

/// 1st 2nd 3rd 4th ... 11th 12th 13th ... 21st 22nd 23rd ... 31st.
pub fn ordinal_suffix(n: u8) -> &'static str {
    match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

/// How a template words the grade.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeRules {
    /// Grades that are a plain pass: no sentence.
    #[serde(default = "default_pass")]
    pub pass: Vec<String>,
    /// Sentence per grade, e.g. `Distinction = "with distinction"`.
    #[serde(default)]
    pub sentences: BTreeMap<String, String>,
    /// For any other grade; `{grade}` is replaced by the grade.
    #[serde(default = "default_fallback")]
    pub fallback: String,
}

impl Default for GradeRules {
    fn default() -> Self {
        Self {
            pass: default_pass(),
            sentences: BTreeMap::new(),
            fallback: default_fallback(),
        }
    }
}

fn default_pass() -> Vec<String> {
    vec!["Pass".into()]
}
fn default_fallback() -> String {
    "with {grade}".into()
}

impl GradeRules {
    /// The sentence for `grade`. Grades match without regard to case (`a` finds
    /// the sentence of `A`); an exact match wins over one that differs in case.
    pub fn sentence(&self, grade: &str) -> String {
        let grade = grade.trim();
        let folded = grade.to_lowercase();
        let sentence = self.sentences.get(grade).or_else(|| {
            self.sentences
                .iter()
                .find(|(k, _)| k.to_lowercase() == folded)
                .map(|(_, v)| v)
        });
        if let Some(s) = sentence {
            return s.clone();
        }
        if grade.is_empty() || self.pass.iter().any(|p| p.to_lowercase() == folded) {
            return String::new();
        }
        self.fallback.replace("{grade}", grade)
    }
}

/// A piece of template text: literal text and `{field}` / `{field|fallback}` slots.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Lit(String),
    Field {
        name: String,
        fallback: Option<String>,
    },
}

pub const KNOWN_FIELDS: &[&str] = &[
    "name",
    "course_name",
    "course_id",
    "org",
    "grade",
    "designation",
    "date",
    "cert_id",
    "noun",
    "grade_sentence",
    "verify_url",
    "disclaimer",
];

/// Fields whose value differs on nearly every certificate; the others repeat for
/// every learner of a course (and their layout and font subsets can be reused).
pub const PER_CERTIFICATE_FIELDS: &[&str] = &["name", "cert_id", "verify_url"];

/// Whether text made of `pieces` prints the learner's name.
pub fn prints_name(pieces: &[Piece]) -> bool {
    pieces
        .iter()
        .any(|p| matches!(p, Piece::Field { name, .. } if name == "name"))
}

/// Whether text made of `pieces` changes from one certificate to the next.
pub fn varies_per_certificate(pieces: &[Piece]) -> bool {
    pieces.iter().any(|p| match p {
        Piece::Field { name, .. } => PER_CERTIFICATE_FIELDS.contains(&name.as_str()),
        Piece::Lit(_) => false,
    })
}

/// Parses template text; `{{` and `}}` are literal braces.
pub fn parse_pieces(text: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        lit.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            lit.push(c as char);
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err("a `}` without its `{` (write `}}` for a brace)".into());
        }
        let end = after
            .find('}')
            .ok_or("a `{` without its `}` (write `{{` for a brace)")?;
        let slot = &after[..end];
        let (name, fallback) = match slot.split_once('|') {
            Some((n, f)) => (n.trim(), Some(f.to_owned())),
            None => (slot.trim(), None),
        };
        if !KNOWN_FIELDS.contains(&name) {
            return Err(format!(
                "unknown field `{{{name}}}`; fields are: {}",
                KNOWN_FIELDS.join(", ")
            ));
        }
        if !lit.is_empty() {
            out.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        out.push(Piece::Field {
            name: name.to_owned(),
            fallback,
        });
        rest = &after[end + 1..];
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// Fills `pieces` from `values`. None when a field without fallback is empty: the
/// text block is then left out (e.g. "offered by {org}" without an org).
pub fn fill(pieces: &[Piece], values: &dyn Fn(&str) -> String) -> Option<String> {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Field { name, fallback } => {
                let v = values(name);
                match (v.trim().is_empty(), fallback) {
                    (false, _) => out.push_str(&v),
                    (true, Some(f)) => out.push_str(f),
                    (true, None) => return None,
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals() {
        let cases = [
            (1, "st"),
            (2, "nd"),
            (3, "rd"),
            (4, "th"),
            (10, "th"),
            (11, "th"),
            (12, "th"),
            (13, "th"),
            (14, "th"),
            (20, "th"),
            (21, "st"),
            (22, "nd"),
            (23, "rd"),
            (24, "th"),
            (30, "th"),
            (31, "st"),
        ];
        for (n, s) in cases {
            assert_eq!(ordinal_suffix(n), s, "{n}");
        }
        assert_eq!(long_date("2026-11-23").unwrap(), "November 23rd, 2026");
        assert_eq!(long_date("2026-01-01").unwrap(), "January 1st, 2026");
        assert_eq!(long_date("2026-03-12").unwrap(), "March 12th, 2026");
        assert_eq!(long_date("2026-05-31").unwrap(), "May 31st, 2026");
        assert_eq!(long_date("2026-02-22").unwrap(), "February 22nd, 2026");
        assert!(long_date("2026-02-30").is_none());
    }

    #[test]
    fn grade_sentence_with_fallback() {
        let mut g = GradeRules::default();
        g.sentences
            .insert("Distinction".into(), "with distinction".into());
        assert_eq!(g.sentence("Distinction"), "with distinction");
        assert_eq!(g.sentence("Pass"), "");
        assert_eq!(g.sentence(""), "");
        assert_eq!(g.sentence("B+"), "with B+");
        g.fallback = "with a grade of {grade}".into();
        assert_eq!(g.sentence("92%"), "with a grade of 92%");
        // Issue 13 item 8: grades match whatever their case.
        g.sentences.insert("A".into(), "with honours".into());
        assert_eq!(g.sentence("a"), "with honours");
        assert_eq!(g.sentence("DISTINCTION"), "with distinction");
        assert_eq!(g.sentence("pAsS"), "");
        g.sentences.insert("a".into(), "exactly a".into());
        assert_eq!(g.sentence("a"), "exactly a", "an exact match wins");
        assert_eq!(g.sentence("A"), "with honours");
    }

    #[test]
    fn pieces_and_filling() {
        let p = parse_pieces("{noun} of {designation|Achievement} {{x}}").unwrap();
        let v = |f: &str| {
            if f == "noun" {
                "Certificate".to_owned()
            } else {
                String::new()
            }
        };
        assert_eq!(fill(&p, &v).unwrap(), "Certificate of Achievement {x}");
        let p = parse_pieces("offered by {org}").unwrap();
        assert_eq!(fill(&p, &v), None);
        assert!(parse_pieces("{nmae}").unwrap_err().contains("nmae"));
        assert!(parse_pieces("{name").is_err());
    }
}
