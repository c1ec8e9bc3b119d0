//! The router and the state every handler shares.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use testamur_common::config::CcConfig;
use tokio::sync::{watch, Notify};

use crate::error::ApiError;
use crate::metrics::{HttpLabels, RouteLabels};
use crate::routes;
use crate::store::Store;

/// Shared by all handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<CcConfig>,
    pub store: Store,
    /// Woken when this CC queues a job, so long-polling lease requests answer at
    /// once (jobs queued by other CCs are found by polling).
    pub jobs_queued: Arc<Notify>,
    /// Becomes true when the CC shuts down: long polls return early.
    pub shutdown: watch::Receiver<bool>,
    /// The live workservers' template catalogues, cached from Redis.
    pub catalog: crate::catalog::CatalogCache,
    /// Woken when a certificate of this CC reaches a final state, so its callback
    /// goes out at once (the dispatcher also polls).
    pub callbacks_due: Arc<Notify>,
}

/// The address of the TCP peer, inserted by the server for every request.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let largest_body = body_limit.max(state.config.max_batch_body_bytes);
    Router::new()
        .route("/healthz", get(routes::status::healthz))
        .route("/openapi.json", get(routes::status::openapi))
        .route("/v1/status", get(routes::status::status))
        .route(
            "/v1/workservers/register",
            post(routes::workservers::register),
        )
        .route(
            "/v1/workservers/{ws_id}/heartbeat",
            post(routes::workservers::heartbeat),
        )
        .route(
            "/v1/workservers/{ws_id}",
            delete(routes::workservers::deregister),
        )
        .route("/v1/leases", post(routes::leases::lease))
        .route("/v1/leases/complete", post(routes::leases::complete_many))
        .route("/v1/leases/{lease_id}/extend", post(routes::leases::extend))
        .route(
            "/v1/leases/{lease_id}/complete",
            post(routes::leases::complete),
        )
        .route("/v1/leases/{lease_id}/fail", post(routes::leases::fail))
        .route(
            "/v1/certificates",
            post(routes::certificates::submit).get(routes::certificates::list),
        )
        .route(
            "/v1/certificates/batch",
            post(routes::certificates::batch)
                .layer(DefaultBodyLimit::max(state.config.max_batch_body_bytes)),
        )
        .route("/v1/callbacks/replay", post(routes::callbacks::replay))
        .route(
            "/v1/workservers/{ws_id}/drain",
            post(routes::workservers::drain),
        )
        .route("/metrics", get(routes::status::metrics))
        .route("/dashboard", get(crate::dashboard::page))
        .route("/dashboard/login", post(crate::dashboard::login))
        .route("/dashboard/logout", post(crate::dashboard::logout))
        .route("/v1/callbacks/dead", get(routes::callbacks::dead))
        .route(
            "/v1/certificates/{cert_id}",
            get(routes::certificates::get_one),
        )
        .route("/verify/{verify_uuid}", get(routes::verify::verify))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn(move |req, next| {
            crate::unread::finish_body(largest_body, req, next)
        }))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see GET /openapi.json for the API")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

/// The method as a metrics label: one of a fixed set, so that invented methods
/// cannot grow the label space (and the CC's memory).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Every error answer is the API's JSON error shape: answers that are not (axum's
/// own rejections, which are text/plain) are rewritten here, keeping their status
/// and message. HTML pages (the dashboard) and answers without a body stay as they are.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.starts_with("application/json") || ctype.starts_with("text/html") {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_value",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if text.trim().is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_owned()
    } else {
        text.trim().to_owned()
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for name in [header::RETRY_AFTER, header::ALLOW, header::CONNECTION] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    let secs = started.elapsed().as_secs_f64();
    let ms = secs * 1000.0;
    let m = crate::metrics::metrics();
    m.http_requests
        .get_or_create(&HttpLabels {
            method,
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    m.http_duration
        .get_or_create(&RouteLabels { method, route })
        .observe(secs);
    if status.is_server_error() {
        tracing::warn!(
            method,
            ?path,
            status = status.as_u16(),
            ms,
            "request failed"
        );
    } else {
        tracing::debug!(method, ?path, status = status.as_u16(), ms, "request");
    }
    resp
}

#[cfg(test)]
mod tests {
    /// Every route of the router is documented in openapi.json.
    #[test]
    fn every_route_is_in_openapi() {
        let spec: serde_json::Value =
            serde_json::from_str(include_str!("../openapi.json")).unwrap();
        let src = include_str!("app.rs");
        let src = &src[..src.find("#[cfg(test)]").unwrap()];
        let mut n = 0;
        for part in src.split(".route(").skip(1) {
            let path = part.trim_start().trim_start_matches('"');
            let path = &path[..path.find('"').unwrap()];
            assert!(
                spec["paths"][path].is_object(),
                "{path} is not in cc/openapi.json"
            );
            n += 1;
        }
        assert!(n >= 15, "found only {n} routes");
    }
}
