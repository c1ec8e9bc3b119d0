//! Carrying out one job: render, sign, verify, publish (add/regen) or remove
//! (delete). Blocking code: the worker runs it on the blocking pool.
//!
//! Invariant: nothing is published before its signature has been verified in
//! process, and the PDF is written before its signature, so a published signature
//! always has its document. A job's files are durable before it returns (and so
//! before it is reported), and before a regen removes the version it replaces. Every write and removal first asks the job's fence
//! ([`crate::fence`]): once its lease may be lost, the job touches nothing more.

use testamur_common::failure::FailCode;
use testamur_common::ids::PublicUuid;
use testamur_common::state::Action;
use testamur_common::wire::{JobCertificate, JobResult, JobTimings};

use crate::fence::{LeaseCheck, Unfenced};
use crate::render::{RenderContext, Renderer};
use crate::sign::SigningKey;
use crate::storage::{self, Batch, Storage, CONTENT_HTML, CONTENT_JSON, CONTENT_PDF, CONTENT_SIG};

/// Why a job failed, phrased for the operator (`reason`) and, when it is about
/// the request, for the LMS (`public`); its category; and whether another attempt
/// may help. The CC decides what the LMS sees ([`testamur_common::failure`]).
#[derive(Debug, Clone)]
pub struct JobError {
    pub reason: String,
    pub code: FailCode,
    pub public: Option<String>,
    pub retryable: bool,
}

impl JobError {
    pub(crate) fn permanent(code: FailCode, stage: &str, e: impl std::fmt::Display) -> Self {
        Self {
            reason: format!("{stage}: {e}"),
            code,
            public: None,
            retryable: false,
        }
    }
    pub(crate) fn transient(code: FailCode, stage: &str, e: impl std::fmt::Display) -> Self {
        Self {
            retryable: true,
            ..Self::permanent(code, stage, e)
        }
    }
    /// A failure on the workserver's side, for which the LMS gets the code's message.
    pub fn internal(reason: String, retryable: bool) -> Self {
        Self {
            reason,
            code: FailCode::Internal,
            public: None,
            retryable,
        }
    }
}

/// A render failure: about the learner's data or the template, so the LMS is
/// told what it is (no paths are in these messages); the operator also learns
/// where.
fn render_failed(workserver: &str, e: crate::render::RenderError) -> JobError {
    use crate::render::RenderError;
    let code = match e {
        RenderError::NoName | RenderError::Unsupported { .. } | RenderError::DoesNotFit { .. } => {
            FailCode::Unprintable
        }
        RenderError::Template(_) => FailCode::Template,
    };
    JobError {
        public: Some(e.to_string()),
        ..JobError::permanent(code, &format!("render on {workserver}"), e)
    }
}

/// Pauses between attempts of one storage call within a job.
const RETRY_PAUSES_MS: [u64; 4] = [200, 500, 1000, 2000];

/// Everything a workserver needs to carry out jobs; shared by all job threads.
pub struct Pipeline {
    pub renderer: Renderer,
    pub key: SigningKey,
    pub storage: std::sync::Arc<dyn Storage>,
    pub workserver: String,
    /// ws.conf `verify_page_url`: the CC's live verification page, named by the
    /// QR code and the printed link (else the storage's page).
    pub verify_page_url: Option<String>,
    /// ws.conf `[credentials]`: who issues each version's Open Badges credential.
    pub credentials: Option<crate::credential::Issuer>,
    /// ws.conf `[pdf_signature]`: who signs the PDFs themselves (PAdES).
    pub pdf_signer: Option<crate::pdf_sign::PdfSigner>,
}

/// A rendered and signed certificate, before publishing.
pub struct Artifacts {
    pub pdf: Vec<u8>,
    pub signature: Vec<u8>,
    pub sha256: String,
    /// Whether the template publishes a verification page.
    pub verification: bool,
    pub noun: String,
    pub render_ms: f64,
    /// Signing and the signature checks (the PDF's own and the OpenPGP one).
    pub sign_ms: f64,
    /// Of which the PDF's own signature and its check.
    pub pdf_sign_ms: f64,
}

impl Pipeline {
    /// What the certificate prints (and its QR code holds) as its verify link:
    /// the CC's live page when ws.conf names it, else the storage's page.
    pub fn printed_verify_url(&self, vu: &testamur_common::ids::PublicUuid) -> String {
        match &self.verify_page_url {
            Some(base) => format!("{base}{vu}"),
            None => self.storage.url(&storage::verify_dir(vu)),
        }
    }

    /// Render and sign (and check the signature). Pure CPU work, no I/O.
    pub fn render_and_sign(
        &self,
        cert: &JobCertificate,
        verify_url: &str,
    ) -> Result<Artifacts, JobError> {
        let started = std::time::Instant::now();
        let signed_at = crate::signed_at::signing_time(cert);
        // The PDF's own signature claims the issued date (midnight UTC), so the
        // PDF depends only on what it prints: a retry, and a republish of the
        // same version (`testamur reconcile --apply`), give the same bytes.
        let signature = self.pdf_signer.as_ref().map(|s| {
            s.slot(
                crate::signed_at::date_parts(&cert.issued_date)
                    .unwrap_or_else(|| crate::signed_at::utc_parts(signed_at)),
            )
        });
        let rendered = self
            .renderer
            .render(
                cert,
                &RenderContext {
                    verify_url,
                    signature,
                },
            )
            .map_err(|e| render_failed(&self.workserver, e))?;
        for note in &rendered.notes {
            // In the job's span too (job and lease ids) when run by the worker.
            tracing::info!(cert_id = %cert.cert_id, template = %rendered.template,
                block = %note.block, field = %note.field, lines = note.lines,
                max_lines = note.max_lines, size = note.size, split_words = note.split_words,
                "text set on more lines than its block asks, to stay at its smallest size or larger");
        }
        let render_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = std::time::Instant::now();
        let mut pdf_sign_ms = 0.0;
        let mut pdf = rendered.pdf;
        if let Some(signer) = &self.pdf_signer {
            let t = std::time::Instant::now();
            // Signed in place (its signature checked with the certificate's key)
            // before anything else signs these bytes.
            signer.sign(&mut pdf).map_err(|e| {
                JobError::transient(
                    FailCode::Signing,
                    &format!("PDF signature on {}", self.workserver),
                    e,
                )
            })?;
            pdf_sign_ms = t.elapsed().as_secs_f64() * 1000.0;
        }
        // One SHA-256 pass over the PDF for its OpenPGP signature, that
        // signature's check and the digest reported.
        let signing = |what: &str, e| {
            JobError::transient(
                FailCode::Signing,
                &format!("{what} on {}", self.workserver),
                e,
            )
        };
        let hashed = crate::sign::Hashed::of(&pdf).map_err(|e| signing("sign", e))?;
        let signature = self
            .key
            .sign_hashed_at(&hashed, signed_at)
            .map_err(|e| signing("sign", e))?;
        self.key
            .verify_hashed(&hashed, &signature)
            .map_err(|e| signing("signature check", e))?;
        let sha256 = hex::encode(hashed.sha256().map_err(|e| signing("sign", e))?);
        Ok(Artifacts {
            pdf,
            signature,
            sha256,
            verification: rendered.verification,
            noun: rendered.noun,
            render_ms,
            sign_ms: started.elapsed().as_secs_f64() * 1000.0,
            pdf_sign_ms,
        })
    }

    /// The Open Badges 3.0 credential of the version published under `vu`
    /// (signed and its proof checked), when ws.conf has `[credentials]`.
    pub fn issue_credential(
        &self,
        cert: &JobCertificate,
        vu: &PublicUuid,
        noun: &str,
    ) -> Result<Option<Vec<u8>>, JobError> {
        let Some(issuer) = &self.credentials else {
            return Ok(None);
        };
        issuer
            .issue(&crate::signed_at::credential_facts(
                cert,
                vu,
                noun,
                &|list| self.storage.url(&storage::status_list_path(list)),
            ))
            .map(Some)
            .map_err(|e| {
                JobError::permanent(
                    FailCode::Signing,
                    &format!("credential on {}", self.workserver),
                    e,
                )
            })
    }

    /// Carries out a job outside the cluster (no lease to lose).
    pub fn run(&self, action: Action, cert: &JobCertificate) -> Result<JobResult, JobError> {
        self.run_fenced(action, cert, &Unfenced)
    }

    /// Carries out a leased job: nothing is written or removed once `fence` says
    /// the lease may be lost.
    pub fn run_fenced(
        &self,
        action: Action,
        cert: &JobCertificate,
        fence: &dyn LeaseCheck,
    ) -> Result<JobResult, JobError> {
        let job = Fenced {
            pipeline: self,
            fence,
        };
        match action {
            Action::Add | Action::Regen => job.publish(cert),
            Action::Delete => job.delete(cert),
        }
    }
}

/// The storage paths of a version's files that its page links.
struct PageFiles<'a> {
    pdf: &'a str,
    sig: &'a str,
    credential: Option<&'a str>,
}

/// One job's storage work, every call behind its fence.
pub(crate) struct Fenced<'a> {
    pub(crate) pipeline: &'a Pipeline,
    pub(crate) fence: &'a dyn LeaseCheck,
}

impl std::ops::Deref for Fenced<'_> {
    type Target = Pipeline;
    fn deref(&self) -> &Pipeline {
        self.pipeline
    }
}

impl Fenced<'_> {
    fn check(&self, stage: &str) -> Result<(), JobError> {
        self.fence.still_held().map_err(|why| JobError {
            reason: format!(
                "{stage} on {}: stopped before touching storage: {why}",
                self.workserver
            ),
            code: FailCode::Interrupted,
            public: None,
            retryable: true,
        })
    }

    fn publish(&self, cert: &JobCertificate) -> Result<JobResult, JobError> {
        let (Some(du), Some(vu)) = (&cert.download_uuid, &cert.verify_uuid) else {
            return Err(JobError::permanent(
                FailCode::Internal,
                "job",
                "the CC sent no download/verify uuid for an add or regen",
            ));
        };
        // The static page in storage (what the CC records as the version's
        // verify_url) and the page the printed link and QR code name.
        let verify_url = self.storage.url(&storage::verify_dir(vu));
        let mut art = self.render_and_sign(cert, &self.printed_verify_url(vu))?;
        // The credential lives under cert/ beside the signature and the page.
        let issued_at = std::time::Instant::now();
        let credential = match art.verification {
            true => self.issue_credential(cert, vu, &art.noun)?,
            false => None,
        };
        art.sign_ms += issued_at.elapsed().as_secs_f64() * 1000.0;
        let cred_rel = credential.as_ref().map(|_| storage::credential_path(vu));
        let stored_at = std::time::Instant::now();
        // With verification off nothing goes under cert/: the signature sits
        // beside the PDF.
        let pdf_rel = storage::pdf_path(du);
        let sig_rel = match art.verification {
            true => storage::sig_path(vu),
            false => storage::pdf_sig_path(du),
        };
        // Written one by one (the PDF first), durable together before the job
        // goes on (with other jobs' files, on a directory).
        let mut batch = self.storage.batch();
        let written = (|| {
            self.store(batch.as_mut(), &pdf_rel, &art.pdf, CONTENT_PDF)?;
            self.store(batch.as_mut(), &sig_rel, &art.signature, CONTENT_SIG)?;
            if let (Some(rel), Some(bytes)) = (&cred_rel, &credential) {
                self.store(batch.as_mut(), rel, bytes, CONTENT_JSON)?;
            }
            let rels = PageFiles {
                pdf: &pdf_rel,
                sig: &sig_rel,
                credential: cred_rel.as_deref(),
            };
            self.store_page(batch.as_mut(), cert, &art, vu, &rels)
        })();
        let stored = written.and_then(|()| self.commit(batch));
        if let Err(e) = stored {
            // Not after the lease is lost: the next attempt writes these same paths.
            if !e.retryable && self.fence.still_held().is_ok() {
                // No attempt will write these paths again (a new job gets new
                // uuids): take back what this one wrote rather than leave an
                // unlisted PDF behind. Best effort; the failure is what counts.
                self.discard(du, vu);
            }
            return Err(e);
        }
        // Only once the new version is in place: the version it replaces.
        if let Some(old) = &cert.previous {
            if !self.storage.keeps_old_versions()
                && (&old.download_uuid, &old.verify_uuid) != (du, vu)
            {
                self.remove_version(Some(&old.download_uuid), Some(&old.verify_uuid))?;
            }
        }
        Ok(JobResult {
            download_uuid: Some(du.clone()),
            verify_uuid: Some(vu.clone()),
            download_url: Some(self.storage.url(&pdf_rel)),
            verify_url: art.verification.then_some(verify_url),
            signature_url: Some(self.storage.url(&sig_rel)),
            credential_url: cred_rel.map(|rel| self.storage.url(&rel)),
            sha256: Some(art.sha256),
            key_fingerprint: Some(self.key.fingerprint()),
            pdf_signer_sha256: self.pdf_signer.as_ref().map(|s| s.cert_sha256_hex()),
            timings: Some(JobTimings {
                render_ms: art.render_ms,
                sign_ms: art.sign_ms,
                store_ms: stored_at.elapsed().as_secs_f64() * 1000.0,
            }),
        })
    }

    /// The public verification page of a version, when its template has one.
    fn store_page(
        &self,
        batch: &mut dyn Batch,
        cert: &JobCertificate,
        art: &Artifacts,
        vu: &PublicUuid,
        files: &PageFiles,
    ) -> Result<(), JobError> {
        if art.verification {
            let date = crate::render::fields::long_date(&cert.issued_date)
                .unwrap_or_else(|| cert.issued_date.clone());
            let page = crate::verify_page::render(
                cert,
                &crate::verify_page::PageInfo {
                    noun: &art.noun,
                    date: &date,
                    fingerprint: &self.key.fingerprint(),
                    pdf_url: &self.storage.url(files.pdf),
                    sig_url: &self.storage.url(files.sig),
                    key_url: &self.storage.url(storage::PUBLIC_KEY_PATH),
                    credential_url: files.credential.map(|rel| self.storage.url(rel)).as_deref(),
                },
            );
            self.store(
                batch,
                &storage::verify_page_path(vu),
                page.as_bytes(),
                CONTENT_HTML,
            )?;
        }
        Ok(())
    }

    /// Writes one file of `batch`, retrying while that may help.
    pub(crate) fn store(
        &self,
        batch: &mut dyn Batch,
        rel: &str,
        bytes: &[u8],
        content_type: &str,
    ) -> Result<(), JobError> {
        self.with_retries("store", || batch.put(rel, bytes, content_type))
    }

    /// Makes `batch`'s files durable. Not retried: after a failed fsync what is
    /// on disk is unknown, so the job fails (retryable) and its next attempt
    /// writes the files again.
    pub(crate) fn commit(&self, batch: Box<dyn Batch + '_>) -> Result<(), JobError> {
        batch.commit().map_err(|e| {
            JobError::transient(
                FailCode::Storage,
                &format!("store on {}", self.workserver),
                e,
            )
        })
    }

    /// A storage call, retried as [`Pipeline::retrying`] does, each try behind the fence.
    fn with_retries(
        &self,
        stage: &str,
        mut call: impl FnMut() -> Result<(), storage::StorageError>,
    ) -> Result<(), JobError> {
        let mut fenced_err = None;
        let r = self.pipeline.retrying(stage, || match self.check(stage) {
            Ok(()) => call(),
            Err(e) => {
                fenced_err = Some(e);
                Err(storage::StorageError {
                    op: "fence",
                    target: String::new(),
                    detail: String::new(),
                    retryable: false,
                })
            }
        });
        match fenced_err {
            Some(e) => Err(e),
            None => r,
        }
    }

    /// Removes what a failed attempt may have written under its own uuids, one
    /// try per file, errors only logged.
    fn discard(&self, du: &PublicUuid, vu: &PublicUuid) {
        for rel in [
            storage::verify_page_path(vu),
            storage::credential_path(vu),
            storage::sig_path(vu),
            storage::pdf_sig_path(du),
            storage::pdf_path(du),
        ] {
            if self.fence.still_held().is_err() {
                return;
            }
            if let Err(e) = self.storage.remove(&rel) {
                tracing::warn!(error = %e, path = %rel, "could not remove a failed attempt's file");
            }
        }
    }

    /// Removes a published version's files (whichever of them exist).
    fn remove_version(
        &self,
        download: Option<&PublicUuid>,
        verify: Option<&PublicUuid>,
    ) -> Result<(), JobError> {
        let remove = |rel: &str| self.with_retries("delete", || self.storage.remove(rel));
        // The page and signature go first: a PDF is never left without them...
        // and nothing points at a removed PDF.
        if let Some(vu) = verify {
            remove(&storage::verify_page_path(vu))?;
            remove(&storage::credential_path(vu))?;
            remove(&storage::sig_path(vu))?;
        }
        if let Some(du) = download {
            remove(&storage::pdf_sig_path(du))?;
            remove(&storage::pdf_path(du))?;
        }
        Ok(())
    }

    fn delete(&self, cert: &JobCertificate) -> Result<JobResult, JobError> {
        self.remove_version(cert.download_uuid.as_ref(), cert.verify_uuid.as_ref())?;
        Ok(JobResult::default())
    }
}

impl Pipeline {
    /// A storage call, retried with backoff (0.2, 0.5, 1, 2 s; the worker keeps
    /// extending the lease meanwhile) while its errors may pass; then the job
    /// fails, retryable or not as the last error says.
    fn retrying(
        &self,
        stage: &str,
        mut call: impl FnMut() -> Result<(), storage::StorageError>,
    ) -> Result<(), JobError> {
        let stage = format!("{stage} on {}", self.workserver);
        for pause_ms in RETRY_PAUSES_MS {
            match call() {
                Ok(()) => return Ok(()),
                Err(e) if e.retryable => {
                    tracing::warn!(error = %e, retry_in_ms = pause_ms, "storage call failed; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(pause_ms));
                }
                Err(e) => return Err(JobError::permanent(FailCode::Storage, &stage, e)),
            }
        }
        call().map_err(|e| match e.retryable {
            true => JobError::transient(FailCode::Storage, &stage, e),
            false => JobError::permanent(FailCode::Storage, &stage, e),
        })
    }
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
