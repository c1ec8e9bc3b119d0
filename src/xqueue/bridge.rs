//! The bridge: a pull loop that takes submissions from xqueue while fewer than
//! `max_in_flight` are unanswered, and one task per submission that submits it to
//! the CC, follows the certificate and posts the result back.
//!
//! Every task ends in exactly one `put_result` (success or error) unless the
//! bridge stops first; then the journal keeps the submission and the next start
//! resumes it where it was (see [`super::journal`]).

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use testamur_common::state::{Action, CertState};
use testamur_common::wire::{CertificateView, ErrorBody, SubmitResponse};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::client::{XqError, XqueueClient};
use super::config::XqueueConfig;
use super::journal::{Journal, Stage};
use super::submission::{error_body, parse_body, success_body, Envelope, Job};
use super::{Backoff, Stop, Stopped};
use crate::api::ApiClient;

/// How long a stopping bridge waits for its tasks (a request in flight may take
/// up to its 30 s timeout) before abandoning them to the journal.
const STOP_GRACE: Duration = Duration::from_secs(35);

struct Shared {
    cfg: XqueueConfig,
    xq: XqueueClient,
    cc: ApiClient,
    journal: Journal,
    /// Keys of the submissions a task is working on.
    in_flight: Mutex<HashSet<String>>,
    stop: Stop,
}

/// Run the bridge until `shutdown` resolves.
pub async fn run(
    cfg: XqueueConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop) = Stop::new();
    let (journal, pending) = Journal::open(&cfg.state_file)?;
    let cc = ApiClient::new(
        &cfg.cc_url,
        cfg.cc_ca_certs.as_deref(),
        cfg.api_key.expose(),
    )?;
    let xq = XqueueClient::new(&cfg, stop.clone())?;
    let sem = Arc::new(Semaphore::new(cfg.max_in_flight));
    let shared = Arc::new(Shared {
        cfg,
        xq,
        cc,
        journal,
        in_flight: Mutex::new(HashSet::new()),
        stop: stop.clone(),
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        // Keep the sender alive: a dropped sender would read as "stop" anyway.
        std::future::pending::<()>().await;
    });
    tracing::info!(
        xqueue = %shared.cfg.xqueue_url,
        queue = %shared.cfg.queue_name,
        cc = %shared.cfg.cc_url,
        state_file = %shared.cfg.state_file.display(),
        max_in_flight = shared.cfg.max_in_flight,
        resuming = pending.len(),
        "xqueue bridge starting"
    );

    let mut tasks = JoinSet::new();
    for p in pending {
        // Resumed submissions count against max_in_flight when they fit.
        let permit = sem.clone().try_acquire_owned().ok();
        let key = p.envelope.key();
        shared.lock_in_flight().insert(key);
        tasks.spawn(handle(shared.clone(), p.envelope, p.stage, permit));
    }

    pull_loop(&shared, &sem, &mut tasks).await;

    let left = tasks.len();
    if left > 0 {
        tracing::info!(
            tasks = left,
            "stopping: waiting for submission tasks (unanswered ones resume at the next start)"
        );
    }
    if tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tasks.abort_all();
    }
    tracing::info!("xqueue bridge stopped");
    Ok(())
}

impl Shared {
    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn pull_loop(shared: &Arc<Shared>, sem: &Arc<Semaphore>, tasks: &mut JoinSet<()>) {
    let poll = shared.cfg.poll_interval;
    let mut refused = Backoff::new(poll, poll.max(Duration::from_secs(60)));
    // Submissions the last get_queuelen announced that we have not fetched yet.
    let mut available = 0u64;
    loop {
        while let Some(r) = tasks.try_join_next() {
            if let Err(e) = r {
                if e.is_panic() {
                    tracing::error!(error = %e, "a submission task panicked (a bug); it resumes at the next start");
                }
            }
        }
        let permit = match shared.stop.run(sem.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => return,
        };
        if available == 0 {
            match shared.xq.queue_len().await {
                Ok(0) => {
                    drop(permit);
                    if shared.stop.sleep(poll).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(n) => {
                    refused.reset();
                    available = n;
                }
                Err(XqError::Refused(m)) => {
                    let wait = refused.next_delay();
                    tracing::error!(queue = %shared.cfg.queue_name, answer = %m, retry_in_ms = wait.as_millis() as u64,
                        "xqueue refused get_queuelen; check queue_name");
                    drop(permit);
                    if shared.stop.sleep(wait).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err(XqError::Stopped(_)) => return,
            }
        }
        match shared.xq.get_submission().await {
            Ok(Some(content)) => {
                available = available.saturating_sub(1);
                match Envelope::from_content(&content) {
                    Ok(env) => take(shared, env, permit, tasks),
                    Err(e) => tracing::error!(error = %e,
                        content = %content.to_string().chars().take(300).collect::<String>(),
                        "xqueue handed out a submission without a readable header; it cannot be answered"),
                }
            }
            Ok(None) => {
                available = 0;
                drop(permit);
                if shared.stop.sleep(poll).await.is_err() {
                    return;
                }
            }
            Err(XqError::Refused(m)) => {
                available = 0;
                let wait = refused.next_delay();
                tracing::warn!(answer = %m, retry_in_ms = wait.as_millis() as u64, "xqueue refused get_submission");
                drop(permit);
                if shared.stop.sleep(wait).await.is_err() {
                    return;
                }
            }
            Err(XqError::Stopped(_)) => return,
        }
    }
}

/// A submission was taken from xqueue: record it, then work on it.
fn take(
    shared: &Arc<Shared>,
    env: Envelope,
    permit: OwnedSemaphorePermit,
    tasks: &mut JoinSet<()>,
) {
    let key = env.key();
    let span = tracing::info_span!("submission", submission_id = %env.submission_id());
    if !shared.lock_in_flight().insert(key) {
        span.in_scope(|| {
            tracing::warn!("xqueue handed out a submission that is already being worked on; ignoring this copy")
        });
        return;
    }
    if let Err(e) = shared.journal.taken(&env) {
        span.in_scope(|| {
            tracing::error!(error = %format!("{e:#}"),
                "cannot record the submission in the journal; it is answered, but would be lost by a restart")
        });
    }
    if shared.stop.is_stopped() {
        // Recorded: the next start answers it.
        return;
    }
    tasks.spawn(handle(shared.clone(), env, Stage::Taken, Some(permit)));
}

/// One submission from its stage to its answer.
async fn handle(
    shared: Arc<Shared>,
    env: Envelope,
    stage: Stage,
    permit: Option<OwnedSemaphorePermit>,
) {
    let span = tracing::info_span!(
        "submission",
        submission_id = %env.submission_id(),
        cert_id = tracing::field::Empty
    );
    async {
        let _permit = permit;
        match outcome(&shared, &env, stage).await {
            Ok(body) => answer(&shared, &env, &body).await,
            Err(Stopped) => {
                tracing::info!("stopping; the journal keeps this submission for the next start")
            }
        }
    }
    .instrument(span)
    .await;
    shared.lock_in_flight().remove(&env.key());
}

/// The `put_result` body for the submission (after submitting and following it).
async fn outcome(shared: &Shared, env: &Envelope, stage: Stage) -> Result<String, Stopped> {
    let job = match parse_body(&env.body, &shared.cfg.template_map) {
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
    if let Some(id) = &job.cert_id {
        tracing::Span::current().record("cert_id", id.as_str());
    }
    let resumed = stage != Stage::Taken;
    tracing::info!(action = %job.lms_action, course_id = %job.course_id, resumed, "submission taken");
    let cert_id = match stage {
        Stage::Submitted { cert_id } => cert_id,
        Stage::Taken => match submit(shared, env, &job, false).await? {
            Ok(id) => id,
            Err(body) => return Ok(body),
        },
        Stage::Submitting => match submit(shared, env, &job, true).await? {
            Ok(id) => id,
            Err(body) => return Ok(body),
        },
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
        return success_body(job, view);
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
    Rejected {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
    },
}

async fn post_submit(shared: &Shared, env: &Envelope, job: &Job) -> Submit {
    let req = shared
        .cc
        .http()
        .post(shared.cc.url("/v1/certificates"))
        .bearer_auth(shared.cfg.api_key.expose())
        .header("Idempotency-Key", env.idempotency_key())
        .json(&job.request);
    let resp = match req.send().await {
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
        _ => Submit::Rejected {
            status: s,
            code,
            message,
            field,
        },
    }
}

/// Submit to the CC until it accepts (the cert_id) or rejects (the error body).
/// `maybe_sent`: an earlier attempt (maybe before a restart) may have reached the
/// CC, so a 409 for a certificate already doing this action means "ours".
async fn submit(
    shared: &Shared,
    env: &Envelope,
    job: &Job,
    mut maybe_sent: bool,
) -> Result<Result<String, String>, Stopped> {
    if let Err(e) = shared.journal.submitting(env) {
        tracing::error!(error = %format!("{e:#}"), "cannot write the journal");
    }
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        let answer = shared.stop.run(post_submit(shared, env, job)).await?;
        match answer {
            Submit::Accepted(r) => {
                tracing::info!(job_id = %r.job_id, state = %r.state, "submitted to the CC");
                let id = r.cert_id.to_string();
                if let Err(e) = shared.journal.submitted(env, &id) {
                    tracing::error!(error = %format!("{e:#}"), "cannot write the journal");
                }
                return Ok(Ok(id));
            }
            Submit::Retry {
                reason,
                maybe_applied,
            } => {
                maybe_sent |= maybe_applied;
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
            Submit::Rejected {
                status,
                code,
                message,
                field,
            } => {
                if status == 409 && code == "illegal_transition" && maybe_sent {
                    if let Some(id) = &job.cert_id {
                        if let Some(state) = current_state(shared, id.as_str()).await? {
                            if state == job.action.pending_state()
                                || state == job.action.success_state()
                            {
                                tracing::info!(%state,
                                    "the CC already has this submission (from before a restart or a lost answer); following the certificate");
                                if let Err(e) = shared.journal.submitted(env, id.as_str()) {
                                    tracing::error!(error = %format!("{e:#}"), "cannot write the journal");
                                }
                                return Ok(Ok(id.to_string()));
                            }
                        }
                    }
                }
                let reason = match (&field, &job.template) {
                    (Some(f), Some((template, pdf))) if f == "template" => {
                        format!("template `{template}` (from template_pdf `{pdf}`): {message}")
                    }
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
    }
}

/// The certificate's state (None if it does not exist), retrying transient failures.
async fn current_state(shared: &Shared, cert_id: &str) -> Result<Option<CertState>, Stopped> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    for _ in 0..8 {
        match shared.stop.run(shared.cc.certificate(cert_id)).await? {
            Ok(Ok(v)) => return Ok(Some(v.state)),
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

/// Post the result; record it. xqueue refusing it (not the session) five times in
/// a row gives up: the submission no longer exists or is no longer ours.
async fn answer(shared: &Shared, env: &Envelope, body: &str) {
    let summary: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let mut refusals = 0;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        match shared.xq.put_result(&env.header, body).await {
            Ok(()) => {
                let text = |k: &str| summary.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                match text("error") {
                    Some(e) => tracing::info!(error = %e, "answered xqueue (error)"),
                    None => {
                        let uuid = text("download_uuid").unwrap_or_default();
                        tracing::info!(download_uuid = %uuid, "answered xqueue (success)")
                    }
                }
                break;
            }
            Err(XqError::Refused(m)) => {
                refusals += 1;
                if refusals >= 5 {
                    tracing::error!(answer = %m, "xqueue keeps refusing the result; giving up on this submission");
                    break;
                }
                let wait = backoff.next_delay();
                tracing::warn!(answer = %m, retry_in_ms = wait.as_millis() as u64, "xqueue refused put_result; retrying");
                if shared.stop.sleep(wait).await.is_err() {
                    return;
                }
            }
            Err(XqError::Stopped(_)) => {
                tracing::info!("stopping before the result was posted; the journal keeps this submission for the next start");
                return;
            }
        }
    }
    if let Err(e) = shared.journal.answered(env) {
        tracing::error!(error = %format!("{e:#}"), "cannot write the journal; the submission may be answered again after a restart");
    }
}

/// For `--check`: log in to xqueue, read the queue length, and check that the CC
/// answers and accepts the api_key.
pub async fn check(cfg: &XqueueConfig) -> anyhow::Result<String> {
    let (_tx, stop) = Stop::new();
    let xq = XqueueClient::new(cfg, stop)?;
    let len = xq
        .check()
        .await
        .map_err(|e| anyhow::anyhow!("xqueue at {}: {e}", cfg.xqueue_url))?;
    let cc = ApiClient::new(
        &cfg.cc_url,
        cfg.cc_ca_certs.as_deref(),
        cfg.api_key.expose(),
    )?;
    // A certificate that does not exist: 404 with a valid key, 401/403 without.
    match cc.certificate(&"0".repeat(32)).await {
        Ok(Ok(_)) => {}
        Ok(Err(f)) if f.status == 404 => {}
        Ok(Err(f)) => anyhow::bail!("the CC at {} refused the api_key: {f}", cfg.cc_url),
        Err(e) => return Err(e.context(format!("the CC at {}", cfg.cc_url))),
    }
    Ok(format!(
        "xqueue login ok, queue `{}` holds {len} submissions; CC ok",
        cfg.queue_name
    ))
}
