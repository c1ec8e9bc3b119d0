//! The xqueue bridge's untrusted input: xqueue's answer to `get_submission`
//! (JSON, `content` holding the envelope), the envelope (`Envelope::from_content`)
//! and the LMS's body in it (`parse_body`), then the CC's own check of the submit
//! body the bridge would send (`CertRequest::parse`) and the answers it would post.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use testamur::xqueue::answer::{error_body, ERROR_REASON_MAX};
use testamur::xqueue::mapping::{Mapping, TemplateMapping, TemplateRule};
use testamur::xqueue::submission::{parse_body, Envelope};
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
    let mapping = Mapping {
        templates: TemplateMapping {
            map: [("old-MITx.pdf".to_owned(), "letter".to_owned())].into(),
            rules: vec![TemplateRule {
                org: Some("*X".into()),
                course: None,
                mode: Some("verified".into()),
                pdf: None,
                template: "{org}-{course}-{mode}".into(),
            }],
            default: Some("classic".into()),
        },
        course_names: Default::default(),
    };
    match parse_body(&env.body, &mapping) {
        Ok(job) => {
            // The bridge sends exactly this body; the CC must accept or refuse
            // it with a field error, and it must survive the trip as JSON.
            let wire = serde_json::to_vec(&job.request).unwrap();
            let back: testamur_common::wire::SubmitRequest = serde_json::from_slice(&wire).unwrap();
            let _ = CertRequest::parse(back);
            let long = "é".repeat(2 * ERROR_REASON_MAX);
            let body: Value =
                serde_json::from_str(&error_body("x", &long, &job.username, &job.course_id))
                    .expect("the error answer is JSON");
            assert!(body["error_reason"].as_str().unwrap().chars().count() <= ERROR_REASON_MAX);
        }
        Err(m) => {
            let body = error_body("malformed", &m.reason, &m.username, &m.course_id);
            serde_json::from_str::<Value>(&body).expect("the error answer is JSON");
        }
    }
});
