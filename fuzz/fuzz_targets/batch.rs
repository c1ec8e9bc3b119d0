//! `POST /v1/certificates/batch`: the body parsed as the CC does (`parse_json`
//! into `BatchRequest`, with its bounded list), then every request on its own
//! (`parse_value` into `SubmitRequest`, `prepare`), and the canonical bytes an
//! Idempotency-Key hashes per request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use testamur_cc::callbacks::policy::CallbackPolicy;
use testamur_cc::extract::{parse_json, parse_value, LmsCaller};
use testamur_cc::routes::certificates::prepare;
use testamur_common::config::CourseScope;
use testamur_common::wire::{BatchRequest, SubmitRequest, MAX_BATCH};

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = parse_json::<BatchRequest>(data) else {
        return;
    };
    assert!(batch.requests.len() <= MAX_BATCH);
    let policy = CallbackPolicy {
        allow_http: false,
        allow_private_addresses: false,
    };
    let caller = LmsCaller {
        key_name: "lms".into(),
        scope: CourseScope::All,
    };
    let catalogs = testamur_fuzz::catalogs();
    for item in batch.requests {
        let _ = serde_json::to_vec(&item).expect("a parsed value re-serialises");
        if let Ok(req) = parse_value::<SubmitRequest>(item) {
            let _ = prepare(req, catalogs, &policy, &caller);
        }
    }
});
