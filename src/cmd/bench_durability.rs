//! `testamur bench durability`: what an acknowledgement costs (issue 17). For each
//! of `durability = "local"` with the shipped `appendfsync everysec`, `local` with
//! `appendfsync always`, and `durability = "replica"` (one replica on this
//! machine, `WAIT 1`), a local CC and Redis without workservers: submit latency of
//! single requests one at a time (p50/p99), single requests from 16 concurrent
//! clients (requests/s), and batches of 1,000 (certificates/s). The figures of
//! docs/PERFORMANCE.md "Durability".

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use testamur_common::wire::SubmitRequest;

use crate::devcluster::{Cluster, ClusterSpec};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    LocalEverysec,
    LocalAlways,
    Replica,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::LocalEverysec => "local, appendfsync everysec",
            Mode::LocalAlways => "local, appendfsync always",
            Mode::Replica => "replica (WAIT 1), appendfsync everysec",
        }
    }
}

/// A replica of the cluster's Redis (which gets a TCP port for it), stopped on drop.
struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_replica(cluster: &Cluster, dir: &Path) -> anyhow::Result<Replica> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    cluster
        .redis
        .cli(&["CONFIG", "SET", "port", &port.to_string()])?;
    std::fs::create_dir_all(dir)?;
    let socket = dir.join("replica.sock");
    let child = Command::new("redis-server")
        .args(["--port", "0", "--save", "", "--appendonly", "yes"])
        .arg("--unixsocket")
        .arg(&socket)
        .arg("--dir")
        .arg(dir)
        .args(["--replicaof", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the replica's redis-server")?;
    let replica = Replica(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(&socket)
            .args(["INFO", "replication"])
            .stdin(Stdio::null())
            .output()?;
        if String::from_utf8_lossy(&out.stdout).contains("master_link_status:up") {
            return Ok(replica);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the replica did not sync in 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn requests(mode: usize, what: &str, n: usize) -> Vec<SubmitRequest> {
    (0..n)
        .map(|i| {
            let mut r = super::demo::sample_request(i);
            r.username = Some(format!("d{mode}{what}{i:07}"));
            r
        })
        .collect()
}

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    concurrent_per_s: f64,
    batch_per_s: f64,
}

async fn measure(cluster: &Cluster, mode: usize, n: usize) -> anyhow::Result<Figures> {
    let lms = cluster.lms()?;
    // One at a time.
    let mut lat = Vec::with_capacity(n);
    for r in requests(mode, "s", n) {
        let t = Instant::now();
        lms.submit(&r).await??;
        lat.push(t.elapsed());
    }
    lat.sort();
    let q = |p: f64| {
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    // 16 clients at once.
    let all = requests(mode, "c", 4 * n);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for part in all.chunks(all.len().div_ceil(16)) {
        let lms = cluster.lms()?;
        let part = part.to_vec();
        set.spawn(async move {
            for r in part {
                lms.submit(&r).await??;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let concurrent_per_s = all.len() as f64 / start.elapsed().as_secs_f64();
    // Batches of 1,000.
    let batch = requests(mode, "b", 10 * n);
    let start = Instant::now();
    super::bench_queue::submit_batches(&lms, &batch, 1000).await?;
    let batch_per_s = batch.len() as f64 / start.elapsed().as_secs_f64();
    Ok(Figures {
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        concurrent_per_s,
        batch_per_s,
    })
}

/// `n` single requests one at a time, 4n from 16 clients, 10n in batches of 1,000,
/// in each mode.
pub async fn run(n: usize, dir: &Path) -> anyhow::Result<ExitCode> {
    let bin: PathBuf = std::env::current_exe()?;
    println!("durability: {n} single submits one at a time, {} from 16 clients, {} in batches of 1,000; no workservers", 4 * n, 10 * n);
    for (k, mode) in [Mode::LocalEverysec, Mode::LocalAlways, Mode::Replica]
        .into_iter()
        .enumerate()
    {
        let d = dir.join(format!("mode-{k}"));
        crate::devcluster::clear_dir(&d)?;
        let mut spec = ClusterSpec::new(&d, bin.clone());
        spec.workservers = 0;
        spec.log_level = "warn".into();
        if mode == Mode::Replica {
            spec.cc_redis = Some(
                "redis_url = \"{redis_url}\"\ndurability = \"replica\"\ndurability_timeout_ms = 2000"
                    .into(),
            );
        }
        let mut cluster = Cluster::start(spec).await?;
        let _replica = match mode {
            Mode::Replica => Some(start_replica(&cluster, &d.join("replica"))?),
            _ => None,
        };
        if mode == Mode::LocalAlways {
            cluster.redis.set_appendfsync("always")?;
        }
        let f = measure(&cluster, k, n).await;
        cluster.stop();
        let f = f?;
        println!(
            "  {:<40} single p50 {:>6.2} ms  p99 {:>6.2} ms | 16 clients {:>7.0} req/s | batches {:>7.0} certs/s",
            mode.name(),
            f.p50_ms,
            f.p99_ms,
            f.concurrent_per_s,
            f.batch_per_s
        );
    }
    Ok(ExitCode::SUCCESS)
}
