//! Synthetic certificates for benchmarks (the `testamur bench` subcommand and the
//! criterion benches): learner names that vary the way real ones do, so font
//! subsets and layouts are not all served from caches, and a verify URL (hence a
//! QR code) of its own per certificate.

use testamur_common::ids::{CertId, CourseId, PublicUuid, Username};
use testamur_common::wire::JobCertificate;

/// Which script the names (and the course title) are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Latin,
    Cjk,
}

const GIVEN: &[&str] = &[
    "Zoë",
    "Ana",
    "Björn",
    "Chloé",
    "Dmitri",
    "Émile",
    "Fatima",
    "Grégoire",
    "Hannah",
    "Iñigo",
];
const FAMILY: &[&str] = &[
    "Ångström",
    "Müller",
    "García",
    "O'Brien",
    "Nakamura",
    "Dubois",
    "Kowalski",
    "Søndergaard",
];
const CJK_FAMILY: &[char] = &['王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周'];
/// Common characters of given names; two per name, so 10 x 40 x 40 names.
const CJK_GIVEN: &[char] = &[
    '小', '明', '秀', '英', '建', '国', '美', '玲', '志', '强', '丽', '娟', '海', '涛', '晓', '峰',
    '雅', '静', '俊', '杰', '文', '博', '思', '琪', '宇', '轩', '欣', '怡', '子', '涵', '浩', '然',
    '梓', '萱', '嘉', '晨', '雨', '桐', '佳', '豪',
];

/// The i-th learner name. Latin names carry the number, so every one is distinct;
/// CJK names (three characters) repeat only after 16,000.
pub fn name(script: Script, i: usize) -> String {
    match script {
        Script::Latin => format!(
            "{} {} {}",
            GIVEN[i % GIVEN.len()],
            FAMILY[(i / 7) % FAMILY.len()],
            i
        ),
        Script::Cjk => {
            let n = CJK_GIVEN.len();
            // A stride coprime with the table sizes walks every combination.
            let j = i.wrapping_mul(7919);
            [
                CJK_FAMILY[i % CJK_FAMILY.len()],
                CJK_GIVEN[(j / 10) % n],
                CJK_GIVEN[(j / (10 * n)) % n],
            ]
            .iter()
            .collect()
        }
    }
}

/// The i-th certificate of a course in `script`, for `template` (None: the
/// catalogue's choice).
pub fn job(script: Script, i: usize, template: Option<&str>) -> JobCertificate {
    // Both parse: fixed ASCII identifiers within the length limits.
    let course = CourseId::parse("course-v1:BenchX+B1+2026").expect("valid course id");
    let username = Username::parse(format!("u{i}")).expect("valid username");
    JobCertificate {
        cert_id: CertId::for_pair(&course, &username),
        course_id: course,
        username,
        name: Some(name(script, i)),
        course_name: Some(match script {
            Script::Latin => "Performance Engineering of Software Systems".into(),
            Script::Cjk => "软件系统性能工程".into(),
        }),
        org: Some("BenchX".into()),
        grade: None,
        designation: None,
        issued_date: "2026-11-23".into(),
        template: template.map(str::to_owned),
        lang: None,
        download_uuid: Some(PublicUuid::generate()),
        verify_uuid: Some(PublicUuid::generate()),
        previous: None,
        requested_at: None,
        // As the CC gives them: a random place in a list.
        status: Some(testamur_common::status_list::StatusEntry {
            list: 0,
            index: (i as u32).wrapping_mul(2_654_435_761)
                % testamur_common::status_list::STATUS_LIST_SIZE,
        }),
    }
}

/// The URL a certificate's verification page has (what the PDF prints and encodes
/// in its QR code), as a workserver publishing to `base` gives it.
pub fn verify_url(base: &str, cert: &JobCertificate) -> String {
    let dir = cert
        .verify_uuid
        .as_ref()
        .map(crate::storage::verify_dir)
        .unwrap_or_default();
    format!("{}/{dir}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_vary() {
        for script in [Script::Latin, Script::Cjk] {
            let names: std::collections::HashSet<String> =
                (0..1000).map(|i| name(script, i)).collect();
            assert!(names.len() >= 990, "{script:?}: {} distinct", names.len());
        }
        assert_eq!(name(Script::Cjk, 5).chars().count(), 3);
    }
}
