//! Fencing the workserver's own writes: a job may write or remove a file only
//! while its lease is surely still held. Once the CC has given the job to another
//! workserver (the lease expired, or this workserver was taken for dead after
//! missing heartbeats), a late write could overwrite the newer attempt's files or
//! make a deleted certificate downloadable again.
//!
//! "Surely held" is judged locally and conservatively, on the monotonic clock:
//! the CC sets a lease's expiry to (its processing time + lease_ttl), and the
//! request that set it was sent before it was processed, so `sent + lease_ttl` is
//! never later than the real expiry. The same holds for the dead-workserver rule
//! (3 heartbeat intervals after the last heartbeat). A `margin` is kept for the
//! write in progress. When the extender learns the lease is lost, the fence closes
//! at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Asked before every write or removal of a job.
pub trait LeaseCheck: Sync {
    /// `Err(why)` when the job must not touch storage any more.
    fn still_held(&self) -> Result<(), String>;
}

/// For work outside the cluster (tests, `preview`): always held.
pub struct Unfenced;

impl LeaseCheck for Unfenced {
    fn still_held(&self) -> Result<(), String> {
        Ok(())
    }
}

/// When this workserver last heard the CC accept its heartbeat, shared by all
/// jobs (the dead-workserver rule takes every lease of a silent workserver).
pub struct Liveness {
    last_ok_sent: Mutex<Instant>,
    /// The CC takes a workserver for dead this long after its last heartbeat.
    dead_after: Duration,
}

impl Liveness {
    pub fn new(heartbeat_interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            last_ok_sent: Mutex::new(Instant::now()),
            dead_after: 3 * heartbeat_interval,
        })
    }

    /// A heartbeat sent at `sent` was accepted.
    pub fn heartbeat_ok(&self, sent: Instant) {
        let mut t = self.last_ok_sent.lock().unwrap_or_else(|p| p.into_inner());
        *t = (*t).max(sent);
    }

    /// Whether the CC surely still takes this workserver for alive, with a
    /// quarter of the dead-after time to spare.
    fn surely_alive(&self) -> bool {
        let last = *self.last_ok_sent.lock().unwrap_or_else(|p| p.into_inner());
        Instant::now() + self.dead_after / 4 < last + self.dead_after
    }
}

/// The fence of one job's lease.
pub struct LeaseGuard {
    lost: AtomicBool,
    valid_until: Mutex<Instant>,
    ttl: Duration,
    margin: Duration,
    liveness: Arc<Liveness>,
}

impl LeaseGuard {
    /// A lease granted in answer to a request sent at `sent`.
    pub fn new(sent: Instant, ttl: Duration, liveness: Arc<Liveness>) -> Self {
        Self {
            lost: AtomicBool::new(false),
            valid_until: Mutex::new(sent + ttl),
            ttl,
            margin: (ttl / 4).min(Duration::from_secs(10)),
            liveness,
        }
    }

    /// An extension sent at `sent` was accepted.
    pub fn extended(&self, sent: Instant) {
        let mut v = self.valid_until.lock().unwrap_or_else(|p| p.into_inner());
        *v = (*v).max(sent + self.ttl);
    }

    /// The CC said the lease is gone.
    pub fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl LeaseCheck for LeaseGuard {
    fn still_held(&self) -> Result<(), String> {
        if self.is_lost() {
            return Err("the CC gave this job to another workserver (lease lost)".into());
        }
        let until = *self.valid_until.lock().unwrap_or_else(|p| p.into_inner());
        if Instant::now() + self.margin >= until || !self.liveness.surely_alive() {
            return Err(
                "the lease could not be confirmed in time (the CC did not answer extensions or heartbeats)"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_when_lost_or_when_neither_extension_nor_heartbeat_confirms_it() {
        let live = Liveness::new(Duration::from_secs(10));
        let g = LeaseGuard::new(Instant::now(), Duration::from_millis(400), live.clone());
        assert!(g.still_held().is_ok());
        std::thread::sleep(Duration::from_millis(320));
        // 400 ms lease, 100 ms margin: 320 ms after the lease was asked for, closed.
        assert!(g.still_held().is_err());
        g.extended(Instant::now());
        assert!(g.still_held().is_ok());
        g.mark_lost();
        assert!(g.still_held().unwrap_err().contains("lease lost"));

        // Heartbeats: a workserver silent for 3 intervals is taken for dead.
        let live = Liveness::new(Duration::from_millis(100));
        let g = LeaseGuard::new(Instant::now(), Duration::from_secs(60), live.clone());
        assert!(g.still_held().is_ok());
        std::thread::sleep(Duration::from_millis(320));
        assert!(g.still_held().is_err(), "no heartbeat for 3 intervals");
        live.heartbeat_ok(Instant::now());
        assert!(g.still_held().is_ok());
    }
}
