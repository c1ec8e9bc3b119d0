//! The PDFs' own signature (PAdES B-B, issue 16 item 3), checked by an
//! independent verifier: poppler's `pdfsig` (NSS) with the cluster's development
//! CA in an NSS database made here (`certutil`) reports every published PDF's
//! signature valid and its certificate trusted; a PDF changed by one byte fails;
//! `testamur verify` says the same offline.

use std::path::Path;
use std::process::Command;

use crate::helpers::{assert_all_downloadable, cluster, sample_requests, submit_all, BIN};

/// An NSS database in `dir` trusting `ca` (PEM) for signing.
fn nss_db(dir: &Path, ca: &Path) -> String {
    let db = format!("sql:{}", dir.display());
    for args in [
        vec!["-N", "-d", &db, "--empty-password"],
        vec![
            "-A",
            "-d",
            &db,
            "-n",
            "testamur test CA",
            "-t",
            "CT,C,C",
            "-i",
            ca.to_str().unwrap(),
        ],
    ] {
        let out = Command::new("certutil")
            .args(&args)
            .output()
            .expect("certutil (libnss3-tools, scripts/setup.sh --test) is installed");
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    db
}

fn pdfsig(db: &str, pdf: &Path) -> String {
    let out = Command::new("pdfsig")
        .args(["-nssdir", db])
        .arg(pdf)
        .output()
        .expect("pdfsig (poppler-utils) is installed");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn pdfsig_trusts_every_published_pdf_signature_and_catches_a_changed_byte() {
    let c = cluster(|s| s.ws_capacity = 4).await;
    let lms = c.lms().unwrap();
    let reqs = sample_requests("pades", 20);
    let ids = submit_all(&lms, &reqs).await;
    assert_all_downloadable(&c, &ids).await;
    let nss = tempfile::tempdir().unwrap();
    let db = nss_db(nss.path(), &c.info.ca_cert);

    let mut pdfs = Vec::new();
    let first = lms.certificate(ids[0].as_str()).await.unwrap().unwrap();
    for id in &ids {
        let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
        let url = cert.download_url.unwrap();
        let rel = url.split("/downloads/").nth(1).unwrap();
        pdfs.push((
            c.info.storage_dir.join("downloads").join(rel),
            c.info.storage_dir.join(
                cert.signature_url
                    .unwrap()
                    .split("/cert/")
                    .nth(1)
                    .map(|r| format!("cert/{r}"))
                    .unwrap(),
            ),
        ));
    }
    for (pdf, _) in &pdfs {
        let out = pdfsig(&db, pdf);
        for want in [
            "Signature Type: ETSI.CAdES.detached",
            "Signature Validation: Signature is Valid.",
            "Certificate Validation: Certificate is Trusted.",
            "Total document signed",
            "testamur development document signer",
        ] {
            assert!(out.contains(want), "{want} for {}:\n{out}", pdf.display());
        }
    }

    // One byte changed (in the page's content, not the signature): the digest
    // no longer matches, for pdfsig and for `testamur verify`.
    let (pdf, sig) = &pdfs[0];
    let mut bytes = std::fs::read(pdf).unwrap();
    let at = bytes.windows(6).position(|w| w == b"/Title").unwrap();
    bytes[at + 8] ^= 0x01;
    let dir = tempfile::tempdir().unwrap();
    let changed = dir.path().join("changed.pdf");
    std::fs::write(&changed, &bytes).unwrap();
    let out = pdfsig(&db, &changed);
    assert!(!out.contains("Signature is Valid."), "{out}");
    assert!(out.contains("Digest Mismatch"), "{out}");

    let verify = |pdf: &Path| {
        let out = Command::new(BIN)
            .arg("verify")
            .arg(pdf)
            .arg(sig)
            .arg("--key")
            .arg(c.info.storage_dir.join("keys/signing-key.asc"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = verify(pdf);
    assert_eq!(code, Some(0), "{stdout}");
    // The signer GET /verify names (and the page shows) is the one in the PDF.
    let v = lms
        .verification(first.verify_uuid.unwrap().as_str())
        .await
        .unwrap()
        .unwrap();
    let signer = v.pdf_signer_sha256.expect("the PDF signer's certificate");
    assert!(
        stdout.contains(&format!("certificate sha256 {signer}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("carries its own PAdES signature over the whole file"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("VALID: ").count(), 2, "{stdout}");
    let (code, stdout) = verify(&changed);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("INVALID: ") && stdout.contains("its PDF signature"),
        "{stdout}"
    );
}
