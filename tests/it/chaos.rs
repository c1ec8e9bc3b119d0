//! Chaos: workservers and CCs SIGKILLed at random (and restarted, as systemd
//! would) and one Redis restart from its append-only file, while batches keep
//! arriving. Afterwards every certificate is downloadable exactly once, every PDF
//! matches its sha256 and passes `gpg --verify`, and no published file belongs to
//! no certificate.
//!
//! Bounded: `TESTAMUR_CHAOS_SECS` (default 20) of chaos; `scripts/chaos.sh` runs a
//! long one and docs/RELIABILITY.md has its figures.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testamur::cmd::demo::sample_request;
use testamur_common::ids::CertId;
use testamur_common::state::CertState;
use testamur_common::wire::{BatchResult, SubmitRequest};

use crate::helpers::{assert_all_downloadable, cluster, Gpg};

/// A small xorshift generator; the seed is printed so a run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn local_path(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("file://").expect("a file:// URL"))
}

#[tokio::test(flavor = "multi_thread")]
async fn random_kills_and_a_redis_restart_lose_nothing() {
    const WS: usize = 3;
    const CCS: usize = 2;
    const WAVE: usize = 40;
    let secs = env_num("TESTAMUR_CHAOS_SECS", 20);
    let seed = match env_num("TESTAMUR_CHAOS_SEED", 0) {
        0 => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
        s => s,
    };
    println!("CHAOS: seed {seed}, {secs} s");
    let mut rng = Rng(seed.max(1));
    let mut c = cluster(|s| {
        s.workservers = WS;
        s.ccs = CCS;
        s.ws_capacity = 2;
        s.lease_ttl_s = 5;
        s.heartbeat_interval_s = 1;
        s.max_attempts = 1000;
    })
    .await;

    let mut submitted: Vec<CertId> = Vec::new();
    // Waves still to be accepted: (Idempotency-Key, requests). A wave whose answer
    // was lost is sent again with its key, so it is queued once.
    let mut pending: Vec<(String, Vec<SubmitRequest>)> = Vec::new();
    let (mut ws_kills, mut cc_kills, mut redis_restarts, mut waves) = (0u64, 0u64, 0u64, 0usize);
    let started = Instant::now();
    let chaos_end = started + Duration::from_secs(secs);
    let redis_at = started + Duration::from_secs(secs / 2);
    while Instant::now() < chaos_end {
        // Work keeps arriving.
        let reqs: Vec<SubmitRequest> = (0..WAVE)
            .map(|i| {
                let mut r = sample_request(waves * WAVE + i);
                r.username = Some(format!("chaos{waves:04}-{i:02}"));
                r
            })
            .collect();
        pending.push((format!("chaos-wave-{seed}-{waves}"), reqs));
        waves += 1;
        let mut still = Vec::new();
        for (key, reqs) in pending.drain(..) {
            let k = 1 + rng.below(CCS as u64) as usize;
            let lms = c.lms_at(k).unwrap();
            match lms.submit_batch_with_key(&reqs, Some(&key)).await {
                Ok(Ok(resp)) => {
                    for r in resp.results {
                        match r {
                            BatchResult::Accepted(a) => submitted.push(a.cert_id),
                            BatchResult::Rejected { error, status } => {
                                panic!("a request was refused ({status}): {error:?}")
                            }
                        }
                    }
                }
                _ => still.push((key, reqs)),
            }
        }
        pending = still;

        // Something dies.
        match rng.below(10) {
            0..=5 => {
                let i = 1 + rng.below(WS as u64) as usize;
                c.kill_ws(i);
                ws_kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
                c.start_ws(i).unwrap();
            }
            6..=7 => {
                let k = 1 + rng.below(CCS as u64) as usize;
                c.kill_cc_n(k);
                cc_kills += 1;
                tokio::time::sleep(Duration::from_millis(200 + rng.below(500))).await;
                c.start_cc_n(k).unwrap();
            }
            _ => {}
        }
        if redis_restarts == 0 && Instant::now() >= redis_at {
            c.redis.restart_graceful().unwrap();
            redis_restarts += 1;
        }
        tokio::time::sleep(Duration::from_millis(300 + rng.below(700))).await;
    }
    // Calm (every process was restarted right after its kill): every wave accepted.
    c.wait_healthy(Duration::from_secs(30)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some((key, reqs)) = pending.pop() {
        match c
            .lms()
            .unwrap()
            .submit_batch_with_key(&reqs, Some(&key))
            .await
        {
            Ok(Ok(resp)) => {
                for r in resp.results {
                    if let BatchResult::Accepted(a) = r {
                        submitted.push(a.cert_id);
                    }
                }
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "a wave is still refused: {other:?}"
                );
                pending.push((key, reqs));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let unique: HashSet<_> = submitted.iter().collect();
    assert_eq!(
        unique.len(),
        submitted.len(),
        "a certificate was accepted twice"
    );
    assert_eq!(submitted.len(), waves * WAVE);

    assert_all_downloadable(&c, &submitted).await;

    // Every PDF matches its sha256 and its signature; nothing published is an orphan.
    let lms = c.lms().unwrap();
    let gpg = Gpg::with_key(&c.info.public_key);
    let (mut downloads, mut pages) = (HashSet::new(), HashSet::new());
    for (n, id) in submitted.iter().enumerate() {
        let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
        assert_eq!(cert.state, CertState::Downloadable);
        let pdf = local_path(cert.download_url.as_deref().unwrap());
        let bytes = std::fs::read(&pdf).unwrap();
        use sha2::Digest;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            cert.sha256.clone().unwrap(),
            "{id}"
        );
        // gpg on every fifth (gpg costs ~20 ms a call); sha256 on all.
        if n % 5 == 0 {
            let sig = local_path(cert.signature_url.as_deref().unwrap());
            gpg.verify(&sig, &pdf)
                .unwrap_or_else(|e| panic!("{id}: {e}"));
        }
        downloads.insert(cert.download_uuid.unwrap().to_string());
        pages.insert(cert.verify_uuid.unwrap().to_string());
    }
    let listed = |dir: &str| -> Vec<String> {
        std::fs::read_dir(c.info.storage_dir.join(dir))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for d in listed("downloads") {
        assert!(
            downloads.contains(&d),
            "downloads/{d} belongs to no certificate"
        );
    }
    for p in listed("cert") {
        assert!(pages.contains(&p), "cert/{p} belongs to no certificate");
    }
    println!(
        "CHAOS: {} certificates, {ws_kills} workserver kills, {cc_kills} CC kills, {redis_restarts} Redis restart, {:.1} s: every one downloadable once, sha256 and gpg good, no orphan files",
        submitted.len(),
        started.elapsed().as_secs_f64()
    );
}
