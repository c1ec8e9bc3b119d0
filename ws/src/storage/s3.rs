//! The S3 backend (AWS or any S3-compatible service) with aws-sdk-s3. Each put is
//! one `PutObject` (atomic in S3: readers see the old object or the new one),
//! with content type, `Cache-Control` ([`super::cache_control`]: a short lifetime,
//! never `immutable`, since every file can be removed or replaced) and optionally
//! the `public-read` ACL; a remove is one `DeleteObject` (idempotent in S3).
//!
//! Jobs run on the blocking pool; the calls wait there on the SDK's futures,
//! which run on the workserver's tokio runtime.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectCannedAcl;
use testamur_common::config::{Checksums, S3Config, StorageConfig};

use super::{Storage, StorageError};

pub struct S3Storage {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    public_read: bool,
    /// Said with connection failures: a custom endpoint addressed virtual-host
    /// style (`{bucket}.{host}`), which S3-compatible services rarely resolve.
    vhost_hint: Option<String>,
    base_url: String,
    keep_old_versions: bool,
    /// The `Cache-Control` header of every object.
    cache_control: String,
    handle: tokio::runtime::Handle,
}

impl S3Storage {
    pub async fn new(s3: &S3Config, cfg: &StorageConfig) -> Result<Self, StorageError> {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(s3.region.clone()));
        if let Some((id, secret)) = &s3.credentials {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.expose().to_owned(),
                None,
                None,
                "ws.conf",
            ));
        }
        let shared = loader.load().await;
        // Retries are the job's (with backoff, while the lease is extended), not
        // the SDK's as well; a dead endpoint fails fast, a slow upload may take a
        // minute.
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(60))
            .build();
        let (put_sums, get_sums) = match s3.checksums {
            Checksums::WhenRequired => (
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            ),
            Checksums::WhenSupported => (
                aws_sdk_s3::config::RequestChecksumCalculation::WhenSupported,
                aws_sdk_s3::config::ResponseChecksumValidation::WhenSupported,
            ),
        };
        let mut b = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(s3.path_style)
            .request_checksum_calculation(put_sums)
            .response_checksum_validation(get_sums)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(e) = &s3.endpoint {
            b = b.endpoint_url(e.clone());
        }
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket: s3.bucket.clone(),
            prefix: s3.key_prefix.clone(),
            public_read: s3.public_read,
            vhost_hint: match (&s3.endpoint, s3.path_style) {
                (Some(e), false) => Some(format!(
                    " (storage.path_style = false: the request went to {}.{}; S3-compatible \
                     services usually need storage.path_style = true in ws.conf)",
                    s3.bucket,
                    e.split("://").nth(1).unwrap_or(e).trim_end_matches('/')
                )),
                _ => None,
            },
            base_url: cfg.base_url.clone(),
            keep_old_versions: cfg.keep_old_versions,
            cache_control: super::cache_control(cfg.cache_max_age),
            handle: tokio::runtime::Handle::current(),
        })
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    fn classify<E>(&self, op: &'static str, rel: &str, e: SdkError<E, HttpResponse>) -> StorageError
    where
        E: ProvideErrorMetadata + std::fmt::Debug,
    {
        let target = format!("s3://{}/{}", self.bucket, self.key(rel));
        let (retryable, detail) = match &e {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("unknown").to_owned();
                let msg = se.err().message().unwrap_or("").to_owned();
                let status = se.raw().status().as_u16();
                // 5xx, throttling and timeouts may pass; everything else (no such
                // bucket, access denied, bad signature, bad key) will not.
                let retryable = status >= 500
                    || matches!(
                        code.as_str(),
                        "SlowDown" | "RequestTimeout" | "Throttling" | "InternalError"
                    );
                let hint = match code.as_str() {
                    "NoSuchBucket" => " (check storage.bucket in ws.conf)",
                    "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" => {
                        " (check the S3 credentials: storage.access_key_id and storage.secret_access_key in ws.conf, or the AWS environment)"
                    }
                    _ => "",
                };
                (retryable, format!("{code}: {msg}{hint}"))
            }
            SdkError::TimeoutError(_) => (true, "timed out".to_owned()),
            SdkError::DispatchFailure(d) => (
                true,
                format!(
                    "cannot reach S3{}: {d:?}{}",
                    if d.is_io() {
                        " (connection failed)"
                    } else {
                        ""
                    },
                    self.vhost_hint.as_deref().unwrap_or("")
                ),
            ),
            SdkError::ResponseError(r) => (true, format!("bad response: {r:?}")),
            SdkError::ConstructionFailure(c) => (false, format!("cannot build the request: {c:?}")),
            other => (true, format!("{other:?}")),
        };
        StorageError {
            op,
            target,
            detail,
            retryable,
        }
    }
}

impl Storage for S3Storage {
    fn exists(&self, rel: &str) -> Result<bool, StorageError> {
        let req = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(rel));
        match self.handle.block_on(req.send()) {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(false),
            Err(e) => Err(self.classify("look up", rel, e)),
        }
    }

    fn keeps_old_versions(&self) -> bool {
        self.keep_old_versions
    }

    fn url(&self, rel: &str) -> String {
        format!("{}{}", self.base_url, rel)
    }

    fn put(&self, rel: &str, bytes: &[u8], content_type: &str) -> Result<(), StorageError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(rel))
            .content_type(content_type)
            .cache_control(&self.cache_control)
            .body(ByteStream::from(bytes.to_vec()));
        if self.public_read {
            req = req.acl(ObjectCannedAcl::PublicRead);
        }
        self.handle
            .block_on(req.send())
            .map(|_| ())
            .map_err(|e| self.classify("upload", rel, e))
    }

    fn remove(&self, rel: &str) -> Result<(), StorageError> {
        let req = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(rel));
        self.handle
            .block_on(req.send())
            .map(|_| ())
            .map_err(|e| self.classify("remove", rel, e))
    }
}
