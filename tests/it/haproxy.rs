//! Item 22 (issue 12): the load balancer configuration of docs/DEPLOYMENT.md,
//! run. `deploy/haproxy.cfg` (the guide shows the same text; a test checks they
//! are identical) goes to Debian's `haproxy` with only its addresses, port, CA
//! file and SNI name changed. Behind it: two CCs (`trusted_proxies` = the
//! balancer), three workservers and LMS clients, all through the balancer.
//!
//! One CC is SIGKILLed while a stream of submissions goes on: only the requests
//! in flight on it at that instant may fail (with `fall 3`, no `retries` and no
//! `redispatch`, new requests failed for seconds). It is restarted, the other CC
//! is SIGTERMed, and every certificate still ends downloadable exactly once. The
//! CCs see each client's own address through the PROXY protocol v2: one client's
//! wrong credentials get it 429s, not its neighbours behind the same balancer.
//!
//! `TESTAMUR_HAPROXY_CFG=FILE` runs the test with another configuration (same
//! placeholders), e.g. a broken one, to see what the assertions catch.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use testamur::api::ApiClient;
use testamur::cmd::demo::sample_request;
use testamur::devcluster::Cluster;
use testamur_common::ids::CertId;

use crate::helpers::{assert_all_downloadable, cluster, dump_logs, public_file, signal};

const SNIPPET: &str = include_str!("../../deploy/haproxy.cfg");
const DEPLOYMENT: &str = include_str!("../../docs/DEPLOYMENT.md");

/// The guide shows exactly the file the test runs.
#[test]
fn the_deployment_guide_shows_the_tested_haproxy_cfg() {
    assert!(
        DEPLOYMENT.contains(&format!("```\n{SNIPPET}```\n")),
        "docs/DEPLOYMENT.md must show deploy/haproxy.cfg verbatim in a ``` block"
    );
}

/// The snippet with the test's addresses: the only changes.
fn configure(snippet: &str, port: u16, ccs: [u16; 2], ca: &Path) -> String {
    let mut text = snippet.to_owned();
    for (from, to) in [
        ("bind :443", format!("bind 127.0.0.1:{port}")),
        ("10.0.0.11:8443", format!("127.0.0.1:{}", ccs[0])),
        ("10.0.0.12:8443", format!("127.0.0.1:{}", ccs[1])),
        ("/etc/testamur/certs/ca.pem", ca.display().to_string()),
        ("cc.example.org", "localhost".to_owned()),
    ] {
        assert_eq!(text.matches(from).count(), 1, "{from:?} in the snippet");
        text = text.replace(from, &to);
    }
    text
}

/// Our own haproxy process (foreground, its own config and port); killed on drop.
struct Haproxy {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Haproxy {
    fn start(dir: &Path, config: &str, port: u16) -> Self {
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .expect("haproxy is not installed: scripts/setup.sh --test (apt-get install haproxy)");
        assert!(
            check.status.success(),
            "haproxy -c refused the configuration:\n{}{}\n{config}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = dir.join("logs/haproxy.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self { child, log, port }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("haproxy exited with {st}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy never listened:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until haproxy has logged `needle`; when it saw it (polled every
    /// 20 ms), on both clocks.
    async fn wait_logged(&self, needle: &str, timeout: Duration) -> (Instant, SystemTime) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return (Instant::now(), SystemTime::now());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not log {needle:?} within {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last health check CC log `log` answered before `before` (wall clock;
/// the CCs log every request at debug level, with its time).
fn last_check_before(log: &Path, before: SystemTime) -> Option<SystemTime> {
    use time::format_description::well_known::Rfc3339;
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .filter(|l| l.contains("path=\"/healthz\"") && l.contains("status=200"))
        .filter_map(|l| time::OffsetDateTime::parse(l.split_whitespace().next()?, &Rfc3339).ok())
        .map(SystemTime::from)
        .filter(|t| *t < before)
        .max()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A client of the balancer whose connections come from `from` (a loopback
/// address); `fresh`: a new connection (TCP, PROXY header, TLS) per request, as
/// many separate LMS hosts would make.
fn client_via(c: &Cluster, port: u16, from: [u8; 4], key: &str, fresh: bool) -> ApiClient {
    let tls = testamur_common::tls::client_config(&c.info.ca_cert).unwrap();
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .tls_backend_preconfigured(tls)
        .local_address(IpAddr::from(from))
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], port)));
    if fresh {
        b = b.pool_max_idle_per_host(0);
    }
    ApiClient::with_client(
        &format!("https://localhost:{port}"),
        key,
        b.build().unwrap(),
    )
    .unwrap()
}

async fn status_code(api: &ApiClient) -> u16 {
    api.http()
        .get(api.url("/v1/status"))
        .bearer_auth(api.key())
        .send()
        .await
        .expect("through the balancer")
        .status()
        .as_u16()
}

/// One submission attempt as the LMS saw it.
struct Attempt {
    start: Instant,
    end: Instant,
    error: Option<String>,
}

const LMS_CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn haproxy_as_documented_fails_only_in_flight_requests_when_a_cc_dies() {
    let mut c = cluster(|s| {
        s.ccs = 2;
        s.workservers = 0;
        s.ws_capacity = 2;
        s.lease_ttl_s = 5;
        s.heartbeat_interval_s = 1;
        // haproxy reaches the CCs from 127.0.0.1; the clients come from 127.0.0.2-4.
        s.cc_extra = "[limits]\ntrusted_proxies = [\"127.0.0.1\"]\n".into();
    })
    .await;
    let (snippet, which) = match std::env::var("TESTAMUR_HAPROXY_CFG") {
        Ok(path) => (std::fs::read_to_string(&path).unwrap(), path),
        Err(_) => (SNIPPET.to_owned(), "deploy/haproxy.cfg".to_owned()),
    };
    let port = free_port();
    let ccs = [port_of(&c.info.cc_url_of(1)), port_of(&c.info.cc_url_of(2))];
    let mut lb = Haproxy::start(
        c.dir(),
        &configure(&snippet, port, ccs, &c.info.ca_cert),
        port,
    );
    lb.wait_listening().await;
    // The health check verifies the CCs' certificate: a second balancer given
    // another CA's file must take both CCs out (looked at before the kill).
    let other_ca = testamur::tlsgen::generate(&c.dir().join("other-ca"), &["localhost".into()])
        .unwrap()
        .ca_cert;
    let wrong_ca_dir = c.dir().join("wrong-ca");
    std::fs::create_dir_all(wrong_ca_dir.join("logs")).unwrap();
    let wrong_port = free_port();
    let mut wrong_ca_lb = Haproxy::start(
        &wrong_ca_dir,
        &configure(&snippet, wrong_port, ccs, &other_ca),
        wrong_port,
    );
    wrong_ca_lb.wait_listening().await;
    let via = format!("https://localhost:{port}");
    c.add_workservers(3, &via).await.unwrap();
    let (lms_key, op_key) = (c.info.lms_api_key.clone(), c.info.operator_api_key.clone());

    // The CCs count each client behind the balancer as itself (PROXY v2): A's
    // wrong keys get A 429s; A's right key and B's wrong one are still served.
    let wrong = "not-a-key-0123456789";
    let a_bad = client_via(&c, port, [127, 0, 0, 2], wrong, false);
    let mut codes = Vec::new();
    for _ in 0..11 {
        codes.push(status_code(&a_bad).await);
    }
    assert_eq!(&codes[..10], &[401; 10], "{codes:?}");
    assert_eq!(codes[10], 429, "client A was not limited: {codes:?}");
    let a_good = client_via(&c, port, [127, 0, 0, 2], &op_key, false);
    assert_eq!(
        status_code(&a_good).await,
        200,
        "A's right key is locked out"
    );
    let b_bad = client_via(&c, port, [127, 0, 0, 3], wrong, false);
    assert_eq!(
        status_code(&b_bad).await,
        401,
        "client B was limited for A's failures: the CCs see the balancer, not the clients"
    );

    // A steady stream of submissions from LMS clients, each resent (same
    // Idempotency-Key) until accepted, as an LMS does.
    let began = Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let ids = Arc::new(Mutex::new(Vec::<CertId>::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..LMS_CLIENTS {
        let lms = client_via(&c, port, [127, 0, 0, 4], &lms_key, true);
        let (attempts, ids, next, stop) =
            (attempts.clone(), ids.clone(), next.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let mut req = sample_request(i);
                req.username = Some(format!("ha{i:05}"));
                let key = format!("haproxy-{i}");
                loop {
                    let start = Instant::now();
                    let r = lms.submit_idempotent(&req, &key).await;
                    let end = Instant::now();
                    let error = match r {
                        Ok(Ok(ok)) => {
                            ids.lock().unwrap().push(ok.cert_id);
                            None
                        }
                        Ok(Err(f)) if f.status >= 500 => Some(f.to_string()),
                        Ok(Err(f)) => panic!("submission {i} refused: {f}"),
                        Err(e) => Some(format!("{e:#}")),
                    };
                    let failed = error.is_some();
                    attempts.lock().unwrap().push(Attempt { start, end, error });
                    if !failed {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The balancer with another CA's file took both (live) CCs out: the check
    // verifies the certificate.
    for cc in ["cc-1", "cc-2"] {
        wrong_ca_lb
            .wait_logged(&format!("Server ccs/{cc} is DOWN"), Duration::from_secs(10))
            .await;
    }
    assert!(
        wrong_ca_lb.log().contains("SSL handshake failure"),
        "{}",
        wrong_ca_lb.log()
    );
    drop(wrong_ca_lb);

    // SIGKILL CC 1 mid-stream.
    let (killed, killed_wall) = (Instant::now(), SystemTime::now());
    c.kill_cc_n(1);
    let dead = Instant::now();
    let (down, down_wall) = lb
        .wait_logged("Server ccs/cc-1 is DOWN", Duration::from_secs(15))
        .await;
    let last_check = last_check_before(&c.log_path("cc.log"), killed_wall)
        .expect("CC 1 logged no health check before it was killed");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Back, as systemd would restart it; then CC 2 is stopped with SIGTERM.
    c.start_cc_n(1).unwrap();
    lb.wait_logged("Server ccs/cc-1 is UP", Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let termed = Instant::now();
    signal(c.cc_pid(2).unwrap(), "TERM");
    let (term_down, _) = lb
        .wait_logged("Server ccs/cc-2 is DOWN", Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let streamed = began.elapsed();

    let attempts = std::mem::take(&mut *attempts.lock().unwrap());
    let failed: Vec<&Attempt> = attempts.iter().filter(|a| a.error.is_some()).collect();
    let (kill_failed, term_failed): (Vec<&Attempt>, Vec<&Attempt>) =
        failed.iter().partition(|a| a.start < termed);
    let window = |fs: &[&Attempt], from: Instant| {
        fs.iter()
            .map(|a| a.end.saturating_duration_since(from))
            .max()
            .unwrap_or_default()
    };
    let slowest = attempts
        .iter()
        .filter(|a| a.error.is_none() && a.start >= killed && a.start < down)
        .map(|a| a.end - a.start)
        .max()
        .unwrap_or_default();
    let checks_to_down = down_wall.duration_since(last_check).unwrap_or_default();
    println!(
        "RELIABILITY: haproxy ({which}): {} submissions in {} attempts over {streamed:?}; \
         SIGKILL: {} failed, the last {:?} after the kill; haproxy took the CC out {:?} after the kill \
         ({checks_to_down:?} after its last good health check); slowest success meanwhile {slowest:?}; \
         SIGTERM: {} failed, the last {:?} after the signal; taken out {:?} after it",
        ids.lock().unwrap().len(),
        attempts.len(),
        kill_failed.len(),
        window(&kill_failed, killed),
        down - killed,
        term_failed.len(),
        window(&term_failed, termed),
        term_down - termed,
    );
    for a in &failed {
        println!(
            "  failed at +{:?} after the kill: {}",
            a.start.saturating_duration_since(killed),
            a.error.as_deref().unwrap()
        );
    }

    // Only requests in flight at the kill failed (each client had one), and
    // rarely (2 runs in 17 here) a few that haproxy was dispatching when it took
    // a CC out: they fail up to ~1 s later (probably `on-marked-down
    // shutdown-sessions` closing sessions still assigned to the CC, some in the
    // 1 s turn-around before a retry). Anything else means new connections kept
    // going to the dead CC.
    let near = |a: &Attempt, mark: Instant| {
        a.end + Duration::from_millis(250) >= mark && a.end <= mark + Duration::from_millis(1500)
    };
    let at_mark_down = |a: &&&Attempt| near(a, down);
    let late: Vec<_> = kill_failed
        .iter()
        .filter(|a| a.start >= dead && !at_mark_down(a))
        .collect();
    assert!(
        late.is_empty(),
        "{} submissions made after CC 1 died failed, the last {:?} after the kill \
         (the balancer kept sending new connections to the dead CC)",
        late.len(),
        window(&kill_failed, killed)
    );
    assert!(
        kill_failed.len() <= LMS_CLIENTS,
        "{} failed",
        kill_failed.len()
    );
    // A dead CC leaves the pool after 2 failed checks 2 s apart (fall 2, inter
    // 2s): about 4 s after the last check it answered (fall 3: 6 s).
    assert!(
        checks_to_down < Duration::from_millis(5000),
        "CC 1 was taken out {checks_to_down:?} after its last good health check \
         (fall 2 x inter 2s = 4 s)"
    );
    // A CC stopped with SIGTERM finishes what it has: nothing fails (but for
    // the mark-down effect above).
    let term_late = term_failed.iter().filter(|a| !near(a, term_down)).count();
    assert!(
        term_late == 0,
        "{term_late} submissions failed while CC 2 shut down gracefully"
    );
    assert!(
        term_failed.len() <= LMS_CLIENTS,
        "{} failed",
        term_failed.len()
    );
    // Every certificate ends downloadable exactly once.
    let waiting = Instant::now();
    let ids = std::mem::take(&mut *ids.lock().unwrap());
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "a submission was accepted twice");
    assert!(
        ids.len() >= 300,
        "only {} submissions went through",
        ids.len()
    );
    assert_all_downloadable(&c, &ids).await;
    let published = std::fs::read_dir(public_file(&c, "downloads"))
        .unwrap()
        .count();
    assert_eq!(published, ids.len(), "{}", dump_logs(&c.dir().join("logs")));
    println!(
        "RELIABILITY: {} certificates downloadable once each, the last {:?} after the stream stopped",
        ids.len(),
        waiting.elapsed()
    );
    drop(lb);
}
