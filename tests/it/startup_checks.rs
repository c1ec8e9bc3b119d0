//! Start-up checks try what the configuration points to and say which key is
//! wrong: `cc --check` logs in to a real redis-server started with
//! `requirepass` (and a CC that cannot says `redis_password`), `ws --check`
//! reaches the CC's `/healthz` over TLS, a running workserver without a CC logs
//! "no CC reachable at <url> (<cause>)", and a signing key that group or others
//! can read is refused.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testamur::redis_proc::RedisServer;

use crate::helpers::{cluster, BIN};

const REDIS_PASSWORD: &str = "redis-pass-0123456789abcdef";

/// Runs `cmd`, killing it after `limit` (a check must not hang).
fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A cc.conf in `dir` for the Redis at `redis_url`, with `redis_password` in a
/// 0600 file when given.
fn cc_conf(dir: &Path, redis_url: &str, password: Option<&str>) -> PathBuf {
    cc_conf_with(dir, &format!("redis_url = \"{redis_url}\""), password)
}

/// The same with `redis` as cc.conf's Redis keys (it goes after the top-level
/// keys, so it may end with a table); the TLS files in `dir/tls` (a CA and a
/// certificate for localhost and 127.0.0.1) are made when missing.
pub(crate) fn cc_conf_with(dir: &Path, redis: &str, password: Option<&str>) -> PathBuf {
    if !dir.join("tls/server.pem").is_file() {
        testamur::tlsgen::generate(&dir.join("tls"), &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut text = format!(
        "name = \"cc-check\"\nlisten = \"127.0.0.1:{port}\"\nssl_certfile = \"tls/server.pem\"\n\
         ssl_key = \"tls/server.key\"\n\
         cc_pass = \"0123456789abcdef0123456789abcdef\"\n"
    );
    if let Some(pw) = password {
        testamur::fsutil::write_private(&dir.join("redis.pass"), format!("{pw}\n").as_bytes())
            .unwrap();
        text.push_str("redis_password = { file = \"redis.pass\" }\n");
    }
    text.push_str(redis);
    text.push('\n');
    let conf = dir.join("cc.conf");
    std::fs::write(&conf, text).unwrap();
    conf
}

pub(crate) fn cc(conf: &Path, check: bool) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["cc", "--config"]).arg(conf);
    if check {
        cmd.arg("--check");
    }
    let out = output_within(&mut cmd, Duration::from_secs(30));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cc_check_logs_in_to_redis_and_a_refused_password_names_redis_password() {
    let dir = tempfile::tempdir().unwrap();
    let redis =
        RedisServer::start_with_password(&dir.path().join("redis"), Some(REDIS_PASSWORD)).unwrap();
    let file = dir.path().join("cc.conf").display().to_string();

    let conf = cc_conf(dir.path(), &redis.url(), Some(REDIS_PASSWORD));
    let (ok, stdout, stderr) = cc(&conf, true);
    assert!(ok && stdout.contains("ok"), "{stdout}{stderr}");

    // A wrong password: --check fails, and so does the CC itself, naming the
    // key and the file (never the password).
    let conf = cc_conf(dir.path(), &redis.url(), Some("not-the-redis-password"));
    for check in [true, false] {
        let (ok, _, stderr) = cc(&conf, check);
        assert!(!ok, "check={check}: accepted a wrong Redis password");
        assert!(
            stderr.contains("Redis refused the password")
                && stderr.contains(&format!("set redis_password in {file}"))
                && stderr.contains("redis_url"),
            "check={check}: {stderr}"
        );
        assert!(
            !stderr.contains("unexpected data") && !stderr.contains("not-the-redis-password"),
            "{stderr}"
        );
    }

    // No password where Redis requires one (NOAUTH).
    let conf = cc_conf(dir.path(), &redis.url(), None);
    for check in [true, false] {
        let (ok, _, stderr) = cc(&conf, check);
        assert!(!ok, "check={check}: accepted no Redis password");
        assert!(
            stderr.contains("Redis requires a password")
                && stderr.contains(&format!("set redis_password in {file}")),
            "check={check}: {stderr}"
        );
        assert!(!stderr.contains("did not answer PING"), "{stderr}");
    }

    // No Redis at all: the URL is named.
    let gone = dir.path().join("nothing-here.sock");
    let conf = cc_conf(
        dir.path(),
        &format!("redis+unix://{}", gone.display()),
        None,
    );
    let (ok, _, stderr) = cc(&conf, true);
    assert!(!ok);
    assert!(
        stderr.contains("cannot connect to Redis at redis_url")
            && stderr.contains("nothing-here.sock")
            && stderr.contains(&file),
        "{stderr}"
    );
}

/// A standalone ws.conf in `dir` (key made by `testamur keygen`, the shipped
/// templates, a storage directory) for the CC at `cc_url`, trusting `ca`.
fn ws_conf(dir: &Path, cc_url: &str, ca: Option<&Path>) -> PathBuf {
    ws_conf_with(dir, cc_url, ca, &testamur::devcluster::default_templates())
}

/// [`ws_conf`] with the templates folder `templates`.
fn ws_conf_with(dir: &Path, cc_url: &str, ca: Option<&Path>, templates: &Path) -> PathBuf {
    if !dir.join("keys/signing.key").is_file() {
        let out = Command::new(BIN)
            .args(["keygen", "--out"])
            .arg(dir.join("keys"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let conf = dir.join("ws.conf");
    std::fs::write(
        &conf,
        format!(
            "name = \"ws-check\"\ncc_url = \"{cc_url}\"\n{ca}cc_pass = \"0123456789abcdef0123456789abcdef\"\n\
             signing_key = \"keys/signing.key\"\ntemplates = \"{templates}\"\n\
             [storage]\ndir = \"public\"\nbase_url = \"https://certs.example.org/\"\n",
            ca = ca
                .map(|p| format!("ssl_ca_certs = \"{}\"\n", p.display()))
                .unwrap_or_default(),
            templates = templates.display(),
        ),
    )
    .unwrap();
    conf
}

fn ws_check(conf: &Path) -> (bool, String) {
    let out = output_within(
        Command::new(BIN)
            .args(["ws", "--check", "--config"])
            .arg(conf),
        Duration::from_secs(60),
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Accepts connections and closes them at once: TLS sees EOF in its handshake.
fn closing_listener() -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let t = std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    (url, t)
}

#[tokio::test(flavor = "multi_thread")]
async fn ws_check_reaches_the_cc_and_says_which_url_when_it_cannot() {
    let c = cluster(|s| s.workservers = 0).await;
    let dir = tempfile::tempdir().unwrap();

    // A CC that answers: ok.
    let conf = ws_conf(dir.path(), &c.info.cc_url, Some(&c.info.ca_cert));
    let (ok, out) = ws_check(&conf);
    assert!(ok && out.contains("ok"), "{out}");

    // Nothing listening at cc_url.
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", free.local_addr().unwrap().port());
    drop(free);
    let (ok, out) = ws_check(&ws_conf(dir.path(), &url, Some(&c.info.ca_cert)));
    assert!(!ok, "passed with no CC");
    assert!(
        out.contains(&format!(
            "no CC reachable at {url}: connection refused; check cc_url and that the CC is running"
        )),
        "{out}"
    );

    // Something that is not a TLS server: EOF in the handshake, said briefly.
    let (url, _t) = closing_listener();
    let (ok, out) = ws_check(&ws_conf(dir.path(), &url, Some(&c.info.ca_cert)));
    assert!(!ok);
    assert!(
        out.contains(&format!("no CC reachable at {url}: "))
            && out.contains("check cc_url and that the CC is running")
            && !out.contains("error sending request"),
        "{out}"
    );

    // The CC, but a CA that did not sign its certificate.
    let other =
        testamur::tlsgen::generate(&dir.path().join("other-ca"), &["localhost".into()]).unwrap();
    let (ok, out) = ws_check(&ws_conf(dir.path(), &c.info.cc_url, Some(&other.ca_cert)));
    assert!(!ok);
    assert!(
        out.contains(&format!("no CC reachable at {}: TLS: ", c.info.cc_url))
            && out.contains("ssl_ca_certs"),
        "{out}"
    );
}

/// Issue 13 item 7: a font stack naming a face a collection does not have stops
/// `ws --check` with the file, the key, the font and the faces there are.
#[test]
fn ws_check_a_bad_face_index_says_how_many_faces_the_file_has() {
    let templates = crate::rendering::custom_templates("", |_, s| s);
    let index = templates.path().join("index.toml");
    let text = std::fs::read_to_string(&index).unwrap();
    let bad = text.replace("NotoSerifCJK-Regular.ttc#2", "NotoSerifCJK-Regular.ttc#9");
    assert_ne!(
        text, bad,
        "the shipped serif stack names NotoSerifCJK-Regular.ttc#2"
    );
    std::fs::write(&index, bad).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = ws_conf_with(dir.path(), "https://127.0.0.1:9", None, templates.path());
    let (ok, out) = ws_check(&conf);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("{}: `fonts.serif`: font ", index.display()))
            && out.contains("NotoSerifCJK-Regular.ttc#9: the file holds 5 faces, #0 to #4")
            && out.contains("#3 Noto Serif CJK TC")
            && out.contains("key `templates` in ws.conf"),
        "{out}"
    );
}

/// Starts `testamur ws` with `rust_log`, waits for a failed registration in its
/// log, stops it; the log.
fn ws_log_without_cc(conf: &Path, rust_log: &str) -> String {
    let log = conf.with_extension(format!("{}.log", rust_log.len()));
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(BIN)
        .args(["ws", "--config"])
        .arg(conf)
        .env("RUST_LOG", rust_log)
        .env("NO_COLOR", "1")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("cannot register yet").count() >= 2 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    text
}

#[test]
fn a_workserver_without_a_cc_logs_no_cc_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _t) = closing_listener();
    let conf = ws_conf(dir.path(), &url, None);
    let log = ws_log_without_cc(&conf, "info");
    let line = log
        .lines()
        .find(|l| l.contains("cannot register yet"))
        .unwrap_or_else(|| panic!("no failed registration logged:\n{log}"));
    assert!(
        line.contains(&format!("no CC reachable at {url} (")),
        "{line}"
    );
    for detail in [
        "error sending request",
        "client error",
        "rustls",
        "close_notify",
    ] {
        assert!(!log.contains(detail), "{detail} at info level:\n{log}");
    }
    // The details are in the debug log.
    let log = ws_log_without_cc(&conf, "info,testamur_ws::client=debug");
    assert!(
        log.contains("request to the CC failed") && log.contains("error sending request"),
        "{log}"
    );
}

#[cfg(unix)]
#[test]
fn a_signing_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let conf = ws_conf(dir.path(), "https://localhost:1", None);
    let key = dir.path().join("keys/signing.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "testamur keygen writes the key 0600");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    for check in [true, false] {
        let mut cmd = Command::new(BIN);
        cmd.args(["ws", "--config"]).arg(&conf);
        if check {
            cmd.arg("--check");
        }
        let out = output_within(&mut cmd, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "check={check}: {err}");
        assert!(
            err.contains(&format!("chmod 600 {}", key.display()))
                && err.contains("readable by group or others"),
            "check={check}: {err}"
        );
    }
    assert!(
        !dir.path().join("public/keys/signing-key.asc").exists(),
        "nothing published with a refused key"
    );
}
