//! Callback deliveries in Redis: claiming the due ones, recording each attempt's
//! outcome, dead letters and their replay. The HTTP side is `crate::callbacks`.

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;
use testamur_common::time_fmt::{now_ms, rfc3339_ms};
use testamur_common::wire::{CallbackPayload, DeadLetter};

use super::{hash_reply, Result, Store, StoreError, P};

/// A callback this CC holds the claim on, ready to send.
#[derive(Debug, Clone)]
pub struct ClaimedCallback {
    pub payload: CallbackPayload,
    pub url: String,
    /// Name of the API key whose callback secret signs it.
    pub key_name: String,
    /// The destination host its in-flight delivery counts against.
    pub host: String,
    /// This attempt's number (1 on the first delivery, and after a replay).
    pub attempt: u32,
    token: String,
}

/// How one delivery attempt ended.
pub enum CallbackAttempt {
    Delivered,
    /// Try again at `at_ms`.
    Retry {
        at_ms: i64,
        error: String,
    },
    /// No attempts left: a dead letter until an operator replays it.
    Dead {
        error: String,
    },
}

/// What one claim got.
pub struct Claim {
    pub callbacks: Vec<ClaimedCallback>,
    /// Due callbacks set aside because their host had no room on this CC (they
    /// stay pending); when some were, more due ones may lie behind them.
    pub parked: u64,
}

/// Due callbacks one claim looks at, at most: bounds the script's run time.
const CLAIM_SCAN: usize = 1000;

impl Store {
    /// Claim up to `limit` due callbacks for `hold` (another CC takes them over
    /// if this one has not recorded an outcome by then), at most `per_host` in
    /// flight per destination host counting the `in_flight` ones this CC is
    /// sending (host, number).
    pub async fn claim_callbacks(
        &self,
        limit: usize,
        per_host: usize,
        in_flight: &[(String, usize)],
        hold: Duration,
    ) -> Result<Claim> {
        let now = now_ms();
        let token = testamur_common::ids::random_hex(16);
        let mut inv = self.scripts.cb_claim.prepare_invoke();
        inv.arg(P)
            .arg(now)
            .arg(limit)
            .arg(now + hold.as_millis() as i64)
            .arg(&token)
            .arg(per_host)
            .arg((limit * 4 + 64).min(CLAIM_SCAN));
        for (host, n) in in_flight {
            inv.arg(host).arg(*n);
        }
        let reply: Value = inv.invoke_async(&mut self.conn.clone()).await?;
        let Value::Array(items) = reply else {
            return Err(StoreError::Corrupt(
                "callback claim did not answer a list".into(),
            ));
        };
        let mut items = items.into_iter();
        let parked = match items.next() {
            Some(Value::Int(n)) => n.max(0) as u64,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "callback claim answered {other:?} for the number parked"
                )))
            }
        };
        let callbacks: Vec<ClaimedCallback> = items
            .map(|item| claimed(hash_reply(item, "a callback entry")?, token.clone()))
            .collect::<Result<_>>()?;
        // With durability = "replica" an LMS never hears of an outcome that a
        // failover could still lose: the completions that scheduled these are
        // confirmed by replicas first (else they wait for their claim to lapse
        // and are claimed again).
        if !callbacks.is_empty() {
            self.confirm().await?;
        }
        Ok(Claim { callbacks, parked })
    }

    /// Callbacks parked behind a busy host (pending, not in the schedule).
    pub async fn callbacks_parked(&self) -> Result<u64> {
        let mut c = self.conn.clone();
        let hosts: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{P}callbacks:waiting"))
            .query_async(&mut c)
            .await?;
        if hosts.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for h in &hosts {
            pipe.zcard(format!("{P}callbacks:wait:{h}"));
        }
        let counts: Vec<u64> = pipe.query_async(&mut c).await?;
        Ok(counts.into_iter().sum())
    }

    /// Record an attempt's outcome; false when the claim was lost meanwhile
    /// (another CC took the callback over after `hold`).
    pub async fn callback_attempted(
        &self,
        cb: &ClaimedCallback,
        outcome: &CallbackAttempt,
    ) -> Result<bool> {
        let now = now_ms();
        let (kind, score, error) = match outcome {
            CallbackAttempt::Delivered => ("delivered", now, ""),
            CallbackAttempt::Retry { at_ms, error } => ("retry", *at_ms, error.as_str()),
            CallbackAttempt::Dead { error } => ("dead", now, error.as_str()),
        };
        let ok: i64 = self
            .scripts
            .cb_result
            .prepare_invoke()
            .arg(P)
            .arg(&cb.payload.callback_id)
            .arg(&cb.token)
            .arg(kind)
            .arg(score)
            .arg(error)
            .arg(rfc3339_ms(now))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(ok == 1)
    }

    /// Replay the given dead letters (all when `ids` is empty). Returns how many
    /// were replayed and the ids that are not dead letters.
    pub async fn replay_callbacks(&self, ids: &[String]) -> Result<(u64, Vec<String>)> {
        let mut inv = self.scripts.cb_replay.prepare_invoke();
        inv.arg(P).arg(now_ms());
        for id in ids {
            inv.arg(id);
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        let mut it = reply.into_iter();
        let n = it
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("callback replay answered no count".into()))?;
        Ok((n, it.collect()))
    }

    /// Remove dead letters that died more than `age` ago (at most 1,000 per call);
    /// how many were removed.
    pub async fn expire_dead_letters(&self, age: std::time::Duration) -> Result<u64> {
        let n: u64 = self
            .scripts
            .cb_expire
            .prepare_invoke()
            .arg(P)
            .arg(age.as_millis() as u64)
            .arg(1000)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n)
    }

    /// The number of dead letters and the `limit` most recent.
    pub async fn dead_letters(&self, limit: usize) -> Result<(u64, Vec<DeadLetter>)> {
        let mut c = self.conn.clone();
        let key = format!("{P}callbacks:dead");
        let (count, ids): (u64, Vec<String>) = redis::pipe()
            .zcard(&key)
            .zrevrange(&key, 0, limit as isize - 1)
            .query_async(&mut c)
            .await?;
        if ids.is_empty() {
            return Ok((count, Vec::new()));
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(format!("{P}cb:{id}"));
        }
        let rows: Vec<HashMap<String, String>> = pipe.query_async(&mut c).await?;
        let items = rows
            .into_iter()
            .zip(ids)
            .map(|(h, id)| {
                let get = |k: &str| h.get(k).cloned().unwrap_or_default();
                DeadLetter {
                    callback_id: id,
                    cert_id: get("cert_id"),
                    url: get("url"),
                    state: get("state"),
                    attempts: get("attempts").parse().unwrap_or(0),
                    last_error: get("last_error"),
                    dead_at: get("dead_at"),
                }
            })
            .collect();
        Ok((count, items))
    }
}

fn claimed(h: HashMap<String, String>, token: String) -> Result<ClaimedCallback> {
    let get = |k: &str| h.get(k).cloned().filter(|v| !v.is_empty());
    let req =
        |k: &str| get(k).ok_or_else(|| StoreError::Corrupt(format!("callback record lacks {k}")));
    Ok(ClaimedCallback {
        payload: CallbackPayload {
            cert_id: req("cert_id")?,
            course_id: get("course_id").unwrap_or_default(),
            username: get("username").unwrap_or_default(),
            action: req("action")?,
            state: req("state")?,
            download_url: get("download_url"),
            verify_url: get("verify_url"),
            credential_url: get("credential_url"),
            download_uuid: get("download_uuid"),
            verify_uuid: get("verify_uuid"),
            error_reason: get("error_reason"),
            error_code: get("error_code"),
            callback_id: req("callback_id")?,
            at: get("at").unwrap_or_default(),
        },
        url: req("url")?,
        key_name: get("key").unwrap_or_default(),
        host: get("host").unwrap_or_default(),
        attempt: get("attempts").and_then(|a| a.parse().ok()).unwrap_or(1),
        token,
    })
}
