//! Leasing jobs (long poll), extending, completing (one lease or several per
//! call) and failing leases.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use testamur_common::ids::{LeaseId, WsId};
use testamur_common::layout::{check_urls, ReportedUrls};
use testamur_common::time_fmt::rfc3339_ms;
use testamur_common::wire::{
    CompleteManyRequest, CompleteManyResponse, CompleteRequest, CompletionOutcome,
    CompletionStatus, ExtendResponse, FailRequest, JobResult, LeaseRequest, LeaseResponse,
    MAX_COMPLETIONS,
};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{JsonBody, WsCaller};
use crate::metrics::{metrics, WorkserverLabels};
use crate::store::{Completed, FailOutcome, Fenced, Leased};
use testamur_common::failure::FailCode;

/// How often a waiting lease request looks for jobs queued by other CCs.
const POLL: Duration = Duration::from_millis(100);
const MAX_WAIT_MS: u64 = 30_000;
const MAX_JOBS: u32 = 256;

pub async fn lease(
    State(state): State<AppState>,
    caller: WsCaller,
    JsonBody(body): JsonBody<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    check_max_jobs(body.max_jobs, "max_jobs")?;
    if body.wait_ms > MAX_WAIT_MS {
        return Err(ApiError::invalid(
            "wait_ms",
            format!("wait_ms must be at most {MAX_WAIT_MS}"),
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(body.wait_ms);
    let mut shutdown = state.shutdown.clone();
    loop {
        // Register interest before looking, so a job queued in between wakes us.
        let notified = state.jobs_queued.notified();
        let leased = state
            .store
            .lease(
                &caller.0,
                body.max_jobs,
                state.config.lease_ttl,
                3 * state.config.heartbeat_interval,
            )
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown workserver; register again"))?;
        let now = tokio::time::Instant::now();
        if !leased.is_empty() || now >= deadline || *shutdown.borrow() {
            return Ok(Json(answer(&caller.0, leased)));
        }
        let wake = deadline.min(now + POLL);
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(wake) => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn check_max_jobs(n: u32, field: &str) -> Result<(), ApiError> {
    if n == 0 || n > MAX_JOBS {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be between 1 and {MAX_JOBS}"),
        ));
    }
    Ok(())
}

/// What a lease call answers, logged and counted.
fn answer(ws: &WsId, leased: Leased) -> LeaseResponse {
    for j in &leased.jobs {
        tracing::info!(job_id = %j.job_id, lease_id = %j.lease_id, cert_id = %j.certificate.cert_id,
            ws_id = %ws, attempt = j.attempt, action = %j.action, "job leased");
    }
    for s in &leased.status_lists {
        tracing::info!(job_id = %s.job_id, lease_id = %s.lease_id, list = s.list, version = s.version,
            ws_id = %ws, attempt = s.attempt, "status list publication leased");
    }
    metrics().job("leased", leased.jobs.len() as u64);
    if !leased.status_lists.is_empty() {
        metrics().job("status_list_leased", leased.status_lists.len() as u64);
    }
    LeaseResponse {
        jobs: leased.jobs,
        status_lists: leased.status_lists,
    }
}

/// The leases a completion call asked for (`lease`), taken once its completions
/// are recorded and without waiting. Never fails the call: its completions are
/// recorded and must be answered. If Redis fails here the answer leases nothing;
/// a lease the script gave whose reply was lost is not in the workserver's next
/// heartbeat and goes back to the queue (as a lost lease answer does).
async fn lease_after(state: &AppState, ws: &WsId, max: u32) -> LeaseResponse {
    if *state.shutdown.borrow() {
        return LeaseResponse::default();
    }
    let leased = state
        .store
        .lease(
            ws,
            max,
            state.config.lease_ttl,
            3 * state.config.heartbeat_interval,
        )
        .await;
    match leased {
        Ok(Some(leased)) => answer(ws, leased),
        // Deregistered meanwhile: its completions were answered `lost` already.
        Ok(None) => LeaseResponse::default(),
        Err(e) => {
            tracing::warn!(ws_id = %ws, error = %e, "could not lease after completions; answering none");
            LeaseResponse::default()
        }
    }
}

fn lease_id(s: &str) -> Result<LeaseId, ApiError> {
    LeaseId::parse(s).map_err(|_| ApiError::not_found("no such lease: the lease id is malformed"))
}

pub async fn extend(
    State(state): State<AppState>,
    caller: WsCaller,
    Path(lease): Path<String>,
) -> Result<Json<ExtendResponse>, ApiError> {
    let lease = lease_id(&lease)?;
    match state
        .store
        .extend(&lease, &caller.0, state.config.lease_ttl)
        .await?
    {
        Fenced::Ok(exp) => Ok(Json(ExtendResponse {
            lease_expires_at: rfc3339_ms(exp),
        })),
        Fenced::Lost | Fenced::Mismatch => Err(ApiError::lease_lost()),
    }
}

pub async fn complete(
    State(state): State<AppState>,
    caller: WsCaller,
    Path(lease): Path<String>,
    JsonBody(body): JsonBody<CompleteRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let lease = lease_id(&lease)?;
    check_result(&body.result)?;
    let done = complete_one(&state, &caller.0, &lease, &body.result)
        .await?
        .map_err(|(_, refusal)| refusal)?;
    Ok(Json(match done {
        Completed::Cert(new_state) => serde_json::json!({ "state": new_state }),
        Completed::StatusList(list) => serde_json::json!({ "status_list": list }),
    }))
}

/// `POST /v1/leases/complete` (extension): several completions, each checked and
/// recorded exactly as the single endpoint does (fenced by its own lease and the
/// caller), all in one complete script call, and answered one by one (ok, lost,
/// mismatch). A lost lease discards that result only; a malformed completion
/// refuses the call (422 naming it). With `lease`, up to `lease.max_jobs` jobs
/// are leased afterwards, at once, and answered in `leased`.
pub async fn complete_many(
    State(state): State<AppState>,
    caller: WsCaller,
    JsonBody(body): JsonBody<CompleteManyRequest>,
) -> Result<Json<CompleteManyResponse>, ApiError> {
    let n = body.completions.len();
    if n == 0 || n > MAX_COMPLETIONS {
        return Err(ApiError::invalid(
            "completions",
            format!("completions must hold between 1 and {MAX_COMPLETIONS} results; split them"),
        ));
    }
    if let Some(more) = &body.lease {
        check_max_jobs(more.max_jobs, "lease.max_jobs")?;
    }
    // A malformed completion (a bug of the workserver, not a race) refuses the
    // whole call before anything is recorded, as a malformed body would; what
    // depends on the lease is answered per completion.
    let mut checked = Vec::with_capacity(n);
    for (i, c) in body.completions.into_iter().enumerate() {
        let lease = LeaseId::parse(&c.lease_id).map_err(|_| {
            ApiError::invalid(
                &format!("completions[{i}].lease_id"),
                "not a lease id (`{job_id}.{secret}` as leased)",
            )
        })?;
        check_result(&c.result).map_err(|e| {
            let field = e.field.clone().unwrap_or_default();
            e.with_field(format!("completions[{i}].{field}"))
        })?;
        checked.push((lease, c.result));
    }
    // One script call for all of them (each fenced on its own inside it). Redis
    // failing fails the call (503): the workserver sends it again, and what was
    // recorded meanwhile answers `lost` then (its lease is gone).
    let items: Vec<(&LeaseId, &JobResult)> = checked.iter().map(|(l, r)| (l, r)).collect();
    let answers = state.store.complete_many(&caller.0, &items).await?;
    let mut results = Vec::with_capacity(n);
    for ((lease, result), answer) in checked.iter().zip(answers) {
        results.push(match recorded(&state, &caller.0, lease, result, answer?) {
            Ok(done) => CompletionOutcome {
                lease_id: lease.to_string(),
                status: CompletionStatus::Ok,
                state: match done {
                    Completed::Cert(s) => Some(s),
                    Completed::StatusList(_) => None,
                },
                error: None,
            },
            Err((status, refusal)) => CompletionOutcome {
                lease_id: lease.to_string(),
                status,
                state: None,
                error: Some(refusal.detail()),
            },
        });
    }
    let leased = match body.lease {
        Some(more) => Some(lease_after(&state, &caller.0, more.max_jobs).await),
        None => None,
    };
    Ok(Json(CompleteManyResponse { results, leased }))
}

/// One checked completion, recorded: the new state, or what the single endpoint
/// refuses it with; `Err` for what fails the whole request (Redis).
async fn complete_one(
    state: &AppState,
    ws: &WsId,
    lease: &LeaseId,
    result: &JobResult,
) -> Result<Result<Completed, (CompletionStatus, ApiError)>, ApiError> {
    let answer = state.store.complete(lease, ws, result).await?;
    Ok(recorded(state, ws, lease, result, answer))
}

/// What the complete script answered for one completion, logged and counted:
/// the new state, or the refusal the single endpoint answers with.
fn recorded(
    state: &AppState,
    ws: &WsId,
    lease: &LeaseId,
    result: &JobResult,
    answer: Fenced<(Completed, String)>,
) -> Result<Completed, (CompletionStatus, ApiError)> {
    match answer {
        Fenced::Ok((Completed::StatusList(list), _)) => {
            tracing::info!(job_id = %lease.job_id(), lease_id = %lease, ws_id = %ws, list, "status list published");
            metrics().job("status_list_published", 1);
            Ok(Completed::StatusList(list))
        }
        Fenced::Ok((Completed::Cert(new_state), ws_name)) => {
            tracing::info!(job_id = %lease.job_id(), lease_id = %lease, ws_id = %ws, state = %new_state, "job completed");
            state.callbacks_due.notify_one();
            let m = metrics();
            m.job("completed", 1);
            if let Some(t) = &result.timings {
                let ws = WorkserverLabels {
                    workserver: ws_name,
                };
                m.render_seconds
                    .get_or_create(&ws)
                    .observe(t.render_ms / 1000.0);
                m.sign_seconds
                    .get_or_create(&ws)
                    .observe(t.sign_ms / 1000.0);
                m.store_seconds
                    .get_or_create(&ws)
                    .observe(t.store_ms / 1000.0);
            }
            Ok(Completed::Cert(new_state))
        }
        Fenced::Lost => {
            tracing::warn!(job_id = %lease.job_id(), lease_id = %lease, ws_id = %ws, "completion with a lost lease discarded");
            Err((CompletionStatus::Lost, ApiError::lease_lost()))
        }
        Fenced::Mismatch => {
            tracing::warn!(job_id = %lease.job_id(), lease_id = %lease, ws_id = %ws, "completion for other uuids than the job's refused");
            Err((
                CompletionStatus::Mismatch,
                ApiError::invalid(
                    "result.download_uuid",
                    "these are not the uuids this job publishes under (the leased job's certificate.download_uuid and verify_uuid); report those",
                ),
            ))
        }
    }
}

pub async fn fail(
    State(state): State<AppState>,
    caller: WsCaller,
    Path(lease): Path<String>,
    JsonBody(body): JsonBody<FailRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let lease = lease_id(&lease)?;
    let reason: String = body.error_reason.chars().take(2000).collect();
    if reason.trim().is_empty() {
        return Err(ApiError::invalid(
            "error_reason",
            "error_reason must say what failed",
        ));
    }
    // The operator's reason names stages, paths and settings: the LMS gets the
    // code's message, or the workserver's words when they are about the request.
    let code = body.error_code.unwrap_or(FailCode::Unknown);
    let public = code.public_reason(body.public_reason.as_deref());
    match state
        .store
        .fail(
            &lease,
            &caller.0,
            &reason,
            &public,
            code,
            body.retryable,
            state.config.max_attempts,
        )
        .await?
    {
        Fenced::Ok(outcome) => {
            let requeued = matches!(outcome, FailOutcome::Requeued);
            tracing::warn!(job_id = %lease.job_id(), lease_id = %lease, ws_id = %caller.0, requeued, %code, reason = ?reason, "job attempt failed");
            if requeued {
                metrics().job("failed_requeued", 1);
                state.jobs_queued.notify_waiters();
            } else {
                metrics().job("failed_final", 1);
                state.callbacks_due.notify_one();
            }
            Ok(Json(serde_json::json!({ "requeued": requeued })))
        }
        Fenced::Lost | Fenced::Mismatch => Err(ApiError::lease_lost()),
    }
}

/// Stage timings are milliseconds: finite and not negative.
fn check_timings(r: &JobResult) -> Result<(), ApiError> {
    match &r.timings {
        Some(t)
            if [t.render_ms, t.sign_ms, t.store_ms]
                .iter()
                .any(|ms| !ms.is_finite() || *ms < 0.0) =>
        {
            Err(ApiError::invalid(
                "result.timings",
                "timings are milliseconds: finite and not negative",
            ))
        }
        _ => Ok(()),
    }
}

/// A workserver's report, checked before anything is written: the digest and key
/// fingerprint are hex, and the URLs are http(s) URLs of the layout paths of the
/// uuids reported (which the complete script then checks are the job's own).
/// Public for the fuzz targets (fuzz/).
pub fn check_result(r: &JobResult) -> Result<(), ApiError> {
    check_timings(r)?;
    let hex = |s: &str, lens: &[usize]| {
        lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
    };
    if let Some(sha) = &r.sha256 {
        if !hex(sha, &[64]) {
            return Err(ApiError::invalid(
                "result.sha256",
                "sha256 must be 64 hex digits",
            ));
        }
    }
    if let Some(fp) = &r.pdf_signer_sha256 {
        if !hex(fp, &[64]) {
            return Err(ApiError::invalid(
                "result.pdf_signer_sha256",
                "pdf_signer_sha256 must be the SHA-256 of the PDF signing certificate in hex (64 digits)",
            ));
        }
    }
    if let Some(fp) = &r.key_fingerprint {
        if !hex(fp, &[40, 64]) {
            return Err(ApiError::invalid(
                "result.key_fingerprint",
                "key_fingerprint must be the signing key's fingerprint in hex (40 or 64 digits)",
            ));
        }
    }
    match (&r.download_uuid, &r.verify_uuid) {
        (Some(d), Some(v)) => check_urls(
            d,
            v,
            ReportedUrls {
                download: r.download_url.as_deref(),
                verify: r.verify_url.as_deref(),
                signature: r.signature_url.as_deref(),
                credential: r.credential_url.as_deref(),
            },
        )
        .map_err(|e| ApiError::invalid(e.field, e.to_string())),
        (None, None) => {
            if r.download_url.is_some()
                || r.verify_url.is_some()
                || r.signature_url.is_some()
                || r.credential_url.is_some()
            {
                return Err(ApiError::invalid(
                    "result.download_url",
                    "URLs without the uuids they were published under; report both uuids",
                ));
            }
            Ok(())
        }
        _ => Err(ApiError::invalid(
            "result.verify_uuid",
            "report both download_uuid and verify_uuid, or neither (delete)",
        )),
    }
}
