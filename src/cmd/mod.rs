//! One module per subcommand. Each `run` returns an exit code or an error that
//! says what to do.

pub mod bench;
pub mod bench_durability;
pub mod bench_e2e;
pub mod bench_queue;
pub mod bench_redis;
pub mod certs;
pub mod demo;
pub mod drain;
pub mod keygen;
pub mod migrate;
pub mod preview;
pub mod reconcile;
pub mod serve;
pub mod status;
pub mod submit;
pub mod submit_csv;
pub mod target;
pub mod verify;
pub mod xqueue;
