//! The reaper: puts jobs whose lease expired back in the queue (or ends them in
//! `error` after max_attempts), and the jobs of workservers that stopped sending
//! heartbeats, without waiting for their leases to run out; once a minute it also
//! removes dead-letter callbacks past `callbacks.dead_letter_retention_days`. Every
//! CC runs one; the Lua scripts make concurrent reapers safe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use crate::store::Store;

/// What the reaper does and how often.
pub struct Reaping {
    pub max_attempts: u32,
    /// A workserver silent this long is dead: its jobs go back to the queue.
    pub dead_after: Duration,
    pub interval: Duration,
    /// Dead letters older than this are removed (None: kept).
    pub dead_letter_retention: Option<Duration>,
}

/// How often dead letters are looked at.
const DEAD_LETTER_PASS: Duration = Duration::from_secs(60);

pub async fn run(store: Store, r: Reaping, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let (max_attempts, dead_after, interval) = (r.max_attempts, r.dead_after, r.interval);
    let mut dead_letters_due = Instant::now();
    loop {
        if let Some(age) = r
            .dead_letter_retention
            .filter(|_| Instant::now() >= dead_letters_due)
        {
            dead_letters_due = Instant::now() + DEAD_LETTER_PASS;
            match store.expire_dead_letters(age).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    callbacks = n,
                    retention_days = age.as_secs() / 86_400,
                    "removed dead-letter callbacks past callbacks.dead_letter_retention_days"
                ),
                Err(e) => tracing::warn!(error = %e, "reaper could not remove old dead letters"),
            }
        }
        match store.reap(max_attempts, dead_after).await {
            Ok(0) => {}
            Ok(n) => {
                crate::metrics::metrics().job("expired", n);
                tracing::warn!(
                    jobs = n,
                    "re-queued jobs whose lease expired or whose workserver went silent"
                );
                wake.notify_waiters();
            }
            Err(e) => {
                crate::metrics::metrics().redis_errors.inc();
                tracing::warn!(error = %e, "reaper could not reach Redis")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}
