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
    collect(&state).await.map(Json)
}

/// The cluster's status from Redis counters (never a scan of certificates).
pub async fn collect(state: &AppState) -> Result<StatusResponse, ApiError> {
    let workservers = state
        .store
        .workservers(state.config.heartbeat_interval)
        .await?;
    let counts = state
        .store
        .counts(3 * state.config.heartbeat_interval)
        .await?;
    Ok(StatusResponse {
        cc_name: state.config.name.clone(),
        workservers,
        queue_depth: counts.queue_depth,
        leased: counts.leased,
        certificates: counts.states,
        throughput_last_minute: counts.throughput_last_minute,
        throughput_last_hour: counts.throughput_last_hour,
        throughput_per_minute: counts.per_minute,
        oldest_waiting_job_age_s: counts.oldest_waiting_ms.unwrap_or(0) as f64 / 1000.0,
        recent_errors: counts.recent_errors,
        dead_letters: counts.dead_letters,
        callbacks_pending: counts.callbacks_pending,
        waiting_for_template: counts
            .unserved
            .into_iter()
            .map(|(tq, jobs)| {
                let (template, version) = tq.rsplit_once('@').unwrap_or((&tq, ""));
                testamur_common::wire::WaitingForTemplate {
                    template: template.to_owned(),
                    version: version.to_owned(),
                    jobs,
                }
            })
            .collect(),
        redis: Some(state.store.redis_status().await?),
        status_lists: state.store.status_lists().await?,
    })
}

/// `GET /metrics` (operator): Prometheus text. Cluster gauges are read from Redis now.
pub async fn metrics(
    State(state): State<AppState>,
    _caller: OperatorCaller,
) -> Result<impl IntoResponse, ApiError> {
    let s = collect(&state).await?;
    let m = crate::metrics::metrics();
    m.queue_depth.set(s.queue_depth as i64);
    m.leased.set(s.leased as i64);
    for (state, n) in &s.certificates {
        m.certificates
            .get_or_create(&crate::metrics::StateLabels {
                state: state.clone(),
            })
            .set(*n);
    }
    m.oldest_waiting.set(s.oldest_waiting_job_age_s);
    m.workservers_alive
        .set(s.workservers.iter().filter(|w| w.alive).count() as i64);
    m.workservers_registered.set(s.workservers.len() as i64);
    m.dead_letters.set(s.dead_letters as i64);
    m.callbacks_pending.set(s.callbacks_pending as i64);
    let body = m.encode().map_err(|e| {
        tracing::error!(error = %e, "cannot encode metrics");
        ApiError::internal()
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    ))
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}
