//! Workserver registration, heartbeat and deregistration.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use testamur_common::ids::{random_hex, WsId, WsName};
use testamur_common::wire::{
    DrainResponse, HeartbeatRequest, HeartbeatResponse, RegisterRequest, RegisterResponse,
};

use crate::app::{AppState, PeerAddr};
use crate::error::ApiError;
use crate::extract::{parse_json, token_hash, JsonBody, OperatorCaller, WsCaller};
use crate::ratelimit;
use crate::store::{RegisterOutcome, Registration};

pub async fn register(
    State(state): State<AppState>,
    peer: Option<Extension<PeerAddr>>,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    let peer = peer.map(|Extension(p)| p);
    let ip = peer
        .map(|PeerAddr(a)| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    if !state.config.cc_pass.matches(&body.cc_pass) {
        let over = ratelimit::failed(
            &state.store,
            state.config.limits.failed_credentials_per_minute,
            "register",
            &ratelimit::source(peer.as_ref()),
        )
        .await?;
        // The name is not parsed yet: log it escaped (Debug) and cut short, so
        // that a name with newlines cannot forge log lines.
        let name: String = body.name.chars().take(64).collect();
        tracing::warn!(%ip, name = ?name, "registration with a wrong cc_pass");
        if over {
            return Err(ratelimit::too_many(
                "set cc_pass in ws.conf to the CC's cc_pass",
            ));
        }
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
    let catalog = body
        .capabilities
        .as_ref()
        .and_then(|c| c.templates.as_ref());
    if let Some(catalog) = catalog {
        for (template, t) in &catalog.templates {
            if t.version.len() > 64
                || !t
                    .version
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(ApiError::invalid(
                    "capabilities.templates",
                    format!("template `{template}`: a version is at most 64 letters, digits, '.', '_' or '-'"),
                ));
            }
        }
        for rule in &catalog.courses {
            if let Some(lang) = &rule.lang {
                // As the schema says: a tag, exactly (no blanks around it).
                let parsed = testamur_common::request::parse_lang(lang);
                if !matches!(parsed, Ok(Some(ref t)) if t == lang) {
                    return Err(ApiError::invalid(
                        "capabilities.templates",
                        format!(
                            "course rule `{}`: lang must be a BCP 47 tag such as ja or zh-Hant",
                            rule.course
                        ),
                    ));
                }
            }
        }
        let live = state
            .store
            .live_catalog_digests(3 * state.config.heartbeat_interval)
            .await?;
        let digest = catalog.digest();
        if live.iter().any(|d| *d != digest) {
            tracing::info!(name = %name, %digest,
                "this workserver's templates differ from those of other live workservers (a rolling update?): each job is leased only to workservers with the template version it was accepted for");
        }
    }
    let instance = match body.instance.as_deref() {
        None => "",
        Some(i)
            if !i.is_empty()
                && i.len() <= 64
                && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            i
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "instance",
                "instance must be 1 to 64 letters, digits or '-'",
            ))
        }
    };
    let ws_id = WsId::generate();
    let token = random_hex(32);
    let outcome = state
        .store
        .register(&Registration {
            name: &name,
            ws_id: &ws_id,
            token_hash: &token_hash(&token),
            capacity: body.capacity,
            version: &body.version,
            instance,
            peer: &ip,
            max_attempts: state.config.max_attempts,
            alive_within: 3 * state.config.heartbeat_interval,
            catalog,
            status_lists: body.capabilities.as_ref().is_some_and(|c| c.status_lists),
        })
        .await?;
    // Submissions on this CC count this workserver's templates at once.
    state.catalog.invalidate();
    let released = match outcome {
        RegisterOutcome::Registered { released } => released,
        RegisterOutcome::NameConflict {
            other_addr,
            other_since,
        } => {
            tracing::error!(name = %name, %ip, other = %other_addr, since = %other_since,
                "two workservers are configured with the same name; the newer registration keeps it, this one is refused (give each workserver its own name in ws.conf)");
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "name_conflict",
                format!(
                    "another workserver (at {other_addr}, registered {other_since}) is running under the name `{name}` and took it over from this process; give every workserver its own `name` in ws.conf"
                ),
            ));
        }
    };
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

/// The body is optional (API.md has none); a workserver that lists the jobs it
/// holds gets back at once any lease whose answer it never received.
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: WsCaller,
    Path(ws_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    own_id(&caller, &ws_id)?;
    let req: HeartbeatRequest = if body.iter().all(u8::is_ascii_whitespace) {
        HeartbeatRequest::default()
    } else {
        parse_json(&body)?
    };
    if req.jobs.as_ref().is_some_and(|j| j.len() > 4096) {
        return Err(ApiError::invalid(
            "jobs",
            "a workserver holds at most 4096 jobs",
        ));
    }
    match state
        .store
        .heartbeat(&caller.0, req.jobs.as_deref())
        .await?
    {
        Some((drain, released)) => {
            if released > 0 {
                tracing::warn!(ws_id = %caller.0, released, "leases the workserver never received went back to the queue");
                state.jobs_queued.notify_waiters();
            }
            Ok(Json(HeartbeatResponse { drain }))
        }
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
            state.catalog.invalidate();
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
    state.catalog.invalidate();
    tracing::info!(ws_id = %id, name = %name, "workserver asked to drain");
    Ok(Json(DrainResponse {
        ws_id: id,
        name,
        draining: true,
    }))
}
