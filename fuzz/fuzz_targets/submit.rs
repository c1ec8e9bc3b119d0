//! `POST /v1/certificates`: the body as the CC parses it (`parse_json` into
//! `SubmitRequest`) and then checks it (`prepare`: field rules, callback URL
//! policy, course scope, the template catalogue).
#![no_main]

use libfuzzer_sys::fuzz_target;
use testamur_cc::callbacks::policy::CallbackPolicy;
use testamur_cc::extract::{parse_json, LmsCaller};
use testamur_cc::routes::certificates::prepare;
use testamur_common::config::CourseScope;
use testamur_common::wire::SubmitRequest;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = parse_json::<SubmitRequest>(data) else {
        return;
    };
    check(req);
});

fn check(req: SubmitRequest) {
    let strict = CallbackPolicy {
        allow_http: false,
        allow_private_addresses: false,
    };
    let open = CallbackPolicy {
        allow_http: true,
        allow_private_addresses: true,
    };
    let all = LmsCaller {
        key_name: "lms".into(),
        scope: CourseScope::All,
    };
    let scoped = LmsCaller {
        key_name: "lms".into(),
        scope: CourseScope::Prefixes(vec!["course-v1:MITx+".into()]),
    };
    let catalogs = testamur_fuzz::catalogs();
    let _ = prepare(req.clone(), &Default::default(), &strict, &all);
    if let Ok(job) = prepare(req, catalogs, &open, &scoped) {
        // What is queued is what was checked: ids well-formed, a template chosen.
        assert_eq!(job.cert_id.as_str().len(), 32);
        if job.action.renders() {
            assert!(job
                .fields
                .iter()
                .any(|(k, v)| *k == "template" && !v.is_empty()));
        }
    }
}
