//! The xqueue "external pull" protocol, as the old certificate agent spoke it.
//!
//! - `POST /xqueue/login/` (form `username`, `password`) sets a Django session
//!   cookie. The cookie jar is ours (a map from cookie name to value, fed by every
//!   `Set-Cookie`), sent back as one `Cookie` header.
//! - `GET /xqueue/get_queuelen/?queue_name=Q`, `GET /xqueue/get_submission/?queue_name=Q`,
//!   `POST /xqueue/put_result/` (form `xqueue_header`, `xqueue_body`).
//! - Every answer is `{"return_code": 0|1, "content": ...}`; 0 is success.
//!
//! A session that expired shows as a redirect (Django's `login_required`; redirects
//! are never followed), a 401/403, or return code 1 with content mentioning login:
//! the client logs in again (once for all the tasks that noticed) and repeats the
//! request. Network failures, 5xx and answers that are not xqueue's JSON are
//! retried with exponential backoff and jitter until they succeed or the bridge
//! stops. Return code 1 for anything else ("Queue 'q' is empty", "Submission does
//! not exist", ...) is handed to the caller as [`XqError::Refused`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;
use testamur_common::secret::Secret;

use super::config::XqueueConfig;
use super::{Backoff, Stop, Stopped};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XqError {
    /// xqueue answered return code 1 (not about the session): the content.
    #[error("xqueue refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Stopped(#[from] Stopped),
}

/// What one HTTP exchange with xqueue amounted to.
enum Outcome {
    Ok(Value),
    Refused(String),
    Expired(String),
    Transient(String),
}

pub struct XqueueClient {
    http: reqwest::Client,
    base: String,
    queue: String,
    username: String,
    password: Secret,
    basic: Option<(String, Secret)>,
    jar: Mutex<BTreeMap<String, String>>,
    /// Held while logging in, so that tasks noticing the same expiry log in once.
    login_lock: tokio::sync::Mutex<()>,
    /// Incremented by every successful login; 0: never logged in.
    generation: AtomicU64,
    stop: Stop,
}

impl XqueueClient {
    pub fn new(cfg: &XqueueConfig, stop: Stop) -> anyhow::Result<Self> {
        // XqueueConfig::load refuses this already; the password must never go
        // out in clear text by another way in.
        if !cfg.xqueue_url.starts_with("https://") && !cfg.allow_http {
            anyhow::bail!(
                "refusing to send the xqueue password to {}: not https://; set allow_http = true \
                 in {} to allow it",
                cfg.xqueue_url,
                cfg.file.display()
            );
        }
        testamur_common::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30));
        if let Some(ca) = &cfg.xqueue_ca_certs {
            builder = builder.tls_backend_preconfigured(testamur_common::tls::client_config(ca)?);
        }
        Ok(Self {
            http: builder.build()?,
            base: cfg.xqueue_url.clone(),
            queue: cfg.queue_name.clone(),
            username: cfg.xqueue_username.clone(),
            password: cfg.xqueue_password.clone(),
            basic: cfg.basic_auth.clone(),
            jar: Mutex::new(BTreeMap::new()),
            login_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            stop,
        })
    }

    /// How many times the client logged in successfully.
    pub fn logins(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> String {
        format!("{}/xqueue/{path}", self.base)
    }

    fn prepare(&self, req: RequestBuilder) -> RequestBuilder {
        let mut req = req;
        if let Some((user, pass)) = &self.basic {
            req = req.basic_auth(user, Some(pass.expose()));
        }
        let cookies = {
            let jar = self.jar.lock().unwrap_or_else(|e| e.into_inner());
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !cookies.is_empty() {
            req = req.header(COOKIE, cookies);
        }
        req
    }

    /// Keep every cookie the server sets (name=value; attributes ignored except
    /// a deletion: empty value or `Max-Age=0`).
    fn store_cookies(&self, headers: &HeaderMap) {
        let mut jar = self.jar.lock().unwrap_or_else(|e| e.into_inner());
        for h in headers.get_all(SET_COOKIE) {
            let Ok(text) = h.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim().trim_matches('"'));
            if name.is_empty() {
                continue;
            }
            let deleted = value.is_empty()
                || parts.any(|a| {
                    let a = a.trim().to_ascii_lowercase();
                    a == "max-age=0" || a.starts_with("max-age=-")
                });
            if deleted {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// One request. `session`: the login generation whose cookies it carries
    /// (None for the login itself). A late answer to a request of an older
    /// session must not touch the jar: Django deletes the cookie of an expired
    /// session, which would throw away the fresh one.
    async fn exchange(&self, req: RequestBuilder, session: Option<u64>) -> Outcome {
        let resp = match self.prepare(req).send().await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Transient(format!("cannot reach xqueue: {}", super::chain(&e)))
            }
        };
        if session.is_none_or(|g| g == self.generation.load(Ordering::SeqCst)) {
            self.store_cookies(resp.headers());
        }
        let status = resp.status();
        if status.is_redirection() {
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("")
                .to_owned();
            return Outcome::Expired(format!("HTTP {status} redirect to {to}"));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Outcome::Expired(format!("HTTP {status}"));
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Transient(format!("reading xqueue's answer: {}", super::chain(&e)))
            }
        };
        if !status.is_success() {
            return Outcome::Transient(format!("HTTP {status} from xqueue: {}", snippet(&body)));
        }
        let v: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return Outcome::Transient(format!(
                    "xqueue's answer is not JSON: {}",
                    snippet(&body)
                ))
            }
        };
        let content = v.get("content").cloned().unwrap_or(Value::Null);
        match v.get("return_code").and_then(Value::as_i64) {
            Some(0) => Outcome::Ok(content),
            Some(_) => {
                let text = match &content {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if text.to_ascii_lowercase().contains("login") {
                    Outcome::Expired(text)
                } else {
                    Outcome::Refused(text)
                }
            }
            None => Outcome::Transient(format!(
                "xqueue's answer has no return_code: {}",
                snippet(&body)
            )),
        }
    }

    /// One login attempt: Ok, or why not.
    pub async fn login_once(&self) -> Result<(), String> {
        let req = self.http.post(self.url("login/")).form(&[
            ("username", self.username.as_str()),
            ("password", self.password.expose()),
        ]);
        match self.exchange(req, None).await {
            Outcome::Ok(_) => {
                let n = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                tracing::info!(xqueue = %self.base, user = %self.username, logins = n, "logged in to xqueue");
                Ok(())
            }
            Outcome::Refused(m) | Outcome::Expired(m) => Err(format!(
                "xqueue refused the login of `{}`: {m}",
                self.username
            )),
            Outcome::Transient(m) => Err(m),
        }
    }

    /// Log in unless someone already did since `seen` (the generation the caller
    /// found expired); retries with backoff until it works or the bridge stops.
    async fn relogin(&self, seen: u64) -> Result<(), Stopped> {
        let _guard = self.stop.run(self.login_lock.lock()).await?;
        if self.generation.load(Ordering::SeqCst) != seen {
            return Ok(());
        }
        self.jar.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        loop {
            match self.stop.run(self.login_once()).await? {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64,
                        "cannot log in to xqueue; check xqueue_url, xqueue_username, xqueue_password (and basic_auth_*)");
                    self.stop.sleep(wait).await?;
                }
            }
        }
    }

    /// Send a request (built anew for every attempt) until xqueue gives an answer.
    ///
    /// `interruptible`: whether a stop may cut the exchange short. Not for
    /// requests whose effect must be seen (taking a submission, posting a result):
    /// those finish (or time out) first, only the waits between attempts stop.
    async fn call(
        &self,
        what: &str,
        interruptible: bool,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Value, XqError> {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let mut expired_in_a_row = 0u32;
        loop {
            let generation = self.generation.load(Ordering::SeqCst);
            if generation == 0 {
                self.relogin(0).await?;
                continue;
            }
            if self.stop.is_stopped() {
                return Err(Stopped.into());
            }
            let outcome = if interruptible {
                self.stop
                    .run(self.exchange(make(&self.http), Some(generation)))
                    .await?
            } else {
                self.exchange(make(&self.http), Some(generation)).await
            };
            match outcome {
                Outcome::Ok(v) => return Ok(v),
                Outcome::Refused(m) => return Err(XqError::Refused(m)),
                Outcome::Expired(m) => {
                    expired_in_a_row += 1;
                    tracing::info!(request = what, answer = %m, "xqueue session expired; logging in again");
                    if expired_in_a_row > 1 {
                        // Logged in, yet still turned away: do not hammer xqueue.
                        let wait = backoff.next_delay();
                        tracing::warn!(
                            request = what,
                            retry_in_ms = wait.as_millis() as u64,
                            "xqueue keeps refusing the session right after a login"
                        );
                        self.stop.sleep(wait).await?;
                    }
                    self.relogin(generation).await?;
                }
                Outcome::Transient(m) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(request = what, error = %m, retry_in_ms = wait.as_millis() as u64,
                        "xqueue request failed; retrying");
                    self.stop.sleep(wait).await?;
                }
            }
        }
    }

    /// Number of submissions waiting in the queue.
    pub async fn queue_len(&self) -> Result<u64, XqError> {
        let v = self
            .call("get_queuelen", true, |h| {
                h.get(self.url("get_queuelen/"))
                    .query(&[("queue_name", self.queue.as_str())])
            })
            .await?;
        match &v {
            Value::Number(n) => Ok(n.as_u64().unwrap_or(0)),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| XqError::Refused(format!("queue length is not a number: {s}"))),
            other => Err(XqError::Refused(format!(
                "queue length is not a number: {other}"
            ))),
        }
    }

    /// The next submission's `content`, or None when the queue is empty.
    pub async fn get_submission(&self) -> Result<Option<Value>, XqError> {
        match self
            .call("get_submission", false, |h| {
                h.get(self.url("get_submission/"))
                    .query(&[("queue_name", self.queue.as_str())])
            })
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(XqError::Refused(m)) if m.to_ascii_lowercase().contains("empty") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Post a result; `header` exactly as the submission carried it.
    pub async fn put_result(&self, header: &str, body: &str) -> Result<(), XqError> {
        self.call("put_result", false, |h| {
            h.post(self.url("put_result/"))
                .form(&[("xqueue_header", header), ("xqueue_body", body)])
        })
        .await
        .map(|_| ())
    }
}

impl XqueueClient {
    /// For `--check`: log in and read the queue length once, no retries.
    pub async fn check(&self) -> Result<u64, String> {
        self.login_once().await?;
        let req = self
            .http
            .get(self.url("get_queuelen/"))
            .query(&[("queue_name", self.queue.as_str())]);
        match self.exchange(req, Some(self.logins())).await {
            Outcome::Ok(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| format!("queue length is not a number: {v}")),
            Outcome::Refused(m) => Err(format!("xqueue refused queue `{}`: {m}", self.queue)),
            Outcome::Expired(m) => {
                Err(format!("xqueue refused the session right after login: {m}"))
            }
            Outcome::Transient(m) => Err(m),
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}
