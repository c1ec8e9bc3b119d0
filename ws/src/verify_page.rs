//! The public verification page of a certificate (`cert/{verify_uuid}/index.html`):
//! who, what, when, which key signed it, links to the PDF, its signature and the
//! public key (and the Open Badges credential, when there is one), and how to check
//! it with gpg. Every value is HTML-escaped: names are
//! text, never markup.

use testamur_common::wire::JobCertificate;

pub struct PageInfo<'a> {
    pub noun: &'a str,
    pub date: &'a str,
    pub fingerprint: &'a str,
    pub pdf_url: &'a str,
    pub sig_url: &'a str,
    pub key_url: &'a str,
    /// The version's Open Badges 3.0 credential, when one is published.
    pub credential_url: Option<&'a str>,
}

pub use testamur_common::html::escape;

pub fn render(cert: &JobCertificate, p: &PageInfo<'_>) -> String {
    let e = escape;
    let name = cert.name.as_deref().unwrap_or("");
    let course = cert
        .course_name
        .as_deref()
        .unwrap_or(cert.course_id.as_str());
    let mut rows = String::new();
    let mut row = |k: &str, v: &str, dir_auto: bool| {
        testamur_common::html::table_row(&mut rows, "      ", k, v, dir_auto)
    };
    row("Learner", name, true);
    row("Course", course, true);
    if let Some(org) = cert.org.as_deref() {
        row("Issued by", org, true);
    }
    row("Date", p.date, false);
    row("Certificate id", cert.cert_id.as_str(), false);
    row("Signing key", p.fingerprint, false);
    let head = testamur_common::html::page_head(
        &format!("{} for {name}: verification", p.noun),
        "    pre { background: #f4f4f6; padding: .8rem; overflow-x: auto; }\n",
    );
    format!(
        r#"{head}  <h1>{noun} for <span dir="auto">{name_e}</span></h1>
  <p>This page describes a certificate signed with an OpenPGP key. The signature
  proves the PDF below is exactly the one that was issued.</p>
  <table>
{rows}  </table>
  <ul>
    <li><a href="{pdf}">The certificate (PDF)</a></li>
    <li><a href="{sig}">Its detached signature</a></li>
    <li><a href="{key}">The public signing key</a> (fingerprint {fpr})</li>
{credential}  </ul>
  <h2>Check it yourself</h2>
  <pre>curl -sO {pdf_text}
curl -sO {sig_text}
curl -s {key_text} | gpg --import
gpg --verify Certificate.pdf.sig Certificate.pdf</pre>
  <p>gpg must say "Good signature" and show the fingerprint above. Or, with testamur:
  <code>testamur verify Certificate.pdf Certificate.pdf.sig --key signing-key.asc</code>.</p>
</body>
</html>
"#,
        noun = e(p.noun),
        name_e = e(name),
        pdf = e(p.pdf_url),
        sig = e(p.sig_url),
        key = e(p.key_url),
        fpr = e(p.fingerprint),
        pdf_text = e(p.pdf_url),
        sig_text = e(p.sig_url),
        key_text = e(p.key_url),
        credential = match p.credential_url {
            Some(u) => format!(
                "    <li><a href=\"{}\">The Open Badges 3.0 credential</a> (for wallets; its proof \
                 checks offline)</li>\n",
                e(u)
            ),
            None => String::new(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("AT&T <Tester> \"q\" 'a'"),
            "AT&amp;T &lt;Tester&gt; &quot;q&quot; &#39;a&#39;"
        );
    }
}
