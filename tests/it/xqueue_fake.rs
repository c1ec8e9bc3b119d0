//! The fake xqueue of the bridge tests: in process, plain HTTP, the real
//! protocol (form login with a session cookie, basic auth in front,
//! get_queuelen / get_submission / put_result) and openedx/xqueue's queue
//! semantics: a submission stays unretired until the LMS acknowledges the
//! result xqueue delivers to it (`put_result` → `post_grade_to_lms` →
//! `retired = lms_ack`), and an unretired one pulled longer ago than
//! `SUBMISSION_PROCESSING_DELAY` is handed out again under a new pull key, the
//! old key then refused ("Incorrect key for submission"). The LMS behind it is
//! a [`Callback`] (tests/it/xqueue_lms.rs has edx-platform's), else every
//! delivery is acknowledged. Also the bridge as a child process.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::helpers::BIN;

pub const QUEUE: &str = "certificates";
pub const XQ_USER: &str = "lms-certs";
pub const XQ_PASS: &str = "xq-secret-Pa55word";
pub const GATE_USER: &str = "gate";
pub const GATE_PASS: &str = "gate-secret-0451";
pub const COURSE: &str = "course-v1:XqX+CERT101+2026";

// ---------------------------------------------------------------- fake xqueue

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// Django's login_required: 302 to the login page.
    Redirect,
    /// `{"return_code": 1, "content": "login_required"}`
    Json,
    Forbidden,
}

/// One submission as xqueue's `Submission` row holds it.
pub struct Sub {
    pub id: u64,
    pub body: String,
    /// The LMS's header (`lms_callback_url`, `lms_key`, `queue_name`).
    pub lms_header: String,
    pub pull_time: Option<Instant>,
    pub pullkey: String,
    pub pulls: u32,
    pub retired: bool,
}

/// The LMS as xqueue delivers results to it: true when it acknowledged.
pub type Callback = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

#[derive(Default)]
pub struct Fake {
    pub sessions: HashSet<String>,
    pub logins: u64,
    pub next_id: u64,
    /// In arrival order.
    pub subs: Vec<Sub>,
    /// submission id -> the newest header handed out (with its pull key).
    pub given: HashMap<u64, String>,
    /// submission id -> every header handed out, oldest first.
    pub handed: HashMap<u64, Vec<String>>,
    /// Every put_result: (xqueue_header, xqueue_body), as received.
    pub results: Vec<(String, String)>,
    /// `SUBMISSION_PROCESSING_DELAY`; None: an unretired submission is never
    /// handed out again.
    pub reoffer_after: Option<Duration>,
    pub lms: Option<Callback>,
    /// How to turn away a request without a valid session.
    pub style: Option<Expiry>,
    /// Expire every session after this many authenticated requests, cycling styles.
    pub expire_every: Option<u64>,
    pub authed_requests: u64,
    pub expiries: u64,
    /// Answer every n-th request (any endpoint) with a 502 from a proxy.
    pub flaky_every: Option<u64>,
    pub requests: u64,
    pub flaky_answers: u64,
    pub expiries_answered: HashMap<String, u64>,
}

type Shared = Arc<Mutex<Fake>>;

impl Fake {
    /// As xqueue's get_submission: the oldest unretired submission never pulled
    /// or pulled longer ago than the delay, with a fresh pull key.
    fn pull(&mut self) -> Option<(String, String)> {
        let now = Instant::now();
        let delay = self.reoffer_after;
        let sub = self.subs.iter_mut().find(|s| {
            !s.retired
                && match (s.pull_time, delay) {
                    (None, _) => true,
                    (Some(t), Some(d)) => now.duration_since(t) >= d,
                    (Some(_), None) => false,
                }
        })?;
        sub.pull_time = Some(now);
        sub.pullkey = random_hex();
        sub.pulls += 1;
        let header = json!({"submission_id": sub.id, "submission_key": sub.pullkey}).to_string();
        let body = sub.body.clone();
        let id = sub.id;
        self.given.insert(id, header.clone());
        self.handed.entry(id).or_default().push(header.clone());
        Some((header, body))
    }

    /// As get_queuelen: what pull() could hand out now.
    pub fn available(&self) -> usize {
        let now = Instant::now();
        self.subs
            .iter()
            .filter(|s| {
                !s.retired
                    && match (s.pull_time, self.reoffer_after) {
                        (None, _) => true,
                        (Some(t), Some(d)) => now.duration_since(t) >= d,
                        (Some(_), None) => false,
                    }
            })
            .count()
    }

    /// Submissions not handed out yet.
    pub fn waiting(&self) -> usize {
        self.subs.iter().filter(|s| s.pull_time.is_none()).count()
    }

    pub fn sub(&self, id: u64) -> &Sub {
        self.subs.iter().find(|s| s.id == id).expect("a submission")
    }
}

pub struct FakeXqueue {
    pub url: String,
    state: Shared,
}

pub fn random_hex() -> String {
    testamur_common::ids::random_hex(16)
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// application/x-www-form-urlencoded
pub fn form_decode(s: &str) -> HashMap<String, String> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(h, 16).expect("percent escape"));
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).expect("form values are UTF-8")
    }
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

fn reply(ok: bool, content: Value) -> Response {
    Json(json!({"return_code": if ok { 0 } else { 1 }, "content": content})).into_response()
}

fn basic_ok(headers: &HeaderMap) -> bool {
    let want = format!(
        "Basic {}",
        base64(format!("{GATE_USER}:{GATE_PASS}").as_bytes())
    );
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(want.as_str())
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == "sessionid").then(|| v.to_owned())
    })
}

/// A proxy in front of xqueue failing now and then (before xqueue sees anything).
fn flaky(f: &mut Fake) -> Option<Response> {
    f.requests += 1;
    let k = f.flaky_every?;
    if !f.requests.is_multiple_of(k) {
        return None;
    }
    f.flaky_answers += 1;
    Some(
        (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response(),
    )
}

/// None: the request may proceed; Some: the answer that turns it away.
fn gate(f: &mut Fake, headers: &HeaderMap) -> Option<Response> {
    if let Some(r) = flaky(f) {
        return Some(r);
    }
    if !basic_ok(headers) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"xqueue\"")],
                "basic auth required",
            )
                .into_response(),
        );
    }
    let valid = session_of(headers).is_some_and(|s| f.sessions.contains(&s));
    if valid {
        f.authed_requests += 1;
        if let Some(k) = f.expire_every {
            if f.authed_requests.is_multiple_of(k) {
                // This request still passes; the next one finds the session gone.
                f.sessions.clear();
                f.expiries += 1;
                f.style = Some(match f.expiries % 3 {
                    1 => Expiry::Json,
                    2 => Expiry::Forbidden,
                    _ => Expiry::Redirect,
                });
            }
        }
        return None;
    }
    let style = f.style.unwrap_or(Expiry::Redirect);
    *f.expiries_answered.entry(format!("{style:?}")).or_default() += 1;
    Some(match style {
        Expiry::Redirect => (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                "/xqueue/login/?next=/xqueue/get_queuelen/",
            )],
        )
            .into_response(),
        Expiry::Json => reply(false, json!("login_required")),
        Expiry::Forbidden => (StatusCode::FORBIDDEN, "forbidden").into_response(),
    })
}

async fn login(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut f = s.lock().unwrap();
    if let Some(r) = flaky(&mut f) {
        return r;
    }
    if !basic_ok(&headers) {
        return (StatusCode::UNAUTHORIZED, "basic auth required").into_response();
    }
    let form = form_decode(&body);
    if form.get("username").map(String::as_str) != Some(XQ_USER)
        || form.get("password").map(String::as_str) != Some(XQ_PASS)
    {
        return reply(false, json!("Incorrect login credentials"));
    }
    let sid = random_hex();
    f.sessions.insert(sid.clone());
    f.logins += 1;
    (
        AppendHeaders([
            (
                header::SET_COOKIE,
                format!("sessionid={sid}; expires=Thu, 01 Jan 2099 00:00:00 GMT; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax"),
            ),
            (header::SET_COOKIE, "csrftoken=tok123; Path=/".to_owned()),
        ]),
        reply(true, json!("Logged in")),
    )
        .into_response()
}

/// [`gate`], then the queue name xqueue checks on the queue endpoints.
fn gate_queue(f: &mut Fake, headers: &HeaderMap, q: &HashMap<String, String>) -> Option<Response> {
    if let Some(r) = gate(f, headers) {
        return Some(r);
    }
    if q.get("queue_name").map(String::as_str) != Some(QUEUE) {
        return Some(reply(
            false,
            json!(format!("Valid queue names are: {QUEUE}")),
        ));
    }
    None
}

async fn queuelen(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut f = s.lock().unwrap();
    if let Some(r) = gate_queue(&mut f, &headers, &q) {
        return r;
    }
    reply(true, json!(f.available()))
}

async fn get_submission(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut f = s.lock().unwrap();
    if let Some(r) = gate_queue(&mut f, &headers, &q) {
        return r;
    }
    let Some((header, body)) = f.pull() else {
        return reply(false, json!(format!("Queue '{QUEUE}' is empty")));
    };
    let content = json!({"xqueue_header": header, "xqueue_body": body, "xqueue_files": "{}"});
    reply(true, json!(content.to_string()))
}

async fn put_result(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut f = s.lock().unwrap();
    if let Some(r) = gate(&mut f, &headers) {
        return r;
    }
    let form = form_decode(&body);
    let (Some(h), Some(b)) = (form.get("xqueue_header"), form.get("xqueue_body")) else {
        return reply(false, json!("Incorrect reply format"));
    };
    f.results.push((h.clone(), b.clone()));
    let header: Option<Value> = serde_json::from_str(h).ok();
    let id = header.as_ref().and_then(|v| v["submission_id"].as_u64());
    let key = header
        .as_ref()
        .and_then(|v| v["submission_key"].as_str().map(str::to_owned));
    let Some(sub) = id.and_then(|id| f.subs.iter().position(|s| s.id == id)) else {
        return reply(false, json!("Submission does not exist"));
    };
    if f.subs[sub].pullkey.is_empty() || key.as_deref() != Some(f.subs[sub].pullkey.as_str()) {
        return reply(false, json!("Incorrect key for submission"));
    }
    // post_grade_to_lms, then retired = lms_ack.
    let ack = match f.lms.clone() {
        Some(lms) => lms(&f.subs[sub].lms_header, b),
        None => true,
    };
    f.subs[sub].retired = ack;
    reply(true, json!(""))
}

impl FakeXqueue {
    pub async fn start() -> Self {
        let state: Shared = Arc::default();
        let app = Router::new()
            .route("/xqueue/login/", post(login))
            .route("/xqueue/get_queuelen/", get(queuelen))
            .route("/xqueue/get_submission/", get(get_submission))
            .route("/xqueue/put_result/", post(put_result))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.state.lock().unwrap()
    }

    /// Queue an LMS body; returns the submission id.
    pub fn push(&self, body: impl Into<String>) -> u64 {
        let header = json!({
            "lms_callback_url": "https://lms.example.org/update_certificate?key=k",
            "lms_key": "k", "queue_name": QUEUE,
        });
        self.push_with(&header.to_string(), body.into())
    }

    /// Queue an LMS body under the LMS's header; returns the submission id.
    pub fn push_with(&self, lms_header: &str, body: String) -> u64 {
        let mut f = self.lock();
        f.next_id += 1;
        let id = f.next_id;
        f.subs.push(Sub {
            id,
            body,
            lms_header: lms_header.to_owned(),
            pull_time: None,
            pullkey: String::new(),
            pulls: 0,
            retired: false,
        });
        id
    }

    /// Queue a body and hand it out at once, to nobody (as if another consumer
    /// had pulled it): its id and header.
    pub fn pulled_elsewhere(&self, body: String) -> (u64, String) {
        let id = self.push(body);
        let mut f = self.lock();
        let (header, _) = f.pull().expect("just queued");
        (id, header)
    }

    pub fn logins(&self) -> u64 {
        self.lock().logins
    }

    /// The put_results for submission `id` (bodies parsed), checking each echoes
    /// a header exactly as it was handed out.
    pub fn results_for(&self, id: u64) -> Vec<Value> {
        let f = self.lock();
        let handed = f.handed.get(&id).cloned().unwrap_or_default();
        f.results
            .iter()
            .filter(|(h, _)| {
                serde_json::from_str::<Value>(h)
                    .ok()
                    .and_then(|v| v["submission_id"].as_u64())
                    == Some(id)
            })
            .map(|(h, b)| {
                assert!(
                    handed.contains(h),
                    "header of submission {id} not echoed exactly: {h} (handed out: {handed:?})"
                );
                serde_json::from_str(b)
                    .unwrap_or_else(|e| panic!("put_result body is not JSON ({e}): {b}"))
            })
            .collect()
    }
}

// ---------------------------------------------------------------- the bridge process

pub struct BridgeProc {
    child: Option<Child>,
}

impl BridgeProc {
    pub fn start(conf: &Path, log: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["xqueue-bridge", "--config"])
            .arg(conf)
            .env("RUST_LOG", "info,testamur=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting the bridge");
        Self { child: Some(child) }
    }

    /// SIGKILL: no chance to answer or write anything more.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then the exit status (within 15 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("the bridge did not stop within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn assert_running(&mut self, log: &Path) {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            panic!(
                "the bridge exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

impl Drop for BridgeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}
