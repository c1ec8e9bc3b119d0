//! The reaper: puts jobs whose lease expired back in the queue (or ends them in
//! `error` after max_attempts), and the jobs of workservers that stopped sending
//! heartbeats, without waiting for their leases to run out. Every CC runs one; the
//! Lua script makes concurrent reapers safe.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::store::Store;

pub async fn run(
    store: Store,
    max_attempts: u32,
    dead_after: Duration,
    interval: Duration,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
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
