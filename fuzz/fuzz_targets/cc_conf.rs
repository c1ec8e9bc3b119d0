//! cc.conf: `CcConfig::from_toml`, what `CcConfig::load` runs on the file's text,
//! as if the file were in a deployment directory holding the files it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use testamur_common::config::CcConfig;

fuzz_target!(|data: &[u8]| {
    let Some(text) = testamur_fuzz::text(data) else {
        return;
    };
    let file = testamur_fuzz::deployment().join("cc.conf");
    if let Ok(c) = CcConfig::from_toml(&file, text) {
        assert!(c.callbacks.per_host_concurrency <= c.callbacks.concurrency);
        assert!(c.limits.max_connections_per_ip <= c.limits.max_connections);
        assert!(c.max_batch_body_bytes >= c.max_body_bytes);
        assert!(c.callbacks.retry_base <= c.callbacks.retry_max);
        // The CC's own arithmetic on the settings must not overflow: three
        // heartbeats (the reaper, `alive` in status, in ms as i64), a callback's
        // hold (2 × timeout + 30 s), lease expiry in ms.
        let three = c.heartbeat_interval.checked_mul(3).expect("3 × heartbeat");
        assert!(i64::try_from(three.as_millis()).is_ok());
        assert!(c
            .callbacks
            .timeout
            .checked_mul(2)
            .and_then(|t| t.checked_add(std::time::Duration::from_secs(30)))
            .is_some());
        assert!(i64::try_from(c.lease_ttl.as_millis()).is_ok());
        assert!(i64::try_from(c.callbacks.retry_max.as_millis()).is_ok());
    }
});
