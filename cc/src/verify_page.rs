//! The live verification page: `GET /verify/{verify_uuid}` answered in HTML to a
//! browser (one whose `Accept` prefers `text/html` to JSON), with the version's
//! status as Redis has it now, so a learner or employer who opens the link sees a
//! later regeneration or revocation, whatever the storage serves. Every value is
//! escaped (names are text, never markup); links are only http(s) (or a local
//! cluster's file) URLs.

use std::fmt::Write;

use testamur_common::html::{escape, page_head, table_row};
use testamur_common::wire::{Verification, VerificationStatus};

/// Whether an `Accept` header asks for HTML rather than JSON: `text/html` with a
/// higher quality than `application/json` (or `application/*`, `*/*`). No
/// header, `*/*` and `application/json` get JSON (API clients, curl).
pub fn wants_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut html, mut json) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "application/json" | "application/*" | "*/*" => json = json.max(q),
            _ => {}
        }
    }
    html > json
}

/// Only web (and, for a local cluster's directory storage, file) URLs become
/// links: never `javascript:` or anything else a page could run.
fn link(url: Option<&str>) -> Option<&str> {
    url.filter(|u| {
        ["https://", "http://", "file://"]
            .iter()
            .any(|p| u.starts_with(p))
    })
}

/// LinkedIn's documented "Add to profile" link for a certification (the
/// `startTask=CERTIFICATION_NAME` form of addtoprofile.linkedin.com): the course
/// as the certification's name, the issuer, the issue month, the verify uuid as
/// its id and `page_url` as its URL.
pub fn linkedin_url(v: &Verification, page_url: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("startTask", "CERTIFICATION_NAME");
    q.append_pair("name", v.course_name.as_deref().unwrap_or(&v.course_id));
    if let Some(org) = v.org.as_deref() {
        q.append_pair("organizationName", org);
    }
    let mut date = v.issued_date.split('-');
    if let (Some(y), Some(m)) = (date.next(), date.next()) {
        q.append_pair("issueYear", y);
        q.append_pair("issueMonth", m.trim_start_matches('0'));
    }
    q.append_pair("certUrl", page_url);
    q.append_pair("certId", v.verify_uuid.as_str());
    format!("https://www.linkedin.com/profile/add?{}", q.finish())
}

/// The page of a version that exists; `page_url` is its own public URL.
pub fn page(v: &Verification, page_url: &str) -> String {
    let e = escape;
    let name = v.name.as_deref().unwrap_or("");
    let (class, headline, explain) = match v.status {
        VerificationStatus::Valid => (
            "valid",
            "Valid".to_owned(),
            "This certificate was issued as shown and still stands.".to_owned(),
        ),
        VerificationStatus::Superseded => (
            "superseded",
            format!(
                "Superseded on {}",
                v.superseded_at.as_deref().unwrap_or(&v.updated_at)
            ),
            "This version was replaced by a regenerated one: it is genuine, but no longer the current certificate.".to_owned(),
        ),
        VerificationStatus::Revoked => (
            "revoked",
            format!(
                "Revoked on {}",
                v.revoked_at.as_deref().unwrap_or(&v.updated_at)
            ),
            "The issuer withdrew this certificate: do not accept it.".to_owned(),
        ),
    };
    let mut rows = String::new();
    let mut row =
        |k: &str, val: &str, dir_auto: bool| table_row(&mut rows, "    ", k, val, dir_auto);
    row("Learner", name, true);
    row(
        "Course",
        v.course_name.as_deref().unwrap_or(&v.course_id),
        true,
    );
    if let Some(org) = v.org.as_deref() {
        row("Issued by", org, true);
    }
    row("Date", &v.issued_date, false);
    row("Published", &v.published_at, false);
    if let Some(fp) = v.key_fingerprint.as_deref() {
        row("Signing key", fp, false);
    }
    let mut links = String::new();
    if let Some(u) = link(v.download_url.as_deref()) {
        let _ = writeln!(
            links,
            "    <li><a href=\"{}\">The certificate (PDF)</a></li>",
            e(u)
        );
    }
    if let Some(u) = link(v.signature_url.as_deref()) {
        let _ = writeln!(
            links,
            "    <li><a href=\"{}\">Its detached OpenPGP signature</a></li>",
            e(u)
        );
    }
    if let Some(u) = link(v.credential_url.as_deref()) {
        let _ = writeln!(
            links,
            "    <li><a href=\"{}\">Its Open Badges 3.0 credential (JSON, signed)</a></li>",
            e(u)
        );
    }
    if let Some(u) = link(v.current_verify_url.as_deref()) {
        let _ = writeln!(
            links,
            "    <li><a href=\"{}\">The current version</a></li>",
            e(u)
        );
    }
    if v.status == VerificationStatus::Valid {
        let _ = writeln!(
            links,
            "    <li><a href=\"{}\" rel=\"noopener\">Add to LinkedIn profile</a></li>",
            e(&linkedin_url(v, page_url))
        );
    }
    let links = match links.is_empty() {
        true => String::new(),
        false => format!("  <ul>\n{links}  </ul>\n"),
    };
    shell(
        &format!("Certificate for {}: {}", name, headline),
        &format!(
            "  <h1>Certificate for <span dir=\"auto\">{name_e}</span></h1>\n  \
             <p class=\"status {class}\"><strong>{headline_e}</strong> {explain_e}</p>\n  \
             <table>\n{rows}  </table>\n{links}{proofs}",
            name_e = e(name),
            headline_e = e(&headline),
            explain_e = e(&explain),
            proofs = proofs(v),
        ),
    )
}

/// The proofs anyone can check without this page, and what each says now.
fn proofs(v: &Verification) -> String {
    let e = escape;
    let mut rows = String::new();
    if let (Some(fp), Some(u)) = (
        v.pdf_signer_sha256.as_deref(),
        link(v.download_url.as_deref()),
    ) {
        let _ = writeln!(
            rows,
            "    <tr><th>PDF signature</th><td><a href=\"{}\">the PDF</a> is signed by the issuer's \
             certificate (PAdES; SHA-256 {}): a PDF reader shows the signer and whether the file \
             changed</td></tr>",
            e(u),
            e(fp)
        );
    }
    if let Some(u) = link(v.signature_url.as_deref()) {
        let key = v
            .key_fingerprint
            .as_deref()
            .map(|fp| format!(" by key {}", e(fp)))
            .unwrap_or_default();
        let _ = writeln!(
            rows,
            "    <tr><th>OpenPGP signature</th><td>a <a href=\"{}\">detached signature</a> of the PDF{key}: \
             <code>gpg --verify Certificate.pdf.sig Certificate.pdf</code></td></tr>",
            e(u)
        );
    }
    if let Some(u) = link(v.credential_url.as_deref()) {
        let status = match &v.credential_status {
            Some(s) => {
                let state = match s.revoked {
                    true => "<strong>revoked</strong>",
                    false => "not revoked",
                };
                let list = match link(Some(&s.status_list_url)) {
                    Some(l) => format!("<a href=\"{}\">its status list</a>", e(l)),
                    None => "its status list".to_owned(),
                };
                let at = s
                    .list_published_at
                    .as_deref()
                    .map(|t| format!(" (the list as published {})", e(t)))
                    .unwrap_or_default();
                format!("; entry {} of {list}: {state}{at}", s.status_list_index)
            }
            None => String::new(),
        };
        let _ = writeln!(
            rows,
            "    <tr><th>Open Badges 3.0 credential</th><td>a <a href=\"{}\">signed credential</a> \
             (Data Integrity, eddsa-rdfc-2022){status}</td></tr>",
            e(u)
        );
    }
    match rows.is_empty() {
        true => String::new(),
        false => format!("  <h2>Proofs</h2>\n  <table>\n{rows}  </table>\n"),
    }
}

/// The page for a link under which nothing was ever published.
pub fn not_found() -> String {
    shell(
        "Certificate not found",
        "  <h1>No certificate was published under this link</h1>\n  \
         <p class=\"status revoked\">Treat a document that points here as not genuine.</p>\n",
    )
}

fn shell(title: &str, body: &str) -> String {
    let head = page_head(
        title,
        "    .status { padding: .6rem .8rem; border-radius: .3rem; }\n    \
         .valid { background: #e3f4e8; } .superseded { background: #fdf3d9; } .revoked { background: #fbe3e3; }\n",
    );
    format!("{head}{body}</body>\n</html>\n")
}

#[cfg(test)]
mod tests {
    use super::wants_html;

    #[test]
    fn browsers_get_html_and_api_clients_json() {
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(Some(firefox)));
        assert!(wants_html(Some("text/html")));
        assert!(!wants_html(None));
        assert!(!wants_html(Some("*/*")));
        assert!(!wants_html(Some("application/json")));
        assert!(!wants_html(Some("application/json, text/html;q=0.5")));
        assert!(!wants_html(Some("text/html;q=0.5, application/json")));
        assert!(!wants_html(Some("text/html;q=0")));
    }
}
