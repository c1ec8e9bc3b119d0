//! The workserver side of the API: registration, heartbeats, leases, their
//! extension and completion (one or several per call, leasing the next), failure.

use serde::{Deserialize, Serialize};

use crate::failure::FailCode;
use crate::ids::{CertId, CourseId, JobId, LeaseId, PublicUuid, Username, WsId};
use crate::state::{Action, CertState};

use super::{ErrorDetail, PublishedVersion};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub name: String,
    pub cc_pass: String,
    #[serde(deserialize_with = "crate::json_int::u32")]
    pub capacity: u32,
    pub version: String,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    /// Extension: random per workserver process, so the CC can tell a restarted
    /// workserver (its jobs' attempts count) from the same process registering
    /// again, and two live processes configured with one name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default)]
    pub scripts: Vec<String>,
    #[serde(default)]
    pub storage: Vec<String>,
    /// Extension: the workserver's template catalogue (see docs/API.md). The CC
    /// checks submissions against the catalogue of the workservers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<crate::catalog::Catalog>,
    /// Extension: the workserver publishes Bitstring Status Lists (it issues
    /// credentials): it may be leased their publications (`LeaseResponse::status_lists`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub status_lists: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub ws_id: WsId,
    pub token: String,
    pub heartbeat_interval_s: u64,
    pub lease_ttl_s: u64,
}

/// Extension: the optional body of a heartbeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The job ids whose leases this workserver holds now. A lease the CC gave it
    /// that it does not list (the answer never arrived) goes back to the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<crate::ids::JobId>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub drain: bool,
}

/// `POST /v1/workservers/{ws_id}/drain` (operator).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainResponse {
    pub ws_id: WsId,
    pub name: String,
    pub draining: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    #[serde(deserialize_with = "crate::json_int::u32")]
    pub max_jobs: u32,
    #[serde(default, deserialize_with = "crate::json_int::u64")]
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub jobs: Vec<LeasedJob>,
    /// Extension: status lists to publish (workservers with
    /// `capabilities.status_lists` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_lists: Vec<crate::status_list::LeasedStatusList>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeasedJob {
    pub job_id: JobId,
    pub lease_id: LeaseId,
    pub lease_expires_at: String,
    pub attempt: u32,
    pub action: Action,
    pub certificate: JobCertificate,
}

/// What a workserver needs to know to carry out a job. The public uuids are
/// chosen by the CC when the job is created, so every attempt of the same job
/// publishes under the same names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobCertificate {
    pub cert_id: CertId,
    pub course_id: CourseId,
    pub username: Username,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub course_name: Option<String>,
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub grade: Option<String>,
    #[serde(default)]
    pub designation: Option<String>,
    /// `YYYY-MM-DD` (the CC fills in the submission date when the LMS gave none).
    pub issued_date: String,
    #[serde(default)]
    pub template: Option<String>,
    /// The learner's language (BCP 47), when the request gave one: picks the CJK
    /// face of a name in Han characters only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// For add/regen: the uuids to publish under. For delete: the ones to remove
    /// (absent when the certificate was never published).
    #[serde(default)]
    pub download_uuid: Option<PublicUuid>,
    #[serde(default)]
    pub verify_uuid: Option<PublicUuid>,
    /// For regen: the version being replaced (absent when there was none), whose
    /// files the workserver removes once the new version is published (unless it
    /// keeps old versions). An extension of the shared API (docs/API.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PublishedVersion>,
    /// When the CC accepted the request that made this job (RFC 3339), the same
    /// for every attempt: the time its signatures carry, so a retried job
    /// publishes the same bytes. An extension (docs/API.md); absent for jobs
    /// queued by earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    /// For add/regen: the new version's status list entry, the same for every
    /// attempt (extension, docs/API.md); absent for jobs queued by earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::status_list::StatusEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtendResponse {
    pub lease_expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub result: JobResult,
}

/// The most completions one `POST /v1/leases/complete` may carry.
pub const MAX_COMPLETIONS: usize = 256;

/// `POST /v1/leases/complete` (extension): the results of several leases in one
/// call, each checked and recorded as `POST /v1/leases/{lease_id}/complete` would,
/// and answered on its own. With `lease`, the same call then leases up to
/// `lease.max_jobs` more jobs at once (no wait), as `POST /v1/leases` would: a
/// busy workserver's completions carry its next work back, without a lease call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteManyRequest {
    pub completions: Vec<Completion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseMore>,
}

/// The leases a completion call asks for (`POST /v1/leases/complete`'s `lease`):
/// taken after its completions are recorded, without waiting for work.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseMore {
    #[serde(deserialize_with = "crate::json_int::u32")]
    pub max_jobs: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    /// Read as text so that a malformed id is refused naming its place.
    pub lease_id: String,
    pub result: JobResult,
}

/// One answer per completion, in the request's order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteManyResponse {
    pub results: Vec<CompletionOutcome>,
    /// The jobs leased after the completions (present when the call asked, with
    /// `lease`; empty when none was queued or leasing failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased: Option<LeaseResponse>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionOutcome {
    pub lease_id: String,
    pub status: CompletionStatus,
    /// The certificate's new state (`ok` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CertState>,
    /// What the single endpoint would have answered (not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// How one completion of a batch went: recorded (`ok`); the lease is not the
/// caller's any more, the result is discarded (`lost`, the single endpoint's
/// 409); the result names other uuids than the job's (`mismatch`, its 422).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionStatus {
    Ok,
    Lost,
    Mismatch,
}

/// What a workserver reports for a finished job. For a delete every field is
/// absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    #[serde(default)]
    pub download_uuid: Option<PublicUuid>,
    #[serde(default)]
    pub verify_uuid: Option<PublicUuid>,
    #[serde(default)]
    pub download_url: Option<String>,
    #[serde(default)]
    pub verify_url: Option<String>,
    #[serde(default)]
    pub signature_url: Option<String>,
    /// The version's Open Badges 3.0 credential (extension; ws.conf `[credentials]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_url: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    /// Fingerprint of the key that signed (extension; shown by `GET /verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// SHA-256 (hex) of the certificate whose signature the PDF itself carries
    /// (PAdES; extension, ws.conf `[pdf_signature]`; shown by `GET /verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf_signer_sha256: Option<String>,
    /// Where the workserver's time went (extension; the CC's `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<JobTimings>,
}

/// Milliseconds a workserver spent on one job, by stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTimings {
    pub render_ms: f64,
    /// Signing and the in-process signature check.
    pub sign_ms: f64,
    /// Publishing (and removing a replaced version's files).
    pub store_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// What failed, for the operator: stage, workserver, paths, hints.
    pub error_reason: String,
    pub retryable: bool,
    /// Extension: the failure's category (absent: `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<FailCode>,
    /// Extension: the reason in words for the LMS, shown only for the codes about
    /// the request (`unprintable`, `template`); see [`crate::failure`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_reason: Option<String>,
}
