//! `testamur bench e2e`: a local cluster (own Redis, one CC, two workservers,
//! a directory or an in-process S3 server) turning N requests into downloadable
//! certificates, against the render+sign capacity of this machine measured in the
//! same run (the same certificates rendered, signed and checked on one thread,
//! times the cores), and the latency from submit to downloadable of single
//! requests, idle and under the run's load (docs/PERFORMANCE.md).

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testamur_common::ids::{CertId, CourseId, PublicUuid, Username};
use testamur_common::state::CertState;
use testamur_common::wire::{JobCertificate, SubmitRequest};

use crate::api::ApiClient;
use crate::devcluster::{Cluster, ClusterSpec, S3Target};

pub struct E2eBench<'a> {
    pub n: usize,
    pub capacity: u32,
    pub batch: bool,
    /// Single requests measured on the idle cluster (0: no latency figures).
    pub latency: usize,
    pub s3: bool,
    /// Certificates rendered on one thread for the capacity figure (0: skip).
    pub capacity_n: usize,
    pub dir: &'a Path,
}

/// How often a latency probe asks for its certificate: idle, and under load
/// (where each poll takes CPU from the run it measures).
const POLL_IDLE: Duration = Duration::from_millis(1);
const POLL_LOADED: Duration = Duration::from_millis(5);

/// The i-th request of the run (usernames of their own so none collide with the
/// latency probes').
fn request(prefix: &str, i: usize) -> SubmitRequest {
    let mut r = super::demo::sample_request(i);
    r.username = Some(format!("{prefix}{i:06}"));
    r
}

pub async fn run(b: E2eBench<'_>) -> anyhow::Result<ExitCode> {
    let capacity = match b.capacity_n {
        0 => None,
        n => Some(render_capacity(n)?),
    };
    let bin = std::env::current_exe()?;
    // The previous run's files are removed only after this run: on ext4 without
    // a journal, inodes freed in the last minute (5 if their table block is
    // still dirty) are skipped one by one when new ones are allocated, which made
    // creating this run's files three times as costly.
    let previous = set_aside(b.dir)?;
    let s3 = match b.s3 {
        true => Some(S3Server::start(&b.dir.join("s3")).await?),
        false => None,
    };
    let mut spec = ClusterSpec::new(b.dir, bin);
    spec.ws_capacity = b.capacity;
    spec.log_level = "warn".into();
    spec.s3 = s3.as_ref().map(|s| s.target());
    let mut cluster = Cluster::start(spec).await?;
    let result = measure(&b, &cluster, capacity).await;
    cluster.stop();
    drop(s3);
    if let Some(old) = previous {
        crate::devcluster::clear_dir(&old)?;
    }
    result
}

/// Moves the previous run's directory (if any) out of the way; where it went.
fn set_aside(dir: &Path) -> anyhow::Result<Option<std::path::PathBuf>> {
    if !dir.exists() {
        return Ok(None);
    }
    if !dir.join("cluster.json").is_file() {
        // Empty, or not ours: clear_dir removes the first and refuses the second.
        crate::devcluster::clear_dir(dir)?;
        return Ok(None);
    }
    let mut name = dir.file_name().unwrap_or_default().to_owned();
    name.push(".previous");
    let old = dir.with_file_name(name);
    crate::devcluster::clear_dir(&old)?;
    std::fs::rename(dir, &old)?;
    Ok(Some(old))
}

async fn measure(
    b: &E2eBench<'_>,
    cluster: &Cluster,
    capacity: Option<f64>,
) -> anyhow::Result<ExitCode> {
    let lms = cluster.lms()?;
    let cpu_before = cpu_times(cluster);
    let start = Instant::now();
    // Single requests one at a time while the run goes on. `probes` counts them
    // (before each is submitted) so the run's own certificates can be told apart.
    let probes = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let probe = (b.latency > 0).then(|| {
        let (lms, probes, stop) = (lms.clone(), probes.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let i = probes.fetch_add(1, Ordering::SeqCst);
                lat.push(one_request(&lms, &request("loaded", i), POLL_LOADED).await?);
            }
            anyhow::Ok(lat)
        })
    });
    let accepted = submit_all(b, &lms).await?;
    wait_downloadable(cluster, b.n, start, &probes).await?;
    let total = start.elapsed();
    let cpu_after = cpu_times(cluster);
    stop.store(true, Ordering::SeqCst);
    let loaded = match probe {
        Some(p) => Some(p.await??),
        None => None,
    };
    let rate = b.n as f64 / total.as_secs_f64();
    println!(
        "end to end: {} certificates, 2 workservers x capacity {}, {} storage, submitted {}",
        b.n,
        b.capacity,
        if b.s3 { "S3 (s3s-fs)" } else { "directory" },
        if b.batch {
            "in batches of up to 10,000"
        } else {
            "one by one from 16 clients"
        }
    );
    println!("  all accepted after {:.2}s", accepted.as_secs_f64());
    println!(
        "  all downloadable after {:.2}s -> {:.1} certificates/s",
        total.as_secs_f64(),
        rate
    );
    if let Some(cap) = capacity {
        println!(
            "  render+sign capacity {:.1} certificates/s -> end to end is {:.0} % of it",
            cap,
            rate / cap * 100.0
        );
    }
    // CPU time per certificate of each process: steadier than rates on a
    // machine shared with other work.
    let per_cert: Vec<String> = cpu_after
        .iter()
        .filter_map(|(name, after)| {
            let before = cpu_before.iter().find(|(n, _)| n == name)?.1;
            Some(format!(
                "{name} {:.2}",
                (after - before) * 1000.0 / b.n as f64
            ))
        })
        .collect();
    println!(
        "  CPU ms per certificate (user+system): {}",
        per_cert.join(", ")
    );
    let cluster_ms: f64 = cpu_after
        .iter()
        .filter_map(|(name, after)| Some(after - cpu_before.iter().find(|(n, _)| n == name)?.1))
        .sum::<f64>()
        * 1000.0
        / b.n as f64;
    if let Some(cap) = capacity {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
        let render_ms = 1000.0 * cores / cap;
        println!(
            "  cluster CPU {cluster_ms:.2} ms per certificate, of which render+sign {render_ms:.2} ms -> {:.0} % of the CPU makes certificates",
            render_ms / cluster_ms * 100.0
        );
    }
    if let Ok(calls) = calls_per_route(cluster).await {
        let per = |route: &str| {
            calls
                .iter()
                .filter(|(r, _)| r == route)
                .map(|(_, n)| n)
                .sum::<f64>()
                / b.n as f64
                + 0.0
        };
        println!(
            "  workserver calls per certificate: lease {:.2}, complete {:.2}, batch complete {:.2}",
            per("/v1/leases"),
            per("/v1/leases/{lease_id}/complete"),
            per("/v1/leases/complete")
        );
    }
    if let Some(loaded) = loaded {
        print_latency(
            "latency under the run's load (single requests, one at a time)",
            loaded,
        );
        let mut idle = Vec::with_capacity(b.latency);
        for i in 0..b.latency {
            idle.push(one_request(&lms, &request("idle", i), POLL_IDLE).await?);
        }
        print_latency(
            "latency on the idle cluster (single requests, one at a time)",
            idle,
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn submit_all(b: &E2eBench<'_>, lms: &ApiClient) -> anyhow::Result<Duration> {
    let start = Instant::now();
    if b.batch {
        let requests: Vec<_> = (0..b.n).map(|i| request("bench", i)).collect();
        for chunk in requests.chunks(testamur_common::wire::MAX_BATCH) {
            let resp = lms.submit_batch(chunk).await??;
            let refused = resp
                .results
                .iter()
                .filter(|r| !matches!(r, testamur_common::wire::BatchResult::Accepted(_)))
                .count();
            anyhow::ensure!(refused == 0, "{refused} requests of the batch were refused");
        }
    } else {
        let mut set = tokio::task::JoinSet::new();
        let chunk = b.n.div_ceil(16);
        for c in 0..16 {
            let lms = lms.clone();
            let range = (c * chunk)..((c + 1) * chunk).min(b.n);
            set.spawn(async move {
                for i in range {
                    lms.submit(&request("bench", i)).await??;
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
    }
    Ok(start.elapsed())
}

/// Until `n` of the run's certificates are downloadable. The count includes the
/// latency probes' certificates: `probes` (read after the count) is at least how
/// many of them there were.
async fn wait_downloadable(
    cluster: &Cluster,
    n: usize,
    start: Instant,
    probes: &AtomicUsize,
) -> anyhow::Result<()> {
    let status = cluster.operator()?;
    loop {
        let s = status.status().await??;
        let done = s
            .certificates
            .get(CertState::Downloadable.as_str())
            .copied()
            .unwrap_or(0) as usize;
        let done = done.saturating_sub(probes.load(Ordering::SeqCst));
        if done >= n {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("only {done} of {n} downloadable after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `testamur_http_requests_total` of CC 1 by route, from its `/metrics`: one
/// entry per series (a route appears once per method and status).
pub async fn calls_per_route(cluster: &Cluster) -> anyhow::Result<Vec<(String, f64)>> {
    let op = cluster.operator()?;
    let text = op
        .http()
        .get(op.url("/metrics"))
        .bearer_auth(op.key())
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("testamur_http_requests_total{"))
        .filter_map(|l| {
            let route = l.split("route=\"").nth(1)?.split('"').next()?;
            let n: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((route.to_owned(), n))
        })
        .collect())
}

/// CPU seconds (user + system) each process of the cluster has used so far.
fn cpu_times(cluster: &Cluster) -> Vec<(String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    cluster
        .pids()
        .into_iter()
        .filter_map(|(name, pid)| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command (which may hold spaces) in parentheses.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            let (utime, stime): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
            Some((name, (utime + stime) / ticks))
        })
        .collect()
}

/// One request from submit until `GET /v1/certificates/{id}` says downloadable,
/// asking every `poll`.
async fn one_request(
    lms: &ApiClient,
    req: &SubmitRequest,
    poll: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let id = lms.submit(req).await??.cert_id;
    loop {
        let c = lms.certificate(id.as_str()).await??;
        match c.state {
            CertState::Downloadable => return Ok(start.elapsed()),
            s if s.is_pending() => {}
            s => anyhow::bail!("latency probe {id} ended {s}"),
        }
        if start.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("latency probe {id} not downloadable after 10 minutes");
        }
        tokio::time::sleep(poll).await;
    }
}

fn print_latency(what: &str, mut lat: Vec<Duration>) {
    lat.sort();
    let ms = |q: f64| {
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    if lat.is_empty() {
        println!("  {what}: none finished");
        return;
    }
    println!(
        "  {what}: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        ms(0.50),
        ms(0.99),
        ms(1.0)
    );
}

/// The run's certificates, as a workserver gets them from the CC.
fn job(i: usize) -> JobCertificate {
    let r = request("bench", i);
    let course = CourseId::parse(r.course_id.unwrap_or_default()).expect("sample course id");
    let username = Username::parse(r.username.unwrap_or_default()).expect("sample username");
    JobCertificate {
        cert_id: CertId::for_pair(&course, &username),
        course_id: course,
        username,
        name: r.name,
        course_name: r.course_name,
        org: r.org,
        grade: r.grade,
        designation: None,
        issued_date: "2026-12-02".into(),
        template: None,
        lang: None,
        download_uuid: Some(PublicUuid::generate()),
        verify_uuid: Some(PublicUuid::generate()),
        previous: None,
        requested_at: None,
        status: None,
    }
}

/// What a workserver does before storage, for `n` of the run's certificates on
/// one thread, times the cores: what the machine could make if the cluster cost
/// nothing. The same pipeline as `bench render` (render, PDF signature, OpenPGP
/// signature and their checks, credential issued and checked), which the run's
/// workservers also have on.
fn render_capacity(n: usize) -> anyhow::Result<f64> {
    let tmp = std::env::temp_dir().join(format!("testamur-bench-e2e-cap-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let pipeline = super::bench::bench_pipeline(&crate::devcluster::default_templates(), &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    let pipeline = pipeline?;
    let jobs: Vec<_> = (0..n).map(job).collect();
    let start = Instant::now();
    for j in &jobs {
        super::bench::make_one(&pipeline, j)?;
    }
    let one = n as f64 / start.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "render + every signature and check + credential of the run's certificates, one thread: {one:.1}/s x {cores} cores"
    );
    Ok(one * cores as f64)
}

/// An s3s-fs server on 127.0.0.1 over a directory, in this process.
struct S3Server {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

const S3_BUCKET: &str = "certs";
const S3_ACCESS_KEY: &str = "AKIDBENCH";
const S3_SECRET_KEY: &str = "testamur-bench-s3-secret";

impl S3Server {
    async fn start(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root.join(S3_BUCKET))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let fs = s3s_fs::FileSystem::new(root)
            .map_err(|e| anyhow::anyhow!("s3s-fs over {}: {e:?}", root.display()))?;
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(
            S3_ACCESS_KEY,
            S3_SECRET_KEY,
        ));
        let service = b.build();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    fn target(&self) -> S3Target {
        S3Target {
            endpoint: format!("http://{}", self.addr),
            bucket: S3_BUCKET.into(),
            access_key: S3_ACCESS_KEY.into(),
            secret_key: S3_SECRET_KEY.into(),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
