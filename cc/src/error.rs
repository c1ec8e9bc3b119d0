//! The one error type of the HTTP layer and its single conversion into the API's
//! JSON error shape. Internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use testamur_common::wire::{ErrorBody, ErrorDetail};

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_s: None,
        }
    }
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message).with_field(field)
    }
    /// A bug; the details go to the CC log (by the caller), never to the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the CC log",
        )
    }
    pub fn lease_lost() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "lease_lost",
            "this lease is no longer held by you (it expired or the job was re-leased); drop the job's result",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(err) => {
                crate::metrics::metrics().redis_errors.inc();
                tracing::warn!(error = %err, "Redis unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "dependency_unavailable",
                    "the command center cannot reach Redis right now; retry shortly",
                )
                .retry(2)
            }
            StoreError::Refused { code, err } => {
                crate::metrics::metrics().redis_errors.inc();
                tracing::error!(error = %err, hint = crate::store::refusal_hint(code), "Redis refused a command");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "dependency_unavailable",
                    "the command center's database cannot take this request right now; retry shortly",
                )
                .retry(5)
            }
            StoreError::NotReplicated {
                acked,
                wanted,
                timeout,
            } => {
                crate::metrics::metrics().redis_errors.inc();
                tracing::warn!(
                    acked,
                    wanted,
                    timeout_ms = timeout.as_millis() as u64,
                    "write not confirmed by enough Redis replicas (durability = \"replica\")"
                );
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "dependency_unavailable",
                    "the command center could not confirm that the database's replicas have this request; retry shortly (with the same Idempotency-Key: a retry queues nothing twice)",
                )
                .retry(1)
            }
            StoreError::Corrupt(detail) => {
                tracing::error!(%detail, "unexpected data in Redis");
                ApiError::internal()
            }
        }
    }
}

impl ApiError {
    pub fn retry(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The error's body, for answers that carry one error per item.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.to_owned(),
            message: self.message.clone(),
            field: self.field.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.detail(),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE
            || self.status == StatusCode::REQUEST_TIMEOUT
        {
            // The rest of the body was never read, so the connection cannot carry
            // another request: tell the client not to reuse it (hyper then closes it).
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
