//! Criterion benchmarks for the per-certificate CPU work of a workserver: rendering
//! the shipped templates with Latin and CJK names, and signing (with the check
//! before publishing): the PDF's own signature (PAdES), the detached OpenPGP
//! signature and the Open Badges credential's proof. `render+all` is what a
//! workserver's job does before storage, through its own `Pipeline` (as `testamur
//! bench render`). Throughput is in certificates, so criterion reports
//! certificates per second on one core.
//!
//!     cargo bench -p testamur-ws --bench render
//!
//! (`cargo test --benches` runs each once, as a smoke test.) The figures are in
//! docs/PERFORMANCE.md.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use p256::pkcs8::DecodePrivateKey;
use testamur_common::config::{IssuerDid, StorageBackend, StorageConfig};
use testamur_ws::credential::Issuer;
use testamur_ws::job::Pipeline;
use testamur_ws::pdf_sign::PdfSigner;
use testamur_ws::render::{RenderContext, Renderer};
use testamur_ws::sample::{self, Script};
use testamur_ws::sign::{self, SigningKey};

fn templates() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../templates"))
}

fn key() -> SigningKey {
    let (secret, _, _) = sign::generate_key("bench").expect("key generation");
    let cert = sign::parse_cert(secret.as_bytes()).expect("generated key parses");
    SigningKey::from_cert(cert).expect("generated key signs")
}

fn issuer() -> Issuer {
    Issuer::from_seed(
        &[7; 32],
        IssuerDid::Web {
            did: "did:web:certs.example.org".into(),
            document_path: ".well-known/did.json".into(),
        },
    )
}

/// A self-signed P-256 document-signing certificate (the chain is not what a
/// signature costs).
fn pdf_signer() -> PdfSigner {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench document signer");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::ContentCommitment,
    ];
    let cert = params.self_signed(&key).expect("self-signed");
    let signing = p256::ecdsa::SigningKey::from_pkcs8_der(&key.serialize_der()).expect("PKCS#8");
    PdfSigner::new(signing, vec![cert.der().to_vec()]).expect("signer")
}

/// A workserver's pipeline with every signature on; storage in `dir`, never
/// written to here.
fn pipeline(dir: &std::path::Path) -> Pipeline {
    let storage = StorageConfig {
        backend: StorageBackend::Dir {
            dir: dir.to_owned(),
        },
        base_url: "https://certs.example.org/".into(),
        keep_old_versions: false,
        cache_max_age: std::time::Duration::from_secs(300),
    };
    Pipeline {
        renderer: Renderer::load(&templates()).expect("shipped templates load"),
        key: key(),
        storage: std::sync::Arc::new(
            testamur_ws::storage::DiskStorage::new(dir, &storage).expect("storage"),
        ),
        workserver: "bench".into(),
        verify_page_url: None,
        credentials: Some(issuer()),
        pdf_signer: Some(pdf_signer()),
    }
}

/// The i-th sample certificate of `script` on `template`, rendered.
fn render_one(renderer: &Renderer, script: Script, template: &str, i: usize) -> Vec<u8> {
    let job = sample::job(script, i, Some(template));
    let url = sample::verify_url("https://certs.example.org", &job);
    let ctx = RenderContext {
        verify_url: &url,
        signature: None,
    };
    renderer.render(&job, &ctx).expect("renders").pdf
}

fn render(c: &mut Criterion) {
    let renderer = Renderer::load(&templates()).expect("shipped templates load");
    let key = key();
    let issuer = issuer();
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = pipeline(dir.path());
    let mut g = c.benchmark_group("certificate");
    g.throughput(Throughput::Elements(1));
    // One count for all benchmarks: no benchmark meets the names (and so the
    // cached font subsets) of another.
    let n = std::cell::Cell::new(0);
    let next = || {
        n.set(n.get() + 1);
        n.get()
    };
    for template in ["letter", "classic"] {
        for (script, label) in [(Script::Latin, "latin"), (Script::Cjk, "cjk")] {
            g.bench_function(format!("render/{template}/{label}"), |b| {
                b.iter(|| render_one(&renderer, script, template, next()))
            });
            g.bench_function(format!("render+sign+credential/{template}/{label}"), |b| {
                b.iter(|| {
                    let job = sample::job(script, next(), Some(template));
                    let url = sample::verify_url("https://certs.example.org", &job);
                    let out = renderer
                        .render(
                            &job,
                            &RenderContext {
                                verify_url: &url,
                                signature: None,
                            },
                        )
                        .expect("renders");
                    let sig = key.sign_detached(&out.pdf).expect("signs");
                    key.verify_detached(&out.pdf, &sig).expect("verifies");
                    let vu = job.verify_uuid.as_ref().expect("a verify uuid");
                    let facts = testamur_ws::signed_at::credential_facts(
                        &job,
                        vu,
                        &out.noun,
                        &bench_list_url,
                    );
                    (sig, issuer.issue(&facts).expect("issues"))
                })
            });
            g.bench_function(format!("render+all/{template}/{label}"), |b| {
                b.iter(|| {
                    let job = sample::job(script, next(), Some(template));
                    let url = sample::verify_url("https://certs.example.org", &job);
                    let art = pipeline
                        .render_and_sign(&job, &url)
                        .expect("renders and signs");
                    let vu = job.verify_uuid.as_ref().expect("a verify uuid");
                    let credential = pipeline
                        .issue_credential(&job, vu, &art.noun)
                        .expect("issues")
                        .expect("a credential");
                    (art, credential)
                })
            });
            g.bench_function(format!("render+sign/{template}/{label}"), |b| {
                b.iter(|| {
                    let pdf = render_one(&renderer, script, template, next());
                    let sig = key.sign_detached(&pdf).expect("signs");
                    key.verify_detached(&pdf, &sig).expect("verifies");
                    sig
                })
            });
        }
    }
    let pdf = render_one(&renderer, Script::Latin, "letter", 0);
    g.bench_function("sign+verify", |b| {
        b.iter(|| {
            let sig = key.sign_detached(&pdf).expect("signs");
            key.verify_detached(&pdf, &sig).expect("verifies");
            sig
        })
    });
    let job = sample::job(Script::Latin, 0, Some("letter"));
    let vu = job.verify_uuid.clone().expect("a verify uuid");
    g.bench_function("credential", |b| {
        b.iter(|| {
            let facts =
                testamur_ws::signed_at::credential_facts(&job, &vu, "Certificate", &bench_list_url);
            issuer.issue(&facts).expect("issues")
        })
    });
    g.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);

/// Where the benchmark's credentials say their status lists are.
fn bench_list_url(list: u32) -> String {
    format!("https://certs.example.org/status/{list}.json")
}
