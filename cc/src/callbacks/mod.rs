//! Calling LMSs back: every CC runs a dispatcher that claims due callbacks from
//! Redis, POSTs each (signed) to its callback_url, and records the outcome:
//! delivered, retry later (exponential backoff with jitter) or, after
//! `callbacks.max_attempts`, a dead letter that an operator can replay.
//!
//! Delivery is at least once: the schedule lives in Redis, so a CC restart loses
//! nothing, and a claim keeps other CCs off a callback while it is being sent; a
//! CC that dies after the LMS accepted but before recording it causes one more
//! delivery of the same body (the same `callback_id`).
//!
//! At most `callbacks.concurrency` deliveries are in flight per CC, and at most
//! `callbacks.per_host_concurrency` to one destination host ([`hosts`]): the
//! callbacks of a host at its limit wait in Redis without taking a slot. The HTTP
//! client ignores proxy settings (HTTPS_PROXY, ...), so every connection goes to
//! the address the SSRF filter ([`policy`]) checked.

pub mod hosts;
pub mod policy;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use testamur_common::config::{CcConfig, Role};
use testamur_common::error_chain;
use testamur_common::time_fmt::now_ms;
use tokio::sync::{watch, Notify, Semaphore};

use crate::store::{CallbackAttempt, ClaimedCallback, Store};
use policy::{CallbackPolicy, PublicResolver};

/// Header carrying `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const SIGNATURE_HEADER: &str = "X-Testamur-Signature";
/// Header carrying the callback id (also in the body), for de-duplication.
pub const ID_HEADER: &str = "X-Testamur-Callback-Id";

/// How often the dispatcher looks for due callbacks when nothing wakes it.
const POLL: Duration = Duration::from_millis(250);

pub struct Dispatcher {
    store: Store,
    config: Arc<CcConfig>,
    policy: CallbackPolicy,
    http: reqwest::Client,
}

impl Dispatcher {
    pub fn new(store: Store, config: Arc<CcConfig>) -> anyhow::Result<Self> {
        let cb = &config.callbacks;
        let policy = CallbackPolicy::from_config(cb);
        let mut builder = reqwest::Client::builder()
            // Through a proxy, the resolver below would see the proxy's name and
            // the proxy would reach whatever the URL names: no proxy, ever.
            .no_proxy()
            .timeout(cb.timeout)
            .connect_timeout(cb.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("testamur/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(PublicResolver {
                allow_private_addresses: cb.allow_private_addresses,
            });
        testamur_common::tls::install_crypto_provider();
        if let Some(ca) = &cb.ssl_ca_certs {
            builder = builder.tls_backend_preconfigured(testamur_common::tls::client_config(ca)?);
        }
        Ok(Self {
            store,
            config,
            policy,
            http: builder.build()?,
        })
    }

    /// Deliver due callbacks until `shutdown`; `wake` is notified when this CC
    /// completes a job (callbacks queued through other CCs are found by polling).
    pub async fn run(self, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.config.callbacks.concurrency));
        let per_host = this.config.callbacks.per_host_concurrency;
        let in_flight = hosts::InFlight::default();
        // A delivery ending frees a slot (and maybe room for a waiting host).
        let finished = Arc::new(Notify::new());
        // A claim outlives the slowest delivery, so no other CC sends it meanwhile.
        let hold = this.config.callbacks.timeout * 2 + Duration::from_secs(30);
        loop {
            let mut again = false;
            let free = slots.available_permits();
            if free > 0 {
                match this
                    .store
                    .claim_callbacks(free, per_host, &in_flight.snapshot(), hold)
                    .await
                {
                    Ok(claim) => {
                        if claim.parked > 0 {
                            tracing::debug!(
                                parked = claim.parked,
                                "callbacks wait for hosts at callbacks.per_host_concurrency"
                            );
                        }
                        // Parked ones made room in the schedule: look behind them now.
                        again = claim.parked > 0 && claim.callbacks.len() < free;
                        for cb in claim.callbacks {
                            let Ok(permit) = slots.clone().acquire_owned().await else {
                                return;
                            };
                            let guard = in_flight.start(&cb.host);
                            let this = this.clone();
                            let finished = finished.clone();
                            tokio::spawn(async move {
                                this.deliver(cb).await;
                                drop(guard);
                                drop(permit);
                                finished.notify_one();
                            });
                        }
                    }
                    Err(e) => {
                        crate::metrics::metrics().redis_errors.inc();
                        tracing::warn!(error = %e, "callback dispatcher cannot reach Redis")
                    }
                }
            }
            if again {
                if *shutdown.borrow() {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = wake.notified() => {}
                _ = finished.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn deliver(&self, cb: ClaimedCallback) {
        let p = &cb.payload;
        let span = tracing::info_span!("callback", callback_id = %p.callback_id,
            cert_id = %p.cert_id, attempt = cb.attempt);
        let _guard = span.enter();
        let outcome = match self.send(&cb).await {
            Ok(()) => CallbackAttempt::Delivered,
            Err(error) if cb.attempt >= self.config.callbacks.max_attempts => {
                tracing::warn!(%error, "callback failed for the last time: now a dead letter");
                CallbackAttempt::Dead { error }
            }
            Err(error) => {
                let delay = backoff(
                    cb.attempt,
                    self.config.callbacks.retry_base,
                    self.config.callbacks.retry_max,
                );
                tracing::info!(%error, retry_in_ms = delay.as_millis() as u64, "callback failed; will retry");
                CallbackAttempt::Retry {
                    at_ms: now_ms() + delay.as_millis() as i64,
                    error,
                }
            }
        };
        crate::metrics::metrics().callback(match outcome {
            CallbackAttempt::Delivered => {
                tracing::info!("callback delivered");
                "delivered"
            }
            CallbackAttempt::Retry { .. } => "retried",
            CallbackAttempt::Dead { .. } => "dead",
        });
        match self.store.callback_attempted(&cb, &outcome).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("callback claim expired before its outcome was recorded; another CC has taken it over"),
            // The claim runs out and the callback is sent again: at least once.
            Err(e) => tracing::warn!(error = %e, "cannot record the callback's outcome; it will be sent again"),
        }
    }

    /// One delivery attempt: Ok on a 2xx answer, else why not.
    async fn send(&self, cb: &ClaimedCallback) -> Result<(), String> {
        let url = self.policy.check(&cb.url)?;
        if !policy::literal_allowed(&url, &self.policy) {
            return Err("callback_url points at a non-public address".into());
        }
        let key = self
            .config
            .api_keys
            .iter()
            .find(|k| k.role == Role::Lms && k.name == cb.key_name)
            .ok_or_else(|| {
                format!(
                    "the API key `{}` that made the request is no longer in cc.conf, so the callback cannot be signed; add the key back and replay",
                    cb.key_name
                )
            })?;
        let body = serde_json::to_vec(&cb.payload).map_err(|e| e.to_string())?;
        let signature = sign::signature(key.callback_secret.expose().as_bytes(), &body);
        let host = url.host_str().unwrap_or("").to_owned();
        let resp = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(ID_HEADER, &cb.payload.callback_id)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("cannot deliver to {host}: {}", error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{host} answered HTTP {}", status.as_u16()))
        }
    }
}

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, at most `max`,
/// then jittered to between half and all of it (so many callbacks that failed
/// together do not all come back at once).
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let d = exp.min(max);
    let r = (uuid::Uuid::new_v4().as_u64_pair().0 % 1001) as f64 / 1000.0;
    d.mul_f64(0.5 + 0.5 * r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(1000);
        let max = Duration::from_secs(60);
        for attempt in 1..=12 {
            let full = (base * (1 << (attempt - 1))).min(max);
            for _ in 0..50 {
                let d = backoff(attempt, base, max);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} vs {full:?}"
                );
            }
        }
        assert!(backoff(200, base, max) <= max);
    }
}
