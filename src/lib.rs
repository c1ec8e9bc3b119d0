//! The `testamur` command-line tool, and the pieces of it that tests reuse.
//!
//! Layout:
//! - `main.rs` + [`cmd`]: argument parsing and one module per subcommand.
//! - [`api`]: a client for the CC's LMS/operator endpoints.
//! - [`devcluster`]: a whole local cluster (redis, TLS, key, CC, WS processes).
//! - [`redis_proc`]: a throwaway redis-server on a unix socket.
//! - [`tlsgen`]: development CA and server certificate.
//! - [`fsutil`]: writing secret files 0600.
//! - [`logging`]: tracing set-up (human or JSON).
//! - [`xqueue`]: the bridge between an Open edX xqueue and a CC.

pub mod api;
pub mod cmd;
pub mod devcluster;
pub mod fsutil;
pub mod logging;
pub mod redis_proc;
pub mod tlsgen;
pub mod xqueue;
