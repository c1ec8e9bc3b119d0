//! xqueue.conf: `XqueueConfig::from_toml`, what `XqueueConfig::load` runs on the
//! file's text, as if the file were in a deployment directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use testamur::xqueue::config::XqueueConfig;

fuzz_target!(|data: &[u8]| {
    let Some(text) = testamur_fuzz::text(data) else {
        return;
    };
    let file = testamur_fuzz::deployment().join("xqueue.conf");
    if let Ok(c) = XqueueConfig::from_toml(&file, text) {
        assert!(!c.xqueue_url.ends_with('/') && !c.cc_url.ends_with('/'));
        assert!(c.cc_url.starts_with("https://"));
    }
});
