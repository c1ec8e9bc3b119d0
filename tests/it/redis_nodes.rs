//! Real Redis nodes for the production Redis tests: a redis-server or a Sentinel
//! on 127.0.0.1 and a free port, in a directory of its own (plain or TLS-only with
//! a password), talked to with redis-cli, killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server (or Sentinel) on 127.0.0.1:`port`, in `dir`; killed on drop.
pub(crate) struct Node {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    /// redis-cli's own options for this node (TLS, password).
    cli_opts: Vec<String>,
}

impl Node {
    pub(crate) fn redis(dir: &Path, port: u16, extra: &[String]) -> Node {
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(dir.display().to_string());
        args.extend(extra.iter().cloned());
        Self::start(dir, port, args, Vec::new())
    }

    /// A Sentinel watching the primary at `primary` as `tm` (quorum 2).
    pub(crate) fn sentinel(dir: &Path, port: u16, primary: u16) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor tm 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds tm 1000\n\
                 sentinel failover-timeout tm 4000\n\
                 sentinel parallel-syncs tm 1\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        Self::start(
            dir,
            port,
            vec![conf.display().to_string(), "--sentinel".into()],
            Vec::new(),
        )
    }

    pub(crate) fn start(dir: &Path, port: u16, args: Vec<String>, cli_opts: Vec<String>) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let mut n = Node {
            child: None,
            port,
            dir: dir.to_owned(),
            args,
            cli_opts,
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        self.child = Some(
            Command::new("redis-server")
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("redis-server on PATH"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(
                Instant::now() < deadline,
                "{} did not start",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.cli_opts)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// TLS options of a redis-server (or Sentinel) with the certificate in `tls`.
fn tls_conf(tls: &Path, port: u16) -> String {
    format!(
        "port 0\ntls-port {port}\ntls-cert-file {t}/server.pem\ntls-key-file {t}/server.key\n\
         tls-ca-cert-file {t}/ca.pem\ntls-auth-clients no\n",
        t = tls.display()
    )
}

pub(crate) fn tls_node(
    dir: &Path,
    tls: &Path,
    port: u16,
    conf: String,
    password: &str,
    sentinel: bool,
) -> Node {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("redis.conf");
    std::fs::write(
        &file,
        format!(
            "{}bind 127.0.0.1\ndir {}\nrequirepass {password}\nsave \"\"\n{conf}",
            tls_conf(tls, port),
            dir.display()
        ),
    )
    .unwrap();
    let mut args = vec![file.display().to_string()];
    if sentinel {
        args.push("--sentinel".into());
    }
    let cli = ["--tls", "--cacert", &format!("{}/ca.pem", tls.display())]
        .iter()
        .map(|s| s.to_string())
        .chain(["--no-auth-warning".into(), "-a".into(), password.to_owned()])
        .collect();
    Node::start(dir, port, args, cli)
}
