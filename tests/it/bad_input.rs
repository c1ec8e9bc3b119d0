//! Bad input gets the API's error shape and the right status, never a 500; a bad
//! config file stops startup with a message naming the file and the key.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::{cluster, register_manual_ws, BIN};

async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    let got = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error bodies are JSON");
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_precise_errors() {
    let c = cluster(|s| s.workservers = 0).await;
    let lms = c.lms().unwrap();
    let http = lms.http().clone();
    let url = lms.url("/v1/certificates");
    let key = c.info.lms_api_key.clone();
    let post = |body: String| {
        http.post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Malformed JSON and wrong types: 400.
    expect_error(
        post("{\"action\": \"add\",".into()).await.unwrap(),
        400,
        "malformed_json",
    )
    .await;
    expect_error(post("[1,2]".into()).await.unwrap(), 400, "invalid_body").await;
    let b = expect_error(
        post(json!({"action": "add", "username": 7}).to_string())
            .await
            .unwrap(),
        400,
        "invalid_body",
    )
    .await;
    assert_eq!(b["error"]["field"], "username");
    let b = expect_error(
        post(json!({"action": "add", "usernme": "x"}).to_string())
            .await
            .unwrap(),
        400,
        "invalid_body",
    )
    .await;
    assert!(
        b["error"]["message"].as_str().unwrap().contains("usernme"),
        "{b}"
    );

    // Well-formed but invalid: 422 naming the field.
    let add = |extra: Value| {
        let mut v = json!({"action": "add", "username": "u1", "course_id": "c1", "name": "Ada"});
        for (k, val) in extra.as_object().unwrap() {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        v.to_string()
    };
    for (extra, field) in [
        (json!({"name": null}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"action": "remove"}), "action"),
        (json!({"action": null}), "action"),
        (json!({"username": null}), "username"),
        (json!({"course_id": ""}), "course_id"),
        (json!({"issued_date": "yesterday"}), "issued_date"),
        (
            json!({"callback_url": "http://lms.example/cb"}),
            "callback_url",
        ),
        (json!({"name": "bad\u{7}bell"}), "name"),
    ] {
        let b = expect_error(
            post(add(extra.clone())).await.unwrap(),
            422,
            "invalid_value",
        )
        .await;
        assert_eq!(b["error"]["field"], field, "{extra}: {b}");
    }

    // Regen or delete of a certificate that was never added: 409 illegal_transition.
    for action in ["regen", "delete"] {
        let b = expect_error(
            post(add(json!({"action": action}))).await.unwrap(),
            409,
            "illegal_transition",
        )
        .await;
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("does not exist"),
            "{b}"
        );
    }
    // Add twice: the second names the current state.
    assert_eq!(post(add(json!({}))).await.unwrap().status(), 202);
    let b = expect_error(
        post(add(json!({}))).await.unwrap(),
        409,
        "illegal_transition",
    )
    .await;
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`generating`"),
        "{b}"
    );

    // Credentials: missing, wrong, wrong role.
    let r = http
        .post(&url)
        .body(add(json!({"username": "u2"})))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthorized").await;
    let r = http
        .post(&url)
        .bearer_auth("not-a-key-not-a-key")
        .body(add(json!({"username": "u2"})))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "unauthorized").await;
    let r = http
        .post(&url)
        .bearer_auth(&c.info.operator_api_key)
        .body(add(json!({"username": "u2"})))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;
    let r = http
        .get(lms.url("/v1/status"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "forbidden").await;

    // Unknown ids and routes: 404; wrong method: 405.
    let r = http
        .get(lms.url("/v1/certificates/0123456789abcdef0123456789abcdef"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;
    let r = http
        .get(lms.url("/v1/certificates/..%2F..%2Fetc"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;
    let r = http.get(lms.url("/v1/nothing-here")).send().await.unwrap();
    expect_error(r, 404, "not_found").await;
    let r = http
        .delete(lms.url("/v1/certificates"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    expect_error(r, 405, "method_not_allowed").await;

    // Too large: 413.
    // Just over the 1 MiB limit: small enough that the whole body is in flight
    // before the CC answers and closes (a much larger one can meet a closed socket).
    let big = add(json!({"course_name": "x".repeat(1024 * 1024 + 64 * 1024)}));
    let r = post(big).await.unwrap();
    assert_eq!(
        r.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    expect_error(r, 413, "body_too_large").await;

    // Workserver endpoints validate too.
    let (_, token) = register_manual_ws(&c, "ws-bad", 1).await;
    let token = token.as_str();
    for (body, field) in [
        (json!({"max_jobs": 0, "wait_ms": 0}), "max_jobs"),
        (json!({"max_jobs": 1, "wait_ms": 999999}), "wait_ms"),
    ] {
        let r = http
            .post(lms.url("/v1/leases"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let b = expect_error(r, 422, "invalid_value").await;
        assert_eq!(b["error"]["field"], field);
    }
    let r = http
        .post(lms.url("/v1/leases/garbage/complete"))
        .bearer_auth(token)
        .json(&json!({"result": {}}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "not_found").await;
    let r = http
        .post(lms.url("/v1/workservers/register"))
        .json(&json!({"name": "", "cc_pass": c.info.cc_pass, "capacity": 1, "version": "t"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 422, "invalid_value").await;

    // /healthz is public; /openapi.json is a JSON document.
    assert_eq!(
        http.get(lms.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let spec: Value = http
        .get(lms.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/v1/certificates"].is_object());
}

#[test]
fn bad_config_files_stop_startup_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("cc", "cc.conf", "name = \"x\"\nlisten = \"127.0.0.1:1\"\nbogus_key = 1\n", "bogus_key"),
        ("cc", "cc2.conf", "name = \"x\"\nlisten = \"here\"\nssl_certfile = \"a\"\nssl_key = \"b\"\nredis_url = \"redis://x\"\ncc_pass = \"0123456789abcdef\"\n", "`listen`"),
        ("ws", "ws.conf", "name = \"w\"\ncc_url = \"http://plain\"\ncc_pass = \"x\"\nsigning_key = \"k\"\ntemplates = \".\"\n[storage]\ndir = \"p\"\nbase_url = \"https://x/\"\n", "`cc_url`"),
        ("ws", "ws2.conf", "name = \"w\"\ncc_url = \"https://cc\"\ncc_pass = { env = \"TESTAMUR_SURELY_UNSET\" }\nsigning_key = \"k\"\ntemplates = \".\"\n[storage]\ndir = \"p\"\nbase_url = \"https://x/\"\n", "TESTAMUR_SURELY_UNSET"),
        ("cc", "missing.conf", "", "cannot read"),
    ];
    // An S3 backend without its bucket (the other keys valid up to there).
    let s3 = format!(
        "name = \"w\"\ncc_url = \"https://cc\"\ncc_pass = \"0123456789abcdef\"\n\
         signing_key = \"ws3.conf\"\ntemplates = \"{}\"\n[storage]\nbackend = \"s3\"\n\
         region = \"r\"\nbase_url = \"https://x/\"\n",
        concat!(env!("CARGO_MANIFEST_DIR"), "/templates")
    );
    // A PDF signing certificate that is not there.
    let pades = format!(
        "name = \"w\"\ncc_url = \"https://cc\"\ncc_pass = \"0123456789abcdef\"\n\
         signing_key = \"ws4.conf\"\ntemplates = \"{}\"\n[storage]\ndir = \"p\"\n\
         base_url = \"https://x/\"\n[pdf_signature]\ncert = \"nope.pem\"\nkey = \"ws4.conf\"\n",
        concat!(env!("CARGO_MANIFEST_DIR"), "/templates")
    );
    let cases = cases.into_iter().chain([
        ("ws", "ws3.conf", s3.as_str(), "`storage.bucket`"),
        ("ws", "ws4.conf", pades.as_str(), "`pdf_signature.cert`"),
    ]);
    for (cmd, file, text, needle) in cases {
        let path = dir.path().join(file);
        if !text.is_empty() {
            std::fs::write(&path, text).unwrap();
        }
        let out = Command::new(BIN)
            .arg(cmd)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} was accepted");
        assert!(
            err.contains(file) && err.contains(needle),
            "{file}: stderr does not name it and {needle}:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// The documented example configs at the repository root are valid as shipped
/// (given the files and environment variables they refer to, and a Redis and a
/// CC where they say: `--check` reaches both).
#[tokio::test(flavor = "multi_thread")]
async fn example_configs_pass_check() {
    let c = cluster(|s| s.workservers = 0).await;
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    testamur::tlsgen::generate(&dir.path().join("certs"), &["localhost".into()]).unwrap();
    let out = Command::new(BIN)
        .args(["keygen", "--out"])
        .arg(dir.path().join("keys"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let storage = dir.path().join("public");
    let ws = std::fs::read_to_string(root.join("ws.conf"))
        .unwrap()
        .replace("/var/lib/testamur/public", storage.to_str().unwrap())
        .replace(
            "templates = \"templates\"",
            &format!("templates = \"{}\"", root.join("templates").display()),
        )
        .replace("https://cc.example.org:8443", &c.info.cc_url)
        .replace(
            "ssl_ca_certs = \"certs/ca.pem\"",
            &format!("ssl_ca_certs = \"{}\"", c.info.ca_cert.display()),
        );
    std::fs::write(dir.path().join("ws.conf"), ws).unwrap();
    let cc = std::fs::read_to_string(root.join("cc.conf"))
        .unwrap()
        .replace("redis://127.0.0.1:6379/0", &c.redis.url());
    std::fs::write(dir.path().join("cc.conf"), cc).unwrap();
    for (cmd, file) in [("cc", "cc.conf"), ("ws", "ws.conf")] {
        let out = Command::new(BIN)
            .arg(cmd)
            .arg("--config")
            .arg(dir.path().join(file))
            .arg("--check")
            .env("TESTAMUR_CC_PASS", "0123456789abcdef0123456789abcdef")
            .env("TESTAMUR_LMS_KEY", "lms-key-0123456789abcdef")
            .env("TESTAMUR_LMS_CALLBACK_SECRET", "cb-secret-0123456789abcdef")
            .env("TESTAMUR_OPERATOR_KEY", "op-key-0123456789abcdef")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(storage.join("keys/signing-key.asc").is_file());
}

/// What no configured font can draw, and unknown templates, are refused at submit
/// (422 naming the field and characters), with nothing queued; the CC learns the
/// templates from the workservers' registration.
#[tokio::test(flavor = "multi_thread")]
async fn undrawable_names_and_unknown_templates_are_422_at_submit() {
    let c = cluster(|s| s.workservers = 1).await;
    c.wait_workservers(1, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let lms = c.lms().unwrap();
    let http = lms.http().clone();
    let url = lms.url("/v1/certificates");
    let key = c.info.lms_api_key.clone();
    let post = |body: Value| http.post(&url).bearer_auth(&key).json(&body).send();

    let b = expect_error(
        post(json!({"action": "add", "username": "u1", "course_id": "c1", "name": "\u{12F90}\u{12F91} Ankh"}))
            .await
            .unwrap(),
        422,
        "invalid_value",
    )
    .await;
    assert_eq!(b["error"]["field"], "name", "{b}");
    let msg = b["error"]["message"].as_str().unwrap();
    // Whole characters with their code points, and the script named (no installed
    // font has Cypro-Minoan, a historic script).
    assert!(
        msg.contains("\u{12F90} (U+12F90, Cypro Minoan), \u{12F91} (U+12F91, Cypro Minoan)")
            && msg.contains("(script: Cypro Minoan)")
            && !msg.contains('\u{FFFD}'),
        "{b}"
    );
    let b = expect_error(
        post(
            json!({"action": "add", "username": "u1", "course_id": "c1", "name": "Ada",
                    "course_name": "Old Uyghur \u{10F70}"}),
        )
        .await
        .unwrap(),
        422,
        "invalid_value",
    )
    .await;
    assert_eq!(b["error"]["field"], "course_name", "{b}");
    let b = expect_error(
        post(
            json!({"action": "add", "username": "u1", "course_id": "c1", "name": "Ada",
                    "template": "fancy"}),
        )
        .await
        .unwrap(),
        422,
        "invalid_value",
    )
    .await;
    assert_eq!(b["error"]["field"], "template", "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("classic"),
        "{b}"
    );
    // Nothing was recorded: the pair can still be added, and in every script.
    let r = post(json!({"action": "add", "username": "u1", "course_id": "c1",
                        "name": "王小明 محمد שרה Ada", "template": "letter"}))
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
    let accepted: Value = r.json().await.unwrap();
    let id = accepted["cert_id"].as_str().unwrap().to_owned();
    let cert = lms
        .wait_final(&id, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cert.state.as_str(), "downloadable", "{cert:?}");
}

/// `demo --dir` (and `bench e2e --dir`) replace an earlier cluster's directory but
/// refuse to clear one that holds anything else.
#[test]
fn demo_refuses_to_clear_a_directory_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "mine").unwrap();
    for args in [&["demo", "--dir"][..], &["bench", "e2e", "--dir"][..]] {
        let out = Command::new(BIN)
            .args(args)
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("not a testamur cluster directory"), "{err}");
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
    }
}

/// A request refused before its body is read (no key: 401) still gets its answer
/// when the client sends the whole body first, as simple HTTP clients do (Python's
/// requests did not: the CC closed with 2 MB unread and the client saw a reset).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_still_gets_its_answer_after_sending_its_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = cluster(|s| s.workservers = 0).await;
    let port: u16 = c.info.cc_url.rsplit(':').next().unwrap().parse().unwrap();
    for (path, size) in [
        ("/v1/certificates/batch", 4_000_000),
        ("/no/such/route", 200_000),
    ] {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let tls =
            std::sync::Arc::new(testamur_common::tls::client_config(&c.info.ca_cert).unwrap());
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut s = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .unwrap();
        let body = format!(r#"{{"requests":[{}]}}"#, " ".repeat(size));
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{path}: the CC stopped reading the body: {e}"));
        s.flush().await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{path}: no answer after the body: {e}"),
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        let want = if path.ends_with("batch") {
            "401"
        } else {
            "404"
        };
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {want}")),
            "{path}: {answer}"
        );
    }
}
