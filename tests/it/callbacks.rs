//! Callbacks to the LMS: an HTTPS receiver in the test (the cluster's test CA),
//! signatures checked with `openssl dgst -hmac`, retries, a CC restart between
//! attempts, dead letters and their replay, and the URL policy (no SSRF); an LMS
//! whose endpoint stalls holds only its host's share of the delivery slots, and
//! proxy settings in the CC's environment are ignored.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use testamur::cmd::demo::sample_request;
use testamur_common::wire::CallbackPayload;

use crate::helpers::{cluster, dump_logs, redis_now_s, TestCluster};

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    signature: String,
    pub callback_id: String,
    pub body: Vec<u8>,
    pub answered: u16,
}

#[derive(Default)]
struct ReceiverState {
    deliveries: Mutex<Vec<Delivery>>,
    /// Answer 500 to this many more requests.
    failures_left: AtomicUsize,
    /// Take this long to answer.
    delay_ms: AtomicU64,
    /// Requests being answered now, and the most there were at once.
    active: AtomicUsize,
    max_active: AtomicUsize,
}

pub(crate) struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    /// An HTTPS receiver with the cluster's server certificate (for localhost).
    pub(crate) async fn start(c: &TestCluster, fail_first: usize) -> Self {
        let tls = testamur_common::tls::server_config(
            &c.dir().join("tls/server.pem"),
            &c.dir().join("tls/server.key"),
            None,
        )
        .unwrap();
        let state = Arc::new(ReceiverState::default());
        state.failures_left.store(fail_first, Ordering::SeqCst);
        let app = Router::new()
            .route("/lms/callback", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(testamur_cc::server::serve(
            listener,
            tls,
            app,
            Default::default(),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            url: format!("https://localhost:{port}/lms/callback"),
            state,
            _stop: tx,
        }
    }

    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        self.state.deliveries.lock().unwrap().clone()
    }

    pub(crate) fn accepted(&self) -> Vec<Delivery> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.answered == 200)
            .collect()
    }

    pub(crate) fn set_failures(&self, n: usize) {
        self.state.failures_left.store(n, Ordering::SeqCst);
    }

    pub(crate) fn set_delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// The most requests it was answering at once.
    pub(crate) fn max_concurrent(&self) -> usize {
        self.state.max_active.load(Ordering::SeqCst)
    }

    /// Wait until `pred` holds for the deliveries so far.
    pub(crate) async fn wait_for(
        &self,
        c: &TestCluster,
        what: &str,
        pred: impl Fn(&[Delivery]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !pred(&self.deliveries()) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "callbacks: never {what}; got {:?}\n{}",
                    self.deliveries(),
                    dump_logs(&c.dir().join("logs"))
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    State(s): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = s.active.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_active.fetch_max(now, Ordering::SeqCst);
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    s.active.fetch_sub(1, Ordering::SeqCst);
    let fail = s
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let answered = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    s.deliveries.lock().unwrap().push(Delivery {
        signature: h("x-testamur-signature"),
        callback_id: h("x-testamur-callback-id"),
        body: body.to_vec(),
        answered: answered.as_u16(),
    });
    answered
}

/// `sha256=<hex>` computed by openssl, independently of the CC's code.
fn openssl_hmac(secret: &str, body: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("body");
    std::fs::write(&f, body).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .arg(&f)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256={}", text.split_whitespace().next().unwrap())
}

pub(crate) fn callbacks_conf(retry_base_ms: u64, max_attempts: u32) -> String {
    format!(
        "[callbacks]\nallow_private_addresses = true\nssl_ca_certs = \"tls/ca.pem\"\n\
         retry_base_ms = {retry_base_ms}\nretry_max_s = 2\nmax_attempts = {max_attempts}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_is_signed_retried_and_accepted_once() {
    let c = cluster(|s| s.cc_extra = callbacks_conf(200, 8)).await;
    let rx = Receiver::start(&c, 3).await;
    let lms = c.lms().unwrap();
    let mut req = sample_request(1);
    req.callback_url = Some(rx.url.clone());
    let id = lms.submit(&req).await.unwrap().unwrap().cert_id;
    let cert = lms
        .wait_final(id.as_str(), Duration::from_secs(90))
        .await
        .unwrap();
    rx.wait_for(&c, "accepted", |d| d.iter().any(|d| d.answered == 200))
        .await;
    // Nothing more may come once one delivery was accepted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = rx.deliveries();
    assert_eq!(all.len(), 4, "3 refused + 1 accepted: {all:?}");
    assert_eq!(rx.accepted().len(), 1);
    for d in &all {
        assert_eq!(d.body, all[0].body, "every retry carries the same bytes");
        assert_eq!(
            d.signature,
            openssl_hmac(&c.info.callback_secret, &d.body),
            "signature verifies with the lms key's callback secret"
        );
        assert_ne!(
            d.signature,
            openssl_hmac(&c.info.lms_api_key, &d.body),
            "signed with the callback secret, not the API key"
        );
    }
    let p: CallbackPayload = serde_json::from_slice(&all[0].body).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&all[0].body).unwrap();
    for k in [
        "cert_id",
        "course_id",
        "username",
        "action",
        "state",
        "download_url",
        "verify_url",
        "download_uuid",
        "verify_uuid",
        "error_reason",
    ] {
        assert!(v.get(k).is_some(), "payload lacks {k}: {v}");
    }
    assert_eq!(p.cert_id, cert.cert_id.to_string());
    assert_eq!(p.action, "add");
    assert_eq!(p.state, "downloadable");
    assert_eq!(p.download_url, cert.download_url);
    assert_eq!(p.verify_url, cert.verify_url);
    assert_eq!(p.download_uuid, cert.download_uuid.map(|u| u.to_string()));
    assert_eq!(p.error_reason, None);
    assert_eq!(all[0].callback_id, p.callback_id);
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    assert_eq!((st.callbacks_pending, st.dead_letters), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_pending_across_a_cc_restart_are_delivered() {
    let mut c = cluster(|s| s.cc_extra = callbacks_conf(1000, 30)).await;
    let rx = Receiver::start(&c, usize::MAX).await;
    let lms = c.lms().unwrap();
    let mut req = sample_request(2);
    req.callback_url = Some(rx.url.clone());
    let id = lms.submit(&req).await.unwrap().unwrap().cert_id;
    lms.wait_final(id.as_str(), Duration::from_secs(90))
        .await
        .unwrap();
    rx.wait_for(&c, "attempted", |d| !d.is_empty()).await;
    c.kill_cc();
    let tried = rx.deliveries().len();
    rx.set_failures(0);
    // The retry is due within a few seconds, but no CC runs: nothing may arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        rx.deliveries().len(),
        tried,
        "delivered with no CC running?"
    );
    c.start_cc().unwrap();
    c.wait_healthy(Duration::from_secs(30)).await.unwrap();
    rx.wait_for(&c, "accepted after the restart", |d| {
        d.iter().any(|d| d.answered == 200)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.accepted().len(), 1, "{:?}", rx.deliveries());
    let p: CallbackPayload = serde_json::from_slice(&rx.accepted()[0].body).unwrap();
    assert_eq!(p.cert_id, id.to_string());
}

/// Issue 12 item 11: dead letters are removed `dead_letter_retention_days` after
/// they died (here 30, the default); younger ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_removed_after_their_retention() {
    let mut c = cluster(|s| s.cc_extra = callbacks_conf(100, 1)).await;
    let rx = Receiver::start(&c, usize::MAX).await;
    let lms = c.lms().unwrap();
    let op = c.operator().unwrap();
    for i in [5, 6] {
        let mut req = sample_request(i);
        req.callback_url = Some(rx.url.clone());
        lms.submit(&req).await.unwrap().unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while op.status().await.unwrap().unwrap().dead_letters < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead letters\n{}",
            dump_logs(&c.dir().join("logs"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = op.dead_letters().await.unwrap().unwrap();
    let (old, young) = (&dead.items[0].callback_id, &dead.items[1].callback_id);
    // One of them died 31 days ago (by Redis's clock).
    let now_s = redis_now_s(&c);
    let died = (now_s - 31 * 86_400) * 1000;
    c.redis
        .cli(&["ZADD", "tm:callbacks:dead", &died.to_string(), old])
        .unwrap();
    // The reaper looks at dead letters when a CC starts, then once a minute.
    c.terminate_cc_n(1);
    c.start_cc().unwrap();
    c.wait_healthy(Duration::from_secs(30)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let dead = op.dead_letters().await.unwrap().unwrap();
        if dead.count == 1 {
            assert_eq!(&dead.items[0].callback_id, young);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{dead:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exists = c.redis.cli(&["EXISTS", &format!("tm:cb:{old}")]).unwrap();
    assert_eq!(exists.trim(), "0", "the old dead letter's record is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_callbacks_become_dead_letters_and_replay_delivers_them() {
    let c = cluster(|s| s.cc_extra = callbacks_conf(100, 3)).await;
    let rx = Receiver::start(&c, usize::MAX).await;
    let lms = c.lms().unwrap();
    let op = c.operator().unwrap();
    let mut req = sample_request(3);
    req.callback_url = Some(rx.url.clone());
    let id = lms.submit(&req).await.unwrap().unwrap().cert_id;
    lms.wait_final(id.as_str(), Duration::from_secs(90))
        .await
        .unwrap();
    // A delete with its own callback, also refused.
    req.action = Some("delete".into());
    lms.submit(&req).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let st = op.status().await.unwrap().unwrap();
        if st.dead_letters == 2 {
            assert_eq!(st.callbacks_pending, 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead letters: {} ({:?})\n{}",
            st.dead_letters,
            rx.deliveries(),
            dump_logs(&c.dir().join("logs"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rx.deliveries().len(), 6, "3 attempts each");
    let dead = op.dead_letters().await.unwrap().unwrap();
    assert_eq!(dead.count, 2);
    let states: Vec<&str> = dead.items.iter().map(|d| d.state.as_str()).collect();
    assert!(
        states.contains(&"downloadable") && states.contains(&"deleted"),
        "{states:?}"
    );
    for d in &dead.items {
        assert_eq!(d.attempts, 3);
        assert!(d.last_error.contains("HTTP 500"), "{}", d.last_error);
        assert_eq!(d.url, rx.url);
    }
    // Unknown ids are reported, nothing else happens.
    let r = op.replay(Some(vec!["nope".into()])).await.unwrap().unwrap();
    assert_eq!(
        (r.replayed, r.not_found.clone()),
        (0, vec!["nope".to_owned()])
    );
    rx.set_failures(0);
    // Replay one by id, then the rest.
    let first = dead.items[0].callback_id.clone();
    let r = op.replay(Some(vec![first.clone()])).await.unwrap().unwrap();
    assert_eq!(r.replayed, 1);
    rx.wait_for(&c, "replayed by id", |d| {
        d.iter()
            .any(|d| d.answered == 200 && d.callback_id == first)
    })
    .await;
    let r = op.replay(None).await.unwrap().unwrap();
    assert_eq!(r.replayed, 1);
    rx.wait_for(&c, "all replayed", |d| {
        d.iter().filter(|d| d.answered == 200).count() == 2
    })
    .await;
    let st = op.status().await.unwrap().unwrap();
    assert_eq!((st.dead_letters, st.callbacks_pending), (0, 0));
    let deleted = rx
        .accepted()
        .iter()
        .map(|d| serde_json::from_slice::<CallbackPayload>(&d.body).unwrap())
        .find(|p| p.action == "delete")
        .expect("the delete's callback");
    assert_eq!(deleted.state, "deleted");
    assert_eq!(deleted.download_url, None);
    // Replay needs the operator role.
    let f = lms.replay(None).await.unwrap().unwrap_err();
    assert_eq!(f.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_urls_into_private_networks_or_over_http_are_refused() {
    let c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    for url in [
        "https://127.0.0.1/cb",
        "https://localhost:8443/cb",
        "https://10.0.0.7/cb",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/cb",
        "http://lms.example.org/cb",
        "https://user:pw@lms.example.org/cb",
    ] {
        let mut req = sample_request(4);
        req.callback_url = Some(url.into());
        let f = lms.submit(&req).await.unwrap().unwrap_err();
        assert_eq!(f.status, 422, "{url}: {f:?}");
        assert_eq!(f.field.as_deref(), Some("callback_url"), "{url}");
    }
    let mut req = sample_request(4);
    req.callback_url = Some("https://lms.example.org/cb".into());
    lms.submit(&req).await.unwrap().unwrap();
}

/// An HTTPS endpoint (the cluster's certificate, on 127.0.0.1 rather than the
/// receiver's `localhost`: another host) that takes every request and never
/// answers, as a hostile or broken LMS can.
struct Tarpit {
    url: String,
    requests: Arc<AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Tarpit {
    async fn start(c: &TestCluster) -> Self {
        let tls = testamur_common::tls::server_config(
            &c.dir().join("tls/server.pem"),
            &c.dir().join("tls/server.key"),
            None,
        )
        .unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let app = Router::new().route(
            "/cb",
            post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<StatusCode>()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(testamur_cc::server::serve(
            listener,
            tls,
            app,
            Default::default(),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            url: format!("https://127.0.0.1:{port}/cb"),
            requests,
            _stop: tx,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Submits sample learner `n` with a callback to `url`; its cert id.
async fn submit_with_callback(c: &TestCluster, n: usize, url: &str) -> String {
    let mut req = sample_request(n);
    req.callback_url = Some(url.to_owned());
    c.lms()
        .unwrap()
        .submit(&req)
        .await
        .unwrap()
        .unwrap()
        .cert_id
        .to_string()
}

/// Item 15: an LMS whose endpoint accepts callbacks and never answers holds
/// `per_host_concurrency` delivery slots, not all of them: another LMS's callbacks
/// still go out at once, and the stalled ones wait, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_lms_holds_only_its_hosts_share_of_the_delivery_slots() {
    let c = cluster(|s| {
        s.cc_extra = format!(
            "{}timeout_s = 60\nconcurrency = 4\nper_host_concurrency = 2\n",
            callbacks_conf(200, 8)
        )
    })
    .await;
    let tarpit = Tarpit::start(&c).await;
    let good = Receiver::start(&c, 0).await;
    let lms = c.lms().unwrap();
    let mut stalled = Vec::new();
    for n in 1..=6 {
        stalled.push(submit_with_callback(&c, n, &tarpit.url).await);
    }
    for id in &stalled {
        lms.wait_final(id, Duration::from_secs(90)).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tarpit.requests() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the tarpit got {} requests\n{}",
            tarpit.requests(),
            dump_logs(&c.dir().join("logs"))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The tarpit now holds its two slots (for 60 s each); another LMS's callbacks
    // must not wait for them.
    let submitted = tokio::time::Instant::now();
    let mut ok = Vec::new();
    for n in 7..=9 {
        ok.push(submit_with_callback(&c, n, &good.url).await);
    }
    while good.accepted().len() < ok.len() {
        assert!(
            submitted.elapsed() < Duration::from_secs(20),
            "the good LMS got {} of {} callbacks in 20 s while another LMS stalls\n{}",
            good.accepted().len(),
            ok.len(),
            dump_logs(&c.dir().join("logs"))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut got: Vec<String> = good
        .deliveries()
        .iter()
        .map(|d| {
            serde_json::from_slice::<CallbackPayload>(&d.body)
                .unwrap()
                .cert_id
        })
        .collect();
    got.sort();
    ok.sort();
    assert_eq!(got, ok, "each of the good LMS's callbacks exactly once");
    assert_eq!(
        tarpit.requests(),
        2,
        "never more than per_host_concurrency deliveries to the stalled host"
    );
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    assert_eq!(
        (st.callbacks_pending, st.dead_letters),
        (6, 0),
        "the stalled LMS's callbacks are all still pending (2 in flight, 4 waiting)"
    );
}

/// Callbacks parked behind their host's limit are each delivered exactly once,
/// one at a time with `per_host_concurrency = 1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_waiting_for_a_busy_host_are_each_delivered_once() {
    let c =
        cluster(|s| s.cc_extra = format!("{}per_host_concurrency = 1\n", callbacks_conf(200, 8)))
            .await;
    let rx = Receiver::start(&c, 0).await;
    rx.set_delay(Duration::from_millis(700));
    let lms = c.lms().unwrap();
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(submit_with_callback(&c, n, &rx.url).await);
    }
    for id in &ids {
        lms.wait_final(id, Duration::from_secs(90)).await.unwrap();
    }
    rx.wait_for(&c, "all accepted", |d| d.len() >= ids.len())
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got: Vec<String> = rx
        .deliveries()
        .iter()
        .map(|d| {
            serde_json::from_slice::<CallbackPayload>(&d.body)
                .unwrap()
                .cert_id
        })
        .collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "each callback exactly once");
    assert_eq!(rx.max_concurrent(), 1, "one at a time to this host");
    let log = std::fs::read_to_string(c.dir().join("logs/cc.log")).unwrap();
    assert!(
        log.contains("callbacks wait for hosts"),
        "no callback ever waited: the test did not exercise parking"
    );
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    assert_eq!((st.callbacks_pending, st.dead_letters), (0, 0));
}

/// Item 15: proxy variables in the CC's environment do not route callbacks
/// through a proxy (which would also hide the real destination from the SSRF
/// filter): they go straight to the LMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_in_the_ccs_environment_are_ignored() {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = Arc::new(AtomicUsize::new(0));
    let counter = proxied.clone();
    tokio::spawn(async move {
        // A bogus proxy: takes the connection and hangs up.
        while let Ok((conn, _)) = proxy.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    let c = cluster(|s| {
        s.cc_extra = callbacks_conf(200, 8);
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            s.cc_env.push((1, var.into(), proxy_url.clone()));
        }
        s.cc_env.push((1, "NO_PROXY".into(), String::new()));
        s.cc_env.push((1, "no_proxy".into(), String::new()));
    })
    .await;
    let rx = Receiver::start(&c, 0).await;
    let id = submit_with_callback(&c, 1, &rx.url).await;
    c.lms()
        .unwrap()
        .wait_final(&id, Duration::from_secs(90))
        .await
        .unwrap();
    rx.wait_for(&c, "accepted despite HTTPS_PROXY", |d| {
        d.iter().any(|d| d.answered == 200)
    })
    .await;
    assert_eq!(rx.deliveries().len(), 1, "{:?}", rx.deliveries());
    assert_eq!(
        proxied.load(Ordering::SeqCst),
        0,
        "the CC connected to the proxy"
    );
}
