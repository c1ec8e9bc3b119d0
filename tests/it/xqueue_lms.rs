//! The bridge as a real Open edX sees it: the fake xqueue with openedx/xqueue's
//! re-offers (an unacknowledged submission is handed out again under a new pull
//! key after `SUBMISSION_PROCESSING_DELAY`, here 400 ms), and behind it a
//! stand-in for edx-platform's certificate handlers (`update_certificate`,
//! `update_example_certificate`) with `GeneratedCertificate`'s column limits
//! (uuids 32, download_url 128, error_reason 512 characters; MySQL in strict
//! mode refuses longer values) and its state checks. The stand-in also makes
//! the submissions as edx-platform does: `create` for every generation (also of
//! an existing certificate), standard template names, example certificates,
//! the 2013 LMS's delete by uuid. docs/XQUEUE.md names each behaviour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testamur_common::ids::{CertId, CourseId, Username};
use testamur_common::state::CertState;
use testamur_common::wire::CertificateView;

use crate::helpers::{cluster, dump_logs, pdffonts, pdftotext};
use crate::xqueue_fake::{
    random_hex, BridgeProc, FakeXqueue, GATE_PASS, GATE_USER, QUEUE, XQ_PASS, XQ_USER,
};

const LCOURSE: &str = "course-v1:XqL+LMS101+2026";

// ---------------------------------------------------------------- the LMS stand-in

/// A `GeneratedCertificate` row.
#[derive(Clone, Debug, Default)]
struct Row {
    status: String,
    key: String,
    download_uuid: String,
    verify_uuid: String,
    download_url: String,
    error_reason: String,
}

/// An `ExampleCertificate` row.
#[derive(Clone, Debug, Default)]
struct Example {
    access_key: String,
    status: String,
    download_url: String,
    error_reason: String,
}

#[derive(Default)]
struct LmsState {
    certs: HashMap<String, Row>,
    examples: HashMap<String, Example>,
    /// username → callbacks to fail (the LMS answers 500) before it works.
    fail_next: HashMap<String, u32>,
    /// Every delivery the LMS did not acknowledge, with why.
    refusals: Vec<(String, String)>,
}

type Lms = Arc<Mutex<LmsState>>;

/// MySQL strict mode: a value longer than its column fails the save.
fn column(name: &str, v: &str, max: usize) -> Result<String, String> {
    if v.chars().count() > max {
        return Err(format!(
            "Data too long for column '{name}' ({} > {max})",
            v.chars().count()
        ));
    }
    Ok(v.to_owned())
}

/// edx-platform's `update_certificate` / `update_example_certificate`.
fn deliver(st: &mut LmsState, header: &str, body: &str) -> Result<(), String> {
    let h: Value = serde_json::from_str(header).map_err(|e| format!("header: {e}"))?;
    let b: Value = serde_json::from_str(body).map_err(|e| format!("body: {e}"))?;
    let url = h["lms_callback_url"].as_str().unwrap_or("");
    let key = h["lms_key"].as_str().unwrap_or("");
    let user = b["username"].as_str().unwrap_or("").to_owned();
    let text = |k: &str| b[k].as_str().unwrap_or("").to_owned();
    if url.contains("/update_example_certificate") {
        let ex = st
            .examples
            .get_mut(&user)
            .filter(|e| e.access_key == key)
            .ok_or("404: no example certificate with this uuid and access key")?;
        if b.get("error").is_some() {
            ex.status = "error".into();
            ex.error_reason = text("error_reason");
        } else {
            let u = b["url"]
                .as_str()
                .ok_or("400: Parameter 'download_url' is required")?;
            ex.download_url = column("download_url", u, 255)?;
            ex.status = "success".into();
        }
        return Ok(());
    }
    if let Some(n) = st.fail_next.get_mut(&user).filter(|n| **n > 0) {
        *n -= 1;
        return Err("HTTP 500 (the LMS is down)".into());
    }
    let row = st
        .certs
        .get_mut(&format!("{user}\n{}", text("course_id")))
        .filter(|r| r.key == key)
        .ok_or("unable to lookup key")?;
    if b.get("error").is_some() {
        row.error_reason = column("error_reason", &text("error_reason"), 512)?;
        row.status = "error".into();
    } else if row.status == "generating" {
        row.download_uuid = column("download_uuid", &text("download_uuid"), 32)?;
        row.verify_uuid = column("verify_uuid", &text("verify_uuid"), 32)?;
        row.download_url = column("download_url", &text("url"), 128)?;
        row.status = "downloadable".into();
    } else if row.status == "deleting" {
        row.status = "deleted".into();
    } else {
        return Err(format!("invalid cert status {}", row.status));
    }
    Ok(())
}

fn callback(lms: &Lms) -> crate::xqueue_fake::Callback {
    let lms = lms.clone();
    Arc::new(move |header: &str, body: &str| {
        let mut st = lms.lock().unwrap();
        match deliver(&mut st, header, body) {
            Ok(()) => true,
            Err(why) => {
                let user = serde_json::from_str::<Value>(body)
                    .ok()
                    .and_then(|b| b["username"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                st.refusals.push((user, why));
                false
            }
        }
    })
}

fn lms_header(path: &str, key: &str, task: &str) -> String {
    json!({
        "lms_callback_url": format!("https://lms.example.org{path}?key={task}"),
        "lms_key": key,
        "queue_name": QUEUE,
    })
    .to_string()
}

/// edx-platform's `add_cert` (also its regeneration path): status generating,
/// a new key, `create` with the course's standard template name.
fn add_cert(fake: &FakeXqueue, lms: &Lms, user: &str, name: &str, extra: Value) -> u64 {
    let key = random_hex();
    let row = Row {
        status: "generating".into(),
        key: key.clone(),
        ..Default::default()
    };
    lms.lock()
        .unwrap()
        .certs
        .insert(format!("{user}\n{LCOURSE}"), row);
    let mut body = json!({
        "action": "create",
        "username": user,
        "course_id": LCOURSE,
        "course_name": "Bridges for Real",
        "name": name,
        "grade": "Pass",
        "template_pdf": "certificate-template-XqL-LMS101.pdf",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    fake.push_with(
        &lms_header("/update_certificate", &key, &key),
        body.to_string(),
    )
}

/// A delete: the 2013 LMS's `del_cert` (uuids, no course_id) or one naming the
/// course.
fn del_cert(fake: &FakeXqueue, lms: &Lms, user: &str, of_2013: bool) -> u64 {
    let mut st = lms.lock().unwrap();
    let row = st.certs.get_mut(&format!("{user}\n{LCOURSE}")).unwrap();
    row.status = "deleting".into();
    let body = if of_2013 {
        json!({"action": "delete", "delete_verify_uuid": row.verify_uuid,
               "delete_download_uuid": row.download_uuid, "username": user})
    } else {
        json!({"action": "delete", "username": user, "course_id": LCOURSE})
    };
    let header = lms_header("/update_certificate", &row.key, &row.key);
    drop(st);
    fake.push_with(&header, body.to_string())
}

/// edx-platform's `add_example_cert`: the example's uuid as username, no
/// course name, its own callback.
fn add_example(fake: &FakeXqueue, lms: &Lms) -> (u64, String) {
    let uuid = random_hex();
    let access_key = random_hex();
    lms.lock().unwrap().examples.insert(
        uuid.clone(),
        Example {
            access_key: access_key.clone(),
            status: "started".into(),
            ..Default::default()
        },
    );
    let body = json!({
        "action": "create",
        "course_id": LCOURSE,
        "name": "John Doë",
        "template_pdf": "certificate-template-XqL-LMS101.pdf",
        "username": uuid,
        "example_certificate": true,
    });
    let id = fake.push_with(
        &lms_header("/update_example_certificate", &access_key, &uuid),
        body.to_string(),
    );
    (id, uuid)
}

fn row(lms: &Lms, user: &str) -> Row {
    lms.lock().unwrap().certs[&format!("{user}\n{LCOURSE}")].clone()
}

fn cert_id(user: &str) -> CertId {
    CertId::for_pair(
        &CourseId::parse(LCOURSE).unwrap(),
        &Username::parse(user).unwrap(),
    )
}

fn file_of(url: &str) -> std::path::PathBuf {
    url.strip_prefix("file://")
        .expect("the test cluster publishes to a directory")
        .into()
}

fn jobs(view: &CertificateView, state: CertState) -> usize {
    view.history
        .as_ref()
        .unwrap()
        .iter()
        .filter(|h| h.state == state)
        .count()
}

// ---------------------------------------------------------------- the test

#[tokio::test(flavor = "multi_thread")]
async fn open_edx_lms_through_xqueue_reoffers_and_column_limits() {
    let started = Instant::now();
    let mut c = cluster(|_| {}).await;
    let fake = FakeXqueue::start().await;
    let lms: Lms = Arc::default();
    {
        let mut f = fake.lock();
        f.reoffer_after = Some(Duration::from_millis(400));
        f.lms = Some(callback(&lms));
    }
    let dir = tempfile::Builder::new()
        .prefix("tm-xql-")
        .tempdir()
        .unwrap();
    let conf = dir.path().join("xqueue.conf");
    std::fs::write(
        &conf,
        format!(
            r#"xqueue_url = "{xq}"
allow_http = true
queue_name = "{QUEUE}"
xqueue_username = "{XQ_USER}"
xqueue_password = "{XQ_PASS}"
basic_auth_user = "{GATE_USER}"
basic_auth_password = "{GATE_PASS}"
cc_url = "{cc}"
cc_ca_certs = "{ca}"
api_key = "{key}"
state_file = "bridge-state.jsonl"
poll_interval_ms = 100
max_in_flight = 50
template_default = "classic"

[[template_rules]]
org = "XqL"
mode = "verified"
template = "letter"

[[template_rules]]
pdf = "long-*"
template = "no-such-template"
"#,
            xq = fake.url,
            cc = c.info.cc_url,
            ca = c.info.ca_cert.display(),
            key = c.info.lms_api_key,
        ),
    )
    .unwrap();
    let log = dir.path().join("bridge.log");
    let logs = c.dir().join("logs");
    let diagnostics = || {
        format!(
            "--- bridge log\n{}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            dump_logs(&logs)
        )
    };
    let cc = c.lms().unwrap();
    let view = |user: &str| {
        let cc = &cc;
        let id = cert_id(user);
        async move { cc.certificate(id.as_str()).await.unwrap().unwrap() }
    };
    let mut bridge = BridgeProc::start(&conf, &log);
    // Until every row is out of the states the LMS set before queueing.
    let wait_rows = |users: Vec<&'static str>, examples: Vec<String>| {
        let lms = lms.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let (rows_done, examples_done) = {
                    let st = lms.lock().unwrap();
                    let rows = users.iter().all(|u| {
                        let s = &st.certs[&format!("{u}\n{LCOURSE}")].status;
                        s != "generating" && s != "deleting"
                    });
                    (
                        rows,
                        examples.iter().all(|e| st.examples[e].status != "started"),
                    )
                };
                if rows_done && examples_done {
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    // ---- creates in several scripts, template rules and default, a language,
    // an unknown template, a missing name, an LMS failing five callbacks, an
    // example certificate. Every certificate takes longer than the 400 ms after
    // which xqueue hands its submission out again.
    let long_pdf = format!("long-{}.pdf", "x".repeat(450));
    add_cert(&fake, &lms, "xl-ada", "Ada Lovelace", json!({}));
    add_cert(
        &fake,
        &lms,
        "xl-amal",
        "أمل الحسن",
        json!({"template_pdf": "certificate-template-XqL-LMS101-verified.pdf"}),
    );
    add_cert(
        &fake,
        &lms,
        "xl-wang",
        "王小明",
        json!({"language": "zh_HANT"}),
    );
    add_cert(&fake, &lms, "xl-priya", "प्रिया शर्मा", json!({}));
    add_cert(
        &fake,
        &lms,
        "xl-eve",
        "Eve",
        json!({"template_pdf": long_pdf}),
    );
    add_cert(&fake, &lms, "xl-nan", "", json!({}));
    lms.lock().unwrap().fail_next.insert("xl-fay".into(), 5);
    let fay = add_cert(&fake, &lms, "xl-fay", "Fay Wray", json!({}));
    let (example, ex_uuid) = add_example(&fake, &lms);
    let users = vec![
        "xl-ada", "xl-amal", "xl-wang", "xl-priya", "xl-eve", "xl-nan", "xl-fay",
    ];
    assert!(
        wait_rows(users.clone(), vec![ex_uuid.clone()]).await,
        "the LMS's certificates did not all end\n{}",
        diagnostics()
    );
    bridge.assert_running(&log);

    for (user, template) in [
        ("xl-ada", "classic"),
        ("xl-amal", "letter"),
        ("xl-wang", "classic"),
        ("xl-priya", "classic"),
        ("xl-fay", "classic"),
    ] {
        let r = row(&lms, user);
        assert_eq!(r.status, "downloadable", "{user}: {r:?}\n{}", diagnostics());
        let v = view(user).await;
        assert_eq!(v.state, CertState::Downloadable);
        for (lms_uuid, cc_uuid) in [
            (&r.download_uuid, v.download_uuid.as_ref().unwrap()),
            (&r.verify_uuid, v.verify_uuid.as_ref().unwrap()),
        ] {
            assert_eq!(lms_uuid.len(), 32, "{user}: {r:?}");
            assert_eq!(*lms_uuid, cc_uuid.as_str().replace('-', ""));
        }
        assert_eq!(Some(&r.download_url), v.download_url.as_ref());
        assert!(r.download_url.len() <= 128);
        assert_eq!(v.template.as_deref(), Some(template), "{user}");
        assert_eq!(jobs(&v, CertState::Generating), 1, "{user}: {v:?}");
    }
    // zh_HANT (Open edX's code) became zh-Hant: the Traditional Chinese face.
    let wang = file_of(&row(&lms, "xl-wang").download_url);
    let faces: Vec<String> = pdffonts(&wang).into_iter().map(|f| f.0).collect();
    assert!(
        faces.iter().any(|f| f.contains("CJKtc")) && !faces.iter().any(|f| f.contains("CJKsc")),
        "{faces:?}"
    );
    // The unknown template's reason fits the LMS's 512 characters.
    let eve = row(&lms, "xl-eve");
    assert_eq!(eve.status, "error", "{eve:?}");
    assert!(eve.error_reason.chars().count() <= 512);
    assert!(
        eve.error_reason.contains("no-such-template") && eve.error_reason.ends_with('…'),
        "{}",
        eve.error_reason
    );
    let nan = row(&lms, "xl-nan");
    assert_eq!(nan.status, "error");
    assert!(nan.error_reason.contains("name"), "{}", nan.error_reason);
    // Five failed callbacks, five copies answered with the first result, one
    // certificate made once.
    let fay_results = fake.results_for(fay);
    assert_eq!(fay_results.len(), 6, "{fay_results:?}\n{}", diagnostics());
    assert!(fay_results.iter().all(|r| *r == fay_results[0]));
    assert!(fake.lock().sub(fay).retired);
    // From the bridge's memory of the answer: one submit, no CC round trip per copy.
    let bridge_log = std::fs::read_to_string(&log).unwrap();
    let fay_id = cert_id("xl-fay");
    let submits = bridge_log
        .lines()
        .filter(|l| l.contains(fay_id.as_str()) && l.contains("submitted to the CC"))
        .count();
    assert_eq!(submits, 1, "{bridge_log}");
    assert!(bridge_log.contains("was answered already"), "{bridge_log}");
    // Nothing else refused by the LMS (no value too long, no unknown key).
    let refusals = lms.lock().unwrap().refusals.clone();
    assert_eq!(refusals.len(), 5, "{refusals:?}");
    assert!(refusals
        .iter()
        .all(|(u, why)| u == "xl-fay" && why.contains("500")));
    // The example certificate prints a course name, not the course id.
    let ex = lms.lock().unwrap().examples[&ex_uuid].clone();
    assert_eq!(ex.status, "success", "{ex:?}");
    let text = pdftotext(&file_of(&ex.download_url));
    assert!(
        text.contains("XqL LMS101") && !text.contains(LCOURSE),
        "{text}"
    );
    assert_eq!(fake.results_for(example).len(), 1);

    // ---- a create for an existing certificate regenerates it; a delete naming
    // the course; the 2013 LMS's delete by uuid.
    let ada_before = row(&lms, "xl-ada");
    add_cert(&fake, &lms, "xl-ada", "Ada King", json!({}));
    del_cert(&fake, &lms, "xl-amal", false);
    del_cert(&fake, &lms, "xl-priya", true);
    assert!(
        wait_rows(vec!["xl-ada", "xl-amal", "xl-priya"], vec![]).await,
        "{}",
        diagnostics()
    );
    let ada = row(&lms, "xl-ada");
    assert_eq!(ada.status, "downloadable", "{ada:?}\n{}", diagnostics());
    assert_ne!(ada.verify_uuid, ada_before.verify_uuid);
    let v = view("xl-ada").await;
    assert_eq!(jobs(&v, CertState::Regenerating), 1, "{v:?}");
    assert_eq!(
        v.verify_uuid.unwrap().as_str().replace('-', ""),
        ada.verify_uuid
    );
    for user in ["xl-amal", "xl-priya"] {
        assert_eq!(
            row(&lms, user).status,
            "deleted",
            "{user}\n{}",
            diagnostics()
        );
        assert_eq!(view(user).await.state, CertState::Deleted);
    }

    // ---- generation longer than the re-offer delay: the copies join the first,
    // the answer goes to the newest pull key, one job.
    c.kill_ws(1);
    c.kill_ws(2);
    let slow = add_cert(&fake, &lms, "xl-slow", "Sam Slow", json!({}));
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.lock().sub(slow).pulls < 4 {
        assert!(Instant::now() < deadline, "no re-offers\n{}", diagnostics());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.start_ws(1).unwrap();
    c.start_ws(2).unwrap();
    assert!(
        wait_rows(vec!["xl-slow"], vec![]).await,
        "{}",
        diagnostics()
    );
    assert_eq!(row(&lms, "xl-slow").status, "downloadable");
    let v = view("xl-slow").await;
    assert_eq!(jobs(&v, CertState::Generating), 1, "{v:?}");
    // Answered to the newest pull key: at most one answer refused (one that
    // crossed a re-offer in flight), none sent again and again to an old key.
    let slow_results = fake.results_for(slow);
    assert!(slow_results.iter().all(|r| *r == slow_results[0]));
    assert!(
        slow_results.len() <= 2,
        "{slow_results:?}\n{}",
        diagnostics()
    );

    let status = bridge.terminate();
    assert!(status.success(), "{status}");
    let f = fake.lock();
    assert!(
        f.subs.iter().all(|s| s.retired),
        "unretired: {:?}",
        f.subs
            .iter()
            .filter(|s| !s.retired)
            .map(|s| s.id)
            .collect::<Vec<_>>()
    );
    drop(f);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("handed out a submission again"), "{text}");
    assert!(text.contains("the LMS's create regenerates it"), "{text}");
    eprintln!("xqueue LMS test took {:?}", started.elapsed());
}
