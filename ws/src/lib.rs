//! The workserver (WS): leases jobs from the CC, renders, signs and publishes
//! certificates, and reports the results.
//!
//! Layout:
//! - [`worker`]: registration, heartbeats, the lease loop and per-job lease extension.
//! - [`client`]: the HTTPS client for the CC API.
//! - [`report`]: completions sent to the CC, several per call when they pile up.
//! - [`job`]: one job end to end (render, sign, verify, publish or delete) — blocking code.
//! - [`render`]: templates, text layout in every script, and the PDF.
//! - [`verify_page`]: the public verification page of a certificate.
//! - [`sign`]: OpenPGP keys and detached signatures (sequoia); [`armor`]: our own
//!   signatures' armor, read strictly.
//! - [`pdf_sign`]: the PDF's own signature (PAdES B-B, ECDSA P-256) and its offline check.
//! - [`credential`]: the Open Badges 3.0 credential of each version (Data Integrity, eddsa-rdfc-2022).
//! - [`status_job`]: publishing a status list's signed credential (leased like a job).
//! - [`storage`]: where certificates are published.
//!
//! Architecture invariant: CPU work and file I/O run on tokio's blocking pool,
//! bounded by the workserver's capacity (one semaphore permit per leased job).

pub mod armor;
pub mod client;
pub mod credential;
pub mod ed25519;
pub mod fence;
pub mod job;
pub mod pdf_sign;
pub mod render;
pub mod report;
pub mod sample;
pub mod sign;
pub mod signed_at;
pub mod status_job;
pub mod storage;
pub mod verify_page;
pub mod worker;

pub use worker::run;
