//! `POST /v1/leases/complete` (several completions per call): each is checked
//! and fenced as the single endpoint does and answered on its own (a malformed
//! one refuses the call); only a lease's own workserver completes it; the list
//! is bounded.

use serde_json::{json, Value};
use testamur::cmd::demo::sample_request;
use testamur_common::state::CertState;

use crate::helpers::{cluster, lease_jobs, register_manual_ws, TestCluster};

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
