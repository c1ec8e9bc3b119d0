//! The bodies workservers (and operators) send the CC: the first byte picks the
//! endpoint, the rest is the body, parsed with `parse_json` as the route does and
//! checked the way the route checks it before touching Redis.
#![no_main]

use libfuzzer_sys::fuzz_target;
use testamur_cc::extract::parse_json;
use testamur_cc::routes::leases::check_result;
use testamur_common::ids::WsName;
use testamur_common::wire::{
    CompleteRequest, FailRequest, HeartbeatRequest, LeaseRequest, RegisterRequest, ReplayRequest,
};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            let _ = parse_json::<LeaseRequest>(body);
        }
        1 => {
            if let Ok(c) = parse_json::<CompleteRequest>(body) {
                if check_result(&c.result).is_ok() {
                    // What the CC stores re-serialises and reads back the same
                    // (timings to the last bits: serde_json's default float
                    // parsing is not exactly round-trip; they only feed metrics).
                    let again = serde_json::to_vec(&c.result).unwrap();
                    let mut back: testamur_common::wire::JobResult =
                        serde_json::from_slice(&again).unwrap();
                    let close = |a: f64, b: f64| (a - b).abs() <= a.abs().max(b.abs()) * 1e-12;
                    if let (Some(b), Some(t)) = (&back.timings, &c.result.timings) {
                        assert!(close(b.render_ms, t.render_ms) && close(b.sign_ms, t.sign_ms));
                        assert!(close(b.store_ms, t.store_ms));
                    }
                    back.timings = c.result.timings;
                    assert_eq!(back, c.result);
                }
            }
        }
        2 => {
            if let Ok(f) = parse_json::<FailRequest>(body) {
                let reason: String = f.error_reason.chars().take(2000).collect();
                let code = f
                    .error_code
                    .unwrap_or(testamur_common::failure::FailCode::Unknown);
                let _ = (reason, code.public_reason(f.public_reason.as_deref()));
            }
        }
        3 => {
            if let Ok(r) = parse_json::<RegisterRequest>(body) {
                let _ = WsName::parse(r.name);
            }
        }
        4 => {
            let _ = parse_json::<HeartbeatRequest>(body);
        }
        _ => {
            let _ = parse_json::<ReplayRequest>(body);
        }
    }
});
