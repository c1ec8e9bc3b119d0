//! Where a certificate's files are published, relative to the storage root (the
//! object layout of the old agent). The workserver writes these paths; the CC
//! checks that the URLs a workserver reports end in them.
//!
//! `downloads/{download_uuid}/Certificate.pdf`, `cert/{verify_uuid}/Certificate.pdf.sig`,
//! `cert/{verify_uuid}/index.html` (the verification page), `cert/{verify_uuid}/credential.json`
//! (the Open Badges 3.0 credential, with ws.conf `[credentials]`; with verification off the
//! signature is `downloads/{download_uuid}/Certificate.pdf.sig` and `cert/` is unused),
//! and the public key once at `keys/signing-key.asc`.

use crate::ids::PublicUuid;

pub const PUBLIC_KEY_PATH: &str = "keys/signing-key.asc";

pub fn pdf_path(download: &PublicUuid) -> String {
    format!("downloads/{download}/Certificate.pdf")
}

pub fn sig_path(verify: &PublicUuid) -> String {
    format!("cert/{verify}/Certificate.pdf.sig")
}

/// The signature when the template has verification off (nothing under `cert/`).
pub fn pdf_sig_path(download: &PublicUuid) -> String {
    format!("downloads/{download}/Certificate.pdf.sig")
}

pub fn verify_page_path(verify: &PublicUuid) -> String {
    format!("cert/{verify}/index.html")
}

/// The version's Open Badges 3.0 credential (when ws.conf has `[credentials]`).
pub fn credential_path(verify: &PublicUuid) -> String {
    format!("cert/{verify}/credential.json")
}

/// A status list's signed credential (Bitstring Status List), overwritten at
/// every change; named by each credential's `statusListCredential`.
pub fn status_list_path(list: u32) -> String {
    format!("status/{list}.json")
}

pub fn verify_dir(verify: &PublicUuid) -> String {
    format!("cert/{verify}/")
}

/// Why a reported URL is not acceptable, naming the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {problem}")]
pub struct BadUrl {
    pub field: &'static str,
    pub problem: String,
}

/// The URLs a workserver reports for a published version.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportedUrls<'a> {
    pub download: Option<&'a str>,
    pub verify: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub credential: Option<&'a str>,
}

/// Checks the URLs a workserver reports for a version published under
/// (`download`, `verify`): http(s) or file, at most 2048 characters, no spaces or control
/// characters, and each ending in its layout path (the signature in either of its
/// two places; the credential only beside a verification page).
pub fn check_urls(
    download: &PublicUuid,
    verify: &PublicUuid,
    urls: ReportedUrls<'_>,
) -> Result<(), BadUrl> {
    let ReportedUrls {
        download: download_url,
        verify: verify_url,
        signature: signature_url,
        credential: credential_url,
    } = urls;
    let bad = |field, problem: String| BadUrl { field, problem };
    let well_formed = |field: &'static str, url: &str| {
        if url.len() > 2048 {
            return Err(bad(field, "is longer than 2048 characters".into()));
        }
        // The schemes ws.conf's storage.base_url may have (file:// for local setups).
        if !(url.starts_with("https://")
            || url.starts_with("http://")
            || url.starts_with("file://"))
        {
            return Err(bad(field, "must be an http(s):// or file:// URL".into()));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                field,
                "must not contain spaces or control characters".into(),
            ));
        }
        Ok(())
    };
    let ends = |field, url: &str, paths: &[String]| {
        if paths.iter().any(|p| url.ends_with(&format!("/{p}"))) {
            Ok(())
        } else {
            Err(bad(
                field,
                format!(
                    "must be the published path {} of this job's uuids",
                    paths.join(" or ")
                ),
            ))
        }
    };
    let Some(d) = download_url else {
        return Err(bad(
            "result.download_url",
            "is required for an add or regen".into(),
        ));
    };
    well_formed("result.download_url", d)?;
    ends("result.download_url", d, &[pdf_path(download)])?;
    let Some(s) = signature_url else {
        return Err(bad(
            "result.signature_url",
            "is required for an add or regen".into(),
        ));
    };
    well_formed("result.signature_url", s)?;
    ends(
        "result.signature_url",
        s,
        &[sig_path(verify), pdf_sig_path(download)],
    )?;
    if let Some(v) = verify_url {
        well_formed("result.verify_url", v)?;
        ends("result.verify_url", v, &[verify_dir(verify)])?;
    }
    if let Some(c) = credential_url {
        if verify_url.is_none() {
            return Err(bad(
                "result.credential_url",
                "is published beside the verification page; there is none".into(),
            ));
        }
        well_formed("result.credential_url", c)?;
        ends("result.credential_url", c, &[credential_path(verify)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> PublicUuid {
        PublicUuid::parse(s).unwrap()
    }

    fn urls<'a>(d: Option<&'a str>, v: Option<&'a str>, s: Option<&'a str>) -> ReportedUrls<'a> {
        ReportedUrls {
            download: d,
            verify: v,
            signature: s,
            credential: None,
        }
    }

    #[test]
    fn urls_must_be_the_layout_paths_of_the_jobs_uuids() {
        let d = u("11111111-1111-4111-8111-111111111111");
        let v = u("22222222-2222-4222-8222-222222222222");
        let base = "https://certs.example.org/";
        let pdf = format!("{base}{}", pdf_path(&d));
        let sig = format!("{base}{}", sig_path(&v));
        let page = format!("{base}{}", verify_dir(&v));
        assert_eq!(
            check_urls(&d, &v, urls(Some(&pdf), Some(&page), Some(&sig))),
            Ok(())
        );
        let side_sig = format!("{base}{}", pdf_sig_path(&d));
        assert_eq!(
            check_urls(&d, &v, urls(Some(&pdf), None, Some(&side_sig))),
            Ok(())
        );
        // Another certificate's PDF, a foreign page, a javascript: URL, a newline.
        let other = u("33333333-3333-4333-8333-333333333333");
        let foreign = format!("{base}{}", pdf_path(&other));
        assert_eq!(
            check_urls(&d, &v, urls(Some(&foreign), None, Some(&sig)))
                .unwrap_err()
                .field,
            "result.download_url"
        );
        assert!(check_urls(
            &d,
            &v,
            urls(Some(&pdf), Some("https://evil.example/"), Some(&sig))
        )
        .is_err());
        let js = format!("javascript:alert(1)//{}", pdf_path(&d));
        assert!(check_urls(&d, &v, urls(Some(&js), None, Some(&sig))).is_err());
        assert!(check_urls(&d, &v, urls(Some(&format!("{pdf}\n")), None, Some(&sig))).is_err());
        assert!(check_urls(&d, &v, urls(None, None, Some(&sig))).is_err());
        assert!(check_urls(&d, &v, urls(Some(&pdf), None, None)).is_err());
        // The credential: beside its page, under this version's verify uuid.
        let cred = format!("{base}{}", credential_path(&v));
        let with = |c: &str, page: Option<&str>| {
            check_urls(
                &d,
                &v,
                ReportedUrls {
                    credential: Some(c),
                    ..urls(Some(&pdf), page, Some(&sig))
                },
            )
        };
        assert_eq!(with(&cred, Some(&page)), Ok(()));
        assert_eq!(
            with(&cred, None).unwrap_err().field,
            "result.credential_url"
        );
        let foreign_cred = format!("{base}{}", credential_path(&other));
        assert_eq!(
            with(&foreign_cred, Some(&page)).unwrap_err().field,
            "result.credential_url"
        );
    }
}
