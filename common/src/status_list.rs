//! Bitstring Status Lists (W3C Recommendation, 2025) on the wire: where a
//! version's credential has its status entry, and a status list's publication as
//! the CC leases it to a workserver. Each list has [`STATUS_LIST_SIZE`] entries,
//! the spec's minimum (16 KiB), so that a list gives herd privacy; one bit per
//! entry (purpose `revocation`), bit 0 the most significant bit of byte 0, as the
//! spec (and Redis's SETBIT) number them. The CC gives the indexes out
//! (cc/src/store/lib.lua `status_alloc`), never one twice.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::ids::{JobId, LeaseId};

/// Entries per list.
pub const STATUS_LIST_SIZE: u32 = 131_072;

/// A credential's place in the status lists (extension of the leased job's
/// `certificate`: `"status": {"list": 0, "index": 94567}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusEntry {
    pub list: u32,
    pub index: u32,
}

impl StatusEntry {
    /// From the CC's global index (`list * STATUS_LIST_SIZE + index`); None past
    /// the lists a u32 numbers.
    pub fn from_global(g: u64) -> Option<Self> {
        let list = u32::try_from(g / STATUS_LIST_SIZE as u64).ok()?;
        Some(Self {
            list,
            index: (g % STATUS_LIST_SIZE as u64) as u32,
        })
    }
}

/// A status list to publish (extension: `LeaseResponse::status_lists`, leased
/// only to workservers that registered `capabilities.status_lists`). Extended,
/// completed (with an empty result) and failed like any lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeasedStatusList {
    pub job_id: JobId,
    pub lease_id: LeaseId,
    pub lease_expires_at: String,
    pub attempt: u32,
    pub list: u32,
    /// How many changes the list had when leased (grows with every change).
    pub version: u64,
    /// The revoked bits: base64 of the list's first bytes (the rest are 0).
    pub bits: String,
}

/// A published credential's status entry as `GET /verify/{uuid}` shows it
/// (extension): where its list is, its index, whether its bit is set (it is set
/// in the step that revokes or supersedes the version), and when the list was
/// last published (what a verifier fetching it sees: from then on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialStatus {
    pub status_list_url: String,
    pub status_list_index: u32,
    pub revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_published_at: Option<String>,
}

/// One status list in `GET /v1/status` (extension): how many changes it had, which
/// of them is published and when, and whether a publication is queued or running.
/// `published < changes` for long means revocations are not out yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusListStatus {
    pub list: u32,
    pub changes: u64,
    pub published: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    pub publishing: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BitsError {
    #[error("the status list's bits are not base64: {0}")]
    Base64(String),
    #[error("the status list's bits are {0} bytes, more than a list holds")]
    TooLong(usize),
}

impl LeasedStatusList {
    /// The whole list, `STATUS_LIST_SIZE / 8` bytes.
    pub fn bitmap(&self) -> Result<Vec<u8>, BitsError> {
        let mut b = base64::engine::general_purpose::STANDARD
            .decode(&self.bits)
            .map_err(|e| BitsError::Base64(e.to_string()))?;
        let full = (STATUS_LIST_SIZE / 8) as usize;
        if b.len() > full {
            return Err(BitsError::TooLong(b.len()));
        }
        b.resize(full, 0);
        Ok(b)
    }

    /// The `bits` of a list's stored bytes.
    pub fn encode_bits(raw: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(raw)
    }
}

/// Whether entry `index` is set in a whole list's bytes.
pub fn bit(bitmap: &[u8], index: u32) -> Option<bool> {
    let byte = bitmap.get((index / 8) as usize)?;
    Some(byte & (0x80 >> (index % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_indexes_split_into_list_and_position() {
        assert_eq!(
            StatusEntry::from_global(5),
            Some(StatusEntry { list: 0, index: 5 })
        );
        assert_eq!(
            StatusEntry::from_global(2 * STATUS_LIST_SIZE as u64 + 7),
            Some(StatusEntry { list: 2, index: 7 })
        );
    }

    #[test]
    fn short_bits_are_padded_and_bit_zero_is_the_first_bytes_top_bit() {
        let l = LeasedStatusList {
            job_id: JobId::generate(),
            lease_id: LeaseId::generate(&JobId::generate()),
            lease_expires_at: String::new(),
            attempt: 1,
            list: 0,
            version: 1,
            bits: LeasedStatusList::encode_bits(&[0x80, 0x01]),
        };
        let b = l.bitmap().unwrap();
        assert_eq!(b.len(), 16_384);
        assert_eq!(bit(&b, 0), Some(true));
        assert_eq!(bit(&b, 1), Some(false));
        assert_eq!(bit(&b, 15), Some(true));
        assert_eq!(bit(&b, STATUS_LIST_SIZE - 1), Some(false));
        assert_eq!(bit(&b, STATUS_LIST_SIZE), None);
        let long = LeasedStatusList {
            bits: LeasedStatusList::encode_bits(&vec![0; 16_385]),
            ..l
        };
        assert_eq!(long.bitmap(), Err(BitsError::TooLong(16_385)));
    }
}
