//! Publishing to S3, against a real S3-protocol server (s3s-fs) served by the test
//! on 127.0.0.1, never a mock of the SDK: objects and bytes for add, regen and
//! delete; an S3 outage during a job (retried, completes when S3 is back; ends
//! in `error` with the reason when it outlasts max_attempts); wrong credentials
//! (the workserver refuses to start, naming the problem; credentials that stop
//! working end the job at once with the reason, nothing published).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use testamur::cmd::demo::sample_request;
use testamur::devcluster::S3Target;
use testamur_common::state::CertState;
use testamur_common::wire::CertificateView;

use crate::helpers::{cluster, dump_logs, run_action, TestCluster};

const BUCKET: &str = "certs";
const ACCESS_KEY: &str = "AKIDTESTAMUR";
const SECRET_KEY: &str = "testamur-s3-secret-for-tests";

/// An s3s-fs server over a temporary directory (one sub-directory per bucket).
struct S3Server {
    root: tempfile::TempDir,
    addr: SocketAddr,
    /// The secret key the server accepts for ACCESS_KEY.
    secret: String,
    /// The checksum headers (`x-amz-checksum-*`, `x-amz-sdk-checksum-algorithm`)
    /// of every PUT received, as sent.
    put_checksums: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl S3Server {
    async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut s = Self {
            root,
            addr,
            secret: SECRET_KEY.into(),
            put_checksums: Default::default(),
            task: None,
        };
        s.serve(listener);
        s
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let fs = s3s_fs::FileSystem::new(self.root.path()).unwrap();
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single(
            ACCESS_KEY,
            self.secret.as_str(),
        ));
        let service = b.build();
        let seen = self.put_checksums.clone();
        self.task = Some(tokio::spawn(async move {
            // Connections live in this task's set: stopping the server drops them
            // all, so pooled keep-alive connections die too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (service, seen) = (service.clone(), seen.clone());
                let recording = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        if req.method() == hyper::Method::PUT {
                            seen.lock().unwrap().extend(
                                req.headers()
                                    .keys()
                                    .map(|k| k.as_str().to_owned())
                                    .filter(|k| k.contains("checksum")),
                            );
                        }
                        let service = service.clone();
                        async move { hyper::service::Service::call(&service, req).await }
                    },
                );
                conns.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), recording)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        }));
    }

    /// Stops accepting and drops open connections: S3 is unreachable.
    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Serves again on the same address.
    async fn restart(&mut self) {
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }

    /// Serves again, accepting only `secret` from now on.
    async fn restart_with_secret(&mut self, secret: &str) {
        self.secret = secret.into();
        self.restart().await;
    }

    fn target(&self, secret: &str) -> S3Target {
        S3Target {
            endpoint: format!("http://{}", self.addr),
            bucket: BUCKET.into(),
            access_key: ACCESS_KEY.into(),
            secret_key: secret.into(),
        }
    }

    fn object(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }
}

/// A client of the test server, as an LMS or a verifier with credentials would be.
fn s3_client(s3: &S3Server) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "test",
        ))
        .endpoint_url(format!("http://{}", s3.addr))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

async fn s3_cluster(s3: &S3Server, max_attempts: u32) -> TestCluster {
    let target = s3.target(SECRET_KEY);
    cluster(move |s| {
        s.workservers = 1;
        s.max_attempts = max_attempts;
        s.s3 = Some(target);
    })
    .await
}

fn keys(cert: &CertificateView) -> [String; 3] {
    let du = cert.download_uuid.as_ref().unwrap();
    let vu = cert.verify_uuid.as_ref().unwrap();
    [
        format!("downloads/{du}/Certificate.pdf"),
        format!("cert/{vu}/Certificate.pdf.sig"),
        format!("cert/{vu}/index.html"),
    ]
}

fn exists(s3: &S3Server, key: &str) -> bool {
    s3.object(key).is_file()
}

/// The `Cache-Control` S3 answers for `key` (as a CDN in front of it would see it).
async fn cache_control(s3: &S3Server, key: &str) -> Option<String> {
    s3_client(s3)
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HEAD {key}: {e:?}"))
        .cache_control()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn add_regen_delete_publish_to_s3() {
    let s3 = S3Server::start().await;
    // A cache lifetime other than the default, to see ws.conf's value arrive.
    let target = s3.target(SECRET_KEY);
    let c = cluster(move |s| {
        s.workservers = 1;
        s.s3 = Some(target);
        s.cache_max_age_s = Some(120);
    })
    .await;
    assert!(
        exists(&s3, "keys/signing-key.asc"),
        "the public key is published at start"
    );

    let v1 = run_action(&c, "add").await;
    assert_eq!(v1.state, CertState::Downloadable, "{:?}", v1.error_reason);
    for k in keys(&v1) {
        assert!(exists(&s3, &k), "{k}");
    }
    let pdf = std::fs::read(s3.object(&keys(&v1)[0])).unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    assert_eq!(Some(hex::encode(Sha256::digest(&pdf))), v1.sha256);
    let url = v1.download_url.clone().unwrap();
    assert_eq!(
        url,
        format!("http://{}/{BUCKET}/{}", s3.addr, keys(&v1)[0]),
        "links point into the bucket"
    );

    // Through the S3 API, at the key the download URL names: the same bytes, with
    // the content type and cache headers the workserver set.
    let key = url
        .strip_prefix(&format!("http://{}/{BUCKET}/", s3.addr))
        .unwrap()
        .to_owned();
    let got = s3_client(&s3)
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/pdf"));
    let body = got.body.collect().await.unwrap().into_bytes();
    assert!(body[..] == pdf[..], "the URL's object is the published PDF");
    // Delete and regen remove these files and the key is rotated at its fixed
    // path: nothing is `immutable`, everything is cached for
    // storage.cache_max_age_s only, so a CDN stops showing a revoked
    // certificate's page within that time.
    for k in keys(&v1)
        .iter()
        .map(String::as_str)
        .chain(["keys/signing-key.asc"])
    {
        assert_eq!(
            cache_control(&s3, k).await.as_deref(),
            Some("public, max-age=120"),
            "{k}"
        );
    }

    let v2 = run_action(&c, "regen").await;
    assert_eq!(v2.state, CertState::Downloadable, "{:?}", v2.error_reason);
    for k in keys(&v2) {
        assert!(exists(&s3, &k), "{k}");
        assert_eq!(
            cache_control(&s3, &k).await.as_deref(),
            Some("public, max-age=120"),
            "{k}"
        );
    }
    for k in keys(&v1) {
        assert!(!exists(&s3, &k), "the replaced version is removed: {k}");
    }

    let gone = run_action(&c, "delete").await;
    assert_eq!(gone.state, CertState::Deleted);
    for k in keys(&v2) {
        assert!(!exists(&s3, &k), "{k}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_outage_is_retried_and_an_endless_one_ends_in_error() {
    let mut s3 = S3Server::start().await;
    let c = s3_cluster(&s3, 5).await;
    s3.stop();
    let lms = c.lms().unwrap();
    let id = lms
        .submit(&sample_request(2))
        .await
        .unwrap()
        .unwrap()
        .cert_id;
    // Let the job fail against the dead endpoint at least once, then bring S3 back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cert = lms.certificate(id.as_str()).await.unwrap().unwrap();
    assert_eq!(cert.state, CertState::Generating, "still trying: {cert:?}");
    s3.restart().await;
    let cert = match lms.wait_final(id.as_str(), Duration::from_secs(90)).await {
        Ok(cert) => cert,
        Err(e) => panic!("{e:#}\n{}", dump_logs(&c.dir().join("logs"))),
    };
    assert_eq!(
        cert.state,
        CertState::Downloadable,
        "{:?}",
        cert.error_reason
    );
    assert!(exists(&s3, &keys(&cert)[0]));
    drop(c);

    // Down for longer than max_attempts allows: error, with the reason.
    let mut s3 = S3Server::start().await;
    let c = s3_cluster(&s3, 1).await;
    s3.stop();
    let cert = run_action(&c, "add").await;
    assert_eq!(cert.state, CertState::Error);
    assert_eq!(cert.error_code.as_deref(), Some("storage"));
    let reason = last_error(&c).await;
    assert!(reason.contains("cannot reach S3"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_s3_credentials_stop_the_workserver_with_the_reason() {
    let s3 = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = write_ws_conf(dir.path(), &s3.target("not-the-secret"));
    let out = std::process::Command::new(crate::helpers::BIN)
        .args(["ws", "--config"])
        .arg(&conf)
        .arg("--check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("SignatureDoesNotMatch") || err.contains("InvalidAccessKeyId"),
        "{err}"
    );
    assert!(
        err.contains("credentials"),
        "the hint names the problem: {err}"
    );
    assert!(!exists(&s3, "keys/signing-key.asc"), "nothing published");
}

/// A standalone ws.conf (key, templates) publishing to `target`.
fn write_ws_conf(dir: &Path, target: &S3Target) -> PathBuf {
    write_ws_conf_with(dir, target, "path_style = true\n")
}

/// The same with `storage` lines of one's own (path_style is among them).
fn write_ws_conf_with(dir: &Path, target: &S3Target, storage: &str) -> PathBuf {
    let (secret, _, _) = testamur_ws::sign::generate_key("t <t@example.org>").unwrap();
    let key = dir.join("signing.key");
    std::fs::write(&key, secret).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let conf = dir.join("ws.conf");
    std::fs::write(
        &conf,
        format!(
            r#"name = "ws-s3"
cc_url = "https://localhost:1"
cc_pass = "0123456789abcdef0123456789abcdef"
signing_key = "signing.key"
templates = "{templates}"

[storage]
backend = "s3"
bucket = "{b}"
region = "us-east-1"
endpoint = "{e}"
{storage}access_key_id = "{ak}"
secret_access_key = "{sk}"
base_url = "{e}/{b}/"
"#,
            templates = testamur::devcluster::default_templates().display(),
            b = target.bucket,
            e = target.endpoint,
            ak = target.access_key,
            sk = target.secret_key,
        ),
    )
    .unwrap();
    conf
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_that_stop_working_end_the_job_at_once_with_the_reason() {
    let mut s3 = S3Server::start().await;
    let c = s3_cluster(&s3, 5).await;
    // The bucket's owner rotates the secret: the workserver's no longer signs.
    s3.stop();
    s3.restart_with_secret("rotated-secret").await;
    let cert = run_action(&c, "add").await;
    assert_eq!(cert.state, CertState::Error);
    assert_eq!(cert.attempts, 1, "not retried: another attempt cannot help");
    assert_eq!(cert.error_code.as_deref(), Some("storage"));
    let reason = last_error(&c).await;
    assert!(
        reason.contains("SignatureDoesNotMatch") && reason.contains("credentials"),
        "{reason}"
    );
    let published = walk(&s3.object("downloads"));
    assert!(published.is_empty(), "nothing published: {published:?}");
}

/// The newest failure's reason as operators see it (`recent_errors`).
async fn last_error(c: &crate::helpers::TestCluster) -> String {
    let st = c.operator().unwrap().status().await.unwrap().unwrap();
    st.recent_errors
        .first()
        .map(|e| e.reason.clone())
        .unwrap_or_default()
}

/// Files under `dir`, recursively (none if it does not exist).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                vec![p]
            }
        })
        .collect()
}

/// `ws --check` with `conf`: whether it succeeded, and its stderr.
fn ws_check(conf: &Path) -> (bool, String) {
    let out = std::process::Command::new(crate::helpers::BIN)
        .args(["ws", "--config"])
        .arg(conf)
        .arg("--check")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Several S3-compatible services refuse the SDK's default CRC32 headers: with a
/// custom endpoint the workserver sends checksums only where an operation needs
/// one, unless `checksums = "when_supported"` asks for them.
#[tokio::test(flavor = "multi_thread")]
async fn uploads_to_a_custom_endpoint_carry_checksums_only_when_asked() {
    let s3 = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = write_ws_conf(dir.path(), &s3.target(SECRET_KEY));
    // (The check then fails at the CC, which is not there; the key is published first.)
    let (_, err) = ws_check(&conf);
    assert!(exists(&s3, "keys/signing-key.asc"), "{err}");
    assert_eq!(*s3.put_checksums.lock().unwrap(), Vec::<String>::new());
    let conf = write_ws_conf_with(
        dir.path(),
        &s3.target(SECRET_KEY),
        "path_style = true\nchecksums = \"when_supported\"\n",
    );
    ws_check(&conf);
    let seen = s3.put_checksums.lock().unwrap().clone();
    assert!(
        seen.iter().any(|h| h.starts_with("x-amz-checksum-")),
        "{seen:?}"
    );
}

/// With a custom endpoint and `path_style = false` the SDK addresses
/// `{bucket}.{host}`, which S3-compatible services rarely resolve: the error
/// says so and what to set (`.invalid` never resolves, RFC 2606).
#[test]
fn a_virtual_host_style_custom_endpoint_that_does_not_resolve_says_to_use_path_style() {
    let dir = tempfile::tempdir().unwrap();
    let target = S3Target {
        endpoint: "http://s3.invalid:9000".into(),
        bucket: BUCKET.into(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
    };
    let (ok, err) = ws_check(&write_ws_conf_with(
        dir.path(),
        &target,
        "path_style = false\n",
    ));
    assert!(!ok);
    assert!(
        err.contains("certs.s3.invalid") && err.contains("path_style = true"),
        "{err}"
    );
    let (ok, err) = ws_check(&write_ws_conf_with(
        dir.path(),
        &target,
        "path_style = true\n",
    ));
    assert!(!ok);
    assert!(
        err.contains("cannot reach S3") && !err.contains("path_style"),
        "{err}"
    );
}
