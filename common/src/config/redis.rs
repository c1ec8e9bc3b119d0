//! cc.conf's Redis settings: where the Redis is (`redis_url`, or the primary a set
//! of Sentinels names: `[redis_sentinel]`), its credentials and TLS roots, and what
//! an acknowledgement waits for (`durability`). Parsed and checked here; the CC's
//! connection (cc/src/store/conn.rs) uses them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{existing_file, secret, ConfigError};
use crate::secret::{Secret, SecretSource};

/// Validated: how the CC reaches Redis and when it acknowledges a write.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub target: RedisTarget,
    /// The primary's password (`requirepass`, or the ACL user's).
    pub password: Option<Secret>,
    /// PEM file of the CA certificates that sign the Redis servers' (and the TLS
    /// Sentinels') certificates; None: the system's roots.
    pub ca_certs: Option<PathBuf>,
    pub durability: Durability,
}

#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// `redis_url`: one Redis.
    Url(String),
    /// `[redis_sentinel]`: the primary the Sentinels name, asked again after every
    /// broken connection (a failover).
    Sentinel(SentinelSettings),
}

#[derive(Debug, Clone)]
pub struct SentinelSettings {
    /// `redis://host:port` (or `rediss://` for TLS) of each Sentinel.
    pub sentinels: Vec<String>,
    pub master_name: String,
    /// The Sentinels' own password (their `requirepass`) and ACL user, if any.
    pub password: Option<Secret>,
    pub username: Option<String>,
    /// The ACL user on the primary (its password is `redis_password`).
    pub redis_username: Option<String>,
    /// TLS to the primary (the Sentinels report only its host and port).
    pub tls: bool,
    pub db: i64,
}

/// When the CC answers a submit, batch, completion or failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// As soon as the primary has run the write (what the primary's own fsync
    /// policy keeps: docs/OPERATIONS.md "What a 202 means").
    Local,
    /// Only after `replicas` replicas confirmed it (Redis `WAIT`) within `timeout`;
    /// else 503, and the client's retry with the same Idempotency-Key is safe.
    Replica { replicas: u32, timeout: Duration },
}

impl RedisSettings {
    /// One Redis at `url`, no password, acknowledging locally (tools and tests).
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            target: RedisTarget::Url(url.into()),
            password: None,
            ca_certs: None,
            durability: Durability::Local,
        }
    }

    /// Where the CC looks for Redis, for messages (no secrets): the key to fix and
    /// its value.
    pub fn describe(&self) -> String {
        match &self.target {
            RedisTarget::Url(u) => format!("redis_url ({})", redact_url(u)),
            RedisTarget::Sentinel(s) => format!(
                "the primary `{}` that redis_sentinel.sentinels ({}) name",
                s.master_name,
                s.sentinels
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A Redis URL with its user and password (everything before the host) replaced
/// by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

// ------------------------------------------------------------ the file's keys

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SentinelFile {
    sentinels: Vec<String>,
    master_name: String,
    #[serde(default)]
    password: Option<SecretSource>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    redis_username: Option<String>,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    db: i64,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum DurabilityName {
    #[default]
    Local,
    Replica,
}

/// The Redis keys of cc.conf, as read.
pub(super) struct RedisKeys<'a> {
    pub url: Option<&'a str>,
    pub sentinel: Option<&'a SentinelFile>,
    pub password: Option<&'a SecretSource>,
    pub ca_certs: Option<&'a Path>,
    pub durability: DurabilityName,
    pub replicas: u32,
    pub timeout_ms: u64,
}

pub(super) fn default_replicas() -> u32 {
    1
}
pub(super) fn default_timeout_ms() -> u64 {
    1000
}

/// Longest wait for replicas: an answer must come well within the request deadline.
const MAX_WAIT_MS: u64 = 10_000;

fn url_scheme_ok(url: &str, unix: bool) -> bool {
    url.starts_with("redis://")
        || url.starts_with("rediss://")
        || (unix && (url.starts_with("redis+unix://") || url.starts_with("unix://")))
}

impl RedisSettings {
    pub(super) fn from_keys(
        file: &Path,
        base: &Path,
        k: RedisKeys<'_>,
    ) -> Result<Self, ConfigError> {
        let target = match (k.url, k.sentinel) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::key(
                    file,
                    "redis_sentinel",
                    "give either redis_url (one Redis) or [redis_sentinel] (the primary its Sentinels name), not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::key(
                    file,
                    "redis_url",
                    "is missing: give redis_url (e.g. \"redis://127.0.0.1:6379/0\") or a [redis_sentinel] table",
                ))
            }
            (Some(url), None) => {
                if !url_scheme_ok(url, true) {
                    return Err(ConfigError::key(
                        file,
                        "redis_url",
                        "must start with redis://, rediss://, redis+unix:// or unix://",
                    ));
                }
                RedisTarget::Url(url.to_owned())
            }
            (None, Some(s)) => RedisTarget::Sentinel(sentinel(file, base, s)?),
        };
        let durability = match k.durability {
            DurabilityName::Local => Durability::Local,
            DurabilityName::Replica => {
                if !(1..=16).contains(&k.replicas) {
                    return Err(ConfigError::key(
                        file,
                        "durability_replicas",
                        "must be between 1 and 16 (replicas that must confirm a write)",
                    ));
                }
                if !(1..=MAX_WAIT_MS).contains(&k.timeout_ms) {
                    return Err(ConfigError::key(
                        file,
                        "durability_timeout_ms",
                        format!("must be between 1 and {MAX_WAIT_MS} milliseconds"),
                    ));
                }
                Durability::Replica {
                    replicas: k.replicas,
                    timeout: Duration::from_millis(k.timeout_ms),
                }
            }
        };
        Ok(Self {
            target,
            password: k
                .password
                .map(|s| secret(file, "redis_password", base, s))
                .transpose()?,
            ca_certs: k
                .ca_certs
                .map(|p| existing_file(file, "redis_ca_certs", base, p))
                .transpose()?,
            durability,
        })
    }
}

fn sentinel(file: &Path, base: &Path, s: &SentinelFile) -> Result<SentinelSettings, ConfigError> {
    if s.sentinels.is_empty() {
        return Err(ConfigError::key(
            file,
            "redis_sentinel.sentinels",
            "is empty: list the Sentinels, e.g. [\"redis://10.0.0.1:26379\", \"redis://10.0.0.2:26379\", \"redis://10.0.0.3:26379\"]",
        ));
    }
    if let Some(bad) = s.sentinels.iter().find(|u| !url_scheme_ok(u, false)) {
        return Err(ConfigError::key(
            file,
            "redis_sentinel.sentinels",
            format!(
                "`{}` must start with redis:// or rediss:// (a Sentinel's host and port)",
                redact_url(bad)
            ),
        ));
    }
    if s.master_name.trim().is_empty() {
        return Err(ConfigError::key(
            file,
            "redis_sentinel.master_name",
            "must not be empty: the name the Sentinels monitor the primary under (`sentinel monitor NAME ...`)",
        ));
    }
    if !(0..=15).contains(&s.db) {
        return Err(ConfigError::key(
            file,
            "redis_sentinel.db",
            "must be between 0 and 15",
        ));
    }
    Ok(SentinelSettings {
        sentinels: s.sentinels.clone(),
        master_name: s.master_name.clone(),
        password: s
            .password
            .as_ref()
            .map(|p| secret(file, "redis_sentinel.password", base, p))
            .transpose()?,
        username: s.username.clone(),
        redis_username: s.redis_username.clone(),
        tls: s.tls,
        db: s.db,
    })
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact_url("rediss://u:pw@h:1"), "rediss://***@h:1");
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(
            redact_url("redis+unix:///run/r.sock"),
            "redis+unix:///run/r.sock"
        );
    }
}
