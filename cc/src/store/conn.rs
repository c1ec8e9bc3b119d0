//! The CC's connection to Redis: one multiplexed connection, made again after it
//! breaks, to the Redis `redis_url` names or to the primary the Sentinels name
//! now. With Sentinels the primary is asked for again after every broken
//! connection and after a READONLY answer (the node was demoted), and a watcher
//! asks the Sentinels every second, so a failover is followed even while the old
//! primary still answers. Requests meanwhile fail at once as unavailable (503 with
//! Retry-After), never hang: one task connects at a time, the others wait for it
//! at most the connection timeout, and right after a failed attempt the error is
//! given again without trying.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, RedisResult, TlsCertificates, Value,
};
use testamur_common::config::{RedisSettings, RedisTarget, SentinelSettings};

/// How long a TCP (and TLS) connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command's answer may take (scripts are short; a `WAIT` gets its
/// own timeout added: [`RedisConn::with_response_timeout`]).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed connect, requests get its error for this long without a new try.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How often the watcher asks the Sentinels which node is the primary.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A cheap-to-clone handle; every clone shares the one connection.
#[derive(Clone)]
pub struct RedisConn {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    config: AsyncConnectionConfig,
    slot: Mutex<Slot>,
    /// Held by the task that is connecting.
    connecting: tokio::sync::Mutex<()>,
    db: i64,
}

enum Target {
    Direct(Client),
    Sentinel {
        client: tokio::sync::Mutex<SentinelClient>,
        master_name: String,
        /// For the watcher: the Sentinels themselves.
        sentinels: Vec<Client>,
    },
}

#[derive(Default)]
struct Slot {
    live: Option<Live>,
    generation: u64,
    failed: Option<(Instant, RedisError)>,
}

#[derive(Clone)]
struct Live {
    generation: u64,
    conn: MultiplexedConnection,
    /// host and port of the node (for the watcher's comparison).
    node: Option<(String, u16)>,
}

fn unavailable(what: String) -> RedisError {
    // An I/O error, so that it counts as Redis being away (503), not as our bug.
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        what,
    ))
}

fn node_of(addr: &ConnectionAddr) -> Option<(String, u16)> {
    match addr {
        ConnectionAddr::Tcp(h, p) => Some((h.clone(), *p)),
        ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
        _ => None,
    }
}

/// Whether an error means the connection (or the node behind it) is no longer
/// the one to use.
fn breaks(e: &RedisError, sentinel: bool) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || (sentinel && matches!(e.code(), Some("READONLY" | "MASTERDOWN")))
}

fn read_ca(settings: &RedisSettings) -> RedisResult<Option<Vec<u8>>> {
    settings
        .ca_certs
        .as_ref()
        .map(|p| {
            std::fs::read(p).map_err(|e| {
                RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "cannot read redis_ca_certs",
                    format!("{}: {e}", p.display()),
                ))
            })
        })
        .transpose()
}

impl RedisConn {
    /// A handle for `settings` (nothing is connected yet: [`RedisConn::check`]).
    pub fn new(settings: &RedisSettings) -> RedisResult<Self> {
        Self::with_response_timeout(settings, RESPONSE_TIMEOUT)
    }

    /// The same, with answers awaited up to `response_timeout`.
    pub fn with_response_timeout(
        settings: &RedisSettings,
        response_timeout: Duration,
    ) -> RedisResult<Self> {
        // rediss:// uses rustls with the process's provider.
        testamur_common::tls::install_crypto_provider();
        let password = settings.password.as_ref().map(|s| s.expose().to_owned());
        let ca = read_ca(settings)?;
        let (target, db) = match &settings.target {
            RedisTarget::Url(url) => {
                let mut info = url.as_str().into_connection_info()?;
                if let Some(pw) = &password {
                    let r = info.redis_settings().clone().set_password(pw);
                    info = info.set_redis_settings(r);
                }
                let db = info.redis_settings().db();
                (Target::Direct(client(info, ca.as_deref())?), db)
            }
            RedisTarget::Sentinel(s) => (sentinel_target(s, password.as_deref(), ca)?, s.db),
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout));
        let inner = Arc::new(Inner {
            target,
            config,
            slot: Mutex::new(Slot::default()),
            connecting: tokio::sync::Mutex::new(()),
            db,
        });
        if matches!(inner.target, Target::Sentinel { .. }) {
            tokio::spawn(watch(Arc::downgrade(&inner)));
        }
        Ok(Self { inner })
    }

    /// `host:port` of the node connected to now (None over a unix socket or
    /// while not connected).
    pub fn node(&self) -> Option<String> {
        let slot = self.inner.slot.lock().expect("redis slot lock");
        let (h, p) = slot.live.as_ref()?.node.as_ref()?;
        Some(format!("{h}:{p}"))
    }

    /// Connects now (if not connected): the error, if Redis cannot be reached.
    pub async fn check(&self) -> RedisResult<()> {
        self.live().await.map(|_| ())
    }

    async fn live(&self) -> RedisResult<Live> {
        if let Some(l) = self.current()? {
            return Ok(l);
        }
        let guard = match tokio::time::timeout(CONNECT_TIMEOUT, self.inner.connecting.lock()).await
        {
            Ok(g) => g,
            Err(_) => return Err(unavailable("still connecting to Redis".into())),
        };
        // Connected (or failed) while this task waited.
        if let Some(l) = self.current()? {
            return Ok(l);
        }
        let made = self.inner.connect().await;
        let mut slot = self.inner.slot.lock().expect("redis slot lock");
        drop(guard);
        match made {
            Ok((conn, node)) => {
                slot.generation += 1;
                let live = Live {
                    generation: slot.generation,
                    conn,
                    node,
                };
                slot.live = Some(live.clone());
                slot.failed = None;
                Ok(live)
            }
            Err(e) => {
                slot.failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// The live connection; or the last connect error if it is recent.
    fn current(&self) -> RedisResult<Option<Live>> {
        let slot = self.inner.slot.lock().expect("redis slot lock");
        if let Some(l) = &slot.live {
            return Ok(Some(l.clone()));
        }
        match &slot.failed {
            Some((at, e)) if at.elapsed() < RETRY_PAUSE => Err(e.clone()),
            _ => Ok(None),
        }
    }

    fn failed(&self, generation: u64, e: &RedisError) {
        if breaks(e, self.inner.is_sentinel()) {
            self.inner.drop_live(generation);
        }
    }

    /// An answer that is an error of a demoted primary (READONLY: the node is a
    /// replica now) sends the next request to the primary the Sentinels name.
    fn answered(&self, generation: u64, values: &[Value]) {
        let demoted = values.iter().any(
            |v| matches!(v, Value::ServerError(e) if matches!(e.code(), "READONLY" | "MASTERDOWN")),
        );
        if demoted && self.inner.is_sentinel() {
            self.inner.drop_live(generation);
        }
    }
}

impl Inner {
    fn is_sentinel(&self) -> bool {
        matches!(self.target, Target::Sentinel { .. })
    }

    fn drop_live(&self, generation: u64) {
        let mut slot = self.slot.lock().expect("redis slot lock");
        if slot.live.as_ref().map(|l| l.generation) == Some(generation) {
            slot.live = None;
        }
    }

    async fn connect(&self) -> RedisResult<(MultiplexedConnection, Option<(String, u16)>)> {
        let client = match &self.target {
            Target::Direct(c) => c.clone(),
            Target::Sentinel {
                client,
                master_name,
                ..
            } => {
                let mut s = client.lock().await;
                match tokio::time::timeout(2 * CONNECT_TIMEOUT, s.async_get_client()).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) if e.is_io_error() || e.is_connection_refusal() => return Err(e),
                    Ok(Err(e)) => {
                        return Err(unavailable(format!(
                            "no Sentinel names a reachable primary for `{master_name}` ({e})"
                        )))
                    }
                    Err(_) => {
                        return Err(unavailable(format!(
                            "the Sentinels did not name a primary for `{master_name}` in time"
                        )))
                    }
                }
            }
        };
        let node = node_of(client.get_connection_info().addr());
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        if let (Target::Sentinel { master_name, .. }, Some((h, p))) = (&self.target, &node) {
            tracing::info!(master = %master_name, primary = %format!("{h}:{p}"), "connected to the Redis primary the Sentinels name");
        }
        Ok((conn, node))
    }
}

/// A client for `info`; a TLS one trusts `ca` (PEM) when given, else the system's roots.
fn client(info: redis::ConnectionInfo, ca: Option<&[u8]>) -> RedisResult<Client> {
    match (ca, matches!(info.addr(), ConnectionAddr::TcpTls { .. })) {
        (Some(ca), true) => Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.to_vec()),
            },
        ),
        _ => Client::open(info),
    }
}

fn sentinel_target(
    s: &SentinelSettings,
    password: Option<&str>,
    ca: Option<Vec<u8>>,
) -> RedisResult<Target> {
    let mut addrs = Vec::new();
    let mut sentinels = Vec::new();
    for url in &s.sentinels {
        let mut info = url.as_str().into_connection_info()?;
        if let Some(pw) = s.password.as_ref() {
            let mut r = info.redis_settings().clone().set_password(pw.expose());
            if let Some(u) = &s.username {
                r = r.set_username(u);
            }
            info = info.set_redis_settings(r);
        }
        addrs.push(info.addr().clone());
        sentinels.push(client(info, ca.as_deref())?);
    }
    let any_tls = addrs
        .iter()
        .any(|a| matches!(a, ConnectionAddr::TcpTls { .. }));
    let mut b = SentinelClientBuilder::new(addrs, &s.master_name, SentinelServerType::Master)?
        .set_client_to_redis_db(s.db);
    if let Some(pw) = password {
        b = b.set_client_to_redis_password(pw);
    }
    if let Some(u) = &s.redis_username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(pw) = &s.password {
        b = b.set_client_to_sentinel_password(pw.expose());
    }
    if let Some(u) = &s.username {
        b = b.set_client_to_sentinel_username(u);
    }
    if s.tls {
        b = b.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
    }
    if let Some(ca) = &ca {
        let certs = || TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.clone()),
        };
        if s.tls {
            b = b.set_client_to_redis_certificates(certs());
        }
        if any_tls {
            b = b.set_client_to_sentinel_certificates(certs());
        }
    }
    Ok(Target::Sentinel {
        client: tokio::sync::Mutex::new(b.build()?),
        master_name: s.master_name.clone(),
        sentinels,
    })
}

/// Every second: which node do the Sentinels name as primary? When it is not the
/// one we are connected to, drop the connection (the next request connects to the
/// new primary). Ends when the connection handle is gone.
async fn watch(inner: Weak<Inner>) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut next = 0usize;
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(inner) = inner.upgrade() else { return };
        let Target::Sentinel {
            master_name,
            sentinels,
            ..
        } = &inner.target
        else {
            return;
        };
        let live = inner.slot.lock().expect("redis slot lock").live.clone();
        let Some(live) = live else { continue };
        if conn.is_none() {
            let client = &sentinels[next % sentinels.len()];
            next += 1;
            conn = tokio::time::timeout(
                CONNECT_TIMEOUT,
                client.get_multiplexed_async_connection_with_config(&inner.config),
            )
            .await
            .ok()
            .and_then(Result::ok);
        }
        let Some(c) = conn.as_mut() else { continue };
        let named: RedisResult<Option<(String, u16)>> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(master_name)
            .query_async(c)
            .await;
        match named {
            Ok(Some(node)) if Some(&node) != live.node.as_ref() => {
                tracing::warn!(
                    master = %master_name,
                    primary = %format!("{}:{}", node.0, node.1),
                    "the Sentinels name another primary: reconnecting"
                );
                inner.drop_live(live.generation);
            }
            Ok(_) => {}
            Err(_) => conn = None,
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut live = self.live().await?;
            let r = live.conn.req_packed_command(cmd).await;
            match &r {
                Err(e) => self.failed(live.generation, e),
                Ok(v) => self.answered(live.generation, std::slice::from_ref(v)),
            }
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut live = self.live().await?;
            let r = live.conn.req_packed_commands(pipeline, offset, count).await;
            match &r {
                Err(e) => self.failed(live.generation, e),
                Ok(v) => self.answered(live.generation, v),
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}
