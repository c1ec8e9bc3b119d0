//! JSON bodies of the HTTPS API, exactly as `../shared/API.md` fixes them.
//!
//! Request bodies that come from outside (LMS submissions) are deliberately loose
//! (`Option<String>` everywhere) so that the CC can answer a missing or empty value
//! with a precise 422 naming the field, instead of a generic parse error. Bodies
//! that only testamur itself sends (leases, results) use the parsed id types.

use serde::{Deserialize, Serialize};

use crate::failure::FailCode;
use crate::ids::{CertId, CourseId, JobId, LeaseId, PublicUuid, Username, WsId};
use crate::state::{Action, CertState};

/// `{"error": {"code", "message", "field"?}}`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

// ---------------------------------------------------------------- workservers

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

/// `GET /verify/{verify_uuid}` (public): whether the certificate version published
/// under that uuid still stands, so a verifier can tell a regenerated or deleted
/// certificate from a forged one (which has no record at all: 404).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub status: VerificationStatus,
    /// The learner and course as printed on this version.
    pub name: Option<String>,
    pub course_id: String,
    pub course_name: Option<String>,
    pub org: Option<String>,
    /// `YYYY-MM-DD`, as printed.
    pub issued_date: String,
    /// Where this version was published (its files are removed when it is
    /// revoked, and when it is superseded unless old versions are kept).
    pub download_url: Option<String>,
    pub signature_url: Option<String>,
    pub key_fingerprint: Option<String>,
    /// Extension: SHA-256 of the certificate that signed the PDF itself (PAdES),
    /// when it carries such a signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf_signer_sha256: Option<String>,
    /// Extension: the version's Open Badges 3.0 credential, when one was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_url: Option<String>,
    /// Extension: the credential's entry in its status list, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_status: Option<crate::status_list::CredentialStatus>,
    /// When the status last changed (RFC 3339).
    pub updated_at: String,
    /// Extensions: the uuid asked about, when this version was published, and
    /// when it was superseded or revoked.
    pub verify_uuid: PublicUuid,
    pub published_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// For a superseded version: the verification page of the version that
    /// replaced it, while that one is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_verify_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationStatus {
    /// The current version of a certificate that exists.
    Valid,
    /// Replaced by a regenerated version.
    Superseded,
    /// The certificate was deleted.
    Revoked,
}

/// Where a certificate version is published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedVersion {
    pub download_uuid: PublicUuid,
    pub verify_uuid: PublicUuid,
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

// ---------------------------------------------------------------- certificates

/// `POST /v1/certificates` as sent by an LMS. Loose on purpose (see module docs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub course_id: Option<String>,
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
    #[serde(default)]
    pub issued_date: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
    /// The learner's language, BCP 47 (`ja`, `zh-Hant`): picks the CJK face of a
    /// name in Han characters only.
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub callback_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitResponse {
    pub cert_id: CertId,
    pub state: CertState,
    pub job_id: JobId,
}

/// `POST /v1/certificates/batch`. Each request is parsed on its own, so one
/// malformed request gets its own error without spoiling the rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// At most [`MAX_BATCH`]: parsing stops at the first request past it, so an
    /// oversized body costs no more memory than a full batch.
    #[serde(deserialize_with = "at_most_max_batch")]
    pub requests: Vec<serde_json::Value>,
}

/// The most requests one batch may carry.
pub const MAX_BATCH: usize = 10_000;
/// The parse error of a batch with more than [`MAX_BATCH`] requests.
pub const BATCH_TOO_LARGE: &str = "a batch holds at most 10000 requests; split it";

fn at_most_max_batch<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<serde_json::Value>, D::Error> {
    struct Items;
    impl<'de> serde::de::Visitor<'de> for Items {
        type Value = Vec<serde_json::Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of requests")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(v) = seq.next_element()? {
                if out.len() == MAX_BATCH {
                    return Err(serde::de::Error::custom(BATCH_TOO_LARGE));
                }
                out.push(v);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Items)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchResponse {
    pub results: Vec<BatchResult>,
}

/// One result per request, in order: accepted, or the error a single submit
/// would have answered (with its HTTP status, an extension).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchResult {
    Accepted(SubmitResponse),
    Rejected { error: ErrorDetail, status: u16 },
}

/// `GET /v1/certificates?course_id=&state=&cursor=&limit=`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListResponse {
    pub items: Vec<CertificateView>,
    pub next_cursor: Option<String>,
}

/// The body the CC POSTs to a request's `callback_url` when its certificate
/// reaches downloadable, deleted or error. Field order is fixed, so every
/// delivery of one callback carries the same bytes (and the same signature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackPayload {
    pub cert_id: String,
    pub course_id: String,
    pub username: String,
    pub action: String,
    pub state: String,
    pub download_url: Option<String>,
    pub verify_url: Option<String>,
    /// Extension: the Open Badges 3.0 credential, when one is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_url: Option<String>,
    pub download_uuid: Option<String>,
    pub verify_uuid: Option<String>,
    pub error_reason: Option<String>,
    /// Extension: the failure's category when the state is `error`
    /// ([`crate::failure::FailCode`]).
    #[serde(default)]
    pub error_code: Option<String>,
    /// Extensions: the callback's id (the same on every retry and replay: use it
    /// to ignore duplicates) and when the certificate reached the state.
    pub callback_id: String,
    pub at: String,
}

/// A callback that was never accepted after every attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub callback_id: String,
    pub cert_id: String,
    pub url: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: String,
    pub dead_at: String,
}

/// `GET /v1/callbacks/dead` (operator, extension).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLettersResponse {
    pub count: u64,
    /// The most recent first, at most `limit`.
    pub items: Vec<DeadLetter>,
}

/// `POST /v1/callbacks/replay` (operator): replay the listed dead letters, or
/// all of them when `callback_ids` is absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    pub callback_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayResponse {
    /// How many dead letters went back to the delivery queue.
    pub replayed: u64,
    /// Requested ids that are not dead letters (unknown, or delivered already).
    #[serde(default)]
    pub not_found: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub state: CertState,
    pub at: String,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateView {
    pub cert_id: CertId,
    pub course_id: CourseId,
    pub username: Username,
    pub state: CertState,
    pub download_url: Option<String>,
    pub verify_url: Option<String>,
    pub signature_url: Option<String>,
    /// Extension: the current version's Open Badges 3.0 credential, when one is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_url: Option<String>,
    pub download_uuid: Option<PublicUuid>,
    pub verify_uuid: Option<PublicUuid>,
    pub sha256: Option<String>,
    /// Why the last job failed, for the LMS (no paths, hosts or settings).
    pub error_reason: Option<String>,
    /// Extension: the failure's category ([`crate::failure::FailCode`]).
    #[serde(default)]
    pub error_code: Option<String>,
    pub attempts: u32,
    pub updated_at: String,
    /// Extension: the template the published version was drawn with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Extension: that template's version (a digest of what it draws, the same on
    /// every workserver with the same template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
}

// ---------------------------------------------------------------- status

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusResponse {
    pub cc_name: String,
    pub workservers: Vec<WorkserverStatus>,
    pub queue_depth: u64,
    pub leased: u64,
    pub certificates: std::collections::BTreeMap<String, i64>,
    /// Jobs completed in the last 60 seconds.
    pub throughput_last_minute: u64,
    /// Jobs completed in the last hour.
    #[serde(default)]
    pub throughput_last_hour: u64,
    /// Completions per minute over the last hour, oldest first (60 values, the
    /// last one is the current minute so far). Extension.
    #[serde(default)]
    pub throughput_per_minute: Vec<u64>,
    /// Age in seconds of the oldest job waiting to be leased (0 when none).
    pub oldest_waiting_job_age_s: f64,
    pub recent_errors: Vec<RecentError>,
    pub dead_letters: u64,
    /// Callbacks waiting for (another) delivery attempt.
    #[serde(default)]
    pub callbacks_pending: u64,
    /// Extension: jobs pinned to a template that no live workserver has (in any
    /// version); they wait until a workserver with it registers.
    #[serde(default)]
    pub waiting_for_template: Vec<WaitingForTemplate>,
    /// Extension: the Redis this CC writes to, and what its acknowledgements wait
    /// for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisStatus>,
    /// Extension: the Bitstring Status Lists and how far their publication is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_lists: Vec<crate::status_list::StatusListStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedisStatus {
    /// cc.conf `durability`: `local` or `replica`.
    pub durability: String,
    /// Replicas that must confirm a write (`durability_replicas`; 0 with `local`).
    pub replicas_wanted: u32,
    /// Replicas connected to the primary now (its `INFO replication`).
    pub replicas_connected: u64,
    /// `host:port` of the primary this CC is connected to (the one the Sentinels
    /// name, with `[redis_sentinel]`); absent over a unix socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitingForTemplate {
    pub template: String,
    pub version: String,
    pub jobs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkserverStatus {
    pub id: WsId,
    pub name: String,
    pub version: String,
    pub capacity: u32,
    pub last_heartbeat: String,
    pub alive: bool,
    pub in_flight: u64,
    pub completed: u64,
    pub failed: u64,
    pub draining: bool,
    /// Extension: set when another live process registered under this name while
    /// this one ran (two workservers configured with one name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_conflict: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecentError {
    pub at: String,
    pub cert_id: String,
    pub job_id: String,
    pub reason: String,
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn a_batch_stops_parsing_at_the_first_request_past_the_limit() {
        let full = format!("{{\"requests\": [{}]}}", vec!["{}"; MAX_BATCH].join(","));
        let b: BatchRequest = serde_json::from_str(&full).unwrap();
        assert_eq!(b.requests.len(), MAX_BATCH);
        // One more, then bytes that are not JSON at all: the error is the limit,
        // so parsing stopped before reaching them.
        let over = format!(
            "{{\"requests\": [{}, {{}}, this is not json",
            vec!["{}"; MAX_BATCH].join(",")
        );
        let e = serde_json::from_str::<BatchRequest>(&over)
            .unwrap_err()
            .to_string();
        assert!(e.contains(BATCH_TOO_LARGE), "{e}");
    }
}
