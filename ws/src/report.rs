//! Reporting finished jobs to the CC, several per call: one task sends the
//! completions; whatever finished while its last call was in flight goes in the
//! next `POST /v1/leases/complete` together. A lone completion goes at once by
//! itself (`POST /v1/leases/{lease_id}/complete`), so batching never makes a job
//! wait: it only happens when results arrive faster than calls return.
//!
//! Each completion is answered on its own, with the single endpoint's meaning:
//! a lost lease discards that result only. A batch refused for a malformed
//! result (422) is sent again one by one, so only that result is refused; a CC
//! without the batch endpoint (older release; 404) gets single calls from then on.

use std::collections::VecDeque;

use testamur_common::ids::LeaseId;
use testamur_common::wire::{CompletionOutcome, CompletionStatus, JobResult, MAX_COMPLETIONS};
use tokio::sync::{mpsc, oneshot};

use crate::client::{CcClient, ClientError, Session};

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
    reply: oneshot::Sender<Result<(), ClientError>>,
}

impl Reporter {
    /// Starts the reporting task on the current runtime.
    pub fn spawn(client: CcClient) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client.clone(), rx));
        Self { tx, client }
    }

    /// Reports one job done, as `CcClient::complete` does (the same errors), in
    /// the next call to the CC.
    pub async fn complete(
        &self,
        session: &Session,
        lease: &LeaseId,
        result: JobResult,
    ) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            session: session.clone(),
            lease: lease.clone(),
            result,
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

async fn run(client: CcClient, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch_endpoint = true;
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
        if batch.len() > 1 && batch_endpoint {
            let items: Vec<_> = batch
                .iter()
                .map(|p| (p.lease.clone(), p.result.clone()))
                .collect();
            match client.complete_many(&batch[0].session, &items).await {
                Ok(outcomes) => {
                    for (p, o) in batch.into_iter().zip(outcomes) {
                        let _ = p.reply.send(outcome(o));
                    }
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
