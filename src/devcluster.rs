//! A complete local cluster in one directory: its own redis-server, dev TLS
//! material, a signing key, one CC and N workservers as real child processes of
//! the `testamur` binary. Used by `testamur demo`, `testamur bench` and the tests.
//!
//! Directory layout: `redis/`, `tls/`, `keys/`, `public/` (published files),
//! `logs/`, `cc.conf`, `ws-N.conf`, `cluster.json`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::api::ApiClient;
use crate::redis_proc::RedisServer;

#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub dir: PathBuf,
    /// The `testamur` binary to run the CC and workservers with.
    pub bin: PathBuf,
    pub workservers: usize,
    pub ws_capacity: u32,
    pub lease_ttl_s: u64,
    pub heartbeat_interval_s: u64,
    pub max_attempts: u32,
    pub log_level: String,
    /// Templates directory for the workservers (default: the repository's).
    pub templates: PathBuf,
    /// `storage.keep_old_versions` of the workservers.
    pub keep_old_versions: bool,
    /// Publish to this S3 bucket instead of the cluster's `public` directory.
    pub s3: Option<S3Target>,
    /// `storage.cache_max_age_s` of the workservers (None: ws.conf's default).
    pub cache_max_age_s: Option<u64>,
    /// TOML appended to cc.conf (e.g. a `[callbacks]` table).
    pub cc_extra: String,
    /// Top-level keys added to every ws.conf; `{cc_url}` in it is the URL the
    /// workserver talks to.
    pub ws_extra: String,
    /// cc.conf's Redis keys instead of `redis_url` of the cluster's own Redis
    /// (e.g. `durability` and a `[redis_sentinel]` table; the own Redis still
    /// runs); `{redis_url}` in it is the own Redis's URL.
    pub cc_redis: Option<String>,
    /// Command centers on the one Redis (workserver i talks to CC ((i-1) mod n) + 1).
    pub ccs: usize,
    /// `log_format = "json"` for the CCs and workservers.
    pub log_json: bool,
    /// Environment variables for CC k (1-based) only: (k, name, value). Tests use
    /// it to run one CC under libfaketime (a skewed clock).
    pub cc_env: Vec<(usize, String, String)>,
    /// `credentials.issuer` of the workservers ("did:key", a did:web identifier;
    /// None: no `[credentials]`, no Open Badges credentials).
    pub credentials: Option<String>,
    /// `[pdf_signature]` with the development CA's document-signing certificate
    /// (`tls/pdf-signing.pem`): the PDFs carry their own signature (PAdES).
    pub pdf_signature: bool,
    /// `storage.base_url` of the directory storage (default: its file:// URL).
    pub base_url: Option<String>,
}

/// An S3 (-compatible) bucket for the workservers, path-style.
#[derive(Debug, Clone)]
pub struct S3Target {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

/// The templates shipped in this repository.
pub fn default_templates() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/templates"))
}

impl ClusterSpec {
    pub fn new(dir: impl Into<PathBuf>, bin: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            bin: bin.into(),
            workservers: 2,
            ws_capacity: 2,
            lease_ttl_s: 30,
            heartbeat_interval_s: 5,
            max_attempts: 5,
            log_level: "info".into(),
            templates: default_templates(),
            keep_old_versions: false,
            s3: None,
            cache_max_age_s: None,
            cc_extra: String::new(),
            cc_redis: None,
            ws_extra: String::new(),
            ccs: 1,
            log_json: false,
            cc_env: Vec::new(),
            credentials: Some("did:key".into()),
            pdf_signature: true,
            base_url: None,
        }
    }
}

/// What an integrator needs to talk to the cluster (`cluster.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cc_url: String,
    pub ca_cert: PathBuf,
    pub lms_api_key: String,
    /// Signs the callbacks of requests made with the lms key (HMAC-SHA256).
    pub callback_secret: String,
    pub operator_api_key: String,
    pub cc_pass: String,
    pub storage_dir: PathBuf,
    pub public_key: PathBuf,
    /// The URLs of the second and further CCs, when there are several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_cc_urls: Vec<String>,
}

pub struct Cluster {
    pub spec: ClusterSpec,
    pub info: ClusterInfo,
    pub redis: RedisServer,
    /// CC k (1-based) is `ccs[k - 1]`.
    ccs: Vec<Option<Child>>,
    ws: Vec<Option<Child>>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn secret() -> String {
    testamur_common::ids::random_hex(32)
}

impl Cluster {
    /// Start everything and wait until the CC answers and every workserver is registered.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Self> {
        let dir = std::path::absolute(&spec.dir)?;
        for sub in ["logs", "keys", "public"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let redis = RedisServer::start(&dir.join("redis"))?;
        let tls =
            crate::tlsgen::generate(&dir.join("tls"), &["localhost".into(), "127.0.0.1".into()])?;
        let (secret_key, public_key, _fp) =
            testamur_ws::sign::generate_key("testamur demo signing key <demo@testamur.invalid>")?;
        crate::fsutil::write_private(&dir.join("keys/signing.key"), secret_key.as_bytes())?;
        let public_key_path = dir.join("keys/signing-key.asc");
        crate::fsutil::write_public(&public_key_path, public_key.as_bytes())?;
        let credential_key = testamur_ws::credential::key::generate_pem()
            .map_err(|e| anyhow::anyhow!("credential key: {e}"))?;
        crate::fsutil::write_private(&dir.join("keys/credential.key"), credential_key.as_bytes())?;

        let cc_port = free_port()?;
        let more_ports = (1..spec.ccs.max(1))
            .map(|_| free_port())
            .collect::<anyhow::Result<Vec<u16>>>()?;
        let info = ClusterInfo {
            more_cc_urls: more_ports
                .iter()
                .map(|p| format!("https://localhost:{p}"))
                .collect(),
            cc_url: format!("https://localhost:{cc_port}"),
            ca_cert: tls.ca_cert.clone(),
            lms_api_key: secret(),
            callback_secret: secret(),
            operator_api_key: secret(),
            cc_pass: secret(),
            storage_dir: dir.join("public"),
            public_key: public_key_path,
        };
        let cc_conf = format!(
            r#"# Written by testamur's dev cluster.
name = "cc-1"
listen = "127.0.0.1:{cc_port}"
ssl_certfile = "tls/server.pem"
ssl_key = "tls/server.key"
cc_pass = "{cc_pass}"
lease_ttl_s = {ttl}
heartbeat_interval_s = {hb}
max_attempts = {max}
log_format = "{log_format}"
{redis}

[[api_keys]]
name = "demo-lms"
role = "lms"
key = "{lms}"
callback_secret = "{cbs}"

[[api_keys]]
name = "demo-operator"
role = "operator"
key = "{op}"

{extra}
"#,
            redis = match &spec.cc_redis {
                Some(text) => text.replace("{redis_url}", &redis.url()),
                None => format!("redis_url = \"{}\"", redis.url()),
            },
            cc_pass = info.cc_pass,
            ttl = spec.lease_ttl_s,
            hb = spec.heartbeat_interval_s,
            max = spec.max_attempts,
            lms = info.lms_api_key,
            cbs = info.callback_secret,
            op = info.operator_api_key,
            extra = spec.cc_extra,
            log_format = if spec.log_json { "json" } else { "human" },
        );
        for (k, port) in more_ports.iter().enumerate() {
            let text = cc_conf
                .replace("name = \"cc-1\"", &format!("name = \"cc-{}\"", k + 2))
                .replace(
                    &format!("listen = \"127.0.0.1:{cc_port}\""),
                    &format!("listen = \"127.0.0.1:{port}\""),
                );
            std::fs::write(dir.join(format!("cc-{}.conf", k + 2)), text)?;
        }
        std::fs::write(dir.join("cc.conf"), cc_conf)?;
        std::fs::write(
            dir.join("cluster.json"),
            serde_json::to_string_pretty(&info)?,
        )?;

        let mut spec = spec;
        spec.dir = dir;
        let n_ccs = spec.ccs.max(1);
        let mut cluster = Self {
            spec,
            info,
            redis,
            ccs: (0..n_ccs).map(|_| None).collect(),
            ws: Vec::new(),
        };
        for k in 1..=n_ccs {
            cluster.start_cc_n(k)?;
        }
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        for i in 1..=cluster.spec.workservers {
            let url = cluster
                .info
                .cc_url_of((i - 1) % cluster.spec.ccs.max(1) + 1);
            cluster.write_ws_conf(i, &url)?;
            let child = cluster.spawn_ws(i)?;
            cluster.ws.push(Some(child));
        }
        cluster
            .wait_workservers(cluster.spec.workservers, Duration::from_secs(30))
            .await?;
        Ok(cluster)
    }

    /// Writes `ws-{i}.conf`: workserver `i` talking to the CC (or load balancer)
    /// at `cc_url`; its path.
    pub fn write_ws_conf(&self, i: usize, cc_url: &str) -> anyhow::Result<PathBuf> {
        let (spec, info, dir) = (&self.spec, &self.info, &self.spec.dir);
        let ws_conf = format!(
            r#"# Written by testamur's dev cluster.
name = "ws-{i}"
cc_url = "{url}"
ssl_ca_certs = "tls/ca.pem"
cc_pass = "{cc_pass}"
capacity = {cap}
signing_key = "keys/signing.key"
templates = "{templates}"
log_format = "{log_format}"
{extra}

{storage}keep_old_versions = {keep}
{cache}{credentials}{pdf_signature}"#,
            pdf_signature = match spec.pdf_signature {
                true => "\n[pdf_signature]\ncert = \"tls/pdf-signing.pem\"\nkey = \"tls/pdf-signing.key\"\n",
                false => "",
            },
            credentials = match &spec.credentials {
                Some(issuer) => format!(
                    "\n[credentials]\nkey = \"keys/credential.key\"\nissuer = \"{issuer}\"\n"
                ),
                None => String::new(),
            },
            storage = match &spec.s3 {
                None => format!(
                    "[storage]\ndir = \"public\"\nbase_url = \"{}\"\n",
                    spec.base_url
                        .clone()
                        .unwrap_or_else(|| format!("file://{}/", dir.join("public").display()))
                ),
                Some(s3) => format!(
                    "[storage]\nbackend = \"s3\"\nbucket = \"{b}\"\nregion = \"us-east-1\"\n\
                         endpoint = \"{e}\"\npath_style = true\naccess_key_id = \"{ak}\"\n\
                         secret_access_key = \"{sk}\"\nbase_url = \"{e}/{b}/\"\n",
                    b = s3.bucket,
                    e = s3.endpoint,
                    ak = s3.access_key,
                    sk = s3.secret_key,
                ),
            },
            keep = spec.keep_old_versions,
            cache = spec
                .cache_max_age_s
                .map(|s| format!("cache_max_age_s = {s}\n"))
                .unwrap_or_default(),
            url = cc_url,
            extra = spec.ws_extra.replace("{cc_url}", cc_url),
            cc_pass = info.cc_pass,
            cap = spec.ws_capacity,
            templates = spec.templates.display(),
            log_format = if spec.log_json { "json" } else { "human" },
        );
        let path = dir.join(format!("ws-{i}.conf"));
        std::fs::write(&path, ws_conf)?;
        Ok(path)
    }

    /// Starts `n` more workservers whose `cc_url` is `cc_url` (e.g. a load
    /// balancer in front of the CCs) and waits until they are registered.
    pub async fn add_workservers(&mut self, n: usize, cc_url: &str) -> anyhow::Result<()> {
        for _ in 0..n {
            let i = self.ws.len() + 1;
            self.write_ws_conf(i, cc_url)?;
            let child = self.spawn_ws(i)?;
            self.ws.push(Some(child));
        }
        let alive = self.ws.iter().filter(|c| c.is_some()).count();
        self.wait_workservers(alive, Duration::from_secs(30)).await
    }

    fn spawn(&self, args: &[&str], log_name: &str) -> anyhow::Result<Child> {
        self.spawn_env(args, log_name, &[])
    }

    fn spawn_env(
        &self,
        args: &[&str],
        log_name: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.spec.dir.join("logs").join(log_name))?;
        Command::new(&self.spec.bin)
            .args(args)
            .current_dir(&self.spec.dir)
            .env("RUST_LOG", &self.spec.log_level)
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.spec.bin.display()))
    }

    /// (Re)start the (first) CC.
    pub fn start_cc(&mut self) -> anyhow::Result<()> {
        self.start_cc_n(1)
    }

    /// (Re)start CC `k` (1-based).
    pub fn start_cc_n(&mut self, k: usize) -> anyhow::Result<()> {
        let (conf, log) = match k {
            1 => ("cc.conf".to_owned(), "cc.log".to_owned()),
            k => (format!("cc-{k}.conf"), format!("cc-{k}.log")),
        };
        let env: Vec<(String, String)> = self
            .spec
            .cc_env
            .iter()
            .filter(|(n, _, _)| *n == k)
            .map(|(_, name, value)| (name.clone(), value.clone()))
            .collect();
        let cc = self.spawn_env(&["cc", "--config", &conf], &log, &env)?;
        self.ccs[k - 1] = Some(cc);
        Ok(())
    }

    /// SIGTERM CC `k` (1-based) and wait for it to exit (40 s at most, then
    /// SIGKILL); its exit status.
    pub fn terminate_cc_n(&mut self, k: usize) -> Option<std::process::ExitStatus> {
        let mut c = self.ccs[k - 1].take()?;
        terminate(&mut c);
        c.wait().ok()
    }

    /// SIGKILL CC `k` (1-based).
    pub fn kill_cc_n(&mut self, k: usize) {
        if let Some(mut c) = self.ccs[k - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether workserver `i` has exited by itself (and how).
    pub fn ws_exit_status(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.ws[i - 1]
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn spawn_ws(&self, i: usize) -> anyhow::Result<Child> {
        self.spawn(
            &["ws", "--config", &format!("ws-{i}.conf")],
            &format!("ws-{i}.log"),
        )
    }

    /// (Re)start workserver `i` (1-based).
    pub fn start_ws(&mut self, i: usize) -> anyhow::Result<()> {
        let child = self.spawn_ws(i)?;
        self.ws[i - 1] = Some(child);
        Ok(())
    }

    /// The process id of CC `k` (1-based), while it runs.
    pub fn cc_pid(&self, k: usize) -> Option<u32> {
        self.ccs.get(k - 1).and_then(|c| c.as_ref()).map(|c| c.id())
    }

    pub fn ws_pid(&self, i: usize) -> Option<u32> {
        self.ws.get(i - 1).and_then(|c| c.as_ref()).map(|c| c.id())
    }

    /// SIGTERM workserver `i` (1-based) and wait for it to exit (it finishes its
    /// jobs and deregisters; 40 s at most, then SIGKILL).
    pub fn terminate_ws(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let mut c = self.ws[i - 1].take()?;
        terminate(&mut c);
        c.wait().ok()
    }

    /// Points workserver `i`'s ws.conf at another templates directory (it takes
    /// effect when the workserver next starts).
    pub fn set_ws_templates(&self, i: usize, templates: &Path) -> anyhow::Result<()> {
        let path = self.spec.dir.join(format!("ws-{i}.conf"));
        let conf = std::fs::read_to_string(&path)?;
        let line = format!("templates = {:?}", templates.display().to_string());
        let conf: Vec<String> = conf
            .lines()
            .map(|l| match l.starts_with("templates = ") {
                true => line.clone(),
                false => l.to_owned(),
            })
            .collect();
        std::fs::write(&path, conf.join("\n") + "\n")?;
        Ok(())
    }

    /// SIGKILL workserver `i` (1-based): it gets no chance to release anything.
    pub fn kill_ws(&mut self, i: usize) {
        if let Some(mut c) = self.ws[i - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kill_cc(&mut self) {
        self.kill_cc_n(1)
    }

    /// An lms client of CC `k` (1-based).
    pub fn lms_at(&self, k: usize) -> anyhow::Result<ApiClient> {
        ApiClient::new(
            &self.info.cc_url_of(k),
            Some(&self.info.ca_cert),
            &self.info.lms_api_key,
        )
    }

    pub fn lms(&self) -> anyhow::Result<ApiClient> {
        ApiClient::new(
            &self.info.cc_url,
            Some(&self.info.ca_cert),
            &self.info.lms_api_key,
        )
    }

    pub fn operator(&self) -> anyhow::Result<ApiClient> {
        ApiClient::new(
            &self.info.cc_url,
            Some(&self.info.ca_cert),
            &self.info.operator_api_key,
        )
    }

    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let client = self.operator()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = client.http().get(client.url("/healthz")).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(cc) = self.ccs[0].as_mut() {
                if let Some(status) = cc.try_wait()? {
                    bail!(
                        "the CC exited with {status}; see {}",
                        self.log_path("cc.log").display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the CC did not become healthy within {timeout:?}; see {}",
                    self.log_path("cc.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until `n` live workservers are registered.
    pub async fn wait_workservers(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let client = self.operator()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Ok(s)) = client.status().await {
                if s.workservers.iter().filter(|w| w.alive).count() >= n {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{n} workservers did not register within {timeout:?}; see {}",
                    self.log_path("ws-1.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.spec.dir.join("logs").join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }

    /// Stop workservers then the CC with SIGTERM (graceful), waiting for each.
    /// The running processes: ("redis", pid), ("cc-k", pid), ("ws-i", pid).
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut out: Vec<_> = self
            .redis
            .pid()
            .map(|p| ("redis".to_owned(), p))
            .into_iter()
            .collect();
        for (k, c) in self.ccs.iter().enumerate() {
            if let Some(c) = c {
                out.push((format!("cc-{}", k + 1), c.id()));
            }
        }
        for (i, c) in self.ws.iter().enumerate() {
            if let Some(c) = c {
                out.push((format!("ws-{}", i + 1), c.id()));
            }
        }
        out
    }

    pub fn stop(&mut self) {
        for c in self.ws.iter_mut().flatten() {
            terminate(c);
        }
        self.ws.iter_mut().for_each(|c| *c = None);
        for c in self.ccs.iter_mut().flatten() {
            terminate(c);
        }
        self.ccs.iter_mut().for_each(|c| *c = None);
    }
}

/// SIGTERM, then wait up to 40 s, then SIGKILL.
fn terminate(c: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(c.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.ws.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for k in 1..=self.ccs.len() {
            self.kill_cc_n(k);
        }
    }
}

/// Make room for a new local cluster in `dir`: remove what an earlier cluster
/// left there (recognised by its cluster.json), but never a directory that holds
/// anything else (a `--dir` pointed somewhere by mistake).
pub fn clear_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .next()
        .is_none();
    if !empty && !dir.join("cluster.json").is_file() {
        bail!(
            "{} exists and is not a testamur cluster directory (it has no cluster.json); choose another --dir or remove it yourself",
            dir.display()
        );
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))
}

impl ClusterInfo {
    /// The URL of CC `k` (1-based).
    pub fn cc_url_of(&self, k: usize) -> String {
        match k {
            1 => self.cc_url.clone(),
            k => self.more_cc_urls[k - 2].clone(),
        }
    }
}
