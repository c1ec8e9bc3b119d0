//! ws.conf: `WsConfig::from_toml`, what `WsConfig::load` runs on the file's text,
//! as if the file were in a deployment directory holding the files it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use testamur_common::config::WsConfig;

fuzz_target!(|data: &[u8]| {
    let Some(text) = testamur_fuzz::text(data) else {
        return;
    };
    let file = testamur_fuzz::deployment().join("ws.conf");
    if let Ok(c) = WsConfig::from_toml(&file, text) {
        assert!(c.storage.base_url.ends_with('/'));
        assert!((1..=256).contains(&c.capacity));
    }
});
