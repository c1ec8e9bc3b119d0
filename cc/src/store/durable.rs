//! `durability = "replica"`: a write is answered only once replicas have it.
//!
//! Confirmation rounds run one at a time on a connection of their own (a `WAIT`
//! blocks its connection in Redis, and the other requests must not queue behind
//! it): `INCR tm:wait` then `WAIT replicas timeout`, pipelined. The `INCR` makes
//! the round's replication offset the primary's latest, so a round confirms every
//! write answered before it began, through any connection of any CC (a `WAIT`
//! alone counts only its own connection's writes: a replayed answer, written by
//! another CC, would otherwise pass unconfirmed). Writers that finish while a
//! round runs share the next one (group commit), so confirmations cost about one
//! replica round trip per round, not per request.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::conn::RedisConn;
use super::{StoreError, P};

type Answer = Result<(), Unconfirmed>;

#[derive(Clone)]
enum Unconfirmed {
    /// Fewer replicas than asked confirmed within the timeout.
    Short {
        acked: i64,
    },
    Redis(redis::RedisError),
}

/// The handle writers confirm through (cheap to clone).
#[derive(Clone)]
pub(super) struct Replication {
    tx: mpsc::UnboundedSender<oneshot::Sender<Answer>>,
    replicas: u32,
    timeout: Duration,
}

impl Replication {
    /// Starts the confirming task on its own connection `conn`.
    pub fn start(conn: RedisConn, replicas: u32, timeout: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(conn, replicas, timeout, rx));
        Self {
            tx,
            replicas,
            timeout,
        }
    }

    /// How many replicas must confirm each write.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// Returns once `replicas` replicas have every write answered so far.
    pub async fn confirm(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Corrupt("the replication confirming task has ended".into());
        self.tx.send(reply).map_err(|_| gone())?;
        match answer.await.map_err(|_| gone())? {
            Ok(()) => Ok(()),
            Err(Unconfirmed::Short { acked }) => Err(StoreError::NotReplicated {
                acked,
                wanted: self.replicas,
                timeout: self.timeout,
            }),
            Err(Unconfirmed::Redis(e)) => Err(e.into()),
        }
    }
}

async fn run(
    mut conn: RedisConn,
    replicas: u32,
    timeout: Duration,
    mut rx: mpsc::UnboundedReceiver<oneshot::Sender<Answer>>,
) {
    let key = format!("{P}wait");
    let ms = timeout.as_millis() as u64;
    while let Some(first) = rx.recv().await {
        // Everyone waiting now: their writes were answered before this round's INCR.
        let mut waiting = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiting.push(w);
        }
        let round: redis::RedisResult<(i64,)> = redis::pipe()
            .cmd("INCR")
            .arg(&key)
            .ignore()
            .cmd("WAIT")
            .arg(replicas)
            .arg(ms)
            .query_async(&mut conn)
            .await;
        let answer = match round {
            Ok((acked,)) if acked >= replicas as i64 => Ok(()),
            Ok((acked,)) => {
                tracing::warn!(
                    acked,
                    wanted = replicas,
                    timeout_ms = ms,
                    "too few Redis replicas confirmed the writes in time: answering 503"
                );
                Err(Unconfirmed::Short { acked })
            }
            Err(e) => Err(Unconfirmed::Redis(e)),
        };
        for w in waiting {
            let _ = w.send(answer.clone());
        }
    }
}
