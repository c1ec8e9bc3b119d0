//! Publishing files: where each file of a certificate goes, and the [`Storage`]
//! interface with its two backends, a local directory served by any web server
//! ([`disk`]) and an S3 bucket ([`s3`]). The object layout (as in the old agent) is
//! `testamur_common::layout`.
//!
//! Every write is whole (a reader never sees half a file) and idempotent: a
//! retried job overwrites what a failed attempt left with the same bytes.
//! Errors say whether another attempt may help (`retryable`): a missing bucket,
//! bad credentials or a directory without permission will not get better by
//! itself; a timeout or a 5xx may.

pub mod disk;
mod group_commit;
pub mod s3;

use testamur_common::config::{StorageBackend, StorageConfig};

pub use self::disk::DiskStorage;
pub use self::s3::S3Storage;

#[derive(Debug, thiserror::Error)]
#[error("storage {op} {target}: {detail}")]
pub struct StorageError {
    pub op: &'static str,
    pub target: String,
    pub detail: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
}

/// Where certificates are published. Blocking calls: jobs run on the blocking
/// pool (the S3 backend waits on the async SDK there).
pub trait Storage: Send + Sync {
    /// Whether a file is published at `rel` (`testamur reconcile`).
    fn exists(&self, rel: &str) -> Result<bool, StorageError>;
    /// Writes `bytes` at `rel` (a path from the layout functions below), whole.
    fn put(&self, rel: &str, bytes: &[u8], content_type: &str) -> Result<(), StorageError>;
    /// Removes `rel`; removing what is not there is not an error.
    fn remove(&self, rel: &str) -> Result<(), StorageError>;
    /// The public URL of `rel`.
    fn url(&self, rel: &str) -> String;
    /// Whether a regenerated certificate's previous files stay published.
    fn keeps_old_versions(&self) -> bool;
    /// Writes made durable together: a job's files, fsynced with other jobs'
    /// (the directory backend). By default each put is durable by itself.
    fn batch(&self) -> Box<dyn Batch + '_> {
        Box::new(EachDurable(self))
    }
}

/// Several writes: each `put` is whole and visible at once, as [`Storage::put`];
/// all are durable once `commit` returned `Ok` (and maybe some before).
pub trait Batch {
    fn put(&mut self, rel: &str, bytes: &[u8], content_type: &str) -> Result<(), StorageError>;
    fn commit(self: Box<Self>) -> Result<(), StorageError>;
}

/// The batch of a backend whose every put is durable when it returns (S3).
struct EachDurable<'a, S: Storage + ?Sized>(&'a S);

impl<S: Storage + ?Sized> Batch for EachDurable<'_, S> {
    fn put(&mut self, rel: &str, bytes: &[u8], content_type: &str) -> Result<(), StorageError> {
        self.0.put(rel, bytes, content_type)
    }
    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        Ok(())
    }
}

/// The backend `cfg` asks for (S3: its SDK runs on the calling tokio runtime).
pub async fn open(cfg: &StorageConfig) -> Result<Box<dyn Storage>, StorageError> {
    Ok(match &cfg.backend {
        StorageBackend::Dir { dir } => Box::new(DiskStorage::new(dir, cfg)?),
        StorageBackend::S3(s3) => Box::new(S3Storage::new(s3, cfg).await?),
    })
}

pub const CONTENT_PDF: &str = "application/pdf";
pub const CONTENT_SIG: &str = "application/pgp-signature";
pub const CONTENT_HTML: &str = "text/html; charset=utf-8";
pub const CONTENT_KEY: &str = "application/pgp-keys";
/// Credentials and DID documents (JSON-LD is JSON; wallets fetch it as such).
pub const CONTENT_JSON: &str = "application/json";

// The object layout is shared with the CC, which checks reported URLs against it.
pub use testamur_common::layout::{
    credential_path, pdf_path, pdf_sig_path, sig_path, status_list_path, verify_dir,
    verify_page_path, PUBLIC_KEY_PATH,
};

/// The `Cache-Control` of every published file. Nothing is `immutable`: a delete
/// removes a certificate's files, a regen removes the replaced version's (unless
/// `keep_old_versions`), the verification page must stop being served once it is
/// gone, and the public key changes when the key is rotated. So every file may
/// be cached only for `storage.cache_max_age_s` (ws.conf).
pub fn cache_control(max_age: std::time::Duration) -> String {
    format!("public, max-age={}", max_age.as_secs())
}
