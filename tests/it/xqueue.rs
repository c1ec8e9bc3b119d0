//! `testamur xqueue-bridge` against the fake xqueue (tests/it/xqueue_fake.rs)
//! and a real cluster (redis, CC, workservers). The bridge runs as a child
//! process of the real binary.
//!
//! One test, three phases on one cluster: adds (mapped, stripped and default
//! templates), an unknown template and malformed bodies; regen and delete while
//! the xqueue session keeps expiring (redirect, JSON login_required, 403); a
//! kill -9 of the bridge while certificates cannot finish, then a restart.
//! The Open edX LMS's own behaviour (re-offers, callbacks, column limits) is
//! tests/it/xqueue_lms.rs.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testamur::api::ApiClient;
use testamur_common::ids::{CertId, CourseId, Username};
use testamur_common::state::CertState;
use testamur_common::wire::CertificateView;

use crate::helpers::{cluster, dump_logs, BIN};
use crate::xqueue_fake::{
    BridgeProc, Expiry, FakeXqueue, COURSE, GATE_PASS, GATE_USER, QUEUE, XQ_PASS, XQ_USER,
};

// ---------------------------------------------------------------- helpers

pub fn cert_id(username: &str) -> CertId {
    CertId::for_pair(
        &CourseId::parse(COURSE).unwrap(),
        &Username::parse(username).unwrap(),
    )
}

pub fn add_body(action: &str, username: &str, name: &str, extra: Value) -> String {
    let mut v = json!({
        "action": action,
        "username": username,
        "course_id": COURSE,
        "course_name": "Bridges and Queues",
        "name": name,
        "grade": "Pass",
        "template_pdf": "",
        "unknown_key_from_a_newer_lms": 1,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

pub struct Ctx<'a> {
    pub logs: PathBuf,
    pub fake: &'a FakeXqueue,
    pub lms: ApiClient,
    pub log: PathBuf,
}

impl Ctx<'_> {
    pub fn diagnostics(&self) -> String {
        format!(
            "--- bridge log\n{}\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            dump_logs(&self.logs)
        )
    }

    /// Wait until `n` put_results arrived in total.
    pub async fn wait_results(&self, n: usize, bridge: &mut BridgeProc) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.fake.lock().results.len();
            if got >= n {
                return;
            }
            bridge.assert_running(&self.log);
            if Instant::now() > deadline {
                panic!(
                    "only {got} of {n} put_results arrived\n{}",
                    self.diagnostics()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn view(&self, username: &str) -> CertificateView {
        self.lms
            .certificate(cert_id(username).as_str())
            .await
            .unwrap()
            .unwrap()
    }

    /// The single result of submission `id`, checked against the certificate.
    pub async fn assert_success(
        &self,
        id: u64,
        action: &str,
        username: &str,
        state: CertState,
    ) -> CertificateView {
        let results = self.fake.results_for(id);
        assert_eq!(
            results.len(),
            1,
            "submission {id}: {results:?}\n{}",
            self.diagnostics()
        );
        let r = &results[0];
        let view = self.view(username).await;
        assert_eq!(view.state, state, "{username}: {:?}", view.error_reason);
        assert!(
            r.get("error").is_none(),
            "submission {id} failed: {r}\n{}",
            self.diagnostics()
        );
        // A delete answers empty uuids and URL (the files are gone).
        let s = |v: Option<String>| {
            if action == "delete" {
                String::new()
            } else {
                v.unwrap_or_default()
            }
        };
        assert_eq!(r["action"], action, "{r}");
        assert_eq!(r["username"], username);
        assert_eq!(r["course_id"], COURSE);
        // The LMS's columns hold 32 hex digits (the old agent's uuid4().hex).
        let hex = |u: &testamur_common::ids::PublicUuid| u.as_str().replace('-', "");
        assert_eq!(
            r["download_uuid"],
            s(view.download_uuid.as_ref().map(hex)),
            "{r}"
        );
        assert_eq!(
            r["verify_uuid"],
            s(view.verify_uuid.as_ref().map(hex)),
            "{r}"
        );
        assert_eq!(r["url"], s(view.download_url.clone()), "{r}");
        if state == CertState::Downloadable {
            assert!(!r["download_uuid"].as_str().unwrap().is_empty());
            assert!(r["url"].as_str().unwrap().ends_with(".pdf"), "{r}");
        }
        view
    }

    pub fn assert_error(&self, id: u64, error_has: &str, reason_has: &str) -> Value {
        let results = self.fake.results_for(id);
        assert_eq!(
            results.len(),
            1,
            "submission {id}: {results:?}\n{}",
            self.diagnostics()
        );
        let r = results[0].clone();
        let error = r["error"]
            .as_str()
            .unwrap_or_else(|| panic!("submission {id} did not fail: {r}"));
        assert!(error.contains(error_has), "{r}");
        assert!(
            r["error_reason"].as_str().unwrap().contains(reason_has),
            "{r}"
        );
        r
    }
}

/// The PDF a file:// URL points at: page size from `pdfinfo` (poppler).
pub fn page_size(url: &str) -> String {
    let path = url
        .strip_prefix("file://")
        .expect("the test cluster publishes to a directory");
    let out = Command::new("pdfinfo")
        .arg(path)
        .output()
        .expect("pdfinfo (poppler-utils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("Page size:"))
        .unwrap_or_else(|| panic!("no page size in pdfinfo output: {text}"))
        .to_owned()
}

// ---------------------------------------------------------------- the test

#[tokio::test(flavor = "multi_thread")]
async fn bridge_answers_every_submission_through_expiry_and_restart() {
    let started = Instant::now();
    let mut c = cluster(|_| {}).await;
    let fake = FakeXqueue::start().await;
    let dir = tempfile::Builder::new().prefix("tm-xq-").tempdir().unwrap();
    let pass_file = dir.path().join("xqueue.pass");
    testamur::fsutil::write_private(&pass_file, format!("{XQ_PASS}\n").as_bytes()).unwrap();
    let conf = dir.path().join("xqueue.conf");
    std::fs::write(
        &conf,
        format!(
            r#"xqueue_url = "{xq}/"
allow_http = true
queue_name = "{QUEUE}"
xqueue_username = "{XQ_USER}"
xqueue_password = {{ file = "xqueue.pass" }}
basic_auth_user = "{GATE_USER}"
basic_auth_password = "{GATE_PASS}"
cc_url = "{cc}"
cc_ca_certs = "{ca}"
api_key = "{key}"
state_file = "bridge-state.jsonl"
poll_interval_ms = 100
max_in_flight = 50

[template_map]
"MITx-letter-cert.pdf" = "letter"
"#,
            xq = fake.url,
            cc = c.info.cc_url,
            ca = c.info.ca_cert.display(),
            key = c.info.lms_api_key,
        ),
    )
    .unwrap();
    let log = dir.path().join("bridge.log");
    let ctx = Ctx {
        logs: c.dir().join("logs"),
        fake: &fake,
        lms: c.lms().unwrap(),
        log: log.clone(),
    };

    // --check logs in and reaches the CC.
    let out = Command::new(BIN)
        .args(["xqueue-bridge", "--check", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));

    // ---- phase 1: adds, an unknown template, malformed bodies.
    let add1 = fake.push(add_body("create", "xq-ada", "Ada Lovelace", json!({})));
    let add2 = fake.push(add_body(
        "add",
        "xq-bob",
        "Bob Núñez",
        json!({"template_pdf": "MITx-letter-cert.pdf", "designation": "Honor"}),
    ));
    let add3 = fake.push(add_body(
        "add",
        "xq-cyd",
        "Кирилл Сидоров",
        json!({"template_pdf": "classic.pdf", "grade": 0.87}),
    ));
    let add4 = fake.push(add_body(
        "add",
        "xq-dee",
        "Δήμητρα Παππά",
        json!({"issued_date": "2025-01-31"}),
    ));
    let bad_template = fake.push(add_body(
        "add",
        "xq-eve",
        "Eve",
        json!({"template_pdf": "no-such-template.pdf"}),
    ));
    let not_json = fake.push("{this is not json");
    let no_user =
        fake.push(json!({"action": "add", "course_id": COURSE, "name": "Nobody"}).to_string());
    let bad_action = fake
        .push(json!({"action": "print", "username": "xq-fay", "course_id": COURSE}).to_string());

    fake.lock().flaky_every = Some(5);
    let mut bridge = BridgeProc::start(&conf, &log);
    ctx.wait_results(8, &mut bridge).await;
    {
        let mut f = fake.lock();
        f.flaky_every = None;
        assert!(f.flaky_answers > 0, "the flaky proxy never failed");
    }
    let ada1 = ctx
        .assert_success(add1, "create", "xq-ada", CertState::Downloadable)
        .await;
    let bob = ctx
        .assert_success(add2, "add", "xq-bob", CertState::Downloadable)
        .await;
    ctx.assert_success(add3, "add", "xq-cyd", CertState::Downloadable)
        .await;
    ctx.assert_success(add4, "add", "xq-dee", CertState::Downloadable)
        .await;
    // template_map picked the US letter template; no template_pdf: the default (A4).
    let letter = page_size(bob.download_url.as_deref().unwrap());
    assert!(letter.contains("612 x 792"), "{letter}");
    let a4 = page_size(ada1.download_url.as_deref().unwrap());
    assert!(a4.contains("841") && a4.contains("595"), "{a4}");
    let r = ctx.assert_error(bad_template, "rejected", "no-such-template");
    assert_eq!(
        (r["username"].as_str(), r["course_id"].as_str()),
        (Some("xq-eve"), Some(COURSE))
    );
    ctx.assert_error(not_json, "malformed", "not JSON");
    ctx.assert_error(no_user, "malformed", "username");
    let r = ctx.assert_error(bad_action, "malformed", "print");
    assert_eq!(r["username"], "xq-fay");
    assert_eq!(
        ctx.lms
            .certificate(cert_id("xq-eve").as_str())
            .await
            .unwrap()
            .unwrap_err()
            .status,
        404,
        "a refused submission records nothing"
    );

    // ---- phase 2: regen and delete while the session keeps expiring.
    let logins_before = fake.logins();
    {
        let mut f = fake.lock();
        f.sessions.clear(); // expire now (redirect), then every 4 requests
        f.style = Some(Expiry::Redirect);
        f.authed_requests = 0;
        f.expire_every = Some(3);
    }
    let regen = fake.push(add_body(
        "regen",
        "xq-ada",
        "Ada King, Countess of Lovelace",
        json!({}),
    ));
    let delete = fake
        .push(json!({"action": "delete", "username": "xq-bob", "course_id": COURSE}).to_string());
    let add5 = fake.push(add_body("add", "xq-gus", "Gus", json!({})));
    ctx.wait_results(11, &mut bridge).await;
    let ada2 = ctx
        .assert_success(regen, "regen", "xq-ada", CertState::Downloadable)
        .await;
    assert_ne!(
        ada2.download_uuid, ada1.download_uuid,
        "a regen publishes a new version"
    );
    ctx.assert_success(delete, "delete", "xq-bob", CertState::Deleted)
        .await;
    ctx.assert_success(add5, "add", "xq-gus", CertState::Downloadable)
        .await;
    // The idle bridge keeps polling: let every kind of expiry happen at least once.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (logins_after, styles) = loop {
        let (logins, styles) = {
            let f = fake.lock();
            (f.logins, f.expiries_answered.clone())
        };
        if styles.len() == 3 || Instant::now() > deadline {
            fake.lock().expire_every = None;
            break (logins, styles);
        }
        bridge.assert_running(&log);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        logins_after >= logins_before + 3,
        "logins {logins_before} -> {logins_after}"
    );
    for style in ["Redirect", "Json", "Forbidden"] {
        assert!(
            styles.get(style).copied().unwrap_or(0) > 0,
            "no {style} expiry seen: {styles:?}"
        );
    }

    // ---- phase 3: kill -9 the bridge with submissions taken but unanswered.
    c.kill_ws(1);
    c.kill_ws(2);
    let late: Vec<(u64, &str)> = ["xq-hal", "xq-ivy", "xq-jon"]
        .into_iter()
        .map(|u| (fake.push(add_body("add", u, "Late Learner", json!({}))), u))
        .collect();
    let regen_late = fake.push(add_body("regen", "xq-cyd", "Кирилл Сидоров", json!({})));
    // Taken and submitted (the CC has the jobs, no workserver can run them).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut pending = 0;
        for u in ["xq-hal", "xq-ivy", "xq-jon", "xq-cyd"] {
            if let Ok(Ok(v)) = ctx.lms.certificate(cert_id(u).as_str()).await {
                pending += v.state.is_pending() as usize;
            }
        }
        if pending == 4 && fake.lock().waiting() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge did not submit\n{}",
            ctx.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bridge.kill9();
    assert_eq!(
        fake.lock().results.len(),
        11,
        "nothing could be answered yet"
    );
    // Widen the crash window: as if the bridge had died after the CC accepted two
    // of them but before the journal said so (it then resubmits those two).
    let state_file = dir.path().join("bridge-state.jsonl");
    let journal = std::fs::read_to_string(&state_file).unwrap();
    let unrecorded = [cert_id("xq-hal").to_string(), cert_id("xq-cyd").to_string()];
    let kept: Vec<&str> = journal
        .lines()
        .filter(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            !(v["event"] == "submitted" && unrecorded.iter().any(|id| v["cert_id"] == id.as_str()))
        })
        .collect();
    assert!(journal.contains("\"submitting\""), "{journal}");
    let mut kept: Vec<String> = kept.into_iter().map(str::to_owned).collect();
    // And one the CC got without the bridge's Idempotency-Key (a CC too old to
    // keep them): the resubmit gets 409 and the bridge follows the certificate.
    let kim_body = add_body("add", "xq-kim", "Kim Jae", json!({}));
    let (kim, kim_header) = fake.pulled_elsewhere(kim_body.clone());
    let kim_req = testamur_common::wire::SubmitRequest {
        action: Some("add".into()),
        username: Some("xq-kim".into()),
        course_id: Some(COURSE.into()),
        name: Some("Kim Jae".into()),
        course_name: Some("Bridges and Queues".into()),
        grade: Some("Pass".into()),
        ..Default::default()
    };
    ctx.lms.submit(&kim_req).await.unwrap().unwrap();
    let key = testamur::xqueue::submission::Envelope {
        header: kim_header.clone(),
        body: kim_body.clone(),
    }
    .key();
    kept.push(
        json!({"event": "taken", "key": key, "header": kim_header, "body": kim_body}).to_string(),
    );
    kept.push(json!({"event": "submitting", "key": key}).to_string());
    std::fs::write(&state_file, kept.join("\n") + "\n").unwrap();
    // The CC is down when the bridge comes back: it retries until the CC returns.
    c.kill_cc();
    let restart_at = std::fs::read_to_string(&log).unwrap().len();
    let mut bridge = BridgeProc::start(&conf, &log);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.start_cc().unwrap();
    c.wait_healthy(Duration::from_secs(30)).await.unwrap();
    // Kim's certificate still generating (no workserver yet): the bridge's 409
    // is its own add, followed. (Once downloadable, a 409 to an add whose key
    // the CC does not know means the add never arrived: it would regenerate.)
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap()[restart_at..]
        .contains("already has this submission")
    {
        assert!(
            Instant::now() < deadline,
            "the bridge did not follow kim's certificate\n{}",
            ctx.diagnostics()
        );
        bridge.assert_running(&log);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.start_ws(1).unwrap();
    c.start_ws(2).unwrap();
    ctx.wait_results(16, &mut bridge).await;
    let after = std::fs::read_to_string(&log).unwrap()[restart_at..].to_owned();
    assert!(after.contains("resuming=5"), "{after}");
    assert!(after.contains("already has this submission"), "{after}");
    assert!(
        after.contains("failed; retrying"),
        "no retry while the CC was down: {after}"
    );
    for (id, u) in &late {
        let v = ctx
            .assert_success(*id, "add", u, CertState::Downloadable)
            .await;
        let jobs = v
            .history
            .unwrap()
            .iter()
            .filter(|h| h.state == CertState::Generating)
            .count();
        assert_eq!(jobs, 1, "{u}: the restart made a second job");
    }
    let late = [(kim, "xq-kim")];
    for (id, u) in &late {
        let v = ctx
            .assert_success(*id, "add", u, CertState::Downloadable)
            .await;
        let jobs = v
            .history
            .unwrap()
            .iter()
            .filter(|h| h.state == CertState::Generating)
            .count();
        assert_eq!(jobs, 1, "{u}: the restart made a second job");
    }
    let v = ctx
        .assert_success(regen_late, "regen", "xq-cyd", CertState::Downloadable)
        .await;
    let regens = v
        .history
        .unwrap()
        .iter()
        .filter(|h| h.state == CertState::Regenerating)
        .count();
    assert_eq!(regens, 1, "the restart made a second regen");

    // SIGTERM stops it cleanly. Exactly one answer per submission, no stray
    // ones; no secret in the log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = bridge.terminate();
    assert!(status.success(), "{status}");
    let f = fake.lock();
    assert_eq!(f.results.len(), f.given.len(), "{:?}", f.results);
    for id in f.given.keys() {
        let n = f.results.iter().filter(|(h, _)| h == &f.given[id]).count();
        assert_eq!(n, 1, "submission {id} answered {n} times");
    }
    drop(f);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("submission_id=") && text.contains("cert_id="),
        "{text}"
    );
    assert!(text.contains("xqueue bridge stopped"), "{text}");
    for secret in [XQ_PASS, GATE_PASS, c.info.lms_api_key.as_str()] {
        assert!(!text.contains(secret), "a secret is in the bridge log");
    }
    eprintln!("xqueue bridge test took {:?}", started.elapsed());
}
