//! JSON bodies of the HTTPS API, exactly as `../shared/API.md` fixes them.
//!
//! Request bodies that come from outside (LMS submissions) are deliberately loose
//! (`Option<String>` everywhere) so that the CC can answer a missing or empty value
//! with a precise 422 naming the field, instead of a generic parse error. Bodies
//! that only testamur itself sends (leases, results) use the parsed id types.

use serde::{Deserialize, Serialize};

use crate::ids::{CertId, CourseId, JobId, PublicUuid, Username, WsId};
use crate::state::CertState;

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

mod workservers;
pub use workservers::*;

// ---------------------------------------------------------------- verification

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
