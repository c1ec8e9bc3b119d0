//! A client for the CC's LMS and operator endpoints, used by `submit`, `status`,
//! the demo, the benchmarks and the integration tests.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::Serialize;
use testamur_common::wire::{
    BatchRequest, BatchResponse, CertificateView, DeadLettersResponse, ErrorBody, ListResponse,
    ReplayRequest, ReplayResponse, StatusResponse, SubmitRequest, SubmitResponse,
};

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// An API answer that was not a success: the status and the API's error body.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {code}: {message}")]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

/// Refuses a CC URL that would carry the API key in clear text: only `https://`,
/// or `http://` when the caller explicitly allowed it (`--allow-insecure-http`).
pub fn check_cc_url(base: &str, allow_insecure_http: bool) -> anyhow::Result<()> {
    if base.starts_with("https://") {
        return Ok(());
    }
    if base.starts_with("http://") {
        if allow_insecure_http {
            return Ok(());
        }
        bail!(
            "refusing to send the API key to {base}: http:// is not encrypted, so anyone on the \
             way can read the key; use the CC's https:// URL (the CC only speaks HTTPS), or pass \
             --allow-insecure-http if a TLS-terminating proxy on this host forwards it"
        );
    }
    bail!("the CC URL {base} is not an https:// URL; give one like https://cc.example.org:8443");
}

impl ApiClient {
    /// `ca`: the CA file to trust (a private CA); `None` uses the system's roots.
    /// `base` must be `https://` ([`ApiClient::with_http_allowed`] for `http://`).
    pub fn new(base: &str, ca: Option<&Path>, key: &str) -> anyhow::Result<Self> {
        Self::with_http_allowed(base, ca, key, false)
    }

    /// As [`ApiClient::new`]; `allow_insecure_http` also accepts an `http://`
    /// base, which sends the key unencrypted (a local TLS-terminating proxy).
    pub fn with_http_allowed(
        base: &str,
        ca: Option<&Path>,
        key: &str,
        allow_insecure_http: bool,
    ) -> anyhow::Result<Self> {
        check_cc_url(base, allow_insecure_http)?;
        testamur_common::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
        if let Some(ca) = ca {
            builder = builder.tls_backend_preconfigured(testamur_common::tls::client_config(ca)?);
        }
        Ok(Self {
            http: builder.build()?,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        })
    }

    /// A client over a `reqwest::Client` built by the caller (e.g. one bound to
    /// a local address, as the load-balancer tests do). `base` must be `https://`.
    pub fn with_client(base: &str, key: &str, http: reqwest::Client) -> anyhow::Result<Self> {
        check_cc_url(base, false)?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The API key this client presents.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<Result<T, ApiFailure>> {
        self.call_with(method, path, body, None).await
    }

    async fn call_with<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Result<T, ApiFailure>> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the CC at {}", self.base))?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() {
            return Ok(Ok(serde_json::from_slice(&bytes)
                .with_context(|| format!("unreadable answer from {path}"))?));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Ok(Err(ApiFailure {
                status: status.as_u16(),
                code: b.error.code,
                message: b.error.message,
                field: b.error.field,
            })),
            Err(_) => bail!(
                "HTTP {status} from {path} without the API's error body: {}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }

    pub async fn submit(
        &self,
        req: &SubmitRequest,
    ) -> anyhow::Result<Result<SubmitResponse, ApiFailure>> {
        self.call(reqwest::Method::POST, "/v1/certificates", Some(req))
            .await
    }

    /// Submit with an Idempotency-Key: repeating the same request with the same
    /// key (within 24 h) answers the first answer and queues nothing new.
    pub async fn submit_idempotent(
        &self,
        req: &SubmitRequest,
        key: &str,
    ) -> anyhow::Result<Result<SubmitResponse, ApiFailure>> {
        self.call_with(
            reqwest::Method::POST,
            "/v1/certificates",
            Some(req),
            Some(key),
        )
        .await
    }

    /// Up to 10,000 requests at once; one result per request, in order.
    pub async fn submit_batch(
        &self,
        requests: &[SubmitRequest],
    ) -> anyhow::Result<Result<BatchResponse, ApiFailure>> {
        self.submit_batch_with_key(requests, None).await
    }

    /// A batch, with an Idempotency-Key when given (a repeat answers the first
    /// answer and queues nothing).
    pub async fn submit_batch_with_key(
        &self,
        requests: &[SubmitRequest],
        key: Option<&str>,
    ) -> anyhow::Result<Result<BatchResponse, ApiFailure>> {
        let body = BatchRequest {
            requests: requests
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?,
        };
        self.call_with(
            reqwest::Method::POST,
            "/v1/certificates/batch",
            Some(&body),
            key,
        )
        .await
    }

    /// One page of `GET /v1/certificates`.
    pub async fn list(
        &self,
        course_id: Option<&str>,
        state: Option<&str>,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> anyhow::Result<Result<ListResponse, ApiFailure>> {
        let mut url = reqwest::Url::parse(&self.url("/v1/certificates"))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(c) = course_id {
                q.append_pair("course_id", c);
            }
            if let Some(s) = state {
                q.append_pair("state", s);
            }
            if let Some(c) = cursor {
                q.append_pair("cursor", c);
            }
            if let Some(l) = limit {
                q.append_pair("limit", &l.to_string());
            }
        }
        let path = format!("/v1/certificates?{}", url.query().unwrap_or(""));
        self.call::<(), _>(reqwest::Method::GET, &path, None).await
    }

    pub async fn dead_letters(&self) -> anyhow::Result<Result<DeadLettersResponse, ApiFailure>> {
        self.call::<(), _>(reqwest::Method::GET, "/v1/callbacks/dead", None)
            .await
    }

    /// Replay the given dead letters, or all of them.
    pub async fn replay(
        &self,
        ids: Option<Vec<String>>,
    ) -> anyhow::Result<Result<ReplayResponse, ApiFailure>> {
        let body = ReplayRequest { callback_ids: ids };
        self.call(reqwest::Method::POST, "/v1/callbacks/replay", Some(&body))
            .await
    }

    pub async fn certificate(
        &self,
        cert_id: &str,
    ) -> anyhow::Result<Result<CertificateView, ApiFailure>> {
        self.call::<(), _>(
            reqwest::Method::GET,
            &format!("/v1/certificates/{cert_id}"),
            None,
        )
        .await
    }

    /// The public `GET /verify/{verify_uuid}` (hyphenated uuid).
    pub async fn verification(
        &self,
        verify_uuid: &str,
    ) -> anyhow::Result<Result<testamur_common::wire::Verification, ApiFailure>> {
        self.call::<(), _>(
            reqwest::Method::GET,
            &format!("/verify/{verify_uuid}"),
            None,
        )
        .await
    }

    pub async fn status(&self) -> anyhow::Result<Result<StatusResponse, ApiFailure>> {
        self.call::<(), _>(reqwest::Method::GET, "/v1/status", None)
            .await
    }

    /// Poll a certificate until it leaves its pending state or `timeout` passes.
    pub async fn wait_final(
        &self,
        cert_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<CertificateView> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let c = self.certificate(cert_id).await??;
            if !c.state.is_pending() {
                return Ok(c);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("certificate {cert_id} still {} after {timeout:?}", c.state);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
