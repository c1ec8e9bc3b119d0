//! `cc.conf` and `ws.conf`: TOML files parsed into typed, validated settings.
//!
//! Every struct denies unknown keys (a typo must stop startup, not silently fall
//! back to a default), and every error names the file, the key and what to do.
//! Relative paths are taken from the directory of the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::{Secret, SecretSource};

mod credentials;
mod redis;
pub use credentials::{did_web_url, CredentialsConfig, IssuerDid};
pub use redis::{redact_url, Durability, RedisSettings, RedisTarget, SentinelSettings};

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

impl ConfigError {
    fn key(file: &Path, key: &str, message: impl std::fmt::Display) -> Self {
        Self {
            file: file.to_owned(),
            message: format!("key `{key}`: {message}"),
        }
    }
}

/// The text of a config file (shared with `xqueue.conf`).
pub fn read_text(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_owned(),
        message: format!("cannot read the config file: {e}"),
    })
}

/// Parse the TOML `text` of `file` (shared with `xqueue.conf`).
pub fn parse_toml<T: for<'de> Deserialize<'de>>(file: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError {
        file: file.to_owned(),
        message: e.to_string().trim_end().replace('\n', "\n  "),
    })
}

fn base_dir(file: &Path) -> PathBuf {
    file.parent().map(Path::to_owned).unwrap_or_default()
}

fn existing_file(file: &Path, key: &str, base: &Path, p: &Path) -> Result<PathBuf, ConfigError> {
    let full = base.join(p);
    if !full.is_file() {
        return Err(ConfigError::key(
            file,
            key,
            format!("file {} does not exist (for a dev setup run `testamur certs init` / `testamur keygen`)", full.display()),
        ));
    }
    Ok(full)
}

fn secret(file: &Path, key: &str, base: &Path, src: &SecretSource) -> Result<Secret, ConfigError> {
    src.load(base).map_err(|e| ConfigError::key(file, key, e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

// ---------------------------------------------------------------- cc.conf

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CcFile {
    name: String,
    listen: String,
    ssl_certfile: PathBuf,
    ssl_key: PathBuf,
    #[serde(default)]
    ssl_ca_certs: Option<PathBuf>,
    #[serde(default)]
    redis_url: Option<String>,
    #[serde(default)]
    redis_sentinel: Option<redis::SentinelFile>,
    #[serde(default)]
    redis_password: Option<SecretSource>,
    #[serde(default)]
    redis_ca_certs: Option<PathBuf>,
    #[serde(default)]
    durability: redis::DurabilityName,
    #[serde(default = "redis::default_replicas")]
    durability_replicas: u32,
    #[serde(default = "redis::default_timeout_ms")]
    durability_timeout_ms: u64,
    cc_pass: SecretSource,
    #[serde(default = "default_lease_ttl")]
    lease_ttl_s: u64,
    #[serde(default = "default_heartbeat")]
    heartbeat_interval_s: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_body_limit")]
    max_body_bytes: usize,
    #[serde(default = "default_batch_body_limit")]
    max_batch_body_bytes: usize,
    #[serde(default)]
    log_format: LogFormat,
    #[serde(default)]
    api_keys: Vec<ApiKeyFile>,
    #[serde(default)]
    callbacks: CallbacksFile,
    #[serde(default)]
    limits: LimitsFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_max_connections_per_ip")]
    max_connections_per_ip: usize,
    #[serde(default = "default_request_timeout")]
    request_timeout_s: u64,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default = "default_failed_credentials")]
    failed_credentials_per_minute: u64,
}

impl Default for LimitsFile {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            request_timeout_s: default_request_timeout(),
            trusted_proxies: Vec::new(),
            failed_credentials_per_minute: default_failed_credentials(),
        }
    }
}

fn default_max_connections() -> usize {
    4096
}
fn default_max_connections_per_ip() -> usize {
    256
}
fn default_request_timeout() -> u64 {
    30
}
fn default_failed_credentials() -> u64 {
    10
}

/// What one client can hold of a CC (`[limits]` in cc.conf).
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Open connections (TLS or not yet) at once; more are closed at accept.
    pub max_connections: usize,
    /// Open connections from one address (IPv6: one /64) at once.
    pub max_connections_per_ip: usize,
    /// A request's head and body must have arrived within this time of its first
    /// byte (and the TLS handshake within this time of the connection).
    pub request_timeout: Duration,
    /// Load balancers whose PROXY v2 header or `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    /// Wrong credentials of one kind from one address (IPv6: /64) in a minute
    /// before further wrong ones get 429 (right ones are always served).
    pub failed_credentials_per_minute: u64,
}

impl Default for LimitsConfig {
    /// The documented defaults of cc.conf.
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            request_timeout: Duration::from_secs(default_request_timeout()),
            trusted_proxies: Vec::new(),
            failed_credentials_per_minute: default_failed_credentials(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbacksFile {
    #[serde(default = "default_cb_attempts")]
    max_attempts: u32,
    #[serde(default = "default_cb_base_ms")]
    retry_base_ms: u64,
    #[serde(default = "default_cb_max_s")]
    retry_max_s: u64,
    #[serde(default = "default_cb_timeout")]
    timeout_s: u64,
    #[serde(default = "default_cb_concurrency")]
    concurrency: usize,
    #[serde(default)]
    per_host_concurrency: Option<usize>,
    #[serde(default)]
    allow_http: bool,
    #[serde(default)]
    allow_private_addresses: bool,
    #[serde(default)]
    ssl_ca_certs: Option<PathBuf>,
    #[serde(default = "default_dead_letter_days")]
    dead_letter_retention_days: u64,
}

impl Default for CallbacksFile {
    fn default() -> Self {
        Self {
            max_attempts: default_cb_attempts(),
            retry_base_ms: default_cb_base_ms(),
            retry_max_s: default_cb_max_s(),
            timeout_s: default_cb_timeout(),
            concurrency: default_cb_concurrency(),
            per_host_concurrency: None,
            allow_http: false,
            allow_private_addresses: false,
            ssl_ca_certs: None,
            dead_letter_retention_days: default_dead_letter_days(),
        }
    }
}

fn default_dead_letter_days() -> u64 {
    30
}
fn default_cb_attempts() -> u32 {
    12
}
fn default_cb_base_ms() -> u64 {
    1000
}
fn default_cb_max_s() -> u64 {
    3600
}
fn default_cb_timeout() -> u64 {
    10
}
fn default_cb_concurrency() -> usize {
    32
}
/// Default of `callbacks.per_host_concurrency` (at most `concurrency`).
pub const DEFAULT_CB_PER_HOST: usize = 4;
fn default_batch_body_limit() -> usize {
    16 * 1024 * 1024
}

/// How the CC calls LMSs back (`[callbacks]` in cc.conf).
#[derive(Debug, Clone)]
pub struct CallbacksConfig {
    /// Deliveries tried before a callback becomes a dead letter.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time (with jitter) up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Per delivery: connect + send + answer.
    pub timeout: Duration,
    /// Deliveries in flight at once per CC.
    pub concurrency: usize,
    /// Deliveries in flight at once per CC to one destination host (the URL's
    /// host name or address, any port), so one slow or stalling LMS cannot hold
    /// every slot; at most `concurrency`.
    pub per_host_concurrency: usize,
    /// Accept `http://` callback URLs (default: https only).
    pub allow_http: bool,
    /// Accept callback URLs on loopback, private, link-local and other
    /// non-public addresses (default: refused, no SSRF through callbacks).
    pub allow_private_addresses: bool,
    /// Trust exactly the CAs in this file for callback URLs instead of the system's roots.
    pub ssl_ca_certs: Option<PathBuf>,
    /// Dead letters older than this are removed (by the reaper); None: kept until
    /// replayed.
    pub dead_letter_retention: Option<Duration>,
}

/// Upper bounds of cc.conf durations (the CC adds and multiplies them).
const MAX_LEASE_TTL_S: u64 = 86_400;
const MAX_HEARTBEAT_S: u64 = 3_600;
const MAX_CB_RETRY_MAX_S: u64 = 30 * 86_400;
const MAX_CB_TIMEOUT_S: u64 = 3_600;

fn default_lease_ttl() -> u64 {
    60
}
fn default_heartbeat() -> u64 {
    2
}
fn default_max_attempts() -> u32 {
    5
}
fn default_body_limit() -> usize {
    1024 * 1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyFile {
    name: String,
    role: Role,
    key: SecretSource,
    #[serde(default)]
    callback_secret: Option<SecretSource>,
    #[serde(default)]
    course_prefixes: Option<Vec<String>>,
}

/// Who a credential belongs to (API.md: three roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Lms,
    Operator,
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    pub role: Role,
    pub key: Secret,
    /// Signs callbacks for requests made with this key (HMAC-SHA256). When not
    /// configured, the key itself is the HMAC secret.
    pub callback_secret: Secret,
    /// The certificates an lms key may submit, read and list.
    pub scope: CourseScope,
}

/// Which courses an lms key may act on (`course_prefixes` of `[[api_keys]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CourseScope {
    /// Every course (no `course_prefixes`).
    All,
    /// Only courses whose id starts with one of these.
    Prefixes(Vec<String>),
}

impl CourseScope {
    pub fn allows(&self, course_id: &str) -> bool {
        match self {
            CourseScope::All => true,
            CourseScope::Prefixes(p) => p.iter().any(|p| course_id.starts_with(p.as_str())),
        }
    }

    /// The prefixes, quoted, for messages.
    pub fn describe(&self) -> String {
        match self {
            CourseScope::All => "every course".into(),
            CourseScope::Prefixes(p) => p
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Validated command-center settings.
#[derive(Debug, Clone)]
pub struct CcConfig {
    /// The file they were read from (for messages naming the key to fix).
    pub file: PathBuf,
    pub name: String,
    pub listen: SocketAddr,
    pub ssl_certfile: PathBuf,
    pub ssl_key: PathBuf,
    pub ssl_ca_certs: Option<PathBuf>,
    /// Where Redis is (redis_url or [redis_sentinel]), its credentials, and
    /// `durability`.
    pub redis: RedisSettings,
    pub cc_pass: Secret,
    pub lease_ttl: Duration,
    pub heartbeat_interval: Duration,
    pub max_attempts: u32,
    pub max_body_bytes: usize,
    /// Body limit of `POST /v1/certificates/batch` (up to 10,000 requests).
    pub max_batch_body_bytes: usize,
    pub log_format: LogFormat,
    pub api_keys: Vec<ApiKey>,
    pub callbacks: CallbacksConfig,
    pub limits: LimitsConfig,
}

impl CcConfig {
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(file, &read_text(file)?)
    }

    /// The settings in `text`, as if read from `file` (relative paths are taken
    /// from its directory). [`CcConfig::load`] is this on the file's contents.
    pub fn from_toml(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: CcFile = parse_toml(file, text)?;
        let base = base_dir(file);
        let listen = raw.listen.parse().map_err(|_| {
            ConfigError::key(
                file,
                "listen",
                format!("`{}` is not an address like 0.0.0.0:8443", raw.listen),
            )
        })?;
        if raw.name.trim().is_empty() {
            return Err(ConfigError::key(file, "name", "must not be empty"));
        }
        let redis = RedisSettings::from_keys(
            file,
            &base,
            redis::RedisKeys {
                url: raw.redis_url.as_deref(),
                sentinel: raw.redis_sentinel.as_ref(),
                password: raw.redis_password.as_ref(),
                ca_certs: raw.redis_ca_certs.as_deref(),
                durability: raw.durability,
                replicas: raw.durability_replicas,
                timeout_ms: raw.durability_timeout_ms,
            },
        )?;
        // Upper bounds too: the CC computes deadlines from these (3 heartbeats,
        // expiry in ms on Redis' clock), which a huge value would overflow.
        if !(2..=MAX_LEASE_TTL_S).contains(&raw.lease_ttl_s) {
            return Err(ConfigError::key(
                file,
                "lease_ttl_s",
                format!("must be between 2 and {MAX_LEASE_TTL_S} seconds (a day)"),
            ));
        }
        if !(1..=MAX_HEARTBEAT_S).contains(&raw.heartbeat_interval_s) {
            return Err(ConfigError::key(
                file,
                "heartbeat_interval_s",
                format!("must be between 1 and {MAX_HEARTBEAT_S} seconds"),
            ));
        }
        if raw.max_attempts == 0 {
            return Err(ConfigError::key(file, "max_attempts", "must be at least 1"));
        }
        if raw.max_body_bytes < 1024 {
            return Err(ConfigError::key(
                file,
                "max_body_bytes",
                "must be at least 1024",
            ));
        }
        let mut api_keys = Vec::new();
        for (i, k) in raw.api_keys.iter().enumerate() {
            let key = secret(file, &format!("api_keys[{i}].key"), &base, &k.key)?;
            if key.expose().len() < 16 {
                return Err(ConfigError::key(
                    file,
                    &format!("api_keys[{i}].key"),
                    "is shorter than 16 characters; generate one with `openssl rand -hex 32`",
                ));
            }
            if api_keys.iter().any(|a: &ApiKey| a.name == k.name) {
                return Err(ConfigError::key(
                    file,
                    &format!("api_keys[{i}].name"),
                    format!(
                        "`{}` is used by two keys; give every key its own name",
                        k.name
                    ),
                ));
            }
            let callback_secret = match &k.callback_secret {
                Some(src) => {
                    let s = secret(file, &format!("api_keys[{i}].callback_secret"), &base, src)?;
                    if s.expose().len() < 16 {
                        return Err(ConfigError::key(
                            file,
                            &format!("api_keys[{i}].callback_secret"),
                            "is shorter than 16 characters; generate one with `openssl rand -hex 32`",
                        ));
                    }
                    s
                }
                None => key.clone(),
            };
            let scope = match &k.course_prefixes {
                None => CourseScope::All,
                Some(_) if k.role != Role::Lms => {
                    return Err(ConfigError::key(
                        file,
                        &format!("api_keys[{i}].course_prefixes"),
                        "only lms keys are limited to courses; remove it from this operator key",
                    ))
                }
                Some(p) if p.is_empty() => {
                    return Err(ConfigError::key(
                        file,
                        &format!("api_keys[{i}].course_prefixes"),
                        "is empty, which would allow no course; list prefixes like \"course-v1:OrgX+\", or remove it to allow every course",
                    ))
                }
                Some(p) => {
                    if let Some(bad) = p
                        .iter()
                        .find(|p| p.trim().is_empty() || p.chars().any(char::is_control))
                    {
                        return Err(ConfigError::key(
                            file,
                            &format!("api_keys[{i}].course_prefixes"),
                            format!("{bad:?} is not a course id prefix (empty, blank or with control characters)"),
                        ));
                    }
                    CourseScope::Prefixes(p.clone())
                }
            };
            api_keys.push(ApiKey {
                name: k.name.clone(),
                role: k.role,
                key,
                callback_secret,
                scope,
            });
        }
        let cb = &raw.callbacks;
        if cb.max_attempts == 0 {
            return Err(ConfigError::key(
                file,
                "callbacks.max_attempts",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_CB_RETRY_MAX_S).contains(&cb.retry_max_s) {
            return Err(ConfigError::key(
                file,
                "callbacks.retry_max_s",
                format!("must be between 1 and {MAX_CB_RETRY_MAX_S} seconds (30 days)"),
            ));
        }
        if cb.retry_base_ms == 0 || cb.retry_base_ms > cb.retry_max_s * 1000 {
            return Err(ConfigError::key(
                file,
                "callbacks.retry_base_ms",
                "must be at least 1 and at most callbacks.retry_max_s",
            ));
        }
        if cb.timeout_s > MAX_CB_TIMEOUT_S {
            return Err(ConfigError::key(
                file,
                "callbacks.timeout_s",
                format!("must be at most {MAX_CB_TIMEOUT_S} seconds"),
            ));
        }
        if cb.timeout_s == 0 || cb.concurrency == 0 {
            return Err(ConfigError::key(
                file,
                if cb.timeout_s == 0 {
                    "callbacks.timeout_s"
                } else {
                    "callbacks.concurrency"
                },
                "must be at least 1",
            ));
        }
        let per_host_concurrency = match cb.per_host_concurrency {
            None => DEFAULT_CB_PER_HOST.min(cb.concurrency),
            Some(n) if n == 0 || n > cb.concurrency => {
                return Err(ConfigError::key(
                    file,
                    "callbacks.per_host_concurrency",
                    format!(
                        "must be at least 1 and at most callbacks.concurrency ({})",
                        cb.concurrency
                    ),
                ))
            }
            Some(n) => n,
        };
        if raw.max_batch_body_bytes < raw.max_body_bytes {
            return Err(ConfigError::key(
                file,
                "max_batch_body_bytes",
                "must be at least max_body_bytes",
            ));
        }
        let callbacks = CallbacksConfig {
            max_attempts: cb.max_attempts,
            retry_base: Duration::from_millis(cb.retry_base_ms),
            retry_max: Duration::from_secs(cb.retry_max_s),
            timeout: Duration::from_secs(cb.timeout_s),
            concurrency: cb.concurrency,
            per_host_concurrency,
            dead_letter_retention: match cb.dead_letter_retention_days {
                0 => None,
                d => Some(Duration::from_secs(d.saturating_mul(86_400))),
            },
            allow_http: cb.allow_http,
            allow_private_addresses: cb.allow_private_addresses,
            ssl_ca_certs: cb
                .ssl_ca_certs
                .as_deref()
                .map(|p| existing_file(file, "callbacks.ssl_ca_certs", &base, p))
                .transpose()?,
        };
        let lim = &raw.limits;
        if lim.max_connections == 0 || lim.max_connections_per_ip == 0 {
            return Err(ConfigError::key(
                file,
                if lim.max_connections == 0 {
                    "limits.max_connections"
                } else {
                    "limits.max_connections_per_ip"
                },
                "must be at least 1",
            ));
        }
        if lim.max_connections_per_ip > lim.max_connections {
            return Err(ConfigError::key(
                file,
                "limits.max_connections_per_ip",
                "must be at most limits.max_connections",
            ));
        }
        if !(1..=3600).contains(&lim.request_timeout_s) {
            return Err(ConfigError::key(
                file,
                "limits.request_timeout_s",
                "must be between 1 and 3600 seconds",
            ));
        }
        if !(1..=1_000_000).contains(&lim.failed_credentials_per_minute) {
            return Err(ConfigError::key(
                file,
                "limits.failed_credentials_per_minute",
                "must be between 1 and 1000000",
            ));
        }
        let mut trusted_proxies = Vec::new();
        for (i, p) in lim.trusted_proxies.iter().enumerate() {
            trusted_proxies.push(
                crate::cidr::Cidr::parse(p).map_err(|e| {
                    ConfigError::key(file, &format!("limits.trusted_proxies[{i}]"), e)
                })?,
            );
        }
        let limits = LimitsConfig {
            max_connections: lim.max_connections,
            max_connections_per_ip: lim.max_connections_per_ip,
            request_timeout: Duration::from_secs(lim.request_timeout_s),
            trusted_proxies,
            failed_credentials_per_minute: lim.failed_credentials_per_minute,
        };
        let cc_pass = secret(file, "cc_pass", &base, &raw.cc_pass)?;
        if cc_pass.expose().len() < 16 {
            return Err(ConfigError::key(
                file,
                "cc_pass",
                "is shorter than 16 characters; generate one with `openssl rand -hex 32`",
            ));
        }
        Ok(Self {
            file: file.to_owned(),
            name: raw.name,
            listen,
            ssl_certfile: existing_file(file, "ssl_certfile", &base, &raw.ssl_certfile)?,
            ssl_key: existing_file(file, "ssl_key", &base, &raw.ssl_key)?,
            ssl_ca_certs: raw
                .ssl_ca_certs
                .as_deref()
                .map(|p| existing_file(file, "ssl_ca_certs", &base, p))
                .transpose()?,
            redis,
            cc_pass,
            lease_ttl: Duration::from_secs(raw.lease_ttl_s),
            heartbeat_interval: Duration::from_secs(raw.heartbeat_interval_s),
            max_attempts: raw.max_attempts,
            max_body_bytes: raw.max_body_bytes,
            max_batch_body_bytes: raw.max_batch_body_bytes,
            log_format: raw.log_format,
            api_keys,
            callbacks,
            limits,
        })
    }
}

// ---------------------------------------------------------------- ws.conf

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WsFile {
    name: String,
    cc_url: String,
    #[serde(default)]
    ssl_ca_certs: Option<PathBuf>,
    cc_pass: SecretSource,
    #[serde(default = "default_capacity")]
    capacity: u32,
    signing_key: PathBuf,
    templates: PathBuf,
    #[serde(default)]
    log_format: LogFormat,
    #[serde(default)]
    verify_page_url: Option<String>,
    storage: StorageFile,
    #[serde(default)]
    credentials: Option<credentials::CredentialsFile>,
    #[serde(default)]
    pdf_signature: Option<PdfSignatureFile>,
}

/// ws.conf `[pdf_signature]`: the PDF's own signature (PAdES), made with an X.509
/// certificate of the operator's CA and its ECDSA P-256 key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PdfSignatureFile {
    /// PEM: the signing certificate, then the certificates of its chain.
    cert: PathBuf,
    /// PKCS#8 PEM, mode 0600.
    key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct PdfSignatureConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn default_capacity() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageFile {
    #[serde(default)]
    backend: Backend,
    dir: Option<PathBuf>,
    base_url: String,
    #[serde(default)]
    keep_old_versions: bool,
    #[serde(default = "default_cache_max_age")]
    cache_max_age_s: u64,
    bucket: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    #[serde(default)]
    path_style: bool,
    /// `"when_required"` or `"when_supported"` (default: when_required with a
    /// custom endpoint, when_supported for AWS).
    checksums: Option<Checksums>,
    #[serde(default)]
    key_prefix: String,
    #[serde(default)]
    public_read: bool,
    access_key_id: Option<String>,
    secret_access_key: Option<SecretSource>,
}

/// Five minutes: how long a revoked or regenerated certificate's old files may
/// still be served from a cache.
fn default_cache_max_age() -> u64 {
    300
}

/// At most a day: anything longer keeps a revoked certificate's page in CDNs
/// for longer than anyone would want.
const MAX_CACHE_MAX_AGE_S: u64 = 86_400;

/// When the S3 client adds CRC checksums to uploads (and checks them on downloads).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Checksums {
    /// Only where the operation requires one: what S3-compatible services accept.
    WhenRequired,
    /// On every request that supports one (the AWS SDK's default).
    WhenSupported,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Backend {
    #[default]
    Dir,
    S3,
}

/// Where a workserver publishes certificates: a local directory whose contents are
/// served (by any web server) under `base_url`.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// Public URL of the published files (the directory or the bucket and key
    /// prefix); ends with `/`.
    pub base_url: String,
    /// Keep a regenerated certificate's previous files (default: remove them once
    /// the new version is published).
    pub keep_old_versions: bool,
    /// How long browsers and CDNs may cache a published file (`Cache-Control:
    /// public, max-age=N` on S3 objects). Every file can change or disappear
    /// (delete, regen, key rotation), so none is `immutable`. The directory
    /// backend sets no headers: the web server serving it does.
    pub cache_max_age: Duration,
}

#[derive(Debug, Clone)]
pub enum StorageBackend {
    /// A local directory, served by any web server.
    Dir {
        dir: PathBuf,
    },
    S3(S3Config),
}

/// An S3 (or S3-compatible) bucket.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// For S3-compatible services (MinIO, Ceph, ...); None: AWS.
    pub endpoint: Option<String>,
    pub path_style: bool,
    /// Checksum headers on uploads: several S3-compatible services refuse the
    /// SDK's default CRC32 headers, so with a custom endpoint only where required.
    pub checksums: Checksums,
    /// Prepended to every object key (empty, or ends with `/`).
    pub key_prefix: String,
    /// Upload with the `public-read` canned ACL.
    pub public_read: bool,
    /// Static credentials; None: the standard AWS chain (environment, profile,
    /// web identity, instance metadata).
    pub credentials: Option<(String, Secret)>,
}

/// Validated workserver settings.
#[derive(Debug, Clone)]
pub struct WsConfig {
    pub name: String,
    pub cc_url: String,
    pub ssl_ca_certs: Option<PathBuf>,
    pub cc_pass: Secret,
    pub capacity: u32,
    pub signing_key: PathBuf,
    /// Templates directory (index.toml + one TOML file per template).
    pub templates: PathBuf,
    pub log_format: LogFormat,
    /// The CC's live verification page (`https://host/verify/`): the QR code and
    /// the printed link name `{verify_page_url}{verify_uuid}`. None: the storage's
    /// static page (`{base_url}cert/{verify_uuid}/`).
    pub verify_page_url: Option<String>,
    pub storage: StorageConfig,
    /// `[credentials]`: an Open Badges 3.0 credential beside each certificate.
    pub credentials: Option<CredentialsConfig>,
    /// `[pdf_signature]`: the PDF signed by the institution's certificate (PAdES).
    pub pdf_signature: Option<PdfSignatureConfig>,
}

impl WsConfig {
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(file, &read_text(file)?)
    }

    /// The settings in `text`, as if read from `file` (relative paths are taken
    /// from its directory). [`WsConfig::load`] is this on the file's contents.
    pub fn from_toml(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: WsFile = parse_toml(file, text)?;
        let base = base_dir(file);
        crate::ids::WsName::parse(raw.name.clone())
            .map_err(|e| ConfigError::key(file, "name", e))?;
        if !raw.cc_url.starts_with("https://") {
            return Err(ConfigError::key(
                file,
                "cc_url",
                "must be an https:// URL (the CC only speaks TLS)",
            ));
        }
        if raw.capacity == 0 || raw.capacity > 256 {
            return Err(ConfigError::key(
                file,
                "capacity",
                "must be between 1 and 256",
            ));
        }
        if let Some(u) = &raw.verify_page_url {
            let web = u.starts_with("https://") || u.starts_with("http://");
            if !web || !u.ends_with("/verify/") || u.len() > 200 || u.contains(char::is_whitespace)
            {
                return Err(ConfigError::key(
                    file,
                    "verify_page_url",
                    "must be the CC's public URL followed by /verify/, e.g. \"https://certs.example.org/verify/\" (at most 200 characters)",
                ));
            }
        }
        let mut base_url = raw.storage.base_url.clone();
        if !(base_url.starts_with("https://")
            || base_url.starts_with("http://")
            || base_url.starts_with("file://"))
        {
            return Err(ConfigError::key(
                file,
                "storage.base_url",
                "must be an http(s):// or file:// URL",
            ));
        }
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        if raw.storage.cache_max_age_s > MAX_CACHE_MAX_AGE_S {
            return Err(ConfigError::key(
                file,
                "storage.cache_max_age_s",
                format!(
                    "must be at most {MAX_CACHE_MAX_AGE_S} (a day): caches would keep showing a \
                     deleted or regenerated certificate's page that long; 300 is a good value"
                ),
            ));
        }
        Ok(Self {
            name: raw.name,
            cc_url: raw.cc_url.trim_end_matches('/').to_owned(),
            ssl_ca_certs: raw
                .ssl_ca_certs
                .as_deref()
                .map(|p| existing_file(file, "ssl_ca_certs", &base, p))
                .transpose()?,
            cc_pass: secret(file, "cc_pass", &base, &raw.cc_pass)?,
            capacity: raw.capacity,
            signing_key: existing_file(file, "signing_key", &base, &raw.signing_key)?,
            templates: {
                let dir = base.join(&raw.templates);
                if !dir.join("index.toml").is_file() {
                    return Err(ConfigError::key(
                        file,
                        "templates",
                        format!(
                            "{} is not a templates directory (it has no index.toml); \
                             point it at the `templates` folder of testamur or your own \
                             (docs/TEMPLATES.md)",
                            dir.display()
                        ),
                    ));
                }
                dir
            },
            log_format: raw.log_format,
            verify_page_url: raw.verify_page_url,
            credentials: raw
                .credentials
                .as_ref()
                .map(|c| c.validate(file, &base, &base_url))
                .transpose()?,
            pdf_signature: match &raw.pdf_signature {
                Some(p) => Some(PdfSignatureConfig {
                    cert: existing_file(file, "pdf_signature.cert", &base, &p.cert)?,
                    key: existing_file(file, "pdf_signature.key", &base, &p.key)?,
                }),
                None => None,
            },
            storage: StorageConfig {
                backend: storage_backend(file, &base, &raw.storage)?,
                base_url,
                keep_old_versions: raw.storage.keep_old_versions,
                cache_max_age: Duration::from_secs(raw.storage.cache_max_age_s),
            },
        })
    }
}

fn storage_backend(
    file: &Path,
    base: &Path,
    s: &StorageFile,
) -> Result<StorageBackend, ConfigError> {
    let needs = |key: &str, v: &Option<String>| -> Result<String, ConfigError> {
        v.clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ConfigError::key(file, key, "required with backend = \"s3\""))
    };
    match s.backend {
        Backend::Dir => {
            let dir = s.dir.as_ref().ok_or_else(|| {
                ConfigError::key(
                    file,
                    "storage.dir",
                    "required with backend = \"dir\" (the default): the directory to publish into",
                )
            })?;
            Ok(StorageBackend::Dir {
                dir: base.join(dir),
            })
        }
        Backend::S3 => {
            if let Some(e) = &s.endpoint {
                if !(e.starts_with("https://") || e.starts_with("http://")) {
                    return Err(ConfigError::key(
                        file,
                        "storage.endpoint",
                        "must be an http(s):// URL (leave it out for AWS)",
                    ));
                }
            }
            let credentials = match (&s.access_key_id, &s.secret_access_key) {
                (None, None) => None,
                (Some(id), Some(secret_src)) => {
                    Some((id.clone(), secret(file, "storage.secret_access_key", base, secret_src)?))
                }
                (Some(_), None) => {
                    return Err(ConfigError::key(
                        file,
                        "storage.secret_access_key",
                        "required with storage.access_key_id (or leave both out for the standard AWS credential chain)",
                    ))
                }
                (None, Some(_)) => {
                    return Err(ConfigError::key(
                        file,
                        "storage.access_key_id",
                        "required with storage.secret_access_key (or leave both out for the standard AWS credential chain)",
                    ))
                }
            };
            let mut key_prefix = s.key_prefix.trim_start_matches('/').to_owned();
            if !key_prefix.is_empty() && !key_prefix.ends_with('/') {
                key_prefix.push('/');
            }
            Ok(StorageBackend::S3(S3Config {
                bucket: needs("storage.bucket", &s.bucket)?,
                region: needs("storage.region", &s.region)?,
                endpoint: s.endpoint.clone(),
                path_style: s.path_style,
                checksums: s.checksums.unwrap_or(match s.endpoint {
                    Some(_) => Checksums::WhenRequired,
                    None => Checksums::WhenSupported,
                }),
                key_prefix,
                public_read: s.public_read,
                credentials,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A temp dir removed when the returned guard drops.
    fn tmp() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::Builder::new()
            .prefix("tm-conf-")
            .tempdir()
            .unwrap();
        let p = d.path().to_owned();
        (d, p)
    }

    /// Found while writing the `cc_conf` fuzz target's invariants: the loader
    /// multiplied `retry_max_s` by 1000 unchecked (a panic in debug builds, a
    /// wrapped comparison in release), and accepted durations the CC then
    /// multiplies or turns into milliseconds at start-up (`3 * heartbeat`).
    #[test]
    fn fuzz_huge_durations_are_refused_not_overflowed() {
        let (_guard, d) = tmp();
        write(&d, "c.pem", "x");
        write(&d, "k.pem", "x");
        let base = "name = \"cc\"\nlisten = \"127.0.0.1:1\"\nssl_certfile = \"c.pem\"\nssl_key = \"k.pem\"\nredis_url = \"redis://127.0.0.1:1\"\ncc_pass = \"0123456789abcdef0\"\n";
        let file = d.join("cc.conf");
        for (extra, key) in [
            (
                "[callbacks]\nretry_max_s = 18446744073709552\n",
                "`callbacks.retry_max_s`",
            ),
            (
                "[callbacks]\nretry_max_s = 2592001\n",
                "`callbacks.retry_max_s`",
            ),
            (
                "heartbeat_interval_s = 6148914691236517206\n",
                "`heartbeat_interval_s`",
            ),
            ("lease_ttl_s = 9223372036854776\n", "`lease_ttl_s`"),
            (
                "[callbacks]\ntimeout_s = 9223372036854775807\n",
                "`callbacks.timeout_s`",
            ),
        ] {
            let e = CcConfig::from_toml(&file, &format!("{base}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let c = CcConfig::from_toml(
            &file,
            &format!("{base}lease_ttl_s = 86400\nheartbeat_interval_s = 3600\n[callbacks]\nretry_max_s = 2592000\ntimeout_s = 3600\n"),
        )
        .unwrap();
        assert!(c.heartbeat_interval.checked_mul(3).is_some());
    }

    #[test]
    fn unknown_keys_are_named() {
        let (_guard, d) = tmp();
        let f = write(
            &d,
            "ws.conf",
            "name = \"a\"\ncc_url = \"https://x\"\ncc_pas = \"x\"\n",
        );
        let e = WsConfig::load(&f).unwrap_err().to_string();
        assert!(e.contains("ws.conf") && e.contains("cc_pas"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let (_guard, d) = tmp();
        write(&d, "c.pem", "x");
        write(&d, "k.pem", "x");
        let f = write(
            &d,
            "cc.conf",
            "name = \"cc\"\nlisten = \"nope\"\nssl_certfile = \"c.pem\"\nssl_key = \"k.pem\"\nredis_url = \"redis://127.0.0.1:1\"\ncc_pass = \"0123456789abcdef0\"\n",
        );
        let e = CcConfig::load(&f).unwrap_err().to_string();
        assert!(e.contains("cc.conf") && e.contains("`listen`"), "{e}");
        let f = write(
            &d,
            "cc2.conf",
            "name = \"cc\"\nlisten = \"127.0.0.1:1\"\nssl_certfile = \"missing.pem\"\nssl_key = \"k.pem\"\nredis_url = \"redis://127.0.0.1:1\"\ncc_pass = \"0123456789abcdef0\"\n",
        );
        let e = CcConfig::load(&f).unwrap_err().to_string();
        assert!(
            e.contains("`ssl_certfile`") && e.contains("missing.pem"),
            "{e}"
        );
        let f = write(
            &d,
            "cc3.conf",
            "name = \"cc\"\nlisten = \"127.0.0.1:1\"\nssl_certfile = \"c.pem\"\nssl_key = \"k.pem\"\nredis_url = \"redis://127.0.0.1:1\"\ncc_pass = \"tiny9\"\n",
        );
        let e = CcConfig::load(&f).unwrap_err().to_string();
        assert!(e.contains("`cc_pass`") && !e.contains("tiny9"), "{e}");
        let base = "name = \"cc\"\nlisten = \"127.0.0.1:1\"\nssl_certfile = \"c.pem\"\nssl_key = \"k.pem\"\nredis_url = \"redis://127.0.0.1:1\"\ncc_pass = \"0123456789abcdef0\"\n";
        for (extra, key) in [
            ("[callbacks]\nmax_attempts = 0\n", "`callbacks.max_attempts`"),
            ("[callbacks]\nretry_base_ms = 5000\nretry_max_s = 1\n", "`callbacks.retry_base_ms`"),
            ("[callbacks]\nssl_ca_certs = \"nope.pem\"\n", "`callbacks.ssl_ca_certs`"),
            ("[callbacks]\nallow_htp = true\n", "allow_htp"),
            ("[callbacks]\nper_host_concurrency = 0\n", "`callbacks.per_host_concurrency`"),
            ("[[api_keys]]\nname = \"l\"\nrole = \"lms\"\nkey = \"0123456789abcdef0\"\ncourse_prefixes = []\n", "`api_keys[0].course_prefixes`"),
            ("[[api_keys]]\nname = \"l\"\nrole = \"lms\"\nkey = \"0123456789abcdef0\"\ncourse_prefixes = [\"x\", \" \"]\n", "`api_keys[0].course_prefixes`"),
            ("[[api_keys]]\nname = \"o\"\nrole = \"operator\"\nkey = \"0123456789abcdef0\"\ncourse_prefixes = [\"x\"]\n", "`api_keys[0].course_prefixes`"),
            ("[callbacks]\nconcurrency = 8\nper_host_concurrency = 9\n", "`callbacks.per_host_concurrency`"),
            ("[[api_keys]]\nname = \"l\"\nrole = \"lms\"\nkey = \"0123456789abcdef0\"\ncallback_secret = \"short\"\n", "`api_keys[0].callback_secret`"),
        ] {
            let f = write(&d, "cc4.conf", &format!("{base}{extra}"));
            let e = CcConfig::load(&f).unwrap_err().to_string();
            assert!(e.contains("cc4.conf") && e.contains(key), "{extra}: {e}");
        }
        let f = write(
            &d,
            "cc5.conf",
            &format!(
                "{base}[[api_keys]]\nname = \"l\"\nrole = \"lms\"\nkey = \"0123456789abcdef0\"\n"
            ),
        );
        let c = CcConfig::load(&f).unwrap();
        assert_eq!(
            c.api_keys[0].callback_secret.expose(),
            "0123456789abcdef0",
            "without a callback_secret, the key itself signs"
        );
        assert!(!c.callbacks.allow_http && !c.callbacks.allow_private_addresses);
        assert_eq!(c.api_keys[0].scope, CourseScope::All);
        let f = write(
            &d,
            "cc7.conf",
            &format!(
                "{base}[[api_keys]]\nname = \"l\"\nrole = \"lms\"\nkey = \"0123456789abcdef0\"\ncourse_prefixes = [\"course-v1:OrgX+\", \"course-v1:OrgZ+\"]\n"
            ),
        );
        let scope = CcConfig::load(&f).unwrap().api_keys[0].scope.clone();
        assert!(scope.allows("course-v1:OrgX+CS101+2026"));
        assert!(scope.allows("course-v1:OrgZ+A+1"));
        assert!(!scope.allows("course-v1:OrgXY+CS101+2026"));
        assert!(!scope.allows("course-v1:OrgY+CS101+2026"));
        assert_eq!(
            (c.callbacks.concurrency, c.callbacks.per_host_concurrency),
            (32, DEFAULT_CB_PER_HOST)
        );
        let f = write(
            &d,
            "cc6.conf",
            &format!("{base}[callbacks]\nconcurrency = 2\n"),
        );
        let c = CcConfig::load(&f).unwrap();
        assert_eq!(
            c.callbacks.per_host_concurrency, 2,
            "the default never exceeds concurrency"
        );
        assert_eq!(
            c.callbacks.dead_letter_retention,
            Some(Duration::from_secs(30 * 86_400))
        );
        let f = write(
            &d,
            "cc8.conf",
            &format!("{base}[callbacks]\ndead_letter_retention_days = 0\n"),
        );
        assert_eq!(
            CcConfig::load(&f).unwrap().callbacks.dead_letter_retention,
            None
        );
    }

    #[test]
    fn redis_settings_are_one_target_with_a_bounded_durability() {
        let (_guard, d) = tmp();
        write(&d, "c.pem", "x");
        write(&d, "k.pem", "x");
        let base = "name = \"cc\"\nlisten = \"127.0.0.1:1\"\nssl_certfile = \"c.pem\"\nssl_key = \"k.pem\"\ncc_pass = \"0123456789abcdef0\"\n";
        let url = "redis_url = \"redis://127.0.0.1:1\"\n";
        let sentinel = "[redis_sentinel]\nsentinels = [\"redis://10.0.0.1:26379\"]\nmaster_name = \"tm\"\npassword = \"s\"\n";
        let file = d.join("cc.conf");
        let load = |text: String| CcConfig::from_toml(&file, &text);
        for (text, key) in [
            (base.to_owned(), "`redis_url`"),
            (format!("{base}{url}{sentinel}"), "`redis_sentinel`"),
            (
                format!("{base}[redis_sentinel]\nsentinels = []\nmaster_name = \"tm\"\n"),
                "`redis_sentinel.sentinels`",
            ),
            (
                format!(
                    "{base}[redis_sentinel]\nsentinels = [\"http://x:1\"]\nmaster_name = \"tm\"\n"
                ),
                "`redis_sentinel.sentinels`",
            ),
            (
                format!(
                    "{base}[redis_sentinel]\nsentinels = [\"redis://x:1\"]\nmaster_name = \" \"\n"
                ),
                "`redis_sentinel.master_name`",
            ),
            (
                format!("{base}{url}durability = \"replica\"\ndurability_timeout_ms = 0\n"),
                "`durability_timeout_ms`",
            ),
            (
                format!("{base}{url}durability = \"replica\"\ndurability_replicas = 0\n"),
                "`durability_replicas`",
            ),
            (
                format!("{base}{url}redis_ca_certs = \"missing.pem\"\n"),
                "`redis_ca_certs`",
            ),
        ] {
            let e = load(text.clone()).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = load(format!("{base}{url}durability = \"always\"\n")).unwrap_err();
        assert!(e.to_string().contains("durability"), "{e}");
        let c = load(format!("{base}durability = \"replica\"\n{sentinel}")).unwrap();
        assert_eq!(
            c.redis.durability,
            Durability::Replica {
                replicas: 1,
                timeout: Duration::from_millis(1000)
            }
        );
        match &c.redis.target {
            RedisTarget::Sentinel(s) => {
                assert_eq!((s.master_name.as_str(), s.sentinels.len()), ("tm", 1));
                assert_eq!(s.password.as_ref().map(|p| p.expose()), Some("s"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !format!("{:?}", c.redis).contains("\"s\""),
            "the Sentinel password never prints"
        );
        let c = load(format!("{base}{url}")).unwrap();
        assert_eq!(c.redis.durability, Durability::Local);
    }

    #[test]
    fn a_verify_page_url_is_the_ccs_verify_path() {
        let (_guard, d) = tmp();
        write(&d, "k", "x");
        std::fs::create_dir(d.join("t")).unwrap();
        write(&d, "t/index.toml", "");
        let base = "name = \"w\"\ncc_url = \"https://cc\"\ncc_pass = \"0123456789abcdef\"\n\
                    signing_key = \"k\"\ntemplates = \"t\"\n";
        let storage = "[storage]\ndir = \"p\"\nbase_url = \"https://x/\"\n";
        for bad in [
            "ftp://cc/verify/",
            "https://cc/",
            "https://cc/verify",
            "javascript:alert(1)//verify/",
        ] {
            let f = write(
                &d,
                "ws.conf",
                &format!("{base}verify_page_url = \"{bad}\"\n{storage}"),
            );
            let e = WsConfig::load(&f).unwrap_err().to_string();
            assert!(e.contains("`verify_page_url`"), "{bad}: {e}");
        }
        let f = write(
            &d,
            "ws.conf",
            &format!("{base}verify_page_url = \"https://cc:8443/verify/\"\n{storage}"),
        );
        let c = WsConfig::load(&f).unwrap();
        assert_eq!(
            c.verify_page_url.as_deref(),
            Some("https://cc:8443/verify/")
        );
    }

    #[test]
    fn storage_cache_lifetime_defaults_to_five_minutes_and_is_bounded() {
        let (_guard, d) = tmp();
        write(&d, "k", "x");
        std::fs::create_dir(d.join("t")).unwrap();
        write(&d, "t/index.toml", "");
        let base = "name = \"w\"\ncc_url = \"https://cc\"\ncc_pass = \"0123456789abcdef\"\n\
                    signing_key = \"k\"\ntemplates = \"t\"\n[storage]\ndir = \"p\"\n\
                    base_url = \"https://x/\"\n";
        let f = write(&d, "ws.conf", base);
        let c = WsConfig::load(&f).unwrap();
        assert_eq!(c.storage.cache_max_age, Duration::from_secs(300));
        let f = write(&d, "ws.conf", &format!("{base}cache_max_age_s = 60\n"));
        let c = WsConfig::load(&f).unwrap();
        assert_eq!(c.storage.cache_max_age, Duration::from_secs(60));
        let f = write(
            &d,
            "ws.conf",
            &format!("{base}cache_max_age_s = 31536000\n"),
        );
        let e = WsConfig::load(&f).unwrap_err().to_string();
        assert!(
            e.contains("`storage.cache_max_age_s`") && e.contains("at most"),
            "{e}"
        );
    }
}
