//! `testamur xqueue-bridge`: lets an Open edX site that talks "xqueue" use a
//! testamur cluster instead of the old certificate agent, without changing the LMS.
//!
//! The bridge is an xqueue "external pull" client. It logs in to xqueue, takes
//! certificate submissions from one queue, submits each to a CC
//! (`POST /v1/certificates`), follows the certificate until it is final and posts
//! the outcome back with `put_result`. docs/XQUEUE.md is the operator's guide.
//!
//! Layout:
//! - [`config`]: `xqueue.conf` (TOML, unknown keys refused, errors name the key).
//! - [`client`]: the xqueue protocol: form login with a cookie jar of our own,
//!   re-login on session expiry, retries with backoff.
//! - [`submission`]: an xqueue submission body mapped to the CC's submit body.
//! - [`answer`]: the `put_result` bodies, within the LMS's columns.
//! - [`mapping`]: templates for `template_pdf` (exact map, rules on the LMS's
//!   standard names, default), course names, the LMS's language as BCP 47.
//! - [`journal`]: "taken / submitted / answered" as JSON lines, so a restart
//!   resumes every submission that was taken but not answered.
//! - [`bridge`]: the pull loop and one task per submission; copies xqueue hands
//!   out again join the submission they copy.
//! - [`cc`]: one submission against the CC (2013 deletes found by uuid, a create
//!   of an existing certificate as a regen, following it to its end).
//!
//! Guarantees: every submission taken is answered once for every copy xqueue
//! hands out (the same result to each), unless the bridge dies between xqueue
//! accepting a `put_result` and the journal recording it (then it is answered a
//! second time after the restart). A submission is submitted to the CC with an
//! `Idempotency-Key` derived from xqueue's submission id and its body, and a
//! restart never resubmits one whose acceptance the journal recorded.

pub mod answer;
pub mod bridge;
mod cc;
pub mod client;
pub mod config;
pub mod journal;
pub mod mapping;
pub mod submission;

use std::time::Duration;

use tokio::sync::watch;

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], and d
/// doubles up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            next: first,
            first,
            max,
        }
    }

    /// The next delay to wait (with jitter).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let unit = (uuid::Uuid::new_v4().as_u128() as u64) as f64 / u64::MAX as f64;
        d.mul_f64(0.5 + 0.5 * unit)
    }

    /// Start again from the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

pub use testamur_common::error_chain as chain;

/// Tells long waits that the bridge is shutting down. Cheap to clone.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

/// The bridge is stopping: give up what you were waiting for (the journal keeps
/// the submission for the next start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the bridge is shutting down")]
pub struct Stopped;

impl Stop {
    /// A stop signal and the sender that triggers it.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Sleep for `d`, or less if the bridge stops (then `Err(Stopped)`).
    pub async fn sleep(&self, d: Duration) -> Result<(), Stopped> {
        let mut rx = self.0.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => if self.is_stopped() { Err(Stopped) } else { Ok(()) },
            _ = rx.wait_for(|s| *s) => Err(Stopped),
        }
    }

    /// Run `f` unless the bridge stops first.
    pub async fn run<F: std::future::Future>(&self, f: F) -> Result<F::Output, Stopped> {
        let mut rx = self.0.clone();
        tokio::select! {
            v = f => Ok(v),
            _ = rx.wait_for(|s| *s) => Err(Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        let bounds = [100, 200, 400, 800, 800, 800];
        for (d, hi) in delays.iter().zip(bounds) {
            assert!(*d <= Duration::from_millis(hi) && *d >= Duration::from_millis(hi / 2));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
