//! Redis memory per certificate (issue 15, goal 5): 10,000 certificates made
//! downloadable through the real HTTPS API (no-op workservers reporting realistic
//! URLs, digest and signing key, as `testamur bench queue`), then a regen of each.
//! Redis's `used_memory` must grow by at most 1.5 KB per certificate for its first
//! version and 0.5 KB per further version (docs/OPERATIONS.md capacity plan).

use testamur::cmd::bench_queue::{measure, QueueBench};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_a_certificate_in_under_1_5_kb_and_a_further_version_in_0_5_kb() {
    let dir = tempfile::tempdir().unwrap();
    let f = measure(
        &QueueBench {
            n: 10_000,
            workers: 2,
            capacity: 50,
            dir: dir.path(),
            verbose: false,
        },
        env!("CARGO_BIN_EXE_testamur").into(),
    )
    .await
    .unwrap();
    eprintln!(
        "{:.0} bytes per certificate, {:.0} per further version",
        f.bytes_per_cert, f.bytes_per_version
    );
    assert!(
        f.bytes_per_cert <= 1536.0,
        "{:.0} bytes per certificate",
        f.bytes_per_cert
    );
    assert!(
        f.bytes_per_version <= 512.0,
        "{:.0} bytes per further version",
        f.bytes_per_version
    );
}
