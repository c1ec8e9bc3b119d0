//! Open Badges 3.0 credentials, checked by an independent verifier: Digital
//! Bazaar's `@digitalbazaar/vc` with the `eddsa-rdfc-2022` cryptosuite (its own
//! JSON-LD processor and RDFC-1.0 canonicalizer, from the npm registry; installed
//! by `scripts/setup.sh --test`) verifies credentials published by a real
//! cluster, offline: tests/credentials/verify.mjs serves only the pinned contexts
//! (`contexts/`), did:key documents made by Digital Bazaar's own did:key driver,
//! and the did:web DID document the workservers published in storage.

use std::path::{Path, PathBuf};
use std::process::Command;

use testamur_common::ids::CertId;
use testamur_common::state::{Action, CertState};

use crate::helpers::{assert_all_downloadable, cluster, dump_logs, sample_requests, submit_all};

const DID_WEB: &str = "did:web:certs.example.test";
const BASE_URL: &str = "https://certs.example.test/";

/// The verifier's directory (`TESTAMUR_VCJS`, default ~/.cache/testamur-vcjs)
/// with the current verify.mjs copied in (node resolves its imports from there).
fn verifier() -> PathBuf {
    let dir = std::env::var_os("TESTAMUR_VCJS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/testamur-vcjs")
        });
    assert!(
        dir.join("node_modules/@digitalbazaar/vc").is_dir(),
        "Digital Bazaar's verifier is not installed in {}: run scripts/setup.sh --test",
        dir.display()
    );
    let script = dir.join("verify.mjs");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/credentials/verify.mjs"),
        &script,
    )
    .unwrap();
    script
}

/// Verifies `files` with Digital Bazaar's verifier: (verified, error) per file, in order.
fn verify(storage: &Path, base_url: &str, files: &[PathBuf]) -> Vec<(bool, String)> {
    let out = Command::new("node")
        .arg(verifier())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/contexts"))
        .arg(storage)
        .arg(base_url)
        .args(files)
        .output()
        .expect("node runs (scripts/setup.sh --test installs it)");
    assert!(
        out.status.success(),
        "verify.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), files.len(), "{lines:?}");
    lines
        .iter()
        .map(|l| {
            (
                l["verified"] == true,
                l["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The file a storage URL names in the cluster's directory storage.
fn stored(storage: &Path, url: &str) -> PathBuf {
    storage.join(
        url.strip_prefix(BASE_URL)
            .unwrap_or_else(|| panic!("{url} is not under {BASE_URL}")),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_published_credentials_verify_with_digital_bazaars_verifier() {
    let c = cluster(|s| {
        s.credentials = Some(DID_WEB.into());
        s.base_url = Some(BASE_URL.into());
        s.ws_capacity = 4;
    })
    .await;
    let storage = c.info.storage_dir.clone();
    // The DID document is where did:web resolves to, under the storage's URL.
    let did_doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(storage.join(".well-known/did.json"))
            .expect("the DID document is published"),
    )
    .unwrap();
    assert_eq!(did_doc["id"], DID_WEB);

    let lms = c.lms().unwrap();
    let reqs = sample_requests("vc", 50);
    let ids: Vec<CertId> = submit_all(&lms, &reqs).await;
    assert_all_downloadable(&c, &ids).await;

    let mut files = Vec::new();
    for (id, req) in ids.iter().zip(&reqs) {
        let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
        let vu = cert.verify_uuid.clone().unwrap();
        let url = cert.credential_url.clone().expect("a credential_url");
        assert_eq!(url, format!("{BASE_URL}cert/{vu}/credential.json"));
        let file = stored(&storage, &url);
        let cred: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        // What it says: this version, the learner's name as given, the course, the issuer.
        assert_eq!(cred["id"], format!("urn:uuid:{vu}"));
        assert_eq!(
            cred["credentialSubject"]["name"],
            req.name.as_deref().unwrap()
        );
        assert_eq!(
            cred["credentialSubject"]["achievement"]["name"],
            req.course_name.as_deref().unwrap()
        );
        assert_eq!(cred["issuer"]["id"], DID_WEB);
        assert_eq!(cred["issuer"]["name"], req.org.as_deref().unwrap());
        assert_eq!(cred["proof"]["cryptosuite"], "eddsa-rdfc-2022");
        // The public verification record links it too.
        let v = lms.verification(vu.as_str()).await.unwrap().unwrap();
        assert_eq!(v.credential_url.as_deref(), Some(url.as_str()));
        files.push(file);
    }

    // Tampered: another learner's name in one, a later date in another.
    let dir = tempfile::tempdir().unwrap();
    let tamper = |i: usize, from: &str, to: &str| {
        let text = std::fs::read_to_string(&files[i]).unwrap();
        assert!(text.contains(from), "{from} in {}", files[i].display());
        let p = dir.path().join(format!("tampered-{i}.json"));
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        p
    };
    let name = reqs[0].name.clone().unwrap();
    let tampered = [
        tamper(0, &name, "Mallory"),
        tamper(1, "T00:00:00Z\"", "T00:00:01Z\""),
    ];
    let mut all = files.clone();
    all.extend(tampered.iter().cloned());
    let results = verify(&storage, BASE_URL, &all);
    for (f, (ok, err)) in files.iter().zip(&results) {
        assert!(
            ok,
            "{} does not verify: {err}\n{}",
            f.display(),
            std::fs::read_to_string(f).unwrap()
        );
    }
    for (f, (ok, _)) in tampered.iter().zip(&results[files.len()..]) {
        assert!(!ok, "the tampered {} verifies", f.display());
    }

    // `testamur verify` checks the same offline: the PDF's signature and the
    // credential against the published DID document; the tampered ones fail.
    let verify_cli = |cred: &std::path::Path| {
        std::process::Command::new(crate::helpers::BIN)
            .arg("verify")
            .arg("--credential")
            .arg(cred)
            .arg("--did-document")
            .arg(storage.join(".well-known/did.json"))
            .output()
            .unwrap()
    };
    let out = verify_cli(&files[0]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("VALID: ") && stdout.contains(DID_WEB),
        "{stdout}"
    );
    for t in &tampered {
        let out = verify_cli(t);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(stdout.starts_with("INVALID: "), "{stdout}");
    }
    let cert0 = lms.certificate(ids[0].as_str()).await.unwrap().unwrap();
    let pdf = stored(&storage, cert0.download_url.as_deref().unwrap());
    let sig = stored(&storage, cert0.signature_url.as_deref().unwrap());
    let out = std::process::Command::new(crate::helpers::BIN)
        .arg("verify")
        .args([&pdf, &sig])
        .arg("--key")
        .arg(storage.join("keys/signing-key.asc"))
        .arg("--credential")
        .arg(&files[0])
        .arg("--did-document")
        .arg(storage.join(".well-known/did.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("VALID: ").count(), 2, "{stdout}");

    // Deleted: the credential goes with the version's other files, and the
    // verification record says revoked.
    let mut del = reqs[2].clone();
    del.action = Some("delete".into());
    let id = lms.submit(&del).await.unwrap().unwrap().cert_id;
    let cert = lms
        .wait_final(id.as_str(), std::time::Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", dump_logs(&c.dir().join("logs"))));
    assert_eq!(cert.state, CertState::Deleted);
    assert!(cert.credential_url.is_none());
    assert!(
        !files[2].exists(),
        "a deleted version's credential is removed"
    );
}

/// A did:key credential from the pipeline itself: a retried job publishes the
/// same bytes (PDF, signature, credential), and Digital Bazaar's verifier (with its
/// own did:key driver resolving the key) accepts it.
#[test]
fn a_retried_job_publishes_identical_bytes_and_did_key_verifies() {
    let storage = tempfile::tempdir().unwrap();
    let p = crate::rendering::pipeline_with_credentials(storage.path());
    let j = testamur_common::wire::JobCertificate {
        requested_at: Some("2026-11-23T09:30:15.250Z".into()),
        ..crate::rendering::job("Dr. محمد Smith \"Q\" \\", "Course", Some("classic"))
    };
    let read = |rel: &str| std::fs::read(storage.path().join(rel)).unwrap();
    let vu = j.verify_uuid.clone().unwrap();
    let du = j.download_uuid.clone().unwrap();
    let rels = [
        testamur_common::layout::pdf_path(&du),
        testamur_common::layout::sig_path(&vu),
        testamur_common::layout::credential_path(&vu),
    ];
    let first = p.run(Action::Add, &j).unwrap();
    let bytes: Vec<Vec<u8>> = rels.iter().map(|r| read(r)).collect();
    // A second later, by the clock: the signatures still say when the request came.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = p.run(Action::Add, &j).unwrap();
    for (r, b) in rels.iter().zip(&bytes) {
        assert!(&read(r) == b, "{r} differs on the retry");
    }
    assert_eq!(first.credential_url, again.credential_url);
    let file = storage.path().join(&rels[2]);
    let results = verify(
        storage.path(),
        "https://certs.example.org/",
        std::slice::from_ref(&file),
    );
    assert!(
        results[0].0,
        "{}\n{}",
        results[0].1,
        String::from_utf8_lossy(&bytes[2])
    );
}
