//! Open Badges 3.0 credentials, checked by an independent verifier: Digital
//! Bazaar's `@digitalbazaar/vc` with the `eddsa-rdfc-2022` cryptosuite (its own
//! JSON-LD processor and RDFC-1.0 canonicalizer, from the npm registry; installed
//! by `scripts/setup.sh --test`) verifies credentials published by a real
//! cluster, offline, and `@digitalbazaar/vc-bitstring-status-list` their status:
//! tests/credentials/verify.mjs serves only the pinned contexts (`contexts/`),
//! did:key documents made by Digital Bazaar's own did:key driver, and the did:web
//! DID document and status lists the workservers published in storage.

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

/// What Digital Bazaar's verifier says of one credential.
struct Verdict {
    verified: bool,
    /// Its status list's bit (None: no status entry, or not checked).
    revoked: Option<bool>,
    error: String,
}

/// Verifies `files` with Digital Bazaar's verifier, in order.
fn verify(storage: &Path, base_url: &str, files: &[PathBuf]) -> Vec<Verdict> {
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
        .map(|l| Verdict {
            verified: l["verified"] == true,
            revoked: l["revoked"].as_bool(),
            error: l["error"].as_str().unwrap_or_default().to_owned(),
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
    let mut indexes = std::collections::HashSet::new();
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
        // Its own entry in the first status list.
        let st = &cred["credentialStatus"];
        assert_eq!(st["type"], "BitstringStatusListEntry");
        assert_eq!(st["statusPurpose"], "revocation");
        assert_eq!(
            st["statusListCredential"],
            format!("{BASE_URL}status/0.json")
        );
        let index = st["statusListIndex"]
            .as_str()
            .expect("the index is a string");
        assert_eq!(st["id"], format!("{BASE_URL}status/0.json#{index}"));
        assert!(
            indexes.insert(index.to_owned()),
            "two credentials at index {index}"
        );
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
    // Their status list is published (a list is published when first used).
    let list = storage.join("status/0.json");
    wait_for(|| list.exists(), "status/0.json to be published").await;
    let results = verify(&storage, BASE_URL, &all);
    for (f, v) in files.iter().zip(&results) {
        assert!(
            v.verified && v.revoked == Some(false),
            "{} does not verify (revoked: {:?}): {}\n{}",
            f.display(),
            v.revoked,
            v.error,
            std::fs::read_to_string(f).unwrap()
        );
    }
    for (f, v) in tampered.iter().zip(&results[files.len()..]) {
        assert!(!v.verified, "the tampered {} verifies", f.display());
    }

    // `testamur verify` checks the same offline: the PDF's signature and the
    // credential against the published DID document; the tampered ones fail.
    let verify_cli = |cred: &Path, more: &[&std::ffi::OsStr]| {
        std::process::Command::new(crate::helpers::BIN)
            .arg("verify")
            .arg("--credential")
            .arg(cred)
            .arg("--did-document")
            .arg(storage.join(".well-known/did.json"))
            .args(more)
            .output()
            .unwrap()
    };
    let out = verify_cli(&files[0], &[]);
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
        let out = verify_cli(t, &[]);
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
    // The PDF's own signature, its OpenPGP one, the credential.
    assert_eq!(stdout.matches("VALID: ").count(), 3, "{stdout}");

    // Kept before they are revoked: the credentials of a deleted version and of
    // a replaced one.
    let keep = |i: usize| {
        let p = dir.path().join(format!("kept-{i}.json"));
        std::fs::copy(&files[i], &p).unwrap();
        p
    };
    let (deleted, replaced) = (keep(2), keep(3));

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

    // Regenerated: the replaced version's credential is revoked, the new one not.
    let mut regen = reqs[3].clone();
    regen.action = Some("regen".into());
    let id = lms.submit(&regen).await.unwrap().unwrap().cert_id;
    let cert = lms
        .wait_final(id.as_str(), std::time::Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", dump_logs(&c.dir().join("logs"))));
    assert_eq!(cert.state, CertState::Downloadable);
    let renewed = stored(&storage, cert.credential_url.as_deref().unwrap());

    // The list is published again with both bits set (soon: its publication is
    // leased before any certificate's job).
    let index_of = |f: &Path| -> u32 {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        v["credentialStatus"]["statusListIndex"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let bit_set = |i: u32| {
        let Ok(bytes) = std::fs::read(&list) else {
            return false;
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let enc = v["credentialSubject"]["encodedList"].as_str().unwrap();
        let bits = testamur_ws::credential::status_list::decode(enc, 16_384).unwrap();
        testamur_common::status_list::bit(&bits, i) == Some(true)
    };
    let (di, ri) = (index_of(&deleted), index_of(&replaced));
    wait_for(
        || bit_set(di) && bit_set(ri),
        "the revocations in status/0.json",
    )
    .await;
    // And the CC recorded it published as it is now (the workserver's completion
    // was accepted, nothing is left to publish).
    let redis_get = |args: &[&str]| c.redis.cli(args).unwrap().trim().to_owned();
    wait_for(
        || redis_get(&["HGET", "tm:status:0:pub", "ver"]) == redis_get(&["GET", "tm:status:0:ver"]),
        "the CC to record the list's newest version as published",
    )
    .await;
    let after = verify(
        &storage,
        BASE_URL,
        &[
            deleted.clone(),
            replaced.clone(),
            renewed.clone(),
            files[0].clone(),
        ],
    );
    let revoked: Vec<Option<bool>> = after.iter().map(|v| v.revoked).collect();
    assert_eq!(
        revoked,
        [Some(true), Some(true), Some(false), Some(false)],
        "deleted, replaced, regenerated, untouched: {:?}",
        after.iter().map(|v| &v.error).collect::<Vec<_>>()
    );
    assert!(after.iter().all(|v| v.verified), "the proofs still verify");

    // `testamur verify --status-list` says the same offline.
    let status_cli = |cred: &Path| {
        let out = verify_cli(cred, &["--status-list".as_ref(), list.as_os_str()]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = status_cli(&deleted);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("REVOKED: "), "{stdout}");
    let (code, stdout) = status_cli(&renewed);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("is not revoked"), "{stdout}");
}

/// Waits (60 s at most) for `cond`.
async fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
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
        results[0].verified,
        "{}\n{}",
        results[0].error,
        String::from_utf8_lossy(&bytes[2])
    );
}
