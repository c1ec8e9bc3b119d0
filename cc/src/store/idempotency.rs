//! Idempotency-Keys of batch submissions: a key is claimed (pending, 5 minutes)
//! before the batch is queued and holds the whole answer for 24 hours after, so a
//! retried batch gets the first answer instead of queueing again. (Single
//! submissions do the same inside `submit.lua`, atomically with the job.) Answers
//! are stored deflated: a batch's answer repeats itself (10,000 rejected `{}` are
//! 1.1 MB of JSON and under 10 KB deflated).

use std::io::{Read, Write};

use std::time::Duration;

use redis::{AsyncCommands, Value};

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
        let mut it = reply.into_iter();
        match it.next().map(value_string).transpose()?.as_deref() {
            Some("new") => Ok(IdemBegin::New),
            Some("mismatch") => Ok(IdemBegin::Mismatch),
            Some("pending") => Ok(IdemBegin::Pending),
            Some("done") => {
                let deflated = match it.next() {
                    Some(Value::BulkString(b)) => b,
                    _ => Vec::new(),
                };
                // The answer may have been stored by a call that got no
                // confirmation (durability = "replica"): replay it only once
                // replicas have it.
                self.confirm().await?;
                if deflated.is_empty() {
                    // Stored before answers were deflated.
                    let plain = it.next().map(value_string).transpose()?;
                    return Ok(IdemBegin::Done(plain.unwrap_or_default()));
                }
                Ok(IdemBegin::Done(inflate(&deflated)?))
            }
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
            .hset(&k, "state", "done")
            .hset(&k, "answer_z", deflate(answer))
            .expire(&k, IDEMPOTENCY_TTL.as_secs() as i64)
            .query_async(&mut c)
            .await?;
        self.confirm().await?;
        Ok(())
    }

    /// Give the key up (the batch was refused as a whole, so a retry may use it).
    pub async fn idem_abandon(&self, key: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c.del(format!("{P}idem:{key}")).await?;
        Ok(())
    }
}

fn deflate(answer: &str) -> Vec<u8> {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    // Writing into a Vec cannot fail.
    let _ = z.write_all(answer.as_bytes());
    z.finish().unwrap_or_default()
}

fn inflate(deflated: &[u8]) -> Result<String> {
    let mut out = String::new();
    flate2::read::DeflateDecoder::new(deflated)
        .read_to_string(&mut out)
        .map_err(|e| StoreError::Corrupt(format!("a stored batch answer does not inflate: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_shrink() {
        let one = r#"{"error":{"code":"invalid_field","message":"action is required","field":"action"},"status":422}"#;
        let answer = format!(r#"{{"results":[{}]}}"#, vec![one; 10_000].join(","));
        let z = deflate(&answer);
        assert!(z.len() < 10_000, "{} bytes deflated", z.len());
        assert_eq!(inflate(&z).unwrap(), answer);
        assert!(inflate(b"not deflate").is_err());
    }
}
