//! Slowing down guessing: failed credentials (cc_pass at registration, API keys,
//! dashboard sign-ins) are counted per source address (IPv6 by /64) in Redis, so
//! every CC shares the count. Past a limit, *failed* attempts get 429 with
//! Retry-After instead of 401; a correct credential is always served, so one bad
//! client can never lock the right workserver, LMS or operator out. Counting is a
//! single atomic increment (no check-then-increment race).

use std::time::Duration;

use axum::http::StatusCode;

use crate::app::PeerAddr;
use crate::error::ApiError;
use crate::limits::AddrKey;
use crate::store::Store;

/// The window failed attempts are counted in (`limits.failed_credentials_per_minute`
/// of them per source and kind, then 429).
pub const WINDOW: Duration = Duration::from_secs(60);

/// The key a source's failures are counted under.
pub fn source(peer: Option<&PeerAddr>) -> String {
    peer.map(|PeerAddr(a)| AddrKey::of(a.ip()).to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Counts a failed attempt of `kind` from `source`; true when the source is now
/// past `limit` in the window (answer 429).
pub async fn failed(store: &Store, limit: u64, kind: &str, source: &str) -> Result<bool, ApiError> {
    Ok(store.note_failure(kind, source, WINDOW).await? > limit)
}

/// The 429 for a source past the limit; `what` says which credential to check.
pub fn too_many(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many failed attempts from this address; {what}, then retry after {} s",
            WINDOW.as_secs()
        ),
    )
    .retry(WINDOW.as_secs())
}
