//! HTML escaping for the pages testamur writes (the public verification page, the
//! operators' dashboard): every value from outside goes through [`escape`].

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Appends a `<tr><th>key</th><td>value</td></tr>` line, both escaped, indented by
/// `indent`; `dir="auto"` on the cell for values in any script (names, titles),
/// so a right-to-left one reads right (the verification pages' tables).
pub fn table_row(out: &mut String, indent: &str, key: &str, value: &str, dir_auto: bool) {
    let dir = if dir_auto { " dir=\"auto\"" } else { "" };
    out.push_str(&format!(
        "{indent}<tr><th>{}</th><td{dir}>{}</td></tr>\n",
        escape(key),
        escape(value)
    ));
}

/// The start of a verification page, through `<body>`: the document head with
/// `title` (escaped here) and the pages' shared style, then `extra_css` (lines of
/// rules, each indented four spaces and ending in a newline).
pub fn page_head(title: &str, extra_css: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="robots" content="noindex">
  <title>{}</title>
  <style>
    body {{ font-family: "Noto Sans", "DejaVu Sans", sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222a3d; line-height: 1.5; }}
    h1 {{ font-size: 1.5rem; }}
    table {{ border-collapse: collapse; width: 100%; }}
    th {{ text-align: left; padding: .3rem 1rem .3rem 0; white-space: nowrap; vertical-align: top; color: #556; font-weight: normal; }}
    td {{ padding: .3rem 0; overflow-wrap: anywhere; }}
{extra_css}  </style>
</head>
<body>
"#,
        escape(title)
    )
}
