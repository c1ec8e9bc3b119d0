//! What an outsider, a rogue holder of cc_pass or a full Redis can do to the
//! cluster (issue 12; docs/SECURITY.md names the test of each defence).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testamur::cmd::demo::sample_request;
use testamur_common::state::CertState;

use crate::helpers::{
    assert_all_downloadable, cluster, dump_logs, freeze_holding_leases, lease_jobs,
    register_manual_ws, sample_requests, submit_all, TestCluster, BIN,
};

/// POST `path` on CC 1 with a bearer token and a JSON body; (status, body).
async fn post(c: &TestCluster, path: &str, token: &str, body: Value) -> (u16, Value) {
    let api = c.operator().unwrap();
    let r = api
        .http()
        .post(api.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A result for a leased job, published under `base` at the job's own paths.
fn result_for(job: &Value, base: &str) -> Value {
    let du = job["certificate"]["download_uuid"].as_str().unwrap();
    let vu = job["certificate"]["verify_uuid"].as_str().unwrap();
    json!({"result": {
        "download_uuid": du, "verify_uuid": vu,
        "download_url": format!("{base}downloads/{du}/Certificate.pdf"),
        "verify_url": format!("{base}cert/{vu}/"),
        "signature_url": format!("{base}cert/{vu}/Certificate.pdf.sig"),
        "sha256": "a".repeat(64)}})
}

/// Item 1 and 4: invented methods do not grow the metrics; every error is JSON.
#[tokio::test(flavor = "multi_thread")]
async fn invented_methods_do_not_grow_metrics_and_every_error_is_json() {
    let c = cluster(|s| s.workservers = 0).await;
    let op = c.operator().unwrap();
    for i in 0..20 {
        let method = format!("EVIL{i}{}", "X".repeat(2000));
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = op
            .http()
            .request(m, op.url("/v1/status"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
        assert!(r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
    }
    let text = op
        .http()
        .get(op.url("/metrics"))
        .bearer_auth(op.key())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("EVIL"), "an invented method became a label");
    assert!(text.contains("method=\"other\""), "{text}");
    assert!(text.len() < 200_000, "metrics grew to {} bytes", text.len());

    // Bad percent-escapes in a path and bad query strings: JSON, not text/plain.
    let lms = c.lms().unwrap();
    for (url, key) in [
        (lms.url("/verify/%FF"), None),
        (lms.url("/v1/certificates/%FF%FE"), Some(lms.key())),
        (lms.url("/v1/certificates?limit=many"), Some(lms.key())),
    ] {
        let mut req = lms.http().get(&url);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_client_error(), "{url}: {}", r.status());
        let ctype = r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ctype.starts_with("application/json"), "{url}: {ctype}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{body}"
        );
    }
}

/// Item 3: a registration name with newlines cannot forge log lines.
#[tokio::test(flavor = "multi_thread")]
async fn a_registration_name_cannot_forge_log_lines() {
    let c = cluster(|s| s.workservers = 0).await;
    let op = c.operator().unwrap();
    let r = op
        .http()
        .post(op.url("/v1/workservers/register"))
        .json(&json!({"name": "x\nFORGED INFO all good\r\nFORGED2", "cc_pass": "wrong-pass-0123456789", "capacity": 1, "version": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(c.log_path("cc.log")).unwrap();
    assert!(log.contains("registration with a wrong cc_pass"), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a forged line:\n{log}"
    );
}

/// Items 5 and 6: a workserver publishes where the job says, and never holds
/// more leases than its capacity.
#[tokio::test(flavor = "multi_thread")]
async fn complete_is_pinned_to_the_jobs_uuids_and_leases_to_capacity() {
    let c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            lms.submit(&sample_request(i))
                .await
                .unwrap()
                .unwrap()
                .cert_id,
        );
    }
    let (_, token) = register_manual_ws(&c, "manual", 2).await;
    let jobs = lease_jobs(&c, &token, 256, 2000).await;
    assert_eq!(jobs.len(), 2, "capacity 2, asked for 256");
    assert!(
        lease_jobs(&c, &token, 256, 0).await.is_empty(),
        "already at capacity"
    );

    let job = &jobs[0];
    let lease = job["lease_id"].as_str().unwrap();
    let cert_id = job["certificate"]["cert_id"].as_str().unwrap();
    let base = "https://certs.example.org/";
    let path = format!("/v1/leases/{lease}/complete");
    let good = result_for(job, base);

    // Other uuids (with URLs of those): refused, nothing changes.
    let mut other = result_for(&jobs[1], base);
    other["result"]["sha256"] = json!("b".repeat(64));
    let (st, body) = post(&c, &path, &token, other).await;
    assert_eq!(st, 422, "{body}");
    assert_eq!(body["error"]["field"], "result.download_uuid");
    // The job's uuids with a URL elsewhere, a javascript: URL, or a page of another cert.
    for (field, url) in [
        ("download_url", "https://evil.example/x.pdf".to_owned()),
        (
            "download_url",
            format!(
                "javascript:alert(1)//downloads/{}/Certificate.pdf",
                job["certificate"]["download_uuid"].as_str().unwrap()
            ),
        ),
        (
            "verify_url",
            format!(
                "{base}cert/{}/",
                jobs[1]["certificate"]["verify_uuid"].as_str().unwrap()
            ),
        ),
        ("signature_url", format!("{base}elsewhere.sig")),
    ] {
        let mut bad = good.clone();
        bad["result"][field] = json!(url);
        let (st, body) = post(&c, &path, &token, bad).await;
        assert_eq!(st, 422, "{field}={url}: {body}");
        assert_eq!(body["error"]["field"], format!("result.{field}"), "{body}");
    }
    let cert = lms.certificate(cert_id).await.unwrap().unwrap();
    assert_eq!(cert.state, CertState::Generating);
    assert!(cert.download_url.is_none());

    let (st, body) = post(&c, &path, &token, good.clone()).await;
    assert_eq!(st, 200, "{body}");
    let cert = lms.certificate(cert_id).await.unwrap().unwrap();
    assert_eq!(cert.state, CertState::Downloadable);
    assert_eq!(
        cert.download_url.as_ref(),
        good["result"]["download_url"]
            .as_str()
            .map(str::to_owned)
            .as_ref()
    );
    // One lease freed: one more job, never more.
    assert_eq!(lease_jobs(&c, &token, 256, 2000).await.len(), 1);
    assert!(lease_jobs(&c, &token, 256, 0).await.is_empty());
}

/// Item 7: a job that takes its workserver down (abort, OOM) is retried only
/// max_attempts times: every registration that replaces a live one counts.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_kills_its_workserver_ends_in_error_after_max_attempts() {
    let c = cluster(|s| {
        s.workservers = 0;
        s.max_attempts = 3;
    })
    .await;
    let lms = c.lms().unwrap();
    let id = lms
        .submit(&sample_request(7))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    for attempt in 1..=3u64 {
        // The "restarted" workserver registers again and leases the same job.
        let (_, token) = register_manual_ws(&c, "crashy", 1).await;
        let jobs = lease_jobs(&c, &token, 1, 3000).await;
        assert_eq!(jobs.len(), 1, "attempt {attempt}");
        assert_eq!(jobs[0]["attempt"], attempt);
    }
    // The fourth start of the process finds the job's attempts used up.
    register_manual_ws(&c, "crashy", 1).await;
    let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
    assert_eq!(cert.state, CertState::Error, "{cert:?}");
    assert_eq!(cert.error_code.as_deref(), Some("workserver_lost"));
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    assert!(
        st.recent_errors
            .iter()
            .any(|e| e.reason.contains("registered again")),
        "{:?}",
        st.recent_errors
    );
}

/// Item 7: two live workservers configured with one name do not knock each other
/// out in silence: the one that was replaced is refused, exits and says why, and
/// status shows the conflict.
#[tokio::test(flavor = "multi_thread")]
async fn two_workservers_with_one_name_are_detected_and_shown() {
    let mut c = cluster(|s| {
        s.workservers = 1;
        s.heartbeat_interval_s = 1;
    })
    .await;
    let log = std::fs::File::create(c.dir().join("logs/ws-1-twin.log")).unwrap();
    let mut twin = Command::new(BIN)
        .args(["ws", "--config", "ws-1.conf"])
        .current_dir(c.dir())
        .env("NO_COLOR", "1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let exited = loop {
        if let Some(st) = c.ws_exit_status(1) {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            dump_logs(&c.dir().join("logs"))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!exited.success());
    let first = std::fs::read_to_string(c.log_path("ws-1.log")).unwrap();
    assert!(
        first.contains("another workserver") && first.contains("name"),
        "{first}"
    );
    let s = c.operator().unwrap().status().await.unwrap().unwrap();
    let ws = s.workservers.iter().find(|w| w.name == "ws-1").unwrap();
    assert!(
        ws.name_conflict
            .as_deref()
            .is_some_and(|m| m.contains("two workservers")),
        "{ws:?}"
    );
    // The twin carries on.
    let lms = c.lms().unwrap();
    let id = lms
        .submit(&sample_request(3))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    let cert = lms
        .wait_final(id.as_str(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cert.state, CertState::Downloadable);
    assert!(
        twin.try_wait().unwrap().is_none(),
        "the twin should still run"
    );
    let _ = twin.kill();
    let _ = twin.wait();
}

/// Item 2: 500 connections from one address trickling a body: the per-address
/// cap refuses the excess, the rest are closed at the request deadline, and
/// meanwhile a workserver and an LMS (another address) are served promptly.
#[tokio::test(flavor = "multi_thread")]
async fn slow_bodies_are_cut_off_and_capped_while_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = cluster(|s| {
        s.workservers = 1;
        s.cc_extra = "[limits]\nmax_connections_per_ip = 100\nrequest_timeout_s = 3\n".into();
    })
    .await;
    let port: u16 = c.info.cc_url.rsplit(':').next().unwrap().parse().unwrap();
    let tls = std::sync::Arc::new(testamur_common::tls::client_config(&c.info.ca_cert).unwrap());
    let started = Instant::now();
    let mut attackers = Vec::new();
    for _ in 0..500 {
        let tls = tls.clone();
        attackers.push(tokio::spawn(async move {
            // From 127.0.0.2: one address, not the one the LMS and WS use.
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            let tcp = match sock.connect(([127, 0, 0, 1], port).into()).await {
                Ok(t) => t,
                Err(_) => return (false, Duration::ZERO),
            };
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let connector = tokio_rustls::TlsConnector::from(tls);
            let stream = match tokio::time::timeout(Duration::from_secs(15), connector.connect(name, tcp)).await {
                Ok(Ok(s)) => s,
                _ => return (false, Duration::ZERO),
            };
            let opened = Instant::now();
            let (mut rd, mut wr) = tokio::io::split(stream);
            let head = "POST /v1/workservers/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
            if wr.write_all(head.as_bytes()).await.is_err() {
                return (true, opened.elapsed());
            }
            let reader = tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = rd.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
            let limit = opened + Duration::from_secs(20);
            while !reader.is_finished() && Instant::now() < limit {
                if wr.write_all(b" ").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
            (true, opened.elapsed())
        }));
    }
    // Meanwhile the LMS and the workserver get through.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lms = c.lms().unwrap();
    let t = Instant::now();
    let id = lms
        .submit(&sample_request(1))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    let cert = lms
        .wait_final(id.as_str(), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(cert.state, CertState::Downloadable);
    let served_in = t.elapsed();
    assert!(
        served_in < Duration::from_secs(5),
        "the LMS and WS waited {served_in:?}"
    );

    let mut open = 0;
    for a in attackers {
        let (connected, held) = a.await.unwrap();
        if connected {
            open += 1;
            assert!(
                held < Duration::from_secs(8),
                "a slow connection was held {held:?}"
            );
        }
    }
    assert!(
        open <= 100,
        "{open} connections from one address got through the cap of 100"
    );
    assert!(open >= 50, "only {open} connections were served at all");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// Item 10: a Redis out of memory answers 503 with Retry-After, never 500, and
/// the CC recovers when memory is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_redis_answers_503_and_recovers() {
    let c = cluster(|s| s.workservers = 0).await;
    let (_, token) = register_manual_ws(&c, "manual", 1).await;
    let lms = c.lms().unwrap();
    let queued = lms
        .submit(&sample_request(9))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    c.redis.cli(&["CONFIG", "SET", "maxmemory", "1"]).unwrap();
    let r = lms
        .http()
        .post(lms.url("/v1/certificates"))
        .bearer_auth(lms.key())
        .json(&sample_request(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key(reqwest::header::RETRY_AFTER));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "dependency_unavailable");
    // Leasing starts by removing from the queue, which Redis allows when full:
    // served or 503, never 500. Reads are served.
    let (st, body) = post(
        &c,
        "/v1/leases",
        &token,
        json!({"max_jobs": 1, "wait_ms": 0}),
    )
    .await;
    assert!(st == 200 || st == 503, "{st} {body}");
    let leased_while_full = st == 200 && body["jobs"].as_array().is_some_and(|j| j.len() == 1);
    assert!(c.operator().unwrap().status().await.unwrap().is_ok());
    let log = std::fs::read_to_string(c.log_path("cc.log")).unwrap();
    assert!(
        log.contains("maxmemory"),
        "the log should say what to do:\n{log}"
    );
    c.redis.cli(&["CONFIG", "SET", "maxmemory", "0"]).unwrap();
    let accepted = lms.submit(&sample_request(1)).await.unwrap();
    assert!(accepted.is_ok(), "{accepted:?}");
    if !leased_while_full {
        let jobs = lease_jobs(&c, &token, 1, 2000).await;
        assert_eq!(jobs[0]["certificate"]["cert_id"], queued.as_str());
    }
}

/// Item 23: a lease whose answer never reached the workserver is back in the
/// queue at its next heartbeat (after a short grace), with no attempt charged.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_the_workserver_never_received_returns_at_its_heartbeat() {
    let c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    let id = lms
        .submit(&sample_request(2))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    let (ws_id, token) = register_manual_ws(&c, "manual", 1).await;
    let jobs = lease_jobs(&c, &token, 1, 3000).await;
    assert_eq!(jobs.len(), 1);
    let hb = format!("/v1/workservers/{ws_id}/heartbeat");
    // Within the grace (the answer may still be on its way): kept.
    let (st, _) = post(&c, &hb, &token, json!({"jobs": []})).await;
    assert_eq!(st, 200);
    let s = c.operator().unwrap().status().await.unwrap().unwrap();
    assert_eq!(s.leased, 1);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (st, _) = post(&c, &hb, &token, json!({"jobs": []})).await;
    assert_eq!(st, 200);
    let s = c.operator().unwrap().status().await.unwrap().unwrap();
    assert_eq!((s.leased, s.queue_depth), (0, 1));
    let again = lease_jobs(&c, &token, 1, 3000).await;
    assert_eq!(
        again[0]["attempt"], 1,
        "no attempt is charged for a lost answer"
    );
    let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
    assert!(cert.history.unwrap().iter().any(|h| h
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("never reached"))));
    // A job the workserver does hold is kept.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let held = again[0]["job_id"].as_str().unwrap();
    let (st, _) = post(&c, &hb, &token, json!({"jobs": [held]})).await;
    assert_eq!(st, 200);
    assert_eq!(
        c.operator()
            .unwrap()
            .status()
            .await
            .unwrap()
            .unwrap()
            .leased,
        1
    );
}

/// Fault tolerance: a workserver SIGKILLed while holding leases gets its jobs
/// back in the queue within 10 s with the default heartbeat (2 s) and lease TTL
/// (60 s), instead of waiting for the leases to run out.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_workservers_jobs_run_elsewhere_within_10_s() {
    const N: usize = 300;
    let mut c = cluster(|s| {
        s.workservers = 2;
        s.ws_capacity = 4;
        s.heartbeat_interval_s = 2;
        s.lease_ttl_s = 60;
    })
    .await;
    let lms = c.lms().unwrap();
    let op = c.operator().unwrap();
    let ids = submit_all(&lms, &sample_requests("kill", N)).await;
    freeze_holding_leases(&c, c.ws_pid(1).unwrap(), "ws-1").await;
    c.kill_ws(1);
    let killed = Instant::now();
    loop {
        let s = op.status().await.unwrap().unwrap();
        let held = s
            .workservers
            .iter()
            .find(|w| w.name == "ws-1")
            .map(|w| w.in_flight)
            .unwrap_or(0);
        if held == 0 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "ws-1's leases were still held {:?} after it died",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "RELIABILITY: a killed workserver's jobs were back in the queue {:?} after SIGKILL",
        killed.elapsed()
    );
    assert_all_downloadable(&c, &ids).await;
}

/// Item 9: a CC whose clock is two hours ahead does not expire the live leases
/// of the others (lease expiry is on Redis's clock).
#[tokio::test(flavor = "multi_thread")]
async fn a_cc_with_a_skewed_clock_does_not_expire_live_leases() {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        std::path::Path::new(lib).exists(),
        "libfaketime is missing: apt-get install faketime (scripts/setup.sh --test does)"
    );
    let c = cluster(|s| {
        s.workservers = 0;
        s.ccs = 2;
        s.lease_ttl_s = 30;
        for (k, v) in [
            ("LD_PRELOAD", lib),
            ("FAKETIME", "+2h"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ] {
            s.cc_env.push((2, k.into(), v.into()));
        }
    })
    .await;
    // CC 2 really runs two hours ahead.
    let skewed = c.lms_at(2).unwrap();
    let date = skewed
        .http()
        .get(skewed.url("/healthz"))
        .send()
        .await
        .unwrap()
        .headers()
        .get(reqwest::header::DATE)
        .map(|d| d.to_str().unwrap().to_owned());
    let lms = c.lms().unwrap();
    lms.submit(&sample_request(4)).await.unwrap().unwrap();
    let (_, token) = register_manual_ws(&c, "manual", 1).await;
    let jobs = lease_jobs(&c, &token, 1, 3000).await;
    assert_eq!(jobs.len(), 1);
    // CC 2's reaper runs every second; give it a few rounds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let lease = jobs[0]["lease_id"].as_str().unwrap();
    let (st, body) = post(&c, &format!("/v1/leases/{lease}/extend"), &token, json!({})).await;
    assert_eq!(
        st, 200,
        "the skewed CC ({date:?}) expired a live lease: {body}"
    );
}

/// Item 13: a batch that failed half-way (Redis refused the second chunk: 503)
/// and is retried with the same Idempotency-Key never queues again what the
/// first attempt queued, even after those jobs have finished.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_retried_after_a_503_half_way_queues_nothing_twice() {
    const N: usize = 1000;
    let c = cluster(|s| {
        s.workservers = 1;
        s.ws_capacity = 4;
    })
    .await;
    let lms = c.lms().unwrap();
    let op = c.operator().unwrap();
    let reqs = sample_requests("half", N);
    let ids = submit_all(&lms, &reqs).await;
    assert_all_downloadable(&c, &ids).await;
    let regens: Vec<_> = reqs
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.action = Some("regen".into());
            r
        })
        .collect();
    let requested = |cert: &testamur_common::wire::CertificateView| {
        cert.history
            .as_ref()
            .unwrap()
            .iter()
            .filter(|h| h.detail.as_deref() == Some("regen requested"))
            .count()
    };
    let wait_idle = || async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = op.status().await.unwrap().unwrap();
            if s.queue_depth == 0 && s.leased == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the queue did not drain");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    // Room in Redis for the first chunk of 500 (its arguments and its writes),
    // not for the second: grow the room until the first attempt fails half-way.
    let mut queued_first = 0;
    for room in (1..=12).map(|k| k * 300_000u64) {
        let info = c.redis.cli(&["INFO", "memory"]).unwrap();
        let used: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        c.redis
            .cli(&["CONFIG", "SET", "maxmemory", &(used + room).to_string()])
            .unwrap();
        let first = lms
            .submit_batch_with_key(&regens, Some("half-way"))
            .await
            .unwrap();
        c.redis.cli(&["CONFIG", "SET", "maxmemory", "0"]).unwrap();
        let failure = first.expect_err("the whole batch fitted: no failure half-way");
        assert_eq!(failure.status, 503, "{failure:?}");
        for id in &ids {
            queued_first += requested(&lms.certificate(id.as_str()).await.unwrap().unwrap());
        }
        if queued_first > 0 {
            break;
        }
    }
    assert!(
        queued_first > 0 && queued_first < N,
        "the first attempt queued {queued_first}"
    );
    // What the first attempt queued has finished by the time the client retries.
    wait_idle().await;
    let again = lms
        .submit_batch_with_key(&regens, Some("half-way"))
        .await
        .unwrap()
        .unwrap();
    assert!(again
        .results
        .iter()
        .all(|r| matches!(r, testamur_common::wire::BatchResult::Accepted(_))));
    wait_idle().await;
    for id in &ids {
        let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
        assert_eq!(
            requested(&cert),
            1,
            "{id} was regenerated {} times",
            requested(&cert)
        );
        assert_eq!(cert.state, CertState::Downloadable);
    }
}

/// Item 11: a certificate's history is capped (its first entry and the newest
/// 199), however often its job fails and is retried.
#[tokio::test(flavor = "multi_thread")]
async fn certificate_history_is_capped() {
    let c = cluster(|s| {
        s.workservers = 0;
        s.max_attempts = 1000;
    })
    .await;
    let lms = c.lms().unwrap();
    let id = lms
        .submit(&sample_request(5))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    let (_, token) = register_manual_ws(&c, "flaky", 1).await;
    for i in 0..230 {
        let jobs = lease_jobs(&c, &token, 1, 2000).await;
        let lease = jobs[0]["lease_id"].as_str().unwrap();
        let (st, _) = post(
            &c,
            &format!("/v1/leases/{lease}/fail"),
            &token,
            json!({"error_reason": format!("flaky {i}"), "retryable": true}),
        )
        .await;
        assert_eq!(st, 200);
    }
    let hist = lms
        .certificate(id.as_str())
        .await
        .unwrap()
        .unwrap()
        .history
        .unwrap();
    assert_eq!(hist.len(), 200);
    assert_eq!(hist[0].detail.as_deref(), Some("add requested"));
    assert!(
        hist[199]
            .detail
            .as_deref()
            .unwrap()
            .contains("attempt 230 failed"),
        "{:?}",
        hist[199]
    );
}
