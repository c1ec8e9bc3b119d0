//! Idempotency-Keys of batch submissions: a key is claimed (pending, 5 minutes)
//! before the batch is queued and holds the whole answer for 24 hours after, so a
//! retried batch gets the first answer instead of queueing again. (Single
//! submissions do the same inside `submit.lua`, atomically with the job.)

use std::time::Duration;

use redis::AsyncCommands;

use super::{value_string, Result, Store, StoreError, IDEMPOTENCY_TTL, P};

/// How long a claimed key waits for its batch's answer; if the CC died meanwhile,
/// the key can be used again after this.
pub const PENDING_TTL: Duration = Duration::from_secs(300);

pub enum IdemBegin {
    /// First use: go ahead, then call [`Store::idem_finish`].
    New,
    /// The key came with a different request.
    Mismatch,
    /// The first request with this key is still being handled.
    Pending,
    /// The stored answer of the first request.
    Done(String),
}

impl Store {
    /// `key`: `batch:{api key name}:{sha256(Idempotency-Key)}`; `hash`: the request's.
    pub async fn idem_begin(&self, key: &str, hash: &str) -> Result<IdemBegin> {
        let reply: Vec<redis::Value> = self
            .scripts
            .idem_begin
            .prepare_invoke()
            .arg(format!("{P}idem:{key}"))
            .arg(hash)
            .arg(PENDING_TTL.as_secs())
            .invoke_async(&mut self.conn.clone())
            .await?;
        let mut it = reply.into_iter().map(value_string);
        match it.next().transpose()?.as_deref() {
            Some("new") => Ok(IdemBegin::New),
            Some("mismatch") => Ok(IdemBegin::Mismatch),
            Some("pending") => Ok(IdemBegin::Pending),
            Some("done") => Ok(IdemBegin::Done(it.next().transpose()?.unwrap_or_default())),
            other => Err(StoreError::Corrupt(format!(
                "idempotency script answered {other:?}"
            ))),
        }
    }

    /// Keep the answer for 24 hours.
    pub async fn idem_finish(&self, key: &str, answer: &str) -> Result<()> {
        let k = format!("{P}idem:{key}");
        let mut c = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .hset_multiple(&k, &[("state", "done"), ("answer", answer)])
            .expire(&k, IDEMPOTENCY_TTL.as_secs() as i64)
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// Give the key up (the batch was refused as a whole, so a retry may use it).
    pub async fn idem_abandon(&self, key: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c.del(format!("{P}idem:{key}")).await?;
        Ok(())
    }
}
