//! Shared test set-up: a cluster in a temp dir, gpg and poppler checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use testamur::devcluster::{Cluster, ClusterSpec};

pub const BIN: &str = env!("CARGO_BIN_EXE_testamur");

pub struct TestCluster {
    pub cluster: Cluster,
    // Dropped after the cluster (fields drop in order), so processes stop first.
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestCluster {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }
}

pub async fn cluster(configure: impl FnOnce(&mut ClusterSpec)) -> TestCluster {
    let dir = tempfile::Builder::new()
        .prefix("tm-it-")
        .tempdir()
        .expect("temp dir");
    let mut spec = ClusterSpec::new(dir.path().join("c"), BIN);
    spec.log_level = "info,testamur_cc=debug".into();
    configure(&mut spec);
    let cluster = match Cluster::start(spec).await {
        Ok(c) => c,
        Err(e) => {
            let logs = dump_logs(&dir.path().join("c/logs"));
            panic!("cluster did not start: {e:#}\n{logs}");
        }
    };
    TestCluster { cluster, _dir: dir }
}

pub fn dump_logs(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!("--- {} (last lines)\n", e.path().display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

/// A throwaway gpg home with the cluster's public key imported.
pub struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    pub fn with_key(key: &Path) -> Self {
        let home = tempfile::Builder::new()
            .prefix("tm-gpg-")
            .tempdir()
            .unwrap();
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(home.path())
            .args(["--batch", "--quiet", "--import"])
            .arg(key)
            .output()
            .expect("gpg is not installed: run `make setup` (apt-get install gnupg)");
        assert!(
            out.status.success(),
            "gpg --import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { home }
    }

    /// Runs the real `gpg --verify SIG FILE`; true for a good signature.
    pub fn verify(&self, sig: &Path, file: &Path) -> Result<(), String> {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--verify"])
            .arg(sig)
            .arg(file)
            .output()
            .map_err(|e| e.to_string())?;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() && err.contains("Good signature") {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// `pdftotext FILE -` (poppler).
pub fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext is not installed: run `make setup` (apt-get install poppler-utils)");
    assert!(
        out.status.success(),
        "pdftotext failed on {}",
        pdf.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pdffonts FILE` rows as (name, emb, sub, uni).
pub fn pdffonts(pdf: &Path) -> Vec<(String, String, String, String)> {
    let out = Command::new("pdffonts")
        .arg(pdf)
        .output()
        .expect("pdffonts (poppler-utils) is not installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let n = cols.len();
            (
                cols[0].to_owned(),
                cols[n - 5].to_owned(),
                cols[n - 4].to_owned(),
                cols[n - 3].to_owned(),
            )
        })
        .collect()
}

pub fn public_file(c: &Cluster, rel: &str) -> PathBuf {
    c.info.storage_dir.join(rel)
}

/// Register a workserver by hand (a test standing in for a WS process); returns
/// (ws_id, token). It registers the templates of the newest real workserver, if
/// one registered, so that it may lease the same jobs.
pub async fn register_manual_ws(c: &Cluster, name: &str, capacity: u32) -> (String, String) {
    register_manual_ws_with(c, name, capacity, serde_json::json!({})).await
}

/// [`register_manual_ws`] with more `capabilities` (e.g. `{"status_lists": true}`).
pub async fn register_manual_ws_with(
    c: &Cluster,
    name: &str,
    capacity: u32,
    capabilities: serde_json::Value,
) -> (String, String) {
    let api = c.operator().unwrap();
    let mut body = serde_json::json!({"name": name, "cc_pass": c.info.cc_pass, "capacity": capacity,
        "version": "test", "capabilities": capabilities});
    let digest = c.redis.cli(&["GET", "tm:catalog:current"]).unwrap();
    if !digest.trim().is_empty() {
        let json = c
            .redis
            .cli(&["GET", &format!("tm:catalog:{}", digest.trim())])
            .unwrap();
        let catalog: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        body["capabilities"]["templates"] = catalog;
    }
    let reg: serde_json::Value = api
        .http()
        .post(api.url("/v1/workservers/register"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        reg["ws_id"].as_str().unwrap().to_owned(),
        reg["token"].as_str().unwrap().to_owned(),
    )
}

/// Wait for every certificate to leave its pending state and check it ended
/// downloadable, exactly once; on a timeout, panic with the cluster's logs.
pub async fn assert_all_downloadable(c: &Cluster, ids: &[testamur_common::ids::CertId]) {
    use testamur_common::state::CertState;
    let lms = c.lms().unwrap();
    for id in ids {
        let cert = match lms
            .wait_final(id.as_str(), std::time::Duration::from_secs(90))
            .await
        {
            Ok(cert) => cert,
            Err(e) => panic!("{e:#}\n{}", dump_logs(&c.dir().join("logs"))),
        };
        assert_eq!(
            cert.state,
            CertState::Downloadable,
            "{id}: {:?}",
            cert.error_reason
        );
        let times = cert
            .history
            .unwrap()
            .iter()
            .filter(|h| h.state == CertState::Downloadable)
            .count();
        assert_eq!(times, 1, "{id} reached downloadable {times} times");
    }
}

/// `POST /v1/leases` as a manually registered workserver; returns the jobs.
pub async fn lease_jobs(
    c: &Cluster,
    token: &str,
    max_jobs: u32,
    wait_ms: u64,
) -> Vec<serde_json::Value> {
    let api = c.operator().unwrap();
    let v: serde_json::Value = api
        .http()
        .post(api.url("/v1/leases"))
        .bearer_auth(token)
        .json(&serde_json::json!({"max_jobs": max_jobs, "wait_ms": wait_ms}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["jobs"]
        .as_array()
        .expect("a lease answer has jobs")
        .clone()
}

/// Submits `action` for sample learner 1 and waits (90 s at most) for the
/// certificate to settle; on a timeout, panics with the cluster's logs.
pub async fn run_action(c: &TestCluster, action: &str) -> testamur_common::wire::CertificateView {
    let lms = c.lms().unwrap();
    let mut req = testamur::cmd::demo::sample_request(1);
    req.action = Some(action.into());
    let id = lms.submit(&req).await.unwrap().unwrap().cert_id;
    match lms
        .wait_final(id.as_str(), std::time::Duration::from_secs(90))
        .await
    {
        Ok(cert) => cert,
        Err(e) => panic!("{e:#}\n{}", dump_logs(&c.dir().join("logs"))),
    }
}

/// `kill -SIG PID`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Sample requests 0..n, learner `i` named `{prefix}{i:04}`.
pub fn sample_requests(prefix: &str, n: usize) -> Vec<testamur_common::wire::SubmitRequest> {
    (0..n)
        .map(|i| {
            let mut r = testamur::cmd::demo::sample_request(i);
            r.username = Some(format!("{prefix}{i:04}"));
            r
        })
        .collect()
}

/// Submits a batch that must be accepted whole; the certificate ids, in order.
pub async fn submit_all(
    lms: &testamur::api::ApiClient,
    reqs: &[testamur_common::wire::SubmitRequest],
) -> Vec<testamur_common::ids::CertId> {
    lms.submit_batch(reqs)
        .await
        .unwrap()
        .unwrap()
        .results
        .into_iter()
        .map(|r| match r {
            testamur_common::wire::BatchResult::Accepted(a) => a.cert_id,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Freezes workserver `name` (pid `pid`, SIGSTOP) at a moment it holds leases
/// while the queue is full (20 s at most); it stays frozen.
pub async fn freeze_holding_leases(c: &Cluster, pid: u32, name: &str) {
    let op = c.operator().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        signal(pid, "STOP");
        let s = op.status().await.unwrap().unwrap();
        let held = s
            .workservers
            .iter()
            .find(|w| w.name == name)
            .map(|w| w.in_flight)
            .unwrap_or(0);
        if held > 0 {
            return;
        }
        signal(pid, "CONT");
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never held a lease while the queue was full"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Redis's clock (`TIME`), in seconds: tests that backdate records use it.
pub fn redis_now_s(c: &Cluster) -> u64 {
    let out = c.redis.cli(&["TIME"]).unwrap();
    out.lines().next().unwrap().trim().parse().unwrap()
}
