//! The workserver's HTTPS client for the CC API (registration, heartbeats, leases).
//!
//! A call that reaches no CC (refused, reset, timed out, closed during the TLS
//! handshake, a certificate not trusted) is [`ClientError::Unreachable`]: "no CC
//! reachable at <cc_url> (<short cause>)"; the whole error chain goes to the
//! debug log.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use testamur_common::config::WsConfig;
use testamur_common::error_chain;
use testamur_common::ids::{JobId, LeaseId, WsId};
use testamur_common::wire::{
    Capabilities, CompleteManyRequest, CompleteManyResponse, CompleteRequest, Completion,
    CompletionOutcome, ErrorBody, ExtendResponse, FailRequest, HeartbeatRequest, HeartbeatResponse,
    JobResult, LeaseMore, LeaseRequest, LeaseResponse, RegisterRequest, RegisterResponse,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("no CC reachable at {url} ({cause})")]
    Unreachable { url: String, cause: String },
    #[error("the CC does not know this workserver's token (revoked or re-registered): {0}")]
    Unauthorized(String),
    #[error("the lease was lost: {0}")]
    LeaseLost(String),
    /// Another live workserver registered under this one's name.
    #[error("{0}")]
    NameConflict(String),
    #[error("the CC answered {status}: {message}")]
    Api { status: u16, message: String },
}

impl ClientError {
    /// Whether retrying the same call later can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

#[derive(Clone)]
pub struct CcClient {
    http: reqwest::Client,
    base: String,
    /// Sent at registration: the templates this workserver renders.
    catalog: Option<testamur_common::catalog::Catalog>,
    /// Random per process, sent at registration (see `RegisterRequest::instance`).
    instance: String,
}

/// Credentials from a successful registration.
#[derive(Clone)]
pub struct Session {
    pub ws_id: WsId,
    pub token: String,
    pub heartbeat_interval: Duration,
    pub lease_ttl: Duration,
}

impl CcClient {
    pub fn new(config: &WsConfig) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("testamur-ws/", env!("CARGO_PKG_VERSION")));
        testamur_common::tls::install_crypto_provider();
        if let Some(ca) = &config.ssl_ca_certs {
            builder = builder.tls_backend_preconfigured(testamur_common::tls::client_config(ca)?);
        }
        Ok(Self {
            http: builder.build()?,
            base: config.cc_url.clone(),
            catalog: None,
            instance: testamur_common::ids::random_hex(16),
        })
    }

    pub fn with_catalog(mut self, catalog: testamur_common::catalog::Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<Option<T>, ClientError> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(path, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(path, &e))?;
        if status.is_success() {
            if status == StatusCode::NO_CONTENT {
                return Ok(None);
            }
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ClientError::Api {
                    status: status.as_u16(),
                    message: format!("unreadable answer: {e}"),
                });
        }
        let (code, message) = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| (b.error.code, b.error.message))
            .unwrap_or_else(|_| {
                (
                    String::new(),
                    String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                )
            });
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized(message),
            StatusCode::CONFLICT if code == "name_conflict" => ClientError::NameConflict(message),
            StatusCode::CONFLICT => ClientError::LeaseLost(message),
            _ => ClientError::Api {
                status: status.as_u16(),
                message,
            },
        })
    }

    /// A request that reached no CC: the short cause for the log line, the
    /// whole chain at debug level.
    fn unreachable(&self, path: &str, e: &reqwest::Error) -> ClientError {
        tracing::debug!(url = %format!("{}{path}", self.base), error = %error_chain(e), "request to the CC failed");
        ClientError::Unreachable {
            url: self.base.clone(),
            cause: short_cause(e),
        }
    }

    /// `GET /healthz`: whether a CC answers at cc_url (over TLS with the
    /// configured CA) and reaches its Redis. For `testamur ws --check`.
    pub async fn healthz(&self) -> Result<(), ClientError> {
        self.call::<(), serde_json::Value>(
            reqwest::Method::GET,
            "/healthz",
            None,
            None,
            Some(Duration::from_secs(10)),
        )
        .await
        .map(|_| ())
    }

    pub async fn register(&self, config: &WsConfig) -> Result<Session, ClientError> {
        let body = RegisterRequest {
            instance: Some(self.instance.clone()),
            name: config.name.clone(),
            cc_pass: config.cc_pass.expose().to_owned(),
            capacity: config.capacity,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: Some(Capabilities {
                scripts: vec![],
                storage: vec!["disk".into()],
                templates: self.catalog.clone(),
                // It signs status lists with the key it signs credentials with.
                status_lists: config.credentials.is_some(),
            }),
        };
        let r: RegisterResponse = self
            .call(
                reqwest::Method::POST,
                "/v1/workservers/register",
                None,
                Some(&body),
                None,
            )
            .await?
            .ok_or_else(|| ClientError::Api {
                status: 204,
                message: "empty registration answer".into(),
            })?;
        Ok(Session {
            ws_id: r.ws_id,
            token: r.token,
            heartbeat_interval: Duration::from_secs(r.heartbeat_interval_s.max(1)),
            lease_ttl: Duration::from_secs(r.lease_ttl_s.max(2)),
        })
    }

    /// A heartbeat listing the jobs this workserver holds; the drain flag.
    pub async fn heartbeat(&self, s: &Session, held: Vec<JobId>) -> Result<bool, ClientError> {
        let r: Option<HeartbeatResponse> = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/workservers/{}/heartbeat", s.ws_id),
                Some(&s.token),
                Some(&HeartbeatRequest { jobs: Some(held) }),
                None,
            )
            .await?;
        Ok(r.map(|r| r.drain).unwrap_or(false))
    }

    pub async fn deregister(&self, s: &Session) -> Result<(), ClientError> {
        self.call::<(), serde_json::Value>(
            reqwest::Method::DELETE,
            &format!("/v1/workservers/{}", s.ws_id),
            Some(&s.token),
            None,
            None,
        )
        .await
        .map(|_| ())
    }

    pub async fn lease(
        &self,
        s: &Session,
        max_jobs: u32,
        wait: Duration,
    ) -> Result<LeaseResponse, ClientError> {
        let body = LeaseRequest {
            max_jobs,
            wait_ms: wait.as_millis() as u64,
        };
        let r: Option<LeaseResponse> = self
            .call(
                reqwest::Method::POST,
                "/v1/leases",
                Some(&s.token),
                Some(&body),
                Some(wait + Duration::from_secs(30)),
            )
            .await?;
        Ok(r.unwrap_or_default())
    }

    pub async fn extend(&self, s: &Session, lease: &LeaseId) -> Result<(), ClientError> {
        self.call::<(), ExtendResponse>(
            reqwest::Method::POST,
            &format!("/v1/leases/{lease}/extend"),
            Some(&s.token),
            None,
            None,
        )
        .await
        .map(|_| ())
    }

    pub async fn complete(
        &self,
        s: &Session,
        lease: &LeaseId,
        result: JobResult,
    ) -> Result<(), ClientError> {
        self.call::<_, serde_json::Value>(
            reqwest::Method::POST,
            &format!("/v1/leases/{lease}/complete"),
            Some(&s.token),
            Some(&CompleteRequest { result }),
            None,
        )
        .await
        .map(|_| ())
    }

    /// `POST /v1/leases/complete`: several results in one call, one answer each
    /// (in the same order). A CC without the endpoint answers 404 `not_found`.
    pub async fn complete_many(
        &self,
        s: &Session,
        items: &[(LeaseId, JobResult)],
    ) -> Result<Vec<CompletionOutcome>, ClientError> {
        Ok(self.complete_and_lease(s, items, None).await?.0)
    }

    /// Several completions in one call and, with `lease`, up to that many jobs
    /// leased once they are recorded (no wait): the answers, and what was leased
    /// (empty without `lease`).
    pub async fn complete_and_lease(
        &self,
        s: &Session,
        items: &[(LeaseId, JobResult)],
        lease: Option<u32>,
    ) -> Result<(Vec<CompletionOutcome>, LeaseResponse), ClientError> {
        let body = CompleteManyRequest {
            completions: items
                .iter()
                .map(|(lease, result)| Completion {
                    lease_id: lease.to_string(),
                    result: result.clone(),
                })
                .collect(),
            lease: lease.map(|max_jobs| LeaseMore { max_jobs }),
        };
        let r: CompleteManyResponse = self
            .call(
                reqwest::Method::POST,
                "/v1/leases/complete",
                Some(&s.token),
                Some(&body),
                None,
            )
            .await?
            .ok_or_else(|| ClientError::Api {
                status: 204,
                message: "empty answer to a batch of completions".into(),
            })?;
        if r.results.len() != items.len() {
            return Err(ClientError::Api {
                status: 200,
                message: format!("{} answers to {} completions", r.results.len(), items.len()),
            });
        }
        Ok((r.results, r.leased.unwrap_or_default()))
    }

    /// Report a failed attempt: the operator's reason, its code and the LMS's
    /// reason (the CC decides what the LMS sees).
    pub async fn fail(
        &self,
        s: &Session,
        lease: &LeaseId,
        e: &crate::job::JobError,
    ) -> Result<(), ClientError> {
        self.call::<_, serde_json::Value>(
            reqwest::Method::POST,
            &format!("/v1/leases/{lease}/fail"),
            Some(&s.token),
            Some(&FailRequest {
                error_reason: e.reason.clone(),
                retryable: e.retryable,
                error_code: Some(e.code),
                public_reason: e.public.clone(),
            }),
            None,
        )
        .await
        .map(|_| ())
    }
}

/// Why a request reached no CC, in a few words: "connection refused", "timed
/// out", "TLS: invalid peer certificate: UnknownIssuer; check ssl_ca_certs ...",
/// "connection closed during the TLS handshake", or else the innermost error.
pub fn short_cause(e: &reqwest::Error) -> String {
    use std::error::Error;
    if e.is_timeout() {
        return "timed out".into();
    }
    // The chain of sources, and inside each io::Error what it wraps (an
    // io::Error's own `source` skips the error it wraps).
    let mut chain: Vec<&(dyn Error + 'static)> = Vec::new();
    let mut cur: Option<&(dyn Error + 'static)> = e.source();
    while let Some(c) = cur {
        let mut inner = c;
        chain.push(inner);
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
            chain.push(inner);
        }
        cur = c.source();
    }
    if let Some(t) = chain.iter().find_map(|c| c.downcast_ref::<rustls::Error>()) {
        let hint = match t {
            rustls::Error::InvalidCertificate(_) => {
                "; check ssl_ca_certs in ws.conf and the CC's certificate"
            }
            _ => "",
        };
        return format!("TLS: {t}{hint}");
    }
    let io_kind = chain
        .iter()
        .rev()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .map(|io| io.kind());
    use std::io::ErrorKind::*;
    match io_kind {
        Some(ConnectionRefused) => "connection refused".into(),
        Some(ConnectionReset) => "connection reset".into(),
        Some(TimedOut) => "timed out".into(),
        Some(UnexpectedEof) => "connection closed during the TLS handshake".into(),
        _ => chain
            .last()
            .map(|c| c.to_string())
            .unwrap_or_else(|| e.to_string()),
    }
}
