//! A throwaway `redis-server` on a unix socket in a directory of our own (used by the
//! demo, the benchmarks and the tests; never the machine's shared Redis). Stopped on drop.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub struct RedisServer {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
    /// `requirepass`, when the server was started with one.
    password: Option<String>,
    /// The append-only file's fsync policy (`everysec` unless set).
    appendfsync: &'static str,
}

pub const INSTALL_HINT: &str =
    "redis-server was not found on PATH; install it with `sudo apt-get install redis-server` (Debian/Ubuntu) or run `make setup`";

impl RedisServer {
    /// Start redis-server with its socket, data (append-only file) and log in `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_with_password(dir, None)
    }

    /// The same, with `requirepass password` (given in a 0600 config file, not
    /// on the command line) when `password` is given.
    pub fn start_with_password(dir: &Path, password: Option<&str>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let socket = dir.join("redis.sock");
        let mut server = Self {
            child: None,
            dir,
            socket,
            password: password.map(str::to_owned),
            appendfsync: "everysec",
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))?;
        let mut cmd = Command::new("redis-server");
        if let Some(pw) = &self.password {
            let conf = self.dir.join("auth.conf");
            crate::fsutil::write_private(&conf, format!("requirepass \"{pw}\"\n").as_bytes())?;
            cmd.arg(&conf);
        }
        let child = cmd
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--unixsocketperm",
                "700",
                "--save",
                "",
            ])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--maxmemory-policy",
                "noeviction",
            ])
            .arg("--unixsocket")
            .arg(&self.socket)
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(INSTALL_HINT),
            Err(e) => return Err(e).context("starting redis-server"),
        };
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(10))
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if ping(&self.socket, self.password.as_deref()) {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "redis-server exited with {status}; see {}",
                        self.dir.join("redis.log").display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "redis-server did not answer within {timeout:?}; see {}",
                    self.dir.join("redis.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis+unix:///path/redis.sock`
    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Kill the server hard (SIGKILL): what is not yet in the append-only file is lost,
    /// as in a crash.
    /// Runs one command with `redis-cli` against this server; its output.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = std::process::Command::new("redis-cli");
        if let Some(pw) = &self.password {
            cmd.env("REDISCLI_AUTH", pw);
        }
        let out = cmd.arg("-s").arg(&self.socket).args(args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sets `appendfsync` now (CONFIG SET) and for every later restart.
    pub fn set_appendfsync(&mut self, policy: &'static str) -> anyhow::Result<()> {
        self.cli(&["CONFIG", "SET", "appendfsync", policy])?;
        self.appendfsync = policy;
        Ok(())
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL it (a crash: nothing is flushed) and start it again from what its
    /// append-only file holds.
    pub fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Stop it cleanly (SIGTERM: Redis flushes its append-only file) and start it again.
    pub fn restart_graceful(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ping(socket: &Path, password: Option<&str>) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut expect: &[u8] = b"+PONG";
    if let Some(pw) = password {
        // RESP array, so any byte of the password goes through.
        let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{pw}\r\n", pw.len());
        if s.write_all(auth.as_bytes()).is_err() {
            return false;
        }
        expect = b"+OK\r\n+PONG";
    }
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 32];
    while got.len() < expect.len() {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(expect)
}
