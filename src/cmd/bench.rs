//! `testamur bench`: the figures in docs/PERFORMANCE.md.
//! - `render`: render+sign(+verify) on one thread, in process.
//! - `e2e`: a local cluster with two workservers; time from the first submit until
//!   N certificates are downloadable, against the render+sign capacity measured
//!   in the same run; latency of single requests (`bench_e2e.rs`).
//! - `queue`: the queue path alone, with no-op workservers (`bench_queue.rs`).
//! - `redis`: the queue path's scripts alone, straight to Redis (`bench_redis.rs`).
//! - `durability`: submit latency and throughput by `durability` and fsync policy
//!   (`bench_durability.rs`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use testamur_ws::sample;

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Render,
    E2e,
    Queue,
    Redis,
    Durability,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Script {
    Latin,
    Cjk,
}

impl From<Script> for sample::Script {
    fn from(s: Script) -> Self {
        match s {
            Script::Latin => sample::Script::Latin,
            Script::Cjk => sample::Script::Cjk,
        }
    }
}

#[derive(Args)]
pub struct BenchArgs {
    kind: Kind,
    /// How many certificates.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Templates directory for `render` (default: the repository's).
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Template for `render` (default: the catalogue's default).
    #[arg(long)]
    template: Option<String>,
    /// Names for `render`: latin or cjk.
    #[arg(long, value_enum, default_value_t = Script::Latin)]
    script: Script,
    /// Working directory for `e2e` and `queue` (default target/bench-e2e,
    /// target/bench-queue).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Workserver capacity (`e2e`: 4; `queue`: 50, BullMQ's concurrency in
    /// bench/bullmq.sh).
    #[arg(long)]
    capacity: Option<u32>,
    /// No-op workservers for `queue`.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// `queue`: also print Redis's command statistics (where its time went).
    #[arg(long)]
    verbose: bool,
    /// `e2e`: submit with `POST /v1/certificates/batch` (10,000 per call) instead
    /// of one request per certificate from 16 concurrent clients.
    #[arg(long)]
    batch: bool,
    /// `e2e`: also measure submit-to-downloadable latency: this many single
    /// requests one at a time on the idle cluster after the run, and single
    /// requests one at a time during it (under load).
    #[arg(long, default_value_t = 0)]
    latency: usize,
    /// `e2e`: publish to S3 (an s3s-fs server in this process, on 127.0.0.1)
    /// instead of a directory.
    #[arg(long)]
    s3: bool,
    /// `e2e`: certificates rendered on one thread to measure the render+sign
    /// capacity (0: skip).
    #[arg(long, default_value_t = 1000)]
    capacity_n: usize,
}

pub async fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    match a.kind {
        Kind::Render => render(&a),
        Kind::E2e => {
            crate::logging::init(false);
            let dir = a.dir.clone().unwrap_or_else(|| "target/bench-e2e".into());
            super::bench_e2e::run(super::bench_e2e::E2eBench {
                n: a.n,
                capacity: a.capacity.unwrap_or(4),
                batch: a.batch,
                latency: a.latency,
                s3: a.s3,
                capacity_n: a.capacity_n,
                dir: &dir,
            })
            .await
        }
        Kind::Redis => {
            crate::logging::init(false);
            let dir = a.dir.clone().unwrap_or_else(|| "target/bench-redis".into());
            super::bench_redis::run(a.n, a.capacity.unwrap_or(50), &dir).await
        }
        Kind::Durability => {
            crate::logging::init(false);
            let dir = a
                .dir
                .clone()
                .unwrap_or_else(|| "target/bench-durability".into());
            super::bench_durability::run(a.n, &dir).await
        }
        Kind::Queue => {
            crate::logging::init(false);
            let dir = a.dir.clone().unwrap_or_else(|| "target/bench-queue".into());
            super::bench_queue::run(super::bench_queue::QueueBench {
                n: a.n,
                workers: a.workers,
                capacity: a.capacity.unwrap_or(50),
                dir: &dir,
                verbose: a.verbose,
            })
            .await
        }
    }
}

fn render(a: &BenchArgs) -> anyhow::Result<ExitCode> {
    let dir = a
        .templates
        .clone()
        .unwrap_or_else(crate::devcluster::default_templates);
    let tmp = std::env::temp_dir().join(format!("testamur-bench-render-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let pipeline = bench_pipeline(&dir, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    let pipeline = pipeline?;
    let script = sample::Script::from(a.script);
    let (mut t_render, mut t_sign, mut t_pdf_sign, mut t_cred, mut bytes) =
        (0.0, 0.0, 0.0, Duration::ZERO, 0usize);
    let start = Instant::now();
    for i in 0..a.n {
        let job = sample::job(script, i, a.template.as_deref());
        let (art, cred) = make_one(&pipeline, &job)?;
        t_cred += cred;
        t_render += art.render_ms;
        t_sign += art.sign_ms - art.pdf_sign_ms;
        t_pdf_sign += art.pdf_sign_ms;
        bytes += art.pdf.len();
    }
    let total = start.elapsed();
    println!(
        "render + PDF signature (PAdES) + OpenPGP sign+verify + credential (issue+verify), one thread, {} certificates, template {}, {} names",
        a.n,
        a.template.as_deref().unwrap_or("(default)"),
        match a.script {
            Script::Latin => "Latin",
            Script::Cjk => "CJK",
        }
    );
    println!(
        "  total {:.2}s -> {:.1} certificates/s",
        total.as_secs_f64(),
        a.n as f64 / total.as_secs_f64()
    );
    let n = a.n as f64;
    println!(
        "  render {:.3} ms/cert, PDF signature+check {:.3} ms/cert, OpenPGP sign+verify {:.3} ms/cert, credential {:.3} ms/cert",
        t_render / n,
        t_pdf_sign / n,
        t_sign / n,
        ms(t_cred, a.n)
    );
    println!(
        "  average PDF size {:.1} KB",
        bytes as f64 / a.n as f64 / 1024.0
    );
    Ok(ExitCode::SUCCESS)
}

/// What a workserver's job does before storage, as it does it: render and sign
/// (PDF signature, OpenPGP signature, each checked), then the credential issued
/// and checked. The artifacts, and the time the credential took.
pub(super) fn make_one(
    pipeline: &testamur_ws::job::Pipeline,
    job: &testamur_common::wire::JobCertificate,
) -> anyhow::Result<(testamur_ws::job::Artifacts, Duration)> {
    let verify_url = sample::verify_url("https://certs.example.org", job);
    let art = pipeline
        .render_and_sign(job, &verify_url)
        .map_err(|e| anyhow::anyhow!("{}", e.reason))?;
    let t = Instant::now();
    let vu = job
        .verify_uuid
        .as_ref()
        .context("sample jobs have a verify uuid")?;
    pipeline
        .issue_credential(job, vu, &art.noun)
        .map_err(|e| anyhow::anyhow!("{}", e.reason))?
        .context("the bench issues credentials")?;
    Ok((art, t.elapsed()))
}

fn ms(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / n as f64
}

pub(super) fn sequoia_cert(armored: &str) -> anyhow::Result<testamur_ws::sign::Cert> {
    testamur_ws::sign::parse_cert(armored.as_bytes()).context("parsing the generated key")
}

/// A workserver's pipeline with every signature on: a new OpenPGP key, a
/// credential issuer (did:web: the longer identifier), a development CA's PDF
/// signing certificate (made in `tmp`); storage in `tmp`, never written to.
pub(super) fn bench_pipeline(
    templates: &std::path::Path,
    tmp: &std::path::Path,
) -> anyhow::Result<testamur_ws::job::Pipeline> {
    let (secret, _, _) = testamur_ws::sign::generate_key("bench")?;
    let tls = crate::tlsgen::generate(tmp, &["localhost".into()])?;
    let pdf_signer =
        testamur_ws::pdf_sign::PdfSigner::load(&testamur_common::config::PdfSignatureConfig {
            cert: tls.pdf_cert,
            key: tls.pdf_key,
        })?;
    let storage = testamur_common::config::StorageConfig {
        backend: testamur_common::config::StorageBackend::Dir {
            dir: tmp.to_owned(),
        },
        base_url: "https://certs.example.org/".into(),
        keep_old_versions: false,
        cache_max_age: Duration::from_secs(300),
    };
    Ok(testamur_ws::job::Pipeline {
        renderer: testamur_ws::render::Renderer::load(templates)?,
        key: testamur_ws::sign::SigningKey::from_cert(sequoia_cert(&secret)?)?,
        storage: std::sync::Arc::new(testamur_ws::storage::DiskStorage::new(tmp, &storage)?),
        workserver: "bench".into(),
        verify_page_url: None,
        credentials: Some(testamur_ws::credential::Issuer::from_seed(
            &[7; 32],
            testamur_common::config::IssuerDid::Web {
                did: "did:web:certs.example.org".into(),
                document_path: ".well-known/did.json".into(),
            },
        )),
        pdf_signer: Some(pdf_signer),
    })
}
