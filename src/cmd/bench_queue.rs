//! `testamur bench queue`: the queue path alone. A local CC and Redis, N jobs
//! queued with the batch API (like BullMQ's addBulk), then drained by no-op
//! workservers that lease and complete through the real HTTPS API without
//! rendering anything. Reports the enqueue and drain rates, Redis's CPU per job
//! (`INFO cpu` before and after) and its memory per certificate and per further
//! version (`INFO memory` after the adds, then after a regen of each),
//! the figures of docs/PERFORMANCE.md.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use testamur_common::config::WsConfig;
use testamur_common::ids::JobId;
use testamur_common::layout;
use testamur_common::wire::{BatchResult, JobResult, LeasedJob, MAX_BATCH};
use testamur_ws::client::{CcClient, Session};

use crate::devcluster::{Cluster, ClusterSpec};

pub struct QueueBench<'a> {
    pub n: usize,
    pub workers: usize,
    /// Jobs each no-op workserver holds at most (BullMQ's `concurrency`).
    pub capacity: u32,
    pub dir: &'a std::path::Path,
    /// Also print Redis's command statistics.
    pub verbose: bool,
}

/// Redis's CPU seconds so far (user + system), from `INFO cpu`.
pub(crate) fn redis_cpu(redis: &crate::redis_proc::RedisServer) -> anyhow::Result<f64> {
    let info = redis.cli(&["INFO", "cpu"])?;
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_user") + field("used_cpu_sys"))
}

/// How fast N jobs were queued and drained, with Redis's CPU per job for each
/// (`bench queue` and `bench redis`).
pub struct Rates {
    pub n: usize,
    pub enqueue: Duration,
    pub enqueue_cpu_us: f64,
    pub drain: Duration,
    pub drain_cpu_us: f64,
}

impl Rates {
    /// From the times and Redis CPU seconds of each phase.
    pub fn new(n: usize, enqueue: (Duration, f64), drain: (Duration, f64)) -> Self {
        let per = |cpu_s: f64| cpu_s * 1e6 / n as f64;
        Self {
            n,
            enqueue: enqueue.0,
            enqueue_cpu_us: per(enqueue.1),
            drain: drain.0,
            drain_cpu_us: per(drain.1),
        }
    }

    /// The enqueue and drain lines; `calls`: how the jobs were queued.
    pub fn print(&self, calls: &str) {
        for (what, t, cpu) in [
            (
                format!("enqueue ({calls})"),
                self.enqueue,
                self.enqueue_cpu_us,
            ),
            (
                "drain (lease + complete)".into(),
                self.drain,
                self.drain_cpu_us,
            ),
        ] {
            println!(
                "  {what}: {:.2}s -> {:.0} jobs/s, Redis CPU {:.1} µs/job",
                t.as_secs_f64(),
                self.n as f64 / t.as_secs_f64(),
                cpu
            );
        }
    }
}

/// Redis's `used_memory` (bytes), from `INFO memory`.
fn redis_memory(cluster: &Cluster) -> anyhow::Result<f64> {
    let info = cluster.redis.cli(&["INFO", "memory"])?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// What a workserver reports for a job it "published": URLs in the layout under a
/// public base, a signing key, a digest, as a real workserver's.
pub(crate) fn result_for(job: &LeasedJob) -> JobResult {
    let (du, vu) = (&job.certificate.download_uuid, &job.certificate.verify_uuid);
    let url = |p: String| Some(format!("https://certificates.example.org/{p}"));
    JobResult {
        download_uuid: du.clone(),
        verify_uuid: vu.clone(),
        download_url: du.as_ref().map(layout::pdf_path).and_then(url),
        verify_url: vu.as_ref().map(layout::verify_dir).and_then(url),
        signature_url: vu.as_ref().map(layout::sig_path).and_then(url),
        credential_url: vu.as_ref().map(layout::credential_path).and_then(url),
        sha256: Some(job.job_id.as_str().repeat(2)),
        key_fingerprint: Some("0123456789ABCDEF0123456789ABCDEF01234567".into()),
        pdf_signer_sha256: None,
        timings: None,
    }
}

/// One no-op workserver: leases up to `capacity`, completes each at once
/// (concurrently), until `done` reaches `n`.
async fn worker(
    client: Arc<CcClient>,
    session: Session,
    capacity: u32,
    n: usize,
    done: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    let held: Arc<Mutex<HashSet<JobId>>> = Arc::default();
    // Heartbeats list what it holds, so the CC never takes its leases back.
    let beat = {
        let (client, session, held) = (client.clone(), session.clone(), held.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(session.heartbeat_interval).await;
                let jobs: Vec<JobId> = held.lock().unwrap().iter().cloned().collect();
                let _ = client.heartbeat(&session, jobs).await;
            }
        })
    };
    // Each lease answer is completed in one call, which leases as many again
    // (as the workserver's reporter does with the finished jobs' capacity) until
    // the run has enough; a lease call only when capacity is free otherwise.
    let mut inflight = tokio::task::JoinSet::new();
    let mut held_n = 0u32;
    while done.load(Ordering::Relaxed) < n {
        let free = capacity.saturating_sub(held_n);
        if free > 0 {
            let wait = if inflight.is_empty() { 1000 } else { 0 };
            let jobs = client
                .lease(&session, free, Duration::from_millis(wait))
                .await
                .context("lease")?
                // It registers without [credentials]: never leased a status list.
                .jobs;
            if !jobs.is_empty() {
                let slots = jobs.len() as u32;
                held_n += slots;
                let (client, session, held, done) =
                    (client.clone(), session.clone(), held.clone(), done.clone());
                inflight.spawn(async move {
                    let mut jobs = jobs;
                    while !jobs.is_empty() {
                        held.lock()
                            .unwrap()
                            .extend(jobs.iter().map(|j| j.job_id.clone()));
                        let items: Vec<_> = jobs
                            .iter()
                            .map(|j| (j.lease_id.clone(), result_for(j)))
                            .collect();
                        let more = done.load(Ordering::Relaxed) + jobs.len() < n;
                        let (outcomes, leased) = client
                            .complete_and_lease(&session, &items, more.then_some(slots))
                            .await
                            .context("complete")?;
                        for r in outcomes {
                            anyhow::ensure!(
                                r.status == testamur_common::wire::CompletionStatus::Ok,
                                "a completion was refused: {:?}",
                                r.error
                            );
                        }
                        {
                            let mut h = held.lock().unwrap();
                            for job in &jobs {
                                h.remove(&job.job_id);
                            }
                        }
                        done.fetch_add(jobs.len(), Ordering::Relaxed);
                        jobs = leased.jobs;
                    }
                    anyhow::Ok(slots)
                });
            }
        }
        // Reap finished completions; wait for one when full.
        if held_n >= capacity {
            if let Some(r) = inflight.join_next().await {
                held_n -= r??;
            }
        }
        while let Some(r) = inflight.try_join_next() {
            held_n -= r??;
        }
    }
    while let Some(r) = inflight.join_next().await {
        r??;
    }
    beat.abort();
    client.deregister(&session).await.context("deregister")?;
    Ok(())
}

/// Submits `requests` with the batch API, `chunk` per call; every one must be
/// accepted (`bench queue`, `bench durability`).
pub(crate) async fn submit_batches(
    lms: &crate::api::ApiClient,
    requests: &[testamur_common::wire::SubmitRequest],
    chunk: usize,
) -> anyhow::Result<()> {
    for part in requests.chunks(chunk) {
        let resp = lms.submit_batch(part).await??;
        let refused = resp
            .results
            .iter()
            .filter(|r| !matches!(r, BatchResult::Accepted(_)))
            .count();
        anyhow::ensure!(refused == 0, "{refused} requests of the batch were refused");
    }
    Ok(())
}

/// What one run measured.
pub struct Figures {
    pub rates: Rates,
    /// Redis `used_memory` growth per certificate once each is downloadable (one
    /// version), and per certificate again after a regen of each (its second version).
    pub bytes_per_cert: f64,
    pub bytes_per_version: f64,
    /// Redis's command statistics after the run, by total time (`--verbose`).
    pub commandstats: Vec<String>,
}

/// Queue `requests` with the batch API, then drain them with `workers` no-op
/// workservers; returns (enqueue time, its Redis CPU s, drain time, its Redis CPU s).
async fn phase(
    cluster: &Cluster,
    b: &QueueBench<'_>,
    requests: &[testamur_common::wire::SubmitRequest],
) -> anyhow::Result<(Duration, f64, Duration, f64)> {
    let lms = cluster.lms()?;
    let cc_url = cluster.info.cc_url.clone();
    let cpu0 = redis_cpu(&cluster.redis)?;
    let start = Instant::now();
    submit_batches(&lms, requests, MAX_BATCH).await?;
    let enqueued = start.elapsed();
    let cpu1 = redis_cpu(&cluster.redis)?;

    let mut sessions = Vec::new();
    for i in 1..=b.workers {
        let conf_path = cluster.write_ws_conf(i, &cc_url)?;
        let mut config = WsConfig::load(&conf_path)?;
        config.capacity = b.capacity;
        let client = Arc::new(CcClient::new(&config)?);
        let session = client.register(&config).await.context("register")?;
        sessions.push((client, session));
    }
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (client, session) in sessions {
        set.spawn(worker(
            client,
            session,
            b.capacity,
            requests.len(),
            done.clone(),
        ));
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let drained = start.elapsed();
    let cpu2 = redis_cpu(&cluster.redis)?;
    Ok((enqueued, cpu1 - cpu0, drained, cpu2 - cpu1))
}

/// The whole measurement: `b.n` adds queued and drained, then a regen of each, on
/// a local cluster whose CC runs `bin` (the testamur binary).
pub async fn measure(b: &QueueBench<'_>, bin: std::path::PathBuf) -> anyhow::Result<Figures> {
    crate::devcluster::clear_dir(b.dir)?;
    let mut spec = ClusterSpec::new(b.dir, bin);
    spec.workservers = 0;
    spec.log_level = "warn".into();
    let mut cluster = Cluster::start(spec).await?;
    let result = measure_on(&cluster, b).await;
    cluster.stop();
    result
}

async fn measure_on(cluster: &Cluster, b: &QueueBench<'_>) -> anyhow::Result<Figures> {
    let mut requests: Vec<_> = (0..b.n)
        .map(|i| {
            let mut r = super::demo::sample_request(i);
            r.username = Some(format!("queue{i:07}"));
            r
        })
        .collect();
    let mem0 = redis_memory(cluster)?;
    let (enqueue, enqueue_cpu, drain, drain_cpu) = phase(cluster, b, &requests).await?;
    let mem1 = redis_memory(cluster)?;
    let downloadable = |want: usize| async move {
        let s = cluster.operator()?.status().await??;
        let got = s.certificates.get("downloadable").copied().unwrap_or(0);
        anyhow::ensure!(
            got as usize == want,
            "{got} of {want} certificates downloadable"
        );
        anyhow::Ok(())
    };
    downloadable(b.n).await?;
    for r in &mut requests {
        r.action = Some("regen".into());
    }
    phase(cluster, b, &requests).await?;
    let mem2 = redis_memory(cluster)?;
    downloadable(b.n).await?;
    let mut commandstats = Vec::new();
    if b.verbose {
        // Where Redis's time went: the commands (scripts and what they call) by
        // total time.
        let stats = cluster.redis.cli(&["INFO", "commandstats"])?;
        let mut rows: Vec<(f64, &str)> = stats
            .lines()
            .filter_map(|l| {
                let usec = l.split("usec=").nth(1)?.split(',').next()?.parse().ok()?;
                Some((usec, l.trim()))
            })
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        commandstats = rows.iter().take(12).map(|(_, l)| l.to_string()).collect();
    }
    Ok(Figures {
        rates: Rates::new(b.n, (enqueue, enqueue_cpu), (drain, drain_cpu)),
        bytes_per_cert: (mem1 - mem0) / b.n as f64,
        bytes_per_version: (mem2 - mem1) / b.n as f64,
        commandstats,
    })
}

pub async fn run(b: QueueBench<'_>) -> anyhow::Result<ExitCode> {
    let f = measure(&b, std::env::current_exe()?).await?;
    println!(
        "queue path: {} no-op jobs, {} workservers x capacity {}, through HTTPS",
        f.rates.n, b.workers, b.capacity
    );
    f.rates.print(&format!("batches of {MAX_BATCH}"));
    println!(
        "  Redis memory: {:.0} bytes per downloadable certificate, {:.0} bytes per further \
         version (used_memory growth after the adds, then after a regen of each; \
         completion counters included)",
        f.bytes_per_cert, f.bytes_per_version
    );
    for l in &f.commandstats {
        println!("  {l}");
    }
    Ok(ExitCode::SUCCESS)
}
