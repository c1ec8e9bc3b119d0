//! Id and address-range parsers (`common/src/ids.rs`, `common/src/cidr.rs`): every
//! parser on the same text; what parses re-serialises to the same string and
//! reads back from JSON the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use testamur_common::cidr::Cidr;
use testamur_common::ids::{CertId, CourseId, JobId, LeaseId, PublicUuid, Username, WsId, WsName};

macro_rules! round_trip {
    ($t:ty, $s:expr) => {
        if let Ok(id) = <$t>::parse($s) {
            assert_eq!(id.as_str(), $s);
            assert_eq!(id.to_string(), $s);
            let json = serde_json::to_string(&id).unwrap();
            let back: $t = serde_json::from_str(&json).unwrap();
            assert_eq!(back, id);
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Some(s) = testamur_fuzz::text(data) else {
        return;
    };
    round_trip!(CourseId, s);
    round_trip!(Username, s);
    round_trip!(WsName, s);
    round_trip!(CertId, s);
    round_trip!(JobId, s);
    round_trip!(WsId, s);
    round_trip!(PublicUuid, s);
    round_trip!(LeaseId, s);
    if let Ok(l) = LeaseId::parse(s) {
        assert!(s.starts_with(l.job_id().as_str()));
    }
    if let (Ok(c), Ok(u)) = (CourseId::parse(s), Username::parse(s)) {
        assert!(CertId::parse(CertId::for_pair(&c, &u).as_str()).is_ok());
    }
    if let Ok(c) = Cidr::parse(s) {
        // A range holds the address it was written with.
        let addr = s.split_once('/').map_or(s, |(a, _)| a).trim();
        let ip: std::net::IpAddr = addr.parse().unwrap();
        assert!(c.contains(ip), "{s} does not contain {ip}");
    }
});
