//! Reporting finished jobs to the CC, several per call: one task sends the
//! completions; whatever finished while its last call was in flight goes in the
//! next `POST /v1/leases/complete` together.
//!
//! A finished job hands its capacity permit over with its result, and the call
//! asks for that many new jobs (`lease`): on a busy workserver a completion call
//! carries the next work back and the lease loop's long poll stays out of the
//! way. The leased work starts with those permits (`Dispatch`); permits left
//! over are dropped, freeing capacity for the lease loop. When it may not lease
//! (stopping, draining) a lone completion goes by itself
//! (`POST /v1/leases/{lease_id}/complete`), so batching never makes a job wait:
//! it only happens when results arrive faster than calls return.
//!
//! Each completion is answered on its own, with the single endpoint's meaning:
//! a lost lease discards that result only. A batch refused for a malformed
//! result (422) is sent again one by one, so only that result is refused; a CC
//! without the batch endpoint (older release; 404) gets single calls from then on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use testamur_common::ids::LeaseId;
use testamur_common::wire::{
    CompletionOutcome, CompletionStatus, JobResult, LeaseResponse, MAX_COMPLETIONS,
};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use crate::client::{CcClient, ClientError, Session};

/// What the reporter needs of the workserver to lease with its completions.
pub trait Dispatch: Send + Sync + 'static {
    /// Whether new work may be leased now (not stopping, not draining).
    fn may_lease(&self) -> bool;
    /// Starts the work a completion call leased (`sent`: when that call was
    /// sent), each item with one of `permits`; those left over are dropped.
    fn start(
        &self,
        session: &Session,
        leased: LeaseResponse,
        permits: Vec<OwnedSemaphorePermit>,
        sent: Instant,
    );
}

/// The sending side: cheap to clone, one per workserver.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<Pending>,
    /// For when the reporting task is gone (it ends only with the runtime).
    client: CcClient,
}

struct Pending {
    session: Session,
    lease: LeaseId,
    result: JobResult,
    /// The finished job's capacity, for the work leased with its completion.
    permit: Option<OwnedSemaphorePermit>,
    reply: oneshot::Sender<Result<(), ClientError>>,
}

impl Reporter {
    /// Starts the reporting task on the current runtime.
    pub fn spawn(client: CcClient, dispatch: Arc<dyn Dispatch>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client.clone(), rx, dispatch));
        Self { tx, client }
    }

    /// Reports one job done, as `CcClient::complete` does (the same errors), in
    /// the next call to the CC; `permit`, the job's capacity, goes to the work
    /// leased with it (or is dropped once the call is answered).
    pub async fn complete(
        &self,
        session: &Session,
        lease: &LeaseId,
        result: JobResult,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            session: session.clone(),
            lease: lease.clone(),
            result,
            permit,
            reply,
        };
        if let Err(mpsc::error::SendError(p)) = self.tx.send(pending) {
            return self.client.complete(session, lease, p.result).await;
        }
        match answer.await {
            Ok(r) => r,
            // Dropped unanswered: only when the runtime shuts down.
            Err(_) => Err(ClientError::Unreachable {
                url: String::new(),
                cause: "the workserver is shutting down".into(),
            }),
        }
    }
}

async fn run(
    client: CcClient,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    dispatch: Arc<dyn Dispatch>,
) {
    let mut batch_endpoint = true;
    // Whether the CC leases with completions (an older one refuses `lease`: 400).
    let mut lease_endpoint = true;
    // Completions of another session (after a re-registration) wait for the next call.
    let mut later: VecDeque<Pending> = VecDeque::new();
    loop {
        let first = match later.pop_front() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_COMPLETIONS {
            match rx.try_recv() {
                Ok(p) if p.session.token == batch[0].session.token => batch.push(p),
                Ok(p) => later.push_back(p),
                Err(_) => break,
            }
        }
        let permits: Vec<_> = batch.iter_mut().filter_map(|p| p.permit.take()).collect();
        let mut lease =
            (batch_endpoint && lease_endpoint && !permits.is_empty() && dispatch.may_lease())
                .then_some(permits.len() as u32);
        if batch_endpoint && (batch.len() > 1 || lease.is_some()) {
            let items: Vec<_> = batch
                .iter()
                .map(|p| (p.lease.clone(), p.result.clone()))
                .collect();
            let session = batch[0].session.clone();
            let mut sent = Instant::now();
            let mut answer = client.complete_and_lease(&session, &items, lease).await;
            if lease.is_some() && matches!(answer, Err(ClientError::Api { status: 400, .. })) {
                // Refused before anything was recorded: the same call without it.
                tracing::info!(
                    "the CC does not lease with completions (an older release); leasing separately"
                );
                lease_endpoint = false;
                lease = None;
                sent = Instant::now();
                answer = client.complete_and_lease(&session, &items, lease).await;
            }
            match answer {
                Ok((outcomes, leased)) => {
                    for (p, o) in batch.into_iter().zip(outcomes) {
                        let _ = p.reply.send(outcome(o));
                    }
                    dispatch.start(&session, leased, permits, sent);
                    continue;
                }
                Err(ClientError::Api { status: 404, .. }) => {
                    tracing::info!(
                        "the CC has no batch completion endpoint; completing one lease per call"
                    );
                    batch_endpoint = false;
                }
                // One malformed result refuses the batch: each on its own then,
                // so only that one is refused.
                Err(ClientError::Api { status: 422, .. }) => {}
                Err(e) => {
                    for p in batch {
                        let _ = p.reply.send(Err(e.clone()));
                    }
                    continue;
                }
            }
        }
        drop(permits);
        for p in batch {
            let r = client.complete(&p.session, &p.lease, p.result).await;
            let _ = p.reply.send(r);
        }
    }
}

/// One answer of a batch as the single endpoint's result.
fn outcome(o: CompletionOutcome) -> Result<(), ClientError> {
    let message = o.error.map(|e| e.message).unwrap_or_default();
    match o.status {
        CompletionStatus::Ok => Ok(()),
        CompletionStatus::Lost => Err(ClientError::LeaseLost(message)),
        CompletionStatus::Mismatch => Err(ClientError::Api {
            status: 422,
            message,
        }),
    }
}
