//! Why a job failed, in two versions: the operator's (which workserver, which
//! stage, storage paths and config hints: logs, `recent_errors` of `/v1/status`,
//! the dashboard) and the LMS's (`error_code` and `error_reason` of a certificate,
//! its history and its callback), which says what happened without naming paths,
//! hosts or settings. The LMS's reason is the fixed message of its code, except for
//! the codes about the request itself (the learner's data or the requested
//! template), where the workserver's own words for the LMS are shown.

use serde::{Deserialize, Serialize};

/// Longest LMS-visible reason a workserver may give (longer ones are cut).
pub const MAX_PUBLIC_REASON: usize = 500;

/// The stable category of a failure, as LMSs see it (`error_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailCode {
    /// The learner's data cannot be drawn (no name, characters no font has).
    Unprintable,
    /// The requested or configured template cannot be used.
    Template,
    /// Signing or checking the signature failed.
    Signing,
    /// Writing or removing the published files failed.
    Storage,
    /// The workserver stopped the job because its lease may be lost.
    Interrupted,
    /// The workserver had no room for the job and handed it back.
    Busy,
    /// The workserver holding the job died, restarted or lost contact.
    WorkserverLost,
    /// A bug or an unexpected condition on the workserver.
    Internal,
    /// A workserver that did not say (an older version), or a code this CC does
    /// not know.
    #[serde(other)]
    Unknown,
}

impl FailCode {
    pub const ALL: [FailCode; 9] = [
        FailCode::Unprintable,
        FailCode::Template,
        FailCode::Signing,
        FailCode::Storage,
        FailCode::Interrupted,
        FailCode::Busy,
        FailCode::WorkserverLost,
        FailCode::Internal,
        FailCode::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailCode::Unprintable => "unprintable",
            FailCode::Template => "template",
            FailCode::Signing => "signing",
            FailCode::Storage => "storage",
            FailCode::Interrupted => "interrupted",
            FailCode::Busy => "busy",
            FailCode::WorkserverLost => "workserver_lost",
            FailCode::Internal => "internal",
            FailCode::Unknown => "unknown",
        }
    }

    /// Whether the workserver's reason for the LMS is shown (it is about the
    /// request: the LMS can fix it); for every other code the LMS gets
    /// [`FailCode::message`] only.
    pub fn shows_workserver_reason(self) -> bool {
        matches!(self, FailCode::Unprintable | FailCode::Template)
    }

    /// What the LMS is told when there are no better words.
    pub fn message(self) -> &'static str {
        match self {
            FailCode::Unprintable => "the certificate cannot be drawn from the learner's data",
            FailCode::Template => "the certificate's template cannot be used",
            FailCode::Signing => "the certificate could not be signed; the operator has been told",
            FailCode::Storage => {
                "the certificate's files could not be stored or removed; the operator has been told"
            }
            FailCode::Interrupted => {
                "the job was interrupted before it finished; the operator has been told"
            }
            FailCode::Busy => "the workserver was busy and handed the job back",
            FailCode::WorkserverLost => {
                "the workserver handling the job stopped or lost contact before finishing it; the operator has been told"
            }
            FailCode::Internal => {
                "an internal error stopped the job; the operator has been told"
            }
            FailCode::Unknown => "the job failed; the operator has been told",
        }
    }

    /// The LMS's reason for a failure with this code, given what the workserver
    /// said for the LMS (if anything).
    pub fn public_reason(self, from_workserver: Option<&str>) -> String {
        match from_workserver.map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) if self.shows_workserver_reason() => {
                r.chars().take(MAX_PUBLIC_REASON).collect()
            }
            _ => self.message().to_owned(),
        }
    }
}

impl std::fmt::Display for FailCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_unknown() {
        for c in FailCode::ALL {
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(j, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<FailCode>(&j).unwrap(), c);
            assert!(!c.message().contains('/'), "{c}: {}", c.message());
        }
        assert_eq!(
            serde_json::from_str::<FailCode>("\"from_the_future\"").unwrap(),
            FailCode::Unknown
        );
    }

    #[test]
    fn only_reasons_about_the_request_are_passed_on() {
        let detail = "storage put /var/lib/testamur/public/downloads/x.pdf: Permission denied";
        assert_eq!(
            FailCode::Storage.public_reason(Some(detail)),
            FailCode::Storage.message()
        );
        assert_eq!(
            FailCode::Unprintable.public_reason(Some("no font can draw 𓀀")),
            "no font can draw 𓀀"
        );
        assert_eq!(
            FailCode::Unprintable.public_reason(Some("  ")),
            FailCode::Unprintable.message()
        );
        assert_eq!(
            FailCode::Template
                .public_reason(Some(&"x".repeat(2000)))
                .chars()
                .count(),
            MAX_PUBLIC_REASON
        );
    }
}
