//! `testamur reconcile` (issue 17): storage against Redis after things went
//! missing behind testamur's back. A verification index and a certificate's PDF
//! are deleted; the dry run reports both and changes nothing; `--apply` repairs
//! both (the PDF republished under the same uuids, byte for byte); a second run
//! finds nothing.

use std::process::Command;
use std::time::Duration;

use testamur_common::state::CertState;

use crate::helpers::{self, BIN};

fn reconcile(c: &testamur::devcluster::Cluster, apply: bool) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("reconcile")
        .arg("--config")
        .arg(c.dir().join("cc.conf"))
        .arg("--ws-config")
        .arg(c.dir().join("ws-1.conf"));
    if apply {
        cmd.arg("--apply");
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_a_lost_verification_index_and_pdf_and_apply_repairs_both() {
    let c = helpers::cluster(|s| s.workservers = 1).await;
    let lms = c.lms().unwrap();
    let ids = helpers::submit_all(&lms, &helpers::sample_requests("rec", 3)).await;
    helpers::assert_all_downloadable(&c, &ids).await;
    let a = lms.certificate(ids[0].as_str()).await.unwrap().unwrap();
    let b = lms.certificate(ids[1].as_str()).await.unwrap().unwrap();
    let a_vu = a.verify_uuid.clone().unwrap().to_string();
    let b_pdf = testamur_common::layout::pdf_path(b.download_uuid.as_ref().unwrap());
    let b_bytes = std::fs::read(helpers::public_file(&c, &b_pdf)).unwrap();
    // Its other files, which the republish writes again: the detached signatures
    // and the credential (when the cluster issues them).
    let b_vu = b.verify_uuid.as_ref().unwrap();
    // (All text: compared as such, so that a difference reads.)
    let read_text = |p: &str| {
        std::fs::read(helpers::public_file(&c, p))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let b_others: Vec<(String, Option<String>)> = [
        testamur_common::layout::sig_path(b_vu),
        testamur_common::layout::pdf_sig_path(b.download_uuid.as_ref().unwrap()),
        testamur_common::layout::credential_path(b_vu),
    ]
    .into_iter()
    .map(|p| {
        let text = read_text(&p);
        (p, text)
    })
    .collect();
    assert!(
        b_others[0].1.is_some(),
        "the detached signature is published"
    );

    // Behind testamur's back: a's verification index, b's PDF.
    c.redis.cli(&["DEL", &format!("tm:v:{a_vu}")]).unwrap();
    std::fs::remove_file(helpers::public_file(&c, &b_pdf)).unwrap();
    assert!(
        lms.verification(&a_vu).await.unwrap().is_err(),
        "a's record is gone"
    );

    // The dry run says so, fails, and changes nothing.
    let (ok, out) = reconcile(&c, false);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "verification index missing: certificate {} version {a_vu}",
            ids[0]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("files missing: certificate {}", ids[1])) && out.contains(&b_pdf),
        "{out}"
    );
    assert!(
        out.contains("3 certificates checked") && out.contains("--apply"),
        "{out}"
    );
    assert!(lms.verification(&a_vu).await.unwrap().is_err());
    assert!(!helpers::public_file(&c, &b_pdf).exists());

    // --apply repairs both (a second after the first publication at least, so
    // that a signature made at the republish's own time would differ).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (ok, out) = reconcile(&c, true);
    assert!(ok, "{out}");
    assert!(out.contains("2 repaired"), "{out}");
    let v = lms.verification(&a_vu).await.unwrap().unwrap();
    assert_eq!(v.status, testamur_common::wire::VerificationStatus::Valid);
    let b2 = lms
        .wait_final(ids[1].as_str(), Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(b2.state, CertState::Downloadable, "{:?}", b2.error_reason);
    // The same version, at the same URLs, with the same bytes.
    assert_eq!(
        (&b2.download_uuid, &b2.verify_uuid, &b2.download_url),
        (&b.download_uuid, &b.verify_uuid, &b.download_url)
    );
    assert_eq!(b2.sha256, b.sha256);
    assert_eq!(
        std::fs::read(helpers::public_file(&c, &b_pdf)).unwrap(),
        b_bytes
    );
    // And so are its signatures and credential: they state the first request's
    // time, not the republish's.
    for (path, text) in &b_others {
        assert_eq!(
            &read_text(path),
            text,
            "{path} is written again with the same bytes"
        );
    }
    let history = b2.history.unwrap();
    assert!(
        history.iter().any(|h| h.detail.as_deref()
            == Some("republish requested (the published files were missing)")),
        "{history:?}"
    );
    let bv = lms
        .verification(&b.verify_uuid.unwrap().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bv.status, testamur_common::wire::VerificationStatus::Valid);
    assert_eq!(
        bv.published_at,
        history
            .iter()
            .find(|h| h.state == CertState::Downloadable)
            .unwrap()
            .at
    );

    // Nothing left to find.
    let (ok, out) = reconcile(&c, false);
    assert!(ok, "{out}");
    assert!(
        out.contains("0 verification indexes missing, 0 certificates with files missing"),
        "{out}"
    );
}
