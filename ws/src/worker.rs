//! The workserver's main loop: register (with backoff), heartbeat, lease up to
//! `capacity` jobs, run each on the blocking pool while extending its lease, and
//! report the result (the report leases the next jobs with the finished one's
//! capacity, so a busy workserver mostly leases that way; report.rs). On
//! shutdown or drain: stop leasing, finish in-flight jobs (bounded), deregister
//! so anything left goes straight back to the queue.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use testamur_common::config::WsConfig;
use testamur_common::ids::{JobId, LeaseId};
use testamur_common::status_list::LeasedStatusList;
use testamur_common::wire::{JobResult, LeaseResponse, LeasedJob};
use tokio::sync::{watch, OwnedSemaphorePermit, RwLock, Semaphore};
use tracing::Instrument;

use crate::client::{CcClient, ClientError, Session};
use crate::credential::Issuer;
use crate::fence::{LeaseGuard, Liveness};
use crate::job::{JobError, Pipeline};
use crate::render::Renderer;
use crate::report::{Dispatch, Reporter};
use crate::sign::SigningKey;
use crate::storage::{self, Storage, CONTENT_JSON, CONTENT_KEY, PUBLIC_KEY_PATH};

/// How long one lease request waits on the CC for work.
const LEASE_WAIT: Duration = Duration::from_secs(10);
/// How long the lease loop, while jobs are queued, waits for more of its
/// permits to come free before leasing (so a lease call takes several jobs).
const LEASE_GATHER: Duration = Duration::from_millis(2);
/// How long in-flight jobs get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

struct Shared {
    client: CcClient,
    /// Sends completions, several per call when they pile up.
    reporter: Reporter,
    config: WsConfig,
    session: RwLock<Session>,
    pipeline: Arc<Pipeline>,
    draining: AtomicBool,
    /// The jobs whose leases this process holds, reported in every heartbeat (a
    /// lease the CC gave that never arrived here goes back to the queue).
    held: std::sync::Mutex<std::collections::HashSet<testamur_common::ids::JobId>>,
    /// When the CC last accepted a heartbeat: every job's fence depends on it.
    liveness: Arc<Liveness>,
}

/// Build everything that can fail on bad configuration, before touching the network.
pub async fn pipeline(config: &WsConfig) -> anyhow::Result<Pipeline> {
    let renderer = Renderer::load(&config.templates).context("key `templates` in ws.conf")?;
    for w in renderer.warnings() {
        tracing::warn!(templates = %config.templates.display(), "{w}");
    }
    let key = SigningKey::load(&config.signing_key).context("key `signing_key` in ws.conf")?;
    let storage = storage::open(&config.storage)
        .await
        .context("the [storage] section of ws.conf")?;
    let storage: Arc<dyn Storage> = Arc::from(storage);
    // The verify URL's text must fit with this workserver's URLs.
    let sample = testamur_common::ids::PublicUuid::generate();
    let (printed, key_name) = match &config.verify_page_url {
        Some(base) => (format!("{base}{sample}"), "verify_page_url"),
        None => (
            storage.url(&storage::verify_dir(&sample)),
            "[storage] base_url",
        ),
    };
    renderer.check_verify_url(&printed).with_context(|| {
        format!("key `templates` in ws.conf, with the verify URLs of {key_name}")
    })?;
    let (armored, s) = (key.public_key_armored().to_owned(), storage.clone());
    tokio::task::spawn_blocking(move || s.put(PUBLIC_KEY_PATH, armored.as_bytes(), CONTENT_KEY))
        .await
        .context("publishing the public key")?
        .context("publishing the public key (the [storage] section of ws.conf)")?;
    let credentials = match &config.credentials {
        Some(c) => {
            let issuer = Issuer::load(c).context("key `credentials.key` in ws.conf")?;
            if let Some((path, doc)) = issuer.did_document() {
                let (path, s) = (path.to_owned(), storage.clone());
                tokio::task::spawn_blocking(move || s.put(&path, &doc, CONTENT_JSON))
                    .await
                    .context("publishing the DID document")?
                    .context("publishing the DID document (the [storage] section of ws.conf)")?;
            }
            Some(issuer)
        }
        None => None,
    };
    Ok(Pipeline {
        renderer,
        key,
        storage,
        workserver: config.name.clone(),
        verify_page_url: config.verify_page_url.clone(),
        credentials,
        pdf_signer: match &config.pdf_signature {
            Some(p) => {
                Some(crate::pdf_sign::PdfSigner::load(p).context("`pdf_signature` in ws.conf")?)
            }
            None => None,
        },
    })
}

/// For `--check`: a CC answers `GET /healthz` at cc_url, over TLS with the
/// configured CA, and reaches its Redis. Registers nothing (a check must not
/// replace a running workserver's registration).
pub async fn check_cc(config: &WsConfig) -> anyhow::Result<()> {
    let client = CcClient::new(config).context("key `ssl_ca_certs` in ws.conf")?;
    match client.healthz().await {
        Ok(()) => Ok(()),
        Err(ClientError::Unreachable { url, cause }) => anyhow::bail!(
            "no CC reachable at {url}: {cause}; check cc_url and that the CC is running"
        ),
        Err(ClientError::Api {
            status: 503,
            message,
        }) => anyhow::bail!(
            "the CC at {} answers but cannot reach its Redis ({message}); see the CC's log",
            config.cc_url
        ),
        Err(e) => anyhow::bail!(
            "the CC at {} answered /healthz with an error ({e}); is cc_url the CC's URL?",
            config.cc_url
        ),
    }
}

pub async fn run(
    config: WsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pipeline = Arc::new(pipeline(&config).await?);
    tracing::info!(name = %config.name, capacity = config.capacity, key = %pipeline.key.fingerprint(),
        "workserver starting");
    let client = CcClient::new(&config)?.with_catalog(pipeline.renderer.catalog().clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let Some(session) = register(&client, &config, stop_rx.clone()).await? else {
        return Ok(());
    };
    let liveness = Liveness::new(session.heartbeat_interval);
    let shared = Arc::new_cyclic(|me| Shared {
        reporter: Reporter::spawn(
            client.clone(),
            Arc::new(Starter {
                shared: me.clone(),
                stop: stop_rx.clone(),
            }),
        ),
        client,
        config,
        liveness,
        session: RwLock::new(session),
        pipeline,
        draining: AtomicBool::new(false),
        held: Default::default(),
    });
    let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), stop_rx.clone()));
    let permits = Arc::new(Semaphore::new(shared.config.capacity as usize));
    lease_loop(&shared, &permits, stop_rx.clone()).await;

    tracing::info!("no longer leasing; finishing in-flight jobs");
    let all = shared.config.capacity;
    if tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("in-flight jobs did not finish within {SHUTDOWN_GRACE:?}; releasing them");
    }
    heartbeat.abort();
    let session = shared.session.read().await.clone();
    match shared.client.deregister(&session).await {
        Ok(()) => tracing::info!(ws_id = %session.ws_id, "deregistered"),
        Err(e) => tracing::warn!(error = %e, "could not deregister; the CC will expire my leases"),
    }
    Ok(())
}

/// Register, retrying with backoff while the CC is unreachable. `None` if asked to
/// stop first. A rejected cc_pass is a configuration error and ends the process.
async fn register(
    client: &CcClient,
    config: &WsConfig,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<Session>> {
    let mut delay = Duration::from_millis(250);
    loop {
        match client.register(config).await {
            Ok(s) => {
                tracing::info!(ws_id = %s.ws_id, "registered with the CC");
                return Ok(Some(s));
            }
            Err(ClientError::Unauthorized(m)) => {
                anyhow::bail!(
                    "the CC rejected cc_pass ({m}); set cc_pass in ws.conf to the CC's cc_pass"
                )
            }
            Err(ClientError::NameConflict(m)) => {
                anyhow::bail!("registration refused: {m} (key `name`)")
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot register yet");
            }
            Err(e) => anyhow::bail!("registration refused: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(jitter(delay)) => {}
            _ = stop.changed() => return Ok(None),
        }
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}

/// After the CC forgot our token (e.g. a newer registration of our name, or an
/// operator reset), register again and swap the session.
async fn reregister(shared: &Shared, stale: &Session, stop: watch::Receiver<bool>) {
    let mut session = shared.session.write().await;
    if session.token != stale.token {
        return; // someone else already did
    }
    match register(&shared.client, &shared.config, stop).await {
        Ok(Some(s)) => *session = s,
        Ok(None) => {}
        Err(e) => {
            // Another process holds our name, or cc_pass changed: this process
            // cannot work any more. Say so and stop (its supervisor restarts it).
            tracing::error!(error = %format!("{e:#}"), "re-registration failed; exiting");
            std::process::exit(2);
        }
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let session = shared.session.read().await.clone();
        tokio::select! {
            _ = tokio::time::sleep(session.heartbeat_interval) => {}
            _ = stop.changed() => return,
        }
        let held: Vec<_> = shared
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let sent = std::time::Instant::now();
        match shared.client.heartbeat(&session, held).await {
            Ok(drain) => {
                shared.liveness.heartbeat_ok(sent);
                if drain && !shared.draining.swap(true, Ordering::SeqCst) {
                    tracing::info!("the CC asked this workserver to drain");
                }
            }
            Err(ClientError::Unauthorized(_)) => reregister(&shared, &session, stop.clone()).await,
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

async fn lease_loop(
    shared: &Arc<Shared>,
    permits: &Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(250);
    // Whether the last lease call found work.
    let mut busy = false;
    loop {
        if *stop.borrow() || shared.draining.load(Ordering::SeqCst) {
            return;
        }
        // Lease only while holding permits: backpressure lands on the queue.
        let first = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let mut held = vec![first];
        while let Ok(p) = permits.clone().try_acquire_owned() {
            held.push(p);
        }
        // While jobs are queued, permits come free one at a time as jobs finish:
        // gather them for a moment so that one lease call takes several jobs,
        // not one each. Only after a lease that found work, so an idle
        // workserver's long poll (and a lone job's latency) never waits.
        if busy {
            let until = tokio::time::Instant::now() + LEASE_GATHER;
            while held.len() < shared.config.capacity as usize {
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => held.push(p),
                        Err(_) => return,
                    },
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
        }
        let session = shared.session.read().await.clone();
        let sent = std::time::Instant::now();
        let leased = tokio::select! {
            r = shared.client.lease(&session, held.len() as u32, LEASE_WAIT) => r,
            _ = stop.changed() => return,
        };
        match leased {
            Ok(leased) => {
                delay = Duration::from_millis(250);
                busy = !leased.jobs.is_empty() || !leased.status_lists.is_empty();
                start_work(shared, &session, leased, held, sent);
            }
            Err(ClientError::Unauthorized(_)) => reregister(shared, &session, stop.clone()).await,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "lease request failed");
                tokio::select! {
                    _ = tokio::time::sleep(jitter(delay)) => {}
                    _ = stop.changed() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Starts leased work (from the lease loop or a completion call's answer), each
/// item with one of `permits`; permits left over are dropped (free capacity).
fn start_work(
    shared: &Arc<Shared>,
    session: &Session,
    leased: LeaseResponse,
    mut permits: Vec<OwnedSemaphorePermit>,
    sent: std::time::Instant,
) {
    let work = leased.status_lists.into_iter().map(Work::StatusList);
    for job in work.chain(leased.jobs.into_iter().map(|j| Work::Job(Box::new(j)))) {
        let Some(permit) = permits.pop() else {
            tracing::error!(job_id = %job.job_id(), "the CC sent more jobs than asked for; releasing it");
            let (shared, session) = (shared.clone(), session.clone());
            tokio::spawn(async move {
                let _ = shared
                    .client
                    .fail(
                        &session,
                        job.lease_id(),
                        &JobError {
                            reason: format!(
                                "workserver {} over capacity: the CC sent more jobs than asked for",
                                shared.config.name
                            ),
                            code: testamur_common::failure::FailCode::Busy,
                            public: None,
                            retryable: true,
                        },
                    )
                    .await;
            });
            continue;
        };
        shared
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.job_id().clone());
        let shared = shared.clone();
        let session = session.clone();
        let span = job.span();
        tokio::spawn(
            async move {
                let id = job.job_id().clone();
                run_job(&shared, &session, job, sent, permit).await;
                shared
                    .held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            }
            .instrument(span),
        );
    }
}

/// The reporter's way to start what its completion calls lease.
struct Starter {
    shared: Weak<Shared>,
    stop: watch::Receiver<bool>,
}

impl Dispatch for Starter {
    fn may_lease(&self) -> bool {
        match self.shared.upgrade() {
            Some(shared) => !*self.stop.borrow() && !shared.draining.load(Ordering::SeqCst),
            None => false,
        }
    }

    fn start(
        &self,
        session: &Session,
        leased: LeaseResponse,
        permits: Vec<OwnedSemaphorePermit>,
        sent: std::time::Instant,
    ) {
        if let Some(shared) = self.shared.upgrade() {
            start_work(&shared, session, leased, permits, sent);
        } else if !leased.jobs.is_empty() || !leased.status_lists.is_empty() {
            // Only at shutdown; the leases expire (or the deregistration releases them).
            tracing::warn!("work leased while shutting down; leaving it to expire");
        }
    }
}

/// What one lease is for: a certificate's job, or a status list's publication.
enum Work {
    Job(Box<LeasedJob>),
    StatusList(LeasedStatusList),
}

impl Work {
    fn job_id(&self) -> &JobId {
        match self {
            Work::Job(j) => &j.job_id,
            Work::StatusList(s) => &s.job_id,
        }
    }

    fn lease_id(&self) -> &LeaseId {
        match self {
            Work::Job(j) => &j.lease_id,
            Work::StatusList(s) => &s.lease_id,
        }
    }

    /// The span of its log lines (job, lease and cert ids).
    fn span(&self) -> tracing::Span {
        match self {
            Work::Job(j) => tracing::info_span!("job", job_id = %j.job_id, lease_id = %j.lease_id,
                cert_id = %j.certificate.cert_id, action = %j.action, attempt = j.attempt),
            Work::StatusList(s) => tracing::info_span!("status_list", job_id = %s.job_id,
                lease_id = %s.lease_id, list = s.list, version = s.version, attempt = s.attempt),
        }
    }
}

/// One leased job: the pipeline on the blocking pool behind the lease's fence,
/// the lease extended meanwhile, then the result reported. `sent`: when the lease
/// request was sent (the lease surely lasts `lease_ttl` from then).
async fn run_job(
    shared: &Arc<Shared>,
    session: &Session,
    job: Work,
    sent: std::time::Instant,
    permit: OwnedSemaphorePermit,
) {
    // The job's capacity: handed to the reporter with a result (for the work
    // leased with it), dropped otherwise when this returns.
    let mut permit = Some(permit);
    let guard = Arc::new(LeaseGuard::new(
        sent,
        session.lease_ttl,
        shared.liveness.clone(),
    ));
    let extender = {
        let shared = shared.clone();
        let session = session.clone();
        let lease = job.lease_id().clone();
        let guard = guard.clone();
        tokio::spawn(
            async move {
                loop {
                    tokio::time::sleep(session.lease_ttl / 3).await;
                    let sent = std::time::Instant::now();
                    match shared.client.extend(&session, &lease).await {
                        Ok(()) => guard.extended(sent),
                        Err(ClientError::LeaseLost(_)) | Err(ClientError::Unauthorized(_)) => {
                            guard.mark_lost();
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, lease_id = %lease, "could not extend lease")
                        }
                    }
                }
            }
            // The job's span (job, lease and cert ids) on the extender's lines too.
            .instrument(tracing::Span::current()),
        )
    };
    let pipeline = shared.pipeline.clone();
    let lease_id = job.lease_id().clone();
    let started = std::time::Instant::now();
    let fence = guard.clone();
    // The job's span (job, lease and cert ids) on the lines the job logs.
    let span = tracing::Span::current();
    let outcome = tokio::task::spawn_blocking(move || {
        span.in_scope(|| match &job {
            Work::Job(j) => pipeline.run_fenced(j.action, &j.certificate, fence.as_ref()),
            Work::StatusList(s) => pipeline.publish_status_list(s, fence.as_ref()),
        })
    })
    .await;
    extender.abort();
    if guard.is_lost() {
        tracing::warn!("lease lost while working; result discarded");
        return;
    }
    let outcome: Result<JobResult, JobError> = match outcome {
        Ok(r) => r,
        Err(e) => Err(JobError::internal(
            format!(
                "internal error on {} while processing the job: {e}",
                shared.config.name
            ),
            true,
        )),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut delay = Duration::from_millis(100);
    let deadline = tokio::time::Instant::now() + session.lease_ttl;
    loop {
        let sent = match &outcome {
            Ok(result) => {
                shared
                    .reporter
                    .complete(session, &lease_id, result.clone(), permit.take())
                    .await
            }
            Err(e) => shared.client.fail(session, &lease_id, e).await,
        };
        match sent {
            Ok(()) => {
                match &outcome {
                    Ok(_) => tracing::info!(ms, "job done"),
                    Err(e) => {
                        tracing::warn!(ms, reason = %e.reason, retryable = e.retryable, "job failed")
                    }
                }
                return;
            }
            Err(ClientError::LeaseLost(_)) | Err(ClientError::Unauthorized(_)) => {
                tracing::warn!("lease lost before the result was reported; result discarded");
                return;
            }
            Err(e) if e.is_transient() && tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "could not report the result yet; retrying");
                tokio::time::sleep(jitter(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not report the result; the lease will expire and the job be retried");
                return;
            }
        }
    }
}

/// `d` plus up to 25 % random jitter, so restarted workservers do not stampede.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let frac = u16::from_le_bytes(b) as f64 / u16::MAX as f64 * 0.25;
    d.mul_f64(1.0 + frac)
}
