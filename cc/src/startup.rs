//! Opening Redis when a CC starts, and for `testamur cc --check`: connect (AUTH
//! with `redis_password`) and PING, with errors that name the cc.conf keys to
//! fix: a refused or missing password says `redis_password`, an unreachable
//! server says `redis_url`.

use std::path::PathBuf;

use testamur_common::config::CcConfig;

use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RedisStartError {
    #[error(
        "Redis refused the password ({detail}): set redis_password in {file} to the password \
         of the Redis at redis_url ({url}): its requirepass, or with an ACL user \
         (redis://USER@host in redis_url) that user's password"
    )]
    WrongPassword {
        file: PathBuf,
        url: String,
        detail: String,
    },
    #[error(
        "Redis requires a password ({detail}): set redis_password in {file} to the password \
         of the Redis at redis_url ({url}) (its requirepass, or an ACL user's)"
    )]
    NoPassword {
        file: PathBuf,
        url: String,
        detail: String,
    },
    #[error(
        "cannot connect to Redis at redis_url ({url}) in {file}: {detail}; is redis-server \
         running, and is redis_url right?"
    )]
    Unreachable {
        file: PathBuf,
        url: String,
        detail: String,
    },
    #[error("Redis at redis_url ({url}) in {file} answered an error: {detail}")]
    Other {
        file: PathBuf,
        url: String,
        detail: String,
    },
}

/// Connect to the Redis of `config` and check that it answers PING.
pub async fn open_store(config: &CcConfig) -> Result<Store, RedisStartError> {
    let store = Store::connect(
        &config.redis_url,
        config.redis_password.as_ref().map(|s| s.expose()),
    )
    .await
    .map_err(|e| classify(config, e))?;
    store.ping().await.map_err(|e| classify(config, e))?;
    Ok(store)
}

fn classify(config: &CcConfig, e: StoreError) -> RedisStartError {
    let file = config.file.clone();
    let url = crate::redact_url(&config.redis_url);
    let auth = e.is_auth_failure();
    match e {
        StoreError::Unavailable(e) => {
            let detail = e.to_string();
            match (auth, config.redis_password.is_some()) {
                (true, true) => RedisStartError::WrongPassword { file, url, detail },
                (true, false) => RedisStartError::NoPassword { file, url, detail },
                (false, _) => RedisStartError::Unreachable { file, url, detail },
            }
        }
        StoreError::Refused { code, err } => RedisStartError::Other {
            file,
            url,
            detail: format!("{err} ({})", crate::store::refusal_hint(code)),
        },
        StoreError::Corrupt(detail) => RedisStartError::Other { file, url, detail },
    }
}
