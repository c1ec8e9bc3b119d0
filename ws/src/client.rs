//! The workserver's HTTPS client for the CC API (registration, heartbeats, leases).

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use testamur_common::config::WsConfig;
use testamur_common::error_chain;
use testamur_common::ids::{JobId, LeaseId, WsId};
use testamur_common::wire::{
    Capabilities, CompleteRequest, ErrorBody, ExtendResponse, FailRequest, HeartbeatRequest,
    HeartbeatResponse, JobResult, LeaseRequest, LeaseResponse, LeasedJob, RegisterRequest,
    RegisterResponse,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the CC: {0}")]
    Unreachable(String),
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
            ClientError::Unreachable(_) => true,
            ClientError::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

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
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(error_chain(&e)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable(error_chain(&e)))?;
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
    ) -> Result<Vec<LeasedJob>, ClientError> {
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
        Ok(r.map(|r| r.jobs).unwrap_or_default())
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

    pub async fn fail(
        &self,
        s: &Session,
        lease: &LeaseId,
        reason: &str,
        retryable: bool,
    ) -> Result<(), ClientError> {
        self.call::<_, serde_json::Value>(
            reqwest::Method::POST,
            &format!("/v1/leases/{lease}/fail"),
            Some(&s.token),
            Some(&FailRequest {
                error_reason: reason.to_owned(),
                retryable,
            }),
            None,
        )
        .await
        .map(|_| ())
    }
}
