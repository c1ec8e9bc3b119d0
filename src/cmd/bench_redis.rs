//! `testamur bench redis`: the ceiling of the queue path inside Redis. The same
//! Lua scripts the CC runs (submit in calls of 500, lease and complete in calls of
//! `--capacity`), called through the CC's own store code with several calls in
//! flight and nothing else in between: no HTTPS, no CC, no workserver. What
//! `bench queue` reaches through the whole API is compared against this (issue 15
//! goal 3: at least 60 %).

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use testamur_cc::store::{NewJob, Registration, Store, IDEMPOTENCY_TTL};
use testamur_common::ids::{CertId, CourseId, JobId, PublicUuid, Username, WsId, WsName};
use testamur_common::state::Action;

use super::bench_queue::Rates;
use crate::redis_proc::RedisServer;

/// Calls in flight at once while draining (like several workservers).
const IN_FLIGHT: usize = 4;

fn new_job(i: usize) -> anyhow::Result<NewJob> {
    let r = super::demo::sample_request(i);
    let course = CourseId::parse(r.course_id.clone().unwrap_or_default())?;
    let user = Username::parse(format!("ceiling{i:07}"))?;
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(NewJob {
        cert_id: CertId::for_pair(&course, &user),
        job_id: JobId::generate(),
        action: Action::Add,
        new_uuids: Some((PublicUuid::generate(), PublicUuid::generate())),
        fields: vec![
            ("course_id", course.to_string()),
            ("username", user.to_string()),
            ("name", o(&r.name)),
            ("course_name", o(&r.course_name)),
            ("org", o(&r.org)),
            ("grade", o(&r.grade)),
            ("issued_date", "2026-12-02".into()),
            ("template", "letter".into()),
        ],
        queue: None,
        callback: None,
        idempotency: None,
    })
}

pub async fn measure(n: usize, batch: u32, dir: &std::path::Path) -> anyhow::Result<Rates> {
    // A directory of its own under `dir` (its Redis's socket and files), removed
    // afterwards.
    let work = dir.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let redis = RedisServer::start(&work)?;
    let store = Store::connect(&redis.url(), None)
        .await
        .context("connecting to the throwaway redis-server")?;
    let ws = WsId::generate();
    store
        .register(&Registration {
            name: &WsName::parse("ceiling")?,
            ws_id: &ws,
            token_hash: "ceiling",
            capacity: u32::MAX / 2,
            version: "bench",
            instance: "",
            peer: "",
            max_attempts: 3,
            alive_within: Duration::from_secs(3600),
            catalog: None,
            status_lists: false,
        })
        .await?;
    let jobs = (0..n).map(new_job).collect::<anyhow::Result<Vec<_>>>()?;
    let cpu0 = super::bench_queue::redis_cpu(&redis)?;
    let start = Instant::now();
    store.submit_many(jobs, IDEMPOTENCY_TTL).await?;
    let enqueue = start.elapsed();
    let cpu1 = super::bench_queue::redis_cpu(&redis)?;

    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (store, ws, done) = (store.clone(), ws.clone(), done.clone());
        set.spawn(async move {
            while done.load(Ordering::Relaxed) < n {
                let leased = store
                    .lease(
                        &ws,
                        batch,
                        Duration::from_secs(600),
                        Duration::from_secs(3600),
                    )
                    .await?
                    .context("the workserver is registered")?
                    .jobs;
                if leased.is_empty() {
                    break;
                }
                let results: Vec<_> = leased.iter().map(super::bench_queue::result_for).collect();
                let items: Vec<_> = leased
                    .iter()
                    .map(|j| &j.lease_id)
                    .zip(results.iter())
                    .collect();
                for r in store.complete_many(&ws, &items).await? {
                    anyhow::ensure!(
                        matches!(r?, testamur_cc::store::Fenced::Ok(_)),
                        "a completion was refused"
                    );
                }
                done.fetch_add(leased.len(), Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let drain = start.elapsed();
    let cpu2 = super::bench_queue::redis_cpu(&redis)?;
    anyhow::ensure!(
        done.load(Ordering::Relaxed) == n,
        "drained {} of {n}",
        done.load(Ordering::Relaxed)
    );
    drop(store);
    drop(redis);
    let _ = std::fs::remove_dir_all(&work);
    Ok(Rates::new(n, (enqueue, cpu1 - cpu0), (drain, cpu2 - cpu1)))
}

pub async fn run(n: usize, batch: u32, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let f = measure(n, batch, dir).await?;
    println!(
        "queue path inside Redis (the CC's scripts, no HTTPS): {} jobs, lease and complete {} per call, {IN_FLIGHT} calls in flight",
        f.n, batch
    );
    f.print("calls of 500");
    Ok(ExitCode::SUCCESS)
}
