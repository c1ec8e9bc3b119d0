//! Integration tests: real redis-server, real TLS (generated CA), real CC and WS
//! processes of the `testamur` binary, real gpg and poppler. One test binary
//! (modules below) so the build links once.

mod api_schema;
mod bad_input;
mod browser;
mod callbacks;
mod chaos;
mod cleartext;
mod client_addresses;
mod completions;
mod credentials;
mod end_to_end;
mod failover;
mod haproxy;
mod hardening;
mod helpers;
mod lifecycle;
mod lms_api;
mod memory;
mod migration;
mod operations;
mod pades;
mod production_redis;
mod publishing;
mod reconcile;
mod redis_nodes;
mod registration;
mod rendering;
mod retention;
mod rollout;
mod s3;
mod scoping;
mod scripts;
mod startup_checks;
mod status_lists;
mod verify_page;
mod xqueue;
mod xqueue_fake;
mod xqueue_lms;
