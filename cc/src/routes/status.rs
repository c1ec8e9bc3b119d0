//! Health, status and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use testamur_common::wire::StatusResponse;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::OperatorCaller;

/// 200 when Redis answers, 503 otherwise (public: load balancers probe it).
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(serde_json::json!({"status": "ok", "cc": state.config.name})),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: Redis unreachable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "dependency_unavailable",
                "Redis is unreachable",
            )
            .into_response()
        }
    }
}

pub async fn status(
    State(state): State<AppState>,
    _caller: OperatorCaller,
) -> Result<Json<StatusResponse>, ApiError> {
    let workservers = state
        .store
        .workservers(state.config.heartbeat_interval)
        .await?;
    let counts = state.store.counts().await?;
    let (dead_letters, callbacks_pending) = state.store.callback_counts().await?;
    Ok(Json(StatusResponse {
        cc_name: state.config.name.clone(),
        workservers,
        queue_depth: counts.queue_depth,
        leased: counts.leased,
        certificates: counts.states,
        throughput_last_minute: counts.throughput_last_minute,
        oldest_waiting_job_age_s: counts.oldest_waiting_ms.unwrap_or(0) as f64 / 1000.0,
        recent_errors: counts.recent_errors,
        dead_letters,
        callbacks_pending,
    }))
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}
