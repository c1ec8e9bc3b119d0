//! Dead letters of callback delivery (role: operator): list them, replay them.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use testamur_common::wire::{DeadLettersResponse, ReplayRequest, ReplayResponse};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{parse_json, OperatorCaller};

/// `POST /v1/callbacks/replay`: body `{"callback_ids": [...]}` replays those dead
/// letters; an empty body, `{}` or `"callback_ids": null` replays all of them
/// (`[]` none). Each gets a fresh budget
/// of `callbacks.max_attempts` deliveries, starting now.
pub async fn replay(
    State(state): State<AppState>,
    _caller: OperatorCaller,
    body: Bytes,
) -> Result<Json<ReplayResponse>, ApiError> {
    let req: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        parse_json(&body)?
    };
    let ids = match req.callback_ids {
        // An empty list names nothing (only an absent list means all).
        Some(ids) if ids.is_empty() => {
            return Ok(Json(ReplayResponse {
                replayed: 0,
                not_found: Vec::new(),
            }))
        }
        ids => ids.unwrap_or_default(),
    };
    if let Some(bad) = ids.iter().find(|i| i.is_empty() || i.chars().count() > 64) {
        return Err(ApiError::invalid(
            "callback_ids",
            format!("`{bad}` is not a callback id (see GET /v1/callbacks/dead)"),
        ));
    }
    let (replayed, not_found) = state.store.replay_callbacks(&ids).await?;
    tracing::info!(
        replayed,
        not_found = not_found.len(),
        "dead letters replayed"
    );
    state.callbacks_due.notify_one();
    Ok(Json(ReplayResponse {
        replayed,
        not_found,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    limit: Option<usize>,
}

/// `GET /v1/callbacks/dead?limit=N` (extension): how many dead letters there
/// are and the most recent (default 100, at most 1,000).
pub async fn dead(
    State(state): State<AppState>,
    _caller: OperatorCaller,
    query: Result<Query<DeadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadLettersResponse>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be from 1 to 1000"));
    }
    let (count, items) = state.store.dead_letters(limit).await?;
    Ok(Json(DeadLettersResponse { count, items }))
}
