//! RDF for the Data Integrity proof: a credential's statements as quads, written
//! as canonical N-Quads after RDF Dataset Canonicalization (RDFC-1.0, W3C
//! Recommendation 2024), which `eddsa-rdfc-2022` hashes and signs.
//!
//! testamur issues credentials of one fixed shape, so their statements are made
//! here directly (credential.rs says which JSON-LD term gives which IRI, and a
//! test checks that against the pinned contexts) rather than by a general JSON-LD
//! processor. Canonicalization is RDFC-1.0 for graphs whose blank nodes all have
//! distinct first-degree hashes, which every blank node of that shape has (each
//! has its own type or predicate); a graph that needs the N-degree step is
//! refused rather than labelled wrongly. Literals and IRIs are escaped as the
//! canonical N-Quads form asks (what rdf-canonize, the reference implementation,
//! writes).

use sha2::{Digest, Sha256};

pub const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
pub const XSD_DATETIME: &str = "http://www.w3.org/2001/XMLSchema#dateTime";
const XSD_STRING: &str = "http://www.w3.org/2001/XMLSchema#string";

/// A node or value in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Iri(String),
    /// A blank node, numbered by whoever builds the graph.
    Blank(usize),
    /// A literal with its datatype IRI (`None`: xsd:string).
    Literal(String, Option<&'static str>),
}

impl Term {
    pub fn iri(s: impl Into<String>) -> Self {
        Term::Iri(s.into())
    }
    pub fn str(s: impl Into<String>) -> Self {
        Term::Literal(s.into(), None)
    }
    pub fn typed(s: impl Into<String>, datatype: &'static str) -> Self {
        Term::Literal(s.into(), Some(datatype))
    }
}

/// One statement of the default graph.
#[derive(Debug, Clone)]
pub struct Quad {
    pub s: Term,
    pub p: &'static str,
    pub o: Term,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonError {
    #[error(
        "blank nodes with the same first-degree hash: this graph needs RDFC-1.0's \
         N-degree step, which testamur's fixed credential shape never does"
    )]
    NeedsNDegree,
}

/// The canonical N-Quads of `quads` (RDFC-1.0): blank nodes relabelled
/// `_:c14n0`, `_:c14n1`, ... in the order of their first-degree hashes, lines
/// sorted, each ending in a newline.
pub fn canonical_nquads(quads: &[Quad]) -> Result<String, CanonError> {
    let mut blanks: Vec<usize> = Vec::new();
    for q in quads {
        for t in [&q.s, &q.o] {
            if let Term::Blank(b) = t {
                if !blanks.contains(b) {
                    blanks.push(*b);
                }
            }
        }
    }
    // 4.6 Hash First Degree Quads: every quad naming the blank node, the node
    // itself written `_:a` and any other `_:z`, sorted, hashed (SHA-256, hex).
    let mut hashed: Vec<(String, usize)> = blanks
        .iter()
        .map(|&b| {
            let label = |n: usize| {
                if n == b {
                    "a".to_owned()
                } else {
                    "z".to_owned()
                }
            };
            let mut lines: Vec<String> = quads
                .iter()
                .filter(|q| q.s == Term::Blank(b) || q.o == Term::Blank(b))
                .map(|q| line(q, &label))
                .collect();
            lines.sort();
            (hex::encode(Sha256::digest(lines.concat().as_bytes())), b)
        })
        .collect();
    hashed.sort();
    if hashed.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(CanonError::NeedsNDegree);
    }
    // 4.4.3 step 5: unique hashes issue canonical identifiers in hash order.
    let canonical = |n: usize| {
        let k = hashed
            .iter()
            .position(|(_, b)| *b == n)
            .unwrap_or(usize::MAX);
        format!("c14n{k}")
    };
    let mut lines: Vec<String> = quads.iter().map(|q| line(q, &canonical)).collect();
    lines.sort();
    lines.dedup();
    Ok(lines.concat())
}

/// One N-Quads line (default graph), blank nodes named by `label`.
fn line(q: &Quad, label: &dyn Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(128);
    term(&mut out, &q.s, label);
    out.push_str(" <");
    escape_iri(&mut out, q.p);
    out.push_str("> ");
    term(&mut out, &q.o, label);
    out.push_str(" .\n");
    out
}

fn term(out: &mut String, t: &Term, label: &dyn Fn(usize) -> String) {
    match t {
        Term::Iri(i) => {
            out.push('<');
            escape_iri(out, i);
            out.push('>');
        }
        Term::Blank(b) => {
            out.push_str("_:");
            out.push_str(&label(*b));
        }
        Term::Literal(v, dt) => {
            out.push('"');
            escape_literal(out, v);
            out.push('"');
            if let Some(dt) = dt.filter(|d| *d != XSD_STRING) {
                out.push_str("^^<");
                escape_iri(out, dt);
                out.push('>');
            }
        }
    }
}

/// Canonical N-Quads string escaping: `\b \t \n \f \r \" \\` as ECHAR, the other
/// characters below U+0020 and U+007F as `\uXXXX`, everything else as itself.
fn escape_literal(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
}

/// The bytes [`escape_iri`] escapes: controls, space and `<>"{}|^`\` (a table,
/// not a search of that string for every byte).
const IRI_ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b <= 0x20 {
        t[b] = true;
        b += 1;
    }
    let special = b"<>\"{}|^`\\";
    let mut i = 0;
    while i < special.len() {
        t[special[i] as usize] = true;
        i += 1;
    }
    t
};

/// IRI characters N-Quads cannot hold as themselves, as `\uXXXX`. All of them
/// are ASCII, so the IRI is copied byte-wise in runs between them (a credential
/// writes about a hundred IRIs, nearly all with nothing to escape).
fn escape_iri(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.bytes().position(|b| IRI_ESCAPED[usize::from(b)]) {
        out.push_str(&rest[..i]);
        out.push_str(&format!("\\u{:04X}", rest.as_bytes()[i]));
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    const XSD_BOOLEAN: &str = "http://www.w3.org/2001/XMLSchema#boolean";

    fn q(s: Term, p: &'static str, o: Term) -> Quad {
        Quad { s, p, o }
    }

    #[test]
    fn blank_nodes_are_labelled_by_their_first_degree_hash() {
        // Two blank nodes told apart by their types; whichever number the builder
        // gave them, the canonical labels and lines are the same.
        let graph = |a: usize, b: usize| {
            vec![
                q(Term::iri("urn:x"), "urn:p", Term::Blank(a)),
                q(Term::Blank(a), RDF_TYPE, Term::iri("urn:A")),
                q(Term::Blank(a), "urn:q", Term::Blank(b)),
                q(Term::Blank(b), RDF_TYPE, Term::iri("urn:B")),
            ]
        };
        let one = canonical_nquads(&graph(0, 1)).unwrap();
        let other = canonical_nquads(&graph(7, 3)).unwrap();
        assert_eq!(one, other);
        assert!(one.contains("_:c14n0") && one.contains("_:c14n1"), "{one}");
        assert!(one.lines().collect::<Vec<_>>().is_sorted());
    }

    #[test]
    fn a_lone_blank_node_is_c14n0() {
        // The RDFC-1.0 test suite's simplest case (test002-like): one blank node.
        let out = canonical_nquads(&[q(
            Term::Blank(5),
            "http://example.org/vocab#p",
            Term::str("x"),
        )])
        .unwrap();
        assert_eq!(out, "_:c14n0 <http://example.org/vocab#p> \"x\" .\n");
    }

    #[test]
    fn indistinguishable_blank_nodes_are_refused() {
        let g = [
            q(Term::Blank(0), "urn:p", Term::str("x")),
            q(Term::Blank(1), "urn:p", Term::str("x")),
        ];
        assert_eq!(canonical_nquads(&g), Err(CanonError::NeedsNDegree));
    }

    #[test]
    fn literals_and_iris_are_escaped_as_canonical_nquads() {
        let out = canonical_nquads(&[q(
            Term::iri("urn:a b"),
            "urn:p",
            Term::typed("q\"\\\n\t\u{1}é", XSD_BOOLEAN),
        )])
        .unwrap();
        assert_eq!(
            out,
            "<urn:a\\u0020b> <urn:p> \"q\\\"\\\\\\n\\t\\u0001é\"^^<http://www.w3.org/2001/XMLSchema#boolean> .\n"
        );
        let plain =
            canonical_nquads(&[q(Term::iri("urn:a"), "urn:p", Term::typed("x", XSD_STRING))])
                .unwrap();
        assert_eq!(plain, "<urn:a> <urn:p> \"x\" .\n");
    }

    #[test]
    fn iris_escape_every_forbidden_character_and_keep_the_rest_whole() {
        let mut out = String::new();
        escape_iri(&mut out, "é<a>\"{|}^`\\ \u{7}ü😀x");
        assert_eq!(
            out,
            "é\\u003Ca\\u003E\\u0022\\u007B\\u007C\\u007D\\u005E\\u0060\\u005C\\u0020\\u0007ü😀x"
        );
        let mut out = String::new();
        escape_iri(&mut out, "https://example.org/ß");
        assert_eq!(out, "https://example.org/ß");
    }
}
