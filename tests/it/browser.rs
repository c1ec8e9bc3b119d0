//! The dashboard in a real browser: Debian's chromium, headless, driven over the
//! WebDriver protocol by chromedriver (both installed by `scripts/setup.sh
//! --test`). The test signs in through the form like a person, reads the page
//! the browser built, and saves a screenshot (path printed; look at it).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{assert_all_downloadable, cluster, dump_logs};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: run `bash scripts/setup.sh --test` (apt-get install chromium chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::Builder::new()
            .prefix("tm-chromium-")
            .tempdir()
            .unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // The cluster's CA is a throwaway test CA the browser does not know.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--no-first-run",
                    "--window-size=1280,1600",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        Self {
            driver,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v["value"]["error"].is_null(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The page source once it contains `needle` (navigation after a click may
    /// still be going on); on a timeout, the last source.
    async fn source_with(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.source().await;
            if s.contains(needle) || tokio::time::Instant::now() > deadline {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self) -> Vec<u8> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver runs in a process group of its own with the browser it
        // started: end them all, even when the test failed halfway.
        // SAFETY: kill(2) on a process group we created; no memory is involved.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_shows_the_running_cluster() {
    let c = cluster(|_| {}).await;
    let lms = c.lms().unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            lms.submit(&testamur::cmd::demo::sample_request(i))
                .await
                .unwrap()
                .unwrap()
                .cert_id,
        );
    }
    assert_all_downloadable(&c, &ids).await;

    let b = Browser::start().await;
    let dashboard = format!("{}/dashboard", c.info.cc_url);
    b.goto(&dashboard).await;
    let login = b.source().await;
    assert!(login.contains("Operator key"), "{login}");
    // A wrong key first: the form says so.
    b.type_into("#key", "not-the-key-0123456789").await;
    b.click("#sign-in").await;
    let wrong = b.source_with("login-error").await;
    assert!(wrong.contains("id=\"login-error\""), "{wrong}");
    b.type_into("#key", &c.info.operator_api_key).await;
    b.click("#sign-in").await;
    let page = b.source_with("data-ws=").await;
    let logs = || dump_logs(&c.dir().join("logs"));
    for name in ["ws-1", "ws-2"] {
        assert!(
            page.contains(&format!(
                "<tr data-ws=\"{name}\"><td>{name}</td><td class=\"alive\">alive</td>"
            )),
            "{name} not shown alive:\n{page}\n{}",
            logs()
        );
    }
    assert!(
        page.contains(
            "<tr data-state=\"downloadable\"><td>downloadable</td><td class=\"num\">12</td></tr>"
        ),
        "{page}"
    );
    assert!(page.contains("id=\"health\">Healthy<"), "{page}");
    // Completed per workserver add up to what the test did.
    let completed: u64 = c
        .operator()
        .unwrap()
        .status()
        .await
        .unwrap()
        .unwrap()
        .workservers
        .iter()
        .map(|w| w.completed)
        .sum();
    assert_eq!(completed, 12);
    // The session cookie outlives a reload (the page refreshes itself).
    b.goto(&dashboard).await;
    assert!(b.source_with("data-ws=").await.contains("data-ws=\"ws-1\""));
    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("dashboard screenshot: {}", out.display());
}
