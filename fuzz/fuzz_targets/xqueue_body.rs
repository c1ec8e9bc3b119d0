//! The xqueue bridge's untrusted input: xqueue's answer to `get_submission`
//! (JSON, `content` holding the envelope), the envelope (`Envelope::from_content`)
//! and the LMS's body in it (`parse_body`), then the CC's own check of the submit
//! body the bridge would send (`CertRequest::parse`) and the answers it would post.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use testamur::xqueue::submission::{error_body, parse_body, Envelope};
use testamur_common::request::CertRequest;

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let content = answer.get("content").cloned().unwrap_or(Value::Null);
    let Ok(env) = Envelope::from_content(&content) else {
        return;
    };
    assert_eq!(env.key().len(), 64);
    let _ = env.submission_id();
    let mut map = BTreeMap::new();
    map.insert("old-MITx.pdf".to_owned(), "letter".to_owned());
    match parse_body(&env.body, &map) {
        Ok(job) => {
            // The bridge sends exactly this body; the CC must accept or refuse
            // it with a field error, and it must survive the trip as JSON.
            let wire = serde_json::to_vec(&job.request).unwrap();
            let back: testamur_common::wire::SubmitRequest = serde_json::from_slice(&wire).unwrap();
            let _ = CertRequest::parse(back);
            let _ = error_body("x", "y", &job.username, &job.course_id);
        }
        Err(m) => {
            let body = error_body("malformed", &m.reason, &m.username, &m.course_id);
            serde_json::from_str::<Value>(&body).expect("the error answer is JSON");
        }
    }
});
