//! `testamur bench queue`: the queue path alone. A local CC and Redis, N jobs
//! queued with the batch API (like BullMQ's addBulk), then drained by no-op
//! workservers that lease and complete through the real HTTPS API without
//! rendering anything. Reports the enqueue and drain rates, Redis's CPU per job
//! (`INFO cpu` before and after) and its memory per certificate (`INFO memory`),
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
fn redis_cpu(cluster: &Cluster) -> anyhow::Result<f64> {
    let info = cluster.redis.cli(&["INFO", "cpu"])?;
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_user") + field("used_cpu_sys"))
}

/// Redis's `used_memory` (bytes), from `INFO memory`.
fn redis_memory(cluster: &Cluster) -> anyhow::Result<f64> {
    let info = cluster.redis.cli(&["INFO", "memory"])?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// What a workserver reports for a job it "published" (URLs in the layout).
fn result_for(job: &LeasedJob) -> JobResult {
    let (du, vu) = (&job.certificate.download_uuid, &job.certificate.verify_uuid);
    let url = |p: String| Some(format!("file:///bench/{p}"));
    JobResult {
        download_uuid: du.clone(),
        verify_uuid: vu.clone(),
        download_url: du.as_ref().map(layout::pdf_path).and_then(url),
        verify_url: vu.as_ref().map(layout::verify_dir).and_then(url),
        signature_url: vu.as_ref().map(layout::sig_path).and_then(url),
        sha256: Some("0".repeat(64)),
        key_fingerprint: None,
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
    let mut inflight = tokio::task::JoinSet::new();
    while done.load(Ordering::Relaxed) < n {
        let free = capacity.saturating_sub(inflight.len() as u32);
        if free > 0 {
            let wait = if inflight.is_empty() { 1000 } else { 0 };
            let jobs = client
                .lease(&session, free, Duration::from_millis(wait))
                .await
                .context("lease")?;
            for job in jobs {
                held.lock().unwrap().insert(job.job_id.clone());
                let (client, session, held, done) =
                    (client.clone(), session.clone(), held.clone(), done.clone());
                inflight.spawn(async move {
                    client
                        .complete(&session, &job.lease_id, result_for(&job))
                        .await
                        .context("complete")?;
                    held.lock().unwrap().remove(&job.job_id);
                    done.fetch_add(1, Ordering::Relaxed);
                    anyhow::Ok(())
                });
            }
        }
        // Reap finished completions; wait for one when full.
        if inflight.len() as u32 >= capacity {
            if let Some(r) = inflight.join_next().await {
                r??;
            }
        }
        while let Some(r) = inflight.try_join_next() {
            r??;
        }
    }
    while let Some(r) = inflight.join_next().await {
        r??;
    }
    beat.abort();
    client.deregister(&session).await.context("deregister")?;
    Ok(())
}

pub async fn run(b: QueueBench<'_>) -> anyhow::Result<ExitCode> {
    let bin = std::env::current_exe()?;
    crate::devcluster::clear_dir(b.dir)?;
    let mut spec = ClusterSpec::new(b.dir, bin);
    spec.workservers = 0;
    spec.log_level = "warn".into();
    let mut cluster = Cluster::start(spec).await?;
    let lms = cluster.lms()?;
    let cc_url = cluster.info.cc_url.clone();

    let requests: Vec<_> = (0..b.n)
        .map(|i| {
            let mut r = super::demo::sample_request(i);
            r.username = Some(format!("queue{i:07}"));
            r
        })
        .collect();
    let cpu0 = redis_cpu(&cluster)?;
    let mem0 = redis_memory(&cluster)?;
    let start = Instant::now();
    for chunk in requests.chunks(MAX_BATCH) {
        let resp = lms.submit_batch(chunk).await??;
        let refused = resp
            .results
            .iter()
            .filter(|r| !matches!(r, BatchResult::Accepted(_)))
            .count();
        anyhow::ensure!(refused == 0, "{refused} requests of the batch were refused");
    }
    let enqueued = start.elapsed();
    let cpu1 = redis_cpu(&cluster)?;

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
        set.spawn(worker(client, session, b.capacity, b.n, done.clone()));
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let drained = start.elapsed();
    let cpu2 = redis_cpu(&cluster)?;
    let mem2 = redis_memory(&cluster)?;
    let s = cluster.operator()?.status().await??;
    let downloadable = s.certificates.get("downloadable").copied().unwrap_or(0);
    anyhow::ensure!(
        downloadable as usize == b.n,
        "{downloadable} of {} certificates downloadable",
        b.n
    );
    println!(
        "queue path: {} no-op jobs, {} workservers x capacity {}, through HTTPS",
        b.n, b.workers, b.capacity
    );
    println!(
        "  enqueue (batches of {MAX_BATCH}): {:.2}s -> {:.0} jobs/s, Redis CPU {:.1} µs/job",
        enqueued.as_secs_f64(),
        b.n as f64 / enqueued.as_secs_f64(),
        (cpu1 - cpu0) * 1e6 / b.n as f64
    );
    println!(
        "  drain (lease + complete): {:.2}s -> {:.0} jobs/s, Redis CPU {:.1} µs/job",
        drained.as_secs_f64(),
        b.n as f64 / drained.as_secs_f64(),
        (cpu2 - cpu1) * 1e6 / b.n as f64
    );
    println!(
        "  Redis memory: {:.0} bytes per downloadable certificate (used_memory after the drain, \
         less before the first submit; idempotency answers and completion counters included)",
        (mem2 - mem0) / b.n as f64
    );
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
        for (_, l) in rows.iter().take(12) {
            println!("  {l}");
        }
    }
    cluster.stop();
    Ok(ExitCode::SUCCESS)
}
