//! Bitstring Status Lists at the CC, with workservers played by the test: each
//! new version gets an index no other credential has (a random position; a taken
//! one gives the next free one; a full list opens the next); only workservers that
//! said they publish status lists are leased a publication; a change made while a
//! publication is in flight queues the next one; a publication whose lease is
//! lost is given again and its late completion refused. The real workservers'
//! side (signing, storage, Digital Bazaar's check) is credentials.rs.

use base64::Engine as _;
use serde_json::{json, Value};
use testamur::cmd::demo::sample_request;
use testamur_common::status_list::{bit, STATUS_LIST_SIZE};

use crate::helpers::{
    cluster, lease_jobs, register_manual_ws, register_manual_ws_with, TestCluster,
};

/// `POST /v1/leases` (no wait): the whole answer.
async fn lease(c: &TestCluster, token: &str) -> Value {
    let api = c.operator().unwrap();
    api.http()
        .post(api.url("/v1/leases"))
        .bearer_auth(token)
        .json(&json!({"max_jobs": 4, "wait_ms": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Completes `lease_id` with `result`: (status code, answer).
async fn complete(c: &TestCluster, token: &str, lease_id: &Value, result: Value) -> (u16, Value) {
    let api = c.operator().unwrap();
    let r = api
        .http()
        .post(api.url(&format!(
            "/v1/leases/{}/complete",
            lease_id.as_str().unwrap()
        )))
        .bearer_auth(token)
        .json(&json!({ "result": result }))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// A completion publishing a leased add/regen under its own uuids.
fn published(job: &Value) -> Value {
    let base = "https://certs.example.org/";
    let du = job["certificate"]["download_uuid"].as_str().unwrap();
    let vu = job["certificate"]["verify_uuid"].as_str().unwrap();
    json!({"download_uuid": du, "verify_uuid": vu,
        "download_url": format!("{base}downloads/{du}/Certificate.pdf"),
        "verify_url": format!("{base}cert/{vu}/"),
        "signature_url": format!("{base}cert/{vu}/Certificate.pdf.sig"),
        "sha256": "a".repeat(64)})
}

/// The (list, index) a leased job's certificate was given.
fn entry(job: &Value) -> (u64, u64) {
    let s = &job["certificate"]["status"];
    (s["list"].as_u64().unwrap(), s["index"].as_u64().unwrap())
}

fn bits(publication: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(publication["bits"].as_str().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn indexes_are_never_given_twice_and_a_full_list_opens_the_next() {
    let c = cluster(|s| s.workservers = 0).await;
    // List 0 with all but its last 8 positions given out (as after 131,064
    // certificates): the random positions of the next ones are mostly taken.
    let key = "tm:status:0:alloc";
    let mut args: Vec<String> = vec!["BITFIELD".into(), key.into()];
    for k in 0..(STATUS_LIST_SIZE / 64 - 1) {
        args.extend(["SET".into(), "i64".into(), format!("#{k}"), "-1".into()]);
    }
    let rest = (STATUS_LIST_SIZE / 64 - 1) * 64;
    for (width, at) in [(32, rest), (16, rest + 32), (8, rest + 48)] {
        args.extend([
            "SET".into(),
            format!("i{width}"),
            at.to_string(),
            "-1".into(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    c.redis.cli(&args).unwrap();
    c.redis
        .cli(&[
            "SET",
            "tm:status:0:count",
            &(STATUS_LIST_SIZE - 8).to_string(),
        ])
        .unwrap();
    assert_eq!(
        c.redis.cli(&["BITCOUNT", key]).unwrap().trim(),
        (STATUS_LIST_SIZE - 8).to_string()
    );

    let lms = c.lms().unwrap();
    for i in 0..10 {
        lms.submit(&sample_request(i)).await.unwrap().unwrap();
    }
    let (_, token) = register_manual_ws(&c, "ws-a", 16).await;
    let jobs = lease_jobs(&c, &token, 16, 2000).await;
    assert_eq!(jobs.len(), 10);
    let mut given: Vec<(u64, u64)> = jobs.iter().map(entry).collect();
    given.sort();
    let last = STATUS_LIST_SIZE as u64 - 8;
    let want_first: Vec<(u64, u64)> = (last..STATUS_LIST_SIZE as u64).map(|i| (0, i)).collect();
    assert_eq!(
        &given[..8],
        &want_first[..],
        "the 8 free positions of list 0, once each"
    );
    assert!(given[8..].iter().all(|(l, _)| *l == 1), "{given:?}");
    assert_ne!(given[8], given[9], "list 1 gives distinct positions too");
    assert_eq!(c.redis.cli(&["GET", "tm:status:open"]).unwrap().trim(), "1");
    assert_eq!(
        c.redis.cli(&["GET", "tm:status:1:count"]).unwrap().trim(),
        "2"
    );

    // A retried job keeps its index: fail one, lease it again.
    let api = c.operator().unwrap();
    let failed = &jobs[0];
    api.http()
        .post(api.url(&format!(
            "/v1/leases/{}/fail",
            failed["lease_id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .json(&json!({"error_reason": "test", "retryable": true}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let again = lease_jobs(&c, &token, 16, 2000).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["job_id"], failed["job_id"]);
    assert_eq!(entry(&again[0]), entry(failed));
}

#[tokio::test(flavor = "multi_thread")]
async fn publications_go_to_publishers_follow_every_change_and_survive_a_lost_lease() {
    let c = cluster(|s| {
        s.workservers = 0;
        s.lease_ttl_s = 2;
    })
    .await;
    let lms = c.lms().unwrap();
    let (_, plain) = register_manual_ws(&c, "ws-plain", 4).await;
    let (_, publisher) =
        register_manual_ws_with(&c, "ws-publisher", 4, json!({"status_lists": true})).await;
    for i in 0..2 {
        lms.submit(&sample_request(i)).await.unwrap().unwrap();
    }

    // The plain workserver gets the certificates' jobs and never a status list.
    let a = lease(&c, &plain).await;
    assert_eq!(a["jobs"].as_array().unwrap().len(), 2, "{a}");
    assert!(a.get("status_lists").is_none(), "{a}");
    let index = entry(&a["jobs"][0]).1 as u32;
    for j in a["jobs"].as_array().unwrap() {
        let (code, body) = complete(&c, &plain, &j["lease_id"], published(j)).await;
        assert_eq!(
            (code, &body["state"]),
            (200, &json!("downloadable")),
            "{body}"
        );
    }
    // The publisher gets list 0's first publication (all clear), before any job.
    let b = lease(&c, &publisher).await;
    let p = &b["status_lists"][0];
    assert_eq!(
        (p["list"].as_u64(), p["version"].as_u64()),
        (Some(0), Some(1)),
        "{b}"
    );
    assert!(bits(p).iter().all(|&x| x == 0));
    assert_eq!(b["jobs"].as_array().unwrap().len(), 0);
    let (code, body) = complete(&c, &publisher, &p["lease_id"], json!({})).await;
    assert_eq!((code, body), (200, json!({"status_list": 0})));
    assert!(
        lease(&c, &publisher).await.get("status_lists").is_none(),
        "nothing changed"
    );

    // Delete the first certificate: the bit is set and a publication queued.
    let mut del = sample_request(0);
    del.action = Some("delete".into());
    lms.submit(&del).await.unwrap().unwrap();
    let d = lease(&c, &plain).await;
    let (code, _) = complete(&c, &plain, &d["jobs"][0]["lease_id"], json!({})).await;
    assert_eq!(code, 200);
    let first = lease(&c, &publisher).await;
    let p1 = first["status_lists"][0].clone();
    assert_eq!(p1["version"], 2, "{first}");
    assert_eq!(bit(&bits(&p1), index), Some(true));

    // While it is out, the second is deleted too: no second publication of the
    // list at once; the lease is lost (never extended), given again with the newest bits.
    let mut del = sample_request(1);
    del.action = Some("delete".into());
    lms.submit(&del).await.unwrap().unwrap();
    let d = lease(&c, &plain).await;
    let (code, _) = complete(&c, &plain, &d["jobs"][0]["lease_id"], json!({})).await;
    assert_eq!(code, 200);
    assert!(
        lease(&c, &publisher).await.get("status_lists").is_none(),
        "one publication at a time"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let p2 = loop {
        let l = lease(&c, &publisher).await;
        if let Some(p) = l["status_lists"].get(0) {
            break p.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lost publication was not given again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        (p2["job_id"].clone(), p2["attempt"].clone()),
        (p1["job_id"].clone(), json!(2))
    );
    assert_eq!(p2["version"], 3);
    assert_eq!(bits(&p2).iter().map(|b| b.count_ones()).sum::<u32>(), 2);
    let (code, _) = complete(&c, &publisher, &p1["lease_id"], json!({})).await;
    assert_eq!(code, 409, "the lost lease's completion is refused");
    let (code, body) = complete(&c, &publisher, &p2["lease_id"], json!({})).await;
    assert_eq!((code, body), (200, json!({"status_list": 0})));
    assert!(
        lease(&c, &publisher).await.get("status_lists").is_none(),
        "published as it is"
    );
    assert_eq!(
        c.redis
            .cli(&["HGET", "tm:status:0:pub", "ver"])
            .unwrap()
            .trim(),
        "3"
    );
    // Counted apart from the certificates' jobs: 4 jobs (2 adds, 2 deletes), 2
    // publications, 3 leases of them; the workservers' completed counts are the jobs'.
    let op = c.operator().unwrap();
    let metrics = op
        .http()
        .get(op.url("/metrics"))
        .bearer_auth(op.key().to_owned())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (event, n) in [
        ("completed", 4),
        ("status_list_published", 2),
        ("status_list_leased", 3),
    ] {
        let line = format!("testamur_jobs_total{{event=\"{event}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let status = op.status().await.unwrap().unwrap();
    let completed: u64 = status.workservers.iter().map(|w| w.completed).sum();
    assert_eq!(completed, 4);
    // The operator status shows the list published as it is, nothing in flight.
    let lists = &status.status_lists;
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert_eq!(
        (
            lists[0].list,
            lists[0].changes,
            lists[0].published,
            lists[0].publishing
        ),
        (0, 3, 3, false)
    );
    assert!(lists[0].published_at.is_some());
}
