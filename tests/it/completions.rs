//! `POST /v1/leases/complete` (several completions per call): each is checked
//! and fenced as the single endpoint does and answered on its own (a malformed
//! one refuses the call); only a lease's own workserver completes it; the list
//! is bounded.

use axum::response::IntoResponse;
use serde_json::{json, Value};
use testamur::cmd::demo::sample_request;
use testamur_common::state::CertState;

use crate::helpers::{
    assert_all_downloadable, cluster, lease_jobs, register_manual_ws, sample_requests, submit_all,
    TestCluster,
};

async fn post(c: &TestCluster, token: Option<&str>, body: Value) -> (u16, Value) {
    let api = c.operator().unwrap();
    let mut r = api.http().post(api.url("/v1/leases/complete")).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A completion of `job` (as leased) publishing under its own uuids.
fn completion(job: &Value) -> Value {
    let base = "https://certs.example.org/";
    let du = job["certificate"]["download_uuid"].as_str().unwrap();
    let vu = job["certificate"]["verify_uuid"].as_str().unwrap();
    json!({"lease_id": job["lease_id"], "result": {
        "download_uuid": du, "verify_uuid": vu,
        "download_url": format!("{base}downloads/{du}/Certificate.pdf"),
        "verify_url": format!("{base}cert/{vu}/"),
        "signature_url": format!("{base}cert/{vu}/Certificate.pdf.sig"),
        "sha256": "a".repeat(64)}})
}

async fn state(c: &TestCluster, job: &Value) -> CertState {
    let id = job["certificate"]["cert_id"].as_str().unwrap();
    c.lms()
        .unwrap()
        .certificate(id)
        .await
        .unwrap()
        .unwrap()
        .state
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_completions_are_fenced_one_by_one_and_bounded() {
    let c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    for i in 0..4 {
        lms.submit(&sample_request(i)).await.unwrap().unwrap();
    }
    let (_, a) = register_manual_ws(&c, "ws-a", 3).await;
    let (_, b) = register_manual_ws(&c, "ws-b", 1).await;
    let a_jobs = lease_jobs(&c, &a, 3, 2000).await;
    let b_jobs = lease_jobs(&c, &b, 1, 2000).await;
    assert_eq!((a_jobs.len(), b_jobs.len()), (3, 1));

    // B completes A's lease and its own in one call: A's is refused as lost
    // (nothing changes), B's own is recorded.
    let (st, body) = post(
        &c,
        Some(&b),
        json!({"completions": [completion(&a_jobs[0]), completion(&b_jobs[0])]}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let statuses: Vec<_> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["lost", "ok"], "{body}");
    assert_eq!(body["results"][0]["error"]["code"], "lease_lost", "{body}");
    assert_eq!(body["results"][1]["state"], "downloadable", "{body}");
    assert_eq!(state(&c, &a_jobs[0]).await, CertState::Generating);
    assert_eq!(state(&c, &b_jobs[0]).await, CertState::Downloadable);

    // A: its own lease and one naming another job's uuids, each answered on its
    // own, in order.
    let mut other_uuids = completion(&a_jobs[2]);
    other_uuids["lease_id"] = a_jobs[1]["lease_id"].clone();
    let (st, body) = post(
        &c,
        Some(&a),
        json!({"completions": [completion(&a_jobs[0]), other_uuids]}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<_> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "mismatch"], "{body}");
    assert_eq!(results[1]["error"]["field"], "result.download_uuid");
    assert_eq!(state(&c, &a_jobs[0]).await, CertState::Downloadable);
    assert_eq!(state(&c, &a_jobs[1]).await, CertState::Generating);

    // A malformed completion (lease id, URL off the layout, negative timings)
    // refuses the whole call, naming it; nothing of the call is recorded.
    let mut bad_url = completion(&a_jobs[2]);
    bad_url["result"]["download_url"] = json!("https://evil.example/x.pdf");
    let mut negative = completion(&a_jobs[2]);
    negative["result"]["timings"] = json!({"render_ms": 1.0, "sign_ms": 1.0, "store_ms": -1.0});
    let mut pdf_signer = completion(&a_jobs[2]);
    pdf_signer["result"]["pdf_signer_sha256"] = json!("<script>");
    for (bad, field) in [
        (
            json!({"lease_id": "not-a-lease", "result": {}}),
            "completions[1].lease_id",
        ),
        (bad_url, "completions[1].result.download_url"),
        (negative, "completions[1].result.timings"),
        (pdf_signer, "completions[1].result.pdf_signer_sha256"),
    ] {
        let (st, body) = post(
            &c,
            Some(&a),
            json!({"completions": [completion(&a_jobs[2]), bad]}),
        )
        .await;
        assert_eq!(st, 422, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
        assert_eq!(state(&c, &a_jobs[2]).await, CertState::Generating);
    }

    // The same completion again: its lease is gone, so lost (as the single
    // endpoint's 409), the recorded certificate unchanged.
    let (st, body) = post(
        &c,
        Some(&a),
        json!({"completions": [completion(&a_jobs[0]), completion(&a_jobs[2])]}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "lost", "{body}");
    assert_eq!(body["results"][1]["status"], "ok", "{body}");

    // Bounded: empty or over 256 is 422 in the API's error shape, no token 401.
    let many: Vec<Value> = (0..257).map(|_| completion(&a_jobs[1])).collect();
    for list in [vec![], many] {
        let (st, body) = post(&c, Some(&a), json!({ "completions": list })).await;
        assert_eq!(st, 422, "{body}");
        assert_eq!(body["error"]["field"], "completions", "{body}");
    }
    let (st, body) = post(&c, None, json!({"completions": [completion(&a_jobs[1])]})).await;
    assert_eq!(st, 401, "{body}");
}

/// `lease` in a completion call: once its completions are recorded it leases up
/// to `max_jobs` more at once, within the caller's capacity, answered in
/// `leased`; out of range it refuses the call before anything is recorded.
#[tokio::test(flavor = "multi_thread")]
async fn completions_lease_the_next_jobs() {
    let c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    for i in 0..6 {
        lms.submit(&sample_request(i)).await.unwrap().unwrap();
    }
    let (_, a) = register_manual_ws(&c, "ws-a", 3).await;
    let jobs = lease_jobs(&c, &a, 3, 2000).await;
    assert_eq!(jobs.len(), 3);

    // Out of range, or a wait asked for: refused whole, the completion not recorded.
    for (lease, status) in [
        (json!({"max_jobs": 0}), 422),
        (json!({"max_jobs": 257}), 422),
        (json!({"max_jobs": 1, "wait_ms": 1000}), 400),
    ] {
        let (st, body) = post(
            &c,
            Some(&a),
            json!({"completions": [completion(&jobs[0])], "lease": lease}),
        )
        .await;
        assert_eq!(st, status, "{lease}: {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        if status == 422 {
            assert_eq!(body["error"]["field"], "lease.max_jobs", "{body}");
        }
        assert_eq!(state(&c, &jobs[0]).await, CertState::Generating);
    }

    // Without `lease` the answer has no `leased`.
    let (st, body) = post(&c, Some(&a), json!({"completions": [completion(&jobs[0])]})).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.get("leased").is_none(), "{body}");

    // Asking for 3 with one lease still held (capacity 3, 3 queued): 2 come
    // back, other jobs than those leased before, this workserver's to complete.
    let (st, body) = post(
        &c,
        Some(&a),
        json!({"completions": [completion(&jobs[1])], "lease": {"max_jobs": 3}}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "ok", "{body}");
    assert_eq!(state(&c, &jobs[1]).await, CertState::Downloadable);
    let next = body["leased"]["jobs"].as_array().unwrap().clone();
    assert_eq!(next.len(), 2, "{body}");
    let ids: Vec<_> = jobs
        .iter()
        .chain(&next)
        .map(|j| j["job_id"].clone())
        .collect();
    assert!(ids[3] != ids[4] && !ids[..3].contains(&ids[3]) && !ids[..3].contains(&ids[4]));
    for j in &next {
        assert_eq!(state(&c, j).await, CertState::Generating);
    }

    // 1 queued: one comes back, however many are asked for.
    let (st, body) = post(
        &c,
        Some(&a),
        json!({"completions": [completion(&next[0]), completion(&next[1])], "lease": {"max_jobs": 256}}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let last = body["leased"]["jobs"].as_array().unwrap().clone();
    assert_eq!(last.len(), 1, "{body}");
    let (st, body) = post(
        &c,
        Some(&a),
        json!({"completions": [completion(&last[0]), completion(&jobs[2])], "lease": {"max_jobs": 1}}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    // The queue is empty: an empty `leased`, not a wait.
    assert_eq!(body["leased"]["jobs"], json!([]), "{body}");

    // Another workserver's lease in the call: lost, and it still leases for itself.
    let (_, b) = register_manual_ws(&c, "ws-b", 1).await;
    lms.submit(&sample_request(9)).await.unwrap().unwrap();
    let (st, body) = post(
        &c,
        Some(&b),
        json!({"completions": [completion(&jobs[0])], "lease": {"max_jobs": 1}}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "lost", "{body}");
    assert_eq!(
        body["leased"]["jobs"].as_array().unwrap().len(),
        1,
        "{body}"
    );
}

/// The workserver leases with its completions: a queue of 24 drained by one
/// workserver (capacity 2) takes a few lease calls, not one per job or two.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_workserver_leases_with_its_completions() {
    let mut c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    let ids = submit_all(&lms, &sample_requests("next", 24)).await;
    let cc_url = c.info.cc_url.clone();
    c.add_workservers(1, &cc_url).await.unwrap();
    assert_all_downloadable(&c, &ids).await;
    let series = testamur::cmd::bench_e2e::calls_per_route(&c).await.unwrap();
    let calls = |route: &str| -> f64 {
        series
            .iter()
            .filter(|(r, _)| r == route)
            .map(|(_, n)| n)
            .sum()
    };
    let (leases, batches) = (calls("/v1/leases"), calls("/v1/leases/complete"));
    // The first lease, and one when the queue runs dry (the long poll).
    assert!(
        leases <= 4.0,
        "{leases} lease calls for 24 jobs\n{series:?}"
    );
    assert!(batches >= 10.0, "{batches} completion calls for 24 jobs");
}

/// A CC of an older release refuses `lease` in a completion call (400: its body
/// check does not know the field). The workserver sends that call again without
/// it and leases separately from then on; every certificate is still made. The
/// older CC here is the real one behind an HTTPS proxy that refuses `lease`.
#[tokio::test(flavor = "multi_thread")]
async fn a_cc_refusing_lease_gets_the_completions_without_it() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let mut c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    let ids = submit_all(&lms, &sample_requests("older", 12)).await;

    let refused = Arc::new(AtomicUsize::new(0));
    let forwarded = Arc::new(AtomicUsize::new(0));
    let upstream = c.info.cc_url.clone();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(testamur_common::tls::client_config(&c.info.ca_cert).unwrap())
        .build()
        .unwrap();
    let app = {
        let (refused, forwarded) = (refused.clone(), forwarded.clone());
        axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (http, upstream) = (http.clone(), upstream.clone());
            let (refused, forwarded) = (refused.clone(), forwarded.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 16 << 20).await.unwrap();
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                if path == "/v1/leases/complete" {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if v.get("lease").is_some() {
                        refused.fetch_add(1, Ordering::SeqCst);
                        let e = json!({"error": {"code": "bad_body",
                            "message": "could not read the request body: unknown field `lease`"}});
                        return (reqwest::StatusCode::BAD_REQUEST, axum::Json(e)).into_response();
                    }
                    forwarded.fetch_add(1, Ordering::SeqCst);
                }
                let mut r = http
                    .request(parts.method, format!("{upstream}{path}"))
                    .body(body);
                for h in ["authorization", "content-type"] {
                    if let Some(v) = parts.headers.get(h) {
                        r = r.header(h, v);
                    }
                }
                let resp = r.send().await.unwrap();
                let status = resp.status();
                let bytes = resp.bytes().await.unwrap();
                (status, [("content-type", "application/json")], bytes).into_response()
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = testamur_common::tls::server_config(
        &c.dir().join("tls/server.pem"),
        &c.dir().join("tls/server.key"),
        None,
    )
    .unwrap();
    tokio::spawn(testamur_cc::server::serve(
        listener,
        tls,
        app,
        testamur_common::config::LimitsConfig::default(),
        std::future::pending::<()>(),
    ));
    c.add_workservers(1, &format!("https://localhost:{port}"))
        .await
        .unwrap();
    assert_all_downloadable(&c, &ids).await;
    assert_eq!(
        refused.load(Ordering::SeqCst),
        1,
        "asked again after a refusal"
    );
    assert!(forwarded.load(Ordering::SeqCst) >= 1);
    let log = std::fs::read_to_string(c.log_path("ws-1.log")).unwrap();
    assert!(
        log.contains("the CC does not lease with completions"),
        "{log}"
    );
}
