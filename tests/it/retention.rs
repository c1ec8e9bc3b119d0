//! Issue 12 item 11: what grows with traffic in Redis has a bound. Stored batch
//! answers are compact; workservers silent for a day are forgotten. (Dead-letter
//! retention is in `callbacks`, the history cap in `hardening`.)

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{cluster, redis_now_s, register_manual_ws, TestCluster};

/// POST a batch with an Idempotency-Key; (status, replayed header, body).
async fn batch(c: &TestCluster, key: &str, requests: &Value) -> (u16, bool, String) {
    let lms = c.lms().unwrap();
    let r = lms
        .http()
        .post(lms.url("/v1/certificates/batch"))
        .bearer_auth(&c.info.lms_api_key)
        .header("Idempotency-Key", key)
        .json(&json!({ "requests": requests }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    (status, replayed, r.text().await.unwrap())
}

fn redis_int(c: &TestCluster, args: &[&str]) -> i64 {
    let out = c.redis.cli(args).unwrap();
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("redis-cli {args:?}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_batch_answer_is_compact_and_replays_exactly() {
    let c = cluster(|s| s.workservers = 0).await;
    let requests = Value::Array(vec![json!({}); 10_000]);
    let (status, replayed, first) = batch(&c, "k-10000", &requests).await;
    assert_eq!((status, replayed), (202, false), "{first:.300}");
    assert!(first.len() > 1_000_000, "{} bytes", first.len());
    let keys = c
        .redis
        .cli(&["--scan", "--pattern", "tm:idem:batch:*"])
        .unwrap();
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let bytes = redis_int(&c, &["MEMORY", "USAGE", keys[0]]);
    assert!(
        bytes < 32 * 1024,
        "the stored answer of 10,000 rejected requests takes {bytes} bytes of Redis"
    );
    let (status, replayed, again) = batch(&c, "k-10000", &requests).await;
    assert_eq!((status, replayed), (202, true));
    assert_eq!(again, first, "the replayed answer differs");
}

/// Backdate a workserver's last heartbeat by `hours` (Redis's clock), as if it had
/// been silent that long.
fn silence(c: &TestCluster, ws_id: &str, hours: u64) {
    let now_s = redis_now_s(c);
    let then = ((now_s - hours * 3600) * 1000).to_string();
    c.redis
        .cli(&["HSET", &format!("tm:ws:{ws_id}"), "last_heartbeat", &then])
        .unwrap();
    c.redis.cli(&["ZADD", "tm:wsbeat", &then, ws_id]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workservers_silent_for_a_day_are_forgotten() {
    let c = cluster(|s| s.workservers = 0).await;
    let (gone, gone_token) = register_manual_ws(&c, "gone", 1).await;
    let (kept, _) = register_manual_ws(&c, "kept", 1).await;
    silence(&c, &gone, 25);
    silence(&c, &kept, 23);
    let op = c.operator().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = op
            .status()
            .await
            .unwrap()
            .unwrap()
            .workservers
            .into_iter()
            .map(|w| w.name)
            .collect();
        if !names.contains(&"gone".to_owned()) {
            assert!(names.contains(&"kept".to_owned()), "{names:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not forgotten: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for key in [format!("tm:ws:{gone}"), "tm:wsname:gone".to_owned()] {
        assert_eq!(redis_int(&c, &["EXISTS", &key]), 0, "{key} is kept");
    }
    assert_eq!(redis_int(&c, &["SISMEMBER", "tm:workservers", &gone]), 0);
    assert_eq!(redis_int(&c, &["EXISTS", &format!("tm:ws:{kept}")]), 1);
    // Its token went with it.
    let r = op
        .http()
        .post(op.url(&format!("/v1/workservers/{gone}/heartbeat")))
        .bearer_auth(&gone_token)
        .json(&json!({"jobs": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
