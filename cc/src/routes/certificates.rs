//! Submitting certificate requests and reading certificates (role: lms).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use testamur_common::ids::{CertId, JobId, PublicUuid};
use testamur_common::request::CertRequest;
use testamur_common::time_fmt::today_iso;
use testamur_common::wire::{CertificateView, SubmitRequest, SubmitResponse};

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::{JsonBody, LmsCaller};
use crate::store::{NewJob, SubmitOutcome};

pub async fn submit(
    State(state): State<AppState>,
    _caller: LmsCaller,
    JsonBody(body): JsonBody<SubmitRequest>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    let mut req = CertRequest::parse(body).map_err(|e| ApiError::invalid(e.field, e.message))?;
    if req.action.renders() {
        // Reject what no workserver could draw now, not as a failed job later; and
        // pin the template so that retries and regenerations render the same way.
        if let Some(catalog) = state.catalog.get(&state.store).await? {
            let template = catalog
                .resolve(req.template.as_deref(), req.course_id.as_str())
                .map_err(|e| ApiError::invalid("template", e.to_string()))?
                .to_owned();
            let course = req.course_name.as_deref().unwrap_or(req.course_id.as_str());
            let o = |v: &Option<String>| v.clone().unwrap_or_default();
            let (name, org, grade, designation) = (
                o(&req.name),
                o(&req.org),
                o(&req.grade),
                o(&req.designation),
            );
            catalog
                .check(
                    &template,
                    &[
                        ("name", name.as_str()),
                        ("course_name", course),
                        ("org", org.as_str()),
                        ("grade", grade.as_str()),
                        ("designation", designation.as_str()),
                    ],
                )
                .map_err(|e| ApiError::invalid(e.field, e.message))?;
            req.template = Some(template);
        }
    }
    let cert_id = req.cert_id();
    let job_id = JobId::generate();
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
            ("callback_url", o(&req.callback_url)),
        ]
    } else {
        Vec::new()
    };
    let new_uuids = req
        .action
        .renders()
        .then(|| (PublicUuid::generate(), PublicUuid::generate()));
    let outcome = state
        .store
        .submit(&NewJob {
            cert_id: &cert_id,
            job_id: &job_id,
            action: req.action,
            new_uuids,
            fields,
        })
        .await?;
    match outcome {
        SubmitOutcome::Queued { previous } => {
            state.jobs_queued.notify_waiters();
            tracing::info!(cert_id = %cert_id, job_id = %job_id, action = %req.action,
                previous = previous.map(|s| s.as_str()).unwrap_or("none"), "job queued");
            Ok((
                StatusCode::ACCEPTED,
                Json(SubmitResponse {
                    cert_id,
                    state: req.action.pending_state(),
                    job_id,
                }),
            ))
        }
        SubmitOutcome::Illegal { current } => {
            let err = req
                .action
                .check(current)
                .expect_err("the store refused a transition the table allows");
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "illegal_transition",
                err.to_string(),
            ))
        }
    }
}

pub async fn get_one(
    State(state): State<AppState>,
    _caller: LmsCaller,
    Path(cert_id): Path<String>,
) -> Result<Json<CertificateView>, ApiError> {
    let id =
        CertId::parse(&cert_id).map_err(|_| ApiError::not_found("no certificate with this id"))?;
    state
        .store
        .certificate(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no certificate with this id"))
}
