//! The bridge: a pull loop that takes submissions from xqueue while fewer than
//! `max_in_flight` are unanswered, and one task per submission that submits it to
//! the CC, follows the certificate and posts the result back.
//!
//! Every task ends in exactly one accepted `put_result` (success or error)
//! unless the bridge stops first; then the journal keeps the submission and the
//! next start resumes it where it was (see [`super::journal`]).
//!
//! A submission is known by its key (xqueue's `submission_id` and the body), not
//! by its pull: xqueue hands a submission out again under a new pull key when
//! the LMS did not acknowledge the answer, or when it was pulled longer ago
//! than `SUBMISSION_PROCESSING_DELAY` and is still unanswered. A copy of a
//! submission being worked on only replaces the header its answer goes to
//! (xqueue accepts only the newest pull key); a copy of one already answered is
//! answered again with the same result.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::client::{XqError, XqueueClient};
use super::config::XqueueConfig;
use super::journal::{Journal, Stage};
use super::submission::Envelope;
use super::{Backoff, Stop, Stopped};
use crate::api::ApiClient;

/// How long a stopping bridge waits for its tasks (a request in flight may take
/// up to its 30 s timeout) before abandoning them to the journal.
const STOP_GRACE: Duration = Duration::from_secs(35);

/// What every submission task shares.
pub struct Shared {
    pub cfg: XqueueConfig,
    pub xq: XqueueClient,
    pub cc: ApiClient,
    pub journal: Journal,
    /// The submissions a task is working on: key → the newest header.
    in_flight: Mutex<HashMap<String, Slot>>,
    pub stop: Stop,
}

/// The header a submission's answer goes to, and how many copies replaced it.
struct Slot {
    header: String,
    version: u64,
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
        in_flight: Mutex::new(HashMap::new()),
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
        shared.lock_in_flight().insert(
            p.envelope.key(),
            Slot {
                header: p.envelope.header.clone(),
                version: 0,
            },
        );
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
    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
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
    {
        let mut in_flight = shared.lock_in_flight();
        if let Some(slot) = in_flight.get_mut(&key) {
            if slot.header == env.header {
                span.in_scope(|| {
                    tracing::warn!(
                        "xqueue handed out the same copy of a submission twice; ignoring it"
                    )
                });
                return;
            }
            slot.header = env.header.clone();
            slot.version += 1;
            if let Err(e) = shared.journal.reoffered(&env) {
                span.in_scope(
                    || tracing::error!(error = %format!("{e:#}"), "cannot write the journal"),
                );
            }
            span.in_scope(|| {
                tracing::info!(copies = slot.version + 1,
                    "xqueue handed out a submission again (new pull key) while it is being worked on; its answer goes to the newest copy")
            });
            return;
        }
        in_flight.insert(
            key,
            Slot {
                header: env.header.clone(),
                version: 0,
            },
        );
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
        let body = match shared.journal.answer_for(&env) {
            Some(result) => {
                tracing::info!("xqueue handed out a submission that was answered already (the LMS did not acknowledge the answer); answering with the same result");
                Ok(result)
            }
            None => super::cc::outcome(&shared, &env, stage).await,
        };
        match body {
            // It leaves in_flight there (once answered: a copy taken later is
            // a new task, whose slot must stay).
            Ok(body) => answer(&shared, &env, &body).await,
            Err(Stopped) => {
                shared.lock_in_flight().remove(&env.key());
                tracing::info!("stopping; the journal keeps this submission for the next start")
            }
        }
    }
    .instrument(span)
    .await;
}

/// Post the result to the newest copy of the submission; record it. xqueue
/// refusing it (not the session) five times in a row gives up: the submission no
/// longer exists or is no longer ours.
async fn answer(shared: &Shared, env: &Envelope, body: &str) {
    let summary: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let key = env.key();
    let mut refusals = 0;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let (header, version) = match shared.lock_in_flight().get(&key) {
            Some(slot) => (slot.header.clone(), slot.version),
            None => (env.header.clone(), 0),
        };
        let newer = |shared: &Shared| {
            shared
                .lock_in_flight()
                .get(&key)
                .is_some_and(|s| s.version != version)
        };
        match shared.xq.put_result(&header, body).await {
            Ok(()) => {
                let mut in_flight = shared.lock_in_flight();
                if in_flight.get(&key).is_some_and(|s| s.version != version) {
                    drop(in_flight);
                    tracing::info!("answered an older copy; xqueue handed out a newer one meanwhile: answering that too");
                    continue;
                }
                // Recorded before the key leaves in_flight: a copy taken from
                // now on finds the answer.
                if let Err(e) = shared.journal.answered(env, body) {
                    tracing::error!(error = %format!("{e:#}"), "cannot write the journal; the submission may be answered again after a restart");
                }
                in_flight.remove(&key);
                drop(in_flight);
                let text = |k: &str| summary.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                match text("error") {
                    Some(e) => tracing::info!(error = %e, "answered xqueue (error)"),
                    None => {
                        let uuid = text("download_uuid").unwrap_or_default();
                        tracing::info!(download_uuid = %uuid, "answered xqueue (success)")
                    }
                }
                return;
            }
            Err(XqError::Refused(m)) => {
                if newer(shared) {
                    tracing::info!(answer = %m, "xqueue refused the answer to an older copy; answering the newest");
                    continue;
                }
                refusals += 1;
                if refusals >= 5 {
                    tracing::error!(answer = %m, "xqueue keeps refusing the result; giving up on this submission");
                    let mut in_flight = shared.lock_in_flight();
                    if let Err(e) = shared.journal.answered(env, body) {
                        tracing::error!(error = %format!("{e:#}"), "cannot write the journal");
                    }
                    in_flight.remove(&key);
                    return;
                }
                let wait = backoff.next_delay();
                tracing::warn!(answer = %m, retry_in_ms = wait.as_millis() as u64, "xqueue refused put_result; retrying");
                if shared.stop.sleep(wait).await.is_err() {
                    shared.lock_in_flight().remove(&key);
                    return;
                }
            }
            Err(XqError::Stopped(_)) => {
                shared.lock_in_flight().remove(&key);
                tracing::info!("stopping before the result was posted; the journal keeps this submission for the next start");
                return;
            }
        }
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
