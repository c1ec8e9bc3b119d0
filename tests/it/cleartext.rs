//! Credentials never leave in clear text by accident: the CLI refuses to send an
//! API key to an `http://` CC URL unless `--allow-insecure-http` says so (checked
//! with a listener that would see any connection), and the xqueue bridge refuses
//! an `http://` xqueue_url unless xqueue.conf says `allow_http = true`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;

use crate::helpers::BIN;

const KEY: &str = "cleartext-test-key-0123456789";

/// Each command that talks to a CC, with `--cc-url URL` added.
fn commands(dir: &std::path::Path) -> Vec<Vec<String>> {
    let csv = dir.join("rows.csv");
    std::fs::write(&csv, "username,course_id,name\nu1,c1,Ada\n").unwrap();
    [
        vec!["status"],
        vec!["drain", "ws-1"],
        vec![
            "submit",
            "--course-id",
            "c1",
            "--username",
            "u1",
            "--name",
            "Ada",
        ],
        vec!["submit", "--csv", csv.to_str().unwrap()],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_owned).collect())
    .collect()
}

#[test]
fn the_cli_sends_no_api_key_to_an_http_cc_url() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    for args in commands(dir.path()) {
        let out = Command::new(BIN)
            .args(&args)
            .args(["--cc-url", &url])
            .env("TESTAMUR_API_KEY", KEY)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!("refusing to send the API key to {url}"))
                && err.contains("https://")
                && err.contains("--allow-insecure-http"),
            "{args:?}: the error says what to do: {err}"
        );
        assert!(!err.contains(KEY), "{err}");
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{args:?} connected to the http:// URL: {other:?}"),
        }
    }
    // A URL that is neither: refused before anything is sent, too.
    let out = Command::new(BIN)
        .args(["status", "--cc-url", "cc.example.org:8443"])
        .env("TESTAMUR_API_KEY", KEY)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("https://cc.example.org:8443"),
        "{err}"
    );
}

/// With the flag the request does go out over http (a TLS-terminating proxy on
/// the same host is the one case for it).
#[test]
fn allow_insecure_http_sends_it_as_asked() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push(line.trim_end().to_owned());
        }
        let body = r#"{"error":{"code":"unauthorized","message":"proxy says no"}}"#;
        write!(
            conn,
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        head
    });
    let out = Command::new(BIN)
        .args(["status", "--allow-insecure-http", "--cc-url", &url])
        .env("TESTAMUR_API_KEY", KEY)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("proxy says no"),
        "{err}"
    );
    let head = server.join().unwrap();
    assert!(head[0].starts_with("GET /v1/status "), "{head:?}");
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case(&format!("authorization: Bearer {KEY}"))),
        "{head:?}"
    );
}

/// `xqueue-bridge --check` with an http:// xqueue_url stops on the config,
/// naming the key and `allow_http`, before contacting anything.
#[test]
fn the_bridge_refuses_an_http_xqueue_without_allow_http() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let conf = dir.path().join("xqueue.conf");
    std::fs::write(
        &conf,
        format!(
            "xqueue_url = \"http://{}\"\nqueue_name = \"certificates\"\n\
             xqueue_username = \"u\"\nxqueue_password = \"xq-password-1234\"\n\
             cc_url = \"https://localhost:1\"\napi_key = \"{KEY}\"\n\
             state_file = \"state.jsonl\"\n",
            listener.local_addr().unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["xqueue-bridge", "--check", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("xqueue.conf")
            && err.contains("`xqueue_url`")
            && err.contains("allow_http = true"),
        "{err}"
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing was sent to xqueue"
    );
}
