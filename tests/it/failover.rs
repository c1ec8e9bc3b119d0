//! Losing workservers and Redis: a workserver killed with SIGKILL while holding
//! leases loses nothing (its jobs are leased again after the TTL), a stale lease
//! is fenced off with 409, and a Redis restart mid-run loses nothing.

use std::time::Duration;

use serde_json::{json, Value};
use testamur::cmd::demo::sample_request;
use testamur_common::state::CertState;

use crate::helpers::{
    assert_all_downloadable, cluster, freeze_holding_leases, lease_jobs, public_file,
    register_manual_ws, signal,
};

#[tokio::test(flavor = "multi_thread")]
async fn killed_workserver_loses_nothing_and_stale_leases_get_409() {
    const N: usize = 400;
    let mut c = cluster(|s| {
        s.workservers = 2;
        s.ws_capacity = 8;
        s.lease_ttl_s = 3;
        s.heartbeat_interval_s = 1;
    })
    .await;
    let lms = c.lms().unwrap();
    let op = c.operator().unwrap();
    let http = op.http().clone();

    // A "ghost" workserver: registers, leases, and never reports (like a crashed one).
    let (_, ghost_token) = register_manual_ws(&c, "ghost", 5).await;

    // Freeze the real workservers so the ghost is sure to get jobs, then let them go.
    let submit = |i: usize| {
        let lms = lms.clone();
        async move {
            let mut r = sample_request(i);
            r.username = Some(format!("fo{i:04}"));
            lms.submit(&r).await.unwrap().expect("accepted").cert_id
        }
    };
    let real = [c.ws_pid(1).unwrap(), c.ws_pid(2).unwrap()];
    real.iter().for_each(|p| signal(*p, "STOP"));
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(submit(i).await);
    }
    let ghost_jobs = lease_jobs(&c, &ghost_token, 5, 5000).await;
    real.iter().for_each(|p| signal(*p, "CONT"));
    assert_eq!(ghost_jobs.len(), 5, "the ghost should hold five jobs");
    // Freeze ws-1 at a moment it holds leases, while the rest is still being
    // submitted (rendering keeps up with one-by-one submits, so afterwards the
    // queue may already be empty), then SIGKILL it.
    let more = tokio::spawn({
        let lms = lms.clone();
        async move {
            let mut ids = Vec::new();
            for i in 30..N {
                let mut r = sample_request(i);
                r.username = Some(format!("fo{i:04}"));
                ids.push(lms.submit(&r).await.unwrap().expect("accepted").cert_id);
            }
            ids
        }
    });
    freeze_holding_leases(&c, c.ws_pid(1).unwrap(), "ws-1").await;
    c.kill_ws(1);
    ids.extend(more.await.unwrap());

    // Everything still ends downloadable, exactly once.
    assert_all_downloadable(&c, &ids).await;
    let published = std::fs::read_dir(public_file(&c, "downloads"))
        .unwrap()
        .count();
    assert_eq!(published, N);

    // The ghost's leases were taken over; its late results are refused and change nothing.
    for job in &ghost_jobs {
        let lease = job["lease_id"].as_str().unwrap();
        let cert_id = job["certificate"]["cert_id"].as_str().unwrap();
        let before = lms.certificate(cert_id).await.unwrap().unwrap();
        assert!(job["attempt"].as_u64().unwrap() >= 1);
        let (du, vu) = (
            job["certificate"]["download_uuid"].as_str().unwrap(),
            job["certificate"]["verify_uuid"].as_str().unwrap(),
        );
        // Well-formed, on the job's own paths: refused only because the lease is lost.
        let fake = json!({"result": {
            "download_uuid": du, "verify_uuid": vu,
            "download_url": format!("https://evil.example/downloads/{du}/Certificate.pdf"),
            "verify_url": format!("https://evil.example/cert/{vu}/"),
            "signature_url": format!("https://evil.example/cert/{vu}/Certificate.pdf.sig"),
            "sha256": "0".repeat(64)}});
        for (path, body) in [
            (format!("/v1/leases/{lease}/complete"), fake.clone()),
            (format!("/v1/leases/{lease}/extend"), json!({})),
            (
                format!("/v1/leases/{lease}/fail"),
                json!({"error_reason": "late", "retryable": false}),
            ),
        ] {
            let r = http
                .post(op.url(&path))
                .bearer_auth(&ghost_token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 409, "{path}");
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["error"]["code"], "lease_lost");
        }
        let after = lms.certificate(cert_id).await.unwrap().unwrap();
        assert_eq!(after.state, CertState::Downloadable);
        assert_eq!(after.sha256, before.sha256);
        assert_eq!(after.download_url, before.download_url);
        assert!(after.attempts >= 2, "the job should have been leased again");
    }

    let s = op.status().await.unwrap().unwrap();
    assert_eq!(s.certificates["downloadable"], N as i64);
    assert_eq!(s.leased, 0);
    assert_eq!(s.queue_depth, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restart_mid_run_loses_nothing() {
    const N: usize = 200;
    let mut c = cluster(|s| {
        s.workservers = 2;
        s.lease_ttl_s = 3;
        s.heartbeat_interval_s = 1;
    })
    .await;
    let lms = c.lms().unwrap();
    let mut ids = Vec::new();
    for i in 0..N {
        let mut r = sample_request(i);
        r.username = Some(format!("rr{i:04}"));
        // Like any LMS: retry on 503 (Redis unavailable). A retry may find the first
        // attempt recorded after all (409: already generating): that is fine too.
        let mut retried = false;
        let id = loop {
            match lms.submit(&r).await.unwrap() {
                Ok(ok) => break ok.cert_id,
                Err(f) if f.status == 503 => {
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(f) if f.status == 409 && retried => {
                    break testamur_common::request::CertRequest::parse(r.clone())
                        .unwrap()
                        .cert_id()
                }
                Err(f) => panic!("submit refused: {f}"),
            }
        };
        ids.push(id);
        if i == N / 2 {
            // Redis goes away and comes back (clean shutdown: the append-only file is flushed).
            c.redis.restart_graceful().unwrap();
        }
    }
    assert_all_downloadable(&c, &ids).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cc_restart_mid_run_loses_nothing() {
    const N: usize = 150;
    let mut c = cluster(|s| {
        s.workservers = 2;
        s.lease_ttl_s = 5;
        s.heartbeat_interval_s = 1;
    })
    .await;
    let lms = c.lms().unwrap();
    let mut ids = Vec::new();
    for i in 0..N {
        let mut r = sample_request(i);
        r.username = Some(format!("cr{i:04}"));
        ids.push(lms.submit(&r).await.unwrap().expect("accepted").cert_id);
    }
    // The CC dies hard mid-run and comes back on the same address.
    c.kill_cc();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.start_cc().unwrap();
    c.wait_healthy(Duration::from_secs(30)).await.unwrap();
    assert_all_downloadable(&c, &ids).await;
    // The workservers are still registered and working.
    c.wait_workservers(2, Duration::from_secs(10))
        .await
        .unwrap();
    let mut r = sample_request(N + 1);
    r.username = Some("after-restart".into());
    let id = lms.submit(&r).await.unwrap().unwrap().cert_id;
    assert_eq!(
        lms.wait_final(id.as_str(), Duration::from_secs(30))
            .await
            .unwrap()
            .state,
        CertState::Downloadable
    );
}
