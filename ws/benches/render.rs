//! Criterion benchmarks for the per-certificate CPU work of a workserver: rendering
//! the shipped templates with Latin and CJK names, and signing (with the check
//! before publishing): the detached OpenPGP signature and the Open Badges
//! credential's proof. Throughput is in certificates, so criterion reports
//! certificates per second on one core.
//!
//!     cargo bench -p testamur-ws --bench render
//!
//! (`cargo test --benches` runs each once, as a smoke test.) The figures are in
//! docs/PERFORMANCE.md.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use testamur_common::config::IssuerDid;
use testamur_ws::credential::Issuer;
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
    let issuer = Issuer::from_seed(
        &[7; 32],
        IssuerDid::Web {
            did: "did:web:certs.example.org".into(),
            document_path: ".well-known/did.json".into(),
        },
    );
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
