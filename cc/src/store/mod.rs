//! Everything the CC keeps lives in Redis; this module owns the key schema and the
//! Lua scripts, and is the only code that talks to Redis.
//!
//! Key schema (every key starts with the prefix `tm:`):
//! - `c:{cert_id}` string: the certificate record, compact JSON (layout in record.lua):
//!   learner fields, state, attempts, error, history, and every published version
//!   (its uuids, URL base, signing key, status and times, and what it printed where
//!   that differs from its successor). Read by record.rs.
//! - `v:{verify_uuid}` -> cert_id: which certificate published that version
//! - `intern:base`, `intern:key` hashes id -> public URL base / signing key fingerprint
//!   (`intern:*:id` the reverse, `intern:next` the counters): shared by every record
//! - before compact records (an older release): `cert:{cert_id}` hash, `cert:{cert_id}:hist`,
//!   `cert:{cert_id}:versions`, `verify:{verify_uuid}` hashes; moved into records on first
//!   touch (record.lua `migrate_cert`) or by `testamur migrate`
//! - `job:{job_id}` hash: action, attempt, status (queued|leased), lease_id, lease_exp, ws_id,
//!   target uuids, and for a regen the uuids of the version it replaces
//! - `status:{n}:alloc|count|bits|ver|job|pub|retry`, `status:open`, `status:lists`,
//!   `status:seq`: the Bitstring Status Lists (lib.lua says what each holds); a list's
//!   publication is a job (`kind` status, `list`, `sver` the version it was leased
//!   at) queued in `squeue`, leased before the certificates' queues to workservers
//!   whose hash has `status_lists` = 1
//! - `queue` list of job ids (LPUSH to enqueue, RPOP to lease; re-released jobs go to the
//!   RPOP end): jobs pinned to no template version (deletes; submissions made before
//!   any workserver sent a catalogue); `queue:{template}@{version}` the same for jobs
//!   pinned to a template version (job field `tq`), listed in the set `tqueues` while
//!   they may hold jobs (lease.lua takes an empty one out)
//! - `catalog:{digest}` a workserver catalogue (JSON), `catalog:current` the digest of
//!   the newest registration's; `ws:{ws_id}:tpl` hash template -> version of one
//!   workserver's catalogue, `tplws:{template}@{version}` set of the workservers that
//!   registered that version (see common/src/catalogs.rs)
//! - `leases` sorted set job_id -> lease expiry (ms); the reaper scans it
//! - `ws:{ws_id}` hash (with `catalog`: its catalogue's digest), `ws:{ws_id}:jobs` set of leased job ids, `wsname:{name}` -> ws_id,
//!   `tok:{sha256(token)}` -> ws_id, `workservers` set of ws ids
//! - `states` hash state -> number of certificates (kept on every transition)
//! - `errors` capped list of recent failures, `done:{epoch/10s}` completion counters
//! - `wait` a counter each `durability = "replica"` confirmation round increments
//!   (durable.rs: its write moves the round's replication offset to the latest)
//! - `fail:{register|login}:{ip}` failed registrations / dashboard logins per address
//!   (rate limit)
//! - `session:{sha256(token)}` -> operator key name: a dashboard login (12 h)
//! - `certs`, `course:{course_id}`, `bystate:{state}` sorted sets of cert ids (all
//!   score 0, walked in lexical order): the listing indexes of `GET /v1/certificates`
//!   (no `bystate:downloadable`: listing that state filters `certs`)
//! - `idem:{api key name}:{sha256(Idempotency-Key)}` hash: a submission's request hash
//!   and answer, kept 24 h; `idem:batch:{api key name}:{sha256(key)}` the same for a
//!   batch (state pending for 5 min while it is queued, then its whole answer)
//! - `callbacks` sorted set callback id (= job id) -> when its next delivery is due (ms);
//!   `cb:{id}` hash: the callback's URL, destination host, API key name, payload
//!   fields, attempts, claim; `callbacks:dead` sorted set id -> when it became a dead
//!   letter; `callbacks:waiting` set of hosts with callbacks parked in
//!   `callbacks:wait:{host}` (sorted set id -> when it was due): due callbacks whose
//!   host had all its delivery slots (`per_host_concurrency`) busy on the claiming CC,
//!   out of the schedule until a CC has room for that host
//!
//! Architecture invariant: every change that touches more than one key is one Lua
//! script, so a CC dying between two commands cannot leave a half-made change, and
//! several CCs can share one Redis. Scripts read keys they compute themselves, so
//! a single Redis primary is required (no Redis Cluster).

mod callbacks;
mod conn;
mod durable;
mod idempotency;
mod listing;
mod reconcile;
mod record;
mod scripts;
mod sessions;
mod status_lists;

pub use callbacks::{CallbackAttempt, Claim, ClaimedCallback};
pub use idempotency::IdemBegin;
pub use listing::ListIndex;
pub use reconcile::{Published, RecordCheck};

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::{AsyncCommands, Value};
use testamur_common::config::{Durability, RedisSettings};
use testamur_common::failure::FailCode;
use testamur_common::ids::{CertId, CourseId, JobId, LeaseId, PublicUuid, Username, WsId, WsName};
use testamur_common::state::{Action, CertState};
use testamur_common::status_list::{LeasedStatusList, StatusEntry};
use testamur_common::time_fmt::{now_ms, rfc3339_ms};
use testamur_common::wire::{
    JobCertificate, JobResult, LeasedJob, PublishedVersion, RecentError, WorkserverStatus,
};

use conn::RedisConn;
use durable::Replication;
use scripts::Scripts;

const P: &str = "tm:";
/// Completions are counted in buckets of this many seconds.
const BUCKET_S: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis is unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
    /// Redis is up but refuses the command for now: out of memory (maxmemory with
    /// noeviction), busy with a script, loading its data, a read-only replica, a
    /// failed snapshot. Clients retry; the operator must act on the reason.
    #[error("Redis refused the command ({code}): {err}")]
    Refused {
        code: &'static str,
        #[source]
        err: redis::RedisError,
    },
    #[error("unexpected data in Redis: {0}")]
    Corrupt(String),
    /// `durability = "replica"`: the primary has the write, but fewer replicas
    /// than asked confirmed it in time. A retry (same Idempotency-Key) is safe.
    #[error("only {acked} of the {wanted} Redis replicas asked for confirmed the write within {timeout:?}")]
    NotReplicated {
        acked: i64,
        wanted: u32,
        timeout: Duration,
    },
}

/// Error codes with which Redis refuses a command for a while (not our bug), and
/// what an operator should do about each.
const REFUSAL_CODES: [(&str, &str); 9] = [
    ("OOM", "Redis reached maxmemory: give it more memory (maxmemory in redis.conf) or remove old data; see docs/OPERATIONS.md on key bounds"),
    ("BUSY", "a script is running too long on Redis"),
    ("LOADING", "Redis is loading its data after a restart"),
    ("READONLY", "redis_url points at a read-only replica: point it at the primary"),
    ("MASTERDOWN", "the replica lost its primary"),
    ("TRYAGAIN", "Redis asks to try again"),
    ("CLUSTERDOWN", "the Redis cluster is down"),
    ("NOREPLICAS", "not enough replicas acknowledged the write"),
    ("MISCONF", "Redis cannot write its snapshot (disk full or not writable?) and refuses writes: check its log"),
];

/// What an operator should do about a refusal code.
pub fn refusal_hint(code: &str) -> &'static str {
    REFUSAL_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, h)| *h)
        .unwrap_or("")
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        let refused = e
            .code()
            .and_then(|c| REFUSAL_CODES.iter().find(|(k, _)| *k == c))
            .map(|(k, _)| *k);
        if let Some(code) = refused {
            return StoreError::Refused { code, err: e };
        }
        // Redis refusing our password (or asking for one) is not corrupt data:
        // it is unavailable to us until redis_password is fixed.
        if is_auth_error(&e)
            || e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
        {
            StoreError::Unavailable(e)
        } else {
            // A script error or a reply we did not expect: our bug, not Redis being away.
            StoreError::Corrupt(format!("Redis answered an error: {e}"))
        }
    }
}

/// WRONGPASS, NOAUTH or a failed AUTH at connect.
fn is_auth_error(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

impl StoreError {
    /// Whether Redis refused our credentials (a wrong `redis_password`, or none
    /// where Redis requires one): a configuration problem, not an outage.
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, StoreError::Unavailable(e) if is_auth_error(e))
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// A cheap-to-clone handle on the Redis connection and the loaded scripts.
#[derive(Clone)]
pub struct Store {
    conn: RedisConn,
    /// `durability = "replica"`: confirms writes before they are answered.
    replication: Option<Replication>,
    scripts: std::sync::Arc<Scripts>,
    interned: std::sync::Arc<record::Interned>,
}

/// How long an Idempotency-Key is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Requests per submit script call (a batch takes several calls).
const SUBMIT_CHUNK: usize = 500;

/// A new job for a certificate, as validated by the API layer.
pub struct NewJob {
    pub cert_id: CertId,
    pub job_id: JobId,
    pub action: Action,
    /// For add/regen: where the new version will be published.
    pub new_uuids: Option<(PublicUuid, PublicUuid)>,
    /// Certificate fields to set (empty value = remove). Not used for delete.
    pub fields: Vec<(&'static str, String)>,
    /// The template version the job is pinned to (`{template}@{version}`): only
    /// workservers with it lease the job. None: any workserver.
    pub queue: Option<String>,
    /// Where to POST the outcome.
    pub callback: Option<CallbackTarget>,
    /// `idem:` key suffix (API key name and hash of the Idempotency-Key) and the
    /// hash of the request it came with.
    pub idempotency: Option<(String, String)>,
}

/// Where a job's callback goes.
#[derive(Debug, Clone)]
pub struct CallbackTarget {
    pub url: String,
    /// The API key whose callback secret signs it.
    pub key_name: String,
    /// The destination host, as `crate::callbacks::host_key` names it: deliveries
    /// in flight are limited per host.
    pub host: String,
}

#[derive(Debug)]
pub enum SubmitOutcome {
    /// `replayed`: an Idempotency-Key matched an earlier request with the same
    /// body; this is its answer and nothing new was queued.
    Queued {
        state: CertState,
        job_id: JobId,
        replayed: bool,
    },
    Illegal {
        current: Option<CertState>,
        replayed: bool,
    },
    /// The Idempotency-Key was used with a different request within 24 h.
    IdempotencyMismatch,
}

/// What one lease call gave a workserver.
#[derive(Default)]
pub struct Leased {
    pub jobs: Vec<LeasedJob>,
    pub status_lists: Vec<LeasedStatusList>,
}

impl Leased {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.status_lists.is_empty()
    }
}

/// What a completion recorded: a certificate's new state, or a status list published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    Cert(CertState),
    StatusList(u32),
}

pub enum Fenced<T> {
    Ok(T),
    /// The lease is not (or no longer) held by the caller.
    Lost,
    /// The caller holds the lease but reported a result for other uuids than the
    /// job's own; nothing changed.
    Mismatch,
}

pub enum FailOutcome {
    Requeued,
    Errored,
}

pub struct Registration<'a> {
    pub name: &'a WsName,
    pub ws_id: &'a WsId,
    pub token_hash: &'a str,
    pub capacity: u32,
    pub version: &'a str,
    /// Random per workserver process ('' if it sent none): tells a restart from
    /// the same process registering again, and two live processes of one name.
    pub instance: &'a str,
    /// The address it registered from (shown when two processes share a name).
    pub peer: &'a str,
    pub max_attempts: u32,
    /// A workserver heard from within this is alive.
    pub alive_within: Duration,
    /// The templates it can draw (stored under their digest).
    pub catalog: Option<&'a testamur_common::catalog::Catalog>,
    /// Whether it publishes status lists (capabilities.status_lists).
    pub status_lists: bool,
}

pub enum RegisterOutcome {
    Registered {
        released: u64,
    },
    /// The registration under this name replaced this very process while it ran,
    /// and is alive: two workservers are configured with one name.
    NameConflict {
        other_addr: String,
        other_since: String,
    },
}

/// A lease the workserver does not list in its heartbeat goes back to the queue
/// once it is older than this (a lease answer may still be on its way).
const UNHELD_LEASE_GRACE: Duration = Duration::from_secs(3);
/// Workserver records not heard from for this long are removed.
const FORGET_WORKSERVER: Duration = Duration::from_secs(24 * 3600);

pub struct Counts {
    pub queue_depth: u64,
    pub leased: u64,
    pub states: BTreeMap<String, i64>,
    pub throughput_last_minute: u64,
    pub throughput_last_hour: u64,
    /// Completions per minute over the last hour, oldest first (60 values; the
    /// last is the minute up to now).
    pub per_minute: Vec<u64>,
    pub oldest_waiting_ms: Option<i64>,
    /// Template queues (`{template}@{version}`) with jobs that no live workserver
    /// can lease (none has the template), and how many jobs each holds.
    pub unserved: Vec<(String, u64)>,
    pub dead_letters: u64,
    pub callbacks_pending: u64,
    pub recent_errors: Vec<RecentError>,
}

impl Store {
    /// One Redis at `url` (tools and tests); see [`Store::open`].
    pub async fn connect(url: &str, password: Option<&str>) -> Result<Self> {
        let mut settings = RedisSettings::url(url);
        settings.password = password.map(testamur_common::secret::Secret::new);
        Self::open(&settings).await
    }

    /// Connects to the Redis of `settings` (and again by itself after Redis
    /// restarts or, with Sentinels, fails over); with `durability = "replica"` also
    /// the connection that confirms writes.
    pub async fn open(settings: &RedisSettings) -> Result<Self> {
        let conn = RedisConn::new(settings)?;
        conn.check().await?;
        let replication = match settings.durability {
            Durability::Local => None,
            Durability::Replica { replicas, timeout } => {
                let own =
                    RedisConn::with_response_timeout(settings, timeout + Duration::from_secs(2))?;
                own.check().await?;
                Some(Replication::start(own, replicas, timeout))
            }
        };
        Ok(Self {
            conn,
            replication,
            scripts: std::sync::Arc::new(Scripts::new()),
            interned: Default::default(),
        })
    }

    /// The Redis this store writes to: durability, replicas wanted and connected
    /// (the primary's `INFO replication`), the primary's address.
    pub async fn redis_status(&self) -> Result<testamur_common::wire::RedisStatus> {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut self.conn.clone())
            .await?;
        let connected = info
            .lines()
            .find_map(|l| l.strip_prefix("connected_slaves:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let (durability, wanted) = match &self.replication {
            None => ("local", 0),
            Some(r) => ("replica", r.replicas()),
        };
        Ok(testamur_common::wire::RedisStatus {
            durability: durability.to_owned(),
            replicas_wanted: wanted,
            replicas_connected: connected,
            primary: self.conn.node(),
        })
    }

    /// With `durability = "replica"`: returns once replicas have every write
    /// answered so far (else [`StoreError::NotReplicated`] or unavailable). Called
    /// before a write is acknowledged.
    pub async fn confirm(&self) -> Result<()> {
        match &self.replication {
            None => Ok(()),
            Some(r) => r.confirm().await,
        }
    }

    /// Redis's clock (ms), the one leases and heartbeats are kept on.
    pub async fn redis_now_ms(&self) -> Result<i64> {
        let mut c = self.conn.clone();
        let (s, us): (i64, i64) = redis::cmd("TIME").query_async(&mut c).await?;
        Ok(s * 1000 + us / 1000)
    }

    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    pub async fn submit(&self, job: NewJob) -> Result<SubmitOutcome> {
        self.submit_many(vec![job], IDEMPOTENCY_TTL)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("submit script answered nothing".into()))
    }

    /// Queue many requests in few round trips (chunks of 500 per script call, in
    /// order: a later request for the same certificate sees the earlier one).
    /// `idem_ttl`: how long the answers of requests with an idempotency key are kept.
    pub async fn submit_many(
        &self,
        jobs: Vec<NewJob>,
        idem_ttl: Duration,
    ) -> Result<Vec<SubmitOutcome>> {
        let now = now_ms();
        let at = rfc3339_ms(now);
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(SUBMIT_CHUNK) {
            let mut inv = self.scripts.submit.prepare_invoke();
            inv.arg(P).arg(now).arg(&at).arg(idem_ttl.as_secs());
            for job in chunk {
                let allowed: Vec<&str> = job
                    .action
                    .allowed_from()
                    .iter()
                    .map(|s| s.as_str())
                    .collect();
                let (du, vu) = match &job.new_uuids {
                    Some((d, v)) => (d.as_str(), v.as_str()),
                    None => ("", ""),
                };
                let (cb_url, cb_key, cb_host) = match &job.callback {
                    Some(t) => (t.url.as_str(), t.key_name.as_str(), t.host.as_str()),
                    None => ("", "", ""),
                };
                let (ikey, ihash) = match &job.idempotency {
                    Some((k, h)) => (k.as_str(), h.as_str()),
                    None => ("", ""),
                };
                inv.arg(job.cert_id.as_str())
                    .arg(job.job_id.as_str())
                    .arg(job.action.as_str())
                    .arg(job.action.pending_state().as_str())
                    .arg(allowed.join(","))
                    .arg(if job.action.allowed_when_absent() {
                        "1"
                    } else {
                        "0"
                    })
                    .arg(du)
                    .arg(vu)
                    .arg(cb_url)
                    .arg(cb_key)
                    .arg(cb_host)
                    .arg(job.queue.as_deref().unwrap_or(""))
                    .arg(ikey)
                    .arg(ihash)
                    // Where in its status list the new version's entry goes.
                    .arg(testamur_common::ids::random_u32())
                    .arg(job.fields.len());
                for (k, v) in &job.fields {
                    inv.arg(*k).arg(v);
                }
            }
            let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
            if reply.len() != chunk.len() * 4 {
                return Err(StoreError::Corrupt(format!(
                    "submit script answered {} values for {} requests",
                    reply.len(),
                    chunk.len()
                )));
            }
            for r in reply.chunks(4) {
                let state = match r[1].as_str() {
                    "" => None,
                    s => Some(parse_state(s)?),
                };
                let replayed = r[3] == "1";
                out.push(match (r[0].as_str(), state) {
                    ("ok", Some(state)) => SubmitOutcome::Queued {
                        state,
                        job_id: JobId::parse(&r[2]).map_err(corrupt)?,
                        replayed,
                    },
                    ("illegal", current) => SubmitOutcome::Illegal { current, replayed },
                    ("idem_mismatch", _) => SubmitOutcome::IdempotencyMismatch,
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "submit script answered {other:?}"
                        )))
                    }
                });
            }
        }
        self.confirm().await?;
        Ok(out)
    }

    /// Lease up to `max` jobs (fewer when the workserver already holds some of its
    /// registered capacity). `None` when the workserver is not registered.
    pub async fn lease(
        &self,
        ws: &WsId,
        max: u32,
        ttl: Duration,
        alive_within: Duration,
    ) -> Result<Option<Leased>> {
        let mut inv = self.scripts.lease.prepare_invoke();
        inv.arg(P)
            .arg(ws.as_str())
            .arg(max)
            .arg(ttl.as_millis() as u64)
            .arg(alive_within.as_millis() as u64);
        for _ in 0..max {
            inv.arg(testamur_common::ids::random_hex(16));
        }
        let reply: Value = inv.invoke_async(&mut self.conn.clone()).await?;
        let Value::Array(items) = reply else {
            return Err(StoreError::Corrupt(
                "lease script did not answer a list".into(),
            ));
        };
        let mut items = items.into_iter();
        match items.next().map(value_string).transpose()?.as_deref() {
            Some("ok") => {}
            Some("unknown_ws") => return Ok(None),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "lease script answered {other:?}"
                )))
            }
        }
        let exp: i64 = items
            .next()
            .map(value_string)
            .transpose()?
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("lease script answered no expiry".into()))?;
        let mut leased = Leased::default();
        for item in items {
            let Value::Array(mut parts) = item else {
                return Err(StoreError::Corrupt("lease entry is not a list".into()));
            };
            if parts.len() == 7 {
                // A status list's publication: its bits are raw bytes.
                let bits = match parts.pop() {
                    Some(Value::BulkString(b)) => b,
                    _ => Vec::new(),
                };
                let parts: Vec<String> =
                    parts.into_iter().map(value_string).collect::<Result<_>>()?;
                leased
                    .status_lists
                    .push(leased_status_list(parts, &bits, exp)?);
                continue;
            }
            let parts: Vec<String> = parts.into_iter().map(value_string).collect::<Result<_>>()?;
            leased.jobs.push(leased_job(parts, exp)?);
        }
        Ok(Some(leased))
    }

    /// Extend a lease by `ttl` from now on Redis's clock; the new expiry (ms).
    pub async fn extend(&self, lease: &LeaseId, ws: &WsId, ttl: Duration) -> Result<Fenced<i64>> {
        let exp: i64 = self
            .scripts
            .extend
            .prepare_invoke()
            .arg(P)
            .arg(lease.job_id().as_str())
            .arg(lease.as_str())
            .arg(ws.as_str())
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(if exp > 0 {
            Fenced::Ok(exp)
        } else {
            Fenced::Lost
        })
    }

    pub async fn complete(
        &self,
        lease: &LeaseId,
        ws: &WsId,
        result: &JobResult,
    ) -> Result<Fenced<(Completed, String)>> {
        self.complete_many(ws, &[(lease, result)])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("complete script answered nothing".into()))?
    }

    /// Complete several of `ws`'s leases in one script call, each on its own (a
    /// lost or mismatched one changes nothing and does not stop the others); the
    /// answers in order, each the new state and the workserver's name, or what is
    /// wrong with that one job's data.
    pub async fn complete_many(
        &self,
        ws: &WsId,
        items: &[(&LeaseId, &JobResult)],
    ) -> Result<Vec<Result<Fenced<(Completed, String)>>>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let map: Vec<String> = [Action::Add, Action::Regen, Action::Delete]
            .iter()
            .map(|a| format!("{}:{}", a.as_str(), a.success_state().as_str()))
            .collect();
        let opt = |s: &Option<String>| s.clone().unwrap_or_default();
        let uuid = |u: &Option<PublicUuid>| {
            u.as_ref()
                .map(|u| u.as_str().to_owned())
                .unwrap_or_default()
        };
        let bucket = format!("{P}done:{}", now / 1000 / BUCKET_S);
        let mut inv = self.scripts.complete.prepare_invoke();
        inv.arg(P)
            .arg(now)
            .arg(rfc3339_ms(now))
            .arg(map.join(","))
            .arg(bucket)
            .arg(7200);
        for (lease, result) in items {
            inv.arg(lease.job_id().as_str())
                .arg(lease.as_str())
                .arg(ws.as_str())
                .arg(uuid(&result.download_uuid))
                .arg(uuid(&result.verify_uuid))
                .arg(opt(&result.download_url))
                .arg(opt(&result.verify_url))
                .arg(opt(&result.signature_url))
                .arg(opt(&result.sha256))
                .arg(opt(&result.key_fingerprint))
                .arg(opt(&result.credential_url))
                .arg(opt(&result.pdf_signer_sha256));
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        self.confirm().await?;
        if reply.len() != items.len() * 3 {
            return Err(StoreError::Corrupt(format!(
                "complete script answered {} values for {} jobs",
                reply.len(),
                items.len()
            )));
        }
        Ok(reply
            .chunks(3)
            .map(|r| match r[0].as_str() {
                "ok" => Ok(Fenced::Ok((
                    Completed::Cert(parse_state(&r[1])?),
                    r[2].clone(),
                ))),
                "published" => Ok(Fenced::Ok((
                    Completed::StatusList(r[1].parse().map_err(corrupt)?),
                    r[2].clone(),
                ))),
                "lost" => Ok(Fenced::Lost),
                "mismatch" => Ok(Fenced::Mismatch),
                "corrupt" => Err(StoreError::Corrupt(r[1].clone())),
                other => Err(StoreError::Corrupt(format!(
                    "complete script answered {other:?}"
                ))),
            })
            .collect())
    }

    /// A workserver's failed attempt: `detail` for operators (recent errors),
    /// `public` and `code` for the LMS.
    #[allow(clippy::too_many_arguments)]
    pub async fn fail(
        &self,
        lease: &LeaseId,
        ws: &WsId,
        detail: &str,
        public: &str,
        code: FailCode,
        retryable: bool,
        max_attempts: u32,
    ) -> Result<Fenced<FailOutcome>> {
        let now = now_ms();
        let reply: String = self
            .scripts
            .fail
            .prepare_invoke()
            .arg(P)
            .arg(lease.job_id().as_str())
            .arg(lease.as_str())
            .arg(ws.as_str())
            .arg(detail)
            .arg(public)
            .arg(code.as_str())
            .arg(if retryable { "1" } else { "0" })
            .arg(max_attempts)
            .arg(now)
            .arg(rfc3339_ms(now))
            .invoke_async(&mut self.conn.clone())
            .await?;
        self.confirm().await?;
        match reply.as_str() {
            "requeued" => Ok(Fenced::Ok(FailOutcome::Requeued)),
            "error" => Ok(Fenced::Ok(FailOutcome::Errored)),
            "lost" => Ok(Fenced::Lost),
            other => Err(StoreError::Corrupt(format!(
                "fail script answered {other:?}"
            ))),
        }
    }

    /// Re-queue jobs whose lease expired and the jobs of workservers not heard from
    /// within `dead_after`; forget workservers silent for a day. Returns how many
    /// jobs were handled.
    pub async fn reap(&self, max_attempts: u32, dead_after: Duration) -> Result<u64> {
        let n: u64 = self
            .scripts
            .reap
            .prepare_invoke()
            .arg(P)
            .arg(max_attempts)
            .arg(rfc3339_ms(now_ms()))
            .arg(500)
            .arg(dead_after.as_millis() as u64)
            .arg(FORGET_WORKSERVER.as_millis() as u64)
            .arg(FailCode::WorkserverLost.message())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n)
    }

    /// Register a workserver; how many jobs of a previous registration under the
    /// same name went back to the queue, or the conflict with another live process.
    pub async fn register(&self, r: &Registration<'_>) -> Result<RegisterOutcome> {
        let mut inv = self.scripts.register.prepare_invoke();
        inv.arg(P)
            .arg(r.name.as_str())
            .arg(r.ws_id.as_str())
            .arg(r.token_hash)
            .arg(r.capacity)
            .arg(r.version)
            .arg(rfc3339_ms(now_ms()))
            .arg(r.instance)
            .arg(r.peer)
            .arg(r.max_attempts)
            .arg(r.alive_within.as_millis() as u64)
            .arg(FailCode::WorkserverLost.message())
            .arg(if r.status_lists { "1" } else { "0" });
        match r.catalog {
            Some(catalog) => {
                let json = serde_json::to_string(catalog)
                    .map_err(|e| StoreError::Corrupt(format!("catalogue: {e}")))?;
                inv.arg(catalog.digest()).arg(json);
                for (name, t) in &catalog.templates {
                    inv.arg(name).arg(&t.version);
                }
            }
            None => {
                inv.arg("").arg("");
            }
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(RegisterOutcome::Registered {
                released: reply.get(1).and_then(|n| n.parse().ok()).unwrap_or(0),
            }),
            Some("conflict") => Ok(RegisterOutcome::NameConflict {
                other_addr: reply.get(1).cloned().unwrap_or_default(),
                other_since: reply.get(2).cloned().unwrap_or_default(),
            }),
            other => Err(StoreError::Corrupt(format!(
                "register script answered {other:?}"
            ))),
        }
    }

    /// `None` when the workserver is unknown, else how many jobs were released.
    pub async fn deregister(&self, ws: &WsId) -> Result<Option<u64>> {
        let n: i64 = self
            .scripts
            .deregister
            .prepare_invoke()
            .arg(P)
            .arg(ws.as_str())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(u64::try_from(n).ok())
    }

    /// `None` when the workserver is unknown, else its drain flag and how many of
    /// its leases went back to the queue because it does not hold them (`held`:
    /// the job ids it reported, if it reported them).
    pub async fn heartbeat(
        &self,
        ws: &WsId,
        held: Option<&[JobId]>,
    ) -> Result<Option<(bool, u64)>> {
        let mut inv = self.scripts.heartbeat.prepare_invoke();
        inv.arg(P)
            .arg(ws.as_str())
            .arg(if held.is_some() { "1" } else { "0" })
            .arg(UNHELD_LEASE_GRACE.as_millis() as u64)
            .arg(rfc3339_ms(now_ms()));
        for j in held.unwrap_or(&[]) {
            inv.arg(j.as_str());
        }
        let reply: Vec<i64> = inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(match reply.as_slice() {
            [-1] => None,
            [drain, released] => Some((*drain == 1, u64::try_from(*released).unwrap_or(0))),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "heartbeat script answered {other:?}"
                )))
            }
        })
    }

    pub async fn ws_for_token_hash(&self, token_hash: &str) -> Result<Option<WsId>> {
        let mut c = self.conn.clone();
        let v: Option<String> = c.get(format!("{P}tok:{token_hash}")).await?;
        v.map(|s| WsId::parse(&s).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    /// Count a failed attempt of `kind` (registration, dashboard login) from `ip`;
    /// returns the count in the current window.
    pub async fn note_failure(&self, kind: &str, ip: &str, window: Duration) -> Result<u64> {
        let key = format!("{P}fail:{kind}:{ip}");
        let mut c = self.conn.clone();
        let (n,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, window.as_secs() as i64)
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(n)
    }

    /// The digests of the catalogues submissions are checked against: the live
    /// workservers', newest registration first (catalogs.lua).
    pub async fn live_catalog_digests(&self, alive_within: Duration) -> Result<Vec<String>> {
        Ok(self
            .scripts
            .catalogs
            .prepare_invoke()
            .arg(P)
            .arg(alive_within.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?)
    }

    pub async fn catalog(&self, digest: &str) -> Result<Option<testamur_common::catalog::Catalog>> {
        let mut c = self.conn.clone();
        let json: Option<String> = c.get(format!("{P}catalog:{digest}")).await?;
        match json {
            None => Ok(None),
            Some(j) => serde_json::from_str(&j)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("catalogue {digest}: {e}"))),
        }
    }

    pub async fn workservers(&self, heartbeat_interval: Duration) -> Result<Vec<WorkserverStatus>> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = c.smembers(format!("{P}workservers")).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(format!("{P}ws:{id}"))
                .scard(format!("{P}ws:{id}:jobs"));
        }
        let rows: Vec<(HashMap<String, String>, u64)> = pipe.query_async(&mut c).await?;
        // Heartbeats are on Redis's clock (the scripts' TIME), so is "alive".
        let now = self.redis_now_ms().await?;
        let mut out = Vec::new();
        for (h, in_flight) in rows {
            if h.is_empty() {
                continue;
            }
            let num = |k: &str| h.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let last = h
                .get("last_heartbeat")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            out.push(WorkserverStatus {
                id: WsId::parse(h.get("ws_id").map(String::as_str).unwrap_or(""))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                name: h.get("name").cloned().unwrap_or_default(),
                version: h.get("version").cloned().unwrap_or_default(),
                capacity: num("capacity") as u32,
                last_heartbeat: rfc3339_ms(last),
                alive: now - last <= 3 * heartbeat_interval.as_millis() as i64,
                in_flight,
                completed: num("completed"),
                failed: num("failed"),
                draining: h.get("draining").map(String::as_str) == Some("1"),
                name_conflict: h.get("name_conflict").cloned().filter(|m| !m.is_empty()),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn counts(&self, alive_within: Duration) -> Result<Counts> {
        let mut c = self.conn.clone();
        let now = now_ms();
        let bucket = now / 1000 / BUCKET_S;
        // The last hour in 10 s buckets, oldest first; the newest is partly done.
        const HOUR_BUCKETS: i64 = 3600 / BUCKET_S;
        let keys: Vec<String> = ((bucket - HOUR_BUCKETS)..=bucket)
            .map(|b| format!("{P}done:{b}"))
            .collect();
        let queues: Vec<Value> = self
            .scripts
            .queues
            .prepare_invoke()
            .arg(P)
            .arg(alive_within.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        let queues: Vec<String> = queues
            .into_iter()
            .map(value_string)
            .collect::<Result<_>>()?;
        let bad = || StoreError::Corrupt("queues script answered no depth".into());
        let queue_depth: u64 = queues
            .first()
            .and_then(|d| d.parse().ok())
            .ok_or_else(bad)?;
        let oldest: Option<i64> = queues.get(1).ok_or_else(bad)?.parse().ok();
        let unserved = queues[2..]
            .chunks(2)
            .filter_map(|p| Some((p.first()?.clone(), p.get(1)?.parse().ok()?)))
            .collect();
        #[allow(clippy::type_complexity)]
        let (leased, states, errors, buckets, dead_letters, callbacks_pending): (
            u64,
            HashMap<String, i64>,
            Vec<String>,
            Vec<Option<u64>>,
            u64,
            u64,
        ) = redis::pipe()
            .zcard(format!("{P}leases"))
            .hgetall(format!("{P}states"))
            .lrange(format!("{P}errors"), 0, 19)
            .mget(&keys)
            .zcard(format!("{P}callbacks:dead"))
            .zcard(format!("{P}callbacks"))
            .query_async(&mut c)
            .await?;
        let buckets: Vec<u64> = buckets.into_iter().map(|b| b.unwrap_or(0)).collect();
        let into_current = (now / 1000 % BUCKET_S) as f64 / BUCKET_S as f64;
        // A window of n buckets ending now: the n-1 newest whole ones, the current
        // one, and the share of the oldest still inside the window.
        let window = |n: usize| -> f64 {
            let len = buckets.len();
            let whole: u64 = buckets[len - n..].iter().sum();
            whole as f64 + buckets[len - n - 1] as f64 * (1.0 - into_current)
        };
        let per_bucket_minute = (60 / BUCKET_S) as usize;
        let per_minute = buckets[1..]
            .chunks(per_bucket_minute)
            .map(|m| m.iter().sum())
            .collect();
        let oldest_waiting_ms = oldest.map(|t| (now - t).max(0));
        let callbacks_pending = callbacks_pending + self.callbacks_parked().await?;
        let mut state_counts: BTreeMap<String, i64> = CertState::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect();
        for (k, v) in states {
            state_counts.insert(k, v);
        }
        Ok(Counts {
            queue_depth,
            leased,
            states: state_counts,
            throughput_last_minute: window(per_bucket_minute).round() as u64,
            throughput_last_hour: window(HOUR_BUCKETS as usize).round() as u64,
            per_minute,
            oldest_waiting_ms,
            unserved,
            dead_letters,
            callbacks_pending,
            recent_errors: errors
                .iter()
                .filter_map(|e| serde_json::from_str(e).ok())
                .collect(),
        })
    }

    /// Mark a workserver as draining: it gets no more jobs, finishes its leases
    /// and deregisters. Its name; `None` when no such workserver is registered.
    pub async fn drain(&self, ws: &WsId) -> Result<Option<String>> {
        let name: String = self
            .scripts
            .drain
            .prepare_invoke()
            .arg(P)
            .arg(ws.as_str())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Some(name).filter(|n| !n.is_empty()))
    }
}

fn value_string(v: Value) -> Result<String> {
    match v {
        Value::BulkString(b) => {
            String::from_utf8(b).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        Value::SimpleString(s) => Ok(s),
        Value::Int(i) => Ok(i.to_string()),
        Value::Okay => Ok("OK".into()),
        Value::Nil => Ok(String::new()),
        other => Err(StoreError::Corrupt(format!(
            "expected a string, got {other:?}"
        ))),
    }
}

/// A hash as a script returns it (`HGETALL`: a flat field, value, ... list).
fn hash_reply(v: Value, what: &str) -> Result<HashMap<String, String>> {
    let Value::Array(flat) = v else {
        return Err(StoreError::Corrupt(format!("{what} is not a list")));
    };
    let mut it = flat.into_iter().map(value_string);
    let mut h = HashMap::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        h.insert(k?, v?);
    }
    Ok(h)
}

fn parse_state(s: &str) -> Result<CertState> {
    s.parse()
        .map_err(|e: testamur_common::state::UnknownState| StoreError::Corrupt(e.to_string()))
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A status list's publication as lease.lua answers it (the bits apart).
fn leased_status_list(parts: Vec<String>, bits: &[u8], exp: i64) -> Result<LeasedStatusList> {
    let [jid, lease, attempt, kind, list, version] = <[String; 6]>::try_from(parts)
        .map_err(|p| StoreError::Corrupt(format!("status list lease has {} parts", p.len())))?;
    if kind != "status" {
        return Err(StoreError::Corrupt(format!("lease entry of kind {kind:?}")));
    }
    Ok(LeasedStatusList {
        job_id: JobId::parse(&jid).map_err(corrupt)?,
        lease_id: LeaseId::parse(&lease).map_err(corrupt)?,
        lease_expires_at: rfc3339_ms(exp),
        attempt: attempt.parse().map_err(corrupt)?,
        list: list.parse().map_err(corrupt)?,
        version: version.parse().map_err(corrupt)?,
        bits: LeasedStatusList::encode_bits(bits),
    })
}

fn leased_job(parts: Vec<String>, exp: i64) -> Result<LeasedJob> {
    if parts.len() != 12 {
        return Err(StoreError::Corrupt(format!(
            "lease entry has {} parts",
            parts.len()
        )));
    }
    let mut it = parts.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let job_id = JobId::parse(&next()).map_err(corrupt)?;
    let lease_id = LeaseId::parse(&next()).map_err(corrupt)?;
    let attempt: u32 = next().parse().map_err(corrupt)?;
    let action: Action = next().parse().map_err(corrupt)?;
    let du = next();
    let vu = next();
    let (pdu, pvu) = (next(), next());
    let cert_id = next();
    let record = next();
    // Jobs queued before requested_at was recorded have none.
    let requested_at = match next() {
        ms if ms.is_empty() => None,
        ms => Some(rfc3339_ms(ms.parse().map_err(corrupt)?)),
    };
    // Likewise the status list index (and deletes have none).
    let status = match next() {
        g if g.is_empty() => None,
        g => Some(
            StatusEntry::from_global(g.parse().map_err(corrupt)?)
                .ok_or_else(|| StoreError::Corrupt(format!("status list index {g}")))?,
        ),
    };
    if record.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "certificate {cert_id} of job {job_id} has no record"
        )));
    }
    let mut cert = record::learner_fields(&record)?;
    cert.insert("cert_id".into(), cert_id);
    let get = |k: &str| cert.get(k).cloned().filter(|v| !v.is_empty());
    let req = |k: &str| {
        get(k).ok_or_else(|| StoreError::Corrupt(format!("certificate of job {job_id} lacks {k}")))
    };
    let uuid = |s: String| PublicUuid::parse(&s).map_err(corrupt);
    let (download_uuid, verify_uuid) = if du.is_empty() || vu.is_empty() {
        (None, None)
    } else {
        (Some(uuid(du)?), Some(uuid(vu)?))
    };
    let previous = if pdu.is_empty() || pvu.is_empty() {
        None
    } else {
        Some(PublishedVersion {
            download_uuid: uuid(pdu)?,
            verify_uuid: uuid(pvu)?,
        })
    };
    Ok(LeasedJob {
        lease_id,
        lease_expires_at: rfc3339_ms(exp),
        attempt,
        action,
        certificate: JobCertificate {
            cert_id: CertId::parse(&req("cert_id")?).map_err(corrupt)?,
            course_id: CourseId::parse(req("course_id")?).map_err(corrupt)?,
            username: Username::parse(req("username")?).map_err(corrupt)?,
            name: get("name"),
            course_name: get("course_name"),
            org: get("org"),
            grade: get("grade"),
            designation: get("designation"),
            issued_date: req("issued_date")?,
            template: get("template"),
            lang: get("lang"),
            download_uuid,
            verify_uuid,
            previous,
            requested_at,
            status,
        },
        job_id,
    })
}
