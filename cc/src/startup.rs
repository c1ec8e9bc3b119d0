//! Opening Redis when a CC starts, and for `testamur cc --check`: connect (AUTH
//! with `redis_password`; with `[redis_sentinel]` first asking the Sentinels for
//! the primary) and PING, with errors that name the cc.conf keys to fix: a refused
//! or missing password says `redis_password`, an unreachable server says
//! `redis_url` or `[redis_sentinel]`.

use std::path::PathBuf;

use testamur_common::config::{CcConfig, RedisTarget};

use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RedisStartError {
    #[error(
        "Redis refused the password ({detail}): set redis_password in {file} to the password \
         of the Redis at {at}: its requirepass, or with an ACL user \
         (redis://USER@host in redis_url, redis_sentinel.redis_username with Sentinels) that \
         user's password{sentinel_note}"
    )]
    WrongPassword {
        file: PathBuf,
        at: String,
        detail: String,
        sentinel_note: &'static str,
    },
    #[error(
        "Redis requires a password ({detail}): set redis_password in {file} to the password \
         of the Redis at {at} (its requirepass, or an ACL user's){sentinel_note}"
    )]
    NoPassword {
        file: PathBuf,
        at: String,
        detail: String,
        sentinel_note: &'static str,
    },
    #[error("cannot connect to Redis at {at} in {file}: {detail}; {hint}")]
    Unreachable {
        file: PathBuf,
        at: String,
        detail: String,
        hint: String,
    },
    #[error("Redis at {at} in {file} answered an error: {detail}")]
    Other {
        file: PathBuf,
        at: String,
        detail: String,
    },
}

/// Connect to the Redis of `config` and check that it answers PING.
pub async fn open_store(config: &CcConfig) -> Result<Store, RedisStartError> {
    let store = Store::open(&config.redis)
        .await
        .map_err(|e| classify(config, e))?;
    store.ping().await.map_err(|e| classify(config, e))?;
    Ok(store)
}

fn classify(config: &CcConfig, e: StoreError) -> RedisStartError {
    let file = config.file.clone();
    let at = config.redis.describe();
    let sentinel = matches!(config.redis.target, RedisTarget::Sentinel(_));
    let sentinel_note = match sentinel {
        true => " (the Sentinels' own password is redis_sentinel.password)",
        false => "",
    };
    let auth = e.is_auth_failure();
    match e {
        StoreError::Unavailable(e) => {
            let detail = e.to_string();
            match (auth, config.redis.password.is_some()) {
                (true, true) => RedisStartError::WrongPassword {
                    file,
                    at,
                    detail,
                    sentinel_note,
                },
                (true, false) => RedisStartError::NoPassword {
                    file,
                    at,
                    detail,
                    sentinel_note,
                },
                (false, _) => {
                    let hint = unreachable_hint(&detail, sentinel).to_owned();
                    RedisStartError::Unreachable {
                        file,
                        at,
                        detail,
                        hint,
                    }
                }
            }
        }
        StoreError::Refused { code, err } => RedisStartError::Other {
            file,
            at,
            detail: format!("{err} ({})", crate::store::refusal_hint(code)),
        },
        StoreError::NotReplicated { .. } => RedisStartError::Other {
            file,
            at,
            detail: e.to_string(),
        },
        StoreError::Corrupt(detail) => RedisStartError::Other { file, at, detail },
    }
}

/// What to check when Redis (or a Sentinel) cannot be reached, from the error.
fn unreachable_hint(detail: &str, sentinel: bool) -> &'static str {
    if detail.contains("certificate") || detail.contains("UnknownIssuer") {
        "set redis_ca_certs to the PEM file of the CA that signed the Redis servers' certificates (the system's roots do not know it), and check the host name in the URL is in the certificate"
    } else if sentinel && (detail.contains("AuthenticationFailed") || detail.contains("WRONGPASS"))
    {
        "is redis_sentinel.password (the Sentinels' own requirepass) right?"
    } else if sentinel {
        "are the Sentinels running and monitoring that name, and are redis_sentinel.sentinels and master_name right?"
    } else {
        "is redis-server running, and is redis_url right?"
    }
}
