//! Workserver registration, heartbeat and deregistration.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use testamur_common::ids::{random_hex, WsId, WsName};
use testamur_common::wire::{DrainResponse, HeartbeatResponse, RegisterRequest, RegisterResponse};

use crate::app::{AppState, PeerAddr};
use crate::error::ApiError;
use crate::extract::{token_hash, JsonBody, OperatorCaller, WsCaller};
use crate::store::Registration;

/// Failed registrations allowed per address per window before 429.
const MAX_REGISTER_FAILURES: u64 = 10;
const REGISTER_FAILURE_WINDOW: Duration = Duration::from_secs(60);

pub async fn register(
    State(state): State<AppState>,
    peer: Option<Extension<PeerAddr>>,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    let ip = peer
        .map(|Extension(PeerAddr(a))| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    if state.store.failures("register", &ip).await? >= MAX_REGISTER_FAILURES {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed registrations from this address; wait and check cc_pass",
        )
        .retry(REGISTER_FAILURE_WINDOW.as_secs()));
    }
    if !state.config.cc_pass.matches(&body.cc_pass) {
        state
            .store
            .note_failure("register", &ip, REGISTER_FAILURE_WINDOW)
            .await?;
        tracing::warn!(%ip, name = %body.name, "registration with a wrong cc_pass");
        return Err(ApiError::unauthorized(
            "wrong cc_pass; use the cc_pass from the CC's cc.conf",
        ));
    }
    let name = WsName::parse(body.name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    if body.capacity == 0 || body.capacity > 4096 {
        return Err(ApiError::invalid(
            "capacity",
            "capacity must be between 1 and 4096",
        ));
    }
    // The catalogue first: once the workserver shows as registered, submissions
    // are checked against its templates.
    if let Some(catalog) = body
        .capabilities
        .as_ref()
        .and_then(|c| c.templates.as_ref())
    {
        let previous = state.store.current_catalog_digest().await?;
        let digest = state.store.put_catalog(catalog).await?;
        if previous.as_ref().is_some_and(|p| *p != digest) {
            tracing::warn!(name = %name, %digest, previous = previous.as_deref().unwrap_or(""),
                "this workserver's templates differ from the previous registration's; submissions are now checked against its templates (run the same templates on every workserver)");
        }
    }
    let ws_id = WsId::generate();
    let token = random_hex(32);
    let released = state
        .store
        .register(&Registration {
            name: &name,
            ws_id: &ws_id,
            token_hash: &token_hash(&token),
            capacity: body.capacity,
            version: &body.version,
        })
        .await?;
    tracing::info!(ws_id = %ws_id, name = %name, capacity = body.capacity, released, "workserver registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            ws_id,
            token,
            heartbeat_interval_s: state.config.heartbeat_interval.as_secs(),
            lease_ttl_s: state.config.lease_ttl.as_secs(),
        }),
    ))
}

fn own_id(caller: &WsCaller, path: &str) -> Result<(), ApiError> {
    if caller.0.as_str() != path {
        return Err(ApiError::forbidden(
            "a workserver may only act on its own registration",
        ));
    }
    Ok(())
}

pub async fn heartbeat(
    State(state): State<AppState>,
    caller: WsCaller,
    Path(ws_id): Path<String>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    own_id(&caller, &ws_id)?;
    match state.store.heartbeat(&caller.0).await? {
        Some(drain) => Ok(Json(HeartbeatResponse { drain })),
        None => Err(ApiError::unauthorized("unknown workserver; register again")),
    }
}

pub async fn deregister(
    State(state): State<AppState>,
    caller: WsCaller,
    Path(ws_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    own_id(&caller, &ws_id)?;
    match state.store.deregister(&caller.0).await? {
        Some(released) => {
            tracing::info!(ws_id = %caller.0, released, "workserver deregistered");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::not_found("unknown workserver")),
    }
}

/// `POST /v1/workservers/{ws_id}/drain` (operator): the workserver sees the flag in
/// its next heartbeat reply, takes no more jobs, finishes its leases and
/// deregisters. The CC also stops leasing to it at once.
pub async fn drain(
    State(state): State<AppState>,
    _caller: OperatorCaller,
    Path(ws_id): Path<String>,
) -> Result<Json<DrainResponse>, ApiError> {
    let id = WsId::parse(&ws_id).map_err(|_| ApiError::not_found("no workserver with this id"))?;
    let name = state.store.drain(&id).await?.ok_or_else(|| {
        ApiError::not_found("no workserver with this id is registered (see GET /v1/status)")
    })?;
    tracing::info!(ws_id = %id, name = %name, "workserver asked to drain");
    Ok(Json(DrainResponse {
        ws_id: id,
        name,
        draining: true,
    }))
}
