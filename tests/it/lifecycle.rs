//! Job lifecycle through the lease API: retryable failures are re-queued until
//! max_attempts, then the certificate ends in `error` with the last reason; a
//! non-retryable failure ends it at once; a bad job never takes a workserver down;
//! SIGTERM makes a workserver finish its jobs and deregister.

use std::time::Duration;

use serde_json::{json, Value};
use testamur::cmd::demo::sample_request;
use testamur_common::failure::FailCode;
use testamur_common::state::CertState;

use crate::helpers::{cluster, lease_jobs, register_manual_ws};

#[tokio::test(flavor = "multi_thread")]
async fn failures_retry_until_max_attempts_then_error() {
    let c = cluster(|s| {
        s.workservers = 0;
        s.max_attempts = 2;
    })
    .await;
    let lms = c.lms().unwrap();
    let http = lms.http().clone();
    let (_, token) = register_manual_ws(&c, "manual", 1).await;
    let lease = || async { lease_jobs(&c, &token, 1, 2000).await.remove(0) };
    // A failure as a workserver reports it: the operator's reason, the code and
    // (for the codes about the request) the reason for the LMS.
    let fail = |lease_id: String, retryable: bool, reason: &'static str| {
        let http = http.clone();
        let url = lms.url(&format!("/v1/leases/{lease_id}/fail"));
        let token = token.clone();
        let body = match reason {
            "template missing" => json!({"error_reason": "render on manual: template missing",
                "retryable": retryable, "error_code": "template", "public_reason": reason}),
            _ => json!({"error_reason": reason, "retryable": retryable,
                "error_code": "storage", "public_reason": "ignored: not about the request"}),
        };
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };

    let id = lms
        .submit(&sample_request(1))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    let job = lease().await;
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["action"], "add");
    assert_eq!(job["certificate"]["name"], sample_request(1).name.unwrap());
    let r = fail(
        job["lease_id"].as_str().unwrap().into(),
        true,
        "disk full on manual",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["requeued"], true);
    let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
    assert_eq!(cert.state, CertState::Generating);

    let job2 = lease().await;
    assert_eq!(job2["job_id"], job["job_id"]);
    assert_eq!(job2["attempt"], 2);
    assert_eq!(
        job2["certificate"]["download_uuid"], job["certificate"]["download_uuid"],
        "retries publish under the same names"
    );
    let r = fail(
        job2["lease_id"].as_str().unwrap().into(),
        true,
        "disk still full on manual",
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["requeued"], false);
    let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
    assert_eq!(cert.state, CertState::Error);
    assert_eq!(
        cert.error_reason.as_deref(),
        Some(FailCode::Storage.message()),
        "a storage failure's detail is for the operator only"
    );
    assert_eq!(cert.error_code.as_deref(), Some("storage"));
    let details: Vec<String> = cert
        .history
        .clone()
        .unwrap()
        .into_iter()
        .filter_map(|h| h.detail)
        .collect();
    assert!(
        details.iter().all(|d| !d.contains("disk")),
        "the history shows the LMS's reason: {details:?}"
    );
    assert_eq!(cert.attempts, 2);

    // The first lease is long gone: its failure report is refused.
    assert_eq!(
        fail(job["lease_id"].as_str().unwrap().into(), true, "late")
            .await
            .status(),
        409
    );

    // From error, regen is allowed; a non-retryable failure ends it at once.
    let mut regen = sample_request(1);
    regen.action = Some("regen".into());
    let r = lms.submit(&regen).await.unwrap().unwrap();
    assert_eq!(r.state, CertState::Regenerating);
    let job3 = lease().await;
    assert_eq!(job3["action"], "regen");
    assert_eq!(job3["attempt"], 1);
    fail(
        job3["lease_id"].as_str().unwrap().into(),
        false,
        "template missing",
    )
    .await;
    let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
    assert_eq!(cert.state, CertState::Error);
    assert_eq!(
        cert.error_reason.as_deref(),
        Some("template missing"),
        "a reason about the request reaches the LMS"
    );
    assert_eq!(cert.error_code.as_deref(), Some("template"));
    let states: Vec<CertState> = cert.history.unwrap().iter().map(|h| h.state).collect();
    use CertState::*;
    assert_eq!(
        states,
        vec![Generating, Generating, Error, Regenerating, Error]
    );

    let s = c.operator().unwrap().status().await.unwrap().unwrap();
    for detail in [
        "render on manual: template missing",
        "disk still full on manual",
        "disk full on manual",
    ] {
        assert!(
            s.recent_errors.iter().any(|e| e.reason == detail),
            "{detail} not in {:?}",
            s.recent_errors
        );
    }
    assert_eq!(s.certificates["error"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_job_fails_with_a_reason_and_the_workserver_carries_on() {
    let c = cluster(|s| s.workservers = 1).await;
    let lms = c.lms().unwrap();
    c.wait_workservers(1, Duration::from_secs(30))
        .await
        .unwrap();
    // The CC checks names against the workservers' templates at submit; take that
    // catalogue away (as if templates changed while jobs were queued) so that a
    // name no font can draw reaches the workserver: it must fail the job cleanly,
    // naming the characters, not draw boxes.
    let ws = c.redis.cli(&["SMEMBERS", "tm:workservers"]).unwrap();
    c.redis
        .cli(&["HSET", &format!("tm:ws:{}", ws.trim()), "catalog", ""])
        .unwrap();
    c.redis.cli(&["DEL", "tm:catalog:current"]).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut bad = sample_request(1);
    bad.name = Some("\u{12F90} Ankh".into());
    let bad_id = lms.submit(&bad).await.unwrap().unwrap().cert_id;
    let cert = lms
        .wait_final(bad_id.as_str(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(cert.state, CertState::Error);
    let reason = cert.error_reason.unwrap();
    assert_eq!(cert.error_code.as_deref(), Some("unprintable"));
    assert!(
        reason.contains("\u{12F90}") && !reason.contains("ws-1"),
        "the LMS learns which characters, not where: {reason}"
    );
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    assert!(
        st.recent_errors
            .iter()
            .any(|e| e.reason.contains("render on ws-1") && e.reason.contains("\u{12F90}")),
        "{:?}",
        st.recent_errors
    );
    assert_eq!(cert.attempts, 1, "a permanent failure is not retried");

    let good_id = lms
        .submit(&sample_request(2))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    let cert = lms
        .wait_final(good_id.as_str(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(cert.state, CertState::Downloadable);

    // delete: files gone, state deleted; then add again is allowed.
    let mut del = sample_request(2);
    del.action = Some("delete".into());
    lms.submit(&del).await.unwrap().unwrap();
    let pdf = c.info.storage_dir.join(format!(
        "downloads/{}/Certificate.pdf",
        cert.download_uuid.unwrap()
    ));
    let deleted = lms
        .wait_final(good_id.as_str(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(deleted.state, CertState::Deleted);
    assert!(!pdf.exists());
    assert!(deleted.download_url.is_none());
    assert_eq!(
        lms.submit(&sample_request(2)).await.unwrap().unwrap().state,
        CertState::Generating
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_work_and_deregisters() {
    let mut c = cluster(|s| s.workservers = 2).await;
    let lms = c.lms().unwrap();
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(
            lms.submit(&sample_request(i))
                .await
                .unwrap()
                .unwrap()
                .cert_id,
        );
    }
    let pid = c.ws_pid(1).unwrap();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    for id in &ids {
        let cert = lms
            .wait_final(id.as_str(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(cert.state, CertState::Downloadable);
    }
    let op = c.operator().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = op.status().await.unwrap().unwrap();
        if s.workservers.iter().all(|w| w.name != "ws-1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ws-1 did not deregister after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.kill_ws(1);
    let log = std::fs::read_to_string(c.log_path("ws-1.log")).unwrap();
    assert!(log.contains("deregistered"), "{log}");
}

/// Issue 13 item 8: `GET /v1/certificates/{id}` says which template drew the
/// published version: the default, then the one a regen asked for; none after a
/// delete.
#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_says_which_template_drew_it() {
    let c = cluster(|s| s.workservers = 1).await;
    c.wait_workservers(1, Duration::from_secs(30))
        .await
        .unwrap();
    let lms = c.lms().unwrap();
    let mut req = sample_request(7);
    let mut step = |action: &str, template: Option<&str>| {
        req.action = Some(action.into());
        req.template = template.map(str::to_owned);
        req.clone()
    };
    let run = |r: testamur_common::wire::SubmitRequest| {
        let lms = &lms;
        async move {
            let id = lms.submit(&r).await.unwrap().unwrap().cert_id;
            lms.wait_final(id.as_str(), Duration::from_secs(90))
                .await
                .unwrap()
        }
    };
    let added = run(step("add", None)).await;
    assert_eq!(added.state, CertState::Downloadable);
    assert_eq!(added.template.as_deref(), Some("classic"));
    let regen = run(step("regen", Some("letter"))).await;
    assert_eq!(regen.template.as_deref(), Some("letter"));
    let deleted = run(step("delete", None)).await;
    assert_eq!(
        (deleted.state, deleted.template),
        (CertState::Deleted, None)
    );
}
