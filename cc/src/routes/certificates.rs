//! Submitting certificate requests (one, or a batch of up to 10,000), reading one
//! certificate and listing them page by page (role: lms).
//!
//! An lms key with `course_prefixes` acts only on those courses: a request for
//! another course is refused (403 `course_out_of_scope`), and another course's
//! certificates answer 404 exactly as missing ones do, so a key learns nothing
//! about certificates outside its scope.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use testamur_common::catalogs::{Catalogs, Refusal};
use testamur_common::config::CourseScope;
use testamur_common::ids::{CertId, CourseId, JobId, PublicUuid};
use testamur_common::request::CertRequest;
use testamur_common::state::{Action, CertState};
use testamur_common::time_fmt::today_iso;
use testamur_common::wire::{
    BatchRequest, BatchResponse, BatchResult, CertificateView, ErrorDetail, ListResponse,
    SubmitRequest, SubmitResponse, BATCH_TOO_LARGE, MAX_BATCH,
};

use crate::app::AppState;
use crate::callbacks::policy::CallbackPolicy;
use crate::error::ApiError;
use crate::extract::{parse_value, JsonBody, LmsCaller};
use crate::store::{CallbackTarget, IdemBegin, ListIndex, NewJob, SubmitOutcome};

/// How long the per-request answers inside a batch with an Idempotency-Key are
/// kept: long enough for a client to retry a batch that failed half-way (the
/// batch's whole answer is kept 24 h once it is complete).
const BATCH_ITEM_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The header that makes a submission safe to retry.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub async fn submit(
    State(state): State<AppState>,
    caller: LmsCaller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SubmitRequest>,
) -> Result<Response, ApiError> {
    let idempotency = idempotency(&headers, &caller, "", &body)?;
    let catalog = state.catalog.get(&state.store).await?;
    let policy = CallbackPolicy::from_config(&state.config.callbacks);
    let mut job = prepare(body, &catalog, &policy, &caller)?;
    job.idempotency = idempotency;
    let (cert_id, action) = (job.cert_id.clone(), job.action);
    let outcome = state.store.submit(job).await?;
    let replayed = matches!(
        outcome,
        SubmitOutcome::Queued { replayed: true, .. }
            | SubmitOutcome::Illegal { replayed: true, .. }
    );
    let mut resp = match answer(cert_id, action, outcome, &state) {
        Ok(r) => (StatusCode::ACCEPTED, Json(r)).into_response(),
        Err(e) => e.into_response(),
    };
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// `POST /v1/certificates/batch`: every request is checked and answered on its
/// own, in order; the accepted ones are queued in chunks of 500 per Redis call.
/// With an Idempotency-Key, a repeated batch gets the first answer.
pub async fn batch(
    State(state): State<AppState>,
    caller: LmsCaller,
    headers: HeaderMap,
    body: Result<JsonBody<BatchRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let body = match body {
        Ok(JsonBody(b)) => b,
        Err(e) if e.message.contains(BATCH_TOO_LARGE) => {
            return Err(ApiError::invalid(
                "requests",
                format!("a batch holds at most {MAX_BATCH} requests, this one more; split it"),
            ))
        }
        Err(e) => return Err(e),
    };
    let idem = idempotency(&headers, &caller, "batch:", &body.requests)?;
    if let Some((key, hash)) = &idem {
        match state.store.idem_begin(key, hash).await? {
            IdemBegin::New => {}
            IdemBegin::Mismatch => return Err(key_reused()),
            IdemBegin::Pending => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_in_progress",
                    "a batch with this Idempotency-Key is being queued right now; retry in a few seconds for its answer",
                )
                .retry(5))
            }
            IdemBegin::Done(answer) => {
                let mut r = (
                    StatusCode::ACCEPTED,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    answer,
                )
                    .into_response();
                r.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return Ok(r);
            }
        }
    }
    let answer = queue_batch(
        &state,
        &caller,
        body,
        idem.as_ref().map(|(k, _)| k.as_str()),
    )
    .await;
    match (&idem, &answer) {
        (Some((key, _)), Ok(json)) => state.store.idem_finish(key, json).await?,
        // Nothing (or not all) was queued: let a retry with the key run again.
        (Some((key, _)), Err(_)) => {
            if let Err(e) = state.store.idem_abandon(key).await {
                tracing::warn!(error = %e, "cannot release an Idempotency-Key");
            }
        }
        (None, _) => {}
    }
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        answer?,
    )
        .into_response())
}

/// Check and queue a batch; the answer's JSON. With the batch's Idempotency-Key
/// (`idem`), every request of it gets a key of its own (`{key}:{index}`, kept
/// [`BATCH_ITEM_TTL`]), stored by the same script that queues it: a retry after
/// a failure half-way (a 503) answers what was queued from the first attempt
/// instead of queueing it again.
async fn queue_batch(
    state: &AppState,
    caller: &LmsCaller,
    body: BatchRequest,
    idem: Option<&str>,
) -> Result<String, ApiError> {
    let catalog = state.catalog.get(&state.store).await?;
    let policy = CallbackPolicy::from_config(&state.config.callbacks);
    let mut results: Vec<Option<BatchResult>> = Vec::with_capacity(body.requests.len());
    let mut jobs = Vec::new();
    let mut slots = Vec::new();
    for (i, item) in body.requests.into_iter().enumerate() {
        let item_idem = idem.map(|key| {
            let canonical = serde_json::to_vec(&item).unwrap_or_default();
            (
                format!("{key}:{i}"),
                hex::encode(Sha256::digest(&canonical)),
            )
        });
        let prepared = parse_value::<SubmitRequest>(item)
            .and_then(|req| prepare(req, &catalog, &policy, caller));
        match prepared {
            Ok(mut job) => {
                job.idempotency = item_idem;
                slots.push((i, job.cert_id.clone(), job.action));
                jobs.push(job);
                results.push(None);
            }
            Err(e) => results.push(Some(rejected(e))),
        }
    }
    let ttl = match idem {
        Some(_) => BATCH_ITEM_TTL,
        None => crate::store::IDEMPOTENCY_TTL,
    };
    let outcomes = state.store.submit_many(jobs, ttl).await?;
    let mut queued = 0usize;
    for ((i, cert_id, action), outcome) in slots.into_iter().zip(outcomes) {
        results[i] = Some(match answer(cert_id, action, outcome, state) {
            Ok(r) => {
                queued += 1;
                BatchResult::Accepted(r)
            }
            Err(e) => rejected(e),
        });
    }
    let results: Vec<BatchResult> = results.into_iter().flatten().collect();
    tracing::info!(
        requests = results.len(),
        queued,
        rejected = results.len() - queued,
        "batch submitted"
    );
    serde_json::to_string(&BatchResponse { results }).map_err(|e| {
        tracing::error!(error = %e, "cannot encode a batch answer");
        ApiError::internal()
    })
}

fn rejected(e: ApiError) -> BatchResult {
    BatchResult::Rejected {
        status: e.status.as_u16(),
        error: ErrorDetail {
            code: e.code.to_owned(),
            message: e.message,
            field: e.field,
        },
    }
}

/// Validate one request and turn it into a job (nothing is stored yet). Public
/// for the fuzz targets (fuzz/).
pub fn prepare(
    body: SubmitRequest,
    catalogs: &Catalogs,
    policy: &CallbackPolicy,
    caller: &LmsCaller,
) -> Result<NewJob, ApiError> {
    let mut req = CertRequest::parse(body).map_err(|e| ApiError::invalid(e.field, e.message))?;
    if !caller.scope.allows(req.course_id.as_str()) {
        return Err(out_of_scope(&caller.scope));
    }
    let callback_host = match &req.callback_url {
        Some(url) => Some(crate::callbacks::hosts::host_key(
            &policy
                .check(url)
                .map_err(|m| ApiError::invalid("callback_url", m))?,
        )),
        None => None,
    };
    let mut pinned = None;
    if req.action.renders() {
        // Reject what no live workserver could draw now, not as a failed job
        // later; and pin the template version so that only workservers that have
        // it draw the certificate (and retries draw it the same way).
        let course = req.course_name.as_deref().unwrap_or(req.course_id.as_str());
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let (name, org, grade, designation) = (
            o(&req.name),
            o(&req.org),
            o(&req.grade),
            o(&req.designation),
        );
        let values = [
            ("name", name.as_str()),
            ("course_name", course),
            ("org", org.as_str()),
            ("grade", grade.as_str()),
            ("designation", designation.as_str()),
            // Length only: printed by `{course_id}` (coverage is not checked).
            ("course_id", req.course_id.as_str()),
        ];
        match catalogs.pin(req.template.as_deref(), req.course_id.as_str(), &values) {
            Ok(p) => pinned = p,
            Err(Refusal::Template(e)) => return Err(ApiError::invalid("template", e.to_string())),
            Err(Refusal::Field { template, error: e }) => {
                let catalog = catalogs.with_template(&template);
                let missing = catalog.and_then(|c| c.missing(&template, &values));
                let too_wide = catalog.and_then(|c| c.too_wide(&template, &values));
                if let Some((field, stack, chars)) = missing {
                    // For the operator: what would make these characters drawable.
                    tracing::info!(
                        template = %template,
                        field,
                        stack = %stack,
                        characters = %testamur_common::scripts::describe(&chars),
                        hint = %testamur_common::scripts::install_hint(&chars),
                        "submission refused: no font for these characters"
                    );
                } else if let Some((field, width, max)) = too_wide {
                    tracing::info!(
                        template = %template,
                        cert_id = %req.cert_id(),
                        field,
                        width,
                        max_width = max,
                        "submission refused: longer than the template's box holds"
                    );
                }
                return Err(ApiError::invalid(e.field, e.message));
            }
        }
        if let Some(p) = &pinned {
            req.template = Some(p.template.clone());
        }
    }
    let fields = if req.action.renders() {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        vec![
            ("course_id", req.course_id.to_string()),
            ("username", req.username.to_string()),
            ("name", o(&req.name)),
            ("course_name", o(&req.course_name)),
            ("org", o(&req.org)),
            ("grade", o(&req.grade)),
            ("designation", o(&req.designation)),
            (
                "issued_date",
                req.issued_date.clone().unwrap_or_else(today_iso),
            ),
            ("template", o(&req.template)),
            (
                "template_version",
                pinned
                    .as_ref()
                    .map(|p| p.version.clone())
                    .unwrap_or_default(),
            ),
            ("lang", o(&req.lang)),
        ]
    } else {
        Vec::new()
    };
    Ok(NewJob {
        cert_id: req.cert_id(),
        job_id: JobId::generate(),
        action: req.action,
        new_uuids: req
            .action
            .renders()
            .then(|| (PublicUuid::generate(), PublicUuid::generate())),
        fields,
        queue: pinned.as_ref().map(|p| p.queue()),
        callback: req.callback_url.map(|url| CallbackTarget {
            url,
            key_name: caller.key_name.clone(),
            host: callback_host.unwrap_or_default(),
        }),
        idempotency: None,
    })
}

/// The API's answer for a stored outcome.
fn answer(
    cert_id: CertId,
    action: Action,
    outcome: SubmitOutcome,
    state: &AppState,
) -> Result<SubmitResponse, ApiError> {
    match outcome {
        SubmitOutcome::Queued {
            state: pending,
            job_id,
            replayed,
        } => {
            if !replayed {
                crate::metrics::metrics().job("enqueued", 1);
                state.jobs_queued.notify_waiters();
                tracing::debug!(cert_id = %cert_id, job_id = %job_id, %action, "job queued");
            }
            Ok(SubmitResponse {
                cert_id,
                state: pending,
                job_id,
            })
        }
        SubmitOutcome::Illegal { current, .. } => {
            let message = match action.check(current) {
                Err(e) => e.to_string(),
                Ok(_) => format!(
                    "{action} is not allowed now: the certificate is {}",
                    current.map(|s| s.as_str()).unwrap_or("absent")
                ),
            };
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "illegal_transition",
                message,
            ))
        }
        SubmitOutcome::IdempotencyMismatch => Err(key_reused()),
    }
}

fn out_of_scope(scope: &CourseScope) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "course_out_of_scope",
        format!(
            "this API key may only act on courses whose course_id starts with {}; use the key of the LMS that owns this course",
            scope.describe()
        ),
    )
    .with_field("course_id")
}

/// The 404 of a certificate that does not exist, or that the caller's key may
/// not see (the same answer, so the two cannot be told apart).
fn no_such_certificate() -> ApiError {
    ApiError::not_found("no certificate with this id")
}

fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key came with a different request within the last 24 hours; use a new key for a new request",
    )
    .with_field("Idempotency-Key")
}

/// The `idem:` key suffix (`scope` marks batches) and the request's hash, when an
/// Idempotency-Key came. Keys are per API key (two LMSs cannot collide); "the same
/// body" means the same request after parsing (key order and whitespace do not
/// matter).
fn idempotency(
    headers: &HeaderMap,
    caller: &LmsCaller,
    scope: &str,
    body: &impl serde::Serialize,
) -> Result<Option<(String, String)>, ApiError> {
    let Some(v) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
            )
        })?;
    let canonical = serde_json::to_vec(body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("cannot read the request: {e}"))
    })?;
    Ok(Some((
        format!(
            "{scope}{}:{}",
            caller.key_name,
            hex::encode(Sha256::digest(key.as_bytes()))
        ),
        hex::encode(Sha256::digest(&canonical)),
    )))
}

pub async fn get_one(
    State(state): State<AppState>,
    caller: LmsCaller,
    Path(cert_id): Path<String>,
) -> Result<Json<CertificateView>, ApiError> {
    let id = CertId::parse(&cert_id).map_err(|_| no_such_certificate())?;
    state
        .store
        .certificate(&id)
        .await?
        .filter(|c| caller.scope.allows(c.course_id.as_str()))
        .map(Json)
        .ok_or_else(no_such_certificate)
}

/// The query of `GET /v1/certificates`. Loose strings, so each bad value gets a
/// 422 naming its parameter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    course_id: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// Default and largest page size.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub async fn list(
    State(state): State<AppState>,
    caller: LmsCaller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListResponse>, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "{}; the parameters are course_id, state, cursor and limit",
                e.body_text()
            ),
        )
    })?;
    let course = q
        .course_id
        .filter(|c| !c.is_empty())
        .map(|c| CourseId::parse(c).map_err(|e| ApiError::invalid("course_id", e.to_string())))
        .transpose()?;
    let want_state = q
        .state
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<CertState>().map_err(|_| {
                let all: Vec<&str> = CertState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::invalid(
                    "state",
                    format!("unknown state `{s}`; one of {}", all.join(", ")),
                )
            })
        })
        .transpose()?;
    let cursor = q
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            CertId::parse(&c).map_err(|_| {
                ApiError::invalid("cursor", "not a cursor from this API; start without one")
            })
        })
        .transpose()?;
    let limit = match q.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("limit must be a number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    // A scoped key lists one course at a time: its own courses have no index of
    // their own, and walking every certificate to filter them would cost as much
    // as listing the whole cluster.
    match (&course, &caller.scope) {
        (None, CourseScope::Prefixes(_)) => {
            return Err(ApiError::invalid(
                "course_id",
                format!(
                    "this API key is limited to courses whose course_id starts with {}: list one course at a time with course_id",
                    caller.scope.describe()
                ),
            ))
        }
        // Another key's course looks like a course without certificates.
        (Some(c), scope) if !scope.allows(c.as_str()) => {
            return Ok(Json(ListResponse {
                items: Vec::new(),
                next_cursor: None,
            }))
        }
        _ => {}
    }
    let index = match (&course, want_state) {
        (Some(c), _) => ListIndex::Course(c),
        (None, Some(s)) => ListIndex::State(s),
        (None, None) => ListIndex::All,
    };
    let (items, next) = state
        .store
        .list_certificates(index, want_state, cursor.as_ref(), limit)
        .await?;
    Ok(Json(ListResponse {
        items,
        next_cursor: next.map(|c| c.to_string()),
    }))
}
