//! Publishing across a certificate's life (local directory storage): a regen
//! publishes a new version and then removes the old one (or keeps it with
//! `keep_old_versions`), a delete removes everything, and the public
//! `GET /verify/{verify_uuid}` tells valid, superseded and revoked versions apart
//! from forgeries.

use serde_json::Value;
use testamur::cmd::demo::sample_request;
use testamur_common::failure::FailCode;
use testamur_common::state::CertState;
use testamur_common::wire::{CallbackPayload, CertificateView};

use crate::helpers::{cluster, public_file, run_action, TestCluster};

/// `GET /verify/{uuid}` without credentials: (status code, body).
async fn verify(c: &TestCluster, uuid: &str) -> (u16, Value) {
    let lms = c.lms().unwrap();
    let r = lms
        .http()
        .get(lms.url(&format!("/verify/{uuid}")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The files a published version consists of (with verification on).
fn files(c: &TestCluster, cert: &CertificateView) -> Vec<std::path::PathBuf> {
    let du = cert.download_uuid.as_ref().unwrap();
    let vu = cert.verify_uuid.as_ref().unwrap();
    [
        format!("downloads/{du}/Certificate.pdf"),
        format!("cert/{vu}/Certificate.pdf.sig"),
        format!("cert/{vu}/index.html"),
    ]
    .iter()
    .map(|rel| public_file(c, rel))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn regen_replaces_the_old_version_and_delete_revokes_every_version() {
    let c = cluster(|s| s.workservers = 1).await;

    let v1 = run_action(&c, "add").await;
    assert_eq!(v1.state, CertState::Downloadable);
    let old_files = files(&c, &v1);
    assert!(old_files.iter().all(|f| f.exists()), "{old_files:?}");
    let vu1 = v1.verify_uuid.clone().unwrap().to_string();
    let (code, b) = verify(&c, &vu1).await;
    assert_eq!((code, b["status"].as_str()), (200, Some("valid")), "{b}");
    // The fields of the shared contract, as printed on this version.
    let req = sample_request(1);
    assert_eq!(b["name"].as_str(), req.name.as_deref(), "{b}");
    assert_eq!(b["course_id"].as_str(), req.course_id.as_deref(), "{b}");
    assert_eq!(b["course_name"].as_str(), req.course_name.as_deref(), "{b}");
    assert_eq!(
        b["download_url"].as_str(),
        v1.download_url.as_deref(),
        "{b}"
    );
    assert_eq!(
        b["signature_url"].as_str(),
        v1.signature_url.as_deref(),
        "{b}"
    );
    assert_eq!(b["issued_date"].as_str().map(str::len), Some(10), "{b}");
    let fp = b["key_fingerprint"].as_str().unwrap_or("");
    assert!(
        fp.len() == 40 && fp.bytes().all(|c| c.is_ascii_hexdigit()),
        "{b}"
    );
    for k in ["org", "updated_at", "published_at"] {
        assert!(b.get(k).is_some(), "{k} missing: {b}");
    }

    let v2 = run_action(&c, "regen").await;
    assert_eq!(v2.state, CertState::Downloadable);
    assert_ne!(v2.download_uuid, v1.download_uuid);
    assert_ne!(v2.verify_uuid, v1.verify_uuid);
    let new_files = files(&c, &v2);
    assert!(new_files.iter().all(|f| f.exists()), "{new_files:?}");
    assert!(
        old_files.iter().all(|f| !f.exists()),
        "the replaced version's files are removed: {old_files:?}"
    );
    let vu2 = v2.verify_uuid.clone().unwrap().to_string();
    let (code, b) = verify(&c, &vu1).await;
    assert_eq!(
        (code, b["status"].as_str()),
        (200, Some("superseded")),
        "{b}"
    );
    assert!(b["superseded_at"].is_string(), "{b}");
    assert_eq!(
        b["current_verify_url"].as_str(),
        v2.verify_url.as_deref(),
        "{b}"
    );
    assert_eq!(verify(&c, &vu2).await.1["status"], "valid");
    // The history shows both versions.
    let details: Vec<String> = v2
        .history
        .unwrap()
        .iter()
        .filter_map(|h| h.detail.clone())
        .collect();
    for vu in [&vu1, &vu2] {
        assert!(
            details.iter().any(|d| d.contains(vu.as_str())),
            "{details:?}"
        );
    }

    let gone = run_action(&c, "delete").await;
    assert_eq!(gone.state, CertState::Deleted);
    assert!(new_files.iter().all(|f| !f.exists()), "{new_files:?}");
    for vu in [&vu1, &vu2] {
        let (code, b) = verify(&c, vu).await;
        assert_eq!((code, b["status"].as_str()), (200, Some("revoked")), "{b}");
        assert!(b["revoked_at"].is_string(), "{b}");
    }

    // Never published: 404, so a forged certificate is told apart. Not a uuid: 400.
    let (code, b) = verify(&c, "25daeae4-5d47-4404-99cb-6c9a703aa14c").await;
    assert_eq!(
        (code, b["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{b}"
    );
    let (code, b) = verify(&c, "not-a-uuid").await;
    assert_eq!(
        (code, b["error"]["field"].as_str()),
        (400, Some("verify_uuid")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_old_versions_leaves_the_replaced_files() {
    let c = cluster(|s| {
        s.workservers = 1;
        s.keep_old_versions = true;
    })
    .await;
    let v1 = run_action(&c, "add").await;
    let v2 = run_action(&c, "regen").await;
    assert_eq!(v2.state, CertState::Downloadable);
    for f in files(&c, &v1).iter().chain(&files(&c, &v2)) {
        assert!(f.exists(), "{f:?}");
    }
    let vu1 = v1.verify_uuid.unwrap().to_string();
    assert_eq!(verify(&c, &vu1).await.1["status"], "superseded");
}

/// Item 20: the storage failure ends the job at once; the operator learns the
/// path and the setting to check (recent errors of `/v1/status`), the LMS a
/// reason without paths, hosts or settings (the certificate, its history, the
/// listing, the callback).
#[tokio::test(flavor = "multi_thread")]
async fn a_storage_directory_that_cannot_be_written_ends_the_job_with_the_reason() {
    let c = cluster(|s| {
        s.workservers = 1;
        s.cc_extra = crate::callbacks::callbacks_conf(200, 3);
    })
    .await;
    let rx = crate::callbacks::Receiver::start(&c, 0).await;
    // `downloads` is a file, not a directory: no attempt can publish there (as
    // root, a missing permission would not stop the test, so a file does).
    let blocker = public_file(&c, "downloads");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let lms = c.lms().unwrap();
    let mut req = sample_request(1);
    req.callback_url = Some(rx.url.clone());
    let id = lms.submit(&req).await.unwrap().unwrap().cert_id;
    let cert = lms
        .wait_final(id.as_str(), std::time::Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(cert.state, CertState::Error);
    assert_eq!(cert.attempts, 1, "not retried: another attempt cannot help");
    assert_eq!(cert.error_code.as_deref(), Some("storage"));
    let reason = cert.error_reason.clone().unwrap_or_default();
    assert_eq!(
        reason,
        FailCode::Storage.message(),
        "the LMS gets a reason without internals"
    );
    let leaks = |what: &str, text: &str| {
        for secret in [
            "downloads",
            "storage.dir",
            "ws-1",
            c.info.storage_dir.to_str().unwrap(),
        ] {
            assert!(!text.contains(secret), "{what} shows `{secret}`: {text}");
        }
    };
    leaks("error_reason", &reason);
    for h in cert.history.as_deref().unwrap_or_default() {
        leaks("the history", h.detail.as_deref().unwrap_or(""));
    }
    let listed = lms
        .list(Some(&req.course_id.clone().unwrap()), None, None, None)
        .await
        .unwrap()
        .unwrap();
    let item = listed.items.iter().find(|i| i.cert_id == id).unwrap();
    assert_eq!(item.error_reason.as_deref(), Some(reason.as_str()));
    rx.wait_for(&c, "the error's callback", |d| !d.is_empty())
        .await;
    let body = String::from_utf8(rx.deliveries()[0].body.clone()).unwrap();
    leaks("the callback", &body);
    let p: CallbackPayload = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (p.error_reason.as_deref(), p.error_code.as_deref()),
        (Some(reason.as_str()), Some("storage"))
    );
    // The operator keeps every detail.
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    let detail = &st
        .recent_errors
        .iter()
        .find(|e| e.cert_id == id.as_str())
        .expect("the failure in recent_errors")
        .reason;
    assert!(
        detail.contains("downloads") && detail.contains("storage.dir") && detail.contains("ws-1"),
        "recent_errors names the path, the setting and the workserver: {detail}"
    );
    assert!(
        !public_file(&c, "cert").exists(),
        "nothing published after the PDF failed"
    );
}

/// A permanent failure halfway through publishing (the PDF stored, the signature
/// refused) takes back what the attempt wrote: no new job will ever write those
/// uuids again, so a PDF left there would be an unlisted, unsigned copy.
#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_failure_mid_publish_leaves_no_pdf_behind() {
    let c = cluster(|s| s.workservers = 1).await;
    // `cert` (where signatures and pages go) is a file: the PDF can be written,
    // the signature cannot.
    std::fs::write(public_file(&c, "cert"), b"not a directory").unwrap();
    let cert = run_action(&c, "add").await;
    assert_eq!(cert.state, CertState::Error);
    assert_eq!(cert.attempts, 1);
    assert_eq!(cert.error_code.as_deref(), Some("storage"));
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    let detail = &st.recent_errors[0].reason;
    assert!(detail.contains("cert"), "{detail}");
    let downloads = public_file(&c, "downloads");
    let left: Vec<_> = walk(&downloads);
    assert!(
        left.is_empty(),
        "files left after the failed attempt: {left:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
