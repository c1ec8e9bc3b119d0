//! Operating a cluster: drain, /metrics (parsed and checked against what the test
//! did), the dashboard's sign-in and escaping over HTTP, and two CCs on one Redis
//! with one of them killed mid-run.

use std::collections::HashMap;
use std::time::Duration;

use testamur::cmd::demo::sample_request;
use testamur_common::ids::CertId;
use testamur_common::wire::SubmitRequest;

use crate::helpers::{
    assert_all_downloadable, cluster, dump_logs, lease_jobs, register_manual_ws, BIN,
};

fn request(i: usize) -> SubmitRequest {
    let mut r = sample_request(i);
    r.username = Some(format!("ops{i:05}"));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_workserver_finishes_its_jobs_and_leaves() {
    let mut c = cluster(|s| s.ws_capacity = 2).await;
    let lms = c.lms().unwrap();
    let reqs: Vec<SubmitRequest> = (0..200).map(request).collect();
    let resp = lms.submit_batch(&reqs).await.unwrap().unwrap();
    let ids: Vec<CertId> = resp
        .results
        .iter()
        .map(|r| match r {
            testamur_common::wire::BatchResult::Accepted(a) => a.cert_id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    // Let ws-1 get going, then drain it with the CLI and wait for it to leave.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = std::process::Command::new(BIN)
        .args(["drain", "ws-1", "--wait", "--cluster"])
        .arg(c.dir().join("cluster.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        dump_logs(&c.dir().join("logs"))
    );
    assert!(
        stdout.contains("ws-1") && stdout.contains("deregistered"),
        "{stdout}"
    );
    // The process ends by itself, successfully.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = c.ws_exit_status(1) {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "ws-1 did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "ws-1 exited with {status}");
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    assert_eq!(
        st.workservers
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>(),
        ["ws-2"]
    );
    // ws-2 does the rest; every certificate once.
    assert_all_downloadable(&c, &ids).await;
    let log = std::fs::read_to_string(c.log_path("ws-1.log")).unwrap();
    assert!(log.contains("asked this workserver to drain"), "{log}");
    // Unknown names and ids are refused clearly.
    let out = std::process::Command::new(BIN)
        .args(["drain", "ws-9", "--cluster"])
        .arg(c.dir().join("cluster.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no registered workserver is called ws-9")
    );
    let op = c.operator().unwrap();
    let r = op
        .http()
        .post(op.url("/v1/workservers/0123456789abcdef0123456789abcdef/drain"))
        .bearer_auth(op.key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Draining is the operator's: an lms key gets 403.
    let r = lms
        .http()
        .post(lms.url(&format!("/v1/workservers/{}/drain", st.workservers[0].id)))
        .bearer_auth(lms.key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// Checks the text exposition line by line (OpenMetrics 1.0 / Prometheus text):
/// comments are HELP, TYPE, UNIT or the final EOF; every sample is
/// `name{label="value",...} value` with a declared family and a number.
fn check_exposition(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    let mut families: Vec<String> = Vec::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, ch)| {
                ch.is_ascii_alphabetic() || ch == '_' || ch == ':' || (i > 0 && ch.is_ascii_digit())
            })
    };
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or("");
            assert!(
                ["HELP", "TYPE", "UNIT"].contains(&kind),
                "bad comment: {line}"
            );
            assert!(name_ok(name), "bad name: {line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or("");
                assert!(
                    [
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "stateset",
                        "unknown"
                    ]
                    .contains(&t),
                    "bad type: {line}"
                );
                families.push(name.to_owned());
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad value: {line}"
        );
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, Some(l)),
            None => (series, None),
        };
        assert!(name_ok(name), "bad sample name: {line}");
        assert!(
            families.iter().any(|f| name == f
                || name
                    .strip_prefix(f.as_str())
                    .is_some_and(
                        |s| ["_total", "_bucket", "_sum", "_count", "_created"].contains(&s)
                    )),
            "sample of an undeclared family: {line}"
        );
        if let Some(l) = labels {
            let l = l
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            // label="value" pairs; values may hold escaped quotes.
            let mut rest = l;
            while !rest.is_empty() {
                let (k, v) = rest
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label: {line}"));
                assert!(name_ok(k), "bad label name: {line}");
                let mut end = None;
                let mut escaped = false;
                for (i, ch) in v.char_indices() {
                    match (ch, escaped) {
                        ('\\', false) => escaped = true,
                        ('"', false) => {
                            end = Some(i);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let end = end.unwrap_or_else(|| panic!("unterminated label value: {line}"));
                rest = &v[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_count_what_happened() {
    let c = cluster(|_| {}).await;
    let lms = c.lms().unwrap();
    let op = c.operator().unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(lms.submit(&request(i)).await.unwrap().unwrap().cert_id);
    }
    // One refused request (a second add of the same learner).
    assert_eq!(
        lms.submit(&request(0)).await.unwrap().unwrap_err().status,
        409
    );
    assert_all_downloadable(&c, &ids).await;
    let get = |key: &str| {
        op.http()
            .get(op.url("/metrics"))
            .bearer_auth(key.to_owned())
            .send()
    };
    assert_eq!(get(lms.key()).await.unwrap().status(), 403);
    assert_eq!(
        op.http()
            .get(op.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let resp = get(op.key()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    check_exposition(&text);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        value("testamur_jobs_total", &[("event", "enqueued")]),
        5.0,
        "{text}"
    );
    assert_eq!(value("testamur_jobs_total", &[("event", "completed")]), 5.0);
    assert!(value("testamur_jobs_total", &[("event", "leased")]) >= 5.0);
    assert_eq!(
        value(
            "testamur_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/v1/certificates"),
                ("status", "202")
            ]
        ),
        5.0
    );
    assert_eq!(
        value(
            "testamur_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/v1/certificates"),
                ("status", "409")
            ]
        ),
        1.0
    );
    assert_eq!(
        value("testamur_certificates", &[("state", "downloadable")]),
        5.0
    );
    assert_eq!(value("testamur_queue_depth", &[]), 0.0);
    assert_eq!(value("testamur_workservers_alive", &[]), 2.0);
    assert_eq!(value("testamur_callback_dead_letters", &[]), 0.0);
    // Render and sign times as reported by the workservers: one per certificate.
    assert_eq!(value("testamur_render_seconds_count", &[]), 5.0);
    assert_eq!(
        value("testamur_render_seconds_count", &[("workserver", "ws-1")])
            + value("testamur_render_seconds_count", &[("workserver", "ws-2")]),
        5.0,
        "labelled by workserver name"
    );
    assert_eq!(value("testamur_sign_seconds_count", &[]), 5.0);
    assert!(value("testamur_render_seconds_sum", &[]) > 0.0);
    for name in [
        "testamur_http_request_duration_seconds",
        "testamur_redis_errors",
        "testamur_callbacks",
        "testamur_oldest_waiting_job_age_seconds",
        "testamur_leased_jobs",
        "testamur_callbacks_pending",
        "testamur_store_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }
    // Every metric is documented for operators.
    let ops = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/OPERATIONS.md"))
        .unwrap();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = line.split(' ').next().unwrap();
        assert!(
            ops.contains(name),
            "docs/OPERATIONS.md does not document {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_signs_in_with_a_form_and_escapes_what_it_shows() {
    // No workserver process: the hand-registered one must get the job.
    let c = cluster(|s| s.workservers = 0).await;
    let op = c.operator().unwrap();
    let lms = c.lms().unwrap();
    // A failure whose reason is markup, reported by a hand-registered workserver.
    let (_ws, token) = register_manual_ws(&c, "manual-1", 1).await;
    lms.submit(&request(7)).await.unwrap().unwrap();
    let job = lease_jobs(&c, &token, 1, 5000)
        .await
        .into_iter()
        .next()
        .expect("the queued job");
    let evil = "<script>alert('owned')</script><img src=x onerror=alert(1)>";
    let r = op
        .http()
        .post(op.url(&format!(
            "/v1/leases/{}/fail",
            job["lease_id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .json(&serde_json::json!({"error_reason": evil, "retryable": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(testamur_common::tls::client_config(&c.info.ca_cert).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Not signed in: the sign-in form.
    let r = http.get(op.url("/dashboard")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<form method=\"post\" action=\"/dashboard/login\""),
        "{body}"
    );
    // A wrong key, and an lms key: refused.
    for key in ["wrong-key-0123456789", lms.key()] {
        let r = http
            .post(op.url("/dashboard/login"))
            .form(&[("key", key)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().get("set-cookie").is_none());
    }
    // The operator key: a secure, HttpOnly session cookie and back to the page.
    let r = http
        .post(op.url("/dashboard/login"))
        .form(&[("key", op.key())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/dashboard");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in [
        "tm_session=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains(op.key()), "the cookie is not the key");
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = |s: String| http.get(op.url("/dashboard")).header("cookie", s).send();
    let r = page(session.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("data-ws=\"manual-1\""), "{html}");
    assert!(html.contains("id=\"health\">Healthy<"), "{html}");
    assert!(html.contains("<meta http-equiv=\"refresh\""));
    assert!(html.contains("<svg id=\"throughput-chart\""));
    assert!(
        html.contains(
            "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
        ),
        "the reason is shown, escaped:\n{html}"
    );
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing loaded from elsewhere"
    );
    // The session works on the bearer-less page only while it lives: sign out.
    let r = http
        .post(op.url("/dashboard/logout"))
        .header("cookie", session.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(page(session).await.unwrap().status(), 401);
    // Scripts may use the operator key directly.
    let r = http
        .get(op.url("/dashboard"))
        .bearer_auth(op.key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ccs_on_one_redis_lose_nothing_when_one_is_killed() {
    let mut c = cluster(|s| {
        s.ccs = 2;
        s.workservers = 2;
        s.ws_capacity = 4;
        s.lease_ttl_s = 4;
        s.heartbeat_interval_s = 1;
    })
    .await;
    // Half the requests through each CC.
    let reqs: Vec<SubmitRequest> = (0..1000).map(request).collect();
    let mut ids = Vec::new();
    for (k, chunk) in reqs.chunks(500).enumerate() {
        let lms = c.lms_at(k + 1).unwrap();
        let resp = lms.submit_batch(chunk).await.unwrap().unwrap();
        for r in resp.results {
            match r {
                testamur_common::wire::BatchResult::Accepted(a) => ids.push(a.cert_id),
                other => panic!("{other:?}"),
            }
        }
    }
    // Any CC answers for any certificate.
    let other = c
        .lms_at(2)
        .unwrap()
        .certificate(ids[0].as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.cert_id, ids[0]);
    // Kill CC 2 (ws-2's CC) while work is in flight; ws-2's leases run out and
    // go to ws-1 through CC 1.
    let lms1 = c.lms().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = c.operator().unwrap().status().await.unwrap().unwrap();
        if s.certificates["downloadable"] >= 150 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress\n{}",
            dump_logs(&c.dir().join("logs"))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.kill_cc_n(2);
    assert_all_downloadable(&c, &ids).await;
    let s = lms1
        .list(None, Some("downloadable"), None, Some(1000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.items.len(), 1000);
    // Exactly one completion recorded per certificate, across both CCs.
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    let completed: u64 = st.workservers.iter().map(|w| w.completed).sum();
    let by_name: HashMap<&str, u64> = st
        .workservers
        .iter()
        .map(|w| (w.name.as_str(), w.completed))
        .collect();
    assert!(completed >= 1000, "{by_name:?}");
    assert_eq!(st.certificates["downloadable"], 1000);
    assert_eq!(st.queue_depth + st.leased, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ccs_deliver_each_callback_exactly_once() {
    let c = cluster(|s| {
        s.ccs = 2;
        s.cc_extra = crate::callbacks::callbacks_conf(100, 5);
    })
    .await;
    let rx = crate::callbacks::Receiver::start(&c, 0).await;
    let reqs: Vec<SubmitRequest> = (0..200)
        .map(|i| {
            let mut r = request(i);
            r.callback_url = Some(rx.url.clone());
            r
        })
        .collect();
    let mut ids = Vec::new();
    for (k, chunk) in reqs.chunks(100).enumerate() {
        let resp = c
            .lms_at(k + 1)
            .unwrap()
            .submit_batch(chunk)
            .await
            .unwrap()
            .unwrap();
        for r in resp.results {
            match r {
                testamur_common::wire::BatchResult::Accepted(a) => ids.push(a.cert_id),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_all_downloadable(&c, &ids).await;
    rx.wait_for(&c, "200 accepted", |d| {
        d.iter().filter(|d| d.answered == 200).count() >= 200
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for d in rx.accepted() {
        *per_id.entry(d.callback_id.clone()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 200);
    assert!(
        per_id.values().all(|n| *n == 1),
        "a callback was delivered twice: {per_id:?}"
    );
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    assert_eq!((st.callbacks_pending, st.dead_letters), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_cc_answers_in_flight_requests_then_exits() {
    let mut c = cluster(|s| s.workservers = 0).await;
    let (_ws, token) = register_manual_ws(&c, "manual-poll", 1).await;
    // A long poll in flight (up to 20 s) when the CC is told to stop.
    let api = c.operator().unwrap();
    let poll = {
        let (api, token) = (api.clone(), token.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = api
                .http()
                .post(api.url("/v1/leases"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"max_jobs": 1, "wait_ms": 20000}))
                .send()
                .await;
            (r.map(|r| r.status().as_u16()), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = std::time::Instant::now();
    let status = c.terminate_cc_n(1).expect("the CC ran");
    assert!(status.success(), "the CC exited with {status}");
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "took {:?}",
        stopped.elapsed()
    );
    // The in-flight request got its answer (an empty lease), early.
    let (answer, took) = poll.await.unwrap();
    assert_eq!(answer.unwrap(), 200);
    assert!(
        took < Duration::from_secs(15),
        "the long poll was not cut short: {took:?}"
    );
    // And nothing is listening any more.
    assert!(api.http().get(api.url("/healthz")).send().await.is_err());
    let log = std::fs::read_to_string(c.log_path("cc.log")).unwrap();
    assert!(log.contains("no longer accepting connections"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_job_lease_and_cert_ids_and_no_secret() {
    let c = cluster(|s| {
        s.log_json = true;
        s.log_level = "info".into();
    })
    .await;
    let lms = c.lms().unwrap();
    let ids = vec![lms.submit(&request(1)).await.unwrap().unwrap().cert_id];
    assert_all_downloadable(&c, &ids).await;
    let secrets = [
        c.info.cc_pass.as_str(),
        c.info.lms_api_key.as_str(),
        c.info.operator_api_key.as_str(),
        c.info.callback_secret.as_str(),
    ];
    let mut job_lines = 0;
    for log in ["cc.log", "ws-1.log", "ws-2.log"] {
        let text = std::fs::read_to_string(c.log_path(log)).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{log}: not a JSON line ({e}): {line}"));
            for s in secrets {
                assert!(!line.contains(s), "{log} shows a secret: {line}");
            }
            // Lines in a job's span name the job, its lease and its certificate.
            let span = &v["span"];
            if span["name"] == "job" {
                job_lines += 1;
                for k in ["job_id", "lease_id", "cert_id"] {
                    assert!(span[k].is_string(), "{log}: no {k}: {line}");
                }
            }
        }
    }
    assert!(
        job_lines > 0,
        "no line about the job in the workserver logs"
    );
    let cc = std::fs::read_to_string(c.log_path("cc.log")).unwrap();
    let completed = cc
        .lines()
        .find(|l| l.contains("job completed"))
        .expect("the CC logs the completion");
    for k in ["job_id", "lease_id", "ws_id"] {
        assert!(completed.contains(k), "{completed}");
    }
}
