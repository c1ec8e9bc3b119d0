//! One submission against the CC: find the course of a 2013 delete from its
//! published uuid, submit (an LMS `create` of a certificate that exists becomes a
//! regen; a certificate busy with another job is waited for), follow the
//! certificate until it is final, and the `put_result` body for the outcome.

use std::time::Duration;

use testamur_common::state::{Action, CertState};
use testamur_common::wire::{CertificateView, ErrorBody, SubmitRequest, SubmitResponse};

use super::answer::{error_body, lms_uuid, success_body};
use super::bridge::Shared;
use super::journal::Stage;
use super::submission::{parse_body, Envelope, Job};
use super::{Backoff, Stopped};

/// How many times a submission waits for another job of its certificate to end
/// before it is answered as refused.
const BUSY_ROUNDS: usize = 3;

/// The `put_result` body for the submission (after submitting and following it).
pub async fn outcome(shared: &Shared, env: &Envelope, stage: Stage) -> Result<String, Stopped> {
    let mut job = match parse_body(&env.body, &shared.cfg.mapping) {
        Ok(j) => j,
        Err(m) => {
            tracing::warn!(reason = %m.reason, "malformed submission; answering with an error");
            return Ok(error_body(
                "malformed submission",
                &m.reason,
                &m.username,
                &m.course_id,
            ));
        }
    };
    if let Some(l) = &job.ignored_lang {
        tracing::warn!(lang = %l, "the LMS's language is not a language tag; printing without it");
    }
    if job.find_by.is_some() {
        match find_course(shared, &job).await? {
            Ok(course_id) => {
                tracing::info!(%course_id, "a delete without course_id: found the certificate from its verify uuid");
                job.set_course(course_id);
            }
            Err(reason) => {
                tracing::warn!(reason = %reason, "a delete without course_id names no certificate; answering with an error");
                return Ok(error_body(
                    "certificate not found",
                    &reason,
                    &job.username,
                    "",
                ));
            }
        }
    }
    if let Some(id) = &job.cert_id {
        tracing::Span::current().record("cert_id", id.as_str());
    }
    let resumed = stage != Stage::Taken;
    tracing::info!(action = %job.lms_action, course_id = %job.course_id, resumed,
        example = job.example, "submission taken");
    let cert_id = match stage {
        Stage::Submitted { cert_id } => cert_id,
        Stage::Taken | Stage::Submitting => {
            match submit(shared, env, &job, stage == Stage::Submitting).await? {
                Ok(id) => id,
                Err(body) => return Ok(body),
            }
        }
    };
    if job.cert_id.is_none() {
        tracing::Span::current().record("cert_id", cert_id.as_str());
    }
    let view = match follow(shared, &cert_id).await? {
        Ok(v) => v,
        Err(reason) => {
            return Ok(error_body(
                "certificate lost",
                &reason,
                &job.username,
                &job.course_id,
            ))
        }
    };
    Ok(body_for(&job, &view))
}

fn body_for(job: &Job, view: &CertificateView) -> String {
    if view.state == job.action.success_state() {
        return match success_body(job, view) {
            Ok(b) => b,
            Err(reason) => {
                tracing::error!(reason = %reason, "the certificate's URL does not fit the LMS; answering with an error");
                error_body(
                    "download_url too long",
                    &reason,
                    &job.username,
                    &job.course_id,
                )
            }
        };
    }
    let (error, reason) = match view.state {
        CertState::Error => (
            match job.action {
                Action::Add => "generation failed",
                Action::Regen => "regeneration failed",
                Action::Delete => "deletion failed",
            },
            view.error_reason
                .clone()
                .unwrap_or_else(|| "the certificate ended in state error".into()),
        ),
        other => (
            "unexpected state",
            format!(
                "the {} ended with the certificate in state `{other}` (expected `{}`)",
                job.action,
                job.action.success_state()
            ),
        ),
    };
    error_body(error, &reason, &job.username, &job.course_id)
}

/// The course of a 2013 delete: its verify uuid's public verification record
/// (`GET /verify/{uuid}`) names the course; the learner's certificate there must
/// be the one published under that uuid. Err: why not (answered to the LMS).
async fn find_course(shared: &Shared, job: &Job) -> Result<Result<String, String>, Stopped> {
    let Some(find) = &job.find_by else {
        return Ok(Ok(job.course_id.clone()));
    };
    let lms = lms_uuid(&find.verify);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    let record = loop {
        match shared
            .stop
            .run(shared.cc.verification(find.verify.as_str()))
            .await?
        {
            Ok(Ok(v)) => break v,
            Ok(Err(f)) if f.status == 404 => {
                return Ok(Err(format!(
                    "no certificate was ever published under delete_verify_uuid {lms}"
                )))
            }
            Ok(Err(f)) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %f, retry_in_ms = wait.as_millis() as u64, "looking up the verify uuid failed; retrying");
                shared.stop.sleep(wait).await?;
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "looking up the verify uuid failed; retrying");
                shared.stop.sleep(wait).await?;
            }
        }
    };
    let course_id = record.course_id.to_string();
    let mut probe = job.clone();
    probe.set_course(course_id.clone());
    let Some(cert_id) = probe.cert_id else {
        return Ok(Err(format!(
            "delete_verify_uuid {lms} is of course `{course_id}`, where `{}` is no username",
            job.username
        )));
    };
    let view = match read_certificate(shared, cert_id.as_str()).await? {
        Some(v) => v,
        None => {
            return Ok(Err(format!(
            "delete_verify_uuid {lms} is of course `{course_id}`, where `{}` has no certificate",
            job.username
        )))
        }
    };
    if view.verify_uuid.as_ref() != Some(&find.verify) {
        return Ok(Err(format!(
            "delete_verify_uuid {lms} is not the certificate of `{}` in `{course_id}` (its \
             verify_uuid is {})",
            job.username,
            view.verify_uuid
                .as_ref()
                .map(lms_uuid)
                .unwrap_or_else(|| "none".into())
        )));
    }
    if let (Some(d), Some(have)) = (&find.download, &view.download_uuid) {
        if d != have {
            return Ok(Err(format!(
                "delete_download_uuid {} does not match the certificate's download_uuid {}",
                lms_uuid(d),
                lms_uuid(have)
            )));
        }
    }
    Ok(Ok(course_id))
}

/// What the CC said to a submit.
enum Submit {
    Accepted(SubmitResponse),
    /// Worth another try: network, 5xx, 429, credentials (an operator can fix
    /// them without losing the submission); `maybe_applied`: the CC may have
    /// carried it out.
    Retry {
        reason: String,
        maybe_applied: bool,
    },
    Rejected(Rejection),
}

/// A 4xx the CC means (not credentials, not rate limits): answered to the LMS.
struct Rejection {
    status: u16,
    code: String,
    message: String,
    field: Option<String>,
}

async fn post_submit(shared: &Shared, req: &SubmitRequest, idempotency_key: &str) -> Submit {
    let http = shared
        .cc
        .http()
        .post(shared.cc.url("/v1/certificates"))
        .bearer_auth(shared.cfg.api_key.expose())
        .header("Idempotency-Key", idempotency_key)
        .json(req);
    let resp = match http.send().await {
        Ok(r) => r,
        Err(e) => {
            return Submit::Retry {
                reason: format!("cannot reach the CC: {}", super::chain(&e)),
                // A timeout may hit after the CC acted.
                maybe_applied: !e.is_connect(),
            };
        }
    };
    let status = resp.status();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return Submit::Retry {
                reason: format!("reading the CC's answer: {}", super::chain(&e)),
                maybe_applied: true,
            }
        }
    };
    if status.is_success() {
        return match serde_json::from_slice::<SubmitResponse>(&bytes) {
            Ok(r) => Submit::Accepted(r),
            Err(e) => Submit::Retry {
                reason: format!("unreadable submit answer (HTTP {status}): {e}"),
                maybe_applied: true,
            },
        };
    }
    let (code, message, field) = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(b) => (b.error.code, b.error.message, b.error.field),
        Err(_) => (
            format!("http_{}", status.as_u16()),
            String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            None,
        ),
    };
    let s = status.as_u16();
    match s {
        401 | 403 | 404 | 408 | 429 | 500..=599 => Submit::Retry {
            reason: format!("HTTP {s} {code}: {message}"),
            maybe_applied: s >= 500,
        },
        _ => Submit::Rejected(Rejection {
            status: s,
            code,
            message,
            field,
        }),
    }
}

/// Post one action until the CC accepts or rejects it (transient failures are
/// retried with backoff); `maybe_sent` learns whether it may have been applied.
async fn submit_once(
    shared: &Shared,
    req: &SubmitRequest,
    idempotency_key: &str,
    maybe_sent: &mut bool,
) -> Result<Result<SubmitResponse, Rejection>, Stopped> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        match shared
            .stop
            .run(post_submit(shared, req, idempotency_key))
            .await?
        {
            Submit::Retry {
                reason,
                maybe_applied,
            } => {
                *maybe_sent |= maybe_applied;
                let wait = backoff.next_delay();
                if reason.starts_with("HTTP 401") || reason.starts_with("HTTP 403") {
                    tracing::error!(error = %reason, retry_in_ms = wait.as_millis() as u64,
                        "the CC refuses the bridge's api_key (it must be an lms key)");
                } else if reason.starts_with("HTTP 404") {
                    tracing::error!(error = %reason, retry_in_ms = wait.as_millis() as u64,
                        "no submit endpoint at cc_url; check cc_url");
                } else {
                    tracing::warn!(error = %reason, retry_in_ms = wait.as_millis() as u64,
                        "submit to the CC failed; retrying");
                }
                shared.stop.sleep(wait).await?;
            }
            Submit::Accepted(r) => return Ok(Ok(r)),
            Submit::Rejected(r) => return Ok(Err(r)),
        }
    }
}

/// Submit to the CC until it accepts (the cert_id) or rejects (the error body).
///
/// `maybe_sent`: an earlier attempt (maybe before a restart) may have reached the
/// CC, so a 409 for a certificate already doing this action means "ours".
/// A `create` (add) of a certificate that is downloadable is sent as a regen
/// (every LMS since about 2015 sends only `create`, also to regenerate); a
/// certificate busy with another job is followed until that job ends, then the
/// submission is tried again.
async fn submit(
    shared: &Shared,
    env: &Envelope,
    job: &Job,
    mut maybe_sent: bool,
) -> Result<Result<String, String>, Stopped> {
    if let Err(e) = shared.journal.submitting(env) {
        tracing::error!(error = %format!("{e:#}"), "cannot write the journal");
    }
    let mut action = job.action;
    let mut busy_rounds = 0;
    loop {
        let mut req = job.request.clone();
        req.action = Some(action.as_str().to_owned());
        // The regen a create became has its own key: the add's key already
        // stands for the add (the CC answers a key with its first request).
        let key = if action == job.action {
            env.idempotency_key()
        } else {
            format!("{}-{}", env.idempotency_key(), action.as_str())
        };
        let Rejection {
            status,
            code,
            message,
            field,
        } = match submit_once(shared, &req, &key, &mut maybe_sent).await? {
            Ok(r) => {
                tracing::info!(job_id = %r.job_id, state = %r.state, action = %action, "submitted to the CC");
                let id = r.cert_id.to_string();
                if let Err(e) = shared.journal.submitted(env, &id) {
                    tracing::error!(error = %format!("{e:#}"), "cannot write the journal");
                }
                return Ok(Ok(id));
            }
            Err(rejection) => rejection,
        };
        if status == 409 && code == "illegal_transition" {
            if let Some(id) = &job.cert_id {
                let state = read_certificate(shared, id.as_str())
                    .await?
                    .map(|v| v.state);
                let ours = maybe_sent
                    && state.is_some_and(|s| {
                        s == action.pending_state()
                            || (s == action.success_state() && action != Action::Add)
                            || (job.action == Action::Add && s == CertState::Regenerating)
                    });
                if ours {
                    tracing::info!(state = %state.map(|s| s.as_str()).unwrap_or("-"),
                        "the CC already has this submission (from before a restart or a lost answer); following the certificate");
                    if let Err(e) = shared.journal.submitted(env, id.as_str()) {
                        tracing::error!(error = %format!("{e:#}"), "cannot write the journal");
                    }
                    return Ok(Ok(id.to_string()));
                }
                match state {
                    Some(CertState::Downloadable) if action == Action::Add => {
                        tracing::info!("the certificate exists (downloadable): the LMS's create regenerates it");
                        action = Action::Regen;
                        continue;
                    }
                    Some(s) if s.is_pending() && busy_rounds < BUSY_ROUNDS => {
                        busy_rounds += 1;
                        tracing::info!(state = %s, "the certificate is busy with another job; waiting for it to end, then trying again");
                        if follow(shared, id.as_str()).await?.is_ok() {
                            action = job.action;
                        }
                        continue;
                    }
                    _ => {}
                }
            }
        }
        let reason = match (&field, &job.template) {
            (Some(f), Some(t)) if f == "template" => format!(
                "template `{}` (from template_pdf `{}` by {}): {message}",
                t.template, t.template_pdf, t.by
            ),
            _ => message.clone(),
        };
        let short = match &field {
            Some(f) => format!("rejected: {code} ({f})"),
            None => format!("rejected: {code}"),
        };
        tracing::warn!(status, %code, field = field.as_deref().unwrap_or(""), reason = %reason,
            "the CC rejected the submission; answering with an error");
        return Ok(Err(error_body(
            &short,
            &reason,
            &job.username,
            &job.course_id,
        )));
    }
}

/// The certificate (None if it does not exist), retrying transient failures.
async fn read_certificate(
    shared: &Shared,
    cert_id: &str,
) -> Result<Option<CertificateView>, Stopped> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    for _ in 0..8 {
        match shared.stop.run(shared.cc.certificate(cert_id)).await? {
            Ok(Ok(v)) => return Ok(Some(v)),
            Ok(Err(f)) if f.status == 404 => return Ok(None),
            Ok(Err(f)) => tracing::warn!(error = %f, "reading the certificate failed; retrying"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "reading the certificate failed; retrying")
            }
        }
        shared.stop.sleep(backoff.next_delay()).await?;
    }
    Ok(None)
}

/// Poll the certificate until it is final. Err: it does not exist (any more).
async fn follow(
    shared: &Shared,
    cert_id: &str,
) -> Result<Result<CertificateView, String>, Stopped> {
    // Polls start fast (a certificate takes a second or two) and slow down to 5 s.
    let mut poll = Backoff::new(Duration::from_millis(300), Duration::from_secs(5));
    let mut errors = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        let wait = match shared.stop.run(shared.cc.certificate(cert_id)).await? {
            Ok(Ok(view)) if !view.state.is_pending() => {
                tracing::info!(state = %view.state, "certificate final");
                return Ok(Ok(view));
            }
            Ok(Ok(_)) => {
                errors.reset();
                poll.next_delay()
            }
            Ok(Err(f)) if f.status == 404 => {
                tracing::warn!("the CC has no such certificate any more");
                return Ok(Err(format!(
                    "certificate {cert_id} does not exist on the CC (any more)"
                )));
            }
            Ok(Err(f)) => {
                let wait = errors.next_delay();
                tracing::warn!(error = %f, retry_in_ms = wait.as_millis() as u64, "reading the certificate failed; retrying");
                wait
            }
            Err(e) => {
                let wait = errors.next_delay();
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "reading the certificate failed; retrying");
                wait
            }
        };
        shared.stop.sleep(wait).await?;
    }
}
