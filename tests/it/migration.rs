//! Upgrading in place (issue 15): a Redis holding certificates written by the
//! release before compact records must keep answering exactly as it did, migrate
//! on first touch and with `testamur migrate`, and go on working.
//!
//! The data is `tests/fixtures/before-records.json`: every key of a cluster run by
//! the previous release's binary (f8b3e01), with the answers that CC gave. Made by
//! `make_fixture` below (`TESTAMUR_OLD_BIN=/path/to/old/testamur cargo test --test
//! it migration::make_fixture -- --ignored`): adds (a long name, a CJK name, a long
//! course name), two regens of one certificate (one changing the name), a regen
//! changing the course name, a delete, a failed job, and one still queued.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use testamur::devcluster::{Cluster, ClusterSpec};
use testamur_common::wire::SubmitRequest;

use crate::helpers::{self, BIN};

const FIXTURE: &str = "tests/fixtures/before-records.json";

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)
}

/// One redis-cli command's output lines (no value here holds a newline).
fn cli(c: &Cluster, args: &[&str]) -> Vec<String> {
    let out = c.redis.cli(args).unwrap();
    let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
    // redis-cli prints an empty list (or nil) as one empty line.
    if out.trim().is_empty() {
        lines.clear();
    }
    lines
}

/// GET as the LMS (its certificates), or as the operator for `/v1/status`.
async fn get_json(c: &Cluster, path: &str) -> Value {
    let api = if path.starts_with("/v1/status") {
        c.operator().unwrap()
    } else {
        c.lms().unwrap()
    };
    let r = api
        .http()
        .get(api.url(path))
        .bearer_auth(api.key())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.unwrap()
}

/// Every certificate (in cert id order) through the listing.
async fn listing(c: &Cluster) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get_json(c, &format!("/v1/certificates?limit=2{cursor}")).await;
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => return out,
        }
    }
}

/// The verify uuid of every version a certificate view's history published.
fn published_versions(cert: &Value) -> Vec<String> {
    cert["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["detail"].as_str()?.split("verify_uuid=").nth(1))
        .map(str::to_owned)
        .collect()
}

fn request(user: &str, name: &str, course_name: &str) -> SubmitRequest {
    let mut r = testamur::cmd::demo::sample_request(0);
    r.username = Some(user.into());
    r.name = Some(name.into());
    r.course_name = Some(course_name.into());
    r
}

async fn settle(c: &Cluster, r: &SubmitRequest) -> String {
    let lms = c.lms().unwrap();
    let id = lms.submit(r).await.unwrap().unwrap().cert_id;
    lms.wait_final(id.as_str(), Duration::from_secs(90))
        .await
        .unwrap();
    id.to_string()
}

const COURSE: &str = "Introduction to Verifiable Credentials";
const LONG_COURSE: &str =
    "Professional Certificate in Data Science: Statistical Inference and Modeling for High-throughput Experiments";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "makes tests/fixtures/before-records.json with an old release's binary (TESTAMUR_OLD_BIN)"]
async fn make_fixture() {
    let old = std::env::var("TESTAMUR_OLD_BIN")
        .expect("TESTAMUR_OLD_BIN: the previous release's testamur");
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(dir.path().join("c"), old);
    spec.workservers = 1;
    let mut c = Cluster::start(spec).await.unwrap();
    let mut ids = BTreeMap::new();
    let long_name = "Maximiliana Alexandrina Konstantinopoulou-Wittelsbach von Hohenzollern";
    for (k, user, name, course) in [
        ("a", "mig-a", "Ana María García", COURSE),
        ("b", "mig-b", "Björn Ødegård", COURSE),
        ("c", "mig-c", long_name, LONG_COURSE),
        ("d", "mig-d", "山田 太郎", COURSE),
    ] {
        ids.insert(k, settle(&c, &request(user, name, course)).await);
    }
    // Two regens of a: the first changes the name, the second nothing.
    let mut r = request("mig-a", "Ana María García López", COURSE);
    r.action = Some("regen".into());
    settle(&c, &r).await;
    settle(&c, &r).await;
    let mut r = request("mig-c", long_name, "Data Science: Inference");
    r.action = Some("regen".into());
    settle(&c, &r).await;
    let mut r = request("mig-b", "Björn Ødegård", COURSE);
    r.action = Some("delete".into());
    settle(&c, &r).await;
    // e fails for good; f waits in the queue (no workserver left).
    c.terminate_ws(1);
    let lms = c.lms().unwrap();
    let e = lms
        .submit(&request("mig-e", "Eve Fail", COURSE))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    let (_, token) = helpers::register_manual_ws(&c, "manual", 1).await;
    let jobs = helpers::lease_jobs(&c, &token, 1, 5000).await;
    let lease = jobs[0]["lease_id"].as_str().unwrap();
    let api = c.operator().unwrap();
    let r = api
        .http()
        .post(api.url(&format!("/v1/leases/{lease}/fail")))
        .bearer_auth(&token)
        .json(&json!({"error_reason": "the template cannot draw this", "retryable": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    lms.wait_final(e.as_str(), Duration::from_secs(30))
        .await
        .unwrap();
    ids.insert("e", e.to_string());
    let f = lms
        .submit(&request("mig-f", "Frank Waiting", COURSE))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    ids.insert("f", f.to_string());
    let r = api
        .http()
        .delete(api.url(&format!(
            "/v1/workservers/{}",
            get_json(&c, "/v1/status").await["workservers"][0]["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "deregister: {}", r.status());

    let mut certs = BTreeMap::new();
    let mut verify = BTreeMap::new();
    for id in ids.values() {
        let cert = get_json(&c, &format!("/v1/certificates/{id}")).await;
        for v in published_versions(&cert) {
            verify.insert(v.clone(), get_json(&c, &format!("/verify/{v}")).await);
        }
        certs.insert(id.clone(), cert);
    }
    let list = listing(&c).await;

    // Every key the certificates live in (not the workservers', sessions', counters').
    let mut dump = Vec::new();
    for k in cli(&c, &["KEYS", "tm:*"]) {
        let rest = k.strip_prefix("tm:").unwrap();
        let keep = [
            "cert:", "verify:", "certs", "course:", "bystate:", "states", "job:", "queue",
            "tqueues",
        ];
        if !keep.iter().any(|p| rest.starts_with(p)) {
            continue;
        }
        let t = cli(&c, &["TYPE", &k]).concat();
        let v: Value = match t.as_str() {
            "hash" => {
                let flat = cli(&c, &["HGETALL", &k]);
                let m: BTreeMap<&str, &str> = flat
                    .chunks(2)
                    .map(|p| (p[0].as_str(), p[1].as_str()))
                    .collect();
                json!(m)
            }
            "list" => json!(cli(&c, &["LRANGE", &k, "0", "-1"])),
            "set" => json!(cli(&c, &["SMEMBERS", &k])),
            "zset" => json!(cli(&c, &["ZRANGE", &k, "0", "-1"])),
            "string" => json!(cli(&c, &["GET", &k]).concat()),
            other => panic!("{k} is a {other}"),
        };
        dump.push(json!({"key": k, "type": t, "value": v}));
    }
    let out = json!({"made_by": "testamur f8b3e01 (before compact records)", "ids": ids,
        "keys": dump, "certificates": certs, "verify": verify, "list": list});
    std::fs::create_dir_all(fixture_path().parent().unwrap()).unwrap();
    std::fs::write(fixture_path(), serde_json::to_string_pretty(&out).unwrap()).unwrap();
    c.stop();
}

/// Writes the fixture's keys into the cluster's Redis.
fn load_fixture(c: &Cluster, fx: &Value) {
    for k in fx["keys"].as_array().unwrap() {
        let key = k["key"].as_str().unwrap();
        let v = &k["value"];
        let strs: Vec<&str> = match v {
            Value::Array(a) => a.iter().map(|s| s.as_str().unwrap()).collect(),
            Value::Object(o) => o
                .iter()
                .flat_map(|(f, v)| [f.as_str(), v.as_str().unwrap()])
                .collect(),
            Value::String(s) => vec![s.as_str()],
            other => panic!("fixture key {key}: {other}"),
        };
        let cmd = match k["type"].as_str().unwrap() {
            "hash" => "HSET",
            "list" => "RPUSH",
            "set" => "SADD",
            "zset" => "ZADD",
            "string" => "SET",
            other => panic!("fixture key {key} of type {other}"),
        };
        let mut args = vec![cmd, key];
        if cmd == "ZADD" {
            for m in &strs {
                args.extend(["0", m]);
            }
        } else {
            args.extend(&strs);
        }
        c.redis.cli(&args).unwrap();
    }
}

fn old_keys(c: &Cluster) -> Vec<String> {
    let mut keys = cli(c, &["KEYS", "tm:cert:*"]);
    keys.extend(cli(c, &["KEYS", "tm:verify:*"]));
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_written_by_the_previous_release_answers_the_same_migrates_and_goes_on() {
    let fx: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path()).unwrap()).unwrap();
    let mut c = helpers::cluster(|s| s.workservers = 0).await;
    load_fixture(&c, &fx);
    let ids = fx["ids"].as_object().unwrap();
    let id = |k: &str| ids[k].as_str().unwrap().to_owned();

    // Read through the new CC: a and c (and their versions) move on first touch,
    // answering exactly what the previous release answered.
    let before = old_keys(&c);
    for k in ["a", "c"] {
        let got = get_json(&c, &format!("/v1/certificates/{}", id(k))).await;
        assert_eq!(got, fx["certificates"][id(k)], "certificate {k}");
        for v in published_versions(&got) {
            assert_eq!(
                get_json(&c, &format!("/verify/{v}")).await,
                fx["verify"][&v],
                "version {v} of {k}"
            );
        }
    }
    let after = old_keys(&c);
    assert!(
        after.len() < before.len(),
        "reading moved nothing: {after:?}"
    );
    assert!(
        after.iter().any(|k| k.contains(&id("b"))),
        "b was not touched yet"
    );

    // A version looked up first by its verify uuid moves its certificate too.
    let b_cert = &fx["certificates"][id("b")];
    let b_version = &published_versions(b_cert)[0];
    assert_eq!(
        get_json(&c, &format!("/verify/{b_version}")).await,
        fx["verify"][b_version]
    );

    // `testamur migrate` moves the rest, says so, and is idempotent.
    let cc_conf = c.dir().join("cc.conf");
    for _ in 0..2 {
        let out = std::process::Command::new(BIN)
            .args(["migrate", "--config"])
            .arg(&cc_conf)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("none left"), "{stdout}");
    }
    assert_eq!(old_keys(&c), Vec::<String>::new());
    assert_eq!(cli(&c, &["EXISTS", "tm:bystate:downloadable"]), ["0"]);

    // Every answer is the previous release's, the listing too.
    for (id, want) in fx["certificates"].as_object().unwrap() {
        assert_eq!(
            &get_json(&c, &format!("/v1/certificates/{id}")).await,
            want,
            "certificate {id}"
        );
    }
    for (v, want) in fx["verify"].as_object().unwrap() {
        assert_eq!(
            &get_json(&c, &format!("/verify/{v}")).await,
            want,
            "version {v}"
        );
    }
    assert_eq!(Value::Array(listing(&c).await), fx["list"]);
    let status = get_json(&c, "/v1/status").await;
    assert_eq!(status["certificates"]["downloadable"], json!(3), "{status}");

    // And it goes on: the queued job is drawn, a migrated certificate is regenerated.
    let cc_url = c.info.cc_url.clone();
    c.add_workservers(1, &cc_url).await.unwrap();
    let lms = c.lms().unwrap();
    let f = lms
        .wait_final(&id("f"), Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(f.state.as_str(), "downloadable", "{:?}", f.error_reason);
    let old_versions = published_versions(&fx["certificates"][id("a")]);
    let mut r = request("mig-a", "Ana M. García López", COURSE);
    r.action = Some("regen".into());
    let a = lms.submit(&r).await.unwrap().unwrap().cert_id;
    let a = lms
        .wait_final(a.as_str(), Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(a.state.as_str(), "downloadable", "{:?}", a.error_reason);
    let newest = a.verify_uuid.unwrap().to_string();
    let last = get_json(&c, &format!("/verify/{}", old_versions.last().unwrap())).await;
    assert_eq!(last["status"], "superseded");
    assert_eq!(
        last["name"], "Ana María García López",
        "what it printed: {last}"
    );
    assert!(
        last["current_verify_url"]
            .as_str()
            .unwrap()
            .contains(&newest),
        "{last}"
    );
    let first = get_json(&c, &format!("/verify/{}", old_versions[0])).await;
    assert_eq!(first["name"], "Ana María García", "{first}");
    let now = get_json(&c, &format!("/verify/{newest}")).await;
    // Times the new record derives rather than stores: the new version's publication
    // is the old one's supersession, and each one's last change.
    let published = now["published_at"].as_str().unwrap();
    assert!(published.starts_with("20"), "{now}");
    assert_eq!(now["updated_at"], published);
    assert_eq!(last["superseded_at"], published, "{last}");
    assert_eq!(last["updated_at"], published, "{last}");
    let history = a.history.unwrap();
    let entry = history.last().unwrap();
    assert_eq!(entry.at, published);
    assert_eq!(a.updated_at, published);
    assert!(
        entry.detail.as_deref().unwrap().ends_with(&newest),
        "{entry:?}"
    );
    assert_eq!(
        (now["status"].as_str(), now["name"].as_str()),
        (Some("valid"), Some("Ana M. García López"))
    );
}
