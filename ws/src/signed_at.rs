//! What a job's signatures say about it: when they were made (when the CC
//! accepted the request, the same for every attempt, so a retry signs the same
//! bytes) and the facts its credential states.

use std::time::SystemTime;

use testamur_common::ids::PublicUuid;
use testamur_common::wire::JobCertificate;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// When the CC accepted the job's request; None for a job from an earlier CC.
fn requested_at(cert: &JobCertificate) -> Option<OffsetDateTime> {
    let t = cert.requested_at.as_deref()?;
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

/// The OpenPGP signature's creation time: the request's, or now for a job
/// whose CC did not say.
pub fn signing_time(cert: &JobCertificate) -> SystemTime {
    requested_at(cert)
        .map(SystemTime::from)
        .unwrap_or_else(SystemTime::now)
}

/// `t` in UTC as [year, month, day, hour, minute, second] (the PDF signature's `/M`).
pub fn utc_parts(t: SystemTime) -> [u16; 6] {
    let t = OffsetDateTime::from(t).to_offset(UtcOffset::UTC);
    [
        t.year().clamp(0, 9999) as u16,
        u8::from(t.month()) as u16,
        t.day() as u16,
        t.hour() as u16,
        t.minute() as u16,
        t.second() as u16,
    ]
}

/// A `YYYY-MM-DD` date at midnight, as [`utc_parts`] gives a time.
pub fn date_parts(date: &str) -> Option<[u16; 6]> {
    let mut it = date.split('-').map(|p| p.parse::<u16>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    (it.next().is_none() && (1..=12).contains(&m) && (1..=31).contains(&d))
        .then_some([y, m, d, 0, 0, 0])
}

/// What a job's credential says: the learner's name as given (the username when
/// the LMS gave none), the course, the issuer's name, the dates, its status list
/// entry (`list_url`: where a list is published).
pub fn credential_facts<'a>(
    cert: &'a JobCertificate,
    vu: &'a PublicUuid,
    noun: &'a str,
    list_url: &dyn Fn(u32) -> String,
) -> crate::credential::Facts<'a> {
    crate::credential::Facts {
        verify_uuid: vu,
        learner: cert.name.as_deref().unwrap_or(cert.username.as_str()),
        course_id: cert.course_id.as_str(),
        course_name: cert
            .course_name
            .as_deref()
            .unwrap_or(cert.course_id.as_str()),
        org: cert.org.as_deref(),
        issued_date: &cert.issued_date,
        signed_at: requested_at(cert).map(whole_seconds),
        noun,
        status: cert.status.map(|s| crate::credential::document::StatusRef {
            list_url: list_url(s.list),
            index: s.index,
        }),
    }
}

/// RFC 3339 to the second, UTC (`2026-11-23T10:15:00Z`), as the credential's
/// proof says when it was made.
pub fn whole_seconds(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_dates_give_midnight_and_others_nothing() {
        assert_eq!(date_parts("2026-11-23"), Some([2026, 11, 23, 0, 0, 0]));
        assert_eq!(date_parts("2026-13-01"), None);
        assert_eq!(date_parts("yesterday"), None);
    }

    #[test]
    fn the_proof_time_is_the_request_time_to_the_second_in_utc() {
        let t = OffsetDateTime::parse("2026-11-23T11:15:00.987+01:00", &Rfc3339).unwrap();
        assert_eq!(whole_seconds(t), "2026-11-23T10:15:00Z");
    }
}
