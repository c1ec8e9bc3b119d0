//! The live verification page (issue 16 item 5): `GET /verify/{uuid}` answers a
//! browser in HTML with the version's status as it is now (valid, then superseded
//! by a regen, then revoked by a delete), every value escaped; API clients keep
//! getting JSON from the same URL.

use std::time::Duration;

use testamur_common::wire::VerificationStatus;

use crate::helpers::{cluster, pdftotext, public_file};

const FIREFOX: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// (status, content type, Vary, body) of the page a browser gets.
async fn browse(api: &testamur::api::ApiClient, uuid: &str) -> (u16, String, String, String) {
    let r = api
        .http()
        .get(api.url(&format!("/verify/{uuid}")))
        .header("Accept", FIREFOX)
        .send()
        .await
        .unwrap();
    let h = |k: &str| {
        r.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (status, ctype, vary) = (r.status().as_u16(), h("content-type"), h("vary"));
    (status, ctype, vary, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_get_the_live_verification_page_with_the_current_status() {
    let c = cluster(|s| s.workservers = 1).await;
    let lms = c.lms().unwrap();
    let mut req = testamur::cmd::demo::sample_request(1);
    req.name = Some("<script>alert(1)</script> Zoë & \"Co\"".into());
    let wait = |id: String| {
        let lms = lms.clone();
        async move { lms.wait_final(&id, Duration::from_secs(90)).await.unwrap() }
    };
    let id = lms.submit(&req).await.unwrap().unwrap().cert_id;
    let first = wait(id.to_string()).await;
    let vu = first.verify_uuid.unwrap().to_string();

    let (status, ctype, vary, body) = browse(&lms, &vu).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert_eq!(vary, "Accept");
    assert!(body.contains("<strong>Valid</strong>"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt; Zoë &amp; &quot;Co&quot;"),
        "the name is escaped: {body}"
    );
    assert!(
        !body.contains("<script>"),
        "no markup from the name: {body}"
    );
    let pdf = first.download_url.clone().unwrap();
    assert!(
        body.contains(&format!("href=\"{pdf}\"")),
        "links the PDF: {body}"
    );
    // The credential (the cluster's default: did:key), HTML-escaped like every URL.
    let cred = first.credential_url.clone().expect("a credential_url");
    assert!(
        body.contains(&format!("href=\"{cred}\"")),
        "links the credential: {body}"
    );
    // LinkedIn's add-to-profile link, with the course, issuer, month, id and URL.
    let linkedin = body
        .split("href=\"")
        .find(|l| l.starts_with("https://www.linkedin.com/profile/add?"))
        .and_then(|l| l.split('"').next())
        .unwrap_or_else(|| panic!("no LinkedIn link: {body}"))
        .replace("&amp;", "&");
    for part in [
        "startTask=CERTIFICATION_NAME".to_owned(),
        format!("certId={vu}"),
        "certUrl=https%3A%2F%2Flocalhost%3A".to_owned(),
        "organizationName=".to_owned(),
        "issueYear=20".to_owned(),
    ] {
        assert!(linkedin.contains(&part), "{part} in {linkedin}");
    }
    // API clients (no Accept, */*, application/json) still get JSON.
    let v = lms.verification(&vu).await.unwrap().unwrap();
    assert_eq!(v.status, VerificationStatus::Valid);
    // The proofs and their state: the signature by its key, the credential with
    // its status list entry, not revoked.
    let st = v
        .credential_status
        .clone()
        .expect("the credential's status entry");
    assert!(!st.revoked);
    assert!(
        st.status_list_url.ends_with("/status/0.json"),
        "{}",
        st.status_list_url
    );
    let fp = v.key_fingerprint.clone().unwrap();
    assert!(body.contains("<h2>Proofs</h2>"), "{body}");
    // The PDF's own signature (the cluster's default: the development CA's).
    let pdf_signer = v
        .pdf_signer_sha256
        .clone()
        .expect("the PDF signer's certificate");
    assert!(
        body.contains(&format!(
            "signed by the issuer's certificate (PAdES; SHA-256 {pdf_signer})"
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!("detached signature</a> of the PDF by key {fp}")),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "entry {} of <a href=\"{}\">its status list</a>: not revoked",
            st.status_list_index, st.status_list_url
        )),
        "{body}"
    );

    // A regen supersedes the version: its page says so and links the current one.
    req.action = Some("regen".into());
    lms.submit(&req).await.unwrap().unwrap();
    let second = loop {
        let cert = wait(id.to_string()).await;
        if cert.verify_uuid.as_ref().map(|u| u.to_string()) != Some(vu.clone()) {
            break cert;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (status, _, _, body) = browse(&lms, &vu).await;
    assert_eq!(status, 200);
    assert!(body.contains("<strong>Superseded on 20"), "{body}");
    // Its credential is revoked in the status list (a verifier offline sees it too).
    assert!(body.contains(": <strong>revoked</strong>"), "{body}");
    let v = lms.verification(&vu).await.unwrap().unwrap();
    assert!(v.credential_status.unwrap().revoked);
    assert!(
        !body.contains("linkedin.com"),
        "only a valid version offers LinkedIn: {body}"
    );
    let current = lms
        .verification(&vu)
        .await
        .unwrap()
        .unwrap()
        .current_verify_url
        .expect("a superseded version names the current one");
    assert!(body.contains(&format!("href=\"{current}\"")), "{body}");

    // A delete revokes it: the current version's page says so at once.
    req.action = Some("delete".into());
    lms.submit(&req).await.unwrap().unwrap();
    wait(id.to_string()).await;
    let vu2 = second.verify_uuid.unwrap().to_string();
    let (_, _, _, body) = browse(&lms, &vu2).await;
    assert!(body.contains("<strong>Revoked on 20"), "{body}");
    assert!(body.contains("do not accept it"), "{body}");

    // Nothing published under a uuid: a page saying so, 404.
    let (status, ctype, _, body) = browse(&lms, "00000000-0000-4000-8000-000000000000").await;
    assert_eq!(status, 404);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(body.contains("not genuine"), "{body}");
    // A malformed uuid is the API's 400, whoever asks.
    let (status, ctype, _, _) = browse(&lms, "not-a-uuid").await;
    assert_eq!(status, 400);
    assert!(ctype.starts_with("application/json"), "{ctype}");
}

/// With `verify_page_url` in ws.conf the certificate's printed link and QR code
/// name the CC's live page, and that link opens the page in a browser: the
/// learner who scans it gets an answer whatever the storage serves.
#[tokio::test(flavor = "multi_thread")]
async fn the_printed_link_names_the_live_page_when_ws_conf_says_so() {
    let c = cluster(|s| {
        s.workservers = 1;
        s.ws_extra = "verify_page_url = \"{cc_url}/verify/\"".into();
    })
    .await;
    let lms = c.lms().unwrap();
    let req = testamur::cmd::demo::sample_request(3);
    let id = lms.submit(&req).await.unwrap().unwrap().cert_id;
    let cert = lms
        .wait_final(id.as_str(), Duration::from_secs(90))
        .await
        .unwrap();
    let vu = cert.verify_uuid.unwrap().to_string();
    let page = format!("{}/verify/{vu}", c.info.cc_url);
    let pdf = public_file(
        &c,
        &testamur_common::layout::pdf_path(&cert.download_uuid.unwrap()),
    );
    let text = pdftotext(&pdf).split_whitespace().collect::<String>();
    assert!(
        text.contains(&page),
        "the certificate prints {page}:\n{text}"
    );
    // The API's verify_url is still the storage's page of the seed layout.
    assert!(cert.verify_url.unwrap().ends_with(&format!("cert/{vu}/")));
    let (status, ctype, _, body) = browse(&lms, &vu).await;
    assert_eq!((status, ctype.starts_with("text/html")), (200, true));
    assert!(body.contains("<strong>Valid</strong>"), "{body}");
}
