//! What a trusted load balancer's connection starts with: a PROXY protocol v2
//! header, read before TLS and before any authentication (`parse_header`: the
//! same steps as the CC's `read_header`), and `X-Forwarded-For` (`forwarded_for`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use testamur_cc::proxy::{forwarded_for, header_v2, parse_header};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((addr, len))) = parse_header(data) {
        assert!((16..=16 + 2048).contains(&len) && len <= data.len());
        if let Some(client) = addr {
            // What we read is what a header naming that client says.
            let again = header_v2(client, client);
            assert_eq!(
                parse_header(&again).unwrap(),
                Some((Some(client), again.len()))
            );
        }
    }
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(v) = axum::http::HeaderValue::from_bytes(data) {
        headers.insert("x-forwarded-for", v);
        let _ = forwarded_for(&headers);
    }
});
