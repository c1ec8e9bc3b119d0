//! Many requests through a CC on TLS and two workservers: every certificate ends
//! downloadable exactly once, every signature passes `gpg --verify`, every PDF
//! carries the learner's name.

use std::time::Duration;

use testamur::cmd::demo::sample_request;
use testamur_common::state::CertState;

use crate::helpers::{cluster, pdffonts, pdftotext, public_file, Gpg};

const N: usize = 300;

#[tokio::test(flavor = "multi_thread")]
async fn three_hundred_requests_end_downloadable_once_and_verified() {
    let c = cluster(|s| {
        s.workservers = 2;
        s.ws_capacity = 4;
    })
    .await;
    let lms = c.lms().unwrap();

    let mut set = tokio::task::JoinSet::new();
    for chunk in 0..10 {
        let lms = lms.clone();
        set.spawn(async move {
            let mut ids = Vec::new();
            for i in (chunk * N / 10)..((chunk + 1) * N / 10) {
                let r = lms
                    .submit(&sample_request(i))
                    .await
                    .unwrap()
                    .expect("accepted");
                assert_eq!(r.state, CertState::Generating);
                ids.push((i, r.cert_id));
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.extend(r.unwrap());
    }
    assert_eq!(ids.len(), N);

    let gpg = Gpg::with_key(&public_file(&c, "keys/signing-key.asc"));
    let mut pdfs = std::collections::HashSet::new();
    for (i, id) in &ids {
        let cert = lms
            .wait_final(id.as_str(), Duration::from_secs(120))
            .await
            .unwrap();
        assert_eq!(
            cert.state,
            CertState::Downloadable,
            "{id}: {:?}",
            cert.error_reason
        );
        let history = cert.history.as_ref().unwrap();
        let times = history
            .iter()
            .filter(|h| h.state == CertState::Downloadable)
            .count();
        assert_eq!(
            times, 1,
            "{id} reached downloadable {times} times: {history:?}"
        );
        let du = cert.download_uuid.as_ref().unwrap();
        let vu = cert.verify_uuid.as_ref().unwrap();
        assert!(
            pdfs.insert(du.clone()),
            "two certificates share a download uuid"
        );
        let pdf = public_file(&c, &format!("downloads/{du}/Certificate.pdf"));
        let sig = public_file(&c, &format!("cert/{vu}/Certificate.pdf.sig"));
        let bytes = std::fs::read(&pdf).unwrap();
        assert_eq!(cert.sha256.as_deref().unwrap(), sha256_hex(&bytes));
        gpg.verify(&sig, &pdf)
            .unwrap_or_else(|e| panic!("gpg rejected {}: {e}", sig.display()));
        let name = sample_request(*i).name.unwrap();
        let text = pdftotext(&pdf);
        assert!(
            text.contains(&name),
            "pdftotext of {} lacks {name:?}:\n{text}",
            pdf.display()
        );
        if *i < 3 {
            for (font, emb, sub, uni) in pdffonts(&pdf) {
                assert_eq!(
                    (emb.as_str(), sub.as_str(), uni.as_str()),
                    ("yes", "yes", "yes"),
                    "{font}"
                );
            }
            assert!(
                bytes.len() < 100_000,
                "PDF of {} bytes: the font is not subset",
                bytes.len()
            );
        }
    }
    // Nothing was published twice: exactly N PDFs exist.
    let published = std::fs::read_dir(public_file(&c, "downloads"))
        .unwrap()
        .count();
    assert_eq!(published, N);

    let status = c.operator().unwrap().status().await.unwrap().unwrap();
    assert_eq!(status.certificates["downloadable"], N as i64);
    assert_eq!(status.certificates["generating"], 0);
    assert_eq!(status.queue_depth, 0);
    assert_eq!(status.leased, 0);
    let completed: u64 = status.workservers.iter().map(|w| w.completed).sum();
    assert_eq!(completed, N as u64, "each job completed exactly once");
    assert_eq!(status.workservers.len(), 2);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
