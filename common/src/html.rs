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
